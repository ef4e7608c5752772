"""The console server's JSON: the figures of the scripted workload, the trail as ``rx trail`` shows it,
transactions from the node, read-only and same-origin only; following the chain in the background;
PostgreSQL behind it."""

from __future__ import annotations

import time

import pytest
import requests

from rxchain import audit
from rxchain.indexer.workload import expected_figures
from rxchain.dev.demo import demo_document
from rxchain.workflow import issue_prescription


def get(server, path, status=200):
    response = requests.get(server.url.rstrip("/") + path, timeout=30)
    assert response.status_code == status, f"{path}: {response.status_code} {response.text[:300]}"
    return response


def test_the_figures_are_the_scripted_ones(console_server, scenario, client):
    now = client.latest_block_time()
    config = get(console_server, "/api/config").json()
    assert config["registry"] == client.address and config["chainId"] == client.chain_id
    assert config["lastBlock"] == client.w3.eth.block_number and config["lastBlockTime"] == now
    assert config["txUrl"] == "tx/{hash}" and config["indexer"] is None  # relative to the page

    summary = get(console_server, "/api/summary").json()
    expected = expected_figures(scenario, now)
    assert {k: summary[k] for k in expected} == expected

    hospitals = {h["hospital"]: h for h in get(console_server, "/api/hospitals").json()}
    for address in scenario.hospitals:
        mine = [p for p in scenario.prescriptions if p.hospital == address]
        assert (hospitals[address]["issued"], hospitals[address]["expiredUnfilled"]) == (
            len(mine),
            sum(p.expired_unfilled(now) for p in mine),
        )

    members = {m["account"]: m for m in get(console_server, "/api/members").json()}
    soon = [a for a, story in scenario.member_notes.items() if story == "credential ends soon"]
    assert [members[a]["standing"] for a in soon] == ["expiring"]
    assert members[soon[0]]["daysLeft"] < 30
    assert get(console_server, "/api/members?days=5").json() and not any(
        m["standing"] == "expiring" for m in get(console_server, "/api/members?days=5").json()
    )

    expired = get(console_server, "/api/expired?limit=3").json()
    assert expired["total"] == expected["expiredUnfilled"] and len(expired["rows"]) == min(
        3, expected["expiredUnfilled"]
    )
    delivery = get(console_server, "/api/delivery-times").json()
    assert delivery["count"] == summary["received"] - sum(
        1 for p in scenario.prescriptions for f in p.taken if f.received and not f.courier
    )
    daily = get(console_server, "/api/daily").json()
    assert (
        sum(d["issued"] for d in daily) == expected["issued"] and sum(d["redeemed"] for d in daily) == expected["fills"]
    )
    assert sum(r["fills"] for r in get(console_server, "/api/pharmacies").json()) == expected["fills"]


def test_the_trail_is_rx_trail_and_links_its_transactions(console_server, scenario, client):
    for p in (scenario.prescriptions[0], next(p for p in scenario.prescriptions if p.root is not None and p.taken)):
        data = get(console_server, f"/api/trail/{p.id_hex}").json()
        assert data["found"] is True
        assert data["steps"] == [s.as_json() for s in audit.trail(client, p.rx_id)]
        assert data["prescription"]["status"] == p.status()
        tx_hash = data["steps"][-1]["txHash"]
        shown = get(console_server, f"/tx/{tx_hash}").json()
        receipt = client.w3.eth.get_transaction_receipt(tx_hash)
        assert int(shown["receipt"]["blockNumber"], 16) == receipt["blockNumber"] == data["steps"][-1]["blockNumber"]
        assert shown["transaction"]["hash"] == tx_hash and shown["block"]["timestamp"] == data["steps"][-1]["blockTime"]

    assert "not a prescription id" in get(console_server, "/api/trail/0x1234", 400).json()["error"]
    missing = get(console_server, "/api/trail/0x" + "ab" * 32).json()
    assert missing["found"] is False and missing["steps"] == [] and "no prescription" in missing["error"]
    assert "no indexed registry event" in get(console_server, "/tx/0x" + "cd" * 32, 404).json()["error"]
    get(console_server, "/tx/nothex", 400)


