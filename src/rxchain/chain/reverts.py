"""Why the registry said no: revert data decoded into the contract's custom errors, and a mined
transaction's failure explained from the node's trace or by replaying it.

Every revert the client meets comes here: :class:`RevertDecoder` turns the 4-byte selector and
ABI-encoded arguments into the named exception of :mod:`rxchain.errors`; :func:`explain_mined`
finds out why a transaction that was mined failed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

from rxchain import errors

#: The exceptions web3.py raises for a call or estimate the contract reverted.
REVERTS = (ContractCustomError, ContractLogicError, ContractPanicError)


class RevertDecoder:
    """Decodes revert data by the custom errors of an ABI."""

    def __init__(self, abi: list[dict]):
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for item in abi:
            if item.get("type") != "error":
                continue
            types = [abi_type(i) for i in item["inputs"]]
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
            self._errors[selector] = (item["name"], [i["name"] for i in item["inputs"]], types)

    def decode(self, data: str | bytes | None) -> errors.ContractRevert:
        """The named Python exception for a revert's return data."""
        raw = (
            bytes.fromhex(data[2:] if data.startswith("0x") else data) if isinstance(data, str) else bytes(data or b"")
        )
        if len(raw) < 4 or raw[:4] not in self._errors:
            return errors.UnknownContractError("unknown", {"data": raw.hex()})
        name, names, types = self._errors[raw[:4]]
        try:
            values = abi_decode(types, raw[4:])
        except Exception:  # malformed data from a node: report it rather than crash
            return errors.UnknownContractError(name, {"data": raw.hex()})
        values = [to_checksum_address(v) if t == "address" else v for t, v in zip(types, values, strict=True)]
        cls = errors.BY_NAME.get(name, errors.ContractRevert)
        return cls(name, dict(zip(names, values, strict=True)))

    def from_exception(self, exc: Exception) -> errors.ContractRevert:
        """The named exception for a web3.py revert exception (one of :data:`REVERTS`)."""
        return self.decode(revert_data(exc))


def explain_mined(
    w3: Web3,
    decoder: RevertDecoder,
    call_node: Callable[[Callable[[], Any]], Any],
    tx_hash: str,
    block_number: int,
    description: str,
    *,
    use_trace: bool = True,
) -> errors.RxError:
    """Why mined transaction ``tx_hash`` failed: the node's own trace of it first (exact, at its place
    in its block; Besu serves it when the DEBUG API is enabled), else a replay on the state its block
    ended with."""
    if use_trace:
        traced = _traced_revert(w3, decoder, call_node, tx_hash)
        if traced is not None:
            return traced
    tx = call_node(lambda: w3.eth.get_transaction(tx_hash))
    try:
        call_node(
            lambda: w3.eth.call({"from": tx["from"], "to": tx["to"], "data": tx["input"], "gasPrice": 0}, block_number)
        )
    except REVERTS as exc:
        return decoder.from_exception(exc)
    return errors.TransactionFailed(
        f"{description} ({tx_hash}) reverted, and a replay on its block's final state succeeds: it ran out of gas, or "
        "lost to a transaction earlier in the same block whose effect a later one undid"
    )


def abi_type(item: dict) -> str:
    """The canonical type of an ABI input (tuples spelled out, as selectors need them)."""
    if item["type"].startswith("tuple"):
        return "(" + ",".join(abi_type(c) for c in item["components"]) + ")" + item["type"][5:]
    return item["type"]


def revert_data(exc: Exception) -> str | None:
    """The revert data a web3.py exception carries, if any."""
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    return data if isinstance(data, (str, bytes)) else None


def _traced_revert(w3: Web3, decoder: RevertDecoder, call_node, tx_hash: str) -> errors.RxError | None:
    """The revert the node's call tracer recorded, or None when the node offers no trace."""
    try:
        reply = call_node(
            lambda: w3.provider.make_request("debug_traceTransaction", [tx_hash, {"tracer": "callTracer"}])
        )
    except errors.NodeUnavailable:
        raise
    except Exception:  # a node without the debug API: fall back to the replay
        return None
    result = reply.get("result") if isinstance(reply, dict) else None
    if not isinstance(result, dict):
        return None
    output = result.get("output")
    if output and output != "0x":
        return decoder.decode(output)
    if "gas" in str(result.get("error", "")).lower():
        return errors.TransactionFailed(f"{tx_hash} ran out of gas ({result.get('error')})")
    return None
