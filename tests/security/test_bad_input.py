"""Bad input: a catalogue of refusals. Each case shows the named error AND that nothing moved: every
prescription and batch involved, every party's member record, the limits and pause flag, the block
height and every party's nonce read the same afterwards, and the client's outbox holds nothing new.
"""

from __future__ import annotations

import base64
import copy
import json
import zlib
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import rfc8785
from eth_abi import encode as abi_encode
from eth_utils import keccak

from rxchain.core import document as documents
from rxchain import errors
from rxchain.core import payload as payloads
from rxchain.audit import verify_document
from rxchain.core.batch import merkle_proof, merkle_root
from rxchain.core.claims import SECP256K1_ORDER, RegistryDomain, sign_receipt, sign_redeem
from rxchain.chain.client import RegistryClient
from rxchain.chain.deploy import deploy_registry
from rxchain.chain.deployment import Deployment
from rxchain.chain.pipeline import sign_legacy
from rxchain.core.ids import prescription_id, terms_hash
from rxchain.dev.demo import demo_document
from rxchain.chain.outbox import Outbox
from rxchain.core.payload import decode_payload, encode_payload
from rxchain.core.roles import ROLES
from rxchain.core.status import Status
from rxchain.workflow import issue_prescription, redeem_payload
from rxchain.core.ids import ZERO_ADDRESS as ZERO

from rxchain.dev.anvil import free_port

from .chainkit import OwnNode, read_registry
from .workload import address_of

DAY = 86400
ADMIN_ROLE = bytes(32)


# ------------------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Issued:
    """A prescription as its QR code knows it."""

    rx_id: bytes
    terms: bytes
    doctor: str
    doc_hash: bytes
    pharmacy: str
    claim_key: bytes
    claim_address: str
    expires_at: int
    fills: int
    root: bytes | None = None
    proof: tuple = ()


_serial = iter(range(10**9))


def new_rx(
    doctor: str, *, pharmacy: str = ZERO, fills: int = 1, expires_at: int = 0, zero_claim_key: bool = False
) -> Issued:
    n = next(_serial)
    doc_hash = keccak(text=f"bad input document {n}")
    claim_key = keccak(text=f"bad input claim key {n}")
    claim_address = ZERO if zero_claim_key else address_of(claim_key)
    terms = terms_hash(doctor, doc_hash, pharmacy)
    return Issued(
        prescription_id(claim_address, terms),
        terms,
        doctor,
        doc_hash,
        pharmacy,
        claim_key,
        claim_address,
        expires_at,
        fills,
    )


class Desk:
    """Prescriptions in the states the cases need, made through the client; and the "nothing
    moved" check."""

    def __init__(self, client: RegistryClient, rpc, ids: dict):
        self.client, self.rpc, self.ids = client, rpc, ids
        self.known: list[Issued] = []
        self.roots: list[tuple[str, bytes]] = []

    def now(self) -> int:
        return self.rpc.latest_time()

    def issue(self, *, doctor="doctor", pharmacy=None, fills=1, valid_for=DAY) -> Issued:
        doctor = self.ids[doctor]
        rx = new_rx(doctor.address, pharmacy=pharmacy or ZERO, fills=fills, expires_at=self.now() + valid_for)
        self.client.issue(
            doctor, rx.doc_hash, rx.claim_address, rx.expires_at, designated_pharmacy=pharmacy, fills=fills
        )
        self.known.append(rx)
        return rx

    def batch(
        self, *, hospital="hospital", doctor="doctor", size=3, zero_claim_key=False, valid_for=DAY
    ) -> list[Issued]:
        expires_at = self.now() + valid_for
        loose = [
            new_rx(self.ids[doctor].address, expires_at=expires_at, zero_claim_key=zero_claim_key and k == 0)
            for k in range(size)
        ]
        ids = [rx.rx_id for rx in loose]
        root = merkle_root(ids)
        self.client.issue_batch(self.ids[hospital], ids, expires_at)
        made = [
            Issued(
                *[
                    getattr(rx, f)
                    for f in (
                        "rx_id",
                        "terms",
                        "doctor",
                        "doc_hash",
                        "pharmacy",
                        "claim_key",
                        "claim_address",
                        "expires_at",
                        "fills",
                    )
                ],
                root,
                tuple(merkle_proof(ids, k)),
            )
            for k, rx in enumerate(loose)
        ]
        self.known += made
        self.roots.append((self.ids[hospital].address, root))  # a batch is its hospital's
        return made

    def redeem_args(
        self, rx: Issued, pharmacy: str, *, fills_left=None, deadline=None, domain=None, signer=None
    ) -> list:
        fills_left = rx.fills if fills_left is None else fills_left
        deadline = self.now() + 3600 if deadline is None else deadline
        signature = sign_redeem(
            signer or rx.claim_key, domain or self.client.domain, rx.rx_id, pharmacy, fills_left, deadline
        )
        return [rx.doctor, rx.doc_hash, rx.pharmacy, rx.claim_address, deadline, signature]

    def redeem(self, rx: Issued, pharmacy="pharmacy", **signing):
        account = self.ids[pharmacy]
        return self.client.transact(account, "redeem", *self.redeem_args(rx, account.address, **signing))

    def dispensed(self, **issue) -> Issued:
        rx = self.issue(**issue)
        self.redeem(rx)
        return rx

    def snapshot(self):
        return read_registry(
            self.rpc, self.client, [rx.rx_id for rx in self.known], self.roots, [a.address for a in self.ids.values()]
        )

    @contextmanager
    def nothing_moves(self, *also: Issued):
        """Everything the registry says about the known prescriptions (and ``also``), batches and
        parties, the block height, every party's nonce and the client's outbox read the same after."""
        self.known += [rx for rx in also if rx not in self.known]
        before, outbox = self.snapshot(), self.client.outbox.counts()
        yield
        after = self.snapshot()
        assert after.prescriptions == before.prescriptions, "a refused call changed a prescription"
        assert after.batches == before.batches, "a refused call changed a batch"
        assert after.members == before.members, "a refused call changed a member record"
        assert after.limits == before.limits, "a refused call changed the limits or the pause flag"
        assert after.nonces == before.nonces, "a refused call used a nonce"
        assert after.block_number == before.block_number, "a refused call mined a block"
        assert self.client.outbox.counts() == outbox, "a refused call left something in the client's outbox"

    def refuses(self, error: type, call, *also: Issued, **args):
        """``call`` raises ``error`` with arguments ``args`` and nothing moves; returns the error."""
        with self.nothing_moves(*also):
            with pytest.raises(error) as caught:
                call()
        for key, value in args.items():
            got = caught.value.error_args[key]
            assert (bytes(got) if isinstance(got, (bytes, bytearray)) else got) == value, f"{key}: {got!r} != {value!r}"
        return caught.value


