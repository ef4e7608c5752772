"""The sign-in's rate limits, as the attacker: one client asking for nonce after nonce, or trying
signature after signature, is refused (429, Retry-After) while another client still signs in; the
nonce store stays bounded, per client and in all. Clients differ by their IP address: each visitor
here connects from its own loopback address (127.0.0.x), as different machines would."""

from __future__ import annotations

import pytest
import requests
from requests.adapters import HTTPAdapter

from .conftest import Visitor, make_web

#: Slow enough refills that no token comes back during a test (nothing here depends on timing).
SLOW = 1 / 60


class FromAddress(HTTPAdapter):
    """Connects from ``address`` (a loopback address other than 127.0.0.1: another client)."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def visitor_from(server, address: str) -> Visitor:
    http = requests.Session()
    http.mount("http://", FromAddress(address))
    return Visitor(server, http)


@pytest.fixture
def limited(deployment, rpc_url, indexed):
    """limited(**limits) -> a started server with these rate limits (stopped after the test)."""
    from rxchain.web.auth import Limits

    servers = []

    def _make(**limits):
        server = make_web(deployment, rpc_url, indexed, limits=Limits(**limits)).start()
        servers.append(server)
        return server

    yield _make
    for server in servers:
        server.stop()


def ask(visitor: Visitor, address: str) -> requests.Response:
    return visitor.post("/auth/message", {"address": address})


def test_one_client_asking_for_nonces_is_refused_while_another_signs_in(limited, ids):
    server = limited(messages_burst=8, messages_per_minute=SLOW, nonces_per_client=3)
    attacker, member = visitor_from(server, "127.0.0.2"), visitor_from(server, "127.0.0.3")
    answers = [ask(attacker, ids["regulator"].address) for _ in range(40)]
    assert [a.status_code for a in answers] == [200] * 8 + [429] * 32
    refused = answers[-1]
    assert refused.json()["reason"] == "rate" and int(refused.headers["Retry-After"]) >= 1
    # the attacker holds 3 unused nonces at most, whatever it asked
    assert server.auth.store.nonce_count("127.0.0.2") == 3 == server.auth.store.nonce_count()
    # its oldest messages no longer sign in: their nonces were replaced by its newer ones
    oldest = answers[0].json()["message"]
    assert attacker.sign_in_with(oldest, ids["regulator"].key).json()["reason"] == "nonce"

    signed = member.sign_in(ids["auditor"])
    assert signed.status_code == 200 and signed.json()["view"] == "all"
    assert member.get("/console/api/summary").status_code == 200


def test_a_forwarded_for_header_does_not_make_another_client(limited, ids):
    # uvicorn believes X-Forwarded-For from a trusted proxy only (127.0.0.1 by default), not from a client
    server = limited(messages_burst=3, messages_per_minute=SLOW)
    attacker = visitor_from(server, "127.0.0.2")
    codes = []
    for i in range(10):
        attacker.http.headers["X-Forwarded-For"] = f"198.51.100.{i}"
        codes.append(ask(attacker, ids["regulator"].address).status_code)
    assert codes == [200] * 3 + [429] * 7


def test_trying_signature_after_signature_is_refused_before_any_check(limited, ids):
    server = limited(sign_ins_burst=5, sign_ins_per_minute=SLOW)
    attacker, member = visitor_from(server, "127.0.0.2"), visitor_from(server, "127.0.0.3")
    message = attacker.message(ids["regulator"].address)
    tries = [attacker.post("/auth/sign-in", {"message": message, "signature": "0x" + "11" * 65}) for _ in range(12)]
    assert [t.json()["reason"] for t in tries] == ["signature"] * 5 + ["rate"] * 7
    assert all(t.status_code == 429 and int(t.headers["Retry-After"]) >= 1 for t in tries[5:])
    # even its own correctly signed message is refused now: the bucket is empty
    assert attacker.sign_in_with(message, ids["regulator"].key).status_code == 429
    assert member.sign_in(ids["regulator"]).status_code == 200


def test_many_clients_cannot_grow_the_nonce_store_past_its_bound(limited, ids):
    server = limited(messages_burst=4, messages_per_minute=SLOW, nonces_per_client=2, nonces=10)
    answers = {}
    for host in range(2, 12):  # ten clients, two nonces each would be twenty
        visitor = visitor_from(server, f"127.0.0.{host}")
        answers[host] = [ask(visitor, ids["regulator"].address) for _ in range(2)]
    assert server.auth.store.nonce_count() == 10
    codes = [a.status_code for host in sorted(answers) for a in answers[host]]
    assert codes == [200] * 10 + [503] * 10
    full = answers[11][-1]
    assert full.json()["reason"] == "busy" and 1 <= int(full.headers["Retry-After"]) <= 301
    # a client that holds nonces still gets new ones (its oldest is replaced), and signs in with them
    first = visitor_from(server, "127.0.0.2")
    assert first.sign_in(ids["regulator"]).status_code == 200
    assert server.auth.store.nonce_count() == 9  # the nonce it signed in with is spent
