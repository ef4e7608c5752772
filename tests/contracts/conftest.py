"""Shared fixtures and checks for the registry's contract tests (run by ``ape test`` on anvil).

Each test module gets one deployment of PrescriptionRegistry with the consortium already onboarded
(``registry``); ape's isolation snapshots the chain after the module fixtures and reverts it after
every test, so each test starts from that same onboarded state.

The parties are named, never numbered:

    regulator         the registry's DEFAULT_ADMIN_ROLE
    hospital          admitted by the regulator; admits ``doctor``
    other_hospital    admitted by the regulator; admits ``other_doctor``
    pharmacy, other_pharmacy, courier, auditor   admitted by the regulator
    stranger          holds no role

Every member's credential ends ``CREDENTIAL_TERM`` after onboarding (``credential_end``).

Refusals are checked with ``reverts``: the call must revert with exactly the named custom error and
exactly the given arguments (all of them), and the registry's whole observable state -- every named
party's member record, every prescription and batch issued in the module, the limits, the pause flag,
the regulator and any pending handover -- must read the same afterwards.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from enum import IntEnum

import pytest
from ape.exceptions import ContractLogicError, CustomError
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import is_hex_address, keccak, to_checksum_address

from rxchain.core import batch as batches
from rxchain.core import claims
from rxchain.core import ids
from rxchain.core.status import Status  # also shared with the test modules
from rxchain.core.ids import ZERO_ADDRESS

# ------------------------------------------------------------------------------------ constants

MINUTE = 60
HOUR = 3_600
DAY = 86_400

ADMIN_TRANSFER_DELAY = DAY
MAX_VALIDITY = 3 * DAY
MAX_FILLS = 3
CREDENTIAL_TERM = 365 * DAY

DEFAULT_ADMIN_ROLE = bytes(32)
DOCTOR_ROLE = keccak(text="DOCTOR_ROLE")
PHARMACY_ROLE = keccak(text="PHARMACY_ROLE")
COURIER_ROLE = keccak(text="COURIER_ROLE")
AUDITOR_ROLE = keccak(text="AUDITOR_ROLE")
HOSPITAL_ROLE = keccak(text="HOSPITAL_ROLE")

# Role bits of the member record (IConsortiumRoles.Member.roles).
ROLE_BITS = {DOCTOR_ROLE: 1, PHARMACY_ROLE: 2, COURIER_ROLE: 4, AUDITOR_ROLE: 8, HOSPITAL_ROLE: 16}


# ----------------------------------------------------------------------------- named parties


@pytest.fixture(scope="session")
def regulator(accounts):
    return accounts[0]


@pytest.fixture(scope="session")
def hospital(accounts):
    return accounts[1]


@pytest.fixture(scope="session")
def other_hospital(accounts):
    return accounts[2]


@pytest.fixture(scope="session")
def doctor(accounts):
    return accounts[3]


@pytest.fixture(scope="session")
def other_doctor(accounts):
    return accounts[4]


@pytest.fixture(scope="session")
def pharmacy(accounts):
    return accounts[5]


@pytest.fixture(scope="session")
def other_pharmacy(accounts):
    return accounts[6]


@pytest.fixture(scope="session")
def courier(accounts):
    return accounts[7]


@pytest.fixture(scope="session")
def auditor(accounts):
    return accounts[8]


@pytest.fixture(scope="session")
def stranger(accounts):
    return accounts[9]


@pytest.fixture(scope="session")
def parties(
    regulator, hospital, other_hospital, doctor, other_doctor, pharmacy, other_pharmacy, courier, auditor, stranger
):
    """Every named party, by name."""
    return {
        "regulator": regulator,
        "hospital": hospital,
        "other_hospital": other_hospital,
        "doctor": doctor,
        "other_doctor": other_doctor,
        "pharmacy": pharmacy,
        "other_pharmacy": other_pharmacy,
        "courier": courier,
        "auditor": auditor,
        "stranger": stranger,
    }


# -------------------------------------------------------------------------------- deployment


def deploy_registry(
    project, regulator, *, delay=ADMIN_TRANSFER_DELAY, max_validity=MAX_VALIDITY, max_fills=MAX_FILLS, sender=None
):
    return project.PrescriptionRegistry.deploy(regulator, delay, max_validity, max_fills, sender=sender or regulator)


@pytest.fixture(scope="module")
def registry(project, chain, parties):
    """A registry with the whole consortium onboarded, credentials ending at ``credential_end``."""
    p = parties
    registry = deploy_registry(project, p["regulator"])
    end = chain.pending_timestamp + CREDENTIAL_TERM
    for name, role in [
        ("hospital", HOSPITAL_ROLE),
        ("other_hospital", HOSPITAL_ROLE),
        ("pharmacy", PHARMACY_ROLE),
        ("other_pharmacy", PHARMACY_ROLE),
        ("courier", COURIER_ROLE),
        ("auditor", AUDITOR_ROLE),
    ]:
        registry.admitMember(p[name], role, end, sender=p["regulator"])
    registry.admitMember(p["doctor"], DOCTOR_ROLE, end, sender=p["hospital"])
    registry.admitMember(p["other_doctor"], DOCTOR_ROLE, end, sender=p["other_hospital"])
    return registry


@pytest.fixture(scope="module")
def credential_end(registry, hospital):
    """When every onboarded member's credential ends."""
    return registry.member(hospital).validUntil


