"""Sign-in (EIP-4361) and who sees what, tested as the attacker: a stranger, a member of the wrong role,
another hospital or pharmacy asking for this one's records, a replayed, expired, foreign-domain,
foreign-chain or forged sign-in message, a revoked member with a live session, a relay send without
a pharmacy's session. All against the real server on the real chain."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from siwe import SiweMessage

from rxchain.web.auth import SESSION_COOKIE
from rxchain.web.dapp import NOT_SIGNED_IN_CODE

WHOLE = (
    "/console/api/summary",
    "/console/api/daily",
    "/console/api/hospitals",
    "/console/api/pharmacies",
    "/console/api/delivery-times",
    "/console/api/members",
    "/console/api/expired",
    "/console/api/claims",
    "/console/api/box-alarms",
)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def altered(message: str, **changes) -> str:
    """The server's message with some fields changed (then signed by the test with the right key)."""
    parsed = SiweMessage.from_message(message)
    return parsed.model_copy(update=changes).prepare_message()


def raw_transfer(w3, account) -> str:
    """A signed, sendable 0-value transfer from ``account`` (gas price 0: the chain's free gas)."""
    tx = {
        "to": account.address,
        "value": 0,
        "gas": 21000,
        "gasPrice": 0,
        "nonce": w3.eth.get_transaction_count(account.address),
        "chainId": w3.eth.chain_id,
    }
    return "0x" + bytes(account.sign_transaction(tx).raw_transaction).hex()


# ----------------------------------------------------------------------------------- strangers


def test_a_stranger_sees_the_sign_in_page_and_nothing_else(visitor):
    page = visitor.get("/console/")
    assert page.status_code == 200 and 'id="signin"' in page.text
    assert visitor.get("/console/api/whoami").json() == {"signIn": True, "signedIn": False, "member": None}
    for path in (
        *WHOLE,
        "/console/api/config",
        "/console/api/mine",
        "/console/api/trail/0x" + "ab" * 32,
        "/console/tx/0x" + "cd" * 32,
    ):
        response = visitor.get(path)
        assert response.status_code == 401 and response.json()["error"] == "sign in first", path
    assert visitor.get("/auth/session").json() == {"signedIn": False}

    stranger = Account.create()
    refused = visitor.sign_in(stranger)
    assert refused.status_code == 403 and refused.json()["reason"] == "not-member"
    assert SESSION_COOKIE not in refused.cookies
    assert visitor.get("/console/api/summary").status_code == 401


@pytest.mark.parametrize("role", ["doctor", "courier"])
def test_a_member_of_the_wrong_role_gets_no_session(visitor, ids, role):
    refused = visitor.sign_in(ids[role])
    assert refused.status_code == 403 and refused.json()["reason"] == "not-member"
    assert "regulator, auditor, hospital or pharmacy" in refused.json()["error"]
    assert visitor.get("/console/api/mine").status_code == 401


def test_forged_cookie_is_nobody(visitor):
    visitor.http.cookies.set(SESSION_COOKIE, "made-up-token")
    assert visitor.get("/console/api/summary").status_code == 401
    assert visitor.get("/auth/session").json() == {"signedIn": False}


# ------------------------------------------------------------------------------ the messages


