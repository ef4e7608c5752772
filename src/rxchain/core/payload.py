"""The patient's QR payload: claim key, prescription document and where to redeem it.

Format (version 1)
==================

The payload is one ASCII string::

    "RX1." + base64url_nopad(body + checksum)

    body     = zlib.compress(canonical_json_utf8(obj), 9)   zlib format, with its 2-byte header
                                                            and Adler-32 trailer (RFC 1950)
    checksum = keccak256(body)[:4]

    obj = {"v": 1,
           "chainId": <int>,
           "registry": "0x<checksummed address of the registry contract>",
           "rxId": "0x<64 lowercase hex: the prescription id>",
           "claimKey": "0x<64 lowercase hex: the claim key's PRIVATE key>",
           "doc": <the prescription document, see rxchain.core.document>}

``canonical_json_utf8`` is RFC 8785 (JSON Canonicalization Scheme) encoded as
UTF-8; ``base64url_nopad`` is RFC 4648 section 5 without ``=`` padding.
A browser decodes it with nothing but standard APIs::

    bytes    = base64url-decode(text.slice(4))
    body     = bytes.slice(0, -4)
    check    = keccak256(body).slice(0, 4) == bytes.slice(-4)     (ethers.keccak256)
    json     = new Response(new Blob([body]).stream()
                   .pipeThrough(new DecompressionStream("deflate"))).text()
    obj      = JSON.parse(json)

and verifies ``rxId == keccak256(abi.encode(address(claimKey), keccak256(
abi.encode(doctor, keccak256(canonical(doc)), pharmacy))))`` as described in
:mod:`rxchain.core.ids`.

The claim key is a fresh secp256k1 key per prescription; whoever holds the QR
code can claim the prescription, so the payload is as sensitive as the paper
prescription it replaces. ``chainId`` and ``registry`` bind it to one
deployment so that a code cannot be replayed against another chain.

Decoding ignores surrounding whitespace and refuses, with a named
:class:`PayloadError` subclass, anything that is not exactly this: no other
exception escapes :func:`decode_payload`. Limits: at most
:data:`MAX_PAYLOAD_CHARS` characters of text, :data:`MAX_JSON_BYTES` of
decompressed JSON, nesting at most ``rxchain.core.strictjson.MAX_JSON_DEPTH`` deep;
duplicate keys, NaN/Infinity and unknown top-level keys are refused, and
``chainId`` must be at most 2**53-1 so that ``JSON.parse`` reads it exactly.

Rendering lives in :mod:`rxchain.core.qr`: ``payload_png`` writes a PNG (error correction M, or L
when the text does not fit at M), ``payload_terminal`` draws the code with half-block characters,
``read_qr_image`` reads it back from a photo. A typical payload is about 1,000-1,100 characters,
a QR code of version 26-27 (121-125 modules).
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import rfc8785
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from rxchain.core.claims import SECP256K1_ORDER
from rxchain.core.document import DocumentError, document_hash, prescription_parties
from rxchain.core.strictjson import loads_strict
from rxchain.core.ids import RxId, is_valid_address, prescription_id_for
from rxchain.errors import BadInput, InvalidValue

__all__ = [
    "CHECKSUM_BYTES",
    "MAX_JSON_BYTES",
    "MAX_PAYLOAD_CHARS",
    "PAYLOAD_PREFIX",
    "PAYLOAD_VERSION",
    "ClaimKey",
    "MalformedPayload",
    "NonCanonicalPayload",
    "NotAPayload",
    "PayloadChecksumMismatch",
    "PayloadError",
    "PayloadTampered",
    "PayloadTooLarge",
    "PrescriptionPayload",
    "TruncatedPayload",
    "UnsupportedPayloadVersion",
    "WrongChain",
    "WrongRegistry",
    "decode_payload",
    "encode_payload",
    "frame",
    "unframe",
]

PAYLOAD_VERSION = 1
"""The payload format version written by :func:`encode_payload`."""

PAYLOAD_PREFIX = f"RX{PAYLOAD_VERSION}."
"""Text every version-1 payload starts with."""

CHECKSUM_BYTES = 4
"""Length of the keccak256 checksum appended to the compressed body."""

MAX_PAYLOAD_CHARS = 16 * 1024
"""Longest payload text accepted (a QR code holds at most 2953 bytes anyway)."""

MAX_JSON_BYTES = 64 * 1024
"""Largest decompressed JSON accepted, so a small payload cannot inflate into a huge one."""

_MAX_CHAIN_ID = 2**53 - 1  # largest integer a browser's JSON.parse reads exactly


# --------------------------------------------------------------------------- exceptions


class PayloadError(BadInput, ValueError):
    """Base class of every reason a QR payload is refused."""


class MalformedPayload(PayloadError):
    """The payload is not well formed (base64, zlib, JSON, or a required key); ``key`` names the key if any."""

    def __init__(self, reason: str, key: str | None = None, *, code: str = "prescription code") -> None:
        self.reason = reason
        self.key = key
        where = f" (key {key!r})" if key else ""
        super().__init__(f"malformed {code}{where}: {reason}")


class NotAPayload(MalformedPayload):
    """The text does not start like a prescription code at all (e.g. another QR code was scanned)."""

    def __init__(self, prefix: str = PAYLOAD_PREFIX, what: str = "a prescription code") -> None:
        self.prefix = prefix
        super().__init__(f"this is not {what} (it does not start with {prefix!r})", code=code_noun(what))


class UnsupportedPayloadVersion(PayloadError):
    """The payload is a prescription code of a version this software does not read."""

    def __init__(self, version: Any, *, code: str = "prescription code") -> None:
        self.version = version
        super().__init__(
            f"{code} version {version!r} is not supported (this software reads version"
            f" {PAYLOAD_VERSION}); update the software"
        )


class TruncatedPayload(PayloadError):
    """The payload ends early: part of the code was not scanned or copied."""

    def __init__(self, *, code: str = "prescription code") -> None:
        super().__init__(f"the {code} is incomplete: scan or copy it again")


class PayloadChecksumMismatch(PayloadError):
    """The checksum does not match: the code was damaged or misread."""

    def __init__(self, expected: bytes, got: bytes, *, code: str = "prescription code") -> None:
        self.expected = expected
        self.got = got
        super().__init__(f"the {code} is damaged (checksum mismatch): scan it again")


class NonCanonicalPayload(MalformedPayload):
    """The code's last character carries bits that no encoder writes: it was damaged or altered in that character."""

    def __init__(self, *, code: str = "prescription code") -> None:
        super().__init__(
            "the last character was damaged or altered (it is not one an encoder writes); scan it again", code=code
        )