@pytest.fixture
def desk(client, rpc, ids):
    return Desk(client, rpc, ids)


def travel(rpc, seconds: int) -> None:
    """Mines a block ``seconds`` later: views and the client's pre-flight checks see that time."""
    rpc.mine(rpc.latest_time() + seconds)


# ------------------------------------------------------------------------------------ wrong role

ROLE_CASES = {
    # who tries what (on a fresh prescription ``rx``), and the role the registry wanted
    "pharmacy issues": (
        "pharmacy",
        lambda d, a, rx: d.client.issue(a, keccak(text="doc"), address_of(keccak(text="k")), d.now() + 3600),
        "doctor",
    ),
    "hospital issues": (
        "hospital",
        lambda d, a, rx: d.client.issue(a, keccak(text="doc"), address_of(keccak(text="k")), d.now() + 3600),
        "doctor",
    ),
    "doctor redeems": (
        "doctor",
        lambda d, a, rx: d.client.transact(a, "redeem", *d.redeem_args(rx, a.address)),
        "pharmacy",
    ),
    "courier redeems": (
        "courier",
        lambda d, a, rx: d.client.transact(a, "redeem", *d.redeem_args(rx, a.address)),
        "pharmacy",
    ),
    "doctor issues a batch": (
        "doctor",
        lambda d, a, rx: d.client.issue_batch(a, [keccak(text="id")], d.now() + 3600),
        "hospital",
    ),
    "stranger pauses": ("stranger", lambda d, a, rx: d.client.pause(a), "regulator"),
    "hospital admits a pharmacy": (
        "hospital",
        lambda d, a, rx: d.client.admit(a, d.ids["stranger"].address, "pharmacy", d.now() + DAY),
        "regulator",
    ),
    "pharmacy admits a doctor": (
        "pharmacy",
        lambda d, a, rx: d.client.admit(a, d.ids["stranger"].address, "doctor", d.now() + DAY),
        "hospital",
    ),
    "auditor revokes a pharmacy": (
        "auditor",
        lambda d, a, rx: d.client.revoke(a, d.ids["pharmacy"].address, "pharmacy"),
        "regulator",
    ),
}


@pytest.mark.parametrize("case", list(ROLE_CASES))
def test_party_cannot_act_outside_its_role(desk, ids, case):
    who, attempt, needed = ROLE_CASES[case]
    account, rx = ids[who], desk.issue()
    needed_role = ADMIN_ROLE if needed == "regulator" else ROLES[needed]
    desk.refuses(
        errors.AccessControlUnauthorizedAccount,
        lambda: attempt(desk, account, rx),
        account=account.address,
        neededRole=needed_role,
    )


def test_pharmacy_cannot_dispatch_a_prescription_another_pharmacy_filled(desk, ids):
    rx = desk.dispensed()
    desk.refuses(
        errors.NotCustodian,
        lambda: desk.client.dispatch(ids["pharmacy2"], rx.rx_id, ids["courier"].address),
        id=rx.rx_id,
        caller=ids["pharmacy2"].address,
        custodian=ids["pharmacy"].address,
    )


def test_doctor_cannot_cancel_another_doctors_prescription(desk, ids):
    rx = desk.issue(doctor="doctor")
    desk.refuses(
        errors.NotIssuer,
        lambda: desk.client.cancel(ids["doctor2"], rx.rx_id),
        id=rx.rx_id,
        caller=ids["doctor2"].address,
    )


def test_other_hospital_cannot_withdraw_a_batch_it_did_not_issue(desk, ids):
    rx = desk.batch()[0]
    desk.refuses(
        errors.NotBatchHospital,
        lambda: desk.client.transact(ids["hospital2"], "cancelBatch", ids["hospital"].address, rx.root),
        root=rx.root,
        caller=ids["hospital2"].address,
    )


