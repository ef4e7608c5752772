"""The hand-over codes in JavaScript (dapp/handover.js, what the pharmacy dApp and the patient's app run)
against the Python module (rxchain.core.handover), with node: a code made on one side reads on the
other, the same input gives byte-identical text on both, and a bad code is refused for the same
reason (the JavaScript error's ``code`` and ``key`` against the Python exception's class and key)."""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import replace

import pytest
import rfc8785
from eth_account import Account
from eth_utils import keccak

from rxchain.core import handover as h
from rxchain.core.claims import ANYONE
from rxchain.core.payload import (
    MalformedPayload,
    NonCanonicalPayload,
    NotAPayload,
    PayloadChecksumMismatch,
    PayloadError,
    PayloadTampered,
    PayloadTooLarge,
    PrescriptionPayload,
    ClaimKey,
    TruncatedPayload,
    UnsupportedPayloadVersion,
    WrongChain,
    WrongRegistry,
    encode_payload,
)
from rxchain.dev.demo import demo_document

from .nodejs import run_node

CHAIN = 31337
NOW = 1_900_000_000

#: Runs the operations read from stdin (JSON list) with dapp/handover.js; prints one result per operation.
RUNNER = """
import { readFileSync } from "node:fs";
import { ethers } from "ethers";
const h = await import(new URL("./dapp/handover.js", "file://" + process.cwd() + "/").href);
const core = await import(new URL("./dapp/rxcore.js", "file://" + process.cwd() + "/").href);
const ops = JSON.parse(readFileSync(0, "utf8"));
const decoders = { consent: h.decodeConsentRequest, authorization: h.decodeAuthorization,
                   delivery: h.decodeDeliveryRequest, receipt: h.decodeReceipt };
const encoders = { consent: h.encodeConsentRequest, authorization: h.encodeAuthorization,
                   delivery: h.encodeDeliveryRequest, receipt: h.encodeReceipt };
const out = [];
for (const op of ops) {
  try {
    if (op.op === "decode") {
      const decoded = decoders[op.kind](op.text, op.expected || null);
      out.push({ ok: encoders[op.kind](decoded), decoded });
    } else if (op.op === "authorize" || op.op === "receipt") {
      const payload = await core.decodePayload(op.rx1);
      const claim = new ethers.Wallet(payload.claimKey);
      const made = op.op === "authorize"
        ? h.encodeAuthorization(await h.authorize(payload, claim, h.decodeConsentRequest(op.request), op.fillsLeft))
        : h.encodeReceipt(await h.signReceiptFor(payload, claim, h.decodeDeliveryRequest(op.request)));
      out.push({ ok: made });
    } else if (op.op === "check") {
      const fn = op.kind === "authorization" ? h.checkAuthorization : h.checkReceipt;
      fn(decoders[op.kind](op.text), op.against);
      out.push({ ok: "" });
    }
  } catch (error) {
    out.push({ error: { code: error.code || "exception", key: error.key ?? null, message: String(error.message) } });
  }
}
console.log(JSON.stringify(out));
"""


def run_js(ops: list[dict]) -> list[dict]:
    return run_node(RUNNER, ops)


def reason(exc: PayloadError) -> tuple[str, str | None]:
    """The JavaScript code (and key) that stands for a Python refusal."""
    for cls, code in (
        (NonCanonicalPayload, "checksum"),
        (NotAPayload, "not-a-payload"),
        (PayloadTooLarge, "too-large"),
        (TruncatedPayload, "truncated"),
        (PayloadChecksumMismatch, "checksum"),
        (UnsupportedPayloadVersion, "version"),
        (WrongChain, "wrong-chain"),
        (WrongRegistry, "wrong-registry"),
        (PayloadTampered, "tampered"),
        (h.BadHandoverSignature, "bad-signature"),
        (h.HandoverExpired, "expired"),
        (h.AuthorizationForAnotherPharmacy, "another-pharmacy"),
        (h.AuthorizationForAnotherFill, "another-fill"),
        (h.ReceiptForAnotherDelivery, "another-delivery"),
    ):
        if isinstance(exc, cls):
            return code, None
    assert isinstance(exc, MalformedPayload), exc
    return "malformed", exc.key


def raw_frame(obj, tag: str) -> str:
    """A code around any JSON value, framed as frame() frames one (no checks)."""
    body = zlib.compress(rfc8785.dumps(obj), 9)
    return f"{tag}1." + base64.urlsafe_b64encode(body + keccak(body)[:4]).rstrip(b"=").decode()