class PayloadTooLarge(PayloadError):
    """The payload, or what it decompresses to, is larger than any genuine prescription code."""

    def __init__(self, size: int, maximum: int, what: str = "payload text") -> None:
        self.size = size
        self.maximum = maximum
        self.what = what
        super().__init__(f"{what} is too large: {size} > {maximum}")


class WrongChain(PayloadError):
    """The prescription belongs to another chain."""

    def __init__(self, expected: int, got: int) -> None:
        self.expected = expected
        self.got = got
        super().__init__(f"this prescription is for chain {got}, but this software is connected to chain {expected}")


class WrongRegistry(PayloadError):
    """The prescription is registered in another registry contract."""

    def __init__(self, expected: str, got: str) -> None:
        self.expected = expected
        self.got = got
        super().__init__(f"this prescription is for registry {got}, but this software uses registry {expected}")


class PayloadTampered(PayloadError):
    """The prescription id does not match the document and claim key: the content was altered."""

    def __init__(self, rx_id: bytes, computed: bytes) -> None:
        self.rx_id = rx_id
        self.computed = computed
        super().__init__(
            f"the prescription content does not match its id (id {RxId(rx_id)}, content gives"
            f" {RxId(computed)}): the code was altered; do not dispense"
        )


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True, repr=False)
class ClaimKey:
    """A one-prescription secp256k1 key; its address is bound into the prescription id.

    The private key never appears in ``repr``.
    """

    private_key: bytes

    def __post_init__(self) -> None:
        """Check the key is 32 bytes and a valid secp256k1 scalar."""
        key = self.private_key
        if not isinstance(key, (bytes, bytearray)) or len(key) != 32:
            raise InvalidValue("a claim key is 32 bytes")
        if not 0 < int.from_bytes(key, "big") < SECP256K1_ORDER:
            raise ValueError("a claim key must be a valid secp256k1 private key (0 < key < n)")
        object.__setattr__(self, "private_key", bytes(key))

    @classmethod
    def generate(cls) -> ClaimKey:
        """Return a fresh random claim key."""
        return cls(bytes(Account.create().key))

    @classmethod
    def from_hex(cls, text: str) -> ClaimKey:
        """Return the claim key written as ``0x`` + 64 hex digits (the ``0x`` is optional)."""
        if not isinstance(text, str) or not _KEY_HEX_RE.fullmatch(text):
            raise ValueError("a claim key is written as 0x followed by 64 hex digits")
        return cls(bytes.fromhex(text.removeprefix("0x").removeprefix("0X")))

    @property
    def hex(self) -> str:
        """The private key as ``0x`` + 64 lowercase hex digits."""
        return "0x" + self.private_key.hex()

    @cached_property
    def account(self) -> LocalAccount:
        """The eth_account signer for this key."""
        return Account.from_key(self.private_key)

    @property
    def address(self) -> str:
        """The checksummed address of this key."""
        return self.account.address

    def __repr__(self) -> str:
        """Show the address only."""
        return f"ClaimKey(address={self.address})"