def test_hospital_cannot_renew_another_hospitals_doctor(desk, ids):
    desk.refuses(
        errors.NotDoctorsHospital,
        lambda: desk.client.renew(ids["hospital2"], ids["doctor"].address, desk.now() + DAY),
        caller=ids["hospital2"].address,
        doctor=ids["doctor"].address,
    )


def test_nobody_can_revoke_the_regulator_role(desk, ids):
    desk.refuses(
        errors.AccessControlEnforcedDefaultAdminRules,
        lambda: desk.client.transact(ids["regulator"], "revokeRole", ADMIN_ROLE, ids["regulator"].address),
    )


# ------------------------------------------------------------------------- expired and revoked


def test_doctor_cannot_issue_when_its_credential_expired(desk, client, ids):
    client.renew(ids["hospital"], ids["doctor"].address, desk.now() + 60)
    travel(desk.rpc, 120)
    end = client.member(ids["doctor"].address).valid_until
    desk.refuses(
        errors.CredentialExpired,
        lambda: client.issue(ids["doctor"], keccak(text="d"), address_of(keccak(text="c")), desk.now() + 3600),
        account=ids["doctor"].address,
        role=ROLES["doctor"],
        validUntil=end,
    )


def test_pharmacy_cannot_redeem_when_its_credential_expired(desk, client, ids):
    rx = desk.issue(valid_for=2 * DAY)
    client.renew(ids["regulator"], ids["pharmacy"].address, desk.now() + 60)
    travel(desk.rpc, 120)
    desk.refuses(
        errors.CredentialExpired, lambda: desk.redeem(rx), account=ids["pharmacy"].address, role=ROLES["pharmacy"]
    )


def test_courier_cannot_deliver_when_its_credential_expired(desk, client, ids):
    rx = desk.dispensed()
    client.dispatch(ids["pharmacy"], rx.rx_id, ids["courier"].address)
    client.renew(ids["regulator"], ids["courier"].address, desk.now() + 60)
    travel(desk.rpc, 120)
    desk.refuses(
        errors.CredentialExpired, lambda: client.deliver(ids["courier"], rx.rx_id), account=ids["courier"].address
    )


def test_revoked_pharmacy_cannot_redeem(desk, client, ids):
    rx = desk.issue()
    client.revoke(ids["regulator"], ids["pharmacy"].address, "pharmacy")
    desk.refuses(
        errors.AccessControlUnauthorizedAccount,
        lambda: desk.redeem(rx),
        account=ids["pharmacy"].address,
        neededRole=ROLES["pharmacy"],
    )


def test_revoked_doctor_cannot_cancel_its_own_prescription(desk, client, ids):
    rx = desk.issue()
    client.revoke(ids["hospital"], ids["doctor"].address, "doctor")
    desk.refuses(
        errors.AccessControlUnauthorizedAccount,
        lambda: client.cancel(ids["doctor"], rx.rx_id),
        account=ids["doctor"].address,
    )


def test_pharmacy_cannot_dispatch_to_a_revoked_courier(desk, client, ids):
    rx = desk.dispensed()
    client.revoke(ids["regulator"], ids["courier"].address, "courier")
    desk.refuses(
        errors.AccessControlUnauthorizedAccount,
        lambda: client.dispatch(ids["pharmacy"], rx.rx_id, ids["courier"].address),
        account=ids["courier"].address,
        neededRole=ROLES["courier"],
    )


def test_pharmacy_cannot_redeem_a_batched_prescription_of_a_doctor_whose_credential_had_ended(desk, client, ids):
    """A hospital may batch only for its doctors in good standing: issue() refuses a doctor whose
    credential ended, and "an expired or revoked member is refused at once". A batch naming such a
    doctor must not open at redemption either."""
    client.renew(ids["hospital"], ids["doctor"].address, desk.now() + 60)
    travel(desk.rpc, 120)  # the doctor's licence has ended
    rx = desk.batch(doctor="doctor")[0]  # the hospital batches a prescription in its name anyway
    pharmacy = ids["pharmacy"]
    desk.refuses(
        errors.NotBatchDoctor,
        lambda: client.transact(
            pharmacy, "redeemBatched", *desk.redeem_args(rx, pharmacy.address), rx.root, list(rx.proof)
        ),
        id=rx.rx_id,
        doctor=ids["doctor"].address,
        hospital=ids["hospital"].address,
    )


# ----------------------------------------------------------------------------- prescriptions


def test_pharmacy_cannot_redeem_an_unknown_prescription(desk, ids):
    ghost = new_rx(ids["doctor"].address)
    desk.refuses(errors.UnknownPrescription, lambda: desk.redeem(ghost), ghost, id=ghost.rx_id)


@pytest.mark.parametrize("step", ["cancel", "dispatch", "deliver"])
def test_nobody_can_move_an_unknown_prescription(desk, client, ids, step):
    ghost = new_rx(ids["doctor"].address)
    attempt = {
        "cancel": lambda: client.cancel(ids["doctor"], ghost.rx_id),
        "dispatch": lambda: client.dispatch(ids["pharmacy"], ghost.rx_id, ids["courier"].address),
        "deliver": lambda: client.deliver(ids["courier"], ghost.rx_id),
    }[step]
    desk.refuses(errors.UnknownPrescription, attempt, ghost, id=ghost.rx_id)


