"""The regulator's console: a read-only web view of the index database, with charts.

The page (``console/``) reads JSON from this server; every figure comes from the index database
(:mod:`rxchain.indexer.queries`), never from the chain, and says which block it is for. The server
holds no keys and writes nothing; it can follow the chain itself (the indexer in a background thread,
``follow=True``), and with a node URL it shows any indexed transaction with its receipt at /tx/<hash>.

What it serves (nothing else; GET only):

    /                          console/index.html
    /app.js, /style.css, /favicon.svg   the page's files (console/)
    /vendor/chart.umd.min.js   Chart.js (the pinned npm package, from node_modules; no CDN)
    /api/config                chain, registry, last indexed block and hash, link format, labels, indexer state
    /api/summary               headline counts
    /api/daily                 per UTC day: issued, redeemed (fills), cancelled, expired unfilled
    /api/hospitals             per issuing hospital
    /api/pharmacies            per pharmacy (fills, deliveries, median delivery time)
    /api/delivery-times        dispatch-to-receipt histogram and percentiles
    /api/members[?days=30]     members with roles and credential end, soonest first
    /api/expired[?limit=200]   prescriptions past expiry never filled
    /api/trail/<id>            a prescription's record and trail (the same steps as ``rx trail``);
                               found: false (and why) when the index has no such prescription
    /tx/<hash>                 an indexed transaction and its receipt, read from the node (with rpc_url)

Use :func:`make_server` for a server object (port 0 picks a free port; ``start()`` serves from a
daemon thread, ``stop()`` ends it and the follower), or :func:`serve` to run in the foreground.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.parse
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable

from rxchain.errors import InvalidValue, NodeUnavailable
from rxchain.indexer import queries
from rxchain.indexer.db import ConnectionPool, Database, DatabaseError, read_meta
from rxchain.paths import project_root
from rxchain.web.server import PageHandler, PageServer, content_security_policy

__all__ = ["ConsoleServer", "Follower", "console_dir", "make_server", "serve", "vendor_files"]

DEFAULT_PORT = 8700
_TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
CONTENT_SECURITY_POLICY = content_security_policy()


def console_dir() -> Path:
    """The page's files."""
    return project_root() / "console"


