"""The web side as one ASGI application (Starlette) served by uvicorn: the pharmacy dApp under
``/dapp/``, the regulator's console under ``/console/``, the sign-in under ``/auth/`` (see
:mod:`rxchain.web.auth`). ``/`` leads to the console when it is served, else to the dApp.

Every part is a small Starlette application of its own (its routes, its page folder, its vendor
files, its Content-Security-Policy), mounted under its prefix; the pages use relative addresses, so
a part works under any prefix. Every answer carries ``nosniff``, ``no-referrer``, ``no-store`` (vendor
files: an hour) and the part's Content-Security-Policy.

:class:`WebServer` runs the application on a uvicorn server in a daemon thread (``start()``,
``stop()``, or a context manager; port 0 picks a free port), for the tests and for ``rx serve``
with one worker; :func:`serve` runs it in the foreground, with several worker processes if asked.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rxchain.errors import BuildNotFound, Unavailable

STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
STATIC_NAME = re.compile(r"[A-Za-z0-9_-]+\.(html|js|css|svg|png)")


class ServerNotStarted(Unavailable):
    """The web server did not come up (its port is taken, or uvicorn failed to start)."""


def content_security_policy(*, script_src: str = "'self'", img_src: str = "'self' data:") -> str:
    """Same-origin everything, nothing framed, no forms."""
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {script_src}",
            "style-src 'self'",
            f"img-src {img_src}",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeaders:
    """ASGI middleware: the security headers on every answer of the wrapped application (a header
    the application set itself, such as Cache-Control on a vendor file, is kept)."""

    def __init__(self, app: ASGIApp, csp: str):
        self.app = app
        self.headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"content-security-policy", csp.encode()),
            (b"cache-control", b"no-store"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((n, v) for n, v in self.headers if n not in present),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def json_response(data: Any, status: int = 200, *, default: Callable[[Any], Any] | None = None) -> Response:
    """``data`` as JSON (``default`` for what json cannot write by itself)."""
    return Response(json.dumps(data, default=default), status_code=status, media_type="application/json")


def not_found() -> Response:
    return Response("not found", status_code=404, media_type="text/plain")


class PageFiles:
    """A page's folder and its vendor files: only names like ``app.js`` directly in the folder (no
    sub-paths, no dot files), and only the listed vendor files under ``vendor/``. ``shared`` names
    files of another page served beside this page's own (the patient's app uses the dApp's
    ``rxcore.js`` and ``handover.js``); a page's own file of the same name wins."""

    def __init__(
        self, page_name: str, static_dir: Path, vendor: dict[str, Path], shared: dict[str, Path] | None = None
    ):
        self.page_name = page_name
        self.static_dir = static_dir.resolve()
        self.vendor = dict(vendor)
        self.shared = dict(shared or {})
        missing = [str(path) for path in [*self.vendor.values(), *self.shared.values()] if not path.is_file()]
        if missing:
            raise BuildNotFound(f"the {page_name}'s libraries are not installed ({', '.join(missing)}): run `npm ci`")
        if not (self.static_dir / "index.html").is_file():
            raise BuildNotFound(f"the {page_name}'s page is missing ({self.static_dir / 'index.html'})")

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.index, methods=["GET"]),
            Route("/vendor/{name}", self.vendor_file, methods=["GET"]),
            Route("/{name}", self.file, methods=["GET"]),
        ]

    async def index(self, request: Request) -> Response:
        return self._send("index.html")

    async def file(self, request: Request) -> Response:
        return self._send(request.path_params["name"])

    async def vendor_file(self, request: Request) -> Response:
        file = self.vendor.get(request.path_params["name"])
        if file is None:
            return not_found()
        return Response(file.read_bytes(), media_type=STATIC_TYPES[".js"], headers={"Cache-Control": "max-age=3600"})

    def _send(self, name: str) -> Response:
        file = self.static_dir / name
        if STATIC_NAME.fullmatch(name) and not file.is_file() and name in self.shared:
            file = self.shared[name]
        if not STATIC_NAME.fullmatch(name) or not file.is_file():
            return not_found()
        return Response(file.read_bytes(), media_type=STATIC_TYPES[file.suffix])