@dataclass(frozen=True)
class PrescriptionPayload:
    """Everything the patient's QR code carries.

    ``document`` is a plain dict: do not modify it after the payload is made,
    since ``rx_id`` commits to its exact content.
    """

    chain_id: int
    registry: str
    rx_id: RxId
    claim_key: ClaimKey
    document: dict[str, Any]

    def __post_init__(self) -> None:
        """Check field types and normalise the registry address to its checksum form."""
        if not _is_chain_id(self.chain_id):
            raise MalformedPayload(f"chain id must be an integer in 1..{_MAX_CHAIN_ID}", "chainId")
        if not is_valid_address(self.registry):
            raise MalformedPayload("registry must be a 0x address", "registry")
        object.__setattr__(self, "registry", to_checksum_address(self.registry))
        if not isinstance(self.rx_id, (bytes, bytearray)) or len(self.rx_id) != 32:
            raise MalformedPayload("the prescription id is 32 bytes", "rxId")
        object.__setattr__(self, "rx_id", RxId(self.rx_id))
        if not isinstance(self.claim_key, ClaimKey):
            raise MalformedPayload("expected a ClaimKey", "claimKey")
        if not isinstance(self.document, dict):
            raise MalformedPayload("the document must be a JSON object", "doc")

    @classmethod
    def create(
        cls, *, chain_id: int, registry: str, claim_key: ClaimKey, document: dict[str, Any]
    ) -> PrescriptionPayload:
        """Return the payload for a document and claim key, computing its prescription id.

        Raises :class:`~rxchain.core.document.DocumentError` if the document lacks the doctor's address.
        """
        payload = cls(chain_id=chain_id, registry=registry, rx_id=bytes(32), claim_key=claim_key, document=document)
        object.__setattr__(payload, "rx_id", payload.computed_rx_id)
        return payload

    @property
    def doc_hash(self) -> bytes:
        """keccak256 of the canonical document (raises DocumentError if it cannot be canonicalised)."""
        return document_hash(self.document)

    @property
    def computed_rx_id(self) -> bytes:
        """The prescription id recomputed from the document and the claim key's address.

        Raises :class:`~rxchain.core.document.DocumentError` if the document lacks the doctor's address.
        """
        doctor, pharmacy = prescription_parties(self.document)
        return prescription_id_for(doctor, self.doc_hash, self.claim_key.address, pharmacy)


# --------------------------------------------------------------------------- public functions


def encode_payload(payload: PrescriptionPayload) -> str:
    """Return the QR text of a payload.

    Raises :class:`PayloadTampered` if ``payload.rx_id`` does not match its
    content, :class:`MalformedPayload` if the document cannot be read or
    canonicalised, :class:`PayloadTooLarge` if the result exceeds
    :data:`MAX_PAYLOAD_CHARS`.
    """
    try:
        computed = payload.computed_rx_id
    except DocumentError as exc:
        raise MalformedPayload(str(exc), "doc") from exc
    if computed != payload.rx_id:
        raise PayloadTampered(payload.rx_id, computed)
    obj = {
        "v": PAYLOAD_VERSION,
        "chainId": payload.chain_id,
        "registry": payload.registry,
        "rxId": str(payload.rx_id),
        "claimKey": payload.claim_key.hex,
        "doc": payload.document,
    }
    return frame(obj, "RX")


