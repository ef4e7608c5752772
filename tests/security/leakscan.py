"""A scanner for patient data on a chain: everything a consortium member's node holds — every
transaction's calldata, every log's topics and data, every storage word of every contract — searched
for each datum in plain text and as the unsalted hashes a dictionary attack would compute.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from eth_abi import encode as abi_encode
from eth_utils import keccak

from .chainkit import Rpc


@dataclass(frozen=True)
class Needle:
    """One way a datum could appear on chain."""

    datum: str  # what it is, for the report ("national id of patient 2")
    encoding: str  # "utf-8", "keccak256(utf-8)", ...
    data: bytes


@dataclass(frozen=True)
class Finding:
    needle: Needle
    where: str  # "calldata of 0x…", "log 3 of 0x…", "storage 0x… slot 0x…"

    def __str__(self) -> str:
        return f"{self.needle.datum} as {self.needle.encoding} in {self.where}"


def needles(label: str, value: str) -> list[Needle]:
    """The encodings of a text value a scan looks for: plain (UTF-8, UTF-16 both ways, hex text),
    a number's bytes for digit strings, and the unsalted hashes of a dictionary attack."""
    utf8 = value.encode("utf-8")
    found = [
        Needle(label, "utf-8", utf8),
        Needle(label, "utf-16-le", value.encode("utf-16-le")),
        Needle(label, "utf-16-be", value.encode("utf-16-be")),
        Needle(label, "hex text of utf-8", utf8.hex().encode()),
        Needle(label, "keccak256(utf-8)", keccak(utf8)),
        Needle(label, "sha256(utf-8)", hashlib.sha256(utf8).digest()),
        Needle(label, "keccak256(abi.encode(string))", keccak(abi_encode(["string"], [value]))),
    ]
    digits = value.replace(" ", "").replace("-", "").removeprefix("+")
    if digits.isdigit():
        number = int(digits)
        found.append(Needle(label, "big-endian number", number.to_bytes((number.bit_length() + 7) // 8, "big")))
        found.append(Needle(label, "keccak256(uint256)", keccak(number.to_bytes(32, "big"))))
    return [n for n in found if len(n.data) >= 4]  # shorter patterns would match by chance


def raw_needles(label: str, data: bytes) -> list[Needle]:
    """A byte string and its unsalted hashes."""
    return [
        Needle(label, "bytes", data),
        Needle(label, "keccak256", keccak(data)),
        Needle(label, "sha256", hashlib.sha256(data).digest()),
    ]


@dataclass
class ChainContents:
    """Everything a node serves: (where, bytes) for calldata, log topics and data, and storage words."""

    calldata: list[tuple[str, bytes]] = field(default_factory=list)
    logs: list[tuple[str, bytes]] = field(default_factory=list)
    storage: list[tuple[str, bytes]] = field(default_factory=list)
    blocks: int = 0

    def items(self):
        yield from self.calldata
        yield from self.logs
        yield from self.storage


def read_chain(rpc: Rpc, from_block: int = 0) -> ChainContents:
    """Every block's transactions (calldata) and receipts (logs), and the whole state (storage)."""
    out = ChainContents()
    latest = rpc.block_number()
    numbers = list(range(from_block, latest + 1))
    for start in range(0, len(numbers), 100):
        chunk = numbers[start : start + 100]
        blocks = rpc.results([("eth_getBlockByNumber", [hex(n), True]) for n in chunk])
        receipts = rpc.results([("eth_getBlockReceipts", [hex(n)]) for n in chunk])
        for block, block_receipts in zip(blocks, receipts):
            out.blocks += 1
            for tx in block["transactions"]:
                out.calldata.append((f"calldata of {tx['hash']}", bytes.fromhex(tx["input"][2:])))
            for receipt in block_receipts or []:
                for log in receipt["logs"]:
                    where = f"log {int(log['logIndex'], 16)} of {log['transactionHash']}"
                    blob = b"".join(bytes.fromhex(t[2:]) for t in log["topics"]) + bytes.fromhex(log["data"][2:])
                    out.logs.append((where, blob))
    state = rpc.dump_state()
    for address, account in state["accounts"].items():
        for slot, value in (account.get("storage") or {}).items():
            out.storage.append(
                (
                    f"storage of {address} at {slot}",
                    bytes.fromhex(slot[2:].rjust(64, "0")) + bytes.fromhex(value[2:].rjust(64, "0")),
                )
            )
    return out


def scan(contents: ChainContents, wanted: list[Needle]) -> list[Finding]:
    """Every place any needle occurs."""
    findings = []
    for where, blob in contents.items():
        for needle in wanted:
            if needle.data in blob:
                findings.append(Finding(needle, where))
    return findings
