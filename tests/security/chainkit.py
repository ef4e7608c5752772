"""What the security suite needs of a node beyond the client: raw JSON-RPC (batched), snapshots,
block times, the mining switch, and whole-registry reads for "nothing changed" checks.

Everything here speaks plain JSON-RPC to the node, so a check never goes through the code it checks.
"""

from __future__ import annotations

import gzip
import json
import time
from dataclasses import dataclass
from pathlib import Path

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

from rxchain.chain.client import RegistryClient
from rxchain.chain.rpc import RpcSession
from rxchain.dev.anvil import Anvil
from rxchain.core.status import Status


class RpcError(RuntimeError):
    """The node answered a JSON-RPC call with an error object."""

    def __init__(self, method: str, error: dict):
        self.method = method
        self.error = error
        super().__init__(f"{method}: {error.get('message')} ({error.get('data')})")


class Rpc(RpcSession):
    """A JSON-RPC connection to one node (the package's batched session) with the node controls and
    whole-registry reads the security suite needs."""

    def __init__(self, url: str, timeout: float = 120.0):
        super().__init__(url, timeout=timeout)

    def call(self, method: str, *params):
        """The result of one call; raises :class:`RpcError` on an error reply."""
        reply = self.call_raw(method, list(params))
        if "error" in reply:
            raise RpcError(method, reply["error"])
        return reply["result"]

    def batch(self, calls: list[tuple[str, list]]) -> list[dict]:
        """The raw replies (``result`` or ``error``) of many calls, in order, in one HTTP request."""
        return self.batch_raw(calls)

    def results(self, calls: list[tuple[str, list]]) -> list:
        """The results of many calls; raises on the first error."""
        out = []
        for (method, _), reply in zip(calls, self.batch(calls)):
            if "error" in reply:
                raise RpcError(method, reply["error"])
            out.append(reply["result"])
        return out

    # -------------------------------------------------------------------- node control

    def snapshot(self) -> str:
        return self.call("evm_snapshot")

    def revert(self, snapshot: str) -> None:
        if not self.call("evm_revert", snapshot):
            raise RuntimeError(f"the node could not revert to snapshot {snapshot}")

    def mine(self, timestamp: int | None = None) -> None:
        if timestamp is None:
            self.call("evm_mine")
        else:
            self.call("evm_mine", timestamp)

    def next_block_at(self, timestamp: int) -> None:
        """The next block (and any gas estimate before it) is stamped ``timestamp``."""
        self.call("evm_setNextBlockTimestamp", timestamp)

    def automine(self, on: bool) -> None:
        self.call("evm_setAutomine", on)

    def block_gas_limit(self, gas: int) -> None:
        self.call("evm_setBlockGasLimit", hex(gas))

    # --------------------------------------------------------------------------- reads

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def latest_time(self) -> int:
        return int(self.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16)

    def block(self, number: int, full: bool = False) -> dict:
        return self.call("eth_getBlockByNumber", hex(number), full)

    def nonce(self, address: str, block: str = "latest") -> int:
        return int(self.call("eth_getTransactionCount", address, block), 16)

    def receipt(self, tx_hash: str, timeout: float = 10.0) -> dict:
        """The receipt of ``tx_hash`` once mined (a node may answer the send before it has mined it)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.call("eth_getTransactionReceipt", tx_hash)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{tx_hash} was not mined within {timeout} s")
            time.sleep(0.02)

    def dump_state(self) -> dict:
        """anvil's whole state (accounts, code, storage) as JSON."""
        raw = bytes.fromhex(self.call("anvil_dumpState")[2:])
        return json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)


# ------------------------------------------------------------------------ registry reads


@dataclass(frozen=True)
class RegistrySnapshot:
    """Every observable fact of a registry about a set of prescriptions, batches and accounts."""

    prescriptions: dict[bytes, tuple]
    batches: dict[tuple[str, bytes], tuple]  # by (hospital, root)
    members: dict[str, tuple]
    limits: tuple
    block_number: int
    nonces: dict[str, int]


