"""Members sign in with their chain key: Sign-In with Ethereum (EIP-4361), and who may see what.

The flow (routes under ``/auth/``):

    GET  /auth/config     {domain, uri, chainId, devKeys?}: what the sign-in form needs
    POST /auth/message    {address} -> {message}: an EIP-4361 message for this server, with a fresh
                          nonce (single use, minutes long), issued-at and expiration time
    POST /auth/sign-in    {message, signature}: the message signed with ``personal_sign`` (EIP-191)
    GET  /auth/session    who is signed in ({signedIn: false} when nobody)
    POST /auth/sign-out   ends the session

The server checks (the ``siwe`` package parses the message strictly by EIP-4361's ABNF and recovers
the signer): the signature is the message's address's; the domain and URI are this server's; the chain
id is the registry's; the nonce is one this server issued, unused and not stale (it is spent by the
first sign-in that shows it); issued-at is recent and the expiration time not passed. Then it reads the
account's roles, credential end and hospital from the registry (``member``, ``hasRole``) at the latest
block, and opens a session: a random token in a cookie (HttpOnly, SameSite=Strict, Secure when the
server's origin is https), short-lived. The POSTs are refused from another site's page (an Origin
header that is not the server's, or a body that is not JSON).

Every request after that reads the member again, cached per block: a member whose roles are revoked
or whose credential has lapsed is out at their next request once the chain says so (the head is read
at most every ``head_ttl`` seconds).

Who sees what (:attr:`Member.view`): the regulator and auditors ``all``; a hospital ``hospital`` (its
own prescriptions); a pharmacy ``pharmacy`` (its own fills and deliveries); anybody else nothing.

Nonces and sessions live in a small SQLite file, so that several worker processes share them; so
do the sign-in's rate limits (:class:`Limits`). One client (an IP address; an IPv6 /64 network) may
ask for messages and try signatures at a steady rate with a burst (a token bucket per client and
endpoint); beyond it the answer is 429 with Retry-After, and nothing is stored or verified. The nonce
store is bounded: a client holds at most a few unused nonces (a new one replaces its oldest), and the
whole store at most ``Limits.nonces`` (beyond it 503 with Retry-After, the time until the oldest
expires) — one client cannot fill it, and a flood from many cannot grow it without end.
"""

from __future__ import annotations

import ipaddress
import math
import secrets
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from hashlib import sha256
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
from eth_utils import is_address, to_checksum_address
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rxchain.core.roles import REGULATOR_ROLE, roles_from_mask
from rxchain.errors import NodeUnavailable, Refused
from rxchain.web.server import json_response

__all__ = [
    "Auth",
    "AuthStore",
    "Limits",
    "Member",
    "Membership",
    "NonceStoreFull",
    "SignInRefused",
    "SESSION_COOKIE",
    "client_key",
]

SESSION_COOKIE = "rx_session"
#: A sign-in message is good for this long after the server issued it.
MESSAGE_SECONDS = 300
#: How long a session lasts (the credential is still checked on every request).
SESSION_SECONDS = 15 * 60
#: Clock skew allowed on a message's issued-at (a wallet's clock may run a little ahead).
SKEW_SECONDS = 60
#: Largest sign-in request body read.
MAX_BODY = 16 * 1024
STATEMENT = "Sign in to rxchain with your consortium account."


class SignInRefused(Refused):
    """A sign-in was refused: ``reason`` says which check failed (malformed, signature, domain, uri,
    chain, nonce, expired, stale, not-member), ``status`` is the HTTP status to answer with."""

    def __init__(self, reason: str, message: str, status: int = 401):
        self.reason = reason
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class Limits:
    """What one client may ask of the sign-in: per endpoint a token bucket (``*_burst`` requests at
    once, refilled at ``*_per_minute``), the unused nonces one client holds, and the whole store's."""

    messages_burst: int = 20
    messages_per_minute: float = 20.0
    sign_ins_burst: int = 20
    sign_ins_per_minute: float = 20.0
    nonces_per_client: int = 5
    nonces: int = 10_000


class NonceStoreFull(Exception):
    """Every nonce the store may hold is issued and unused: ``retry_after`` seconds until one expires."""

    def __init__(self, retry_after: float):
        self.retry_after = retry_after
        super().__init__(f"too many sign-ins under way: try again in {math.ceil(retry_after)} s")


