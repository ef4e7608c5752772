"""The typed client of DrugBoxes: lots, one-sale boxes and insurance claims, beside the registry.

A manufacturer registers and recalls lots (:meth:`BoxesClient.register_lot`, :meth:`BoxesClient.recall`);
the pharmacy holding a dispensed prescription records the fill's boxes from their codes and scratched
secrets (:meth:`BoxesClient.dispense`), after checking each one BEFORE anything is sent, so the
pharmacist hears why a box is refused (already dispensed, unknown, recalled, expired) and nothing is
written; anyone checks a box (:meth:`BoxesClient.check_box`); the pharmacy files one claim per
received fill and the insurer decides it (:meth:`BoxesClient.file_claim`, :meth:`BoxesClient.approve`,
:meth:`BoxesClient.reject`).

Transactions go through the registry client's :class:`~rxchain.chain.sender.TransactionSender`: one
owner of each sender's nonces and one outbox for both contracts; its revert decoder learns DrugBoxes'
errors, so refusals come back named (:mod:`rxchain.errors`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3.logs import DISCARD

from rxchain import errors
from rxchain.chain.client import RegistryClient, TxResult
from rxchain.chain.deployment import BOXES_CONTRACT, Deployment, load_abi, load_deployment
from rxchain.chain.reverts import RevertDecoder
from rxchain.core import boxes as core
from rxchain.core.ids import ZERO_ADDRESS, RxId
from rxchain.core.insurance import ClaimOpening, payment_reference, payment_reference_text
from rxchain.core.roles import role_id
from rxchain.core.status import Status

__all__ = ["BoxCheck", "BoxState", "BoxesClient", "ClaimStatus", "FillRecord", "LotState", "ScannedBox", "UnknownBox"]


class BoxState(IntEnum):
    """IDrugBoxes.BoxState."""

    UNKNOWN = 0
    UNSOLD = 1
    DISPENSED = 2
    RECALLED = 3
    EXPIRED = 4


class ClaimStatus(IntEnum):
    """IDrugBoxes.ClaimStatus."""

    NONE = 0
    FILED = 1
    APPROVED = 2
    REJECTED = 3
    PAID = 4
    VOID = 5


class UnknownBox(errors.Refused):
    """A scanned code and secret match no box of the lot files given: not genuine, mistyped, or its lot file is
    missing."""


class BoxesNotDeployed(errors.Unavailable):
    """The deployment record names no DrugBoxes contract."""


@dataclass(frozen=True)
class LotState:
    lot: str
    manufacturer: str | None
    expires_at: int
    count: int
    depth: int
    recalled: bool

    @property
    def exists(self) -> bool:
        return self.manufacturer is not None

    def as_json(self) -> dict:
        return {
            "lot": self.lot,
            "manufacturer": self.manufacturer,
            "expiresAt": self.expires_at,
            "count": self.count,
            "recalled": self.recalled,
        }


@dataclass(frozen=True)
class ScannedBox:
    """A box scanned at the counter, located in its lot."""

    code: str
    lot: core.Lot
    index: int
    nullifier: bytes


@dataclass(frozen=True)
class FillRecord:
    rx_id: str
    fills_left: int
    pharmacy: str | None
    boxes: int
    claim: ClaimStatus
    reason: int

    def as_json(self) -> dict:
        return {
            "id": self.rx_id,
            "fillsLeft": self.fills_left,
            "pharmacy": self.pharmacy,
            "boxes": self.boxes,
            "claim": self.claim.name.lower(),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class BoxCheck:
    """What a box's check says: its state and, once dispensed, when, at which pharmacy, for which prescription."""

    state: BoxState
    lot: str | None
    index: int | None
    nullifier: str
    dispensed: dict | None = None

    def as_json(self) -> dict:
        return {
            "state": self.state.name.lower(),
            "lot": self.lot,
            "index": self.index,
            "nullifier": self.nullifier,
            "dispensed": self.dispensed,
        }


