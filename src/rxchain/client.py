"""The one typed facade over the registry: web3.py + eth-account.

The only place that knows transactions: free gas (legacy type-0 transactions at gas price 0, which a
Besu network with min-gas-price 0 accepts, as does the devnet), nonces kept by the client per sender,
gas estimated before sending (so a refusal is reported before anything is written on chain),
receipts awaited, and reverts decoded into the contract's custom error names and arguments
(:mod:`rxchain.errors`). Every transaction it signs goes through the :class:`~rxchain.outbox.Outbox`
first, so a run that dies mid-way resumes without duplicates or gaps.

A hospital system issues with :meth:`RegistryClient.issue`; a pharmacy redeems with
:meth:`RegistryClient.redeem` (which signs the patient's claim authorization from the QR's claim key).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError, TimeExhausted, TransactionNotFound, Web3RPCError
from web3.logs import DISCARD

from rxchain import errors
from rxchain.claims import RegistryDomain, sign_receipt, sign_redeem
from rxchain.deployment import Deployment, load_abi, load_deployment
from rxchain.outbox import Outbox, OutboxEntry
from rxchain.roles import REGULATOR_ROLE, role_id, roles_from_mask
from rxchain.status import Status

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
#: How long a claim authorization stays valid when the caller does not say.
DEFAULT_SIGNATURE_TTL = 15 * 60


@dataclass(frozen=True)
class TxResult:
    """A mined, successful transaction."""

    tx_hash: str
    block_number: int
    block_time: int
    gas_used: int
    events: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class PrescriptionState:
    """A prescription's on-chain state (the registry's ``prescription(id)`` view)."""

    rx_id: str
    custodian: str
    issued_at: int
    expires_at: int
    status: Status
    fills_left: int

    @property
    def exists(self) -> bool:
        return self.status is not Status.NONE

    def as_json(self) -> dict:
        return {
            "id": self.rx_id,
            "status": self.status.label,
            "custodian": self.custodian,
            "issuedAt": self.issued_at,
            "expiresAt": self.expires_at,
            "fillsLeft": self.fills_left,
        }


@dataclass(frozen=True)
class MemberRecord:
    """A member's on-chain record."""

    account: str
    roles: list[str]
    valid_until: int
    hospital: str | None

    def in_good_standing(self, now: int) -> bool:
        return bool(self.roles) and now <= self.valid_until

    def as_json(self) -> dict:
        return {"account": self.account, "roles": self.roles, "validUntil": self.valid_until, "hospital": self.hospital}