def test_read_only_same_origin_and_nothing_else(console_server):
    page = get(console_server, "/")
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "unsafe" not in csp
    assert get(console_server, "/vendor/chart.umd.min.js").text.startswith("/*!")
    for path in (
        "/vendor/jsQR.js",
        "/../src/rxchain/web/console.py",
        "/%2e%2e/pyproject.toml",
        "/api/secrets",
        "/config.json",
        "/rpc",
    ):
        get(console_server, path, 404)
    url = console_server.url.rstrip("/")
    for method in ("post", "put", "delete", "patch"):
        assert getattr(requests, method)(url + "/api/summary", timeout=10).status_code == 405
    assert (
        requests.post(url + "/rpc", json={"jsonrpc": "2.0", "id": 1, "method": "eth_accounts"}, timeout=10).status_code
        == 405
    )
    text = page.text + get(console_server, "/app.js").text + get(console_server, "/api/config").text
    assert "privateKey" not in text and "devKeys" not in text and "eth_sendRawTransaction" not in text


def test_console_without_a_node_shows_hashes_without_links(indexed):
    from rxchain.web.console import make_server

    with make_server(indexed, "127.0.0.1", 0) as server:
        assert get(server, "/api/config").json()["txUrl"] is None
        assert "without a node URL" in get(server, "/tx/0x" + "ab" * 32, 404).json()["error"]
    with make_server(indexed, "127.0.0.1", 0, tx_url="https://explorer.example/tx/{hash}") as server:
        assert get(server, "/api/config").json()["txUrl"] == "https://explorer.example/tx/{hash}"
    with pytest.raises(ValueError, match="must contain"):
        make_server(indexed, "127.0.0.1", 0, tx_url="https://explorer.example/tx/")


def test_following_in_the_background(client, deployment, scenario, rpc_url, ids, tmp_path):
    from rxchain.web.console import make_server

    db = str(tmp_path / "follow.sqlite")
    server = make_server(
        db,
        "127.0.0.1",
        0,
        rpc_url=rpc_url,
        follow=True,
        registry=deployment.registry,
        deploy_block=deployment.deploy_block,
        poll_interval=0.2,
    )
    with server:
        summary = _wait_for(server, lambda s: s["issued"] == len(scenario.prescriptions))
        assert summary["issued"] == len(scenario.prescriptions)
        assert get(server, "/api/config").json()["indexer"]["following"] is True
        doctor = ids["doctor"]
        issue_prescription(client, doctor, demo_document(doctor.address, client.latest_block_time()))
        assert _wait_for(server, lambda s: s["issued"] == len(scenario.prescriptions) + 1)
        follower = server.follower
    assert not follower.running
    with pytest.raises(ValueError, match="holds no index"):
        make_server(str(tmp_path / "empty.sqlite"), "127.0.0.1", 0, rpc_url=rpc_url, follow=True)


def _wait_for(server, condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        response = requests.get(server.url + "api/summary", timeout=10)
        if response.status_code == 200:
            last = response.json()
            if condition(last):
                return last
        else:
            assert response.status_code == 503  # nothing indexed yet
        time.sleep(0.1)
    pytest.fail(f"the console's figures did not get there in {timeout} s (last: {last})")


def test_the_console_reads_postgres_too(indexed, scenario, deployment, rpc_url, pg_url):
    from rxchain.web.console import make_server
    from rxchain.indexer import index

    index(rpc_url, deployment.registry, deployment.deploy_block, pg_url)
    with (
        make_server(pg_url, "127.0.0.1", 0, rpc_url=rpc_url) as pg,
        make_server(indexed, "127.0.0.1", 0, rpc_url=rpc_url) as lite,
    ):
        for path in (
            "/api/summary",
            "/api/daily",
            "/api/hospitals",
            "/api/pharmacies",
            "/api/delivery-times",
            "/api/members",
            "/api/expired",
            f"/api/trail/{scenario.prescriptions[3].id_hex}",
        ):
            assert get(pg, path).json() == get(lite, path).json(), path
        assert get(pg, "/api/config").json()["database"] == "postgres"
