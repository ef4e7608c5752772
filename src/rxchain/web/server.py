"""What the project's two local web pages (the pharmacy dApp and the regulator's console) share: a
threaded HTTP server that serves one folder of page files and a few pinned npm files, with strict
security headers, from a daemon thread.

Only names like ``app.js`` directly in the page's folder are served (no sub-paths, no dot files), and
only the listed vendor files under ``/vendor/``; every answer carries ``nosniff``, ``no-referrer`` and
the page's Content-Security-Policy.
"""

from __future__ import annotations

import json
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from rxchain.errors import BuildNotFound

STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
STATIC_NAME = re.compile(r"[A-Za-z0-9_-]+\.(html|js|css|svg|png)")


def content_security_policy(*, script_src: str = "'self'", img_src: str = "'self' data:") -> str:
    """Same-origin everything, nothing framed, no forms."""
    return "; ".join([
        "default-src 'none'", f"script-src {script_src}", "style-src 'self'", f"img-src {img_src}", "connect-src 'self'",
        "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
    ])  # fmt: skip


class PageServer(ThreadingHTTPServer):
    """Serves a page's folder and its vendor files. ``start()`` serves from a daemon thread; ``stop()``
    ends it and closes the socket. Subclasses add their own routes in their handler."""

    daemon_threads = True
    allow_reuse_address = True
    #: What the page is, for error messages and the thread's name ("dApp", "console").
    page_name = "page"

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        static_dir: Path,
        vendor: dict[str, Path],
        csp: str,
        log: Callable[[str], None] | None = None,
    ):
        self.static_dir = static_dir.resolve()
        self.vendor = vendor
        missing = [str(path) for path in self.vendor.values() if not path.is_file()]
        if missing:
            raise BuildNotFound(f"the {self.page_name}'s libraries are not installed ({', '.join(missing)}): run `npm ci`")
        if not (self.static_dir / "index.html").is_file():
            raise BuildNotFound(f"the {self.page_name}'s page is missing ({self.static_dir / 'index.html'})")
        self.content_security_policy = csp
        self.log = log
        self._thread: threading.Thread | None = None
        super().__init__(address, handler)

    @property
    def url(self) -> str:
        """The page's address."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self):
        """Serves from a daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.serve_forever, name=f"rxchain-{self.page_name}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and closes the socket."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PageHandler(BaseHTTPRequestHandler):
    """Answers for a :class:`PageServer`: its files, JSON, and the error replies."""

    server: PageServer
    sys_version = ""
    protocol_version = "HTTP/1.1"
    #: The methods the server answers (the Allow header of a 405).
    allowed_methods = "GET"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        if self.server.log is not None:
            self.server.log(f"{self.address_string()} {format % args}")

    def serve_file(self, path: str) -> None:
        """``path`` from the page's folder (``/`` is index.html) or, under /vendor/, a vendor file."""
        if path.startswith("/vendor/"):
            file = self.server.vendor.get(path[len("/vendor/") :])
            if file is None:
                self.not_found()
            else:
                self.send(HTTPStatus.OK, STATIC_TYPES[".js"], file.read_bytes(), cache=True)
            return
        name = "index.html" if path == "/" else path.lstrip("/")
        file = self.server.static_dir / name
        if not STATIC_NAME.fullmatch(name) or not file.is_file():
            self.not_found()
        else:
            self.send(HTTPStatus.OK, STATIC_TYPES[file.suffix], file.read_bytes())

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        self.method_not_allowed()

    def json(self, data: Any, status: HTTPStatus = HTTPStatus.OK, *, default: Callable[[Any], Any] | None = None) -> None:
        self.send(status, "application/json", json.dumps(data, default=default).encode())

    def not_found(self) -> None:
        self.send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found")

    def method_not_allowed(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", self.allowed_methods)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def send(self, status: HTTPStatus, content_type: str, body: bytes, *, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", self.server.content_security_policy)
        self.end_headers()
        self.wfile.write(body)
