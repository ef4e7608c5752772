"""The console's claims and returned-drug alarms: the scripted DrugBoxes workload
(:mod:`rxchain.indexer.boxes_workload`) on ape's ephemeral anvil, indexed with DrugBoxes into SQLite;
/api/claims and /api/box-alarms exact for it; only the regulator and auditors see them; and the page's
"Claims" and "Returned-drug alarms" sections in headless chromium with the same numbers."""

from __future__ import annotations

import pytest
import requests

from rxchain.chain.boxes import BoxesClient
from rxchain.chain.client import RegistryClient
from rxchain.indexer.boxes_workload import run_boxes_workload


@pytest.fixture(scope="module")
def boxes_scenario(w3, ids, deployment):
    registry = RegistryClient(w3, deployment.registry, deploy_block=deployment.deploy_block)
    return run_boxes_workload(registry, BoxesClient.for_deployment(registry, deployment), ids)


@pytest.fixture(scope="module")
def indexed(boxes_scenario, deployment, rpc_url, tmp_path_factory) -> str:
    """This module's index: the boxes workload, DrugBoxes followed (overrides the conftest's)."""
    from rxchain.indexer import index

    db = str(tmp_path_factory.mktemp("console-boxes") / "index.sqlite")
    index(rpc_url, deployment.registry, deployment.deploy_block, db, boxes=deployment.boxes)
    return db


@pytest.fixture(scope="module")
def console_server(indexed, rpc_url, ids):
    from rxchain.web.console import make_server

    labels = {a.address: name for name, a in ids.items()}
    server = make_server(indexed, "127.0.0.1", 0, rpc_url=rpc_url, labels=labels).start()
    yield server
    server.stop()


def get(server, path, status=200):
    response = requests.get(server.url.rstrip("/") + path, timeout=30)
    assert response.status_code == status, f"{path}: {response.status_code} {response.text[:300]}"
    return response.json()


def test_the_claims_endpoint_is_exact(console_server, boxes_scenario, ids):
    s = boxes_scenario
    claims = get(console_server, "/api/claims")
    expected = s.claims()
    assert {k: claims[k] for k in expected} == expected
    assert (claims["filed"], claims["approved"], claims["paid"], claims["rejected"], claims["void"]) == (4, 2, 1, 1, 1)
    assert [(r["insurer"], r["filed"], r["pending"], r["paid"], r["rejected"]) for r in claims["byInsurer"]] == [
        (s.insurer, 4, 1, 1, 1)
    ]
    assert [(r["pharmacy"], r["fillsWithBoxes"], r["filed"], r["void"]) for r in claims["byPharmacy"]] == [
        (ids["pharmacy2"].address, 4, 2, 1),
        (ids["pharmacy"].address, 3, 2, 0),
    ]
    want = {(f.rx_id, f.fills_left): f for f in s.fills if f.claim != "none"}
    assert {(r["id"], r["fillsLeft"]) for r in claims["rows"]} == set(want)
    for row in claims["rows"]:
        f = want[(row["id"], row["fillsLeft"])]
        assert (row["status"], row["pharmacy"], row["paymentReference"], row["reason"], row["boxes"]) == (
            f.claim,
            f.pharmacy,
            f.payment_reference,
            f.reason,
            f.boxes,
        )
    assert [r["status"] for r in get(console_server, "/api/claims?limit=2")["rows"]] == [
        r["status"] for r in claims["rows"][:2]
    ]
    assert get(console_server, "/api/config")["boxes"] == s.boxes