@pytest.fixture(scope="module")
def domain(registry, chain):
    """The registry's EIP-712 domain, as the client signs in it."""
    return claims.RegistryDomain(chain_id=chain.chain_id, registry=registry.address)


# ------------------------------------------------------------------------------------- time


def next_block_at(chain, timestamp):
    """The next block (the next transaction) will be stamped ``timestamp``."""
    chain.pending_timestamp = timestamp


def travel_to(chain, timestamp):
    """Mines an empty block stamped ``timestamp``, so views see that time."""
    chain.pending_timestamp = timestamp
    chain.mine()


# ------------------------------------------------------------------------ prescriptions (client)

_serial = itertools.count(1)


def fresh_claim_key():
    """A new claim key, as the client makes one per prescription (deterministic, per test run)."""
    return Account.from_key(keccak(text=f"rxchain test claim key {next(_serial)}"))


def fresh_doc_hash():
    """The hash of a new off-chain prescription document (a stand-in: only the hash goes on chain)."""
    return keccak(text=f"rxchain test prescription document {next(_serial)}")


def fresh_address():
    """An address no test has used, never funded (members need not send transactions to be admitted)."""
    return Account.from_key(keccak(text=f"rxchain test account {next(_serial)}")).address


@dataclass(frozen=True)
class Rx:
    """An issued prescription as the patient's QR code knows it: the id's openings and the claim key."""

    id: bytes
    terms: bytes
    doctor: str
    doc_hash: bytes
    pharmacy: str  # the designated pharmacy, or the zero address
    claim_key: object  # eth_account LocalAccount
    expires_at: int
    fills: int
    issue_tx: object
    root: bytes | None = None  # a batched prescription's batch root, and the id's Merkle proof
    proof: tuple = ()

    @property
    def openings(self):
        """redeem()'s first four arguments: doctor, docHash, designatedPharmacy, claimKey."""
        return (self.doctor, self.doc_hash, self.pharmacy, self.claim_key.address)


@dataclass(frozen=True)
class Batch:
    """A batch a hospital issued: its Merkle root and its prescriptions (each knowing its proof)."""

    root: bytes
    rxs: list
    hospital: str
    expires_at: int
    fills: int
    issue_tx: object

    @property
    def ids(self):
        return [rx.id for rx in self.rxs]


