"""The patient's app's part of the web application (:mod:`rxchain.web.server`): the page that keeps
the claim key on the patient's phone, encrypted with the patient's PIN, and shows the pharmacy the
patient's consent (RXA1) and the deliverer the patient's receipt (RXR1) — never the key. How it
works: docs/patient-app.md.

What it serves under its prefix (``/patient/``; nothing else):

    /                       patient/index.html
    /app.js, /style.css, /sw.js, /favicon.svg     the page's own files (patient/)
    /rxcore.js, /handover.js, /qrcodes.js         the formats and QR drawing, shared with the pharmacy dApp (dapp/)
    /dapp.css               the dApp's stylesheet (patient/style.css only narrows it to a phone)
    /vendor/ethers.min.js, /vendor/jsQR.js, /vendor/pako.esm.mjs, /vendor/qrcode.mjs   as the dApp's
    /boxes.js, /boxcheck.js                       the box formats and the "Check a box" section (dapp/)
    /config.json            {network, chainId, registry, rpcUrl, deployBlock, abi, boxes?, boxesAbi?}
    /api/lots/locate?leaf=, /api/lots/0xROOT       the public lot files, as the dApp's (:mod:`rxchain.web.lots`)
    /rpc                    POST: JSON-RPC relayed to the node, reads only (the patient's app sends
                            nothing: the pharmacy and the courier send what the patient signed)

No sign-in: the patient is not a member of the consortium, and the page reads only public state (a
prescription's record, a member's record, the head's time). ``sw.js`` keeps the page's files for use
offline once loaded (its scope is the prefix).
"""

from __future__ import annotations

import json
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rxchain.chain.deployment import Deployment
from rxchain.paths import project_root
from rxchain.web.lots import LotIndex, default_lots_dir, lot_routes
from rxchain.web.dapp import (
    RPC_METHODS,
    SEND_METHODS,
    DappConfig,
    Relay,
    _content_security_policy,
    build_config,
    dapp_dir,
    vendor_files,
)
from rxchain.web.server import PageFiles, Part, PartServer, SecurityHeaders, build_app

__all__ = ["PATIENT_RPC_METHODS", "make_patient_server", "patient_dir", "patient_part"]

#: What the patient's page may ask the node: the dApp's reads, never a send.
PATIENT_RPC_METHODS = frozenset(RPC_METHODS - SEND_METHODS)


def patient_dir() -> Path:
    """The page's files."""
    return project_root() / "patient"


def shared_files() -> dict[str, Path]:
    """The dApp's files the patient's page imports (the formats both sides must read alike)."""
    names = ("rxcore.js", "handover.js", "qrcodes.js", "boxes.js", "boxcheck.js", "favicon.svg")
    shared = {name: dapp_dir() / name for name in names}
    return {**shared, "dapp.css": dapp_dir() / "style.css"}  # the counter's look; patient/style.css narrows it


def patient_part(
    config: DappConfig,
    *,
    static_dir: Path | None = None,
    vendor: dict[str, Path] | None = None,
    prefix: str = "/patient",
    lots: LotIndex | None = None,
) -> Part:
    """The patient's app as a part of the web application: its page, /config.json, a read-only relay and the
    public lot files (``lots``; default .rxchain/lots)."""
    files = PageFiles("patient's app", static_dir or patient_dir(), vendor or vendor_files(), shared_files())
    lots = lots or LotIndex(default_lots_dir())
    index = files.static_dir / "index.html"
    relay = Relay(config.node_url, None, PATIENT_RPC_METHODS)
    data = config.as_json()
    config_body = json.dumps(
        {
            key: data[key]
            for key in ("network", "chainId", "registry", "rpcUrl", "deployBlock", "abi", "boxes", "boxesAbi")
            if key in data
        }
    ).encode()

    async def config_json(request: Request) -> Response:
        return Response(config_body, media_type="application/json")

    app = Starlette(
        routes=[
            Route("/config.json", config_json, methods=["GET"]),
            Route("/rpc", relay.endpoint, methods=["POST"]),
            *lot_routes(lots),
            *files.routes(),
        ]
    )
    return Part("patient", prefix, SecurityHeaders(app, _content_security_policy(index)), start=lots.refresh)


def make_patient_server(
    host: str = "127.0.0.1",
    port: int = 8600,
    network: str = "devnet",
    rpc_url: str | None = None,
    *,
    deployment: Deployment | None = None,
    lots_dir: str | Path | None = None,
) -> PartServer:
    """A server of the patient's app alone (port 0 picks a free port); its ``url`` is the page."""
    config = build_config(network, rpc_url, deployment=deployment)
    part = patient_part(config, lots=LotIndex(lots_dir or default_lots_dir()))
    return PartServer(build_app([part]), part, host, port)