def unpacked(text: str) -> dict:
    encoded = text.split(".", 1)[1]
    raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    return json.loads(zlib.decompress(raw[:-4]))


@pytest.fixture(scope="module")
def codes():
    """One prescription and its four codes, made in Python."""
    doctor, pharmacy, courier, registry = (Account.create().address for _ in range(4))
    payload = PrescriptionPayload.create(
        chain_id=CHAIN, registry=registry, claim_key=ClaimKey.generate(), document=demo_document(doctor, NOW)
    )
    request = h.ConsentRequest(CHAIN, registry, pharmacy, NOW + 900)
    auth = h.authorize(payload, request, 2)
    delivery = h.DeliveryRequest(CHAIN, registry, payload.rx_id, courier, 1, NOW + 900)
    receipt = h.sign_receipt_for(payload, delivery)
    return {
        "payload": payload,
        "rx1": encode_payload(payload),
        "request": request,
        "auth": auth,
        "delivery": delivery,
        "receipt": receipt,
        "pharmacy": pharmacy,
        "courier": courier,
        "registry": registry,
    }


def test_python_codes_read_in_javascript_and_write_back_byte_identical(codes):
    texts = {
        "consent": codes["request"].encode(),
        "authorization": codes["auth"].encode(),
        "delivery": codes["delivery"].encode(),
        "receipt": codes["receipt"].encode(),
    }
    answers = run_js([{"op": "decode", "kind": kind, "text": text} for kind, text in texts.items()])
    for (kind, text), answer in zip(texts.items(), answers):
        assert "error" not in answer, (kind, answer)
        assert answer["ok"] == text, kind
    auth = answers[1]["decoded"]
    assert auth["claimAddress"] == codes["payload"].claim_key.address
    assert auth["pharmacy"] == codes["pharmacy"] and auth["fillsLeft"] == 2 and auth["isPaper"] is False
    assert "0x" + codes["payload"].rx_id.hex() == auth["rxId"]


def test_javascript_signs_what_python_signs_and_python_reads_it(codes):
    answers = run_js(
        [
            {"op": "authorize", "rx1": codes["rx1"], "request": codes["request"].encode(), "fillsLeft": 2},
            {"op": "receipt", "rx1": codes["rx1"], "request": codes["delivery"].encode()},
        ]
    )
    authorization, receipt = (answer["ok"] for answer in answers)
    assert (
        authorization == codes["auth"].encode()
    )  # same input, byte-identical text (RFC 6979 signatures, zlib level 9)
    assert receipt == codes["receipt"].encode()
    assert h.decode_authorization(authorization) == codes["auth"]
    assert h.decode_receipt(receipt) == codes["receipt"]


def test_paper_slips_read_in_javascript(codes):
    fills, receipts = h.paper_slips(codes["payload"], 2, NOW + 86_400)
    ops = [{"op": "decode", "kind": "authorization", "text": slip.encode()} for slip in fills]
    ops += [{"op": "decode", "kind": "receipt", "text": slip.encode()} for slip in receipts]
    answers = run_js(ops)
    assert [a["ok"] for a in answers] == [op["text"] for op in ops]
    assert all(a["decoded"]["isPaper"] for a in answers)


