"""The regulator's console: a read-only web view of the index database, with charts.

The page (``console/``) reads JSON from this server; every figure comes from the index database
(:mod:`rxchain.indexer.queries`), never from the chain, and says which block it is for. The server
holds no keys and writes nothing; it can follow the chain itself (the indexer in a background thread,
``follow=True``), and with a node URL it shows any indexed transaction with its receipt at /tx/<hash>.

What it serves under its prefix (``/console/``; nothing else; GET only). With sign-in on (see
:mod:`rxchain.web.auth`) only the page's own files are open; the regulator and auditors see
everything, a hospital /api/config, /api/mine and the trails of its own prescriptions, a pharmacy
/api/config, /api/mine and the trails of the prescriptions it filled; anybody else nothing (401/403):

    /                          console/index.html
    /app.js, /signin.js, /style.css, /favicon.svg   the page's files (console/)
    /vendor/chart.umd.min.js   Chart.js (the pinned npm package, from node_modules; no CDN)
    /vendor/ethers.min.js      ethers (signs the sign-in message with a development key on the devnet)
    /api/config                chain, registry, last indexed block and hash, link format, labels, indexer
                               state, and the signed-in member and their view (all, hospital, pharmacy)
    /api/whoami                open to all: whether sign-in is on and who is signed in
    /api/mine[?limit=500]      a hospital's prescriptions and their outcomes, or a pharmacy's fills
    /api/summary               headline counts
    /api/daily                 per UTC day: issued, redeemed (fills), cancelled, expired unfilled
    /api/hospitals             per issuing hospital
    /api/pharmacies            per pharmacy (fills, deliveries, median delivery time)
    /api/delivery-times        dispatch-to-receipt histogram and percentiles
    /api/members[?days=30]     members with roles and credential end, soonest first
    /api/expired[?limit=200]   prescriptions past expiry never filled
    /api/claims[?limit=200]    DrugBoxes' insurance claims: filed, approved, paid, rejected, voided fills;
                               per insurer and per pharmacy; the most recently moved claims
    /api/box-alarms[?limit=200]  "returned drug" alarms: duplicate box scans by pharmacy and by UTC day,
                               the recent ones with the box's first sale; boxes two fills recorded (a
                               cloned lot); recalled lots
    /api/trail/<id>            a prescription's record and trail (the same steps as ``rx trail``);
                               found: false (and why) when the index has no such prescription
    /tx/<hash>                 an indexed transaction and its receipt, read from the node (with rpc_url)

:func:`console_part` is the part for ``rx serve``; :func:`make_server` a server of the console alone
(port 0 picks a free port; ``start()`` serves from a daemon thread, ``stop()`` ends it and the follower).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any, Callable

from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rxchain.errors import InvalidValue, NodeUnavailable
from rxchain.indexer import queries
from rxchain.indexer.db import ConnectionPool, Database, DatabaseError, read_meta
from rxchain.paths import project_root
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
    from rxchain.web.auth import Auth, Member

__all__ = [
    "Console",
    "ConsoleServer",
    "Follower",
    "console_dir",
    "console_part",
    "make_console",
    "make_server",
    "vendor_files",
]

#: Database connections per server process (and requests reading the database at once).
DEFAULT_POOL_SIZE = 8

DEFAULT_PORT = 8700
_TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
CONTENT_SECURITY_POLICY = content_security_policy()


def console_dir() -> Path:
    """The page's files."""
    return project_root() / "console"


def vendor_files(root: Path | None = None) -> dict[str, Path]:
    """URL name under /vendor/ -> the npm package file served there."""
    modules = (root or project_root()) / "node_modules"
    return {
        "chart.umd.min.js": modules / "chart.js" / "dist" / "chart.umd.min.js",
        "ethers.min.js": modules / "ethers" / "dist" / "ethers.min.js",
    }