def test_the_box_alarms_endpoint_is_exact(console_server, boxes_scenario, ids):
    s = boxes_scenario
    alarms = get(console_server, "/api/box-alarms")
    assert (alarms["duplicates"], alarms["clonedBoxes"], alarms["recalledLots"], alarms["lots"]) == (2, 1, 1, 3)
    assert sorted((r["pharmacy"], r["duplicates"]) for r in alarms["byPharmacy"]) == sorted(
        (d.pharmacy, 1) for d in s.duplicates
    )
    assert [d["duplicates"] for d in alarms["byDay"]] == [1, 1]
    newest, oldest = alarms["rows"]
    for row, d in ((newest, s.duplicates[1]), (oldest, s.duplicates[0])):
        assert (row["lot"], row["index"], row["nullifier"], row["pharmacy"], row["scannedAt"]) == (
            d.lot,
            d.index,
            d.nullifier,
            d.pharmacy,
            d.scanned_at,
        )
        assert row["firstSale"] == {"id": d.first_rx_id, "fillsLeft": 0, "pharmacy": d.first_pharmacy, "at": d.first_at}
    assert alarms["cloned"] == [
        {
            "nullifier": s.cloned_nullifier,
            "fills": [
                {
                    "id": rx_id,
                    "fillsLeft": 0,
                    "pharmacy": f.pharmacy,
                    "recordedAt": f.recorded_at,
                    "txHash": alarms["cloned"][0]["fills"][i]["txHash"],
                }
                for i, (rx_id, f) in enumerate(
                    (rx, next(f for f in s.fills if f.rx_id == rx)) for rx, _ in s.cloned_fills
                )
            ],
        }
    ]
    assert [(r["root"], r["count"], r["recalledBy"]) for r in alarms["recalled"]] == [
        (s.recalled[0], 4, s.manufacturer)
    ]


def test_the_console_following_the_chain_indexes_drugboxes(deployment, rpc_url, boxes_scenario, tmp_path):
    """rx serve's path: the console's own follower, given DrugBoxes, indexes its events into a new index."""
    import time

    from rxchain.web.console import make_server

    server = make_server(
        str(tmp_path / "follow.sqlite"),
        "127.0.0.1",
        0,
        rpc_url=rpc_url,
        follow=True,
        registry=deployment.registry,
        deploy_block=deployment.deploy_block,
        boxes=deployment.boxes,
        poll_interval=0.2,
    )
    head = requests.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}, timeout=10).json()
    with server:
        deadline = time.monotonic() + 60  # a bound on waiting, not a measurement
        while time.monotonic() < deadline:
            config = requests.get(server.url + "api/config", timeout=10)
            if config.status_code == 200 and config.json()["lastBlock"] >= int(head["result"], 16):
                break
            time.sleep(0.1)
        assert get(server, "/api/config")["boxes"] == deployment.boxes
        claims, alarms = get(server, "/api/claims"), get(server, "/api/box-alarms")
    assert {k: claims[k] for k in boxes_scenario.claims()} == boxes_scenario.claims()
    assert (alarms["duplicates"], alarms["clonedBoxes"], alarms["recalledLots"]) == (2, 1, 1)


def test_only_the_regulator_and_auditors_see_claims_and_alarms(deployment, rpc_url, indexed, ids, boxes_scenario):
    from web.conftest import Visitor, make_web  # tests/ is on sys.path (rootdir-relative packages)

    server = make_web(deployment, rpc_url, indexed).start()
    try:
        for name in ("regulator", "auditor"):
            visitor = Visitor(server, requests.Session())
            assert visitor.sign_in(ids[name]).json()["view"] == "all"
            assert visitor.get("/console/api/claims").json()["filed"] == 4
            assert visitor.get("/console/api/box-alarms").json()["duplicates"] == 2
        for name, view in (("pharmacy", "pharmacy"), ("hospital", "hospital")):
            visitor = Visitor(server, requests.Session())
            assert visitor.sign_in(ids[name]).json()["view"] == view
            for path in ("/console/api/claims", "/console/api/box-alarms", "/console/api/claims?limit=1"):
                refused = visitor.get(path)
                assert refused.status_code == 403, (name, path)
                assert "filed" not in refused.json() and "duplicates" not in refused.json()
        stranger = Visitor(server, requests.Session())
        assert stranger.get("/console/api/claims").status_code == 401
        assert stranger.get("/console/api/box-alarms").status_code == 401
    finally:
        server.stop()


