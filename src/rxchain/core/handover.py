"""The codes that pass between the patient, the pharmacy and the courier, so that only the patient
consents to a fill and only the patient confirms receipt.

The claim key's private key stays with the patient (the patient's app) or, on paper, signs every
slip at the hospital and is forgotten. What travels instead are signatures, each bound to one fill:

    RXP1.  consent request    the pharmacy shows it: {chainId, registry, pharmacy, deadline}
    RXA1.  authorization      the patient's app shows it to that pharmacy, or a paper fill slip:
                              {chainId, registry, rxId, claimAddress (address), doc, pharmacy, fillsLeft,
                               deadline, signature}; signature = the claim key's EIP-712 Redeem
                              signature; pharmacy = 0x0 on a paper slip (whoever presents it)
    RXD1.  delivery request   the courier (or the counter) shows it:
                              {chainId, registry, rxId, deliverer, fillsLeft, deadline}
    RXR1.  receipt            the patient's app shows it to that deliverer, or a paper receipt slip
                              kept under a fold until the door: {chainId, registry, rxId, terms,
                              deliverer, fillsLeft, deadline, signature}; deliverer = 0x0 on paper

Every code has the framing of the prescription code (:func:`rxchain.core.payload.frame`: tag,
version, base64url of zlib'd RFC 8785 JSON and a keccak checksum), a ``"v": 1`` key and nothing
else: unknown keys are refused. Decoding checks the framing, the keys and their types, and the
signature where there is one; :func:`check_authorization` and :func:`check_receipt` then check it
against the chain's state before anything is sent, so that the pharmacist or courier sees why a code
will not do (another pharmacy's, another fill's, expired) without a transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import coincurve
from eth_utils import keccak, to_checksum_address

from rxchain.core.claims import ANYONE, RegistryDomain, receipt_digest, redeem_digest, sign_receipt, sign_redeem
from rxchain.core.document import DocumentError, document_hash, prescription_parties
from rxchain.core.ids import RxId, is_valid_address, prescription_id, terms_hash
from rxchain.core.payload import (
    MalformedPayload,
    PayloadError,
    PayloadTampered,
    PrescriptionPayload,
    UnsupportedPayloadVersion,
    WrongChain,
    WrongRegistry,
    _is_chain_id,
    code_noun,
    frame,
    unframe,
)

__all__ = [
    "AUTHORIZATION_TAG",
    "CONSENT_REQUEST_TAG",
    "DELIVERY_REQUEST_TAG",
    "RECEIPT_TAG",
    "Authorization",
    "AuthorizationForAnotherFill",
    "AuthorizationForAnotherPharmacy",
    "BadHandoverSignature",
    "ConsentRequest",
    "DeliveryRequest",
    "HandoverExpired",
    "PharmacyNotDesignated",
    "Receipt",
    "ReceiptForAnotherDelivery",
    "authorize",
    "check_authorization",
    "check_receipt",
    "decode_authorization",
    "decode_consent_request",
    "decode_delivery_request",
    "decode_receipt",
    "paper_slips",
    "sign_receipt_for",
]

CONSENT_REQUEST_TAG = "RXP"
AUTHORIZATION_TAG = "RXA"
DELIVERY_REQUEST_TAG = "RXD"
RECEIPT_TAG = "RXR"

_HASH_RE = re.compile(r"0x[0-9a-fA-F]{64}")
_SIGNATURE_RE = re.compile(r"0x[0-9a-fA-F]{130}")
_MAX_UINT40 = 2**40 - 1


# --------------------------------------------------------------------------- errors


class BadHandoverSignature(PayloadError):
    """The code's signature is not the prescription's claim key's: it was altered or made up."""

    def __init__(self, what: str) -> None:
        super().__init__(f"the {what} is not signed by the prescription's key: it was altered or made up")


class HandoverExpired(PayloadError):
    """The code's deadline has passed: ask for a fresh one."""

    def __init__(self, what: str, deadline: int, now: int) -> None:
        self.deadline, self.now = deadline, now
        super().__init__(f"the {what} expired at {deadline} (chain time is {now}): ask the patient for a fresh one")


class AuthorizationForAnotherPharmacy(PayloadError):
    """The patient authorised another pharmacy: this one cannot use it."""

    def __init__(self, authorized: str, pharmacy: str) -> None:
        self.authorized, self.pharmacy = authorized, pharmacy
        super().__init__(f"the patient authorised pharmacy {authorized}, not {pharmacy}: the patient must consent here")


