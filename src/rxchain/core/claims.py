"""Claim-key signatures: the patient's consent to a redemption and the patient's receipt.

A fresh claim key is made for each prescription; its private key goes to the patient's app (or
signs the paper slips and is forgotten, or, in the weaker single-QR mode, travels in the QR code).
It signs two EIP-712 messages, in the registry's domain (name "rxchain PrescriptionRegistry",
version "1", the chain id and the registry's address), so a signature for another chain or registry
never verifies:

    Redeem(bytes32 rxId,address pharmacy,uint256 fillsLeft,uint256 deadline)
    Receipt(bytes32 rxId,address deliverer,uint256 fillsLeft,uint256 deadline)

``fillsLeft`` binds a signature to one fill: for a redemption it is the fills left before it, for a
receipt the fills left after the redemption being received. ``pharmacy`` binds a consent to one
pharmacy and ``deliverer`` a receipt to one hand-over (the courier at the door, or the pharmacy at
the counter); a paper slip, signed before anyone was chosen, names the zero address (``ANYONE``).

The digests are computed directly (fast enough for bulk work); the full typed-data documents are
here too for wallets that sign them, and a test checks both give the same signatures.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import coincurve
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from rxchain.core.ids import ZERO_ADDRESS
from rxchain.errors import InvalidValue

#: The order n of secp256k1's group: a private key is an integer in [1, n - 1].
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

DOMAIN_NAME = "rxchain PrescriptionRegistry"
DOMAIN_VERSION = "1"

#: The pharmacy or deliverer a paper slip names: whoever presents the slip.
ANYONE = ZERO_ADDRESS

_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_REDEEM_TYPE = [
    {"name": "rxId", "type": "bytes32"},
    {"name": "pharmacy", "type": "address"},
    {"name": "fillsLeft", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
_RECEIPT_TYPE = [
    {"name": "rxId", "type": "bytes32"},
    {"name": "deliverer", "type": "address"},
    {"name": "fillsLeft", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]


@dataclass(frozen=True)
class RegistryDomain:
    """The EIP-712 domain of one deployed registry."""

    chain_id: int
    registry: str

    @cached_property
    def separator(self) -> bytes:
        """The EIP-712 domain separator (what the registry's EIP712 base computes)."""
        return keccak(
            abi_encode(
                ["bytes32", "bytes32", "bytes32", "uint256", "address"],
                [
                    _DOMAIN_TYPEHASH,
                    keccak(text=DOMAIN_NAME),
                    keccak(text=DOMAIN_VERSION),
                    self.chain_id,
                    to_checksum_address(self.registry),
                ],
            )
        )

    def as_dict(self) -> dict:
        """The domain as eth-account's typed-data encoder wants it."""
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": to_checksum_address(self.registry),
        }


_DOMAIN_TYPEHASH = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
_REDEEM_TYPEHASH = keccak(text="Redeem(bytes32 rxId,address pharmacy,uint256 fillsLeft,uint256 deadline)")
_RECEIPT_TYPEHASH = keccak(text="Receipt(bytes32 rxId,address deliverer,uint256 fillsLeft,uint256 deadline)")


def redeem_digest(domain: RegistryDomain, rx_id: bytes, pharmacy: str, fills_left: int, deadline: int) -> bytes:
    """The EIP-712 digest of a Redeem message (the registry's ``redeemDigest``)."""
    struct = abi_encode(
        ["bytes32", "bytes32", "address", "uint256", "uint256"],
        [_REDEEM_TYPEHASH, _bytes32(rx_id), to_checksum_address(pharmacy), int(fills_left), int(deadline)],
    )
    return keccak(b"\x19\x01" + domain.separator + keccak(struct))


def receipt_digest(domain: RegistryDomain, rx_id: bytes, deliverer: str, fills_left: int, deadline: int) -> bytes:
    """The EIP-712 digest of a Receipt message (the registry's ``receiptDigest``)."""
    struct = abi_encode(
        ["bytes32", "bytes32", "address", "uint256", "uint256"],
        [_RECEIPT_TYPEHASH, _bytes32(rx_id), to_checksum_address(deliverer), int(fills_left), int(deadline)],
    )
    return keccak(b"\x19\x01" + domain.separator + keccak(struct))


def sign_digest(private_key: bytes | str, digest: bytes) -> bytes:
    """A 65-byte (r, s, v) secp256k1 signature of a 32-byte digest, v in {27, 28}, low s."""
    key = (
        bytes.fromhex(private_key[2:] if private_key.startswith("0x") else private_key)
        if isinstance(private_key, str)
        else bytes(private_key)
    )
    signature = coincurve.PrivateKey(key).sign_recoverable(digest, hasher=None)
    return signature[:64] + bytes([signature[64] + 27])


def redeem_typed_data(domain: RegistryDomain, rx_id: bytes, pharmacy: str, fills_left: int, deadline: int) -> dict:
    """The full EIP-712 typed data a claim key signs to let ``pharmacy`` redeem one fill."""
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, "Redeem": _REDEEM_TYPE},
        "primaryType": "Redeem",
        "domain": domain.as_dict(),
        "message": {
            "rxId": _bytes32(rx_id),
            "pharmacy": to_checksum_address(pharmacy),
            "fillsLeft": int(fills_left),
            "deadline": int(deadline),
        },
    }


def receipt_typed_data(domain: RegistryDomain, rx_id: bytes, deliverer: str, fills_left: int, deadline: int) -> dict:
    """The full EIP-712 typed data a claim key signs to confirm the patient received the drugs from ``deliverer``."""
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, "Receipt": _RECEIPT_TYPE},
        "primaryType": "Receipt",
        "domain": domain.as_dict(),
        "message": {
            "rxId": _bytes32(rx_id),
            "deliverer": to_checksum_address(deliverer),
            "fillsLeft": int(fills_left),
            "deadline": int(deadline),
        },
    }


def sign_redeem(
    claim_private_key: bytes | str, domain: RegistryDomain, rx_id: bytes, pharmacy: str, fills_left: int, deadline: int
) -> bytes:
    """The claim key's 65-byte signature authorising ``pharmacy`` to redeem fill ``fills_left``."""
    return sign_digest(claim_private_key, redeem_digest(domain, rx_id, pharmacy, fills_left, deadline))


def sign_receipt(
    claim_private_key: bytes | str, domain: RegistryDomain, rx_id: bytes, deliverer: str, fills_left: int, deadline: int
) -> bytes:
    """The claim key's 65-byte signature confirming receipt from ``deliverer`` (``fills_left`` after the redemption)."""
    return sign_digest(claim_private_key, receipt_digest(domain, rx_id, deliverer, fills_left, deadline))


def _bytes32(value: bytes | str) -> bytes:
    raw = bytes.fromhex(value[2:] if value.startswith("0x") else value) if isinstance(value, str) else bytes(value)
    if len(raw) != 32:
        raise InvalidValue(f"expected 32 bytes, got {len(raw)}")
    return raw