class BoxesClient:
    """A typed client of one deployed DrugBoxes, sharing ``registry``'s transaction engine."""

    def __init__(self, registry: RegistryClient, address: str, *, abi: list[dict] | None = None):
        self.registry = registry
        self.w3 = registry.w3
        self.address = to_checksum_address(address)
        self.abi = abi if abi is not None else load_abi(BOXES_CONTRACT)
        self.contract = self.w3.eth.contract(address=self.address, abi=self.abi)
        merged = RevertDecoder(registry.abi + [item for item in self.abi if item.get("type") == "error"])
        registry.decoder = merged
        registry.sender.decoder = merged

    @classmethod
    def for_deployment(cls, registry: RegistryClient, deployment: Deployment) -> "BoxesClient":
        if not deployment.boxes:
            raise BoxesNotDeployed(
                f"no DrugBoxes is recorded for network {deployment.network!r}: deploy again (rx deploy --force)"
            )
        return cls(registry, deployment.boxes)

    @classmethod
    def connect(cls, registry: RegistryClient, network: str) -> "BoxesClient":
        return cls.for_deployment(registry, load_deployment(network))

    # ------------------------------------------------------------------------------------ lots

    def lot_state(self, root: bytes) -> LotState:
        manufacturer, expires_at, count, depth, recalled = self._call("lot", root)
        return LotState(
            "0x" + bytes(root).hex(),
            None if manufacturer == ZERO_ADDRESS else manufacturer,
            expires_at,
            count,
            depth,
            recalled,
        )

    def register_lot(self, manufacturer: LocalAccount, lot: core.Lot) -> TxResult:
        """Registers ``lot`` (its root, size and expiry); refuses first what the contract would refuse."""
        state = self.lot_state(lot.root)
        if state.exists:
            raise errors.LotAlreadyRegistered(
                "LotAlreadyRegistered", {"lot": lot.root, "manufacturer": state.manufacturer}
            )
        now = self.registry.latest_block_time()
        if lot.expires_at <= now:
            raise errors.InvalidLotExpiry("InvalidLotExpiry", {"expiresAt": lot.expires_at, "nowTime": now})
        self._check_role(manufacturer.address, "manufacturer")
        return self.transact(
            manufacturer,
            "registerLot",
            lot.root,
            lot.count,
            lot.expires_at,
            op_key=f"lot:{self.registry.chain_id}:{self.address}:{lot.root.hex()}",
        )

    def recall(self, sender: LocalAccount, root: bytes) -> TxResult:
        """Recalls lot ``root`` (its manufacturer in good standing, or the regulator)."""
        state = self.lot_state(root)
        if not state.exists:
            raise errors.UnknownLot("UnknownLot", {"lot": root})
        if state.recalled:
            raise errors.LotIsRecalled("LotIsRecalled", {"lot": root})
        return self.transact(sender, "recallLot", root)

    # ----------------------------------------------------------------------------------- boxes

    def locate(self, scanned: list[tuple[str, str]], lots: list[core.Lot]) -> list[ScannedBox]:
        """Each scanned (code, secret) located in one of ``lots``; :class:`UnknownBox` for one in none."""
        found = []
        for code, secret in scanned:
            nullifier = core.nullifier(code, secret)
            for lot in lots:
                index = lot.index_of(nullifier)
                if index is not None:
                    found.append(ScannedBox(core.check_code(code), lot, index, nullifier))
                    break
            else:
                raise UnknownBox(
                    f"box {core.check_code(code)}: its code and scratched secret match no box of the {len(lots)} lot "
                    "file(s) given: re-scan the code and the secret; if they are right, the box is not genuine "
                    "(do not dispense it)"
                )
        seen = set()
        for box in found:
            if box.nullifier in seen:
                raise errors.InvalidValue(f"box {box.code} was scanned twice: scan each box once")
            seen.add(box.nullifier)
        return found

    def check_dispense(self, pharmacy: str, rx_id: bytes, boxes: list[ScannedBox]) -> int:
        """Everything :meth:`dispense` would be refused for, checked on the chain's current state without
        sending; raises the contract's named error. Returns the fill's fills-left (its name)."""
        state = self.registry.prescription(rx_id)
        pharmacy = to_checksum_address(pharmacy)
        if not state.exists:
            raise errors.UnknownPrescription("UnknownPrescription", {"id": rx_id})
        if state.custodian != pharmacy:
            raise errors.NotCustodian("NotCustodian", {"id": rx_id, "caller": pharmacy, "custodian": state.custodian})
        if state.status is not Status.DISPENSED:
            raise errors.NotDispensed("NotDispensed", {"id": rx_id, "current": int(state.status)})
        self._check_role(pharmacy, "pharmacy")
        if self.fill(rx_id, state.fills_left).pharmacy is not None:
            raise errors.FillAlreadyRecorded("FillAlreadyRecorded", {"id": rx_id, "fillsLeft": state.fills_left})
        if not 1 <= len(boxes) <= 255:
            raise errors.InvalidBoxCount("InvalidBoxCount", {"count": len(boxes), "maximum": 255})
        now = self.registry.latest_block_time()
        lots: dict[bytes, LotState] = {}
        for box in boxes:
            root = box.lot.root
            if root not in lots:
                lots[root] = self.lot_state(root)
            lot = lots[root]
            if not lot.exists:
                raise errors.UnknownLot("UnknownLot", {"lot": root})
            if lot.recalled:
                raise errors.LotIsRecalled("LotIsRecalled", {"lot": root})
            if now > lot.expires_at:
                raise errors.LotExpired("LotExpired", {"lot": root, "expiresAt": lot.expires_at})
            if not self._call("isUnsold", root, box.index):
                raise errors.BoxAlreadyDispensed(
                    "BoxAlreadyDispensed", {"nullifier": box.nullifier, "lot": root, "index": box.index}
                )
        return state.fills_left

    def dispense_args(self, boxes: list[ScannedBox]) -> list[tuple]:
        """dispense()'s LotBoxes: one per lot, boxes by index, each with its multiproof."""
        groups: dict[bytes, list[ScannedBox]] = {}
        lots: dict[bytes, core.Lot] = {}
        for box in boxes:
            groups.setdefault(box.lot.root, []).append(box)
            lots[box.lot.root] = box.lot
        out = []
        for root, members in groups.items():
            members.sort(key=lambda b: b.index)
            indexes = [b.index for b in members]
            out.append((root, indexes, [b.nullifier for b in members], lots[root].multiproof(indexes)))
        return out

    def dispense(
        self, pharmacy: LocalAccount, rx_id: bytes, scanned: list[tuple[str, str]], lots: list[core.Lot]
    ) -> tuple[TxResult, list[bytes]]:
        """Records the fill's boxes (codes and scratched secrets) in one transaction, after checking each;
        returns the transaction and the nullifiers in the order recorded (what a claim names)."""
        boxes = self.locate(scanned, lots)
        fills_left = self.check_dispense(pharmacy.address, rx_id, boxes)
        args = self.dispense_args(boxes)
        result = self.transact(
            pharmacy,
            "dispense",
            rx_id,
            args,
            op_key=f"boxes:{self.registry.chain_id}:{self.address}:{bytes(rx_id).hex()}:{fills_left}",
        )
        return result, [n for group in args for n in group[2]]

    def check_box(self, code: str, secret: str, lots: list[core.Lot] = ()) -> BoxCheck:
        """A box's check by anyone: genuine and unsold, dispensed (when, where, for which prescription),
        recalled, expired, or unknown. Without the lot's file, only a dispensed box is recognised."""
        nullifier = core.nullifier(code, secret)
        dispensed = self.dispensed_record(nullifier)
        for lot in lots:
            index = lot.index_of(nullifier)
            if index is None:
                continue
            state = BoxState(self._call("boxState", lot.root, index, nullifier, lot.proof(index)))
            return BoxCheck(state, "0x" + lot.root.hex(), index, "0x" + nullifier.hex(), dispensed)
        state = BoxState.DISPENSED if dispensed else BoxState.UNKNOWN
        return BoxCheck(state, None, None, "0x" + nullifier.hex(), dispensed)

    def dispensed_record(self, nullifier: bytes) -> dict | None:
        """When, at which pharmacy and for which prescription the box with ``nullifier`` was dispensed (from
        the FillBoxesRecorded events); None when it never was."""
        for log in self.events("FillBoxesRecorded"):
            if bytes(nullifier) in [bytes(n) for n in log["args"]["nullifiers"]]:
                return {
                    "rxId": str(RxId(log["args"]["rxId"])),
                    "pharmacy": log["args"]["pharmacy"],
                    "fillsLeft": log["args"]["fillsLeft"],
                    "block": log["blockNumber"],
                    "time": self.registry.block_time(log["blockNumber"]),
                    "tx": "0x" + bytes(log["transactionHash"]).hex(),
                }
        return None

    # ---------------------------------------------------------------------------------- fills

    def fill(self, rx_id: bytes, fills_left: int) -> FillRecord:
        pharmacy, boxes, claim, reason = self._call("fill", rx_id, fills_left)
        return FillRecord(
            str(RxId(rx_id)),
            fills_left,
            None if pharmacy == ZERO_ADDRESS else pharmacy,
            boxes,
            ClaimStatus(claim),
            reason,
        )

    def fill_nullifiers(self, rx_id: bytes, fills_left: int) -> list[bytes]:
        """The nullifiers recorded for the fill, in order (from its FillBoxesRecorded event)."""
        for log in self.events("FillBoxesRecorded", argument_filters={"rxId": rx_id}):
            if log["args"]["fillsLeft"] == fills_left:
                return [bytes(n) for n in log["args"]["nullifiers"]]
        raise errors.NoBoxesRecorded("NoBoxesRecorded", {"id": rx_id, "fillsLeft": fills_left})

    # --------------------------------------------------------------------------------- claims

    def check_claim(self, pharmacy: str, rx_id: bytes, fills_left: int, insurer: str) -> FillRecord:
        """What :meth:`file_claim` would be refused for, checked without sending."""
        pharmacy = to_checksum_address(pharmacy)
        record = self.fill(rx_id, fills_left)
        if record.pharmacy is None:
            raise errors.NoBoxesRecorded("NoBoxesRecorded", {"id": rx_id, "fillsLeft": fills_left})
        if record.pharmacy != pharmacy:
            raise errors.NotFillPharmacy(
                "NotFillPharmacy",
                {"id": rx_id, "fillsLeft": fills_left, "caller": pharmacy, "pharmacy": record.pharmacy},
            )
        if record.claim is ClaimStatus.VOID:
            raise errors.FillIsVoid("FillIsVoid", {"id": rx_id, "fillsLeft": fills_left})
        if record.claim is not ClaimStatus.NONE:
            raise errors.ClaimAlreadyFiled(
                "ClaimAlreadyFiled", {"id": rx_id, "fillsLeft": fills_left, "claim": int(record.claim)}
            )
        self._check_role(pharmacy, "pharmacy")
        state = self.registry.prescription(rx_id)
        received = state.fills_left < fills_left or (
            state.fills_left == fills_left and state.status in (Status.COMPLETED, Status.REFILLABLE)
        )
        if not received:
            raise errors.FillNotReceived(
                "FillNotReceived",
                {
                    "id": rx_id,
                    "fillsLeft": fills_left,
                    "current": int(state.status),
                    "currentFillsLeft": state.fills_left,
                },
            )
        self._check_role(insurer, "insurer")
        return record

    def file_claim(
        self, pharmacy: LocalAccount, rx_id: bytes, fills_left: int, insurer: str, opening: ClaimOpening
    ) -> TxResult:
        """Files the claim for the fill with ``insurer``, committing to ``opening`` (kept off chain: send
        it to the insurer), with the fill's boxes as recorded."""
        insurer = to_checksum_address(insurer)
        self.check_claim(pharmacy.address, rx_id, fills_left, insurer)
        nullifiers = self.fill_nullifiers(rx_id, fills_left)
        return self.transact(
            pharmacy,
            "fileClaim",
            rx_id,
            fills_left,
            nullifiers,
            insurer,
            opening.commitment,
            op_key=f"claim:{self.registry.chain_id}:{self.address}:{bytes(rx_id).hex()}:{fills_left}",
        )

    def _check_pending(self, insurer: str, rx_id: bytes, fills_left: int) -> None:
        record = self.fill(rx_id, fills_left)
        if record.claim is not ClaimStatus.FILED:
            raise errors.ClaimNotPending(
                "ClaimNotPending", {"id": rx_id, "fillsLeft": fills_left, "claim": int(record.claim)}
            )
        filed = self.claim_events(rx_id, fills_left).get("filed")
        if filed and filed["insurer"] != to_checksum_address(insurer):
            raise errors.NotClaimInsurer("NotClaimInsurer", {"id": rx_id, "fillsLeft": fills_left, "caller": insurer})

    def approve(self, insurer: LocalAccount, rx_id: bytes, fills_left: int, reference: str | None) -> TxResult:
        """Approves the claim; with ``reference`` (up to 32 ASCII characters) the off-chain payment is stamped
        at once (Paid), without it the claim stays Approved until :meth:`record_payment`."""
        raw = payment_reference(reference) if reference is not None else bytes(32)
        self._check_pending(insurer.address, rx_id, fills_left)
        return self.transact(insurer, "approveClaim", rx_id, fills_left, raw)

    def record_payment(self, insurer: LocalAccount, rx_id: bytes, fills_left: int, reference: str) -> TxResult:
        """Stamps the off-chain payment's reference on an approved claim (Approved -> Paid)."""
        raw = payment_reference(reference)
        record = self.fill(rx_id, fills_left)
        if record.claim is not ClaimStatus.APPROVED:
            raise errors.ClaimNotApproved(
                "ClaimNotApproved", {"id": rx_id, "fillsLeft": fills_left, "claim": int(record.claim)}
            )
        filed = self.claim_events(rx_id, fills_left).get("filed")
        if filed and filed["insurer"] != to_checksum_address(insurer.address):
            raise errors.NotClaimInsurer(
                "NotClaimInsurer", {"id": rx_id, "fillsLeft": fills_left, "caller": insurer.address}
            )
        self._check_role(insurer.address, "insurer")
        return self.transact(insurer, "recordPayment", rx_id, fills_left, raw)

    def void_fill(self, regulator: LocalAccount, rx_id: bytes, fills_left: int) -> TxResult:
        """The regulator voids a fill whose pharmacy lost custody (``voidCustody``): it is never claimed."""
        record = self.fill(rx_id, fills_left)
        if record.pharmacy is None:
            raise errors.NoBoxesRecorded("NoBoxesRecorded", {"id": rx_id, "fillsLeft": fills_left})
        if record.claim is not ClaimStatus.NONE:
            raise errors.ClaimAlreadyFiled(
                "ClaimAlreadyFiled", {"id": rx_id, "fillsLeft": fills_left, "claim": int(record.claim)}
            )
        return self.transact(regulator, "voidFill", rx_id, fills_left)

    def report_duplicate(self, pharmacy: LocalAccount, box: ScannedBox) -> TxResult:
        """Reports a scanned box found already dispensed (the "returned drug" alarm the regulator reads)."""
        self._check_role(pharmacy.address, "pharmacy")
        if self._call("isUnsold", box.lot.root, box.index):
            raise errors.BoxNotDispensed("BoxNotDispensed", {"lot": box.lot.root, "index": box.index})
        return self.transact(
            pharmacy, "reportDuplicate", box.lot.root, box.index, box.nullifier, box.lot.proof(box.index)
        )

    def duplicates_of(self, scanned: list[ScannedBox]) -> list[ScannedBox]:
        """The scanned boxes the chain shows dispensed already."""
        return [box for box in scanned if not self._call("isUnsold", box.lot.root, box.index)]

    def reject(self, insurer: LocalAccount, rx_id: bytes, fills_left: int, reason: int) -> TxResult:
        """Rejects the claim with reason code ``reason`` (1..255)."""
        if not 1 <= int(reason) <= 255:
            raise errors.InvalidValue(f"a rejection's reason code is 1 to 255 (got {reason})")
        self._check_pending(insurer.address, rx_id, fills_left)
        return self.transact(insurer, "rejectClaim", rx_id, fills_left, int(reason))

    def claim_events(self, rx_id: bytes, fills_left: int) -> dict:
        """The claim's events for the fill: filed (pharmacy, insurer, commitment, time), and its decision."""
        out: dict = {}
        for name, key in (
            ("ClaimFiled", "filed"),
            ("ClaimApproved", "approved"),
            ("ClaimPaid", "paid"),
            ("ClaimRejected", "rejected"),
        ):
            for log in self.events(name, argument_filters={"rxId": rx_id}):
                if log["args"]["fillsLeft"] != fills_left:
                    continue
                args = {k: v for k, v in dict(log["args"]).items() if k not in ("rxId", "fillsLeft")}
                for k, v in list(args.items()):
                    if k == "paymentReference":
                        args[k] = payment_reference_text(v)
                    elif isinstance(v, (bytes, bytearray)):
                        args[k] = "0x" + bytes(v).hex()
                args["time"] = self.registry.block_time(log["blockNumber"])
                args["tx"] = "0x" + bytes(log["transactionHash"]).hex()
                out[key] = args
        return out

    # ------------------------------------------------------------------------------ plumbing

    def events(self, name: str, *, argument_filters: dict | None = None) -> list:
        """DrugBoxes' decoded ``name`` events from the deployment block to head (in windows, as the registry's)."""
        from rxchain.chain.logs import logs_in_windows

        event = getattr(self.contract.events, name)
        start, end = self.registry.deploy_block, self.registry.head()

        def fetch(a: int, b: int) -> list:
            return list(event().get_logs(from_block=a, to_block=b, argument_filters=argument_filters))

        return self.registry.call_node(
            lambda: logs_in_windows(fetch, start, end, max_range=self.registry.max_logs_range)
        )

    def receipt_events(self, result: TxResult) -> list[dict]:
        """DrugBoxes' events in a mined transaction, in log order."""
        receipt = self.registry.call_node(lambda: self.w3.eth.get_transaction_receipt(result.tx_hash))
        out = []
        for event in self.contract.events:
            for log in event().process_receipt(receipt, errors=DISCARD):
                if log["address"] == self.address:
                    out.append({"event": log["event"], "args": dict(log["args"]), "logIndex": log["logIndex"]})
        return sorted(out, key=lambda e: e["logIndex"])

    def transact(self, sender: LocalAccount, function: str, *args, op_key: str | None = None) -> TxResult:
        call = getattr(self.contract.functions, function)(*args)
        return self.registry.sender.transact(sender, call, description=function, op_key=op_key)

    def _check_role(self, account: str, role: str) -> None:
        if not self.registry.has_role(account, role):
            raise errors.NotInGoodStanding(
                "NotInGoodStanding", {"account": to_checksum_address(account), "role": role_id(role)}
            )

    def _call(self, function: str, *args):
        from rxchain.chain.reverts import REVERTS

        call = getattr(self.contract.functions, function)(*args)
        try:
            return self.registry.call_node(call.call)
        except REVERTS as exc:
            raise self.registry.decoder.from_exception(exc) from None