class AuthorizationForAnotherFill(PayloadError):
    """The authorisation is for another fill than the one the prescription is at."""

    def __init__(self, signed_fills_left: int, fills_left: int) -> None:
        self.signed_fills_left, self.fills_left = signed_fills_left, fills_left
        super().__init__(
            f"the code is for the fill with {signed_fills_left} fill(s) left, the prescription has {fills_left} left: "
            "it was used already or belongs to another fill"
        )


class ReceiptForAnotherDelivery(PayloadError):
    """The receipt was signed for another hand-over (another deliverer or another fill)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the receipt belongs to another hand-over: {reason}")


class PharmacyNotDesignated(PayloadError):
    """The doctor named a pharmacy for this prescription, and another one asks for consent."""

    def __init__(self, designated: str, asking: str) -> None:
        self.designated, self.asking = designated, asking
        super().__init__(f"this prescription can only be filled at pharmacy {designated}; pharmacy {asking} asked")


def _normalise(code: object, *fields: str) -> None:
    """Checksummed addresses (and RxId ids) whatever the caller gave: one input, one code text."""
    for name in fields:
        value = getattr(code, name)
        if not is_valid_address(value):
            raise MalformedPayload("must be a 0x address", name)
        object.__setattr__(code, name, to_checksum_address(value))
    if hasattr(code, "rx_id"):
        object.__setattr__(code, "rx_id", RxId(code.rx_id))


# --------------------------------------------------------------------------- the codes


@dataclass(frozen=True)
class ConsentRequest:
    """What a pharmacy shows the patient's app: "this pharmacy asks to fill a prescription"."""

    chain_id: int
    registry: str
    pharmacy: str
    deadline: int

    def __post_init__(self) -> None:
        _normalise(self, "registry", "pharmacy")

    def encode(self) -> str:
        return frame(
            {
                "v": 1,
                "chainId": self.chain_id,
                "registry": self.registry,
                "pharmacy": self.pharmacy,
                "deadline": self.deadline,
            },
            CONSENT_REQUEST_TAG,
        )


@dataclass(frozen=True)
class Authorization:
    """The patient's consent to one fill at one pharmacy (or, on a paper slip, at whichever presents it)."""

    chain_id: int
    registry: str
    rx_id: RxId
    claim_key: str  # the claim key's address
    document: dict[str, Any]
    pharmacy: str
    fills_left: int
    deadline: int
    signature: bytes

    def __post_init__(self) -> None:
        _normalise(self, "registry", "claim_key", "pharmacy")

    @property
    def domain(self) -> RegistryDomain:
        return RegistryDomain(self.chain_id, self.registry)

    @property
    def doc_hash(self) -> bytes:
        return document_hash(self.document)

    @property
    def is_paper(self) -> bool:
        return self.pharmacy == ANYONE

    @property
    def parties(self) -> tuple[str, str | None]:
        """(doctor, designated pharmacy or None) named by the document."""
        return prescription_parties(self.document)

    def encode(self) -> str:
        return frame(
            {
                "v": 1,
                "chainId": self.chain_id,
                "registry": self.registry,
                "rxId": str(self.rx_id),
                "claimAddress": self.claim_key,
                "doc": self.document,
                "pharmacy": self.pharmacy,
                "fillsLeft": self.fills_left,
                "deadline": self.deadline,
                "signature": "0x" + self.signature.hex(),
            },
            AUTHORIZATION_TAG,
        )


@dataclass(frozen=True)
class DeliveryRequest:
    """What the courier (or the pharmacy at the counter) shows the patient's app at the hand-over."""

    chain_id: int
    registry: str
    rx_id: RxId
    deliverer: str
    fills_left: int
    deadline: int

    def __post_init__(self) -> None:
        _normalise(self, "registry", "deliverer")

    def encode(self) -> str:
        return frame(
            {
                "v": 1,
                "chainId": self.chain_id,
                "registry": self.registry,
                "rxId": str(self.rx_id),
                "deliverer": self.deliverer,
                "fillsLeft": self.fills_left,
                "deadline": self.deadline,
            },
            DELIVERY_REQUEST_TAG,
        )