def read_registry(
    rpc: Rpc,
    client: RegistryClient,
    rx_ids=(),
    roots=(),
    accounts=(),
) -> RegistrySnapshot:
    """One batched read of prescription views, batch records, member records, limits and nonces.

    ``roots`` are (hospital, root) pairs: a batch is a hospital's."""
    rx_ids, accounts = list(rx_ids), [to_checksum_address(a) for a in accounts]
    roots = [(to_checksum_address(h), bytes(r)) for h, r in roots]

    def call(signature: str, word: bytes = b"") -> tuple:
        return ("eth_call", [{"to": client.address, "data": "0x" + (_selector(signature) + word).hex()}, "latest"])

    calls = [call("prescription(bytes32)", bytes(i)) for i in rx_ids]
    calls += [call("batch(address,bytes32)", bytes(12) + bytes.fromhex(h[2:]) + r) for h, r in roots]
    calls += [call("member(address)", bytes(12) + bytes.fromhex(a[2:])) for a in accounts]
    calls += [call("limits()")]
    calls += [("eth_getTransactionCount", [a, "latest"]) for a in accounts]
    calls += [("eth_blockNumber", [])]
    results = rpc.results(calls)
    words = [bytes.fromhex(r[2:]) for r in results[: len(rx_ids) + len(roots) + len(accounts) + 1]]
    at = 0
    prescriptions = {}
    for i in rx_ids:
        custodian, issued, expires, status, fills = abi_decode(
            ["address", "uint40", "uint40", "uint8", "uint8"], words[at]
        )
        prescriptions[bytes(i)] = (to_checksum_address(custodian), issued, expires, Status(status), fills)
        at += 1
    batches = {}
    for h, r in roots:
        issued, expires, fills, cancelled = abi_decode(["uint40", "uint40", "uint8", "bool"], words[at])
        batches[(h, r)] = (h if issued else "0x" + "00" * 20, issued, expires, fills, cancelled)
        at += 1
    members = {}
    for a in accounts:
        roles, valid_until, hospital = abi_decode(["uint8", "uint40", "address"], words[at])
        members[a] = (roles, valid_until, to_checksum_address(hospital))
        at += 1
    limits = tuple(abi_decode(["uint32", "uint8", "bool"], words[at]))
    at += 1
    nonces = {a: int(results[at + k], 16) for k, a in enumerate(accounts)}
    return RegistrySnapshot(prescriptions, batches, members, limits, int(results[-1], 16), nonces)


_SELECTORS: dict[str, bytes] = {}


def _selector(signature: str) -> bytes:
    if signature not in _SELECTORS:
        _SELECTORS[signature] = keccak(text=signature)[:4]
    return _SELECTORS[signature]


# --------------------------------------------------------------------- failed transactions


def explain_mined_failure(client: RegistryClient, tx_hash: str, description: str = "transaction"):
    """The client's named explanation of a transaction that was mined and reverted, by replay (the
    path a node without the debug API takes; the trace is the test's own independent oracle)."""
    reason = client.explain(tx_hash, use_trace=False)
    if reason is None:
        raise AssertionError(f"{tx_hash} ({description}) did not fail")
    return reason


def revert_reason_on_chain(rpc: Rpc, client: RegistryClient, tx_hash: str):
    """Why the EVM really reverted ``tx_hash`` where it stood in its block (the node's own trace,
    independent of the client): the decoded custom error."""
    trace = rpc.call("debug_traceTransaction", tx_hash, {"tracer": "callTracer"})
    return client.decode_revert(trace.get("output") or "0x")


# ---------------------------------------------------------------------- a node of our own


@dataclass
class OwnNode:
    """An anvil this suite starts and stops itself (free gas, the project's hardfork), optionally
    keeping its state in a file across restarts."""

    port: int
    chain_id: int
    state_file: Path | None
    log_file: Path
    block_time: int | None = None
    state_interval: int = 1
    anvil: Anvil | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "OwnNode":
        """Starts anvil on this node's port (from its state file, if any) and returns once it answers."""
        self.anvil = Anvil.start(
            chain_id=self.chain_id,
            port=self.port,
            block_time=self.block_time,
            log_file=self.log_file,
            timeout=timeout,
            gas_limit=1_000_000_000,
            state_file=self.state_file,
            state_interval=self.state_interval,
            unlimited_requests=False,
        )
        return self

    def kill(self) -> None:
        """SIGKILL: the node dies without writing anything more."""
        if self.anvil is not None:
            self.anvil.kill()

    def stop(self) -> None:
        """SIGTERM: anvil writes its state file on the way out."""
        if self.anvil is not None:
            self.anvil.stop()