def frame(obj: dict[str, Any], tag: str) -> str:
    """``tag`` + version + "." + base64url(zlib(canonical JSON) + checksum): the framing every rxchain
    code shares (the prescription, and the hand-over codes of :mod:`rxchain.core.handover`)."""
    try:
        canonical = rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, RecursionError) as exc:
        raise MalformedPayload(f"cannot canonicalise: {exc}", "doc") from exc
    if len(canonical) > MAX_JSON_BYTES:
        raise PayloadTooLarge(len(canonical), MAX_JSON_BYTES, "payload JSON")
    body = zlib.compress(canonical, 9)
    text = f"{tag}{PAYLOAD_VERSION}." + _b64encode(body + keccak(body)[:CHECKSUM_BYTES])
    if len(text) > MAX_PAYLOAD_CHARS:
        raise PayloadTooLarge(len(text), MAX_PAYLOAD_CHARS)
    return text


def decode_payload(
    text: str,
    *,
    expected_chain_id: int | None = None,
    expected_registry: str | None = None,
) -> PrescriptionPayload:
    """Decode and verify QR text; return the payload.

    Surrounding whitespace is ignored. Verifies, in order: type and size,
    prefix and version, base64url, length, checksum, zlib, JSON, keys and
    their types, the expected chain and registry when given, and that the
    prescription id matches the document and claim key. Raises only
    :class:`PayloadError` subclasses for any input text. Raises ``ValueError``
    if ``expected_registry`` itself is not an address.
    """
    if expected_registry is not None and not is_valid_address(expected_registry):
        raise ValueError(f"expected_registry {expected_registry!r} is not an address")
    obj = _unwrap(text)
    payload = _payload_from_object(obj)

    if expected_chain_id is not None and payload.chain_id != expected_chain_id:
        raise WrongChain(expected_chain_id, payload.chain_id)
    if expected_registry is not None and payload.registry != to_checksum_address(expected_registry):
        raise WrongRegistry(to_checksum_address(expected_registry), payload.registry)

    try:
        computed = payload.computed_rx_id
    except DocumentError as exc:
        raise MalformedPayload(str(exc), "doc") from exc
    if computed != payload.rx_id:
        raise PayloadTampered(payload.rx_id, computed)
    return payload


# --------------------------------------------------------------------------- helpers

_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")
_HASH_RE = re.compile(r"0x[0-9a-fA-F]{64}")
_KEY_HEX_RE = re.compile(r"(0[xX])?[0-9a-fA-F]{64}")
_KEYS = ("v", "chainId", "registry", "rxId", "claimKey", "doc")


