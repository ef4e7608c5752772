"""A scripted DrugBoxes workload for the indexer and the console: every claim outcome and every alarm.

Played through the Python clients (:class:`~rxchain.chain.boxes.BoxesClient` and the registry's
workflow) on a registry with DrugBoxes beside it, on a development chain (chain time moves forward a
day before the second duplicate scan, ``evm_increaseTime``):

- three lots by the manufacturer: A (8 boxes), B (4 boxes, recalled by the manufacturer) and C, a
  cloned lot: 2 boxes, the first with the same code and secret as A's last box;
- seven fills with their boxes: four received and claimed with the insurer — one approved with its
  payment reference (paid), one approved with the payment to follow, one rejected (reason 3), one
  left pending; one fill voided by the regulator after it voided the custody of its revoked
  pharmacy; and two fills never claimed, which sold the cloned box once from A and once from C;
- two duplicate scans (the "returned drug" alarm), by two pharmacies on two UTC days, of boxes
  sold in the paid and the approved fill.

It returns what it did (:class:`BoxesScenario`), so tests know every figure without reading the index.
The two pharmacies are ``pharmacy`` and ``pharmacy2``; ``pharmacy2`` ends revoked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount

from rxchain.chain.boxes import BoxesClient
from rxchain.chain.client import RegistryClient
from rxchain.core import boxes as core
from rxchain.core.insurance import ClaimOpening
from rxchain.dev.demo import demo_document
from rxchain.workflow import confirm_payload_receipt, issue_prescription, redeem_payload

DAY = 86400
YEAR = 365 * DAY


@dataclass
class BoxFill:
    """One fill whose boxes were recorded, and what became of its claim."""

    rx_id: str  # 0x-hex, lower case
    fills_left: int
    pharmacy: str
    boxes: int
    claim: str  # none, filed, approved, paid, rejected, void
    payment_reference: str | None = None
    reason: int | None = None
    nullifiers: list[str] = field(default_factory=list)
    recorded_at: int = 0


@dataclass
class Duplicate:
    lot: str
    index: int
    nullifier: str
    pharmacy: str
    scanned_at: int
    first_rx_id: str
    first_pharmacy: str
    first_at: int


@dataclass
class BoxesScenario:
    boxes: str  # DrugBoxes' address
    manufacturer: str
    insurer: str
    lots: dict[str, int]  # root -> box count
    recalled: list[str]  # roots
    fills: list[BoxFill]
    duplicates: list[Duplicate]  # in the order reported
    cloned_nullifier: str
    cloned_fills: list[tuple[str, int]]  # (rx id, fills left), first sale first

    def claims(self) -> dict[str, int]:
        """The claim counts as the console gives them."""
        count = lambda *states: sum(1 for f in self.fills if f.claim in states)
        return {
            "fillsWithBoxes": len(self.fills),
            "unclaimed": count("none"),
            "filed": count("filed", "approved", "paid", "rejected"),
            "pending": count("filed"),
            "approved": count("approved", "paid"),
            "awaitingPayment": count("approved"),
            "paid": count("paid"),
            "rejected": count("rejected"),
            "void": count("void"),
        }


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def run_boxes_workload(registry: RegistryClient, boxes: BoxesClient, ids: dict[str, LocalAccount]) -> BoxesScenario:
    """Plays the scenario (see the module's docstring) on ``registry`` and its DrugBoxes ``boxes``."""
    manufacturer, insurer, regulator = ids["manufacturer"], ids["insurer"], ids["regulator"]
    pharmacy, pharmacy2, doctor = ids["pharmacy"], ids["pharmacy2"], ids["doctor"]
    expires = registry.latest_block_time() + YEAR

    def made(first: int, count: int) -> list[core.Box]:
        return [
            core.Box(i, f"{83_000_000_000_000_000_000 + first * 1000 + i:020d}", core.new_secret())
            for i in range(count)
        ]

    a_boxes, b_boxes = made(1, 8), made(2, 4)
    c_boxes = [core.Box(0, a_boxes[7].code, a_boxes[7].secret), made(3, 2)[1]]
    lot_a = core.Lot.from_boxes(a_boxes, expires)
    lot_b = core.Lot.from_boxes(b_boxes, expires)
    lot_c = core.Lot.from_boxes(c_boxes, expires)
    for lot in (lot_a, lot_b, lot_c):
        boxes.register_lot(manufacturer, lot)
    boxes.recall(manufacturer, lot_b.root)

    fills: list[BoxFill] = []

    def dispense(who: LocalAccount, chosen: list[core.Box], lot: core.Lot, *, fills_total: int = 1):
        issued = issue_prescription(
            registry, doctor, demo_document(doctor.address, registry.latest_block_time()), fills=fills_total
        )
        redeem_payload(registry, who, issued.payload_text)
        tx, nullifiers = boxes.dispense(who, issued.rx_id, [(b.code, b.secret) for b in chosen], [lot])
        fill = BoxFill(
            _hex(issued.rx_id),
            fills_total - 1,
            who.address,
            len(chosen),
            "none",
            nullifiers=[_hex(n) for n in nullifiers],
            recorded_at=tx.block_time,
        )
        fills.append(fill)
        return issued, fill

    def received(who: LocalAccount, issued) -> None:
        registry.deliver(who, issued.rx_id)
        confirm_payload_receipt(registry, who, issued.payload_text)

    def filed(who: LocalAccount, issued, fill: BoxFill, reference: str) -> None:
        received(who, issued)
        opening = ClaimOpening.new({"total": 12_800, "copay": 2_560}, reference)
        boxes.file_claim(who, issued.rx_id, fill.fills_left, insurer.address, opening)
        fill.claim = "filed"

    paid_rx, paid = dispense(pharmacy, a_boxes[0:2], lot_a)
    filed(pharmacy, paid_rx, paid, "INS-0001")
    boxes.approve(insurer, paid_rx.rx_id, 0, "PAY-2026-0001")
    paid.claim, paid.payment_reference = "paid", "PAY-2026-0001"

    approved_rx, approved = dispense(pharmacy, a_boxes[2:3], lot_a)
    filed(pharmacy, approved_rx, approved, "INS-0002")
    boxes.approve(insurer, approved_rx.rx_id, 0, None)
    approved.claim = "approved"

    rejected_rx, rejected = dispense(pharmacy2, a_boxes[3:5], lot_a)
    filed(pharmacy2, rejected_rx, rejected, "INS-0003")
    boxes.reject(insurer, rejected_rx.rx_id, 0, 3)
    rejected.claim, rejected.reason = "rejected", 3

    pending_rx, pending = dispense(pharmacy2, a_boxes[5:6], lot_a)
    filed(pharmacy2, pending_rx, pending, "INS-0004")

    first_clone_rx, first_clone = dispense(pharmacy, a_boxes[7:8], lot_a)
    _second_clone_rx, second_clone = dispense(pharmacy2, c_boxes[0:1], lot_c)

    duplicates: list[Duplicate] = []

    def report(who: LocalAccount, box: core.Box, sold: BoxFill) -> None:
        scanned = boxes.locate([(box.code, box.secret)], [lot_a])[0]
        tx = boxes.report_duplicate(who, scanned)
        duplicates.append(
            Duplicate(
                _hex(lot_a.root),
                box.index,
                _hex(scanned.nullifier),
                who.address,
                tx.block_time,
                sold.rx_id,
                sold.pharmacy,
                sold.recorded_at,
            )
        )

    report(pharmacy, a_boxes[0], paid)
    _advance(registry, DAY)
    report(pharmacy2, a_boxes[2], approved)

    voided_rx, voided = dispense(pharmacy2, a_boxes[6:7], lot_a, fills_total=2)
    registry.revoke(regulator, pharmacy2.address, "pharmacy")
    registry.void_custody(regulator, voided_rx.rx_id)
    boxes.void_fill(regulator, voided_rx.rx_id, voided.fills_left)
    voided.claim = "void"

    return BoxesScenario(
        boxes=boxes.address,
        manufacturer=manufacturer.address,
        insurer=insurer.address,
        lots={_hex(lot.root): len(lot.leaves) for lot in (lot_a, lot_b, lot_c)},
        recalled=[_hex(lot_b.root)],
        fills=fills,
        duplicates=duplicates,
        cloned_nullifier=first_clone.nullifiers[0],
        cloned_fills=[(first_clone.rx_id, 0), (second_clone.rx_id, 0)],
    )


def _advance(registry: RegistryClient, seconds: int) -> None:
    """Moves chain time forward (a development chain's evm_increaseTime) and mines a block."""
    for method, params in (("evm_increaseTime", [int(seconds)]), ("evm_mine", [])):
        reply = registry.w3.provider.make_request(method, params)
        if "error" in reply:
            raise RuntimeError(f"{method} refused ({reply['error'].get('message')}): a development chain is needed")