@dataclass(frozen=True)
class Receipt:
    """The patient's receipt of one fill from one deliverer (or, on a paper slip, from whoever brings it)."""

    chain_id: int
    registry: str
    rx_id: RxId
    terms: bytes
    deliverer: str
    fills_left: int
    deadline: int
    signature: bytes

    def __post_init__(self) -> None:
        _normalise(self, "registry", "deliverer")

    @property
    def is_paper(self) -> bool:
        return self.deliverer == ANYONE

    def encode(self) -> str:
        return frame(
            {
                "v": 1,
                "chainId": self.chain_id,
                "registry": self.registry,
                "rxId": str(self.rx_id),
                "terms": "0x" + self.terms.hex(),
                "deliverer": self.deliverer,
                "fillsLeft": self.fills_left,
                "deadline": self.deadline,
                "signature": "0x" + self.signature.hex(),
            },
            RECEIPT_TAG,
        )


# --------------------------------------------------------------------------- the patient's side


def authorize(
    payload: PrescriptionPayload, request: ConsentRequest, fills_left: int, *, now: int | None = None
) -> Authorization:
    """The patient consents to ``request``'s pharmacy filling the fill at ``fills_left`` (what the
    patient's app does on the patient's tap). Refuses a request for another deployment, from a
    pharmacy the doctor did not designate, or (given the chain's ``now``) past its deadline."""
    _check_deployment(payload, request.chain_id, request.registry)
    if request.pharmacy == ANYONE:
        raise MalformedPayload("a pharmacy asking for consent must name itself", "pharmacy")
    _, designated = prescription_parties(payload.document)
    if designated is not None and to_checksum_address(designated) != request.pharmacy:
        raise PharmacyNotDesignated(to_checksum_address(designated), request.pharmacy)
    if now is not None and now > request.deadline:
        raise HandoverExpired("consent request", request.deadline, now)
    return _authorization(payload, request.pharmacy, fills_left, request.deadline)


def sign_receipt_for(payload: PrescriptionPayload, request: DeliveryRequest, *, now: int | None = None) -> Receipt:
    """The patient confirms receiving the fill ``request`` hands over, from ``request``'s deliverer
    (refused, given the chain's ``now``, past the request's deadline)."""
    _check_deployment(payload, request.chain_id, request.registry)
    if now is not None and now > request.deadline:
        raise HandoverExpired("delivery request", request.deadline, now)
    if request.rx_id != payload.rx_id:
        raise ReceiptForAnotherDelivery(f"the courier shows prescription {request.rx_id}, this one is {payload.rx_id}")
    if request.deliverer == ANYONE:
        raise MalformedPayload("a deliverer asking for a receipt must name itself", "deliverer")
    return _receipt(payload, request.deliverer, request.fills_left, request.deadline)


def paper_slips(
    payload: PrescriptionPayload, fills: int, expires_at: int, receipt_days: int = 30
) -> tuple[list[Authorization], list[Receipt]]:
    """The slips a hospital prints for a patient without a phone, then forgets the key: one fill slip
    per fill (pharmacy = anyone, until the prescription expires) and one receipt slip per fill
    (deliverer = anyone), to be kept under a fold until the drugs are in the patient's hands."""
    receipt_deadline = int(expires_at) + receipt_days * 86_400
    fill_slips = [_authorization(payload, ANYONE, left, int(expires_at)) for left in range(fills, 0, -1)]
    receipt_slips = [_receipt(payload, ANYONE, left - 1, receipt_deadline) for left in range(fills, 0, -1)]
    return fill_slips, receipt_slips


def _authorization(payload: PrescriptionPayload, pharmacy: str, fills_left: int, deadline: int) -> Authorization:
    domain = RegistryDomain(payload.chain_id, payload.registry)
    signature = sign_redeem(payload.claim_key.hex, domain, payload.rx_id, pharmacy, fills_left, deadline)
    return Authorization(
        payload.chain_id,
        payload.registry,
        payload.rx_id,
        payload.claim_key.address,
        payload.document,
        to_checksum_address(pharmacy),
        int(fills_left),
        int(deadline),
        signature,
    )


def _receipt(payload: PrescriptionPayload, deliverer: str, fills_left: int, deadline: int) -> Receipt:
    domain = RegistryDomain(payload.chain_id, payload.registry)
    doctor, pharmacy = prescription_parties(payload.document)
    terms = terms_hash(doctor, payload.doc_hash, pharmacy)
    signature = sign_receipt(payload.claim_key.hex, domain, payload.rx_id, deliverer, fills_left, deadline)
    return Receipt(
        payload.chain_id,
        payload.registry,
        payload.rx_id,
        terms,
        to_checksum_address(deliverer),
        int(fills_left),
        int(deadline),
        signature,
    )


