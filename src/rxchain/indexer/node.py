"""A small JSON-RPC client for the indexer: batched calls, block headers, logs, and event decoding.

Events are decoded straight from the log JSON with the registry's ABI (from the build manifest):
addresses checksummed, bytes32 as 0x-hex, integers as ints — the same values
:func:`rxchain.audit.trail` shows, so the console's trail equals ``rx trail``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any


from eth_abi import decode as abi_decode
from eth_utils import event_abi_to_log_topic, to_checksum_address

from rxchain.chain.reverts import abi_type as _abi_type
from rxchain.chain.rpc import RpcSession
from rxchain.errors import Unavailable


class NodeError(Unavailable):
    """The node answered a JSON-RPC call with an error."""

    def __init__(self, method: str, error: dict):
        self.method = method
        self.error = error
        super().__init__(f"{method}: {error.get('message', error)}")


@dataclass(frozen=True)
class Header:
    number: int
    hash: str
    parent_hash: str
    time: int


class Node(RpcSession):
    """JSON-RPC with batches (:class:`rxchain.chain.rpc.RpcSession`), the indexer's reads on top."""

    def batch(self, calls: list[tuple[str, list]]) -> list[Any]:
        """Results in order; raises :class:`NodeError` for the first call that failed."""
        replies = self.batch_raw(calls)
        out = []
        for (method, _), reply in zip(calls, replies):
            if "error" in reply:
                raise NodeError(method, reply["error"])
            out.append(reply.get("result"))
        return out

    def call(self, method: str, params: list | None = None) -> Any:
        return self.batch([(method, params or [])])[0]

    def chain_id(self) -> int:
        return int(self.call("eth_chainId"), 16)

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def headers(self, numbers: list[int]) -> dict[int, Header | None]:
        """Block headers by number (None for a block the node does not have), 500 per batch."""
        out: dict[int, Header | None] = {}
        numbers = sorted(set(numbers))
        for start in range(0, len(numbers), 500):
            chunk = numbers[start : start + 500]
            for n, block in zip(chunk, self.batch([("eth_getBlockByNumber", [hex(n), False]) for n in chunk])):
                out[n] = _header(block) if block else None
        return out

    def header(self, number: int | str) -> Header | None:
        block = self.call("eth_getBlockByNumber", [hex(number) if isinstance(number, int) else number, False])
        return _header(block) if block else None

    def get_logs(self, address: str | list[str], from_block: int, to_block: int) -> list[dict]:
        """The logs of ``address`` (one contract, or a list: every log of any of them, in block order)."""
        return self.call("eth_getLogs", [{"address": address, "fromBlock": hex(from_block), "toBlock": hex(to_block)}])

    def code(self, address: str, block: str = "latest") -> str:
        return self.call("eth_getCode", [address, block])


def _header(block: dict) -> Header:
    return Header(int(block["number"], 16), block["hash"], block["parentHash"], int(block["timestamp"], 16))


# ------------------------------------------------------------------------------------- decoding


@lru_cache(maxsize=65536)
def checksum(address_hex40: str) -> str:
    return to_checksum_address("0x" + address_hex40)


_STATIC = ("address", "bool", "bytes32")


def _static(kind: str) -> bool:
    return kind in _STATIC or kind.startswith("uint") or (kind.startswith("int") and "[" not in kind)


def _word(kind: str, word: str) -> Any:
    """One 32-byte ABI word (64 hex digits, no 0x) as the Python value audit.trail shows."""
    if kind == "address":
        return checksum(word[24:].lower())
    if kind == "bytes32":
        return "0x" + word.lower()
    if kind == "bool":
        return int(word, 16) != 0
    value = int(word, 16)
    if kind.startswith("int") and value >= 1 << 255:
        value -= 1 << 256
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def subject_of(indexed: list[tuple[str, str]], args: dict) -> str | None:
    """What an event is about: its prescription id, batch root or account (lower-case hex)."""
    names = [arg for arg, _ in indexed]
    for preferred in ("id", "root", "account"):
        if preferred in names:
            return str(args[preferred]).lower()
    return str(args[names[0]]).lower() if names else None


class EventDecoder:
    """Decodes the registry's logs (hex JSON as the node returns them) into event dicts."""

    def __init__(self, abi: list[dict]):
        self._events: dict[str, tuple[str, list[tuple[str, str]], list[tuple[str, str]], bool]] = {}
        for item in abi:
            if item.get("type") != "event" or item.get("anonymous"):
                continue
            topic = "0x" + event_abi_to_log_topic(item).hex()
            indexed = [(i["name"], _abi_type(i)) for i in item["inputs"] if i.get("indexed")]
            data = [(i["name"], _abi_type(i)) for i in item["inputs"] if not i.get("indexed")]
            order = [i["name"] for i in item["inputs"]]
            fast = all(_static(kind) for _, kind in data)
            self._events[topic] = (item["name"], indexed, data, fast)
            self._order = getattr(self, "_order", {})
            self._order[item["name"]] = order

    def names(self) -> list[str]:
        return [name for name, *_ in self._events.values()]

    def topic(self, name: str) -> str:
        for topic, (event, *_rest) in self._events.items():
            if event == name:
                return topic
        raise KeyError(name)

    def decode(self, log: dict) -> dict:
        """{block_number, log_index, block_hash, block_time?, tx_hash, tx_index, name, subject, args}."""
        topics = log["topics"]
        spec = self._events.get(topics[0].lower()) if topics else None
        event = {
            "block_number": int(log["blockNumber"], 16),
            "log_index": int(log["logIndex"], 16),
            "block_hash": log["blockHash"].lower(),
            "block_time": int(log["blockTimestamp"], 16) if log.get("blockTimestamp") else None,
            "tx_hash": log["transactionHash"].lower(),
            "tx_index": int(log["transactionIndex"], 16),
        }
        if spec is None:
            event.update(
                name="unknown",
                subject=topics[0].lower() if topics else None,
                args={"topics": [t.lower() for t in topics], "data": log["data"].lower()},
            )
            return event
        name, indexed, data, fast = spec
        args: dict[str, Any] = {}
        for (arg, kind), topic in zip(indexed, topics[1:]):
            args[arg] = _word(kind, topic[2:]) if _static(kind) else topic.lower()  # dynamic indexed: the hash
        raw = log["data"][2:]
        if data:
            if fast:
                for i, (arg, kind) in enumerate(data):
                    args[arg] = _word(kind, raw[64 * i : 64 * i + 64])
            else:
                values = abi_decode([kind for _, kind in data], bytes.fromhex(raw))
                for (arg, _), value in zip(data, values):
                    args[arg] = _plain(value)
        ordered = {arg: args[arg] for arg in self._order[name]}
        event.update(name=name, subject=subject_of(indexed, ordered), args=ordered)
        return event