class Follower:
    """The indexer following the chain in a background thread, retrying after errors."""

    def __init__(
        self,
        rpc_url: str,
        registry: str,
        deploy_block: int,
        db_url: str,
        *,
        boxes: str | None = None,
        poll_interval: float = 2.0,
        log: Callable[[str], None] | None = None,
    ):
        self.args = (rpc_url, registry, deploy_block, db_url)
        self.boxes = boxes
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
                with Indexer(rpc_url, registry, deploy_block, db_url, boxes=self.boxes, log=self._message) as indexer:
                    self.ready.set()
                    self.last_error = None
                    indexer.run(
                        follow=True, stop=self.stop_event, poll_interval=self.poll_interval, progress=self._progress
                    )
            except Exception as exc:  # keep following: a node restart must not end the console
                self.last_error = f"{exc.__class__.__name__}: {exc}"
                self.log(f"indexer: {self.last_error} (retrying)")
                self.stop_event.wait(min(10.0, self.poll_interval * 3))

    def _progress(self, stats) -> None:
        self.last_progress = time.time()
        self.last_error = None

    def _message(self, message: str) -> None:
        self.messages = (self.messages + [message])[-20:]
        self.log(f"indexer: {message}")


class Console:
    """The console's state: the index database with its connection pool, the node (for /tx/), the
    labels, and the follower if the server runs the indexer."""

    def __init__(
        self,
        database: Database,
        *,
        rpc_url: str | None = None,
        tx_url: str | None = None,
        labels: dict[str, str] | None = None,
        follower: Follower | None = None,
        soon_days: int = queries.EXPIRING_SOON_DAYS,
        pool_size: int = DEFAULT_POOL_SIZE,
        followed_elsewhere: bool = False,
        figure_cache: bool = True,
        log: Callable[[str], None] | None = None,
    ):
        self.database = database
        self.figure_cache = figure_cache
        self.followed_elsewhere = followed_elsewhere
        self.rpc_url = rpc_url
        self.tx_url = tx_url if tx_url is not None else ("tx/{hash}" if rpc_url else None)
        if self.tx_url is not None and "{hash}" not in self.tx_url:
            raise InvalidValue(f"the transaction link format {self.tx_url!r} must contain {{hash}}")
        self.labels = dict(labels or {})
        self.follower = follower
        self.soon_days = soon_days
        self.log = log
        self.pool = ConnectionPool(database, size=pool_size)
        self.pool_size = pool_size
        self._limiter: anyio.CapacityLimiter | None = None
        self._cache_lock = threading.Lock()
        self._cache_mark: str | None = None
        self._cache: dict[tuple, Any] = {}
        self._computing: dict[tuple, threading.Event] = {}

    def start(self) -> None:
        if self.follower is not None:
            self.follower.start()

    def stop(self) -> None:
        if self.follower is not None:
            self.follower.stop()
        self.pool.close()

    async def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(conn, *args)`` on a pooled connection in a worker thread; at most ``pool_size`` at once."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.pool_size)

        def run() -> Any:
            with self.pool.connection() as conn:
                return fn(conn, *args)

        return await anyio.to_thread.run_sync(run, limiter=self._limiter)

    def cached(self, conn, key: tuple, compute: Callable[[Any], Any]) -> Any:
        """``compute(conn)``, remembered until the index moves on: every figure is a function of the
        database at its last indexed block, so the last block's hash marks what a cached answer is for.
        One request computes a figure; the requests that ask for it meanwhile wait for its answer."""
        try:
            row = conn.query_one("SELECT value FROM meta WHERE key = 'last_block_hash'")
        except Exception:  # no meta table yet: compute, which says "nothing indexed"
            row = None
        mark = row[0] if row else None
        if mark is None or not self.figure_cache:
            return compute(conn)
        with self._cache_lock:
            if mark != self._cache_mark:
                self._cache_mark, self._cache, self._computing = mark, {}, {}
            if key in self._cache:
                return self._cache[key]
            done = self._computing.get(key)
            mine = done is None
            if mine:
                done = self._computing[key] = threading.Event()
        if not mine:
            done.wait(timeout=120)
            with self._cache_lock:
                if mark == self._cache_mark and key in self._cache:
                    return self._cache[key]
            return compute(conn)  # the first request failed, or the index moved on meanwhile
        try:
            value = compute(conn)
            with self._cache_lock:
                if mark == self._cache_mark and len(self._cache) < 1024:
                    self._cache[key] = value
            return value
        finally:
            with self._cache_lock:
                if self._computing.get(key) is done:
                    del self._computing[key]
            done.set()

    def config(self, conn, member: "Member | None") -> dict:
        data: dict[str, Any] = {
            "txUrl": self.tx_url,
            "labels": self.labels,
            "expiringSoonDays": self.soon_days,
            "database": self.database.kind,
            "node": bool(self.rpc_url),
        }
        data.update(self.cached(conn, ("status",), queries.status))
        if self.follower is not None:
            data["indexer"] = {
                "following": self.follower.running,
                "lastError": self.follower.last_error,
                "messages": self.follower.messages[-5:],
            }
        elif self.followed_elsewhere:  # a worker process: the parent process follows (its state is not visible here)
            data["indexer"] = {"following": True, "lastError": None, "messages": [], "elsewhere": True}
        else:
            data["indexer"] = None
        data["view"] = member.view if member is not None else "all"
        data["member"] = member.as_json() if member is not None else None
        return data

    def transaction(self, tx_hash: str) -> dict:
        from rxchain.indexer.node import Node

        node = Node(self.rpc_url, timeout=15)
        tx, receipt = node.batch([("eth_getTransactionByHash", [tx_hash]), ("eth_getTransactionReceipt", [tx_hash])])
        block = node.header(int(receipt["blockNumber"], 16)) if receipt else None
        return {
            "hash": tx_hash,
            "transaction": tx,
            "receipt": receipt,
            "block": {"number": block.number, "hash": block.hash, "timestamp": block.time} if block else None,
        }