def _is_chain_id(value: Any) -> bool:
    """True for an integer chain id in 1..2**53-1 (a bool is not an integer here)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_CHAIN_ID


def _b64encode(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unwrap(text: Any) -> Any:
    return unframe(text, "RX")


def unframe(text: Any, tag: str, what: str = "a prescription code") -> Any:
    """Undo :func:`frame` for a code that must start with ``tag`` (prefix, base64url, checksum, zlib,
    JSON); return the parsed object. Raises only :class:`PayloadError` subclasses, whose messages name
    the kind of code (``what`` without its article)."""
    code = code_noun(what)
    if not isinstance(text, str):
        raise MalformedPayload(f"expected text, got {type(text).__name__}", code=code)
    if len(text) > MAX_PAYLOAD_CHARS:
        raise PayloadTooLarge(len(text), MAX_PAYLOAD_CHARS)
    text = text.strip()
    if not text:
        raise MalformedPayload("the payload is empty", code=code)
    prefix = re.match(re.escape(tag) + r"(\d{1,9})\.", text)
    if prefix is None:
        raise NotAPayload(f"{tag}{PAYLOAD_VERSION}.", what)
    if int(prefix.group(1)) != PAYLOAD_VERSION:
        raise UnsupportedPayloadVersion(int(prefix.group(1)), code=code)

    encoded = text[prefix.end() :]
    if not _B64URL_RE.fullmatch(encoded):
        raise MalformedPayload("the code contains characters outside base64url (A-Z a-z 0-9 - _)", code=code)
    dangling = len(encoded) % 4 == 1  # impossible for a complete encoding
    usable = encoded[:-1] if dangling else encoded
    try:
        raw = base64.urlsafe_b64decode(usable + "=" * (-len(usable) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedPayload(f"invalid base64url: {exc}", code=code) from exc

    if len(raw) <= CHECKSUM_BYTES + 2:  # a zlib stream alone is at least 8 bytes
        raise TruncatedPayload(code=code)
    body, checksum = raw[:-CHECKSUM_BYTES], raw[-CHECKSUM_BYTES:]
    expected = keccak(body)[:CHECKSUM_BYTES]
    if dangling or checksum != expected:
        if _looks_truncated(raw):
            raise TruncatedPayload(code=code)
        if dangling:
            raise MalformedPayload("invalid base64url length", code=code)
        raise PayloadChecksumMismatch(expected, checksum, code=code)
    if _b64encode(raw) != usable:
        # base64 drops the spare low bits of the last character, so without this check two
        # different texts would decode to the same bytes: one code, one spelling.
        raise NonCanonicalPayload(code=code)

    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(body, MAX_JSON_BYTES + 1)
    except zlib.error as exc:
        raise MalformedPayload(f"invalid zlib data: {exc}", code=code) from exc
    if len(data) > MAX_JSON_BYTES or inflater.unconsumed_tail:
        raise PayloadTooLarge(len(data), MAX_JSON_BYTES, "decompressed payload")
    if not inflater.eof:
        raise MalformedPayload("incomplete zlib stream", code=code)
    if inflater.unused_data:
        raise MalformedPayload("bytes after the end of the zlib stream", code=code)

    try:
        return loads_strict(data)
    except ValueError as exc:  # UTF-8, JSON syntax, duplicate keys, NaN, nesting, oversized integers
        raise MalformedPayload(f"invalid JSON: {exc}", code=code) from exc


def code_noun(what: str) -> str:
    """ "an authorization code" -> "authorization code": how error messages name a kind of code."""
    article, _, rest = what.partition(" ")
    return rest if article in ("a", "an", "the") and rest else what


def _looks_truncated(raw: bytes) -> bool:
    """True if ``raw`` is a zlib stream cut short, or a complete one followed by a partial checksum."""
    inflater = zlib.decompressobj()
    try:
        inflater.decompress(raw, MAX_JSON_BYTES + 1)
    except zlib.error:
        return False
    if inflater.unconsumed_tail:
        return False
    if not inflater.eof:
        return True
    return len(inflater.unused_data) < CHECKSUM_BYTES


def _payload_from_object(obj: Any) -> PrescriptionPayload:
    """Check the decoded JSON object's keys and types; return the (not yet verified) payload."""
    if not isinstance(obj, dict):
        raise MalformedPayload("the payload must be a JSON object")
    if "v" not in obj:
        raise MalformedPayload("missing", "v")
    version = obj["v"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise MalformedPayload("the version must be an integer", "v")
    if version != PAYLOAD_VERSION:
        raise UnsupportedPayloadVersion(version)
    for key in _KEYS:
        if key not in obj:
            raise MalformedPayload("missing", key)
    for key in obj:
        if key not in _KEYS:
            raise MalformedPayload("unexpected key", key)

    chain_id = obj["chainId"]
    if not _is_chain_id(chain_id):
        raise MalformedPayload(f"the chain id must be an integer in 1..{_MAX_CHAIN_ID}", "chainId")
    registry = obj["registry"]
    if not is_valid_address(registry):
        raise MalformedPayload("the registry must be a 0x address", "registry")
    rx_id = obj["rxId"]
    if not isinstance(rx_id, str) or not _HASH_RE.fullmatch(rx_id):
        raise MalformedPayload("the prescription id must be 0x followed by 64 hex digits", "rxId")
    key_hex = obj["claimKey"]
    if not isinstance(key_hex, str) or not _HASH_RE.fullmatch(key_hex):
        raise MalformedPayload("the claim key must be 0x followed by 64 hex digits", "claimKey")
    try:
        claim_key = ClaimKey.from_hex(key_hex)
    except ValueError as exc:
        raise MalformedPayload(str(exc), "claimKey") from exc
    document = obj["doc"]
    if not isinstance(document, dict):
        raise MalformedPayload("the document must be a JSON object", "doc")

    return PrescriptionPayload(
        chain_id=chain_id,
        registry=registry,
        rx_id=bytes.fromhex(rx_id[2:]),
        claim_key=claim_key,
        document=document,
    )