def test_the_page_shows_claims_and_alarms(console_page, ids):
    """The page against the scenario's figures (fixed by its design, see the endpoint tests above for
    the same figures against the script) and the rows the server gives."""
    from playwright.sync_api import expect

    page = console_page.open().page
    claims = page.request.get(console_page.url + "api/claims").json()
    alarms = page.request.get(console_page.url + "api/box-alarms").json()

    page.locator("#claims").scroll_into_view_if_needed()
    for key, value in (("filed", 4), ("pending", 1), ("approved", 2), ("paid", 1), ("rejected", 1), ("void", 1)):
        assert console_page.figure(f"claims-{key}") == str(value), key
    expect(page.locator('[data-figure="claims-approved"] .sub')).to_have_text("1 awaiting the payment's reference")
    expect(page.locator("#claims-note")).to_contain_text("7 fills had their boxes recorded; 4 claims were filed")
    expect(page.locator("#claims-insurers tbody tr")).to_have_count(1)
    insurer = page.locator(f'#claims-insurers tr[data-insurer="{ids["insurer"].address}"] td')
    assert [insurer.nth(i).inner_text() for i in range(1, 6)] == ["4", "1", "2", "1", "1"]
    theirs = page.locator(f'#claims-pharmacies tr[data-pharmacy="{ids["pharmacy2"].address}"] td')
    assert [theirs.nth(i).inner_text() for i in range(1, 8)] == ["4", "2", "1", "0", "0", "1", "1"]
    mine = page.locator(f'#claims-pharmacies tr[data-pharmacy="{ids["pharmacy"].address}"] td')
    assert [mine.nth(i).inner_text() for i in range(1, 8)] == ["3", "2", "0", "2", "1", "0", "0"]
    rows = page.locator("#claims-table tbody tr")
    expect(rows).to_have_count(5)
    assert [rows.nth(i).get_attribute("data-id") for i in range(5)] == [r["id"] for r in claims["rows"]]
    by_status = {r["status"]: r for r in claims["rows"]}
    assert set(by_status) == {"filed", "approved", "paid", "rejected", "void"}
    paid, rejected = by_status["paid"], by_status["rejected"]
    expect(page.locator(f'#claims-table tr[data-id="{paid["id"]}"] td').nth(7)).to_have_text("payment PAY-2026-0001")
    expect(page.locator(f'#claims-table tr[data-id="{rejected["id"]}"] td').nth(7)).to_have_text("reason code 3")
    expect(page.locator(f'#claims-table tr[data-id="{rejected["id"]}"] td').nth(4)).to_have_text("rejected")
    expect(page.locator('#claims-table tr[data-status="void"] td').nth(4)).to_have_text("fill voided by the regulator")

    page.locator("#alarms").scroll_into_view_if_needed()
    assert console_page.figure("alarms-duplicates") == "2"
    assert console_page.figure("alarms-cloned") == "1"
    assert console_page.figure("alarms-recalled") == "1"
    expect(page.locator('[data-figure="alarms-recalled"] .sub')).to_have_text("of 3 lots registered")
    scans = page.locator("#alarms-table tbody tr")
    expect(scans).to_have_count(2)
    newest = alarms["rows"][0]
    assert newest["pharmacy"] == ids["pharmacy2"].address and newest["firstSale"]["pharmacy"] == ids["pharmacy"].address
    assert scans.first.get_attribute("data-index") == str(newest["index"])
    cells = scans.first.locator("td")
    expect(cells.nth(1).locator(".addr")).to_have_attribute("title", newest["pharmacy"])
    expect(cells.nth(1)).to_contain_text("pharmacy2")
    expect(cells.nth(4).locator("a")).to_have_attribute("href", f"#rx={newest['firstSale']['id']}")
    expect(cells.nth(5).locator(".addr")).to_have_attribute("title", newest["firstSale"]["pharmacy"])
    expect(page.locator("#alarms-days tbody tr")).to_have_count(2)
    expect(page.locator("#alarms-pharmacies tbody tr")).to_have_count(2)
    cloned = page.locator("#cloned-table tbody tr")
    expect(cloned).to_have_count(2)
    assert [cloned.nth(i).get_attribute("data-id") for i in range(2)] == [f["id"] for f in alarms["cloned"][0]["fills"]]
    recalled = alarms["recalled"][0]
    assert recalled["manufacturer"] == ids["manufacturer"].address
    expect(page.locator(f'#recalled-table tr[data-lot="{recalled["root"]}"] td').nth(2)).to_have_text("4")
    console_page.screenshot("03-claims-and-alarms")

    # the first sale's link opens its trail
    cells.nth(4).locator("a").click()
    expect(page.locator("#trail-record")).to_contain_text(newest["firstSale"]["id"])
    console_page.assert_clean()
