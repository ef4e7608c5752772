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
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from rxchain.deployment import Deployment, load_abi, load_deployment
from rxchain.errors import BuildNotFound
from rxchain.paths import project_root

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

_STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_STATIC_NAME = re.compile(r"[A-Za-z0-9_-]+\.(html|js|css|svg|png)")
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
        raise ValueError(f"no RPC URL recorded for network {deployment.network!r}: pass rpc_url")
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
    from rxchain.identities import dev_accounts

    return {name: "0x" + bytes(account.key).hex() for name, account in dev_accounts().items()}


class DappServer(ThreadingHTTPServer):
    """The dApp's HTTP server. ``start()`` serves from a daemon thread; ``stop()`` ends it."""

    daemon_threads = True
    allow_reuse_address = True

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
        self.static_dir = (static_dir or dapp_dir()).resolve()
        self.vendor = vendor or vendor_files()
        missing = [str(path) for path in self.vendor.values() if not path.is_file()]
        if missing:
            raise BuildNotFound(f"the dApp's libraries are not installed ({', '.join(missing)}): run `npm ci`")
        if not (self.static_dir / "index.html").is_file():
            raise BuildNotFound(f"the dApp's page is missing ({self.static_dir / 'index.html'})")
        self.config_body = json.dumps(config.as_json()).encode()
        self.log = log
        self.content_security_policy = _content_security_policy(self.static_dir / "index.html")
        self._thread: threading.Thread | None = None
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        """The page's address."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> "DappServer":
        """Serves from a daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.serve_forever, name="rxchain-dapp", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and closes the socket."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.server_close()

    def __enter__(self) -> "DappServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
    """Same-origin everything; the page's one inline script (its import map) allowed by its hash."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(match.group(1).encode()).digest()).decode() + "'"
        for match in _IMPORT_MAP.finditer(index.read_text(encoding="utf-8"))
    ]
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self' " + " ".join(hashes),
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


class _Handler(BaseHTTPRequestHandler):
    server: DappServer
    server_version = "rxchain-dapp"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        if self.server.log is not None:
            self.server.log(f"{self.address_string()} {format % args}")

    # ------------------------------------------------------------------------------------ GET

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        if path == "/config.json":
            self._send(HTTPStatus.OK, "application/json", self.server.config_body)
        elif path.startswith("/vendor/"):
            file = self.server.vendor.get(path[len("/vendor/") :])
            if file is None:
                self._not_found()
            else:
                self._send(HTTPStatus.OK, _STATIC_TYPES[".js"], file.read_bytes(), cache=True)
        else:
            name = "index.html" if path == "/" else path.lstrip("/")
            if not _STATIC_NAME.fullmatch(name) or not (self.server.static_dir / name).is_file():
                self._not_found()
            else:
                file = self.server.static_dir / name
                self._send(HTTPStatus.OK, _STATIC_TYPES[file.suffix], file.read_bytes())

    def do_HEAD(self) -> None:  # noqa: N802
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Content-Length", "0")
        self.end_headers()

    # ----------------------------------------------------------------------------------- POST

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/rpc":
            self._not_found()
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_RPC_BODY:
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "text/plain", b"request too large")
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

    # -------------------------------------------------------------------------------- helpers

    def _json(self, data: Any) -> None:
        self._send(HTTPStatus.OK, "application/json", json.dumps(data).encode())

    def _not_found(self) -> None:
        self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found")

    def _send(self, status: HTTPStatus, content_type: str, body: bytes, *, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", self.server.content_security_policy)
        self.end_headers()
        self.wfile.write(body)


def _rpc_error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
