"""The one typed facade over the registry: its domain verbs and views on web3.py + eth-account.

A hospital system issues with :meth:`RegistryClient.issue`; a pharmacy redeems with
:meth:`RegistryClient.redeem` (which signs the patient's claim authorization from the QR's claim key).
Every transaction goes through the client's :class:`~rxchain.chain.sender.TransactionSender` (free gas,
nonces, the outbox, receipts, resuming what a crash left) and every refusal comes back as the
contract's custom error, named (:mod:`rxchain.chain.reverts`, :mod:`rxchain.errors`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3

from rxchain import errors
from rxchain.chain.deployment import Deployment, load_abi, load_deployment
from rxchain.chain.logs import DEFAULT_MAX_LOGS_RANGE, logs_in_windows
from rxchain.chain.outbox import Outbox
from rxchain.chain.reverts import REVERTS, RevertDecoder
from rxchain.chain.sender import TransactionSender, TxResult
from rxchain.core.claims import RegistryDomain, sign_receipt, sign_redeem
from rxchain.core.handover import (
    Authorization,
    ConsentRequest,
    DeliveryRequest,
    Receipt,
    check_authorization,
    check_receipt,
)
from rxchain.core.ids import ZERO_ADDRESS, RxId
from rxchain.core.roles import role_id, roles_from_mask
from rxchain.core.status import Status

__all__ = ["DEFAULT_SIGNATURE_TTL", "MemberRecord", "PrescriptionState", "RegistryClient", "TxResult"]

#: How long a claim authorization stays valid when the caller does not say.
DEFAULT_SIGNATURE_TTL = 15 * 60


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
        max_logs_range: int = DEFAULT_MAX_LOGS_RANGE,
    ):
        self.w3 = w3
        self.address = to_checksum_address(registry)
        self.abi = abi if abi is not None else load_abi()
        self.contract = w3.eth.contract(address=self.address, abi=self.abi)
        self.deploy_block = deploy_block
        #: The most blocks one eth_getLogs may span (Besu's --rpc-max-logs-range; see rxchain.chain.logs).
        self.max_logs_range = max_logs_range
        self.decoder = RevertDecoder(self.abi)
        #: The transaction engine: nonces, the outbox, sending, receipts (shared by bulk paths).
        self.sender = TransactionSender(
            w3, decoder=self.decoder, outbox=outbox, events_of=self.contract, receipt_timeout=receipt_timeout
        )
        self.chain_id = self.sender.chain_id
        self.domain = RegistryDomain(self.chain_id, self.address)

    @property
    def outbox(self) -> Outbox:
        """Where every transaction this client signs is recorded before it is sent."""
        return self.sender.outbox

    @classmethod
    def connect(
        cls,
        network: str = "devnet",
        *,
        rpc_url: str | None = None,
        outbox_path: Path | str | None = None,
        resume: bool = True,
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
        """Raises :class:`~rxchain.errors.DeploymentMismatch` unless the node serves the recorded chain and code."""
        if self.chain_id != deployment.chain_id:
            raise errors.DeploymentMismatch(
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

    def allow_readmission(self, regulator: LocalAccount, account: str) -> TxResult:
        """Lifts the bar the regulator's revocation set on ``account``: its hospital may admit it again."""
        return self.transact(regulator, "allowReadmission", to_checksum_address(account))

    def reassign_custody(self, regulator: LocalAccount, rx_id: bytes, to: str) -> TxResult:
        """Moves what a revoked or lapsed pharmacy or courier holds to ``to``, a member of the same role in
        good standing; the status stays (CustodyReassigned)."""
        return self.transact(regulator, "reassignCustody", rx_id, to_checksum_address(to))

    def void_custody(self, regulator: LocalAccount, rx_id: bytes) -> TxResult:
        """Voids the fill a revoked or lapsed pharmacy or courier holds: the fills left become redeemable
        elsewhere, or the prescription is cancelled when none is left (CustodyVoided)."""
        return self.transact(regulator, "voidCustody", rx_id)

    def member(self, account: str) -> MemberRecord:
        """The on-chain record of ``account``."""
        roles, valid_until, hospital = self._call("member", to_checksum_address(account))
        return MemberRecord(
            to_checksum_address(account),
            roles_from_mask(roles),
            valid_until,
            None if hospital == ZERO_ADDRESS else hospital,
        )

    def has_role(self, account: str, role: str) -> bool:
        """True if ``account`` holds ``role`` with a live credential."""
        return bool(self._call("hasRole", role_id(role), to_checksum_address(account)))

    def members(self) -> list[MemberRecord]:
        """Every account ever admitted, with its current record (from MemberAdmitted events)."""
        logs = self.events("MemberAdmitted")
        seen: dict[str, None] = {}
        for log in logs:
            seen.setdefault(log["args"]["account"], None)
        return [self.member(account) for account in seen]

    # ------------------------------------------------------------------------------- events

    def head(self) -> int:
        """The node's latest block number."""
        return int(self.call_node(lambda: self.w3.eth.block_number))

    def events(
        self,
        name: str,
        *,
        from_block: int | None = None,
        to_block: int | None = None,
        argument_filters: dict | None = None,
    ) -> list:
        """The registry's decoded ``name`` events over a block range (default: deploy block to head),
        asked in windows a node with a range limit answers (:mod:`rxchain.chain.logs`)."""
        event = getattr(self.contract.events, name)
        start = self.deploy_block if from_block is None else from_block
        end = self.head() if to_block is None else to_block

        def fetch(a: int, b: int) -> list:
            return list(event().get_logs(from_block=a, to_block=b, argument_filters=argument_filters))

        return self.call_node(lambda: logs_in_windows(fetch, start, end, max_range=self.max_logs_range))

    def raw_logs(self, topics: list, *, from_block: int | None = None, to_block: int | None = None) -> list:
        """The registry's undecoded logs matching ``topics`` over a block range (default: deploy
        block to head), in windows as :meth:`events`."""
        start = self.deploy_block if from_block is None else from_block
        end = self.head() if to_block is None else to_block

        def fetch(a: int, b: int) -> list:
            return list(self.w3.eth.get_logs({"address": self.address, "fromBlock": a, "toBlock": b, "topics": topics}))

        return self.call_node(lambda: logs_in_windows(fetch, start, end, max_range=self.max_logs_range))

    # ------------------------------------------------------------------------ prescriptions

    def compute_id(
        self, doctor: str, doc_hash: bytes, designated_pharmacy: str | None, claim_key: str
    ) -> tuple[bytes, bytes]:
        """(id, terms) as the registry computes them (a view call; :mod:`rxchain.core.ids` does it offline)."""
        rx_id, terms = self._call(
            "computeId",
            to_checksum_address(doctor),
            doc_hash,
            _address_or_zero(designated_pharmacy),
            to_checksum_address(claim_key),
        )
        return RxId(rx_id), bytes(terms)

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

        claim_address = Account.from_key(claim_private_key).address
        rx_id, _ = self.compute_id(doctor, doc_hash, designated_pharmacy, claim_address)
        _, fills_left, batched = self.current_fill(rx_id, doctor)
        deadline = deadline if deadline is not None else self.latest_block_time() + DEFAULT_SIGNATURE_TTL
        signature = sign_redeem(claim_private_key, self.domain, rx_id, pharmacy.address, fills_left, deadline)
        args = [
            to_checksum_address(doctor),
            doc_hash,
            _address_or_zero(designated_pharmacy),
            claim_address,
            deadline,
            signature,
        ]
        if batched is not None:
            return rx_id, self.transact(pharmacy, "redeemBatched", *args, batched.root, batched.proof)
        return rx_id, self.transact(pharmacy, "redeem", *args)

    def current_fill(self, rx_id: bytes, doctor: str) -> tuple[PrescriptionState, int, Any]:
        """(state, fills left, batch proof or None): a batched prescription not yet opened has no record,
        so its fills come from its batch and its first redemption needs the proof (None when neither
        a record nor a batch names it: the registry will answer UnknownPrescription)."""
        from rxchain.core.batch import NotBatched, find_batch_proof

        state = self.prescription(rx_id)
        if state.exists:
            return state, state.fills_left, None
        try:
            batched = find_batch_proof(self, rx_id, doctor)
        except NotBatched:
            return state, state.fills_left, None
        return state, self.batch(self.member(doctor).hospital, batched.root)["fills"], batched

    def redeem_authorized(self, pharmacy: LocalAccount, auth: Authorization) -> tuple[bytes, TxResult]:
        """Redeems one fill with the patient's authorisation (from the patient's app, or a paper fill
        slip): checks first that it is for this pharmacy, this fill and still live (named errors,
        nothing sent), then sends it as it is; the claim key is never needed here."""
        doctor, designated = auth.parties
        state, fills_left, batched = self.current_fill(auth.rx_id, doctor)
        if state.exists or batched is not None:
            check_authorization(auth, pharmacy=pharmacy.address, fills_left=fills_left, now=self.latest_block_time())
        args = [
            to_checksum_address(doctor),
            auth.doc_hash,
            _address_or_zero(designated),
            auth.claim_key,
            auth.deadline,
            auth.signature,
        ]
        if batched is not None:
            return auth.rx_id, self.transact(pharmacy, "redeemBatched", *args, batched.root, batched.proof)
        return auth.rx_id, self.transact(pharmacy, "redeem", *args)

    def issue_batch(
        self, hospital: LocalAccount, ids: list[bytes], expires_at: int, *, fills: int = 1
    ) -> tuple[bytes, TxResult]:
        """Issues prescriptions ``ids`` (computed as for :meth:`issue`, each naming its doctor) in one
        transaction; returns the batch's Merkle root."""
        from rxchain.core.batch import merkle_root

        root = merkle_root(ids)
        result = self.transact(
            hospital,
            "issueBatch",
            list(ids),
            int(expires_at),
            int(fills),
            op_key=f"batch:{self.chain_id}:{self.address}:{root.hex()}",
        )
        return root, result

    def batch(self, hospital: str, root: bytes) -> dict:
        """``hospital``'s batch ``root``, as the registry records it (all zero when it issued none)."""
        issued_at, expires_at, fills, cancelled = self._call("batch", to_checksum_address(hospital), root)
        return {
            "hospital": to_checksum_address(hospital),
            "issuedAt": issued_at,
            "expiresAt": expires_at,
            "fills": fills,
            "cancelled": cancelled,
        }

    def dispatch(self, pharmacy: LocalAccount, rx_id: bytes, courier: str) -> TxResult:
        """The filling pharmacy hands the drugs to ``courier``."""
        return self.transact(pharmacy, "dispatch", rx_id, to_checksum_address(courier))

    def deliver(self, holder: LocalAccount, rx_id: bytes) -> TxResult:
        """The courier (or the pharmacy, over the counter) hands the drugs to the patient."""
        return self.transact(holder, "deliver", rx_id)

    def deliver_with_receipt(
        self,
        holder: LocalAccount,
        rx_id: bytes,
        terms: bytes,
        claim_private_key: bytes | str,
        deadline: int | None = None,
    ) -> TxResult:
        """Delivers and records the receipt signed with the claim key (the single-QR mode, where the
        holder saw the key) in one transaction; see :meth:`deliver_with_patient_receipt` for the
        receipt the patient's app or a paper slip gives."""
        state = self.prescription(rx_id)
        deadline = deadline if deadline is not None else self.latest_block_time() + DEFAULT_SIGNATURE_TTL
        signature = sign_receipt(claim_private_key, self.domain, rx_id, state.custodian, state.fills_left, deadline)
        return self.transact(holder, "deliverWithReceipt", rx_id, terms, deadline, signature)

    def confirm_receipt(
        self,
        relayer: LocalAccount,
        rx_id: bytes,
        terms: bytes,
        claim_private_key: bytes | str,
        deadline: int | None = None,
    ) -> TxResult:
        """Records the receipt of a delivered prescription, signed with the claim key (single-QR mode);
        any account may relay it."""
        state = self.prescription(rx_id)
        deadline = deadline if deadline is not None else self.latest_block_time() + DEFAULT_SIGNATURE_TTL
        signature = sign_receipt(claim_private_key, self.domain, rx_id, state.custodian, state.fills_left, deadline)
        return self.transact(relayer, "confirmReceipt", rx_id, terms, deadline, signature)

    def delivery_request(self, deliverer: str, rx_id: bytes, *, ttl: int = DEFAULT_SIGNATURE_TTL) -> DeliveryRequest:
        """What the deliverer shows the patient's app to have the receipt signed: this prescription,
        this fill, this deliverer, a fresh deadline."""
        state = self.prescription(rx_id)
        return DeliveryRequest(
            self.chain_id,
            self.address,
            RxId(rx_id),
            to_checksum_address(deliverer),
            state.fills_left,
            self.latest_block_time() + ttl,
        )

    def consent_request(self, pharmacy: str, *, ttl: int = DEFAULT_SIGNATURE_TTL) -> ConsentRequest:
        """What a pharmacy shows the patient's app to ask for consent to fill a prescription here."""
        return ConsentRequest(
            self.chain_id, self.address, to_checksum_address(pharmacy), self.latest_block_time() + ttl
        )

    def deliver_with_patient_receipt(self, holder: LocalAccount, receipt: Receipt) -> TxResult:
        """Delivers and records the receipt the patient gave at the hand-over (the patient's app, or a
        paper receipt slip), after checking it is for this hand-over (named errors, nothing sent)."""
        state = self.prescription(receipt.rx_id)
        check_receipt(receipt, deliverer=holder.address, fills_left=state.fills_left, now=self.latest_block_time())
        return self.transact(
            holder, "deliverWithReceipt", receipt.rx_id, receipt.terms, receipt.deadline, receipt.signature
        )

    def confirm_patient_receipt(self, relayer: LocalAccount, receipt: Receipt) -> TxResult:
        """Records the receipt the patient gave for a delivered prescription; any account may relay it."""
        state = self.prescription(receipt.rx_id)
        check_receipt(receipt, deliverer=state.custodian, fills_left=state.fills_left, now=self.latest_block_time())
        return self.transact(
            relayer, "confirmReceipt", receipt.rx_id, receipt.terms, receipt.deadline, receipt.signature
        )

    def pause(self, regulator: LocalAccount) -> TxResult:
        return self.transact(regulator, "pause")

    def unpause(self, regulator: LocalAccount) -> TxResult:
        return self.transact(regulator, "unpause")

    def prescription(self, rx_id: bytes) -> PrescriptionState:
        """The on-chain state of prescription ``rx_id``."""
        custodian, issued_at, expires_at, status, fills_left = self._call("prescription", rx_id)
        return PrescriptionState(str(RxId(rx_id)), custodian, issued_at, expires_at, Status(status), fills_left)

    def limits(self) -> dict:
        max_validity, max_fills, paused = self._call("limits")
        return {"maxValiditySeconds": max_validity, "maxFills": max_fills, "paused": paused}

    def latest_block_time(self) -> int:
        """The latest block's timestamp: the chain's idea of now."""
        return int(self.call_node(lambda: self.w3.eth.get_block("latest"))["timestamp"])

    def block_time(self, number: int) -> int:
        """A block's timestamp (cached)."""
        return self.sender.block_time(number)

    # --------------------------------------------------------------------------- transactions

    def transact(self, sender: LocalAccount, function: str, *args: Any, op_key: str | None = None) -> TxResult:
        """Calls registry ``function`` in one free-gas transaction through the engine (see
        :meth:`TransactionSender.transact`); raises the decoded error on refusal."""
        call = getattr(self.contract.functions, function)(*args)
        return self.sender.transact(sender, call, description=function, op_key=op_key)

    def resume_pending(self, sender: str | None = None) -> list[TxResult | errors.RxError]:
        """Puts on chain what this client's outbox signed and the node lacks
        (:meth:`TransactionSender.resume_pending`)."""
        return self.sender.resume_pending(sender)

    def explain(self, tx_hash: str, *, use_trace: bool = True) -> errors.RxError | None:
        """Why a mined transaction failed, as the named error; None when it succeeded."""
        return self.sender.explain(tx_hash, use_trace=use_trace)

    def decode_revert(self, data: str | bytes | None) -> errors.ContractRevert:
        """The named Python exception for a revert's return data."""
        return self.decoder.decode(data)

    def call_node(self, thunk):
        """Runs a node call, turning a dead connection into NodeUnavailable with the URL."""
        return self.sender.call_node(thunk)

    def _call(self, function: str, *args: Any):
        call = getattr(self.contract.functions, function)(*args)
        try:
            return self.call_node(call.call)
        except REVERTS as exc:
            raise self.decoder.from_exception(exc) from None


def _address_or_zero(address: str | None) -> str:
    return to_checksum_address(address) if address else ZERO_ADDRESS