def client_key(request: Request) -> str:
    """Who a request is for the rate limits: its peer's IP address (as uvicorn reports it: the
    X-Forwarded-For of a trusted proxy, by default one on 127.0.0.1 only), an IPv6 address by its
    /64 network (one host usually holds a whole /64)."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


@dataclass(frozen=True)
class Member:
    """An account as the registry sees it at ``block``: its roles in good standing (a lapsed
    credential counts as no role), its credential end and its hospital."""

    address: str
    roles: tuple[str, ...]
    valid_until: int | None
    hospital: str | None
    block: int

    @property
    def view(self) -> str | None:
        """What this member may see: all, hospital, pharmacy, or None (nothing)."""
        if "regulator" in self.roles or "auditor" in self.roles:
            return "all"
        if "hospital" in self.roles:
            return "hospital"
        if "pharmacy" in self.roles:
            return "pharmacy"
        return None

    def as_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "roles": list(self.roles),
            "view": self.view,
            "validUntil": self.valid_until,
            "hospital": self.hospital,
            "block": self.block,
        }


class Membership:
    """Reads members from the registry at the latest block, cached per block."""

    def __init__(self, rpc_url: str, registry: str, *, head_ttl: float = 1.0):
        from web3 import HTTPProvider, Web3

        from rxchain.chain.deployment import load_abi

        self.w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
        self.contract = self.w3.eth.contract(address=to_checksum_address(registry), abi=load_abi())
        self.head_ttl = head_ttl
        self._lock = threading.Lock()
        self._head: tuple[float, int, str, int] | None = None  # (read at, number, hash, timestamp)
        self._cache: dict[tuple[str, str], Member] = {}

    def head(self) -> tuple[int, str, int]:
        """(number, hash, timestamp) of the latest block, read at most every ``head_ttl`` seconds."""
        with self._lock:
            if self._head is not None and time.monotonic() - self._head[0] < self.head_ttl:
                return self._head[1:]
        try:
            block = self.w3.eth.get_block("latest")
        except Exception as exc:  # connection refused, timeout, bad answer: the node is not usable
            raise NodeUnavailable(
                f"the chain's node does not answer ({exc.__class__.__name__}): cannot check members"
            ) from None
        head = (int(block["number"]), "0x" + bytes(block["hash"]).hex(), int(block["timestamp"]))
        with self._lock:
            if self._head is None or head[1] != self._head[2]:
                self._cache.clear()
            self._head = (time.monotonic(), *head)
        return head

    def member(self, address: str) -> Member:
        """``address`` as the registry sees it at the latest block (cached per block hash: a reorganised
        or reverted chain is read again)."""
        number, block_hash, timestamp = self.head()
        address = to_checksum_address(address)
        with self._lock:
            cached = self._cache.get((address, block_hash))
        if cached is not None:
            return cached
        try:
            roles_mask, valid_until, hospital = self.contract.functions.member(address).call(block_identifier=number)
            regulator = self.contract.functions.hasRole(REGULATOR_ROLE, address).call(block_identifier=number)
        except Exception as exc:
            raise NodeUnavailable(
                f"cannot read member {address} from the registry ({exc.__class__.__name__}: {exc})"
            ) from None
        roles = roles_from_mask(roles_mask) if roles_mask and timestamp <= valid_until else []
        if regulator:
            roles.append("regulator")
        member = Member(
            address,
            tuple(roles),
            int(valid_until) if roles_mask else None,
            None if int(hospital, 16) == 0 else to_checksum_address(hospital),
            number,
        )
        with self._lock:
            self._cache[(address, block_hash)] = member
        return member


class AuthStore:
    """Nonces, sessions and the rate limits' buckets in a SQLite file (shared by worker processes; a
    temporary one by default)."""

    def __init__(self, path: str | Path | None = None):
        if path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="rxchain-auth-")
            path = Path(self._tmp.name) / "auth.sqlite"
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(nonces)")}
        if columns and "client" not in columns:  # a store from before the limits: its nonces live minutes only
            self._db.execute("DROP TABLE nonces")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, client TEXT NOT NULL, issued REAL NOT NULL, "
            "expires INTEGER NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS nonces_client ON nonces (client, issued)")
        self._db.execute("CREATE INDEX IF NOT EXISTS nonces_expires ON nonces (expires)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS sessions (token TEXT PRIMARY KEY, address TEXT NOT NULL"
            ", expires INTEGER NOT NULL)"
        )
        # a token bucket per client and endpoint; full_at: when it is full again (then it is dropped)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS buckets (key TEXT PRIMARY KEY, tokens REAL NOT NULL, at REAL NOT NULL, "
            "full_at REAL NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS buckets_full ON buckets (full_at)")

    def _run(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    def _atomic(self, work):
        """``work()`` in one write transaction (the worker processes share the file)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = work()
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result

    def take(self, key: str, burst: int, per_minute: float) -> float:
        """Takes a token from ``key``'s bucket: 0 when there was one, else the seconds until there is."""
        rate = per_minute / 60.0

        def work() -> float:
            now = time.time()
            self._db.execute("DELETE FROM buckets WHERE full_at < ?", (now,))
            row = self._db.execute("SELECT tokens, at FROM buckets WHERE key = ?", (key,)).fetchone()
            tokens = float(burst) if row is None else min(float(burst), row[0] + (now - row[1]) * rate)
            if tokens < 1.0:
                return (1.0 - tokens) / rate if rate > 0 else math.inf
            tokens -= 1.0
            full_at = now + (burst - tokens) / rate if rate > 0 else math.inf
            self._db.execute(
                "INSERT INTO buckets VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, "
                "at = excluded.at, full_at = excluded.full_at",
                (key, tokens, now, full_at),
            )
            return 0.0

        return self._atomic(work)

    def new_nonce(
        self,
        seconds: int,
        *,
        client: str = "local",
        per_client: int = Limits.nonces_per_client,
        total: int = Limits.nonces,
    ) -> str:
        """A fresh nonce for ``client``, good for ``seconds``. The client's oldest unused nonces go
        beyond ``per_client``; NonceStoreFull when the store holds ``total`` unused ones."""
        nonce = secrets.token_hex(16)  # EIP-4361: at least 8 alphanumeric characters

        def work() -> str:
            now = time.time()
            self._db.execute("DELETE FROM nonces WHERE expires < ?", (int(now),))
            mine = [
                n
                for (n,) in self._db.execute(
                    "SELECT nonce FROM nonces WHERE client = ? ORDER BY issued DESC", (client,)
                )
            ]
            if len(mine) >= per_client:
                self._db.executemany(
                    "DELETE FROM nonces WHERE nonce = ?", [(n,) for n in mine[max(0, per_client - 1) :]]
                )
            elif self._db.execute("SELECT COUNT(*) FROM nonces").fetchone()[0] >= total:
                oldest = self._db.execute("SELECT MIN(expires) FROM nonces").fetchone()[0]
                raise NonceStoreFull(max(1.0, oldest + 1 - now))
            self._db.execute("INSERT INTO nonces VALUES (?, ?, ?, ?)", (nonce, client, now, int(now) + seconds))
            return nonce

        return self._atomic(work)

    def nonce_count(self, client: str | None = None) -> int:
        """Unused nonces held (by ``client``, or by everybody)."""
        if client is None:
            return self._run("SELECT COUNT(*) FROM nonces").fetchone()[0]
        return self._run("SELECT COUNT(*) FROM nonces WHERE client = ?", (client,)).fetchone()[0]

    def take_nonce(self, nonce: str) -> bool:
        """True once for a nonce this server issued and that has not expired; False ever after."""
        return self._run("DELETE FROM nonces WHERE nonce = ? AND expires >= ?", (nonce, int(time.time()))).rowcount == 1

    def new_session(self, address: str, seconds: int) -> str:
        token = secrets.token_urlsafe(32)
        now = int(time.time())
        self._run("DELETE FROM sessions WHERE expires < ?", (now,))
        self._run("INSERT INTO sessions VALUES (?, ?, ?)", (_digest(token), address, now + seconds))
        return token

    def session(self, token: str) -> str | None:
        row = self._run(
            "SELECT address FROM sessions WHERE token = ? AND expires >= ?", (_digest(token), int(time.time()))
        ).fetchone()
        return row[0] if row else None

    def end_session(self, token: str) -> None:
        self._run("DELETE FROM sessions WHERE token = ?", (_digest(token),))

    def close(self) -> None:
        self._db.close()


