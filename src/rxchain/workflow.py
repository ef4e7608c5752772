"""Prescription work as a hospital system, a pharmacy, a courier and a patient do it: documents and
codes in, chain out.

What a hospital system calls to issue: :func:`issue_prescription` (validated FHIR document + doctor's
key -> on-chain prescription + the prescription code the patient's app takes home). What a pharmacy
calls to redeem: :func:`redeem_code` with the patient's authorisation code (or, in the weaker
single-QR mode, the prescription code itself). What the courier or the counter calls at the hand-over:
:func:`deliver_with_receipt_code` / :func:`confirm_receipt_code` with the patient's receipt code.
What the patient's side does (the patient app, or ``rx patient`` from a terminal):
:func:`patient_consent` and :func:`patient_receipt`.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from rxchain.chain.client import RegistryClient, TxResult
from rxchain.core.document import DEFAULT_LIMITS, PrescriptionLimits, validate
from rxchain.errors import BadInput
from rxchain.core.ids import prescription_id_for, terms_hash
from rxchain.core.handover import (
    AUTHORIZATION_TAG,
    RECEIPT_TAG,
    Authorization,
    Receipt,
    authorize,
    decode_authorization,
    decode_consent_request,
    decode_delivery_request,
    decode_receipt,
    paper_slips,
    sign_receipt_for,
)
from rxchain.core.payload import PAYLOAD_VERSION, ClaimKey, PrescriptionPayload, decode_payload, encode_payload


class SignerIsNotRequester(BadInput):
    """The document names another doctor than the account that would issue it."""


@dataclass(frozen=True)
class IssuedPrescription:
    """An issued prescription: its id, the issue transaction, and what the patient takes home."""

    rx_id: bytes
    tx: TxResult
    payload: PrescriptionPayload
    payload_text: str
    expires_at: int


def issue_prescription(
    client: RegistryClient,
    doctor: LocalAccount,
    document: dict,
    *,
    fills: int = 1,
    limits: PrescriptionLimits = DEFAULT_LIMITS,
    claim_key: ClaimKey | None = None,
) -> IssuedPrescription:
    """Validates ``document``, makes a fresh claim key, issues on chain and returns the QR payload.

    The expiry committed on chain is the end of the document's validity period.
    """
    checked = validate(document, limits)
    if checked.doctor != doctor.address:
        raise SignerIsNotRequester(
            f"the document's requester is {checked.doctor}, but {doctor.address} would sign: "
            "a doctor issues only their own prescriptions"
        )
    claim_key = claim_key or ClaimKey.generate()
    expires_at = int(checked.valid_until.timestamp())
    rx_id, tx = client.issue(
        doctor,
        checked.doc_hash,
        claim_key.address,
        expires_at,
        designated_pharmacy=checked.designated_pharmacy,
        fills=fills,
    )
    payload = PrescriptionPayload(
        chain_id=client.chain_id, registry=client.address, rx_id=rx_id, claim_key=claim_key, document=document
    )
    return IssuedPrescription(rx_id, tx, payload, encode_payload(payload), expires_at)


@dataclass(frozen=True)
class IssuedBatch:
    """A batch issued by a hospital: its root, the transaction, and each patient's QR payload."""

    root: bytes
    tx: TxResult
    prescriptions: list[IssuedPrescription]


class DoctorNotOfHospital(BadInput):
    """A document in a hospital's batch names a doctor the hospital did not admit."""


def issue_batch(
    client: RegistryClient,
    hospital: LocalAccount,
    documents: list[dict],
    *,
    fills: int = 1,
    limits: PrescriptionLimits = DEFAULT_LIMITS,
) -> IssuedBatch:
    """Issues many prescriptions of the hospital's doctors in one transaction (a Merkle root).

    Every document is validated and must name a doctor of this hospital; the batch's expiry is the
    earliest end of validity among them. Each patient's QR payload is the same as for a single issue.
    """
    checked = [validate(document, limits) for document in documents]
    for item in {c.doctor for c in checked}:
        if client.member(item).hospital != hospital.address:
            raise DoctorNotOfHospital(
                f"{item} is not a doctor of hospital {hospital.address}: it cannot batch their prescriptions"
            )
    claim_keys = [ClaimKey.generate() for _ in documents]
    ids = [
        prescription_id_for(c.doctor, c.doc_hash, k.address, c.designated_pharmacy) for c, k in zip(checked, claim_keys)
    ]
    expires_at = min(int(c.valid_until.timestamp()) for c in checked)
    root, tx = client.issue_batch(hospital, ids, expires_at, fills=fills)
    issued = []
    for rx_id, key, document in zip(ids, claim_keys, documents):
        payload = PrescriptionPayload(
            chain_id=client.chain_id, registry=client.address, rx_id=rx_id, claim_key=key, document=document
        )
        issued.append(IssuedPrescription(rx_id, tx, payload, encode_payload(payload), expires_at))
    return IssuedBatch(root, tx, issued)


def read_payload(client: RegistryClient, text: str) -> PrescriptionPayload:
    """Decodes QR text for this client's chain and registry (named :class:`~rxchain.core.payload.PayloadError` on any
    fault)."""
    return decode_payload(text, expected_chain_id=client.chain_id, expected_registry=client.address)