def vendor_files(root: Path | None = None) -> dict[str, Path]:
    """URL name under /vendor/ -> the npm package file served there."""
    return {"chart.umd.min.js": (root or project_root()) / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"}


class Follower:
    """The indexer following the chain in a background thread, retrying after errors."""

    def __init__(self, rpc_url: str, registry: str, deploy_block: int, db_url: str, *, poll_interval: float = 2.0,
                 log: Callable[[str], None] | None = None):  # fmt: skip
        self.args = (rpc_url, registry, deploy_block, db_url)
        self.poll_interval = poll_interval
        self.log = log or (lambda message: None)
        self.stop_event = threading.Event()
        self.last_error: str | None = None
        self.last_progress: float | None = None
        self.messages: list[str] = []
        self.ready = threading.Event()  # set once the database holds an index
        self._thread: threading.Thread | None = None

    def start(self) -> "Follower":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="rxchain-console-indexer", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        from rxchain.indexer.core import Indexer

        rpc_url, registry, deploy_block, db_url = self.args
        while not self.stop_event.is_set():
            try:
                with Indexer(rpc_url, registry, deploy_block, db_url, log=self._message) as indexer:
                    self.ready.set()
                    self.last_error = None
                    indexer.run(follow=True, stop=self.stop_event, poll_interval=self.poll_interval, progress=self._progress)
            except Exception as exc:  # noqa: BLE001 - keep following: a node restart must not end the console
                self.last_error = f"{exc.__class__.__name__}: {exc}"
                self.log(f"indexer: {self.last_error} (retrying)")
                self.stop_event.wait(min(10.0, self.poll_interval * 3))

    def _progress(self, stats) -> None:
        self.last_progress = time.time()
        self.last_error = None

    def _message(self, message: str) -> None:
        self.messages = (self.messages + [message])[-20:]
        self.log(f"indexer: {message}")


class ConsoleServer(PageServer):
    """The console's HTTP server. ``start()`` serves from a daemon thread (and starts the follower);
    ``stop()`` ends both."""

    page_name = "console"

    def __init__(
        self,
        address: tuple[str, int],
        database: Database,
        *,
        rpc_url: str | None = None,
        tx_url: str | None = None,
        labels: dict[str, str] | None = None,
        follower: Follower | None = None,
        soon_days: int = queries.EXPIRING_SOON_DAYS,
        static_dir: Path | None = None,
        vendor: dict[str, Path] | None = None,
        log: Callable[[str], None] | None = None,
    ):
        self.database = database
        self.rpc_url = rpc_url
        self.tx_url = tx_url if tx_url is not None else ("/tx/{hash}" if rpc_url else None)
        if self.tx_url is not None and "{hash}" not in self.tx_url:
            raise InvalidValue(f"the transaction link format {self.tx_url!r} must contain {{hash}}")
        self.labels = dict(labels or {})
        self.follower = follower
        self.soon_days = soon_days
        super().__init__(address, _Handler, static_dir=static_dir or console_dir(), vendor=vendor or vendor_files(),
                         csp=CONTENT_SECURITY_POLICY, log=log)  # fmt: skip
        self.pool = ConnectionPool(database)

    def start(self) -> "ConsoleServer":
        if self.follower is not None:
            self.follower.start()
        return super().start()

    def stop(self) -> None:
        if self.follower is not None:
            self.follower.stop()
        super().stop()
        self.pool.close()

    # -------------------------------------------------------------------------------- answers

    def config(self, conn) -> dict:
        data: dict[str, Any] = {"txUrl": self.tx_url, "labels": self.labels, "expiringSoonDays": self.soon_days,
                                "database": self.database.kind, "node": bool(self.rpc_url)}  # fmt: skip
        data.update(queries.status(conn))
        if self.follower is not None:
            data["indexer"] = {"following": self.follower.running, "lastError": self.follower.last_error,
                               "messages": self.follower.messages[-5:]}  # fmt: skip
        else:
            data["indexer"] = None
        return data

    def transaction(self, tx_hash: str) -> dict:
        from rxchain.indexer.node import Node

        node = Node(self.rpc_url, timeout=15)
        tx, receipt = node.batch([("eth_getTransactionByHash", [tx_hash]), ("eth_getTransactionReceipt", [tx_hash])])
        block = node.header(int(receipt["blockNumber"], 16)) if receipt else None
        return {"hash": tx_hash, "transaction": tx, "receipt": receipt,
                "block": {"number": block.number, "hash": block.hash, "timestamp": block.time} if block else None}  # fmt: skip


def make_server(
    db_url: str,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    rpc_url: str | None = None,
    follow: bool = False,
    registry: str | None = None,
    deploy_block: int | None = None,
    tx_url: str | None = None,
    labels: dict[str, str] | None = None,
    poll_interval: float = 2.0,
    soon_days: int = queries.EXPIRING_SOON_DAYS,
    log: Callable[[str], None] | None = None,
) -> ConsoleServer:
    """A console server for the index in ``db_url``, not yet serving (``start()`` it).

    ``rpc_url``: the node, for /tx/<hash> and for following. ``follow``: run the indexer in a background
    thread (registry and deploy block from the database, or from ``registry``/``deploy_block`` for a
    new one). ``tx_url``: how to link a transaction, with ``{hash}`` (default /tx/{hash} with a node, else
    no link), e.g. a block explorer's ``https://explorer.example/tx/{hash}``. ``labels``: address -> name
    shown beside addresses (e.g. the development identities on the devnet).
    """
    database = Database(db_url)
    follower = None
    if follow:
        if not rpc_url:
            raise InvalidValue("following the chain needs the node's URL (rpc_url)")
        if registry is None or deploy_block is None:
            meta = {}
            if database.kind == "postgres" or Path(database.url.target).is_file():
                with database.connect() as conn:
                    meta = read_meta(conn)
            if not meta:
                raise InvalidValue(f"{database.url.display()} holds no index yet: give the registry and its deploy block to follow")
            registry = registry or meta["registry"]
            deploy_block = int(meta["deploy_block"]) if deploy_block is None else deploy_block
        follower = Follower(rpc_url, registry, int(deploy_block), db_url, poll_interval=poll_interval, log=log)
    return ConsoleServer((host, port), database, rpc_url=rpc_url, tx_url=tx_url, labels=labels, follower=follower,
                         soon_days=soon_days, log=log)  # fmt: skip


def serve(
    db_url: str,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    ready: Callable[[str], None] | None = None,
    **options: Any,
) -> None:
    """Serves the console in the foreground until interrupted (Ctrl-C). ``options`` as :func:`make_server`."""
    server = make_server(db_url, host, port, **options)
    if server.follower is not None:
        server.follower.start()
    try:
        (ready or (lambda url: print(f"rxchain regulator's console on {url} (Ctrl-C to stop)", flush=True)))(server.url)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if server.follower is not None:
            server.follower.stop()
        server.server_close()
        server.pool.close()


class _Handler(PageHandler):
    server: ConsoleServer
    server_version = "rxchain-console"

    def do_GET(self) -> None:  # noqa: N802
        parsed = urllib.parse.urlsplit(self.path)
        path, params = parsed.path, urllib.parse.parse_qs(parsed.query)
        try:
            if path.startswith("/api/"):
                self._api(path[len("/api/") :], params)
            elif path.startswith("/tx/"):
                self._tx(path[len("/tx/") :])
            else:
                self.serve_file(path)
        except (queries.NotIndexed, DatabaseError) as exc:
            self._json({"error": str(exc)}, HTTPStatus.SERVICE_UNAVAILABLE)
        except NodeUnavailable as exc:
            self._json({"error": str(exc)}, HTTPStatus.BAD_GATEWAY)
        except Exception as exc:  # noqa: BLE001 - one failing figure must not take the page down
            if self.server.log is not None:
                self.server.log(f"error serving {path}: {exc!r}")
            self._json({"error": f"{exc.__class__.__name__}: {exc}"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def do_POST(self) -> None:  # noqa: N802 - read-only: nothing to post
        self.method_not_allowed()

    do_PUT = do_DELETE = do_PATCH = do_POST  # noqa: N815

    def _api(self, name: str, params: dict[str, list[str]]) -> None:
        server = self.server
        days = _int_param(params, "days", server.soon_days, 0, 3650)
        with server.pool.connection() as conn:
            if name == "config":
                data = server.config(conn)
            elif name == "summary":
                data = queries.summary(conn, soon_days=days)
            elif name == "daily":
                data = queries.daily(conn)
            elif name == "hospitals":
                data = queries.hospitals(conn)
            elif name == "pharmacies":
                data = queries.pharmacies(conn)
            elif name == "delivery-times":
                data = queries.delivery_times(conn)
            elif name == "members":
                data = queries.member_list(conn, soon_days=days)
            elif name == "expired":
                data = queries.expired_unfilled(conn, limit=_int_param(params, "limit", 200, 1, 5000))
            elif name.startswith("trail/"):
                try:
                    rx_id = queries.normalize_id(urllib.parse.unquote(name[len("trail/") :]))
                except ValueError as exc:
                    self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
                    return
                record = queries.prescription(conn, rx_id)
                steps = queries.trail(conn, rx_id)
                status = queries.status(conn)
                data = {"id": rx_id, "found": bool(record or steps), "prescription": record, "steps": steps,
                        "lastBlock": status["lastBlock"]}  # fmt: skip
                if not data["found"]:  # a search without a hit: an answer, not an error (the page logs no failed load)
                    data["error"] = (f"no prescription {rx_id} in the index (chain {status['chainId']}, registry "
                                     f"{status['registry']}, up to block {status['lastBlock']})")  # fmt: skip
            else:
                self.not_found()
                return
        self._json(data)

    def _tx(self, tx_hash: str) -> None:
        if not _TX_HASH.fullmatch(tx_hash):
            self._json({"error": "not a transaction hash (0x + 64 hex digits)"}, HTTPStatus.BAD_REQUEST)
            return
        tx_hash = tx_hash.lower()
        if not self.server.rpc_url:
            self._json({"error": "the console was started without a node URL: it cannot show transactions"}, HTTPStatus.NOT_FOUND)
            return
        with self.server.pool.connection() as conn:
            known = queries.has_transaction(conn, tx_hash)
        if not known:
            self._json({"error": f"transaction {tx_hash} has no indexed registry event"}, HTTPStatus.NOT_FOUND)
            return
        self._json(self.server.transaction(tx_hash))

    def _json(self, data: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.json(data, status, default=_json_default)


def _int_param(params: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(params.get(name, [default])[0])
    except (TypeError, ValueError):
        return default
    return max(low, min(high, value))


def _json_default(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return str(value)
