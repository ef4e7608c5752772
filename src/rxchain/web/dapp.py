"""The pharmacy dApp's local web server: the page, its two vendored libraries, its configuration and
a narrow JSON-RPC relay to the chain's node.

What it serves (nothing else):

    /                       dapp/index.html
    /app.js, /rxcore.js, /style.css, /favicon.svg    the page's own files (dapp/)
    /vendor/ethers.min.js   ethers' ESM build, from node_modules (npm ci; no CDN)
    /vendor/jsQR.js         jsQR, from node_modules (reads QR codes from uploaded pictures)
    /config.json            {network, chainId, registry, rpcUrl, nodeUrl, deployBlock, abi, devKeys?}
    /rpc                    POST: JSON-RPC relayed to the node, read and send methods only

The ABI comes from the build manifest (``.build/__local__.json``) and the address, chain id and deploy
block from the deployment record (``deployments/<network>.json``): never a hand-copied ABI.
``rpcUrl`` is ``/rpc`` (same origin, so a Besu node needs no CORS setting); ``nodeUrl`` is the node
itself. ``devKeys`` (development identity -> private key, from the public development mnemonic) is
present only for the devnet or an ephemeral local chain on a development chain id: never for a
consortium network.

The relay forwards only the methods a pharmacy page needs (``RPC_METHODS``): a page cannot reach a
node's admin, debug or test-control methods through it.

Use :func:`make_server` to get a server object (port 0 picks a free port; ``start()`` serves from a
daemon thread, ``stop()`` ends it), or :func:`serve` to run one in the foreground until Ctrl-C.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable

from rxchain.chain.deployment import Deployment, load_abi, load_deployment
from rxchain.paths import project_root
from rxchain.web.server import PageHandler, PageServer, content_security_policy
from rxchain.errors import InvalidValue

__all__ = [
    "DEV_CHAIN_IDS",
    "DEV_NETWORKS",
    "RPC_METHODS",
    "DappConfig",
    "DappServer",
    "build_config",
    "make_server",
    "serve",
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

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "network": self.network,
            "chainId": self.chain_id,
            "registry": self.registry,
            "rpcUrl": "/rpc",
            "nodeUrl": self.node_url,
            "deployBlock": self.deploy_block,
            "abi": self.abi,
        }
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
    )


def _dev_keys() -> dict[str, str]:
    """Development identity name -> private key (public development mnemonic; devnet only)."""
    from rxchain.chain.signers import dev_accounts

    return {name: "0x" + bytes(account.key).hex() for name, account in dev_accounts().items()}


class DappServer(PageServer):
    """The dApp's HTTP server. ``start()`` serves from a daemon thread; ``stop()`` ends it."""

    page_name = "dApp"

    def __init__(
        self,
        address: tuple[str, int],
        config: DappConfig,
        *,
        static_dir: Path | None = None,
        vendor: dict[str, Path] | None = None,
        log: Callable[[str], None] | None = None,
    ):
        self.config = config
        self.config_body = json.dumps(config.as_json()).encode()
        static_dir = (static_dir or dapp_dir()).resolve()
        index = static_dir / "index.html"
        csp = _content_security_policy(index) if index.is_file() else content_security_policy()
        super().__init__(address, _Handler, static_dir=static_dir, vendor=vendor or vendor_files(), csp=csp, log=log)


def make_server(
    host: str = "127.0.0.1",
    port: int = 8600,
    network: str = "devnet",
    rpc_url: str | None = None,
    *,
    deployment: Deployment | None = None,
    log: Callable[[str], None] | None = None,
) -> DappServer:
    """A dApp server for ``network``'s recorded deployment (or ``deployment``), not yet serving.

    ``port`` 0 picks a free port (see ``server.url``). Call ``start()`` (or use it as a context
    manager) to serve from a background thread.
    """
    return DappServer((host, port), build_config(network, rpc_url, deployment=deployment), log=log)


def serve(
    host: str = "127.0.0.1",
    port: int = 8600,
    network: str = "devnet",
    rpc_url: str | None = None,
    *,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serves the dApp in the foreground until interrupted (Ctrl-C). ``ready`` gets the page's URL."""
    server = make_server(host, port, network, rpc_url, log=None)
    try:
        (ready or (lambda url: print(f"rxchain pharmacy dApp on {url} (Ctrl-C to stop)", flush=True)))(server.url)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _content_security_policy(index: Path) -> str:
    """Same-origin everything; the page's one inline script (its import map) allowed by its hash;
    uploaded QR pictures shown from blob: URLs."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(match.group(1).encode()).digest()).decode() + "'"
        for match in _IMPORT_MAP.finditer(index.read_text(encoding="utf-8"))
    ]
    return content_security_policy(script_src=" ".join(["'self'", *hashes]), img_src="'self' data: blob:")


class _Handler(PageHandler):
    server: DappServer
    server_version = "rxchain-dapp"
    allowed_methods = "GET, POST"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        if path == "/config.json":
            self.send(HTTPStatus.OK, "application/json", self.server.config_body)
        else:
            self.serve_file(path)

    # ----------------------------------------------------------------------------------- POST

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/rpc":
            self.not_found()
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_RPC_BODY:
            self.send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "text/plain", b"request too large")
            return
        body = self.rfile.read(length)
        try:
            request = json.loads(body)
        except ValueError:
            self._json(_rpc_error(None, -32700, "parse error"))
            return
        batch = isinstance(request, list)
        calls = request if batch else [request]
        if not calls or not all(isinstance(call, dict) for call in calls):
            self._json(_rpc_error(None, -32600, "invalid request"))
            return
        refused = {
            i: _rpc_error(call.get("id"), -32601, f"method {call.get('method')!r} is not available through the dApp server")
            for i, call in enumerate(calls)
            if call.get("method") not in RPC_METHODS
        }
        allowed = [call for i, call in enumerate(calls) if i not in refused]
        answers: list[Any] = []
        if allowed:
            upstream = self._forward(allowed if batch else allowed[0])
            if upstream is None:
                answers = [_rpc_error(call.get("id"), -32603, "the chain's node does not answer") for call in allowed]
            else:
                answers = upstream if isinstance(upstream, list) else [upstream]
        by_id = {json.dumps(answer.get("id")): answer for answer in answers if isinstance(answer, dict)}
        merged = [refused.get(i) or by_id.get(json.dumps(call.get("id"))) for i, call in enumerate(calls)]
        merged = [answer for answer in merged if answer is not None]
        if not merged:
            self._json(_rpc_error(None, -32603, "the chain's node gave no answer"))
        else:
            self._json(merged if batch else merged[0])

    def _forward(self, payload: Any) -> Any:
        request = urllib.request.Request(
            self.server.config.node_url,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (configured node URL)
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:  # a node answers JSON-RPC errors with a JSON body, often 200
            try:
                return json.loads(exc.read())
            except ValueError:
                return None
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def _json(self, data: Any) -> None:
        self.json(data)


def _rpc_error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