def test_a_replayed_sign_in_message_is_refused(visitors, ids):
    first, attacker = visitors(), visitors()
    message = first.message(ids["regulator"].address)
    signature = Account.sign_message(encode_defunct(text=message), ids["regulator"].key).signature.hex()
    body = {"message": message, "signature": "0x" + signature.removeprefix("0x")}
    assert first.post("/auth/sign-in", body).status_code == 200
    replay = attacker.post("/auth/sign-in", body)  # the same signed message, seen on the wire
    assert replay.status_code == 401 and replay.json()["reason"] == "nonce"
    assert attacker.get("/console/api/summary").status_code == 401
    assert first.get("/console/api/summary").status_code == 200


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", "expired"),
        ("foreign domain", "domain"),
        ("foreign uri", "uri"),
        ("other chain", "chain"),
        ("issued an hour ago", "stale"),
        ("nonce the server never issued", "nonce"),
        ("not valid yet", "expired"),
    ],
)
def test_a_doctored_message_is_refused_even_signed_by_its_account(visitor, ids, case, reason):
    regulator = ids["regulator"]
    message = visitor.message(regulator.address)
    now = datetime.now(timezone.utc)
    changes = {
        "expired": {"issued_at": iso(now - timedelta(minutes=3)), "expiration_time": iso(now - timedelta(minutes=1))},
        "foreign domain": {"domain": "rx-portal.example"},
        "foreign uri": {"uri": "https://rx-portal.example/"},
        "other chain": {"chain_id": 1},
        "issued an hour ago": {"issued_at": iso(now - timedelta(hours=1))},
        "nonce the server never issued": {"nonce": "a1b2c3d4e5f6a7b8"},
        "not valid yet": {"not_before": iso(now + timedelta(hours=1))},
    }[case]
    refused = visitor.sign_in_with(altered(message, **changes), regulator.key)
    assert refused.status_code == 401, refused.text
    assert refused.json()["reason"] == reason
    assert visitor.get("/console/api/summary").status_code == 401
    # the nonce of the untouched message is still good (a refused attempt does not spend it)
    if case != "nonce the server never issued":
        assert visitor.sign_in_with(message, regulator.key).status_code == 200


def test_a_signature_by_another_key_or_garbage_is_refused(visitor, ids):
    message = visitor.message(ids["regulator"].address)
    forged = visitor.sign_in_with(message, ids["pharmacy"].key)  # signed by someone else
    assert forged.status_code == 401 and forged.json()["reason"] == "signature"
    for body in (
        {"message": "hello", "signature": "0x00"},
        {"message": message},
        {},
        {"message": message, "signature": "0x1234"},
    ):
        response = visitor.post("/auth/sign-in", body)
        assert response.status_code in (400, 401) and response.json()["reason"] in ("malformed", "signature"), body
    assert visitor.post("/auth/message", {"address": "not an address"}).status_code == 400
    assert visitor.get("/console/api/summary").status_code == 401


# ------------------------------------------------------------------------------ who sees what


@pytest.mark.parametrize("role", ["regulator", "auditor"])
def test_the_regulator_and_auditors_see_the_whole_console(visitor, ids, role, scenario):
    signed = visitor.sign_in(ids[role])
    assert signed.status_code == 200 and signed.json()["view"] == "all"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Secure" not in cookie
    for path in WHOLE:
        assert visitor.get(path).status_code == 200, path
    assert visitor.get("/console/api/summary").json()["issued"] == len(scenario.prescriptions)
    config = visitor.get("/console/api/config").json()
    assert config["view"] == "all" and config["member"]["address"] == ids[role].address
    assert visitor.get(f"/console/api/trail/{scenario.prescriptions[0].id_hex}").json()["found"] is True
    assert visitor.get("/console/api/mine").status_code == 403


def test_a_hospital_sees_its_own_prescriptions_and_not_the_others(visitors, ids, scenario):
    mine = [p for p in scenario.prescriptions if p.hospital == ids["hospital"].address]
    theirs = [p for p in scenario.prescriptions if p.hospital == ids["hospital2"].address]
    assert mine and theirs
    hospital, other = visitors(), visitors()
    assert hospital.sign_in(ids["hospital"]).json()["view"] == "hospital"
    assert other.sign_in(ids["hospital2"]).json()["view"] == "hospital"

    for path in WHOLE:
        assert hospital.get(path).status_code == 403, path
    assert hospital.get("/console/tx/0x" + "cd" * 32).status_code == 403
    data = hospital.get("/console/api/mine").json()
    assert data["view"] == "hospital" and data["hospital"] == ids["hospital"].address
    assert {r["id"] for r in data["rows"]} == {p.id_hex for p in mine}
    assert data["issued"] == len(mine) == sum(data["byOutcome"].values())
    now = scenario_now(hospital)
    assert data["byOutcome"]["expired unfilled"] == sum(p.expired_unfilled(now) for p in mine)
    assert data["byOutcome"]["cancelled"] == sum(p.status() == "cancelled" for p in mine)
    redeemed = next(r for r in data["rows"] if r["redeemedBy"])
    assert redeemed["redeemedAt"] and redeemed["outcome"] in ("redeemed", "dispatched", "delivered", "received")

    # its own trail, yes; another hospital's, the same answer as a prescription that does not exist
    assert hospital.get(f"/console/api/trail/{mine[0].id_hex}").json()["found"] is True
    foreign = hospital.get(f"/console/api/trail/{theirs[0].id_hex}").json()
    unknown = hospital.get("/console/api/trail/0x" + "ab" * 32).json()
    assert foreign["found"] is False and foreign["steps"] == [] and foreign["prescription"] is None
    assert set(foreign) == set(unknown) and "of yours" in foreign["error"]
    assert {r["id"] for r in other.get("/console/api/mine").json()["rows"]} == {p.id_hex for p in theirs}