class RegistryClient:
    """A typed client of one deployed PrescriptionRegistry."""

    def __init__(
        self,
        w3: Web3,
        registry: str,
        *,
        abi: list[dict] | None = None,
        deploy_block: int = 0,
        outbox: Outbox | None = None,
        receipt_timeout: float = 120.0,
    ):
        self.w3 = w3
        self.address = to_checksum_address(registry)
        self.abi = abi if abi is not None else load_abi()
        self.contract = w3.eth.contract(address=self.address, abi=self.abi)
        self.deploy_block = deploy_block
        self.outbox = outbox or Outbox(":memory:")
        self.receipt_timeout = receipt_timeout
        self.chain_id = self.call_node(lambda: w3.eth.chain_id)
        self.domain = RegistryDomain(self.chain_id, self.address)
        self._errors = _error_table(self.abi)
        self._nonces: dict[str, int] = {}
        self._nonce_lock = threading.Lock()
        self._block_times: dict[int, int] = {}

    @classmethod
    def connect(
        cls, network: str = "devnet", *, rpc_url: str | None = None, outbox_path: Path | str | None = None, resume: bool = True
    ) -> "RegistryClient":
        """A client of the registry recorded for ``network``, checking that the node serves that chain;
        with an outbox, first puts back what the node lacks (``resume=False`` leaves that to the caller)."""
        deployment = load_deployment(network)
        url = rpc_url or deployment.rpc_url
        if not url:
            raise errors.NodeUnavailable(f"no RPC URL for network {network!r}: pass one")
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
        outbox = Outbox(outbox_path) if outbox_path else None
        client = cls(w3, deployment.registry, deploy_block=deployment.deploy_block, outbox=outbox)
        client.check_deployment(deployment)
        if outbox is not None and resume:
            client.resume_pending()
        return client

    def check_deployment(self, deployment: Deployment) -> None:
        """Raises :class:`~rxchain.errors.WrongChain` unless the node serves the recorded chain and code."""
        if self.chain_id != deployment.chain_id:
            raise errors.WrongChain(
                f"the node serves chain {self.chain_id}, but {deployment.network}'s registry is on chain "
                f"{deployment.chain_id}: point at the right node"
            )
        if not self.call_node(lambda: self.w3.eth.get_code(self.address)):
            raise errors.DeploymentNotFound(
                f"no contract at {self.address} on chain {self.chain_id}: the devnet was reset? deploy again"
            )

    # ------------------------------------------------------------------------------ members

    def admit(self, sender: LocalAccount, account: str, role: str, valid_until: int) -> TxResult:
        """Admits ``account`` as ``role`` (doctor: by its hospital; others: by the regulator)."""
        return self.transact(sender, "admitMember", to_checksum_address(account), role_id(role), valid_until)

    def renew(self, sender: LocalAccount, account: str, valid_until: int) -> TxResult:
        """Moves ``account``'s credential end date."""
        return self.transact(sender, "renewMember", to_checksum_address(account), valid_until)

    def revoke(self, sender: LocalAccount, account: str, role: str) -> TxResult:
        """Revokes ``role`` from ``account`` at once."""
        return self.transact(sender, "revokeRole", role_id(role), to_checksum_address(account))

    def member(self, account: str) -> MemberRecord:
        """The on-chain record of ``account``."""
        roles, valid_until, hospital = self._call("member", to_checksum_address(account))
        return MemberRecord(
            to_checksum_address(account), roles_from_mask(roles), valid_until, None if hospital == ZERO_ADDRESS else hospital
        )

    def is_regulator(self, account: str) -> bool:
        return bool(self._call("hasRole", REGULATOR_ROLE, to_checksum_address(account)))

    def has_role(self, account: str, role: str) -> bool:
        """True if ``account`` holds ``role`` with a live credential."""
        return bool(self._call("hasRole", role_id(role), to_checksum_address(account)))

    def members(self) -> list[MemberRecord]:
        """Every account ever admitted, with its current record (from MemberAdmitted events)."""
        logs = self.call_node(
            lambda: self.contract.events.MemberAdmitted().get_logs(from_block=self.deploy_block, to_block="latest")
        )
        seen: dict[str, None] = {}
        for log in logs:
            seen.setdefault(log["args"]["account"], None)
        return [self.member(account) for account in seen]

    # ------------------------------------------------------------------------ prescriptions

    def compute_id(self, doctor: str, doc_hash: bytes, designated_pharmacy: str | None, claim_key: str) -> tuple[bytes, bytes]:
        """(id, terms) as the registry computes them (a view call; :mod:`rxchain.ids` does it offline)."""
        rx_id, terms = self._call(
            "computeId", to_checksum_address(doctor), doc_hash, _address_or_zero(designated_pharmacy), to_checksum_address(claim_key)
        )
        return bytes(rx_id), bytes(terms)

    def issue(
        self,
        doctor: LocalAccount,
        doc_hash: bytes,
        claim_key: str,
        expires_at: int,
        *,
        designated_pharmacy: str | None = None,
        fills: int = 1,
    ) -> tuple[bytes, TxResult]:
        """Issues a prescription; returns its id and the transaction.

        Re-running with the same arguments after a crash returns the first run's transaction (the outbox
        knows it); issuing the same prescription anew raises :class:`~rxchain.errors.AlreadyIssued`.
        """
        rx_id, _ = self.compute_id(doctor.address, doc_hash, designated_pharmacy, claim_key)
        result = self.transact(
            doctor,
            "issue",
            doc_hash,
            to_checksum_address(claim_key),
            _address_or_zero(designated_pharmacy),
            int(expires_at),
            int(fills),
            op_key=f"issue:{self.chain_id}:{self.address}:{rx_id.hex()}",
        )
        return rx_id, result

    def cancel(self, sender: LocalAccount, rx_id: bytes) -> TxResult:
        """Cancels an unredeemed prescription (its doctor, or the regulator)."""
        return self.transact(sender, "cancel", rx_id)

    def redeem(
        self,
        pharmacy: LocalAccount,
        *,
        doctor: str,
        doc_hash: bytes,
        designated_pharmacy: str | None,
        claim_private_key: bytes | str,
        deadline: int | None = None,
    ) -> tuple[bytes, TxResult]:
        """Redeems one fill: signs the claim authorization with the QR's claim key and sends it."""
        from eth_account import Account

        from rxchain.batch import NotBatched, find_batch_proof

        claim_address = Account.from_key(claim_private_key).address
        rx_id, _ = self.compute_id(doctor, doc_hash, designated_pharmacy, claim_address)
        state = self.prescription(rx_id)
        batched = None
        fills_left = state.fills_left
        if not state.exists:  # perhaps issued in a batch: its first fill opens it with a proof
            try:
                batched = find_batch_proof(self, rx_id, doctor)
                fills_left = self.batch(self.member(doctor).hospital, batched.root)["fills"]
            except NotBatched:
                pass  # the registry will answer UnknownPrescription
        deadline = deadline if deadline is not None else self.latest_block_time() + DEFAULT_SIGNATURE_TTL
        signature = sign_redeem(claim_private_key, self.domain, rx_id, pharmacy.address, fills_left, deadline)
        args = [to_checksum_address(doctor), doc_hash, _address_or_zero(designated_pharmacy), claim_address, deadline, signature]
        if batched is not None:
            return rx_id, self.transact(pharmacy, "redeemBatched", *args, batched.root, batched.proof)
        return rx_id, self.transact(pharmacy, "redeem", *args)

    def issue_batch(self, hospital: LocalAccount, ids: list[bytes], expires_at: int, *, fills: int = 1) -> tuple[bytes, TxResult]:
        """Issues prescriptions ``ids`` (computed as for :meth:`issue`, each naming its doctor) in one
        transaction; returns the batch's Merkle root."""
        from rxchain.batch import merkle_root

        root = merkle_root(ids)
        result = self.transact(hospital, "issueBatch", list(ids), int(expires_at), int(fills),
                               op_key=f"batch:{self.chain_id}:{self.address}:{root.hex()}")  # fmt: skip
        return root, result

    def batch(self, hospital: str, root: bytes) -> dict:
        """``hospital``'s batch ``root``, as the registry records it (all zero when it issued none)."""
        issued_at, expires_at, fills, cancelled = self._call("batch", to_checksum_address(hospital), root)
        return {"hospital": to_checksum_address(hospital), "issuedAt": issued_at, "expiresAt": expires_at, "fills": fills,
                "cancelled": cancelled}  # fmt: skip

    def dispatch(self, pharmacy: LocalAccount, rx_id: bytes, courier: str) -> TxResult:
        """The filling pharmacy hands the drugs to ``courier``."""
        return self.transact(pharmacy, "dispatch", rx_id, to_checksum_address(courier))

    def deliver(self, holder: LocalAccount, rx_id: bytes) -> TxResult:
        """The courier (or the pharmacy, over the counter) hands the drugs to the patient."""
        return self.transact(holder, "deliver", rx_id)

    def deliver_with_receipt(
        self, holder: LocalAccount, rx_id: bytes, terms: bytes, claim_private_key: bytes | str, deadline: int | None = None
    ) -> TxResult:
        """Delivers and records the patient's receipt (signed by the claim key at the door) in one transaction."""
        state = self.prescription(rx_id)
        deadline = deadline if deadline is not None else self.latest_block_time() + DEFAULT_SIGNATURE_TTL
        signature = sign_receipt(claim_private_key, self.domain, rx_id, state.fills_left, deadline)
        return self.transact(holder, "deliverWithReceipt", rx_id, terms, deadline, signature)

    def confirm_receipt(
        self, relayer: LocalAccount, rx_id: bytes, terms: bytes, claim_private_key: bytes | str, deadline: int | None = None
    ) -> TxResult:
        """Records the patient's receipt of a delivered prescription; any account may relay it."""
        state = self.prescription(rx_id)
        deadline = deadline if deadline is not None else self.latest_block_time() + DEFAULT_SIGNATURE_TTL
        signature = sign_receipt(claim_private_key, self.domain, rx_id, state.fills_left, deadline)
        return self.transact(relayer, "confirmReceipt", rx_id, terms, deadline, signature)

    def pause(self, regulator: LocalAccount) -> TxResult:
        return self.transact(regulator, "pause")

    def unpause(self, regulator: LocalAccount) -> TxResult:
        return self.transact(regulator, "unpause")

    def prescription(self, rx_id: bytes) -> PrescriptionState:
        """The on-chain state of prescription ``rx_id``."""
        custodian, issued_at, expires_at, status, fills_left = self._call("prescription", rx_id)
        return PrescriptionState("0x" + bytes(rx_id).hex(), custodian, issued_at, expires_at, Status(status), fills_left)

    def limits(self) -> dict:
        max_validity, max_fills, paused = self._call("limits")
        return {"maxValiditySeconds": max_validity, "maxFills": max_fills, "paused": paused}

    def latest_block_time(self) -> int:
        """The latest block's timestamp: the chain's idea of now."""
        return int(self.call_node(lambda: self.w3.eth.get_block("latest"))["timestamp"])

    def block_time(self, number: int) -> int:
        """A block's timestamp (cached)."""
        if number not in self._block_times:
            self._block_times[number] = int(self.call_node(lambda: self.w3.eth.get_block(number))["timestamp"])
        return self._block_times[number]

    # --------------------------------------------------------------------------- transactions

    def transact(self, sender: LocalAccount, function: str, *args: Any, op_key: str | None = None) -> TxResult:
        """Signs, records, sends and awaits one free-gas transaction; raises the decoded error on refusal.

        With ``op_key``, an operation the outbox saw done is not done again: its receipt is returned,
        or, when the node no longer has that receipt (it restarted from an older state), the same
        signed transaction is sent again."""
        if op_key:
            done = self.outbox.succeeded(op_key)
            if done is not None:
                receipt = self._receipt_or_none(done.tx_hash)
                if receipt is not None:
                    return self._result(receipt)
                for entry, outcome in self._resume(done.sender):
                    if entry.tx_hash == done.tx_hash:
                        if isinstance(outcome, errors.RxError):
                            raise outcome
                        return outcome
                # its nonce now holds another transaction: it will never be mined, so do the operation anew
                self.outbox.settle(done.tx_hash, "dropped")
        # one question to the node (the sender's mined count): what it lost or never got goes first
        self.resume_pending(sender.address)
        call = getattr(self.contract.functions, function)(*args)
        gas = self._estimate(call, sender.address)
        entry = self._sign(sender, call, gas, op_key or f"{function}:{time.time_ns()}", function)
        try:
            self.outbox.record([entry])
        except errors.OutboxConflict:
            # the node counts fewer transactions of this sender than the outbox saw mined: put back what
            # it lost (the same signed bytes, in nonce order), then sign this one again on top
            self.resume_pending(sender.address)
            gas = self._estimate(call, sender.address)
            entry = self._sign(sender, call, gas, entry.op_key, function)
            self.outbox.record([entry])
        self._broadcast(entry)
        return self._await(entry, call)

    def resume_pending(self, sender: str | None = None) -> list[TxResult | errors.RxError]:
        """Puts on chain what this outbox signed and the node does not have, and waits for it: what an
        earlier run signed but never saw mined, and what the node mined but lost when it restarted from
        an older state. Per sender, from the node's transaction count, in nonce order,
        the same signed bytes (same hashes, so never a duplicate); one deadline
        (``receipt_timeout``) for all. Returns each one's outcome: a TxResult or the error."""
        return [outcome for _, outcome in self._resume(sender)]

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
                    receipt = self._receipt_or_none(entry.tx_hash)
                    if receipt is None:
                        self.outbox.settle(entry.tx_hash, "dropped")
                        outcomes.append((entry, errors.TransactionFailed(
                            f"{entry.description} ({entry.tx_hash}) was never mined: nonce {entry.nonce} of {address} "
                            "was used by another transaction; re-run the operation")))  # fmt: skip
                    else:
                        outcomes.append((entry, self._settle_receipt(entry, receipt)))
                    continue
                if entry.nonce != expected:
                    outcomes.append((entry, self._gap(entry, expected)))
                    continue
                try:
                    self._broadcast(entry)
                except errors.NodeUnavailable:
                    raise
                except errors.RxError as exc:
                    outcomes.append((entry, exc))
                    continue
                sent.append(entry)
                expected += 1
        with self._nonce_lock:
            for address in moved:  # the node's count moved under the cache
                self._nonces.pop(address, None)
        deadline = time.monotonic() + self.receipt_timeout
        for entry in sent:  # a sender's transactions are mined in nonce order: wait for each in turn
            outcomes.append((entry, self._await_until(entry, deadline)))
        return sorted(outcomes, key=lambda pair: (pair[0].sender, pair[0].nonce))

    def _gap(self, entry: OutboxEntry, expected: int) -> errors.RxError:
        """A pending transaction that cannot be mined: the sender's nonce ``expected`` comes first and no
        transaction in this outbox holds it."""
        known = self.call_node(lambda: self.w3.provider.make_request("eth_getTransactionByHash", [entry.tx_hash])).get("result")
        if known is None:
            self.outbox.settle(entry.tx_hash, "dropped")
            return errors.TransactionFailed(
                f"{entry.description} ({entry.tx_hash}) cannot be mined: nonce {expected} of {entry.sender} comes first and "
                "this outbox holds no transaction for it; dropped, re-run the operation"
            )
        return errors.TransactionFailed(
            f"{entry.description} ({entry.tx_hash}) waits in the node's pool for nonce {expected} of {entry.sender}, which "
            "this outbox does not hold (another process signing with this key?); it stays pending"
        )
    def _estimate(self, call, sender: str) -> int:
        try:
            estimate = self.call_node(lambda: call.estimate_gas({"from": sender, "gasPrice": 0}))
        except (ContractCustomError, ContractLogicError, ContractPanicError) as exc:
            raise self.decode_revert(_revert_data(exc)) from None
        return int(estimate * 1.25) + 20_000

    def _sign(self, sender: LocalAccount, call, gas: int, op_key: str, description: str) -> OutboxEntry:
        nonce = self._next_nonce(sender.address)
        tx = call.build_transaction(
            {"from": sender.address, "nonce": nonce, "gas": gas, "gasPrice": 0, "chainId": self.chain_id}
        )
        tx.pop("maxFeePerGas", None)
        tx.pop("maxPriorityFeePerGas", None)
        signed = sender.sign_transaction(tx)
        return OutboxEntry(
            "0x" + bytes(signed.hash).hex(), op_key, sender.address, nonce, self.chain_id, bytes(signed.raw_transaction), description, "pending", None
        )

    def _next_nonce(self, address: str) -> int:
        with self._nonce_lock:
            if address not in self._nonces:
                self._nonces[address] = self.call_node(lambda: self.w3.eth.get_transaction_count(address, "pending"))
            nonce = self._nonces[address]
            self._nonces[address] = nonce + 1
            return nonce

    def _broadcast(self, entry: OutboxEntry) -> None:
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
                receipt = self._receipt_or_none(entry.tx_hash)
                if receipt is None:
                    self.outbox.settle(entry.tx_hash, "dropped")
                    with self._nonce_lock:
                        self._nonces.pop(entry.sender, None)
                    raise errors.TransactionFailed(
                        f"transaction {entry.tx_hash} ({entry.description}) was replaced: its nonce {entry.nonce} "
                        "is used by another transaction; re-run the operation"
                    ) from None
                return
            raise errors.TransactionFailed(f"the node refused {entry.description}: {exc}") from None

    def _await(self, entry: OutboxEntry, call) -> TxResult:
        outcome = self._await_until(entry, time.monotonic() + self.receipt_timeout)
        if isinstance(outcome, errors.RxError):
            raise outcome
        return outcome

    def _await_until(self, entry: OutboxEntry, deadline: float) -> TxResult | errors.RxError:
        """The transaction's outcome once mined (the decoded error when it reverted), or a
        TransactionFailed when it is not mined by ``deadline`` (it then stays pending in the outbox)."""
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
        return self._settle_receipt(entry, receipt)

    def _settle_receipt(self, entry: OutboxEntry, receipt) -> TxResult | errors.RxError:
        if receipt["status"] != 1:
            self.outbox.settle(entry.tx_hash, "failed", receipt["blockNumber"])
            return self._explain_failure(entry, receipt)
        self.outbox.settle(entry.tx_hash, "mined", receipt["blockNumber"])
        return self._result(receipt)

    def explain(self, tx_hash: str, *, use_trace: bool = True) -> errors.RxError | None:
        """Why a mined transaction failed, as the named error; None when it succeeded.

        Asks the node's own trace of the transaction first (``debug_traceTransaction``: exact, at its
        place in its block; Besu serves it when the DEBUG API is enabled), and otherwise replays the
        transaction on the state its block ended with (``use_trace=False`` forces the replay). Raises
        TransactionFailed when the node has no receipt for it."""
        receipt = self._receipt_or_none(tx_hash)
        if receipt is None:
            raise errors.TransactionFailed(f"the node has no receipt for {tx_hash}: not mined (yet), or not on this chain")
        if receipt["status"] == 1:
            return None
        return self._explain_mined(tx_hash, receipt, "transaction", use_trace=use_trace)

    def _explain_failure(self, entry: OutboxEntry, receipt) -> errors.RxError:
        return self._explain_mined(entry.tx_hash, receipt, entry.description)

    def _explain_mined(self, tx_hash: str, receipt, description: str, *, use_trace: bool = True) -> errors.RxError:
        if use_trace:
            traced = self._traced_revert(tx_hash)
            if traced is not None:
                return traced
        tx = self.call_node(lambda: self.w3.eth.get_transaction(tx_hash))
        try:
            self.call_node(lambda: self.w3.eth.call(
                {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gasPrice": 0}, receipt["blockNumber"]))  # fmt: skip
        except (ContractCustomError, ContractLogicError, ContractPanicError) as exc:
            return self.decode_revert(_revert_data(exc))
        return errors.TransactionFailed(
            f"{description} ({tx_hash}) reverted, and a replay on its block's final state succeeds: it ran out of gas, or "
            "lost to a transaction earlier in the same block whose effect a later one undid"
        )

    def _traced_revert(self, tx_hash: str) -> errors.RxError | None:
        """The revert the node's call tracer recorded, or None when the node offers no trace."""
        try:
            reply = self.call_node(lambda: self.w3.provider.make_request("debug_traceTransaction", [tx_hash, {"tracer": "callTracer"}]))
        except errors.NodeUnavailable:
            raise
        except Exception:  # noqa: BLE001 - a node without the debug API: fall back to the replay
            return None
        result = reply.get("result") if isinstance(reply, dict) else None
        if not isinstance(result, dict):
            return None
        output = result.get("output")
        if output and output != "0x":
            return self.decode_revert(output)
        if "gas" in str(result.get("error", "")).lower():
            return errors.TransactionFailed(f"{tx_hash} ran out of gas ({result.get('error')})")
        return None

    def _receipt_or_none(self, tx_hash: str):
        """The receipt, or None when the node has none (not mined, or mined in blocks it lost)."""
        try:
            return self.call_node(lambda: self.w3.eth.get_transaction_receipt(tx_hash))
        except TransactionNotFound:
            return None

    def _result(self, receipt) -> TxResult:
        events: list[dict] = []
        for event in self.contract.events:
            for log in event().process_receipt(receipt, errors=DISCARD):
                events.append({"event": log["event"], "args": dict(log["args"]), "logIndex": log["logIndex"]})
        events.sort(key=lambda e: e["logIndex"])
        return TxResult(
            "0x" + bytes(receipt["transactionHash"]).hex(),
            receipt["blockNumber"],
            self.block_time(receipt["blockNumber"]),
            receipt["gasUsed"],
            events,
        )

    # ----------------------------------------------------------------------------- decoding

    def decode_revert(self, data: str | bytes | None) -> errors.ContractRevert:
        """The named Python exception for a revert's return data."""
        raw = bytes.fromhex(data[2:] if data.startswith("0x") else data) if isinstance(data, str) else bytes(data or b"")
        if len(raw) < 4 or raw[:4] not in self._errors:
            return errors.UnknownContractError("unknown", {"data": raw.hex()})
        name, names, types = self._errors[raw[:4]]
        try:
            values = abi_decode(types, raw[4:])
        except Exception:  # noqa: BLE001 - malformed data from a node: report it rather than crash
            return errors.UnknownContractError(name, {"data": raw.hex()})
        values = [to_checksum_address(v) if t == "address" else v for t, v in zip(types, values)]
        cls = errors.BY_NAME.get(name, errors.ContractRevert)
        return cls(name, dict(zip(names, values)))

    def _call(self, function: str, *args: Any):
        call = getattr(self.contract.functions, function)(*args)
        try:
            return self.call_node(call.call)
        except (ContractCustomError, ContractLogicError, ContractPanicError) as exc:
            raise self.decode_revert(_revert_data(exc)) from None

    def call_node(self, thunk):
        """Runs a node call, turning a dead connection into NodeUnavailable with the URL."""
        try:
            return thunk()
        except requests.exceptions.ConnectionError as exc:
            uri = getattr(self.w3.provider, "endpoint_uri", "the node")
            raise errors.NodeUnavailable(f"no answer from {uri}: is the node running? ({exc.__class__.__name__})") from None


def _error_table(abi: list[dict]) -> dict[bytes, tuple[str, list[str], list[str]]]:
    table = {}
    for item in abi:
        if item.get("type") != "error":
            continue
        types = [_abi_type(i) for i in item["inputs"]]
        selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
        table[selector] = (item["name"], [i["name"] for i in item["inputs"]], types)
    return table


def _abi_type(item: dict) -> str:
    if item["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in item["components"]) + ")" + item["type"][5:]
    return item["type"]


def _revert_data(exc: Exception) -> str | None:
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    return data if isinstance(data, (str, bytes)) else None


def _address_or_zero(address: str | None) -> str:
    return to_checksum_address(address) if address else ZERO_ADDRESS
