"""The pharmacy dApp's part of the web application (:mod:`rxchain.web.server`): the page, its two
vendored libraries, its configuration and a narrow JSON-RPC relay to the chain's node.

What it serves under its prefix (``/dapp/``; nothing else):

    /                       dapp/index.html
    /app.js, /rxcore.js, /signin.js, /boxes.js, /boxstep.js, /boxcheck.js, /dom.js, /style.css, /favicon.svg
                            the page's own files (dapp/)
    /vendor/ethers.min.js   ethers' ESM build, from node_modules (npm ci; no CDN)
    /vendor/jsQR.js         jsQR, from node_modules (reads QR codes from uploaded pictures)
    /vendor/pako.esm.mjs    pako (zlib at level 9: the hand-over codes the page writes, as Python writes them)
    /vendor/qrcode.mjs      qrcode-generator (draws the consent and delivery requests as QR codes)
    /config.json            {network, chainId, registry, rpcUrl, nodeUrl, deployBlock, abi, boxes?, boxesAbi?,
                            devKeys?, signIn}
    /rpc                    POST: JSON-RPC relayed to the node, read and send methods only; a send
                            (eth_sendRawTransaction) only from a signed-in pharmacy when sign-in is on
    /api/lots/locate?leaf=  where a box's leaf is in the public lot files ({lot, index, proof}; 404 if none)
    /api/lots/0xROOT        a public lot file (:mod:`rxchain.web.lots`; default folder .rxchain/lots)

The ABI comes from the build manifest (``.build/__local__.json``) and the address, chain id and deploy
block from the deployment record (``deployments/<network>.json``): never a hand-copied ABI.
``rpcUrl`` is ``rpc``, relative to the page (same origin, so a Besu node needs no CORS setting); ``nodeUrl`` is the node
itself. ``devKeys`` (development identity -> private key, from the public development mnemonic) is
present only for the devnet or an ephemeral local chain on a development chain id: never for a
consortium network.

The relay forwards only the methods a pharmacy page needs (``RPC_METHODS``): a page cannot reach a
node's admin, debug or test-control methods through it.

:func:`dapp_part` is the part for ``rx serve``; :func:`make_server` a server of the dApp alone (port 0
picks a free port; ``start()`` serves from a daemon thread, ``stop()`` ends it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rxchain.chain.deployment import BOXES_CONTRACT, Deployment, load_abi, load_deployment
from rxchain.errors import InvalidValue
from rxchain.paths import project_root
from rxchain.web.lots import LotIndex, default_lots_dir, lot_routes
from rxchain.web.server import (
    PageFiles,
    Part,
    PartServer,
    SecurityHeaders,
    build_app,
    content_security_policy,
    json_response,
)

if TYPE_CHECKING:
    from rxchain.web.auth import Auth

__all__ = [
    "DEV_CHAIN_IDS",
    "DEV_NETWORKS",
    "RPC_METHODS",
    "SEND_METHODS",
    "DappConfig",
    "Relay",
    "build_config",
    "dapp_part",
    "make_server",
]

#: Chain ids on which development keys are ever served: the devnet, and anvil's/ganache's defaults.
DEV_CHAIN_IDS = frozenset({31338, 31337, 1337})

#: Networks whose deployment may get development keys (the devnet, and ape's ephemeral chain).
DEV_NETWORKS = frozenset({"devnet", "local"})

#: JSON-RPC methods the relay forwards.
RPC_METHODS = frozenset(
    {
        "eth_chainId",
        "net_version",
        "eth_blockNumber",
        "eth_getBlockByNumber",
        "eth_getBlockByHash",
        "eth_call",
        "eth_estimateGas",
        "eth_getLogs",
        "eth_getCode",
        "eth_getBalance",
        "eth_gasPrice",
        "eth_maxPriorityFeePerGas",
        "eth_feeHistory",
        "eth_getTransactionCount",
        "eth_getTransactionByHash",
        "eth_getTransactionReceipt",
        "eth_sendRawTransaction",
    }
)

#: The relay's methods that change the chain: only a signed-in pharmacy's go through.
SEND_METHODS = frozenset({"eth_sendRawTransaction"})

#: The JSON-RPC error code of a send refused for want of a signed-in pharmacy.
NOT_SIGNED_IN_CODE = -32001

#: Largest JSON-RPC request body the relay accepts.
MAX_RPC_BODY = 256 * 1024

_IMPORT_MAP = re.compile(r'<script type="importmap">(.*?)</script>', re.DOTALL)


def dapp_dir() -> Path:
    """The page's files."""
    return project_root() / "dapp"


