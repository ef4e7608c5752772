"""Fixtures for the web application with sign-in: the scripted workload on ape's ephemeral anvil,
indexed into SQLite once per module, and ``rx serve``'s application (the dApp and the console, sign-in
on) on uvicorn in a thread. Members sign in as a browser would, over HTTP, with their keys."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import requests
from eth_account import Account
from eth_account.messages import encode_defunct


@pytest.fixture(scope="module")
def indexed(scenario, deployment, rpc_url, tmp_path_factory) -> str:
    from rxchain.indexer import index

    db = str(tmp_path_factory.mktemp("web") / "index.sqlite")
    index(rpc_url, deployment.registry, deployment.deploy_block, db)
    return db


#: The shared servers' rate limits: their tests sign in dozens of times from 127.0.0.1 within seconds
#: (test_sign_in_limits.py tests the limits on servers of its own).
ROOMY = dict(messages_burst=1000, sign_ins_burst=1000)


def make_web(deployment, rpc_url, db, *, origin=None, session_seconds=900, dev_keys=None, limits=None):
    """The whole application (dApp + console) with sign-in, not yet started (its ``auth`` alongside).
    The head is read on every request (head_ttl 0), so a revocation shows at the very next request."""
    from rxchain.web.auth import Auth, Limits, Membership
    from rxchain.web.console import console_part, make_console
    from rxchain.web.dapp import build_config, dapp_part
    from rxchain.web.server import WebServer, build_app

    auth = Auth(
        Membership(rpc_url, deployment.registry, head_ttl=0),
        deployment.chain_id,
        origin=origin,
        session_seconds=session_seconds,
        dev_keys=dev_keys,
        limits=limits or Limits(**ROOMY),
    )
    parts = [
        console_part(make_console(db, rpc_url=rpc_url), auth=auth),
        dapp_part(build_config("local", rpc_url, deployment=deployment), auth=auth),
    ]
    server = WebServer(build_app(parts, auth=auth), "127.0.0.1", 0, parts=parts)
    server.auth = auth
    return server


@pytest.fixture(scope="module")
def web(deployment, rpc_url, indexed):
    server = make_web(deployment, rpc_url, indexed).start()
    yield server
    server.stop()


@dataclass
class Visitor:
    """A browser-like HTTP client of the server (its own cookie jar)."""

    server: object
    http: requests.Session

    def url(self, path: str) -> str:
        return self.server.root_url.rstrip("/") + path

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.url(path), timeout=30)

    def post(self, path: str, body) -> requests.Response:
        return self.http.post(self.url(path), json=body, timeout=30)

    def message(self, address: str) -> str:
        response = self.post("/auth/message", {"address": address})
        assert response.status_code == 200, response.text
        return response.json()["message"]

    def sign_in_with(self, message: str, key) -> requests.Response:
        signature = Account.sign_message(encode_defunct(text=message), key).signature.hex()
        return self.post("/auth/sign-in", {"message": message, "signature": "0x" + signature.removeprefix("0x")})

    def sign_in(self, account) -> requests.Response:
        return self.sign_in_with(self.message(account.address), account.key)

    def rpc(self, method: str, params: list) -> dict:
        response = self.post("/dapp/rpc", {"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        assert response.status_code == 200
        return response.json()


@pytest.fixture
def visitor(web):
    return Visitor(web, requests.Session())


@pytest.fixture
def visitors(web):
    """visitors() -> a new Visitor each call (several people at once)."""
    return lambda: Visitor(web, requests.Session())


@pytest.fixture
def another_web(deployment, rpc_url, indexed):
    """another_web(**options) -> a started server of its own (origin, session_seconds...), stopped after the test."""
    servers = []

    def _make(**options):
        server = make_web(deployment, rpc_url, indexed, **options).start()
        servers.append(server)
        return server, Visitor(server, requests.Session())

    yield _make
    for server in servers:
        server.stop()