def _check_deployment(payload: PrescriptionPayload, chain_id: int, registry: str) -> None:
    if chain_id != payload.chain_id:
        raise WrongChain(payload.chain_id, chain_id)
    if to_checksum_address(registry) != payload.registry:
        raise WrongRegistry(payload.registry, to_checksum_address(registry))


# --------------------------------------------------------------------------- reading codes


def decode_consent_request(text: str) -> ConsentRequest:
    obj = _object(
        text, CONSENT_REQUEST_TAG, "a pharmacy's consent request", ("chainId", "registry", "pharmacy", "deadline")
    )
    return ConsentRequest(obj["chainId"], obj["registry"], obj["pharmacy"], obj["deadline"])


def decode_delivery_request(text: str) -> DeliveryRequest:
    keys = ("chainId", "registry", "rxId", "deliverer", "fillsLeft", "deadline")
    obj = _object(text, DELIVERY_REQUEST_TAG, "a delivery request", keys)
    return DeliveryRequest(
        obj["chainId"], obj["registry"], obj["rxId"], obj["deliverer"], obj["fillsLeft"], obj["deadline"]
    )


def decode_authorization(
    text: str, *, expected_chain_id: int | None = None, expected_registry: str | None = None
) -> Authorization:
    """Read a patient's authorisation (or a paper fill slip) and check that it is whole: the id opens to
    its document and claim key, and the claim key signed it. Raises :class:`PayloadError` subclasses."""
    keys = ("chainId", "registry", "rxId", "claimAddress", "doc", "pharmacy", "fillsLeft", "deadline", "signature")
    obj = _object(text, AUTHORIZATION_TAG, "an authorization code", keys)
    auth = Authorization(
        obj["chainId"],
        obj["registry"],
        obj["rxId"],
        obj["claimAddress"],
        obj["doc"],
        obj["pharmacy"],
        obj["fillsLeft"],
        obj["deadline"],
        obj["signature"],
    )
    _check_expected(auth.chain_id, auth.registry, expected_chain_id, expected_registry)
    try:
        doctor, designated = auth.parties
        computed = prescription_id(auth.claim_key, terms_hash(doctor, auth.doc_hash, designated))
    except DocumentError as exc:
        raise MalformedPayload(str(exc), "doc") from exc
    if computed != auth.rx_id:
        raise PayloadTampered(auth.rx_id, computed)
    digest = redeem_digest(auth.domain, auth.rx_id, auth.pharmacy, auth.fills_left, auth.deadline)
    if _signer(digest, auth.signature) != auth.claim_key:
        raise BadHandoverSignature("authorization")
    return auth


def decode_receipt(text: str, *, expected_chain_id: int | None = None, expected_registry: str | None = None) -> Receipt:
    """Read a patient's receipt (or a paper receipt slip) and check that it is whole: the signer, with
    the terms it carries, opens the id. :func:`check_receipt` then checks it is for this hand-over."""
    keys = ("chainId", "registry", "rxId", "terms", "deliverer", "fillsLeft", "deadline", "signature")
    obj = _object(text, RECEIPT_TAG, "a receipt code", keys)
    receipt = Receipt(
        obj["chainId"],
        obj["registry"],
        obj["rxId"],
        obj["terms"],
        obj["deliverer"],
        obj["fillsLeft"],
        obj["deadline"],
        obj["signature"],
    )
    _check_expected(receipt.chain_id, receipt.registry, expected_chain_id, expected_registry)
    digest = receipt_digest(
        RegistryDomain(receipt.chain_id, receipt.registry),
        receipt.rx_id,
        receipt.deliverer,
        receipt.fills_left,
        receipt.deadline,
    )
    signer = _signer(digest, receipt.signature)
    if signer is None or prescription_id(signer, receipt.terms) != receipt.rx_id:
        raise BadHandoverSignature("receipt")
    return receipt


# --------------------------------------------------------------------------- before sending