def bad_codes(codes) -> list[tuple[str, str, str, dict | None]]:
    """(name, kind, text, expected deployment) of codes both sides must refuse."""
    auth, receipt, rx1 = codes["auth"], codes["receipt"], codes["rx1"]
    good = auth.encode()
    obj = unpacked(good)
    flipped = good[:40] + ("A" if good[40] != "A" else "B") + good[41:]
    encoded = good[5:]
    spare = None
    for char in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_":
        candidate = "RXA1." + encoded[:-1] + char
        if candidate != good and base64.urlsafe_b64decode(
            encoded[:-1] + char + "=" * (-len(encoded) % 4)
        ) == base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)):
            spare = candidate
            break
    other = Account.create()
    forged = h._authorization(
        replace(codes["payload"], claim_key=ClaimKey(bytes(other.key))), codes["pharmacy"], 2, NOW + 900
    )
    body = zlib.compress(rfc8785.dumps(obj), 9) + b"\x00\x01"
    trailing = "RXA1." + base64.urlsafe_b64encode(body + keccak(body)[:4]).rstrip(b"=").decode()
    doc = json.loads(json.dumps(obj["doc"]))
    doc["entry"][0]["resource"]["dosageInstruction"][0]["text"] = "take twenty at once"
    cases = [
        ("empty", "authorization", "   ", None),
        ("prescription code", "authorization", rx1, None),
        ("consent request", "authorization", codes["request"].encode(), None),
        ("receipt as authorization", "authorization", receipt.encode(), None),
        ("truncated", "authorization", good[:-12], None),
        ("one character lost", "authorization", good[:-1], None),
        ("one character more", "authorization", good + "A", None),
        ("one character changed", "authorization", flipped, None),
        ("outside base64url", "authorization", good[:30] + "+" + good[31:], None),
        ("version 2 tag", "authorization", "RXA2." + good[5:], None),
        ("bytes after the zlib stream", "authorization", trailing, None),
        ("a JSON array", "authorization", raw_frame([1, 2], "RXA"), None),
        ("version 2 inside", "authorization", raw_frame({**obj, "v": 2}, "RXA"), None),
        ("no version", "authorization", raw_frame({k: v for k, v in obj.items() if k != "v"}, "RXA"), None),
        (
            "missing pharmacy",
            "authorization",
            raw_frame({k: v for k, v in obj.items() if k != "pharmacy"}, "RXA"),
            None,
        ),
        ("unknown key", "authorization", raw_frame({**obj, "note": "hi"}, "RXA"), None),
        (
            "the private key smuggled in",
            "authorization",
            raw_frame({**obj, "privateKey": codes["payload"].claim_key.hex}, "RXA"),
            None,
        ),
        ("chain id 0", "authorization", raw_frame({**obj, "chainId": 0}, "RXA"), None),
        ("bad pharmacy address", "authorization", raw_frame({**obj, "pharmacy": "0x1234"}, "RXA"), None),
        (
            "bad checksum address",
            "authorization",
            raw_frame({**obj, "registry": bad_checksum(obj["registry"])}, "RXA"),
            None,
        ),
        ("rxId not hex", "authorization", raw_frame({**obj, "rxId": "0x" + "g" * 64}, "RXA"), None),
        ("fills 256", "authorization", raw_frame({**obj, "fillsLeft": 256}, "RXA"), None),
        ("fills as text", "authorization", raw_frame({**obj, "fillsLeft": "2"}, "RXA"), None),
        ("deadline negative", "authorization", raw_frame({**obj, "deadline": -1}, "RXA"), None),
        ("deadline past uint40", "authorization", raw_frame({**obj, "deadline": 2**40}, "RXA"), None),
        ("short signature", "authorization", raw_frame({**obj, "signature": obj["signature"][:-2]}, "RXA"), None),
        ("doc not an object", "authorization", raw_frame({**obj, "doc": "x"}, "RXA"), None),
        ("doc altered", "authorization", raw_frame({**obj, "doc": doc}, "RXA"), None),
        ("another pharmacy written in", "authorization", raw_frame({**obj, "pharmacy": codes["courier"]}, "RXA"), None),
        ("another fill written in", "authorization", raw_frame({**obj, "fillsLeft": 3}, "RXA"), None),
        ("later deadline written in", "authorization", raw_frame({**obj, "deadline": NOW + 99_999}, "RXA"), None),
        (
            "signed by another key",
            "authorization",
            raw_frame({**obj, "signature": "0x" + forged.signature.hex()}, "RXA"),
            None,
        ),
        ("signature v 29", "authorization", raw_frame({**obj, "signature": obj["signature"][:-2] + "1d"}, "RXA"), None),
        ("another chain expected", "authorization", good, {"chainId": CHAIN + 1}),
        ("another registry expected", "authorization", good, {"registry": codes["courier"]}),
        (
            "receipt with other terms",
            "receipt",
            raw_frame({**unpacked(receipt.encode()), "terms": "0x" + "11" * 32}, "RXR"),
            None,
        ),
        (
            "receipt for another deliverer",
            "receipt",
            raw_frame({**unpacked(receipt.encode()), "deliverer": codes["pharmacy"]}, "RXR"),
            None,
        ),
        ("receipt for another chain", "receipt", receipt.encode(), {"chainId": 1}),
        (
            "consent with a bad pharmacy",
            "consent",
            raw_frame({**unpacked(codes["request"].encode()), "pharmacy": "nobody"}, "RXP"),
            None,
        ),
        (
            "consent with an extra key",
            "consent",
            raw_frame({**unpacked(codes["request"].encode()), "rxId": "0x" + "00" * 32}, "RXP"),
            None,
        ),
        (
            "delivery missing fills",
            "delivery",
            raw_frame({k: v for k, v in unpacked(codes["delivery"].encode()).items() if k != "fillsLeft"}, "RXD"),
            None,
        ),
        ("delivery as consent", "consent", codes["delivery"].encode(), None),
    ]
    if spare is not None:
        cases.append(("spare bits set in the last character", "authorization", spare, None))
    return cases