def scenario_now(visitor) -> int:
    return visitor.get("/console/api/config").json()["lastBlockTime"]


def test_a_pharmacy_sees_its_own_fills_and_not_the_others(visitors, ids, scenario):
    pharmacy = visitors()
    assert pharmacy.sign_in(ids["pharmacy"]).json()["view"] == "pharmacy"
    for path in WHOLE:
        assert pharmacy.get(path).status_code == 403, path
    data = pharmacy.get("/console/api/mine").json()
    fills = [(p.id_hex, f) for p in scenario.prescriptions for f in p.taken if f.pharmacy == ids["pharmacy"].address]
    assert data["view"] == "pharmacy" and data["fills"] == len(fills) == len(data["rows"])
    assert {r["id"] for r in data["rows"]} == {i for i, _ in fills}
    filled_here = fills[0][0]
    elsewhere = next(
        p.id_hex
        for p in scenario.prescriptions
        if p.taken and all(f.pharmacy != ids["pharmacy"].address for f in p.taken)
    )
    assert pharmacy.get(f"/console/api/trail/{filled_here}").json()["found"] is True
    assert pharmacy.get(f"/console/api/trail/{elsewhere}").json()["found"] is False


# ------------------------------------------------------------------------------- the relay


def test_the_relay_sends_only_for_a_signed_in_pharmacy(visitors, ids, w3):
    anonymous, hospital, pharmacy = visitors(), visitors(), visitors()
    assert anonymous.rpc("eth_chainId", [])["result"] == hex(w3.eth.chain_id)  # reads stay open
    raw = raw_transfer(w3, ids["pharmacy"])
    for who in (anonymous, hospital):
        if who is hospital:
            assert hospital.sign_in(ids["hospital"]).status_code == 200
        refused = who.rpc("eth_sendRawTransaction", [raw])
        assert refused["error"]["code"] == NOT_SIGNED_IN_CODE, refused
    batch = anonymous.post(
        "/dapp/rpc",
        [
            {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
            {"jsonrpc": "2.0", "id": 2, "method": "eth_sendRawTransaction", "params": [raw]},
        ],
    ).json()
    assert "result" in batch[0] and batch[1]["error"]["code"] == NOT_SIGNED_IN_CODE
    before = w3.eth.get_transaction_count(ids["pharmacy"].address)
    assert w3.eth.get_transaction_count(ids["pharmacy"].address) == before

    assert pharmacy.sign_in(ids["pharmacy"]).status_code == 200
    sent = pharmacy.rpc("eth_sendRawTransaction", [raw])
    assert sent.get("result", "").startswith("0x"), sent
    w3.eth.wait_for_transaction_receipt(sent["result"], timeout=30)
    assert w3.eth.get_transaction_count(ids["pharmacy"].address) == before + 1


# --------------------------------------------------------------------------- sessions ending


def test_a_revoked_member_is_out_at_the_next_request(visitors, ids, client, w3):
    pharmacy, hospital = visitors(), visitors()
    assert pharmacy.sign_in(ids["pharmacy"]).status_code == 200
    assert hospital.sign_in(ids["hospital"]).status_code == 200
    assert pharmacy.get("/console/api/mine").status_code == 200 and hospital.get("/console/api/mine").status_code == 200

    client.revoke(ids["regulator"], ids["pharmacy"].address, "pharmacy")
    assert pharmacy.get("/console/api/mine").status_code == 401
    assert pharmacy.get("/auth/session").json() == {"signedIn": False}
    assert (
        pharmacy.rpc("eth_sendRawTransaction", [raw_transfer(w3, ids["pharmacy"])])["error"]["code"]
        == NOT_SIGNED_IN_CODE
    )
    assert pharmacy.sign_in(ids["pharmacy"]).status_code == 403  # and cannot come back

    # a credential that lapses: the hospital's end date moved to just now, then the chain moves on
    now = client.latest_block_time()
    client.renew(ids["regulator"], ids["hospital"].address, now + 5)
    assert hospital.get("/console/api/mine").status_code == 200
    from ape import chain

    chain.mine(timestamp=now + 60)
    assert hospital.get("/console/api/mine").status_code == 401


def test_sign_out_ends_the_session_on_the_server(visitor, ids):
    assert visitor.sign_in(ids["auditor"]).status_code == 200
    token = visitor.http.cookies.get(SESSION_COOKIE)
    assert token and visitor.get("/console/api/summary").status_code == 200
    out = visitor.post("/auth/sign-out", {})
    assert out.status_code == 200 and visitor.get("/console/api/summary").status_code == 401
    visitor.http.cookies.set(SESSION_COOKIE, token)  # the old cookie, kept by an attacker
    assert visitor.get("/console/api/summary").status_code == 401


def test_sessions_are_short_lived(another_web, ids):
    import time

    server, visitor = another_web(session_seconds=1)
    if True:
        signed = visitor.sign_in(ids["auditor"])
        assert signed.status_code == 200 and "Max-Age=1" in signed.headers["set-cookie"]
        time.sleep(2.1)
        visitor.http.cookies.set(SESSION_COOKIE, signed.cookies[SESSION_COOKIE])  # a client that ignores Max-Age
        assert visitor.get("/console/api/summary").status_code == 401


def test_over_tls_the_cookie_is_secure_and_the_domain_is_the_public_one(another_web, ids):
    server, visitor = another_web(origin="https://rx.example")
    if True:
        message = visitor.message(ids["auditor"].address)
        assert message.startswith("rx.example wants you to sign in with your Ethereum account:")
        assert "URI: https://rx.example/" in message
        signed = visitor.sign_in_with(message, ids["auditor"].key)
        assert signed.status_code == 200 and "Secure" in signed.headers["set-cookie"]
        # a message for the address the server listens on is not for its public name
        local = altered(visitor.message(ids["auditor"].address), domain=f"127.0.0.1:{server.port}", uri=server.root_url)
        assert visitor.sign_in_with(local, ids["auditor"].key).json()["reason"] == "domain"


def test_another_site_cannot_sign_a_browser_in_or_out(visitor, ids):
    message = visitor.message(ids["auditor"].address)
    signature = "0x" + Account.sign_message(
        encode_defunct(text=message), ids["auditor"].key
    ).signature.hex().removeprefix("0x")
    body = {"message": message, "signature": signature}
    evil = visitor.http.post(
        visitor.url("/auth/sign-in"), json=body, headers={"Origin": "https://rx-portal.example"}, timeout=10
    )
    assert evil.status_code == 403 and evil.json()["reason"] == "origin"
    import json as _json

    plain = visitor.http.post(
        visitor.url("/auth/sign-in"), data=_json.dumps(body), headers={"Content-Type": "text/plain"}, timeout=10
    )
    assert plain.status_code == 415  # what a form or a no-preflight fetch from elsewhere could send
    own = visitor.http.post(
        visitor.url("/auth/sign-in"), json=body, headers={"Origin": visitor.server.root_url.rstrip("/")}, timeout=10
    )
    assert own.status_code == 200  # the nonce was not spent by the refused attempts
    assert (
        visitor.http.post(
            visitor.url("/auth/sign-out"), json={}, headers={"Origin": "https://rx-portal.example"}, timeout=10
        ).status_code
        == 403
    )
    assert visitor.get("/console/api/summary").status_code == 200