def check_authorization(auth: Authorization, *, pharmacy: str, fills_left: int, now: int) -> None:
    """What the pharmacy checks before it sends: the consent is for it, for this fill, and still live."""
    if not auth.is_paper and auth.pharmacy != to_checksum_address(pharmacy):
        raise AuthorizationForAnotherPharmacy(auth.pharmacy, to_checksum_address(pharmacy))
    if auth.fills_left != fills_left:
        raise AuthorizationForAnotherFill(auth.fills_left, fills_left)
    if now > auth.deadline:
        raise HandoverExpired("authorization", auth.deadline, now)


def check_receipt(receipt: Receipt, *, deliverer: str, fills_left: int, now: int) -> None:
    """What the deliverer checks before it sends: the receipt is for its hand-over and still live."""
    if not receipt.is_paper and receipt.deliverer != to_checksum_address(deliverer):
        raise ReceiptForAnotherDelivery(
            f"it names deliverer {receipt.deliverer}, the drugs are with {to_checksum_address(deliverer)}"
        )
    if receipt.fills_left != fills_left:
        raise ReceiptForAnotherDelivery(
            f"it is for the fill leaving {receipt.fills_left} fill(s), this one leaves {fills_left}"
        )
    if now > receipt.deadline:
        raise HandoverExpired("receipt", receipt.deadline, now)


# --------------------------------------------------------------------------- helpers


def _object(text: str, tag: str, what: str, keys: tuple[str, ...]) -> dict[str, Any]:
    obj = unframe(text, tag, what)
    code = code_noun(what)
    if not isinstance(obj, dict):
        raise MalformedPayload(f"{what} must be a JSON object", code=code)
    version = obj.get("v")
    if isinstance(version, bool) or not isinstance(version, int):
        raise MalformedPayload("missing or not an integer", "v", code=code)
    if version != 1:
        raise UnsupportedPayloadVersion(version, code=code)
    for key in keys:
        if key not in obj:
            raise MalformedPayload("missing", key, code=code)
    for key in obj:
        if key != "v" and key not in keys:
            raise MalformedPayload("unexpected key", key, code=code)
    out = dict(obj)
    if not _is_chain_id(obj["chainId"]):
        raise MalformedPayload("the chain id must be a positive integer", "chainId", code=code)
    for key in ("registry", "pharmacy", "deliverer", "claimAddress"):
        if key in keys:
            if not is_valid_address(obj[key]):
                raise MalformedPayload("must be a 0x address", key, code=code)
            out[key] = to_checksum_address(obj[key])
    for key in ("rxId", "terms"):
        if key in keys:
            if not isinstance(obj[key], str) or not _HASH_RE.fullmatch(obj[key]):
                raise MalformedPayload("must be 0x followed by 64 hex digits", key, code=code)
            out[key] = RxId(bytes.fromhex(obj[key][2:])) if key == "rxId" else bytes.fromhex(obj[key][2:])
    for key, top in (("fillsLeft", 255), ("deadline", _MAX_UINT40)):
        if key in keys:
            value = obj[key]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
                raise MalformedPayload(f"must be an integer in 0..{top}", key, code=code)
    if "signature" in keys:
        if not isinstance(obj["signature"], str) or not _SIGNATURE_RE.fullmatch(obj["signature"]):
            raise MalformedPayload("must be 0x followed by 130 hex digits (65 bytes)", "signature", code=code)
        out["signature"] = bytes.fromhex(obj["signature"][2:])
    if "doc" in keys and not isinstance(obj["doc"], dict):
        raise MalformedPayload("the document must be a JSON object", "doc", code=code)
    return out


def _check_expected(chain_id: int, registry: str, expected_chain_id: int | None, expected_registry: str | None) -> None:
    if expected_chain_id is not None and chain_id != expected_chain_id:
        raise WrongChain(expected_chain_id, chain_id)
    if expected_registry is not None and registry != to_checksum_address(expected_registry):
        raise WrongRegistry(to_checksum_address(expected_registry), registry)


def _signer(digest: bytes, signature: bytes) -> str | None:
    """The address that signed ``digest`` (low-s, v in 27/28, as the registry accepts), or None."""
    if len(signature) != 65 or signature[64] not in (27, 28):
        return None
    if int.from_bytes(signature[32:64], "big") > 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0:
        return None
    try:
        public = coincurve.PublicKey.from_signature_and_message(
            signature[:64] + bytes([signature[64] - 27]), digest, hasher=None
        )
    except ValueError:
        return None
    return to_checksum_address(keccak(public.format(compressed=False)[1:])[-20:])