def python_decode(kind: str, text: str, expected: dict | None):
    expected = expected or {}
    kwargs = {"expected_chain_id": expected.get("chainId"), "expected_registry": expected.get("registry")}
    if kind == "authorization":
        return h.decode_authorization(text, **kwargs)
    if kind == "receipt":
        return h.decode_receipt(text, **kwargs)
    return {"consent": h.decode_consent_request, "delivery": h.decode_delivery_request}[kind](text)


def bad_checksum(address: str) -> str:
    """``address`` with one letter's case flipped so that it stays mixed case: always a wrong EIP-55
    checksum (an all-lower or all-upper address carries no checksum and would be accepted)."""
    body = address[2:]
    for i, c in enumerate(body):
        if c.isalpha():
            flipped = body[:i] + c.swapcase() + body[i + 1 :]
            letters = [x for x in flipped if x.isalpha()]
            if any(x.islower() for x in letters) and any(x.isupper() for x in letters):
                return "0x" + flipped
    raise AssertionError(f"{address} has too few letters to carry a wrong checksum")


def test_bad_codes_are_refused_for_the_same_reason_on_both_sides(codes):
    cases = bad_codes(codes)
    answers = run_js(
        [{"op": "decode", "kind": kind, "text": text, "expected": expected} for _, kind, text, expected in cases]
    )
    seen = set()
    for (name, kind, text, expected), answer in zip(cases, answers):
        with pytest.raises(PayloadError) as refused:
            python_decode(kind, text, expected)
        assert "error" in answer, f"{name}: JavaScript accepted what Python refuses ({refused.value})"
        code, key = reason(refused.value)
        assert (answer["error"]["code"], answer["error"]["key"]) == (code, key), (
            f"{name}: Python {refused.value!r}, JS {answer['error']}"
        )
        assert answer["error"]["message"] and "undefined" not in answer["error"]["message"], name
        seen.add(code)
    # every kind of refusal the decoders have was exercised
    assert seen >= {
        "not-a-payload",
        "truncated",
        "checksum",
        "version",
        "malformed",
        "tampered",
        "bad-signature",
        "wrong-chain",
        "wrong-registry",
    }


def test_checks_before_sending_agree(codes):
    auth, receipt = codes["auth"].encode(), codes["receipt"].encode()
    cases = [
        ("authorization", auth, {"pharmacy": codes["pharmacy"], "fillsLeft": 2, "now": NOW}),
        ("authorization", auth, {"pharmacy": codes["courier"], "fillsLeft": 2, "now": NOW}),
        ("authorization", auth, {"pharmacy": codes["pharmacy"], "fillsLeft": 1, "now": NOW}),
        ("authorization", auth, {"pharmacy": codes["pharmacy"], "fillsLeft": 2, "now": NOW + 901}),
        ("receipt", receipt, {"deliverer": codes["courier"], "fillsLeft": 1, "now": NOW}),
        ("receipt", receipt, {"deliverer": codes["pharmacy"], "fillsLeft": 1, "now": NOW}),
        ("receipt", receipt, {"deliverer": codes["courier"], "fillsLeft": 0, "now": NOW}),
        ("receipt", receipt, {"deliverer": codes["courier"], "fillsLeft": 1, "now": NOW + 901}),
    ]
    answers = run_js([{"op": "check", "kind": kind, "text": text, "against": against} for kind, text, against in cases])
    for (kind, text, against), answer in zip(cases, answers):
        check = h.check_authorization if kind == "authorization" else h.check_receipt
        decoded = h.decode_authorization(text) if kind == "authorization" else h.decode_receipt(text)
        who = {"pharmacy": against["pharmacy"]} if kind == "authorization" else {"deliverer": against["deliverer"]}
        try:
            check(decoded, **who, fills_left=against["fillsLeft"], now=against["now"])
        except PayloadError as exc:
            assert answer.get("error", {}).get("code") == reason(exc)[0], (kind, against, answer)
        else:
            assert answer == {"ok": ""}, (kind, against, answer)


def test_a_paper_slip_passes_the_checks_at_any_pharmacy(codes):
    fills, _ = h.paper_slips(codes["payload"], 1, NOW + 86_400)
    answers = run_js(
        [
            {
                "op": "check",
                "kind": "authorization",
                "text": fills[0].encode(),
                "against": {"pharmacy": codes["courier"], "fillsLeft": 1, "now": NOW},
            }
        ]
    )
    assert answers == [{"ok": ""}]
    assert fills[0].pharmacy == ANYONE