class Clinic:
    """Drives prescriptions through the registry the way the client does: claim keys, EIP-712 signatures.

    It also remembers every prescription and batch issued in the module, for the unchanged-state check.
    """

    def __init__(self, registry, chain, domain, parties):
        self.registry = registry
        self.chain = chain
        self.domain = domain
        self.parties = parties
        self.issued: list[Rx] = []
        self.batches: list[Batch] = []

    # --- issue
    def issue(
        self, doctor=None, *, pharmacy=None, fills=1, valid_for=DAY, expires_at=None, doc_hash=None, claim_key=None
    ) -> Rx:
        doctor = doctor or self.parties["doctor"]
        pharmacy = _address(pharmacy) if pharmacy is not None else ZERO_ADDRESS
        doc_hash = doc_hash or fresh_doc_hash()
        claim_key = claim_key or fresh_claim_key()
        if expires_at is None:
            expires_at = self.chain.pending_timestamp + valid_for
        tx = self.registry.issue(doc_hash, claim_key.address, pharmacy, expires_at, fills, sender=doctor)
        rx_id, terms = self.registry.computeId(doctor, doc_hash, pharmacy, claim_key.address)
        rx = Rx(bytes(rx_id), bytes(terms), doctor.address, doc_hash, pharmacy, claim_key, expires_at, fills, tx)
        self.issued.append(rx)
        return rx

    def issue_batch(
        self, hospital=None, *, doctors=None, pharmacies=None, size=3, fills=1, valid_for=DAY, expires_at=None
    ) -> Batch:
        """A batch of ``size`` prescriptions (by ``doctors``, default all by ``doctor``; for ``pharmacies``,
        default any), made as the hospital's client makes them: ids off chain, proofs from rxchain.core.batch."""
        hospital = hospital or self.parties["hospital"]
        doctors = [d.address for d in doctors or [self.parties["doctor"]] * size]
        pharmacies = [_address(p) if p else ZERO_ADDRESS for p in pharmacies or [None] * len(doctors)]
        keys, doc_hashes = [fresh_claim_key() for _ in doctors], [fresh_doc_hash() for _ in doctors]
        terms = [ids.terms_hash(d, h, p) for d, h, p in zip(doctors, doc_hashes, pharmacies)]
        rx_ids = [ids.prescription_id(k.address, t) for k, t in zip(keys, terms)]
        if expires_at is None:
            expires_at = self.chain.pending_timestamp + valid_for
        tx = self.registry.issueBatch(rx_ids, expires_at, fills, sender=hospital)
        root = batches.merkle_root(rx_ids)
        rxs = [
            Rx(
                rx_ids[i],
                terms[i],
                doctors[i],
                doc_hashes[i],
                pharmacies[i],
                keys[i],
                expires_at,
                fills,
                tx,
                root,
                tuple(batches.merkle_proof(rx_ids, i)),
            )
            for i in range(len(rx_ids))
        ]
        made = Batch(root, rxs, hospital.address, expires_at, fills, tx)
        self.batches.append(made)
        self.issued.extend(rxs)
        return made

    def cancel_batched(self, rx, sender, *, root=None, proof=None, openings=None):
        """Cancels batched ``rx`` before its first fill, with its openings and Merkle proof."""
        return self.registry.cancelBatched(
            *(openings or rx.openings), root or rx.root, list(rx.proof if proof is None else proof), sender=sender
        )

    def state(self, rx):
        return self.registry.prescription(rx.id)

    # --- redeem
    def deadline(self, after=HOUR):
        return self.chain.pending_timestamp + after

    def redeem_signature(self, rx, pharmacy, *, fills_left=None, deadline, signer=None, domain=None):
        """The claim key's consent for ``pharmacy`` to redeem the fill with ``fills_left`` left (default: now;
        a batched prescription not yet opened has all its fills left)."""
        if fills_left is None:
            state = self.state(rx)
            fills_left = rx.fills if state.status == Status.NONE else state.fillsLeft
        return claims.sign_redeem(
            (signer or rx.claim_key).key, domain or self.domain, rx.id, _address(pharmacy), fills_left, deadline
        )

    def redeem(
        self,
        rx,
        pharmacy,
        *,
        deadline=None,
        signature=None,
        openings=None,
        batched=None,
        root=None,
        proof=None,
        **signing,
    ):
        """Redeems ``rx``: with redeemBatched (its root and proof) when it is batched, unless ``batched=False``."""
        deadline = self.deadline() if deadline is None else deadline
        if signature is None:
            signature = self.redeem_signature(rx, pharmacy, deadline=deadline, **signing)
        arguments = (*(openings or rx.openings), deadline, signature)
        if batched is False or (batched is None and rx.root is None):
            return self.registry.redeem(*arguments, sender=pharmacy)
        return self.registry.redeemBatched(
            *arguments, root or rx.root, list(rx.proof if proof is None else proof), sender=pharmacy
        )

    # --- delivery trail
    def dispatch(self, rx, pharmacy, courier):
        return self.registry.dispatch(rx.id, courier, sender=pharmacy)

    def deliver(self, rx, by):
        return self.registry.deliver(rx.id, sender=by)

    def receipt_signature(self, rx, *, fills_left=None, deadline, signer=None, domain=None, deliverer=None):
        """The claim key's receipt for the fill now held (``fills_left``: the fills left after it) from
        ``deliverer`` (default: whoever holds it now)."""
        state = self.state(rx)
        if fills_left is None:
            fills_left = state.fillsLeft
        if deliverer is None:
            deliverer = state.custodian
        return claims.sign_receipt(
            (signer or rx.claim_key).key, domain or self.domain, rx.id, str(deliverer), fills_left, deadline
        )

    def confirm(self, rx, relayer, *, deadline=None, signature=None, terms=None, **signing):
        deadline = self.deadline() if deadline is None else deadline
        if signature is None:
            signature = self.receipt_signature(rx, deadline=deadline, **signing)
        return self.registry.confirmReceipt(rx.id, terms or rx.terms, deadline, signature, sender=relayer)

    def deliver_with_receipt(self, rx, by, *, deadline=None, signature=None, terms=None, **signing):
        deadline = self.deadline() if deadline is None else deadline
        if signature is None:
            signature = self.receipt_signature(rx, deadline=deadline, **signing)
        return self.registry.deliverWithReceipt(rx.id, terms or rx.terms, deadline, signature, sender=by)

    # --- whole steps, for tests that need a prescription in a given state. Each takes a new
    # prescription (issued with ``issue``'s keywords) or an existing one and moves it on from where it is.
    def dispensed(self, rx=None, *, pharmacy=None, **issue):
        rx = rx or self.issue(**issue)
        status = self.state(rx).status
        if status in (Status.ACTIVE, Status.REFILLABLE) or (status == Status.NONE and rx.root is not None):
            self.redeem(rx, pharmacy or self.parties["pharmacy"])
        return rx

    def dispatched(self, rx=None, *, pharmacy=None, courier=None, **issue):
        pharmacy = pharmacy or self.parties["pharmacy"]
        rx = self.dispensed(rx, pharmacy=pharmacy, **issue)
        if self.state(rx).status == Status.DISPENSED:
            self.dispatch(rx, pharmacy, courier or self.parties["courier"])
        return rx

    def delivered(self, rx=None, *, pharmacy=None, courier=None, **issue):
        courier = courier or self.parties["courier"]
        rx = self.dispatched(rx, pharmacy=pharmacy, courier=courier, **issue)
        if self.state(rx).status == Status.DISPATCHED:
            self.deliver(rx, courier)
        return rx

    def received(self, rx=None, *, pharmacy=None, courier=None, **issue):
        """Delivered and its receipt confirmed: Completed, or Refillable when fills are left."""
        rx = self.delivered(rx, pharmacy=pharmacy, courier=courier, **issue)
        self.confirm(rx, courier or self.parties["courier"])
        return rx