def vendor_files(root: Path | None = None) -> dict[str, Path]:
    """URL name under /vendor/ -> the npm package file served there."""
    modules = (root or project_root()) / "node_modules"
    return {
        "ethers.min.js": modules / "ethers" / "dist" / "ethers.min.js",
        "jsQR.js": modules / "jsqr" / "dist" / "jsQR.js",
        "pako.esm.mjs": modules / "pako" / "dist" / "pako.esm.mjs",
        "qrcode.mjs": modules / "qrcode-generator" / "dist" / "qrcode.mjs",
    }


@dataclass(frozen=True)
class DappConfig:
    """What the page is told at /config.json."""

    network: str
    chain_id: int
    registry: str
    node_url: str
    deploy_block: int
    abi: list[dict]
    dev_keys: dict[str, str] | None = field(default=None, repr=False)
    #: DrugBoxes beside the registry (boxes and insurance claims), when deployed, and its ABI.
    boxes: str | None = None
    boxes_abi: list[dict] | None = field(default=None, repr=False)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "network": self.network,
            "chainId": self.chain_id,
            "registry": self.registry,
            "rpcUrl": "rpc",
            "nodeUrl": self.node_url,
            "deployBlock": self.deploy_block,
            "abi": self.abi,
        }
        if self.boxes:
            data["boxes"] = self.boxes
            data["boxesAbi"] = self.boxes_abi
        if self.dev_keys:
            data["devKeys"] = dict(self.dev_keys)
        return data


def build_config(
    network: str = "devnet",
    rpc_url: str | None = None,
    *,
    deployment: Deployment | None = None,
    manifest: Path | None = None,
) -> DappConfig:
    """The page's configuration for ``network`` (or for an explicit ``deployment``).

    Raises :class:`~rxchain.errors.DeploymentNotFound` / :class:`~rxchain.errors.BuildNotFound` when
    the record or the build is missing, ``ValueError`` when no node URL is known.
    """
    deployment = deployment or load_deployment(network)
    node_url = rpc_url or deployment.rpc_url
    if not node_url:
        raise InvalidValue(f"no RPC URL recorded for network {deployment.network!r}: pass rpc_url")
    dev = deployment.network in DEV_NETWORKS and deployment.chain_id in DEV_CHAIN_IDS
    return DappConfig(
        network=deployment.network,
        chain_id=deployment.chain_id,
        registry=deployment.registry,
        node_url=node_url,
        deploy_block=deployment.deploy_block,
        abi=load_abi(manifest=manifest),
        dev_keys=_dev_keys() if dev else None,
        boxes=deployment.boxes,
        boxes_abi=load_abi(BOXES_CONTRACT, manifest=manifest) if deployment.boxes else None,
    )


def _dev_keys() -> dict[str, str]:
    """Development identity name -> private key (public development mnemonic; devnet only)."""
    from rxchain.chain.signers import dev_accounts

    return {name: "0x" + bytes(account.key).hex() for name, account in dev_accounts().items()}


def dapp_part(
    config: DappConfig,
    *,
    auth: "Auth | None" = None,
    static_dir: Path | None = None,
    vendor: dict[str, Path] | None = None,
    prefix: str = "/dapp",
    lots: LotIndex | None = None,
) -> Part:
    """The dApp as a part of the web application: its page, /config.json, the /rpc relay and the public
    lot files (``lots``; default: the folder ``rx box register`` writes, .rxchain/lots).

    With ``auth``, the relay forwards a transaction (``eth_sendRawTransaction``) only for a signed-in
    pharmacy in good standing; reads stay open to the page."""
    files = PageFiles("dApp", (static_dir or dapp_dir()), vendor or vendor_files())
    lots = lots or LotIndex(default_lots_dir())
    index = files.static_dir / "index.html"
    relay = Relay(config.node_url, auth)
    config_body = json.dumps({**config.as_json(), "signIn": auth is not None}).encode()

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
    # the lot files are indexed when the server starts (a malformed one is logged then), and again as they change
    return Part("dapp", prefix, SecurityHeaders(app, _content_security_policy(index)), start=lots.refresh)


