"""The patient's app's part (rxchain.web.patient): what it serves, that its relay only reads, and that
``rx serve --patient`` mounts it beside the others."""

from __future__ import annotations

import base64
import hashlib
import json
import re

from rxchain.web.service import ServeOptions, build

from .test_dapp_server import get, rpc


def test_page_shared_formats_vendor_files_and_nothing_else(patient_server, deployment):
    status, headers, body = get(patient_server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
    import_map = re.search(r'<script type="importmap">(.*?)</script>', body.decode(), re.DOTALL).group(1)
    digest = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in policy
    assert "<script>" not in body.decode()  # no inline script but the import map

    for path in (
        "/app.js",
        "/style.css",
        "/dapp.css",
        "/sw.js",
        "/rxcore.js",
        "/handover.js",
        "/qrcodes.js",
        "/boxes.js",
        "/boxcheck.js",
        "/favicon.svg",
        "/vendor/ethers.min.js",
        "/vendor/jsQR.js",
        "/vendor/pako.esm.mjs",
        "/vendor/qrcode.mjs",
    ):
        status, headers, body = get(patient_server, path)
        assert status == 200 and body, path
    assert get(patient_server, "/sw.js")[1]["Content-Type"].startswith("text/javascript")
    for path in (
        "/third-party-redeem.mjs",
        "/signin.js",
        "/package.json",
        "/../dapp/app.js",
        "/vendor/../app.js",
        "/index.js",
        "/boxstep.js",  # the pharmacy's boxes step is the dApp's alone
    ):
        assert get(patient_server, path)[0] == 404, path

    config = json.loads(get(patient_server, "/config.json")[2])
    assert set(config) == {
        "network",
        "chainId",
        "registry",
        "rpcUrl",
        "deployBlock",
        "abi",
        "boxes",
        "boxesAbi",
    }  # no development keys on the patient's phone; DrugBoxes for the box check
    assert config["registry"] == deployment.registry and config["rpcUrl"] == "rpc"
    assert config["boxes"] == deployment.boxes


def test_the_relay_only_reads(patient_server, deployment):
    assert rpc(patient_server, {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})["result"] == hex(
        deployment.chain_id
    )
    for method in ("eth_sendRawTransaction", "eth_sendTransaction", "evm_mine", "anvil_setBalance"):
        answer = rpc(patient_server, {"jsonrpc": "2.0", "id": 1, "method": method, "params": ["0x00"]})
        assert answer["error"]["code"] == -32601, method


def test_rx_serve_mounts_the_patient_app_when_asked(deployment, rpc_url, tmp_path, monkeypatch):
    import rxchain.chain.deployment as records

    monkeypatch.setattr(records, "load_deployment", lambda network: deployment)
    options = ServeOptions(network="local", dapp=True, console=False, patient=True, rpc_url=rpc_url, sign_in=False)
    app, parts = build(options)
    assert [part.name for part in parts] == ["dapp", "patient"]
    assert [part.prefix for part in parts] == ["/dapp", "/patient"]
    alone, parts = build(
        ServeOptions(network="local", dapp=False, console=False, patient=True, rpc_url=rpc_url, sign_in=False)
    )
    assert [part.name for part in parts] == ["patient"]