@pytest.fixture(scope="module")
def module_clinic(registry, chain, domain, parties):
    return Clinic(registry, chain, domain, parties)


@pytest.fixture
def clinic(module_clinic):
    """The module's clinic; prescriptions a test issues are forgotten after it (the chain is reverted)."""
    known, known_batches = len(module_clinic.issued), len(module_clinic.batches)
    yield module_clinic
    del module_clinic.issued[known:]
    del module_clinic.batches[known_batches:]


# ------------------------------------------------------------------- typed-data digests (client)


def eip712_digest(typed_data):
    """The 32-byte EIP-712 digest of full typed data, as a signer hashes it."""
    signable = encode_typed_data(full_message=typed_data)
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


# ----------------------------------------------------------------------------- normalisation


def _address(value):
    return to_checksum_address(getattr(value, "address", value))


def normalise(value):
    """One comparable form for what ape decodes and what a test expects: accounts and address strings
    become checksummed addresses, bytes and HexBytes 0x-hex text, enums ints; sequences element-wise."""
    if hasattr(value, "address") and not isinstance(value, (str, bytes)):
        return to_checksum_address(value.address)
    if isinstance(value, str) and is_hex_address(value):
        return to_checksum_address(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, IntEnum):
        return int(value)
    if isinstance(value, (list, tuple)):
        return tuple(normalise(v) for v in value)
    return value


# --------------------------------------------------------------------------------- events


def event(name, **arguments):
    """An expected event: its name and every argument."""
    return (name, {k: normalise(v) for k, v in arguments.items()})


def registry_events(tx, registry):
    """The events ``registry`` emitted in ``tx``, in order, as (name, {argument: value})."""
    return [
        (log.event_name, {k: normalise(v) for k, v in log.event_arguments.items()})
        for log in tx.events
        if normalise(log.contract_address) == normalise(registry.address)
    ]


def assert_events(tx, registry, *expected):
    """``tx`` emitted exactly these registry events, in this order, with exactly these arguments."""
    actual = registry_events(tx, registry)
    assert actual == list(expected), f"events differ:\n  actual:   {actual}\n  expected: {list(expected)}"


# ------------------------------------------------------------------------- refusals (reverts)


