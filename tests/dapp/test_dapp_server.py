"""The dApp server (rxchain.web.dapp): what it serves, what it refuses, and when it hands out development keys."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.error
import urllib.request

import pytest

from rxchain.web.dapp import DEV_CHAIN_IDS, RPC_METHODS, build_config, make_server
from rxchain.chain.deployment import Deployment, load_abi
from rxchain.paths import project_root


def get(server, path: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(server.url.rstrip("/") + path, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def rpc(server, payload) -> object:
    request = urllib.request.Request(
        server.url + "rpc",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return json.loads(response.read())


def other_deployment(deployment: Deployment, network: str, chain_id: int) -> Deployment:
    return deployment.model_copy(update={"network": network, "chain_id": chain_id})


def test_config_comes_from_the_build_and_the_deployment(dapp_server, deployment, ids, rpc_url):
    status, headers, body = get(dapp_server, "/config.json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    config = json.loads(body)
    assert config["abi"] == load_abi()  # the build manifest's PrescriptionRegistry ABI, never a copy
    assert config["registry"] == deployment.registry
    assert config["chainId"] == deployment.chain_id
    assert config["deployBlock"] == deployment.deploy_block
    assert config["rpcUrl"] == "rpc"  # relative to the page
    assert config["signIn"] is True  # the relay sends only for a signed-in pharmacy
    assert config["nodeUrl"] == rpc_url
    assert config["chainId"] in DEV_CHAIN_IDS
    assert config["devKeys"]["pharmacy"] == "0x" + bytes(ids["pharmacy"].key).hex()
    assert set(config["devKeys"]) == set(ids)


@pytest.mark.parametrize(
    ("network", "chain_id", "dev"),
    [
        ("devnet", 31338, True),
        ("local", 31337, True),
        ("local", 1337, True),
        ("besu", 272461, False),
        ("devnet", 272461, False),
        ("besu", 31338, False),
    ],
)
def test_development_keys_only_for_a_development_chain(deployment, network, chain_id, dev):
    config = build_config(deployment=other_deployment(deployment, network, chain_id)).as_json()
    assert ("devKeys" in config) is dev


def test_static_files_vendor_libraries_and_nothing_else(dapp_server):
    status, headers, body = get(dapp_server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    policy = headers["Content-Security-Policy"]
    assert "connect-src 'self'" in policy and "default-src 'none'" in policy
    import_map = re.search(r'<script type="importmap">(.*?)</script>', body.decode(), re.DOTALL).group(1)
    digest = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in policy

    for path in (
        "/app.js",
        "/rxcore.js",
        "/handover.js",
        "/qrcodes.js",
        "/boxes.js",
        "/boxstep.js",
        "/boxcheck.js",
        "/dom.js",
        "/style.css",
        "/favicon.svg",
        "/vendor/ethers.min.js",
        "/vendor/jsQR.js",
        "/vendor/pako.esm.mjs",
        "/vendor/qrcode.mjs",
    ):
        status, headers, body = get(dapp_server, path)
        assert status == 200 and body, path
    assert (
        get(dapp_server, "/vendor/ethers.min.js")[2]
        == (project_root() / "node_modules/ethers/dist/ethers.min.js").read_bytes()
    )

    for path in (
        "/package.json",
        "/third-party-redeem.mjs",
        "/../pyproject.toml",
        "/%2e%2e/pyproject.toml",
        "/vendor/../app.js",
        "/vendor/ethers.js",
        "/.build/__local__.json",
        "/deployments/devnet.json",
        "/rpc",
        "/nope.html",
        "/api/summary",
    ):
        assert get(dapp_server, path)[0] == 404, path


def test_rpc_relay_forwards_only_what_a_page_needs(dapp_server, deployment):
    answer = rpc(dapp_server, {"jsonrpc": "2.0", "id": 7, "method": "eth_chainId", "params": []})
    assert answer == {"jsonrpc": "2.0", "id": 7, "result": hex(deployment.chain_id)}

    for method in (
        "evm_increaseTime",
        "anvil_setBalance",
        "eth_sendTransaction",
        "eth_accounts",
        "debug_traceTransaction",
        "admin_peers",
    ):
        assert method not in RPC_METHODS
        answer = rpc(dapp_server, {"jsonrpc": "2.0", "id": 1, "method": method, "params": []})
        assert answer["error"]["code"] == -32601, method

    batch = rpc(
        dapp_server,
        [
            {"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []},
            {"jsonrpc": "2.0", "id": 2, "method": "eth_chainId", "params": []},
            {"jsonrpc": "2.0", "id": "three", "method": "eth_blockNumber", "params": []},
        ],
    )
    assert [item["id"] for item in batch] == [1, 2, "three"]
    assert batch[0]["error"]["code"] == -32601
    assert batch[1]["result"] == hex(deployment.chain_id)
    assert int(batch[2]["result"], 16) >= deployment.deploy_block

    request = urllib.request.Request(
        dapp_server.url + "rpc", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read())["error"]["code"] == -32700


def test_node_down_is_a_json_rpc_error_not_a_crash(deployment):
    with make_server("127.0.0.1", 0, deployment=deployment, rpc_url="http://127.0.0.1:9") as server:
        answer = rpc(server, {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
        assert answer["error"]["message"] == "the chain's node does not answer"
        assert get(server, "/")[0] == 200


def test_missing_page_files_or_npm_libraries_are_named_before_serving(deployment, rpc_url, tmp_path):
    from rxchain.errors import BuildNotFound
    from rxchain.indexer.db import Database
    from rxchain.web.console import Console, console_part
    from rxchain.web.dapp import dapp_part

    config = build_config("local", rpc_url, deployment=deployment)
    with pytest.raises(BuildNotFound, match=r"dApp's libraries are not installed .*ethers\.min\.js.*run `npm ci`"):
        dapp_part(config, vendor={"ethers.min.js": tmp_path / "node_modules" / "ethers.min.js"})
    with pytest.raises(BuildNotFound, match=r"dApp's page is missing"):
        dapp_part(config, static_dir=tmp_path)
    with pytest.raises(BuildNotFound, match=r"console's libraries are not installed .*chart\.umd\.min\.js"):
        console_part(
            Console(Database(tmp_path / "index.sqlite")), vendor={"chart.umd.min.js": tmp_path / "chart.umd.min.js"}
        )


def test_keep_alive_answers_do_not_wait_for_delayed_acks(dapp_server):
    """The server's socket is TCP to asyncio, so answers go out at once (TCP_NODELAY): without it every
    answer on a kept-alive connection waits about 40 ms for the client's delayed ACK."""
    import socket
    import statistics
    import time

    import requests

    assert dapp_server.socket.proto == socket.IPPROTO_TCP
    with requests.Session() as http:
        http.get(dapp_server.url + "favicon.svg", timeout=10)
        times = []
        for _ in range(15):
            start = time.perf_counter()
            assert http.get(dapp_server.url + "favicon.svg", timeout=10).status_code == 200
            times.append(time.perf_counter() - start)
    assert statistics.median(times) < 0.030, (
        f"median {statistics.median(times) * 1000:.1f} ms on a kept-alive connection"
    )