#: The whole console's figures: regulator and auditors only.
_WHOLE = {
    "summary": lambda conn, p, days: queries.summary(conn, soon_days=days),
    "daily": lambda conn, p, days: queries.daily(conn),
    "hospitals": lambda conn, p, days: queries.hospitals(conn),
    "pharmacies": lambda conn, p, days: queries.pharmacies(conn),
    "delivery-times": lambda conn, p, days: queries.delivery_times(conn),
    "members": lambda conn, p, days: queries.member_list(conn, soon_days=days),
    "expired": lambda conn, p, days: queries.expired_unfilled(conn, limit=_int_param(p, "limit", 200, 1, 5000)),
    "claims": lambda conn, p, days: queries.claims(conn, limit=_int_param(p, "limit", 200, 1, 5000)),
    "box-alarms": lambda conn, p, days: queries.box_alarms(conn, limit=_int_param(p, "limit", 200, 1, 5000)),
}


def console_part(
    console: Console,
    *,
    auth: "Auth | None" = None,
    static_dir: Path | None = None,
    vendor: dict[str, Path] | None = None,
    prefix: str = "/console",
) -> Part:
    """The console as a part of the web application. With ``auth``, every answer but the page's own
    files needs a signed-in member, and each sees what its view allows (see :mod:`rxchain.web.auth`);
    without, everything is open (a console on a trusted machine)."""
    files = PageFiles("console", static_dir or console_dir(), vendor or vendor_files())

    async def who(request: Request) -> "tuple[Member | None, Response | None]":
        """(member, None), or (None, the refusal to answer with)."""
        if auth is None:
            return None, None
        try:
            member = await auth.identity(request)
        except NodeUnavailable as exc:
            return None, _json({"error": str(exc)}, 503)
        if member is None:
            return None, _json({"error": "sign in first", "signIn": True}, 401)
        return member, None

    def whole(member: "Member | None") -> bool:
        return member is None or member.view == "all"

    async def guarded(request: Request, answer: Callable[["Member | None"], Any]) -> Response:
        member, refusal = await who(request)
        if refusal is not None:
            return refusal
        try:
            return await answer(member)
        except (queries.NotIndexed, DatabaseError) as exc:
            return _json({"error": str(exc)}, 503)
        except NodeUnavailable as exc:
            return _json({"error": str(exc)}, 502)
        except Exception as exc:  # one failing figure must not take the page down
            if console.log is not None:
                console.log(f"error serving {request.url.path}: {exc!r}")
            return _json({"error": f"{exc.__class__.__name__}: {exc}"}, 500)

    async def config(request: Request) -> Response:
        async def answer(member):
            return _json(await console.read(console.config, member))

        return await guarded(request, answer)

    async def figure(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _WHOLE:
            return _json({"error": f"no such figure {name!r}"}, 404)

        async def answer(member):
            if not whole(member):
                return _json({"error": "only the regulator and auditors see the whole console"}, 403)
            params = request.query_params
            days = _int_param(params, "days", console.soon_days, 0, 3650)
            limit = _int_param(params, "limit", 200, 1, 5000)
            figure = _WHOLE[name]
            return _json(
                await console.read(lambda c: console.cached(c, (name, days, limit), lambda c: figure(c, params, days)))
            )

        return await guarded(request, answer)

    async def whoami(request: Request) -> Response:
        """Always 200 (the page asks it first): whether sign-in is on, and who is signed in."""
        if auth is None:
            return _json({"signIn": False, "signedIn": False, "member": None})
        try:
            member = await auth.identity(request)
        except NodeUnavailable as exc:
            return _json({"error": str(exc)}, 503)
        return _json({"signIn": True, "signedIn": member is not None, "member": member.as_json() if member else None})

    async def mine(request: Request) -> Response:
        async def answer(member):
            limit = _int_param(request.query_params, "limit", 500, 1, 5000)
            if member is not None and member.view in ("hospital", "pharmacy"):
                query = queries.hospital_outcomes if member.view == "hospital" else queries.pharmacy_activity
                key = ("mine", member.view, member.address, limit)
                data = await console.read(
                    lambda c: console.cached(c, key, lambda c: query(c, member.address, limit=limit))
                )
                return _json({"view": member.view, **data})
            return _json({"error": "only a hospital or a pharmacy has records of its own here"}, 403)

        return await guarded(request, answer)

    async def trail(request: Request) -> Response:
        async def answer(member):
            try:
                rx_id = queries.normalize_id(request.path_params["rx_id"])
            except ValueError as exc:
                return _json({"error": str(exc)}, 400)
            return _json(
                await console.read(lambda c: _trail(c, rx_id, member, console.cached(c, ("status",), queries.status)))
            )

        return await guarded(request, answer)

    async def transaction(request: Request) -> Response:
        async def answer(member):
            if not whole(member):
                return _json({"error": "only the regulator and auditors see transactions here"}, 403)
            tx_hash = request.path_params["tx_hash"]
            if not _TX_HASH.fullmatch(tx_hash):
                return _json({"error": "not a transaction hash (0x + 64 hex digits)"}, 400)
            tx_hash = tx_hash.lower()
            if not console.rpc_url:
                return _json({"error": "the console was started without a node URL: it cannot show transactions"}, 404)
            if not await console.read(queries.has_transaction, tx_hash):
                return _json({"error": f"transaction {tx_hash} has no indexed registry event"}, 404)
            return _json(await anyio.to_thread.run_sync(console.transaction, tx_hash))

        return await guarded(request, answer)

    app = Starlette(
        routes=[
            Route("/api/config", config, methods=["GET"]),
            Route("/api/whoami", whoami, methods=["GET"]),
            Route("/api/mine", mine, methods=["GET"]),
            Route("/api/trail/{rx_id}", trail, methods=["GET"]),
            Route("/api/{name}", figure, methods=["GET"]),
            Route("/tx/{tx_hash}", transaction, methods=["GET"]),
            *files.routes(),
        ]
    )
    return Part(
        "console", prefix, SecurityHeaders(app, CONTENT_SECURITY_POLICY), start=console.start, stop=console.stop
    )


def _trail(conn, rx_id: str, member: "Member | None", status: dict) -> dict:
    if member is not None and member.view != "all":
        mine = queries.concerns(
            conn,
            rx_id,
            hospital=member.address if member.view == "hospital" else None,
            pharmacy=member.address if member.view == "pharmacy" else None,
        )
        if not mine:  # the same answer as for an unknown id: a member learns nothing of others' prescriptions
            return {
                "id": rx_id,
                "found": False,
                "prescription": None,
                "steps": [],
                "lastBlock": status["lastBlock"],
                "error": f"no prescription {rx_id} of yours in the index (up to block {status['lastBlock']})",
            }
    record = queries.prescription(conn, rx_id)
    steps = queries.trail(conn, rx_id)
    data = {
        "id": rx_id,
        "found": bool(record or steps),
        "prescription": record,
        "steps": steps,
        "lastBlock": status["lastBlock"],
    }
    if not data["found"]:  # a search without a hit: an answer, not an error (the page logs no failed load)
        data["error"] = (
            f"no prescription {rx_id} in the index (chain {status['chainId']}, registry "
            f"{status['registry']}, up to block {status['lastBlock']})"
        )
    return data


class ConsoleServer(PartServer):
    """A server of the console alone (see :func:`make_server`); ``console`` is its state."""

    def __init__(
        self,
        console: Console,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        auth: "Auth | None" = None,
        static_dir: Path | None = None,
        vendor: dict[str, Path] | None = None,
    ):
        part = console_part(console, auth=auth, static_dir=static_dir, vendor=vendor)
        super().__init__(build_app([part], auth=auth), part, host, port)
        self.console = console

    @property
    def follower(self) -> Follower | None:
        return self.console.follower


def make_console(
    db_url: str,
    *,
    rpc_url: str | None = None,
    follow: bool = False,
    registry: str | None = None,
    deploy_block: int | None = None,
    boxes: str | None = None,
    tx_url: str | None = None,
    labels: dict[str, str] | None = None,
    poll_interval: float = 2.0,
    soon_days: int = queries.EXPIRING_SOON_DAYS,
    pool_size: int = DEFAULT_POOL_SIZE,
    followed_elsewhere: bool = False,
    figure_cache: bool = True,
    log: Callable[[str], None] | None = None,
) -> Console:
    """The console's state for the index in ``db_url``.

    ``rpc_url``: the node, for /tx/<hash> and for following. ``follow``: run the indexer in a background
    thread (registry and deploy block from the database, or from ``registry``/``deploy_block`` for a
    new one; DrugBoxes' events too with ``boxes``, or when the index already follows it). ``tx_url``:
    how to link a transaction, with ``{hash}`` (default tx/{hash} with a node, else no link), e.g. a
    block explorer's ``https://explorer.example/tx/{hash}``. ``labels``: address -> name shown beside
    addresses (e.g. the development identities on the devnet). ``figure_cache=False`` computes every
    figure for every request (for measuring what a new block costs).
    """
    database = Database(db_url)
    follower = None
    if follow:
        if not rpc_url:
            raise InvalidValue("following the chain needs the node's URL (rpc_url)")
        if registry is None or deploy_block is None:
            meta = index_meta(database)
            if not meta:
                raise InvalidValue(
                    f"{database.url.display()} holds no index yet: give the registry and its deploy block to follow"
                )
            registry = registry or meta["registry"]
            deploy_block = int(meta["deploy_block"]) if deploy_block is None else deploy_block
        follower = Follower(
            rpc_url, registry, int(deploy_block), db_url, boxes=boxes, poll_interval=poll_interval, log=log
        )
    return Console(
        database,
        rpc_url=rpc_url,
        tx_url=tx_url,
        labels=labels,
        follower=follower,
        soon_days=soon_days,
        pool_size=pool_size,
        followed_elsewhere=followed_elsewhere,
        figure_cache=figure_cache,
        log=log,
    )


def index_meta(database: Database) -> dict:
    """The index's meta table ({} when the database holds no index yet)."""
    if database.kind == "postgres" or Path(database.url.target).is_file():
        with database.connect() as conn:
            return read_meta(conn)
    return {}


def make_server(
    db_url: str, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, auth: "Auth | None" = None, **options: Any
) -> ConsoleServer:
    """A server of the console alone for the index in ``db_url``, not yet serving (``start()`` it; its
    ``url`` is the page). ``options`` as :func:`make_console`; ``auth`` turns sign-in on."""
    return ConsoleServer(make_console(db_url, **options), host, port, auth=auth)


def _json(data: Any, status: int = 200) -> Response:
    return json_response(data, status, default=_json_default)


def _int_param(params, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(params.get(name, default))
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