class Ledger:
    """Reads the registry's observable state in one go (raw eth_call results, compared byte for byte)."""

    def __init__(self, registry, chain, parties, clinic):
        self.registry = registry
        self.chain = chain
        self.parties = parties
        self.clinic = clinic

    def _reads(self):
        yield "limits()", "limits()", [], []
        yield "defaultAdmin()", "defaultAdmin()", [], []
        yield "pendingDefaultAdmin()", "pendingDefaultAdmin()", [], []
        yield "defaultAdminDelay()", "defaultAdminDelay()", [], []
        yield "pendingDefaultAdminDelay()", "pendingDefaultAdminDelay()", [], []
        for name, account in self.parties.items():
            yield f"member({name})", "member(address)", ["address"], [account.address]
        for rx in self.clinic.issued:
            yield f"prescription(0x{rx.id.hex()})", "prescription(bytes32)", ["bytes32"], [rx.id]
        for made in self.clinic.batches:
            yield (
                f"batch({made.hospital}, 0x{made.root.hex()})",
                "batch(address,bytes32)",
                ["address", "bytes32"],
                [made.hospital, made.root],
            )

    def read(self):
        labels, requests = [], []
        for label, signature, types, values in self._reads():
            data = keccak(text=signature)[:4] + abi_encode(types, values)
            labels.append(label)
            requests.append(("eth_call", [{"to": self.registry.address, "data": "0x" + data.hex()}, "latest"]))
        node = self.chain.provider.web3.provider
        if hasattr(node, "make_batch_request"):  # one round trip (anvil over HTTP)
            responses = node.make_batch_request(requests)
            assert isinstance(responses, list), responses
            results = [response["result"] for response in responses]
        else:
            results = [self.chain.provider.make_request(method, params) for method, params in requests]
        return dict(zip(labels, results))


def _decode_raw_revert(error, registry):
    """(name, inputs) of a revert ape left undecoded (a failed deployment): matched on the registry's ABI."""
    raw = error.revert_message or ""
    data = bytes.fromhex(raw[2:]) if raw.startswith("0x") else b""
    for abi in registry.contract_type.errors:
        if keccak(text=abi.selector)[:4] == data[:4]:
            values = abi_decode([i.canonical_type for i in abi.inputs], data[4:])
            return abi.name, dict(zip([i.name for i in abi.inputs], values))
    raise AssertionError(f"expected a custom error, got {error!r}")


def assert_custom_error(error, expected, arguments, registry):
    """``error`` is the custom error ``expected`` (an ape error class or a name) with exactly ``arguments``."""
    expected_name = expected if isinstance(expected, str) else expected.__name__
    if isinstance(error, CustomError):
        name, inputs = error.name, error.inputs
    else:
        name, inputs = _decode_raw_revert(error, registry)
    actual = {k: normalise(v) for k, v in inputs.items()}
    wanted = {k: normalise(v) for k, v in arguments.items()}
    assert (name, actual) == (expected_name, wanted), f"expected {expected_name}({wanted}), got {name}({actual})"


@pytest.fixture
def ledger(registry, chain, parties, clinic):
    return Ledger(registry, chain, parties, clinic)


@pytest.fixture
def reverts(ledger, registry, request):
    """``with reverts(registry.SomeError, arg=value, ...):`` -- the block's transaction must revert with
    exactly that custom error and those arguments, and leave the registry's state as it was (and, in the
    box and claim tests, DrugBoxes' state: every lot, box and fill the test made)."""
    books = [ledger]
    if "drug_boxes" in request.fixturenames:
        from .boxkit import BoxLedger

        books.append(
            BoxLedger(
                request.getfixturevalue("drug_boxes"),
                ledger.chain,
                request.getfixturevalue("module_factory"),
                ledger.clinic,
            )
        )

    @contextlib.contextmanager
    def _reverts(expected, /, **arguments):
        before = [book.read() for book in books]
        with pytest.raises(ContractLogicError) as caught:
            yield caught
        assert_custom_error(caught.value, expected, arguments, registry)
        after = [book.read() for book in books]
        changed = [label for b, a in zip(before, after) for label in b if b[label] != a.get(label)]
        assert not changed, f"a refused call changed the state: {changed}"

    return _reverts


# ------------------------------------------------------------------ drug boxes and claims (DrugBoxes)

# The box and claim fixtures live in boxkit (it reads this module's constants, defined above).
from .boxkit import (  # noqa: F401 - fixtures for test_boxes and test_claims
    drug_boxes,
    factory,
    insurer,
    manufacturer,
    module_factory,
    other_insurer,
    other_manufacturer,
)