def make_server(
    host: str = "127.0.0.1",
    port: int = 8600,
    network: str = "devnet",
    rpc_url: str | None = None,
    *,
    deployment: Deployment | None = None,
    auth: "Auth | None" = None,
    static_dir: Path | None = None,
    vendor: dict[str, Path] | None = None,
    lots_dir: str | Path | None = None,
) -> PartServer:
    """A server of the dApp alone for ``network``'s recorded deployment (or ``deployment``), not yet
    serving; its ``url`` is the page. ``port`` 0 picks a free port. ``start()`` (or a ``with`` block)
    serves from a background thread. ``lots_dir``: the public lot files (default .rxchain/lots)."""
    config = build_config(network, rpc_url, deployment=deployment)
    lots = LotIndex(lots_dir or default_lots_dir())
    part = dapp_part(config, auth=auth, static_dir=static_dir, vendor=vendor, lots=lots)
    return PartServer(build_app([part], auth=auth), part, host, port)


def _content_security_policy(index: Path) -> str:
    """Same-origin everything; the page's one inline script (its import map) allowed by its hash;
    uploaded QR pictures shown from blob: URLs."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(match.group(1).encode()).digest()).decode() + "'"
        for match in _IMPORT_MAP.finditer(index.read_text(encoding="utf-8"))
    ]
    return content_security_policy(script_src=" ".join(["'self'", *hashes]), img_src="'self' data: blob:")


class Relay:
    """The narrow JSON-RPC relay: the methods in ``methods`` (default ``RPC_METHODS``) go to the node,
    everything else is answered with "method not available"; with sign-in on, a send needs a signed-in
    pharmacy."""

    def __init__(self, node_url: str, auth: "Auth | None" = None, methods: frozenset[str] = RPC_METHODS):
        self.node_url = node_url
        self.auth = auth
        self.methods = methods

    async def endpoint(self, request: Request) -> Response:
        length = request.headers.get("content-length")
        if length is None or not length.isdigit() or not 0 < int(length) <= MAX_RPC_BODY:
            return Response("request too large (or of no stated length)", status_code=413, media_type="text/plain")
        body = await request.body()
        if len(body) > MAX_RPC_BODY:
            return Response("request too large", status_code=413, media_type="text/plain")
        try:
            payload = json.loads(body)
        except ValueError:
            return json_response(_rpc_error(None, -32700, "parse error"))
        batch = isinstance(payload, list)
        calls = payload if batch else [payload]
        if not calls or not all(isinstance(call, dict) for call in calls):
            return json_response(_rpc_error(None, -32600, "invalid request"))
        refused = {
            i: _rpc_error(call.get("id"), -32601, f"method {call.get('method')!r} is not available through this server")
            for i, call in enumerate(calls)
            if call.get("method") not in self.methods
        }
        if self.auth is not None and any(
            call.get("method") in SEND_METHODS for i, call in enumerate(calls) if i not in refused
        ):
            why = await self.auth.refuse_send(request)
            if why is not None:
                refused.update(
                    {
                        i: _rpc_error(call.get("id"), NOT_SIGNED_IN_CODE, why)
                        for i, call in enumerate(calls)
                        if call.get("method") in SEND_METHODS
                    }
                )
        allowed = [call for i, call in enumerate(calls) if i not in refused]
        answers: list[Any] = []
        if allowed:
            upstream = await anyio.to_thread.run_sync(self._forward, allowed if batch else allowed[0])
            if upstream is None:
                answers = [_rpc_error(call.get("id"), -32603, "the chain's node does not answer") for call in allowed]
            else:
                answers = upstream if isinstance(upstream, list) else [upstream]
        by_id = {json.dumps(answer.get("id")): answer for answer in answers if isinstance(answer, dict)}
        merged = [refused.get(i) or by_id.get(json.dumps(call.get("id"))) for i, call in enumerate(calls)]
        merged = [answer for answer in merged if answer is not None]
        if not merged:
            return json_response(_rpc_error(None, -32603, "the chain's node gave no answer"))
        return json_response(merged if batch else merged[0])

    def _forward(self, payload: Any) -> Any:
        request = urllib.request.Request(
            self.node_url,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # the configured node's URL
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:  # a node answers JSON-RPC errors with a JSON body, often 200
            try:
                return json.loads(exc.read())
            except ValueError:
                return None
        except (urllib.error.URLError, OSError, ValueError):
            return None


def _rpc_error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
