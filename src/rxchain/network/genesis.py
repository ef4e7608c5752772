"""The QBFT genesis of the consortium network: milestones for the project's EVM version, free gas,
the validators in ``extraData`` (RLP, as Besu's QBFT reads it), prefunded accounts."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any
import rlp
from eth_utils import is_address, to_checksum_address

from rxchain.core.ids import ZERO_ADDRESS
from rxchain.network.errors import InvalidExtraDataError, InvalidKitParameterError, UnsupportedEvmVersionError
from rxchain.paths import DEFAULT_EVM_VERSION


#: Default chain id. It matches the ``besu`` network in the project's ape-config.yaml; both must
#: always agree, or every transaction signed by the client is refused by the nodes.
DEFAULT_CHAIN_ID = 272461


#: EVM versions the kit can write milestones for, oldest first.
SUPPORTED_EVM_VERSIONS: tuple[str, ...] = ("london", "shanghai", "cancun", "prague")


#: The mixHash every BFT (IBFT 2.0 / QBFT) block carries: ASCII "ctical byzantine fault tolerance".
QBFT_MIX_HASH = "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365"


#: Block gas limit for a free-gas network (the value Besu's free-gas guide suggests).
FREE_GAS_BLOCK_GAS_LIMIT = "0x1fffffffffffff"


#: Largest contract size Besu accepts (its free-gas guide sets the limit to this maximum).
MAX_CONTRACT_SIZE = 2147483647


_VANITY_LENGTH = 32


_VANITY_LENGTH = 32
_ADDRESS_LENGTH = 20


# Block-number milestones up to London, all at genesis (Besu also derives earlier forks from a
# later one, but listing them keeps the genesis readable by other tools).
_BLOCK_MILESTONES = (
    "homesteadBlock",
    "eip150Block",
    "eip155Block",
    "eip158Block",
    "byzantiumBlock",
    "constantinopleBlock",
    "petersburgBlock",
    "istanbulBlock",
    "berlinBlock",
    "londonBlock",
)


# Timestamp milestones after London, in order; an EVM version enables itself and all before it.
_TIME_MILESTONES = (("shanghai", "shanghaiTime"), ("cancun", "cancunTime"), ("prague", "pragueTime"))


def build_genesis(
    validator_addresses: Sequence[str],
    *,
    chain_id: int = DEFAULT_CHAIN_ID,
    evm_version: str = DEFAULT_EVM_VERSION,
    block_period_seconds: int = 2,
    epoch_length: int = 30000,
    request_timeout_seconds: int = 4,
    alloc: Mapping[str, Mapping[str, str]] | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """The QBFT genesis document for ``validator_addresses`` (validators chosen by block header).

    Free gas: ``zeroBaseFee`` true, ``baseFeePerGas`` 0 from block 0, the maximum ``contractSizeLimit``
    and a very high block ``gasLimit``. Milestones come from :func:`milestones_for`. ``timestamp`` defaults to now.
    """
    if not validator_addresses:
        raise InvalidKitParameterError("a QBFT genesis needs at least one validator address")
    config: dict[str, Any] = {"chainId": chain_id}
    config.update(milestones_for(evm_version))
    config.update(
        {
            "zeroBaseFee": True,
            "contractSizeLimit": MAX_CONTRACT_SIZE,
            "qbft": {
                "blockperiodseconds": block_period_seconds,
                "epochlength": epoch_length,
                "requesttimeoutseconds": request_timeout_seconds,
            },
        }
    )
    return {
        "config": config,
        "nonce": "0x0",
        "timestamp": hex(int(time.time()) if timestamp is None else timestamp),
        "extraData": encode_extra_data(validator_addresses),
        "gasLimit": FREE_GAS_BLOCK_GAS_LIMIT,
        # zeroBaseFee keeps every later block at 0; without this the genesis block itself would carry
        # London's initial 1 gwei and explorers would show it for block 0
        "baseFeePerGas": "0x0",
        "difficulty": "0x1",
        "mixHash": QBFT_MIX_HASH,
        "coinbase": ZERO_ADDRESS,
        "alloc": {k: dict(v) for k, v in (alloc or {}).items()},
        "number": "0x0",
        "gasUsed": "0x0",
        "parentHash": "0x" + "00" * 32,
    }


def milestones_for(evm_version: str) -> dict[str, int]:
    """Genesis ``config`` milestones (all active at genesis) that provide ``evm_version``.

    london: every block milestone up to ``londonBlock``; shanghai adds ``shanghaiTime``; cancun
    adds ``cancunTime``; prague adds ``pragueTime``. Raises :class:`UnsupportedEvmVersionError`
    for any other version.
    """
    version = _normalise_evm_version(evm_version)
    milestones = {name: 0 for name in _BLOCK_MILESTONES}
    for fork, key in _TIME_MILESTONES:
        if SUPPORTED_EVM_VERSIONS.index(fork) <= SUPPORTED_EVM_VERSIONS.index(version):
            milestones[key] = 0
    return milestones


def encode_extra_data(validator_addresses: Sequence[str]) -> str:
    """QBFT genesis ``extraData`` for ``validator_addresses`` (in that order), as 0x-hex.

    The encoding is Besu's ``QbftExtraDataCodec``:
    ``RLP([vanity: 32 zero bytes, [validator: 20 bytes, ...], vote: [] (empty list: no vote),
    round: 0 (RLP integer scalar, encoded 0x80), seals: [] (empty list)])``.
    """
    addresses = [_address_bytes(a) for a in validator_addresses]
    if not addresses:
        raise InvalidKitParameterError("QBFT extraData needs at least one validator address")
    if len({a for a in addresses}) != len(addresses):
        raise InvalidKitParameterError("QBFT extraData: the validator addresses contain a duplicate")
    encoded = rlp.encode([b"\x00" * _VANITY_LENGTH, addresses, [], b"", []])
    return "0x" + encoded.hex()


def decode_extra_data(extra_data: str) -> list[str]:
    """The validator addresses (checksummed, in order) in a QBFT ``extraData`` hex string.

    Accepts the genesis form written by :func:`encode_extra_data` and the extraData of sealed
    blocks (a vote and seals present). Raises :class:`InvalidExtraDataError` when the value is
    not a QBFT extraData.
    """
    text = extra_data.strip()
    if text[:2].lower() == "0x":
        text = text[2:]
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise InvalidExtraDataError(f"extraData is not hex: {exc}") from exc
    if not raw:
        raise InvalidExtraDataError("extraData is empty")
    try:
        items = rlp.decode(raw)
    except Exception as exc:  # rlp raises several DecodingError subclasses
        raise InvalidExtraDataError(f"extraData is not valid RLP: {exc}") from exc
    if not isinstance(items, list) or len(items) != 5:
        raise InvalidExtraDataError(
            "QBFT extraData must be an RLP list of 5 items [vanity, validators, vote, round, seals]; "
            f"got {len(items) if isinstance(items, list) else 'a byte string'}"
        )
    vanity, validators, vote, round_number, seals = items
    if not isinstance(vanity, bytes) or len(vanity) != _VANITY_LENGTH:
        raise InvalidExtraDataError("QBFT extraData: the vanity must be 32 bytes")
    if not isinstance(validators, list) or not all(
        isinstance(v, bytes) and len(v) == _ADDRESS_LENGTH for v in validators
    ):
        raise InvalidExtraDataError("QBFT extraData: the validators must be a list of 20-byte addresses")
    if not isinstance(vote, list) or len(vote) not in (0, 2):
        raise InvalidExtraDataError("QBFT extraData: the vote must be an empty list or [recipient, type]")
    if not isinstance(round_number, bytes) or len(round_number) > 4:
        raise InvalidExtraDataError("QBFT extraData: the round must be an integer scalar of at most 4 bytes")
    if not isinstance(seals, list):
        raise InvalidExtraDataError("QBFT extraData: the seals must be a list")
    return [to_checksum_address(v) for v in validators]


def _normalise_evm_version(evm_version: str) -> str:
    version = str(evm_version).strip().lower()
    if version not in SUPPORTED_EVM_VERSIONS:
        raise UnsupportedEvmVersionError(
            f"EVM version {evm_version!r} is not supported by the network kit; supported: "
            f"{', '.join(SUPPORTED_EVM_VERSIONS)}. The project's version is solidity.evm_version in "
            "ape-config.yaml: the chain must enable the same hardfork the contracts are compiled for."
        )
    return version


def _build_alloc(prefunded: Mapping[str, int]) -> dict[str, dict[str, str]]:
    alloc: dict[str, dict[str, str]] = {}
    for address, balance in prefunded.items():
        if not is_address(address):
            raise InvalidKitParameterError(f"prefunded account {address!r} is not an address")
        if isinstance(balance, bool) or not isinstance(balance, int) or balance < 0:
            raise InvalidKitParameterError(
                f"prefunded balance of {address} must be a non-negative integer (wei), got {balance!r}"
            )
        key = address.lower()[2:] if address.lower().startswith("0x") else address.lower()
        if key in alloc:
            raise InvalidKitParameterError(f"prefunded account {address} is listed twice")
        alloc[key] = {"balance": hex(balance)}
    return alloc


def _address_bytes(address: str) -> bytes:
    if not isinstance(address, str) or not is_address(address):
        raise InvalidKitParameterError(f"{address!r} is not an address")
    return bytes.fromhex(address[2:] if address.lower().startswith("0x") else address)
