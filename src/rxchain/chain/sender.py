"""The transaction engine: the one place that signs, records, sends and awaits transactions.

Free gas (legacy type-0 transactions at gas price 0, which a Besu network with min-gas-price 0
accepts, as does the devnet), nonces kept per sender, gas estimated before signing (so a refusal is
reported before anything is written on chain), every signed transaction written to the
:class:`~rxchain.chain.outbox.Outbox` before it is sent, receipts awaited, failures explained
(:mod:`rxchain.chain.reverts`). Before a sender's next transaction, what the node lacks of that
sender's (never seen mined, or mined in blocks a restarted node lost) is re-sent byte for byte, in
nonce order.

:class:`~rxchain.chain.client.RegistryClient` (the domain verbs), :func:`~rxchain.chain.deploy.deploy_registry`
and :class:`~rxchain.chain.pipeline.Pipeline` (bulk work) all use one :class:`TransactionSender`, so
a process never has two owners of a sender's nonces.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import TimeExhausted, TransactionNotFound, Web3RPCError
from web3.logs import DISCARD

from rxchain import errors
from rxchain.chain.outbox import Outbox, OutboxEntry
from rxchain.chain.reverts import REVERTS, RevertDecoder, explain_mined


@dataclass(frozen=True)
class TxResult:
    """A mined, successful transaction."""

    tx_hash: str
    block_number: int
    block_time: int
    gas_used: int
    events: list[dict] = field(default_factory=list)
    #: The created contract's address, for a deployment.
    contract_address: str | None = None


class TransactionSender:
    """Signs, records, sends and awaits free-gas transactions on one chain, owning nonces and the outbox.

    ``events_of`` is the contract whose events a :class:`TxResult` lists; ``decoder`` names reverts.
    """

    def __init__(
        self,
        w3: Web3,
        *,
        decoder: RevertDecoder,
        outbox: Outbox | None = None,
        events_of: Contract | None = None,
        receipt_timeout: float = 120.0,
    ):
        self.w3 = w3
        self.decoder = decoder
        self.outbox = outbox or Outbox(":memory:")
        self.events_of = events_of
        self.receipt_timeout = receipt_timeout
        self.chain_id = int(self.call_node(lambda: w3.eth.chain_id))
        self._nonces: dict[str, int] = {}
        self._nonce_lock = threading.Lock()
        self._block_times: dict[int, int] = {}

    # ---------------------------------------------------------------------------- the verb

    def transact(self, sender: LocalAccount, call, *, description: str, op_key: str | None = None) -> TxResult:
        """Signs, records, sends and awaits one transaction of ``call`` (a web3 contract function or
        constructor with its arguments); raises the decoded error on refusal.

        With ``op_key``, an operation the outbox saw done is not done again: its receipt is returned,
        or, when the node no longer has that receipt (it restarted from an older state), the same
        signed transaction is sent again."""
        if op_key:
            done = self.outbox.succeeded(op_key)
            if done is not None:
                receipt = self.receipt_or_none(done.tx_hash)
                if receipt is not None:
                    return self.result(receipt)
                for entry, outcome in self._resume(done.sender):
                    if entry.tx_hash == done.tx_hash:
                        if isinstance(outcome, errors.RxError):
                            raise outcome
                        return outcome
                # its nonce now holds another transaction: it will never be mined, so do the operation anew
                self.outbox.settle(done.tx_hash, "dropped")
        # one question to the node (the sender's mined count): what it lost or never got goes first
        self.resume_pending(sender.address)
        gas = self.estimate(call, sender.address)
        entry = self.sign(sender, call, gas, op_key or f"{description}:{time.time_ns()}", description)
        try:
            self.outbox.record([entry])
        except errors.OutboxConflict:
            # the node counts fewer transactions of this sender than the outbox saw mined: put back what
            # it lost (the same signed bytes, in nonce order), then sign this one again on top
            self.resume_pending(sender.address)
            gas = self.estimate(call, sender.address)
            entry = self.sign(sender, call, gas, entry.op_key, description)
            self.outbox.record([entry])
        self.broadcast(entry)
        return self.wait(entry)

    def resume_pending(self, sender: str | None = None) -> list[TxResult | errors.RxError]:
        """Puts on chain what this outbox signed and the node does not have, and waits for it: what an
        earlier run signed but never saw mined, and what the node mined but lost when it restarted from
        an older state. Per sender, from the node's transaction count, in nonce order, the same signed
        bytes (same hashes, so never a duplicate); one deadline (``receipt_timeout``) for all. Returns
        each one's outcome: a TxResult or the error."""
        return [outcome for _, outcome in self._resume(sender)]

    # ------------------------------------------------------------------------ the steps

    def estimate(self, call, sender: str) -> int:
        """Gas for ``call`` with a margin; the decoded error if the contract would refuse it."""
        try:
            estimate = self.call_node(lambda: call.estimate_gas({"from": sender, "gasPrice": 0}))
        except REVERTS as exc:
            raise self.decoder.from_exception(exc) from None
        return int(estimate * 1.25) + 20_000

    def sign(self, sender: LocalAccount, call, gas: int, op_key: str, description: str) -> OutboxEntry:
        """Signs ``call`` with the sender's next nonce (nothing recorded or sent)."""
        nonce = self.next_nonce(sender.address)
        tx = call.build_transaction(
            {"from": sender.address, "nonce": nonce, "gas": gas, "gasPrice": 0, "chainId": self.chain_id}
        )
        tx.pop("maxFeePerGas", None)
        tx.pop("maxPriorityFeePerGas", None)
        signed = sender.sign_transaction(tx)
        return OutboxEntry(
            "0x" + bytes(signed.hash).hex(),
            op_key,
            sender.address,
            nonce,
            self.chain_id,
            bytes(signed.raw_transaction),
            description,
            "pending",
            None,
        )

    def next_nonce(self, address: str) -> int:
        """The sender's next nonce (asked of the node once, then counted here)."""
        with self._nonce_lock:
            if address not in self._nonces:
                self._nonces[address] = self.call_node(lambda: self.w3.eth.get_transaction_count(address, "pending"))
            nonce = self._nonces[address]
            self._nonces[address] = nonce + 1
            return nonce

    def forget_nonce(self, address: str) -> None:
        """Asks the node again for the sender's next nonce (its count moved under the cache)."""
        with self._nonce_lock:
            self._nonces.pop(address, None)

    def broadcast(self, entry: OutboxEntry) -> None:
        """Sends a recorded transaction; a node that knows it already is fine."""
        try:
            self.w3.eth.send_raw_transaction(entry.raw)
        except requests.exceptions.ConnectionError as exc:
            raise errors.NodeUnavailable(
                f"the node does not answer ({exc.__class__.__name__}); transaction {entry.tx_hash} is kept in the "
                f"outbox ({self.outbox.path}) and will be re-sent on the next run"
            ) from None
        except (ValueError, Web3RPCError) as exc:  # the node refused it: known already, or its nonce is used
            text = str(exc).lower()
            if "already" in text or "known" in text:
                return
            if "nonce" in text:
                if self.receipt_or_none(entry.tx_hash) is None:
                    self.outbox.settle(entry.tx_hash, "dropped")
                    self.forget_nonce(entry.sender)
                    raise errors.TransactionFailed(
                        f"transaction {entry.tx_hash} ({entry.description}) was replaced: its nonce {entry.nonce} "
                        "is used by another transaction; re-run the operation"
                    ) from None
                return
            raise errors.TransactionFailed(f"the node refused {entry.description}: {exc}") from None

    def wait(self, entry: OutboxEntry) -> TxResult:
        """The transaction's result once mined; raises the decoded error when it reverted, or
        TransactionFailed when it is not mined within ``receipt_timeout`` (it stays pending)."""
        outcome = self.outcome_by(entry, time.monotonic() + self.receipt_timeout)
        if isinstance(outcome, errors.RxError):
            raise outcome
        return outcome

    def outcome_by(self, entry: OutboxEntry, deadline: float) -> TxResult | errors.RxError:
        """Like :meth:`wait`, returning the error instead of raising it, with a deadline of its own."""
        try:
            receipt = self.call_node(
                lambda: self.w3.eth.wait_for_transaction_receipt(
                    entry.tx_hash, timeout=max(0.5, deadline - time.monotonic()), poll_latency=0.05
                )
            )
        except TimeExhausted:
            return errors.TransactionFailed(
                f"{entry.description} ({entry.tx_hash}) was not mined within {self.receipt_timeout:.0f} s; it stays in "
                "the outbox and is re-sent on the next run"
            )
        return self._settle(entry, receipt)

    # ------------------------------------------------------------------------ reading back

    def explain(self, tx_hash: str, *, use_trace: bool = True) -> errors.RxError | None:
        """Why a mined transaction failed, as the named error; None when it succeeded. Asks the node's
        trace first and otherwise replays it (``use_trace=False`` forces the replay). Raises
        TransactionFailed when the node has no receipt for it."""
        receipt = self.receipt_or_none(tx_hash)
        if receipt is None:
            raise errors.TransactionFailed(
                f"the node has no receipt for {tx_hash}: not mined (yet), or not on this chain"
            )
        if receipt["status"] == 1:
            return None
        return explain_mined(
            self.w3, self.decoder, self.call_node, tx_hash, receipt["blockNumber"], "transaction", use_trace=use_trace
        )

    def receipt_or_none(self, tx_hash: str):
        """The receipt, or None when the node has none (not mined, or mined in blocks it lost)."""
        try:
            return self.call_node(lambda: self.w3.eth.get_transaction_receipt(tx_hash))
        except TransactionNotFound:
            return None

    def result(self, receipt) -> TxResult:
        """A successful receipt as a :class:`TxResult`, with the contract's events in log order."""
        events: list[dict] = []
        if self.events_of is not None:
            for event in self.events_of.events:
                for log in event().process_receipt(receipt, errors=DISCARD):
                    events.append({"event": log["event"], "args": dict(log["args"]), "logIndex": log["logIndex"]})
        events.sort(key=lambda e: e["logIndex"])
        created = receipt.get("contractAddress")
        return TxResult(
            "0x" + bytes(receipt["transactionHash"]).hex(),
            receipt["blockNumber"],
            self.block_time(receipt["blockNumber"]),
            receipt["gasUsed"],
            events,
            created or None,
        )

    def block_time(self, number: int) -> int:
        """A block's timestamp (cached)."""
        if number not in self._block_times:
            self._block_times[number] = int(self.call_node(lambda: self.w3.eth.get_block(number))["timestamp"])
        return self._block_times[number]

    def call_node(self, thunk: Callable[[], Any]) -> Any:
        """Runs a node call, turning a dead connection into NodeUnavailable with the URL."""
        try:
            return thunk()
        except requests.exceptions.ConnectionError as exc:
            uri = getattr(self.w3.provider, "endpoint_uri", "the node")
            raise errors.NodeUnavailable(
                f"no answer from {uri}: is the node running? ({exc.__class__.__name__})"
            ) from None

    # ------------------------------------------------------------------------------ helpers

    def _settle(self, entry: OutboxEntry, receipt) -> TxResult | errors.RxError:
        if receipt["status"] != 1:
            self.outbox.settle(entry.tx_hash, "failed", receipt["blockNumber"])
            return explain_mined(
                self.w3, self.decoder, self.call_node, entry.tx_hash, receipt["blockNumber"], entry.description
            )
        self.outbox.settle(entry.tx_hash, "mined", receipt["blockNumber"])
        return self.result(receipt)

    def _mined_nonce(self, address: str) -> int:
        return int(self.call_node(lambda: self.w3.eth.get_transaction_count(address, "latest")))

    def _resume(self, sender: str | None) -> list[tuple[OutboxEntry, TxResult | errors.RxError]]:
        if sender is None:
            senders = self.outbox.senders(self.chain_id)
        else:  # nothing of this sender's in the outbox: nothing to put back, no question to the node
            senders = [sender] if self.outbox.has_sender(self.chain_id, sender) else []
        outcomes: list[tuple[OutboxEntry, TxResult | errors.RxError]] = []
        sent: list[OutboxEntry] = []
        moved: set[str] = set()
        for address in senders:
            mined_nonce = self._mined_nonce(address)
            # entries once seen mined at a nonce the node no longer counts: it lost their blocks
            lost = self.outbox.settled_from_nonce(self.chain_id, address, mined_nonce)
            if lost:
                self.outbox.reopen_many([e.tx_hash for e in lost])
            expected = mined_nonce
            pending = self.outbox.pending(self.chain_id, sender=address)
            if pending:
                moved.add(address)
            for entry in pending:
                if entry.nonce < mined_nonce:  # its nonce is used: by this transaction, or by another one
                    receipt = self.receipt_or_none(entry.tx_hash)
                    if receipt is None:
                        self.outbox.settle(entry.tx_hash, "dropped")
                        outcomes.append(
                            (
                                entry,
                                errors.TransactionFailed(
                                    f"{entry.description} ({entry.tx_hash}) was never mined: nonce {entry.nonce} of "
                                    f"{address} was used by another transaction; re-run the operation"
                                ),
                            )
                        )
                    else:
                        outcomes.append((entry, self._settle(entry, receipt)))
                    continue
                if entry.nonce != expected:
                    outcomes.append((entry, self._gap(entry, expected)))
                    continue
                try:
                    self.broadcast(entry)
                except errors.NodeUnavailable:
                    raise
                except errors.RxError as exc:
                    outcomes.append((entry, exc))
                    continue
                sent.append(entry)
                expected += 1
        for address in moved:  # the node's count moved under the cache
            self.forget_nonce(address)
        deadline = time.monotonic() + self.receipt_timeout
        for entry in sent:  # a sender's transactions are mined in nonce order: wait for each in turn
            outcomes.append((entry, self.outcome_by(entry, deadline)))
        return sorted(outcomes, key=lambda pair: (pair[0].sender, pair[0].nonce))

    def _gap(self, entry: OutboxEntry, expected: int) -> errors.RxError:
        """A pending transaction that cannot be mined: the sender's nonce ``expected`` comes first and no
        transaction in this outbox holds it."""
        known = self.call_node(lambda: self.w3.provider.make_request("eth_getTransactionByHash", [entry.tx_hash])).get(
            "result"
        )
        if known is None:
            self.outbox.settle(entry.tx_hash, "dropped")
            return errors.TransactionFailed(
                f"{entry.description} ({entry.tx_hash}) cannot be mined: nonce {expected} of {entry.sender} comes "
                "first and this outbox holds no transaction for it; dropped, re-run the operation"
            )
        return errors.TransactionFailed(
            f"{entry.description} ({entry.tx_hash}) waits in the node's pool for nonce {expected} of {entry.sender}, "
            "which this outbox does not hold (another process signing with this key?); it stays pending"
        )
