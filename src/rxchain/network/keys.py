"""Node keys and identities: secp256k1 node keys, their public keys, addresses and enode URLs."""

from __future__ import annotations

import ipaddress
import secrets
from coincurve import PrivateKey
from eth_utils import keccak, to_checksum_address

from rxchain.core.claims import SECP256K1_ORDER
from rxchain.network.errors import InvalidKitParameterError
from rxchain.network.genesis import _ADDRESS_LENGTH


def node_public_key(private_key: bytes) -> bytes:
    """The 64-byte node public key (uncompressed secp256k1 point without its 04 prefix)."""
    return PrivateKey(private_key).public_key.format(compressed=False)[1:]


def node_address(public_key: bytes) -> str:
    """The checksummed node address: last 20 bytes of keccak256(public key)."""
    if len(public_key) != 64:
        raise InvalidKitParameterError(f"a node public key is 64 bytes, got {len(public_key)}")
    return to_checksum_address(keccak(public_key)[-_ADDRESS_LENGTH:])


def enode_url(public_key: bytes, host: str, port: int) -> str:
    """The node's enode URL: ``enode://<128-hex public key>@<host>:<port>``."""
    if len(public_key) != 64:
        raise InvalidKitParameterError(f"a node public key is 64 bytes, got {len(public_key)}")
    return f"enode://{public_key.hex()}@{_url_host(host)}:{port}"


def _url_host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def _generate_private_key() -> bytes:
    while True:
        candidate = secrets.token_bytes(32)
        if 0 < int.from_bytes(candidate, "big") < SECP256K1_ORDER:
            return candidate
