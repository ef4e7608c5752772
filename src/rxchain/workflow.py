"""Prescription work as a hospital system and a pharmacy do it: documents and QR codes in, chain out.

What a hospital system calls to issue: :func:`issue_prescription` (validated FHIR document + doctor's
key -> on-chain prescription + the patient's QR payload). What a pharmacy calls to redeem:
:func:`redeem_payload` (QR payload text + pharmacy's key -> redeemed fill). The delivery steps take the
id; the receipt takes the QR payload again (the claim key signs it at the door).
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from rxchain.chain.client import RegistryClient, TxResult
from rxchain.core.document import DEFAULT_LIMITS, PrescriptionLimits, validate
from rxchain.errors import BadInput
from rxchain.core.ids import prescription_id_for, terms_hash
from rxchain.core.payload import ClaimKey, PrescriptionPayload, decode_payload, encode_payload


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
            raise DoctorNotOfHospital(f"{item} is not a doctor of hospital {hospital.address}: it cannot batch their prescriptions")
    claim_keys = [ClaimKey.generate() for _ in documents]
    ids = [prescription_id_for(c.doctor, c.doc_hash, k.address, c.designated_pharmacy) for c, k in zip(checked, claim_keys)]
    expires_at = min(int(c.valid_until.timestamp()) for c in checked)
    root, tx = client.issue_batch(hospital, ids, expires_at, fills=fills)
    issued = []
    for rx_id, key, document in zip(ids, claim_keys, documents):
        payload = PrescriptionPayload(chain_id=client.chain_id, registry=client.address, rx_id=rx_id, claim_key=key, document=document)
        issued.append(IssuedPrescription(rx_id, tx, payload, encode_payload(payload), expires_at))
    return IssuedBatch(root, tx, issued)


def read_payload(client: RegistryClient, text: str) -> PrescriptionPayload:
    """Decodes QR text for this client's chain and registry (named :class:`~rxchain.core.payload.PayloadError` on any fault)."""
    return decode_payload(text, expected_chain_id=client.chain_id, expected_registry=client.address)


def redeem_payload(client: RegistryClient, pharmacy: LocalAccount, text: str, *, deadline: int | None = None) -> tuple[bytes, TxResult]:
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