def test_pharmacy_cannot_redeem_after_the_prescription_expired(desk, ids):
    rx = desk.issue(valid_for=3600)
    travel(desk.rpc, 3601)
    desk.refuses(
        errors.Expired, lambda: desk.redeem(rx, deadline=desk.now() + 3600), id=rx.rx_id, expiresAt=rx.expires_at
    )


def test_pharmacy_cannot_redeem_a_prescription_that_expires_before_the_next_block(desk, client, rpc, ids):
    """The client's pre-flight sees the latest block; the next one is later. A prescription expiring
    in between passes the pre-flight, fails on chain, and the client still names the reason (and
    records the failure in its outbox); the prescription stays Active."""
    rx = desk.issue(valid_for=3600)
    rpc.mine(rx.expires_at)  # the latest block is stamped exactly at expiry: still redeemable in a view
    rpc.next_block_at(rx.expires_at + 1)
    with pytest.raises(errors.Expired) as caught:
        desk.redeem(rx, deadline=rx.expires_at + 3600)
    assert bytes(caught.value.error_args["id"]) == rx.rx_id
    assert client.prescription(rx.rx_id).status is Status.ACTIVE
    assert client.outbox.counts().get("failed") == 1 and "pending" not in client.outbox.counts()


def test_pharmacy_cannot_redeem_a_cancelled_prescription(desk, client, ids):
    rx = desk.issue()
    client.cancel(ids["doctor"], rx.rx_id)
    desk.refuses(errors.PrescriptionIsCancelled, lambda: desk.redeem(rx), id=rx.rx_id)


def test_pharmacy_cannot_redeem_a_prescription_of_a_withdrawn_batch(desk, client, ids):
    rx = desk.batch()[1]
    client.transact(ids["hospital"], "cancelBatch", ids["hospital"].address, rx.root)
    pharmacy = ids["pharmacy"]
    desk.refuses(
        errors.BatchIsCancelled,
        lambda: client.transact(
            pharmacy, "redeemBatched", *desk.redeem_args(rx, pharmacy.address), rx.root, list(rx.proof)
        ),
        root=rx.root,
    )


def test_pharmacy_cannot_redeem_a_batched_prescription_with_a_proof_for_another(desk, client, ids):
    first, second = desk.batch()[:2]
    pharmacy = ids["pharmacy"]
    desk.refuses(
        errors.NotInBatch,
        lambda: client.transact(
            pharmacy, "redeemBatched", *desk.redeem_args(first, pharmacy.address), first.root, list(second.proof)
        ),
        id=first.rx_id,
        root=first.root,
    )


def test_pharmacy_cannot_redeem_twice(desk, ids):
    rx = desk.dispensed()
    desk.refuses(errors.AlreadyRedeemed, lambda: desk.redeem(rx, pharmacy="pharmacy2"), id=rx.rx_id)


def test_other_pharmacy_cannot_redeem_a_prescription_designated_for_another(desk, ids):
    rx = desk.issue(pharmacy=ids["pharmacy"].address)
    desk.refuses(
        errors.NotDesignatedPharmacy,
        lambda: desk.redeem(rx, pharmacy="pharmacy2"),
        id=rx.rx_id,
        pharmacy=ids["pharmacy2"].address,
    )


# ----------------------------------------------------------------------------- claim signatures


def test_pharmacy_cannot_redeem_with_a_signature_by_another_key(desk, ids):
    rx = desk.issue()
    desk.refuses(errors.BadClaimSignature, lambda: desk.redeem(rx, signer=keccak(text="a forger's key")), id=rx.rx_id)


def test_pharmacy_cannot_use_a_claim_signature_the_patient_gave_another_pharmacy(desk, client, ids):
    rx = desk.issue()
    signed_for_other = desk.redeem_args(rx, ids["pharmacy2"].address)  # a copied QR consent
    desk.refuses(
        errors.BadClaimSignature, lambda: client.transact(ids["pharmacy"], "redeem", *signed_for_other), id=rx.rx_id
    )


def test_pharmacy_cannot_replay_the_first_fills_signature_for_the_second(desk, client, ids):
    rx = desk.issue(fills=2)
    first = desk.redeem_args(rx, ids["pharmacy"].address, fills_left=2)
    client.transact(ids["pharmacy"], "redeem", *first)
    deadline = desk.now() + 3600
    client.deliver_with_receipt(ids["pharmacy"], rx.rx_id, rx.terms, rx.claim_key, deadline)
    assert client.prescription(rx.rx_id).status is Status.REFILLABLE
    desk.refuses(errors.BadClaimSignature, lambda: client.transact(ids["pharmacy"], "redeem", *first), id=rx.rx_id)


def test_relayer_cannot_replay_a_receipt_for_the_next_fill(desk, client, ids):
    rx = desk.issue(fills=2)
    desk.redeem(rx, fills_left=2)
    client.deliver(ids["pharmacy"], rx.rx_id)
    deadline = desk.now() + 3600
    receipt = sign_receipt(rx.claim_key, client.domain, rx.rx_id, ids["pharmacy"].address, 1, deadline)
    client.transact(ids["courier"], "confirmReceipt", rx.rx_id, rx.terms, deadline, receipt)
    desk.redeem(rx, fills_left=1)
    client.deliver(ids["pharmacy"], rx.rx_id)
    desk.refuses(
        errors.BadClaimSignature,
        lambda: client.transact(ids["courier"], "confirmReceipt", rx.rx_id, rx.terms, deadline, receipt),
        id=rx.rx_id,
    )