class Part:
    """One part of the application (the dApp, the console): a prefix, its Starlette app and what to
    start and stop with the server (the console's follower)."""

    def __init__(
        self,
        name: str,
        prefix: str,
        app: ASGIApp,
        *,
        start: Callable[[], None] | None = None,
        stop: Callable[[], None] | None = None,
    ):
        self.name = name
        self.prefix = prefix
        self.app = app
        self._start = start
        self._stop = stop

    def start(self) -> None:
        if self._start is not None:
            self._start()

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()


def build_app(parts: Sequence[Part], *, auth: Any = None) -> Starlette:
    """The one application: each part mounted under its prefix (with a redirect from the bare prefix),
    the sign-in routes under /auth when ``auth`` is given, and ``/`` leading to the first part."""
    routes: list[BaseRoute] = []
    if auth is not None:
        routes.append(Mount("/auth", app=SecurityHeaders(auth.app(), content_security_policy())))
    for part in parts:
        routes.append(Route(part.prefix, _redirect_to(part.prefix + "/"), methods=["GET"]))
        routes.append(Mount(part.prefix, app=part.app))
    if parts:
        routes.append(Route("/", _redirect_to(parts[0].prefix + "/"), methods=["GET"]))
    app = Starlette(routes=routes)
    app.state.parts = {part.name: part for part in parts}
    app.state.auth = auth
    return app


def _redirect_to(target: str):
    async def redirect(request: Request) -> Response:
        return RedirectResponse(target, status_code=307)

    return redirect


class WebServer:
    """The application on uvicorn in a daemon thread. ``url`` is the server's root; ``part_url(name)``
    a part's page. ``start()`` serves (and starts the parts' background work); ``stop()`` ends both."""

    def __init__(
        self,
        app: Starlette,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        parts: Sequence[Part] = (),
        log_level: str = "warning",
    ):
        import uvicorn

        self.app = app
        self.parts = {part.name: part for part in parts}
        # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only for a socket
        # that says it is TCP; without it every keep-alive answer waits ~40 ms for the client's delayed ACK.
        self.socket = socket.socket(
            socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
        )
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((host, port))
        except OSError as exc:
            self.socket.close()
            raise ServerNotStarted(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.socket.listen(2048)
        self.host, self.port = self.socket.getsockname()[:2]
        auth = getattr(app.state, "auth", None)
        if auth is not None and auth.origin is None:
            auth.set_origin(self.root_url)
        config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off", server_header=False)
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def root_url(self) -> str:
        """The server's root (``/``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def url(self) -> str:
        return self.root_url

    def part_url(self, name: str) -> str:
        """A part's page."""
        return self.root_url.rstrip("/") + self.parts[name].prefix + "/"

    def start(self) -> "WebServer":
        if self._thread is None:
            for part in self.parts.values():
                part.start()
            self._thread = threading.Thread(
                target=self.server.run, kwargs={"sockets": [self.socket]}, name="rxchain-web", daemon=True
            )
            self._thread.start()
            deadline = time.monotonic() + 30
            while not self.server.started:
                if not self._thread.is_alive() or time.monotonic() > deadline:
                    raise ServerNotStarted(f"the web server on {self.url} did not start")
                time.sleep(0.01)
        return self

    def wait(self) -> None:
        """Blocks until the server ends (Ctrl-C raises KeyboardInterrupt here)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=1.0)

    def stop(self) -> None:
        if self._thread is not None:
            self.server.should_exit = True
            self._thread.join(timeout=15)
            self._thread = None
        for part in self.parts.values():
            part.stop()
        self.socket.close()

    def __enter__(self) -> "WebServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PartServer(WebServer):
    """A server of one part whose ``url`` is that part's page (what the tests of one page use)."""

    def __init__(self, app: Starlette, part: Part, host: str = "127.0.0.1", port: int = 0):
        super().__init__(app, host, port, parts=[part])
        self.part = part

    @property
    def url(self) -> str:
        return self.part_url(self.part.name)