def redeem_payload(
    client: RegistryClient, pharmacy: LocalAccount, text: str, *, deadline: int | None = None
) -> tuple[bytes, TxResult]:
    """Redeems one fill of the prescription in QR payload ``text`` as ``pharmacy``."""
    payload = read_payload(client, text)
    checked = validate(payload.document)
    return client.redeem(
        pharmacy,
        doctor=checked.doctor,
        doc_hash=checked.doc_hash,
        designated_pharmacy=checked.designated_pharmacy,
        claim_private_key=payload.claim_key.private_key,
        deadline=deadline,
    )


def payload_terms(payload: PrescriptionPayload) -> bytes:
    """The id's terms (doctor, document hash, designated pharmacy) from a payload."""
    checked = validate(payload.document)
    return terms_hash(checked.doctor, checked.doc_hash, checked.designated_pharmacy)


def confirm_payload_receipt(
    client: RegistryClient, relayer: LocalAccount, text: str, *, with_delivery: bool = False
) -> TxResult:
    """Records the patient's receipt, signed with the QR's claim key; with ``with_delivery`` the holder
    (courier or pharmacy) delivers and records the receipt in one transaction."""
    payload = read_payload(client, text)
    terms = payload_terms(payload)
    if with_delivery:
        return client.deliver_with_receipt(relayer, payload.rx_id, terms, payload.claim_key.private_key)
    return client.confirm_receipt(relayer, payload.rx_id, terms, payload.claim_key.private_key)


# ------------------------------------------------------------------ the patient holds the key


@dataclass(frozen=True)
class PaperPrescription:
    """A prescription issued on paper: what is printed, and nothing else (the key is gone).

    ``fill_slips[k]`` redeems fill k+1 at whichever pharmacy it is shown to (one slip per fill, so the
    pharmacy of one fill never sees the next one's); ``receipt_slips[k]`` confirms receipt of fill
    k+1 from whoever hands it over, and stays under a fold until the drugs are in the patient's hands.
    """

    rx_id: bytes
    tx: TxResult
    document: dict
    expires_at: int
    fill_slips: list[str]
    receipt_slips: list[str]


def issue_on_paper(
    client: RegistryClient,
    doctor: LocalAccount,
    document: dict,
    *,
    fills: int = 1,
    limits: PrescriptionLimits = DEFAULT_LIMITS,
) -> PaperPrescription:
    """Issues a prescription for a patient without a phone: the claim key signs every fill slip and
    every receipt slip here and is then dropped (it is never written anywhere)."""
    issued = issue_prescription(client, doctor, document, fills=fills, limits=limits)
    fill_slips, receipt_slips = paper_slips(issued.payload, fills, issued.expires_at)
    return PaperPrescription(
        issued.rx_id,
        issued.tx,
        document,
        issued.expires_at,
        [a.encode() for a in fill_slips],
        [r.encode() for r in receipt_slips],
    )


def read_authorization(client: RegistryClient, text: str) -> Authorization:
    """Decodes a patient's authorisation code (or paper fill slip) for this client's deployment."""
    return decode_authorization(text, expected_chain_id=client.chain_id, expected_registry=client.address)


def read_receipt(client: RegistryClient, text: str) -> Receipt:
    """Decodes a patient's receipt code (or paper receipt slip) for this client's deployment."""
    return decode_receipt(text, expected_chain_id=client.chain_id, expected_registry=client.address)


def is_authorization(text: str) -> bool:
    return text.strip().startswith(f"{AUTHORIZATION_TAG}{PAYLOAD_VERSION}.")


def is_receipt(text: str) -> bool:
    return text.strip().startswith(f"{RECEIPT_TAG}{PAYLOAD_VERSION}.")


def redeem_code(client: RegistryClient, pharmacy: LocalAccount, text: str) -> tuple[bytes, TxResult]:
    """Redeems one fill with what the patient showed: an authorisation code for this pharmacy (the
    patient's app), a paper fill slip, or the prescription code itself (single-QR mode). A code for
    another pharmacy, another fill or past its deadline is refused before anything is sent."""
    if is_authorization(text):
        auth = read_authorization(client, text)
        validate(auth.document)
        return client.redeem_authorized(pharmacy, auth)
    return redeem_payload(client, pharmacy, text)


def deliver_with_receipt_code(client: RegistryClient, holder: LocalAccount, text: str) -> TxResult:
    """The holder hands the drugs over and records the patient's receipt code in one transaction."""
    return client.deliver_with_patient_receipt(holder, read_receipt(client, text))


def confirm_receipt_code(client: RegistryClient, relayer: LocalAccount, text: str) -> TxResult:
    """Records the patient's receipt code for a delivered prescription (any account may relay it)."""
    return client.confirm_patient_receipt(relayer, read_receipt(client, text))


def patient_consent(client: RegistryClient, prescription_text: str, request_text: str) -> Authorization:
    """The patient's side of a consent: the pharmacy's request in, the authorisation code for that
    pharmacy and the prescription's current fill out (what the patient app does on the patient's tap)."""
    payload = read_payload(client, prescription_text)
    request = decode_consent_request(request_text)
    _, fills_left, _ = client.current_fill(payload.rx_id, validate(payload.document).doctor)
    return authorize(payload, request, fills_left, now=client.latest_block_time())


def patient_receipt(client: RegistryClient, prescription_text: str, request_text: str) -> Receipt:
    """The patient's side of a hand-over: the deliverer's request in, the receipt code out."""
    payload = read_payload(client, prescription_text)
    return sign_receipt_for(payload, decode_delivery_request(request_text), now=client.latest_block_time())