def test_pharmacy_cannot_use_a_signature_made_for_another_chain(desk, client, ids):
    rx = desk.issue()
    other_chain = RegistryDomain(client.chain_id + 1, client.address)
    desk.refuses(errors.BadClaimSignature, lambda: desk.redeem(rx, domain=other_chain), id=rx.rx_id)


def test_pharmacy_cannot_use_a_signature_made_for_another_registry(desk, client, w3, ids, rpc_url):
    """The same prescription issued on a second registry: the patient's consent there is not
    consent here (EIP-712 verifyingContract)."""
    other = deploy_registry(w3, ids["regulator"], network="local", rpc_url=rpc_url, record=False)
    rx = desk.issue()
    desk.refuses(
        errors.BadClaimSignature,
        lambda: desk.redeem(rx, domain=RegistryDomain(client.chain_id, other.registry)),
        id=rx.rx_id,
    )


def test_pharmacy_cannot_redeem_past_the_signatures_deadline(desk, ids):
    rx = desk.issue()
    deadline = desk.now() - 1
    desk.refuses(errors.SignatureDeadlinePassed, lambda: desk.redeem(rx, deadline=deadline), deadline=deadline)


@pytest.mark.parametrize("mangle", ["truncated", "empty", "high s", "v is 0"])
def test_pharmacy_cannot_redeem_with_a_malformed_signature(desk, client, ids, mangle):
    rx = desk.issue()
    args = desk.redeem_args(rx, ids["pharmacy"].address)
    signature = args[5]
    n = SECP256K1_ORDER
    args[5] = {
        "truncated": signature[:64],
        "empty": b"",
        "high s": signature[:32]
        + (n - int.from_bytes(signature[32:64], "big")).to_bytes(32, "big")
        + bytes([55 - signature[64]]),
        "v is 0": signature[:64] + b"\x00",
    }[mangle]
    desk.refuses(errors.BadClaimSignature, lambda: client.transact(ids["pharmacy"], "redeem", *args), id=rx.rx_id)


# ------------------------------------------------------------------------------ zero addresses


def test_doctor_cannot_issue_with_a_zero_claim_key(desk, client, ids):
    desk.refuses(errors.ZeroClaimKey, lambda: client.issue(ids["doctor"], keccak(text="d"), ZERO, desk.now() + 3600))


def test_doctor_cannot_issue_with_an_empty_document_hash(desk, client, ids):
    desk.refuses(
        errors.ZeroDocumentHash,
        lambda: client.issue(ids["doctor"], bytes(32), address_of(keccak(text="k")), desk.now() + 3600),
    )


def test_pharmacy_cannot_dispatch_to_the_zero_address(desk, client, ids):
    rx = desk.dispensed()
    desk.refuses(errors.ZeroCourier, lambda: client.dispatch(ids["pharmacy"], rx.rx_id, ZERO))


def test_regulator_cannot_admit_the_zero_address(desk, client, ids):
    desk.refuses(errors.ZeroAddressMember, lambda: client.admit(ids["regulator"], ZERO, "pharmacy", desk.now() + DAY))


def test_pharmacy_cannot_redeem_a_batched_prescription_with_a_zero_claim_key_and_no_signature(desk, client, ids):
    """issue() refuses a zero claim key, but a batch carries only ids: a hospital system that
    computed an id with the zero address as claim key (a bug, or on purpose) must not make that
    prescription redeemable by any pharmacy with no patient signature at all."""
    rx = desk.batch(zero_claim_key=True)[0]
    assert rx.claim_address == ZERO
    pharmacy = ids["pharmacy"]
    args = [rx.doctor, rx.doc_hash, rx.pharmacy, ZERO, desk.now() + 3600, b""]
    desk.refuses(
        errors.BadClaimSignature,
        lambda: client.transact(pharmacy, "redeemBatched", *args, rx.root, list(rx.proof)),
        id=rx.rx_id,
    )


# ------------------------------------------------------------------------------------ QR codes


@pytest.fixture
def issued_qr(client, ids):
    """A real prescription and its QR payload text."""
    document = demo_document(ids["doctor"].address, client.latest_block_time())
    return issue_prescription(client, ids["doctor"], document)


def _rewrap(text: str, mutate) -> str:
    """The payload with its JSON changed by ``mutate`` and re-framed with a correct checksum."""
    raw = base64.urlsafe_b64decode(text[4:] + "=" * (-len(text[4:]) % 4))
    obj = json.loads(zlib.decompress(raw[:-4]))
    mutate(obj)
    body = zlib.compress(rfc8785.dumps(obj), 9)
    return "RX1." + base64.urlsafe_b64encode(body + keccak(body)[:4]).rstrip(b"=").decode()


def _bomb() -> str:
    body = zlib.compress(b'{"v":1,"pad":"' + b"0" * 200_000 + b'"}', 9)
    return "RX1." + base64.urlsafe_b64encode(body + keccak(body)[:4]).rstrip(b"=").decode()


