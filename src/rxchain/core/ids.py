"""Prescription identifiers, computed exactly as the registry contract does.

A prescription is identified on chain by two keccak256 hashes over standard
Solidity ABI encodings (``abi.encode``, i.e. ``eth_abi.encode``)::

    terms = keccak256(abi.encode(address doctor, bytes32 docHash, address designatedPharmacy))
    rxId  = keccak256(abi.encode(address claimKey, bytes32 terms))

``designatedPharmacy`` is the zero address when the prescription may be filled
at any pharmacy, and ``claimKey`` is the *address* of the per-prescription
claim key (never the private key).

Addresses are accepted as ``0x`` hex strings (checksummed, all lower case or
all upper case; a mixed-case string must carry a valid EIP-55 checksum) or as
20 raw bytes. Hashes are accepted as 32 raw bytes or a ``0x`` hex string of 64
digits. Every function returns 32 raw bytes.
"""

from __future__ import annotations

import re

from eth_abi import encode as abi_encode
from eth_utils import is_checksum_address, keccak, to_canonical_address

from rxchain.errors import InvalidValue

__all__ = [
    "ZERO_ADDRESS",
    "is_valid_address",
    "prescription_id",
    "prescription_id_for",
    "terms_hash",
]

ZERO_ADDRESS: str = "0x0000000000000000000000000000000000000000"
"""The zero address: the ``designatedPharmacy`` of a prescription any pharmacy may fill."""


def is_valid_address(value: object) -> bool:
    """True for ``0x`` + 40 hex digits, all lower case, all upper case, or with a valid EIP-55 checksum."""
    if not isinstance(value, str) or not _ADDRESS_HEX.fullmatch(value):
        return False
    digits = value[2:]
    return digits == digits.lower() or digits == digits.upper() or is_checksum_address(value)


def terms_hash(doctor: str | bytes, doc_hash: str | bytes, pharmacy: str | bytes | None = None) -> bytes:
    """Return ``keccak256(abi.encode(doctor, docHash, designatedPharmacy))``.

    ``pharmacy`` may be ``None`` (or the zero address) for "any pharmacy".
    Raises ``ValueError`` for a malformed address or hash.
    """
    return keccak(
        abi_encode(
            ["address", "bytes32", "address"],
            [
                _address_bytes(doctor, "doctor"),
                _hash_bytes(doc_hash, "doc_hash"),
                _address_bytes(ZERO_ADDRESS if pharmacy is None else pharmacy, "pharmacy"),
            ],
        )
    )


class RxId(bytes):
    """A prescription id: the 32 bytes the registry keys it by, shown everywhere (CLI, JSON, logs) in
    one form, ``0x`` and 64 lower-case hex digits (``str(rx_id)``).

    It is ``bytes``, so web3.py, eth-abi and the contracts take it as a ``bytes32`` unchanged.
    ``RxId(text)`` reads the hex form (``0x`` optional, any case); a value that is not 32 bytes is an
    :class:`~rxchain.errors.InvalidValue` naming what is wrong.
    """

    def __new__(cls, value: bytes | bytearray | str) -> RxId:
        if isinstance(value, RxId):
            return value
        if isinstance(value, str):
            text = value.strip()
            digits = text[2:] if text[:2].lower() == "0x" else text
            try:
                raw = bytes.fromhex(digits) if len(digits) == 64 else b""
            except ValueError:
                raw = b""
            if len(raw) != 32:
                raise InvalidValue(f"{value!r} is not a prescription id (0x and 64 hex digits)")
            return super().__new__(cls, raw)
        raw = bytes(value)
        if len(raw) != 32:
            raise InvalidValue(f"a prescription id is 32 bytes, got {len(raw)}")
        return super().__new__(cls, raw)

    def __str__(self) -> str:
        return "0x" + self.hex()

    def __repr__(self) -> str:
        return f"RxId('{self}')"


def prescription_id(claim_key_address: str | bytes, terms: str | bytes) -> RxId:
    """Return ``keccak256(abi.encode(claimKey, terms))``, the on-chain prescription id.

    Raises ``ValueError`` for a malformed address or hash.
    """
    return RxId(
        keccak(
            abi_encode(
                ["address", "bytes32"],
                [_address_bytes(claim_key_address, "claim_key_address"), _hash_bytes(terms, "terms")],
            )
        )
    )


def prescription_id_for(
    doctor: str | bytes,
    doc_hash: str | bytes,
    claim_key_address: str | bytes,
    pharmacy: str | bytes | None = None,
) -> RxId:
    """Return the prescription id for a doctor, document hash, claim key address and optional pharmacy.

    Equivalent to ``prescription_id(claim_key_address, terms_hash(doctor, doc_hash, pharmacy))``.
    """
    return prescription_id(claim_key_address, terms_hash(doctor, doc_hash, pharmacy))


# --------------------------------------------------------------------------- helpers

_HASH_HEX = re.compile(r"0[xX][0-9a-fA-F]{64}")
_ADDRESS_HEX = re.compile(r"0x[0-9a-fA-F]{40}")


def _address_bytes(value: str | bytes, name: str) -> bytes:
    """Return the 20-byte form of an address given as hex text or raw bytes."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) != 20:
            raise InvalidValue(f"{name}: an address is 20 bytes, got {len(value)}")
        return bytes(value)
    if not is_valid_address(value):
        raise InvalidValue(
            f"{name}: {value!r} is not a valid address (0x + 40 hex digits, valid checksum if mixed case)"
        )
    return to_canonical_address(value)


def _hash_bytes(value: str | bytes, name: str) -> bytes:
    """Return the 32-byte form of a hash given as hex text or raw bytes."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) != 32:
            raise InvalidValue(f"{name}: a hash is 32 bytes, got {len(value)}")
        return bytes(value)
    if isinstance(value, str) and _HASH_HEX.fullmatch(value):
        return bytes.fromhex(value[2:])
    raise InvalidValue(f"{name}: {value!r} is not a 32-byte hash (0x + 64 hex digits)")