def _digest(token: str) -> str:
    return sha256(token.encode()).hexdigest()


class Auth:
    """The sign-in for one origin (``https://rx.example``; set when the server knows its address) and
    one chain. ``dev_keys`` (development identity -> key) are offered to the sign-in form on a
    development chain only."""

    def __init__(
        self,
        membership: Membership,
        chain_id: int,
        *,
        origin: str | None = None,
        store: AuthStore | None = None,
        session_seconds: int = SESSION_SECONDS,
        message_seconds: int = MESSAGE_SECONDS,
        dev_keys: dict[str, str] | None = None,
        limits: Limits | None = None,
    ):
        self.membership = membership
        self.limits = limits or Limits()
        self.chain_id = chain_id
        self.store = store or AuthStore()
        self.session_seconds = session_seconds
        self.message_seconds = message_seconds
        self.dev_keys = dict(dev_keys) if dev_keys else None
        self.origin: str | None = None
        if origin:
            self.set_origin(origin)

    def set_origin(self, origin: str) -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            from rxchain.errors import InvalidValue

            raise InvalidValue(f"{origin!r} is not a web origin (https://host[:port])")
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.domain = parts.netloc
        self.secure = parts.scheme == "https"

    # ------------------------------------------------------------------------------ messages

    def message(self, address: str, client: str = "local") -> str:
        """A fresh EIP-4361 message for ``address`` to sign, asked by ``client`` (NonceStoreFull when
        the store holds all the unused nonces it may)."""
        from siwe import SiweMessage

        if not isinstance(address, str) or not is_address(address):
            raise SignInRefused("malformed", f"{address!r} is not an account address", 400)
        now = datetime.now(timezone.utc).replace(microsecond=0)
        return SiweMessage(
            domain=self.domain,
            address=to_checksum_address(address),
            statement=STATEMENT,
            uri=self.origin + "/",
            version="1",
            chain_id=self.chain_id,
            nonce=self.store.new_nonce(
                self.message_seconds, client=client, per_client=self.limits.nonces_per_client, total=self.limits.nonces
            ),
            issued_at=_iso(now),
            expiration_time=_iso(now + timedelta(seconds=self.message_seconds)),
        ).prepare_message()

    def verify(self, text: Any, signature: Any) -> Member:
        """The member who signed ``text`` (an EIP-4361 message this server issued); SignInRefused otherwise."""
        import siwe

        if not isinstance(text, str) or not isinstance(signature, str):
            raise SignInRefused("malformed", "give the signed message and its signature as text", 400)
        try:
            message = siwe.SiweMessage.from_message(text)
        except Exception as exc:  # the parser raises ValueError or pydantic's ValidationError
            raise SignInRefused(
                "malformed", f"not an EIP-4361 sign-in message ({exc.__class__.__name__})", 400
            ) from None
        now = datetime.now(timezone.utc)
        try:
            message.verify(signature, domain=self.domain, timestamp=now)
        except siwe.DomainMismatch:
            raise SignInRefused(
                "domain", f"the message is for {message.domain}, not for this server ({self.domain})"
            ) from None
        except siwe.ExpiredMessage:
            raise SignInRefused("expired", "the sign-in message has expired: sign in again") from None
        except siwe.NotYetValidMessage:
            raise SignInRefused("expired", "the sign-in message is not valid yet") from None
        except siwe.InvalidSignature:
            raise SignInRefused("signature", "the signature is not the message's account's") from None
        except siwe.VerificationError as exc:
            raise SignInRefused(
                "malformed", f"the sign-in message does not verify ({exc.__class__.__name__})"
            ) from None
        if message.scheme is not None and message.scheme != urlsplit(self.origin).scheme:
            raise SignInRefused("domain", f"the message is for {message.scheme}://, not for this server")
        if message.uri.rstrip("/") != self.origin:
            raise SignInRefused("uri", f"the message is for {message.uri}, not for this server ({self.origin})")
        if message.chain_id != self.chain_id:
            raise SignInRefused(
                "chain", f"the message is for chain {message.chain_id}, the registry is on chain {self.chain_id}"
            )
        issued = datetime.fromisoformat(str(message.issued_at).replace("Z", "+00:00"))
        if issued > now + timedelta(seconds=SKEW_SECONDS) or issued < now - timedelta(seconds=self.message_seconds):
            raise SignInRefused("stale", "the sign-in message was not issued just now: sign in again")
        if message.expiration_time is None:
            raise SignInRefused("malformed", "the sign-in message has no expiration time")
        if not self.store.take_nonce(message.nonce):
            raise SignInRefused(
                "nonce", "this sign-in message was used already, or its nonce is not this server's: sign in again"
            )
        member = self.membership.member(message.address)
        if member.view is None:
            raise SignInRefused(
                "not-member",
                f"{member.address} is not a member this server shows anything to "
                "(regulator, auditor, hospital or pharmacy in good standing)",
                403,
            )
        return member

    # ------------------------------------------------------------------------------ requests

    async def identity(self, request: Request) -> Member | None:
        """The signed-in member behind ``request``, read again from the registry (cached per block);
        None when nobody is signed in or the member no longer has a view."""
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        address = await anyio.to_thread.run_sync(self.store.session, token)
        if address is None:
            return None
        member = await anyio.to_thread.run_sync(self.membership.member, address)
        return member if member.view is not None else None

    async def refuse_send(self, request: Request) -> str | None:
        """Why the relay must not forward a transaction for ``request``; None if it may."""
        try:
            member = await self.identity(request)
        except NodeUnavailable as exc:
            return str(exc)
        if member is None:
            return "sign in as a pharmacy to send transactions through this server"
        if "pharmacy" not in member.roles:
            return f"{member.address} is not a pharmacy in good standing: it cannot send through this server"
        return None

    # ------------------------------------------------------------------------------- routes

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/config", self._config, methods=["GET"]),
                Route("/message", self._message, methods=["POST"]),
                Route("/sign-in", self._sign_in, methods=["POST"]),
                Route("/session", self._session, methods=["GET"]),
                Route("/sign-out", self._sign_out, methods=["POST"]),
            ]
        )

    async def _config(self, request: Request) -> Response:
        data: dict[str, Any] = {"domain": self.domain, "uri": self.origin + "/", "chainId": self.chain_id}
        if self.dev_keys:
            data["devKeys"] = self.dev_keys
        return json_response(data)

    def _cross_site(self, request: Request) -> Response | None:
        """A refusal for a POST from another site (its Origin is not this server's, or it is not JSON,
        which a page elsewhere can send without asking the browser first); None for the server's own pages."""
        origin = request.headers.get("origin")
        if origin is not None and origin != self.origin:
            return json_response({"error": f"requests from {origin} are not accepted here", "reason": "origin"}, 403)
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return json_response({"error": "send JSON (Content-Type: application/json)", "reason": "malformed"}, 415)
        return None

    async def _limited(self, request: Request, endpoint: str, burst: int, per_minute: float) -> Response | None:
        """429 with Retry-After when ``request``'s client has used its bucket for ``endpoint``; None if it may go on."""
        wait = await anyio.to_thread.run_sync(self.store.take, f"{endpoint}:{client_key(request)}", burst, per_minute)
        if not wait:
            return None
        seconds = max(1, math.ceil(wait)) if math.isfinite(wait) else 3600
        response = json_response(
            {"error": f"too many requests from your address: try again in {seconds} s", "reason": "rate"}, 429
        )
        response.headers["Retry-After"] = str(seconds)
        return response

    async def _message(self, request: Request) -> Response:
        limits = self.limits
        if (
            refusal := await self._limited(request, "message", limits.messages_burst, limits.messages_per_minute)
        ) is not None:
            return refusal
        if (refusal := self._cross_site(request)) is not None:
            return refusal
        body = await _json_body(request)
        try:
            return json_response(
                {"message": await anyio.to_thread.run_sync(self.message, body.get("address"), client_key(request))}
            )
        except SignInRefused as exc:
            return _refusal(exc)
        except NonceStoreFull as exc:
            response = json_response({"error": str(exc), "reason": "busy"}, 503)
            response.headers["Retry-After"] = str(math.ceil(exc.retry_after))
            return response

    async def _sign_in(self, request: Request) -> Response:
        limits = self.limits
        if (
            refusal := await self._limited(request, "sign-in", limits.sign_ins_burst, limits.sign_ins_per_minute)
        ) is not None:
            return refusal
        if (refusal := self._cross_site(request)) is not None:
            return refusal
        body = await _json_body(request)
        try:
            member = await anyio.to_thread.run_sync(self.verify, body.get("message"), body.get("signature"))
        except SignInRefused as exc:
            return _refusal(exc)
        except NodeUnavailable as exc:
            return json_response({"error": str(exc), "reason": "node"}, 503)
        token = await anyio.to_thread.run_sync(self.store.new_session, member.address, self.session_seconds)
        response = json_response({"signedIn": True, **member.as_json(), "expiresIn": self.session_seconds})
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=self.session_seconds,
            path="/",
            httponly=True,
            samesite="strict",
            secure=self.secure,
        )
        return response

    async def _session(self, request: Request) -> Response:
        try:
            member = await self.identity(request)
        except NodeUnavailable as exc:
            return json_response({"signedIn": False, "error": str(exc)}, 503)
        return json_response({"signedIn": True, **member.as_json()} if member else {"signedIn": False})

    async def _sign_out(self, request: Request) -> Response:
        if (refusal := self._cross_site(request)) is not None:
            return refusal
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            await anyio.to_thread.run_sync(self.store.end_session, token)
        response = json_response({"signedIn": False})
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=self.secure)
        return response


async def _json_body(request: Request) -> dict:
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > MAX_BODY:
        return {}
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _refusal(exc: SignInRefused) -> Response:
    return json_response({"error": str(exc), "reason": exc.reason}, exc.status)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