QR_CASES = {
    "another QR code altogether": (lambda t: "https://example.com/menu", payloads.NotAPayload),
    "empty": (lambda t: "   ", payloads.MalformedPayload),
    "a future version": (lambda t: "RX2." + t[4:], payloads.UnsupportedPayloadVersion),
    "truncated in half": (lambda t: t[: len(t) // 2], payloads.TruncatedPayload),
    "truncated by a few characters": (lambda t: t[:-3], payloads.TruncatedPayload),
    "one character misread": (
        lambda t: t[:40] + ("A" if t[40] != "A" else "B") + t[41:],
        payloads.PayloadChecksumMismatch,
    ),
    "characters outside base64url": (lambda t: t[:30] + "+/=" + t[33:], payloads.MalformedPayload),
    "oversized": (lambda t: t + "A" * payloads.MAX_PAYLOAD_CHARS, payloads.PayloadTooLarge),
    "a decompression bomb": (lambda t: _bomb(), payloads.PayloadTooLarge),
    "for another chain": (lambda t: _rewrap(t, lambda o: o.update(chainId=o["chainId"] + 1)), payloads.WrongChain),
    "for another registry": (
        lambda t: _rewrap(t, lambda o: o.update(registry="0x" + "11" * 20)),
        payloads.WrongRegistry,
    ),
    "with an unknown key": (lambda t: _rewrap(t, lambda o: o.update(extra=1)), payloads.MalformedPayload),
    "with the quantity raised": (
        lambda t: _rewrap(
            t, lambda o: o["doc"]["entry"][0]["resource"]["dispenseRequest"]["quantity"].update(value=150)
        ),
        payloads.PayloadTampered,
    ),
    "with another claim key": (
        lambda t: _rewrap(t, lambda o: o.update(claimKey="0x" + keccak(text="x").hex())),
        payloads.PayloadTampered,
    ),
}


@pytest.mark.parametrize("case", list(QR_CASES))
def test_pharmacy_cannot_redeem_a_bad_qr_code(desk, client, ids, issued_qr, case):
    mangle, error = QR_CASES[case]
    text = mangle(issued_qr.payload_text)
    rx = Issued(issued_qr.rx_id, b"", "", b"", ZERO, b"", "", 0, 1)
    with desk.nothing_moves(rx):
        with pytest.raises(error):
            redeem_payload(client, ids["pharmacy"], text)
    assert client.prescription(issued_qr.rx_id).status is Status.ACTIVE


def test_tampered_document_is_caught_by_the_auditor_and_the_pharmacy(desk, client, ids, issued_qr):
    tampered = copy.deepcopy(issued_qr.payload.document)
    tampered["entry"][0]["resource"]["dispenseRequest"]["quantity"]["value"] = 150

    check = verify_document(client, issued_qr.rx_id, tampered, issued_qr.payload.claim_key.address)
    assert not check.matches and any("altered" in p for p in check.problems)
    assert verify_document(
        client, issued_qr.rx_id, issued_qr.payload.document, issued_qr.payload.claim_key.address
    ).matches
    forged = payloads.PrescriptionPayload(
        chain_id=client.chain_id,
        registry=client.address,
        rx_id=issued_qr.rx_id,
        claim_key=issued_qr.payload.claim_key,
        document=tampered,
    )
    with pytest.raises(payloads.PayloadTampered):
        encode_payload(forged)
    text = _rewrap(issued_qr.payload_text, lambda o: o.update(doc=tampered))
    with pytest.raises(payloads.PayloadTampered):
        decode_payload(text)


# ----------------------------------------------------------------------------------- documents

DOCUMENT_CASES = {
    "the patient's name as subject": (
        lambda d: [e["resource"]["subject"].update(display="张伟") for e in d["entry"]],
        documents.PatientDataInDocument,
    ),
    "a national id as pseudonym": (
        lambda d: [e["resource"]["subject"]["identifier"].update(value="11010519491231002X") for e in d["entry"]],
        documents.PatientDataInDocument,
    ),
    "a phone number as pseudonym": (
        lambda d: [e["resource"]["subject"]["identifier"].update(value="13812345678") for e in d["entry"]],
        documents.PatientDataInDocument,
    ),
    "a patient resource inside": (
        lambda d: d["entry"].append({"resource": {"resourceType": "Patient", "name": [{"text": "张伟"}]}}),
        documents.PatientDataInDocument,
    ),
    "no salt": (lambda d: d.pop("identifier"), documents.DocumentError),
    "a short salt": (lambda d: d["identifier"].update(value="00ff"), documents.InvalidSalt),
    "no quantity": (lambda d: d["entry"][0]["resource"]["dispenseRequest"].pop("quantity"), documents.MissingField),
    "a 30-day supply": (
        lambda d: d["entry"][0]["resource"]["dispenseRequest"]["expectedSupplyDuration"].update(value=30),
        documents.SupplyTooLong,
    ),
    "a doctor address that is not one": (
        lambda d: [e["resource"]["requester"]["identifier"].update(value="0x1234") for e in d["entry"]],
        documents.InvalidAddress,
    ),
    "not a prescription": (lambda d: d.update(resourceType="Patient"), documents.NotAPrescription),
    # The closed profile (issue 11): every element is listed, free text and pseudonyms are checked.
    "the patient's name and national id in a note": (
        lambda d: d["entry"][0]["resource"].update(note=[{"text": "张晓明 zhang xiaoming 11010519850312002X"}]),
        documents.ElementNotAllowed,
    ),
    "the patient's name in a subject extension": (
        lambda d: [
            e["resource"]["subject"].update(extension=[{"url": "urn:x", "valueString": "张晓明"}]) for e in d["entry"]
        ],
        documents.ElementNotAllowed,
    ),
    "a Patient reference with the national id in supportingInformation": (
        lambda d: d["entry"][0]["resource"].update(
            supportingInformation=[{"reference": "Patient/11010519850312002X", "display": "张晓明"}]
        ),
        documents.ElementNotAllowed,
    ),
    "a phone number in the dosage text": (
        lambda d: d["entry"][0]["resource"]["dosageInstruction"][0].update(
            text="每日一次 1 片, 有问题请打 13812345678"
        ),
        documents.PatientDataInDocument,
    ),
    "a national id in the drug text": (
        lambda d: d["entry"][0]["resource"]["medicationCodeableConcept"].update(
            text="Amlodipine 5 mg 11010519850312002X"
        ),
        documents.PatientDataInDocument,
    ),
    "pinyin and birth date as pseudonym": (
        lambda d: [e["resource"]["subject"]["identifier"].update(value="zhang-xiaoming-19850312") for e in d["entry"]],
        documents.PatientDataInDocument,
    ),
    "pinyin and phone as pseudonym": (
        lambda d: [e["resource"]["subject"]["identifier"].update(value="zhangxiaoming13812345678") for e in d["entry"]],
        documents.PatientDataInDocument,
    ),
    "pinyin as pseudonym": (
        lambda d: [e["resource"]["subject"]["identifier"].update(value="zhangxiaoming-patient-a") for e in d["entry"]],
        documents.PatientDataInDocument,
    ),
    # Coded elements are listed but not free text: a unit, a code or a code system hides the same data.
    "a phone number in the quantity's unit": (
        lambda d: d["entry"][0]["resource"]["dispenseRequest"]["quantity"].update(unit="片 13812345678"),
        documents.PatientDataInDocument,
    ),
    "a national id as the drug's code": (
        lambda d: d["entry"][0]["resource"]["medicationCodeableConcept"]["coding"][0].update(code="11010519850312002X"),
        documents.PatientDataInDocument,
    ),
    "pinyin and birth date in the drug's code system": (
        lambda d: d["entry"][0]["resource"]["medicationCodeableConcept"]["coding"][0].update(
            system="urn:zhang-xiaoming-19850312"
        ),
        documents.PatientDataInDocument,
    ),
}

# Where the closed profile says the offending element is.
DOCUMENT_PATHS = {
    "the patient's name and national id in a note": "entry[0].resource.note",
    "the patient's name in a subject extension": "entry[0].resource.subject.extension",
    "a Patient reference with the national id in supportingInformation": "entry[0].resource.supportingInformation",
    "a phone number in the dosage text": "entry[0].resource.dosageInstruction[0].text",
    "a national id in the drug text": "entry[0].resource.medicationCodeableConcept.text",
    "pinyin and birth date as pseudonym": "entry[0].resource.subject.identifier.value",
    "pinyin and phone as pseudonym": "entry[0].resource.subject.identifier.value",
    "pinyin as pseudonym": "entry[0].resource.subject.identifier.value",
    "a phone number in the quantity's unit": "entry[0].resource.dispenseRequest.quantity.unit",
    "a national id as the drug's code": "entry[0].resource.medicationCodeableConcept.coding[0].code",
    "pinyin and birth date in the drug's code system": "entry[0].resource.medicationCodeableConcept.coding[0].system",
}


@pytest.mark.parametrize("case", list(DOCUMENT_PATHS))
def test_doctor_cannot_put_patient_data_in_a_document_when_it_hides_it_outside_the_subject(ids, client, case):
    """The refusal names the element's path, and never repeats the value."""
    mangle, error = DOCUMENT_CASES[case]
    document = demo_document(ids["doctor"].address, client.latest_block_time())
    mangle(document)
    with pytest.raises(error) as refused:
        documents.validate(document)
    message = str(refused.value)
    assert DOCUMENT_PATHS[case] in message
    assert not any(secret in message for secret in ("张晓明", "11010519850312002X", "13812345678", "zhangxiaoming"))


@pytest.mark.parametrize("case", list(DOCUMENT_CASES))
def test_doctor_cannot_issue_a_document_that_fails_validation(desk, client, ids, case):
    mangle, error = DOCUMENT_CASES[case]
    document = demo_document(ids["doctor"].address, client.latest_block_time())
    mangle(document)
    with desk.nothing_moves():
        with pytest.raises(error):
            issue_prescription(client, ids["doctor"], document)


# -------------------------------------------------------------------------------------- paused


def test_nobody_can_issue_or_redeem_while_paused_but_the_trail_continues(desk, client, ids):
    held = desk.dispensed()
    waiting = desk.issue()
    with_courier = desk.dispensed()
    client.dispatch(ids["pharmacy"], with_courier.rx_id, ids["courier"].address)
    client.pause(ids["regulator"])

    desk.refuses(errors.EnforcedPause, lambda: desk.issue())
    desk.refuses(errors.EnforcedPause, lambda: desk.redeem(waiting))
    desk.refuses(errors.EnforcedPause, lambda: desk.batch())

    client.dispatch(ids["pharmacy"], held.rx_id, ids["courier2"].address)  # drugs already dispensed still move
    client.deliver_with_receipt(ids["courier"], with_courier.rx_id, with_courier.terms, with_courier.claim_key)
    client.cancel(ids["doctor"], waiting.rx_id)
    assert [client.prescription(rx.rx_id).status for rx in (held, with_courier, waiting)] == [
        Status.DISPATCHED,
        Status.COMPLETED,
        Status.CANCELLED,
    ]


# ---------------------------------------------------------------------------- chains and nodes


def test_client_refuses_a_node_that_serves_another_chain(client, deployment):
    recorded = Deployment(**{**deployment.model_dump(), "chain_id": deployment.chain_id + 1})
    with pytest.raises(errors.DeploymentMismatch):
        client.check_deployment(recorded)
    client.check_deployment(deployment)  # the right record passes


@pytest.fixture
def lone_node(tmp_path):
    """A node of this test's own, which the test may kill."""
    node = OwnNode(free_port(), 31341, None, tmp_path / "anvil.log").start()
    yield node
    node.kill()


def test_client_reports_node_unavailable_and_writes_nothing_when_the_node_is_down(lone_node, tmp_path, ids):
    from web3 import Web3

    from rxchain.dev.demo import onboard

    w3 = Web3(Web3.HTTPProvider(lone_node.url))
    deployed = deploy_registry(w3, ids["regulator"], network="lone", record=False)
    client = RegistryClient(
        w3, deployed.registry, deploy_block=deployed.deploy_block, outbox=Outbox(tmp_path / "outbox.sqlite")
    )
    onboard(client, ids)
    written = client.outbox.counts()
    now = client.latest_block_time()
    lone_node.kill()

    with pytest.raises(errors.NodeUnavailable):
        client.issue(ids["doctor"], keccak(text="d"), address_of(keccak(text="c")), now + 3600)
    with pytest.raises(errors.NodeUnavailable):
        client.prescription(keccak(text="any"))
    with pytest.raises(errors.NodeUnavailable):
        client.latest_block_time()
    assert client.outbox.counts() == written and "pending" not in written, "nothing half-written"


# ---------------------------------------------------------------------------- malformed calldata


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def _calldata_cases(rx: Issued, pharmacy: str) -> dict[str, bytes]:
    redeem = _selector("redeem(address,bytes32,address,address,uint256,bytes)")
    full = redeem + abi_encode(
        ["address", "bytes32", "address", "address", "uint256", "bytes"],
        [rx.doctor, rx.doc_hash, rx.pharmacy, rx.claim_address, 2**40, b"\x01" * 65],
    )
    dirty = bytearray(full)
    dirty[4:16] = b"\xff" * 12  # the doctor argument with its upper 12 bytes set
    huge_offset = bytearray(full)
    huge_offset[4 + 5 * 32 : 4 + 6 * 32] = (2**64).to_bytes(32, "big")  # the bytes argument points far outside
    return {
        "redeem cut after three arguments": full[: 4 + 3 * 32],
        "redeem cut inside the signature": full[:-40],
        "redeem with a dirty address": bytes(dirty),
        "redeem with a bytes offset outside the calldata": bytes(huge_offset),
        "dispatch with one argument": _selector("dispatch(bytes32,address)") + rx.rx_id,
        "issue with no arguments": _selector("issue(bytes32,address,address,uint40,uint8)"),
        "a selector the registry does not have": _selector("withdraw()"),
        "two bytes": b"\x12\x34",
    }


def test_calldata_that_is_not_abi_valid_reverts_and_changes_nothing(desk, client, rpc, ids):
    rx = desk.issue()
    pharmacy = ids["pharmacy"]
    cases = _calldata_cases(rx, pharmacy.address)
    with desk.nothing_moves():
        for name, data in cases.items():
            reply = rpc.batch(
                [("eth_call", [{"from": pharmacy.address, "to": client.address, "data": "0x" + data.hex()}, "latest"])]
            )[0]
            assert "error" in reply, f"{name}: eth_call did not revert"

    import coincurve

    key = coincurve.PrivateKey(bytes(pharmacy.key))
    before = desk.snapshot()
    nonce = rpc.nonce(pharmacy.address)
    for k, (name, data) in enumerate(cases.items()):
        raw, tx_hash = sign_legacy(key, client.chain_id, nonce + k, 300_000, bytes.fromhex(client.address[2:]), data)
        rpc.call("eth_sendRawTransaction", "0x" + raw.hex())
        receipt = rpc.receipt(tx_hash)
        assert int(receipt["status"], 16) == 0, f"{name}: mined without reverting"
        assert receipt["logs"] == [], f"{name}: emitted events"
    after = desk.snapshot()
    assert (after.prescriptions, after.batches, after.members, after.limits) == (
        before.prescriptions,
        before.batches,
        before.members,
        before.limits,
    )
    assert client.prescription(rx.rx_id).status is Status.ACTIVE
    desk.redeem(rx)  # and the prescription is still redeemable as normal
