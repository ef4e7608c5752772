"""Drug boxes: one box, one sale.

Spec: IDrugBoxes.registerLot / recallLot / dispense / boxState. A manufacturer registers a lot as the
root of a positional Merkle tree over its boxes' leaves; the pharmacy that holds a Dispensed
prescription spends the fill's boxes once, for good, in one transaction. Every refusal is checked as
the attacker holding everything it legitimately saw (a pharmacy that scanned a box's code and secret
at a dispense, a manufacturer with its own lots).
"""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import keccak

from rxchain.core import boxes as core

from .boxkit import (
    MANUFACTURER_ROLE,
    PHARMACY_ROLE_ID,
    contract_events,
    dispense_group,
    lot_boxes,
)
from .conftest import DAY, HOUR, Status, normalise, travel_to

BOX_UNKNOWN, BOX_UNSOLD, BOX_DISPENSED, BOX_RECALLED, BOX_EXPIRED = range(5)


def dispensed_rx(clinic, pharmacy, **issue):
    return clinic.dispensed(pharmacy=pharmacy, **issue)


# ------------------------------------------------------------------------------------- lots


def test_a_manufacturer_registers_a_lot_and_every_box_starts_unsold(drug_boxes, factory, manufacturer, chain):
    lot = factory.lot(300)  # one full bitmap word and a partial one
    tx_events = contract_events(lot.register_tx, drug_boxes)
    assert tx_events == [
        (
            "LotRegistered",
            {
                "lot": normalise(lot.root),
                "manufacturer": manufacturer.address,
                "count": 300,
                "expiresAt": lot.expires_at,
            },
        )
    ]
    assert drug_boxes.lot(lot.root) == (manufacturer.address, lot.expires_at, 300, 9, False)
    assert all(drug_boxes.isUnsold(lot.root, i) for i in (0, 1, 255, 256, 299))
    assert not drug_boxes.isUnsold(lot.root, 300)  # past the lot's last box
    box = lot.boxes[257]
    assert drug_boxes.boxState(lot.root, 257, box.nullifier, lot.proof(257)) == BOX_UNSOLD


def test_a_one_box_lot_is_its_own_leaf(drug_boxes, factory, clinic, pharmacy):
    lot = factory.lot(1)
    assert lot.root == core.box_leaf(lot.boxes[0].nullifier)
    rx = dispensed_rx(clinic, pharmacy)
    drug_boxes.dispense(rx.id, [dispense_group(lot, lot.boxes)], sender=pharmacy)
    assert not drug_boxes.isUnsold(lot.root, 0)


@pytest.mark.parametrize("who", ["pharmacy", "stranger", "insurer", "regulator"])
def test_only_a_manufacturer_registers_lots(drug_boxes, reverts, chain, parties, insurer, who):
    account = insurer if who == "insurer" else parties[who]
    root = keccak(text=f"a lot root {who}")
    with reverts(drug_boxes.NotInGoodStanding, account=account, role=MANUFACTURER_ROLE):
        drug_boxes.registerLot(root, 10, chain.pending_timestamp + DAY, sender=account)
    assert drug_boxes.lot(root).manufacturer == "0x" + "00" * 20


def test_a_revoked_manufacturer_registers_nothing(drug_boxes, registry, reverts, chain, regulator, manufacturer):
    registry.revokeRole(MANUFACTURER_ROLE, manufacturer, sender=regulator)
    with reverts(drug_boxes.NotInGoodStanding, account=manufacturer, role=MANUFACTURER_ROLE):
        drug_boxes.registerLot(keccak(text="lot"), 10, chain.pending_timestamp + DAY, sender=manufacturer)


def test_bad_lots_are_refused(drug_boxes, factory, reverts, chain, manufacturer, other_manufacturer):
    later = chain.pending_timestamp + DAY
    with reverts(drug_boxes.ZeroLotRoot):
        drug_boxes.registerLot(bytes(32), 10, later, sender=manufacturer)
    with reverts(drug_boxes.InvalidLotSize, count=0, maximum=65_536):
        drug_boxes.registerLot(keccak(text="empty"), 0, later, sender=manufacturer)
    with reverts(drug_boxes.InvalidLotSize, count=65_537, maximum=65_536):
        drug_boxes.registerLot(keccak(text="huge"), 65_537, later, sender=manufacturer)
    chain.pending_timestamp += 10
    now = chain.pending_timestamp
    with reverts(drug_boxes.InvalidLotExpiry, expiresAt=now, nowTime=now):
        drug_boxes.registerLot(keccak(text="stale"), 10, now, sender=manufacturer)
    lot = factory.lot(4)
    # the same root again, by anyone: refused, the first registration stands
    with reverts(drug_boxes.LotAlreadyRegistered, lot=lot.root, manufacturer=manufacturer):
        drug_boxes.registerLot(lot.root, 4, later, sender=other_manufacturer)
    assert drug_boxes.lot(lot.root).manufacturer == manufacturer.address


# ---------------------------------------------------------------------------------- dispense


def test_a_genuine_box_is_dispensed_once(drug_boxes, factory, clinic, registry, pharmacy):
    lot = factory.lot(8)
    rx = dispensed_rx(clinic, pharmacy)
    box = lot.boxes[3]
    tx = drug_boxes.dispense(rx.id, [dispense_group(lot, [box])], sender=pharmacy)
    assert contract_events(tx, drug_boxes) == [
        (
            "FillBoxesRecorded",
            {
                "rxId": normalise(rx.id),
                "pharmacy": pharmacy.address,
                "fillsLeft": 0,
                "nullifiers": normalise([box.nullifier]),
            },
        ),
    ]
    assert not drug_boxes.isUnsold(lot.root, 3)
    assert drug_boxes.isUnsold(lot.root, 2) and drug_boxes.isUnsold(lot.root, 4)
    assert drug_boxes.fill(rx.id, 0) == (pharmacy.address, 1, 0, 0)
    assert drug_boxes.boxState(lot.root, 3, box.nullifier, lot.proof(3)) == BOX_DISPENSED


def test_a_box_dispensed_once_is_refused_for_good(drug_boxes, factory, clinic, reverts, pharmacy, other_pharmacy):
    lot = factory.lot(8)
    box = lot.boxes[5]
    first = dispensed_rx(clinic, pharmacy)
    drug_boxes.dispense(first.id, [dispense_group(lot, [box])], sender=pharmacy)

    # another pharmacy, another prescription, the same box (a resold "returned" box)
    second = dispensed_rx(clinic, other_pharmacy)
    with reverts(drug_boxes.BoxAlreadyDispensed, nullifier=box.nullifier, lot=lot.root, index=5):
        drug_boxes.dispense(second.id, [dispense_group(lot, [box])], sender=other_pharmacy)
    # the pharmacy that scanned its code and secret at the first dispense, for another prescription of its own
    third = dispensed_rx(clinic, pharmacy)
    with reverts(drug_boxes.BoxAlreadyDispensed, nullifier=box.nullifier, lot=lot.root, index=5):
        drug_boxes.dispense(third.id, [dispense_group(lot, [lot.boxes[4], box])], sender=pharmacy)
    assert drug_boxes.isUnsold(lot.root, 4)  # the refused transaction spent nothing
    assert drug_boxes.fill(third.id, 0) == ("0x" + "00" * 20, 0, 0, 0)


def test_a_fill_records_its_boxes_once(drug_boxes, factory, clinic, reverts, pharmacy):
    lot = factory.lot(8)
    rx = dispensed_rx(clinic, pharmacy)
    drug_boxes.dispense(rx.id, [dispense_group(lot, lot.boxes[:2])], sender=pharmacy)
    with reverts(drug_boxes.FillAlreadyRecorded, id=rx.id, fillsLeft=0):
        drug_boxes.dispense(rx.id, [dispense_group(lot, lot.boxes[2:3])], sender=pharmacy)
    assert drug_boxes.isUnsold(lot.root, 2)


def test_each_fill_of_a_refillable_prescription_records_its_own_boxes(
    drug_boxes, factory, clinic, pharmacy, other_pharmacy, courier
):
    lot = factory.lot(8)
    rx = clinic.dispensed(pharmacy=pharmacy, fills=2)
    drug_boxes.dispense(rx.id, [dispense_group(lot, lot.boxes[:2])], sender=pharmacy)
    clinic.received(rx, pharmacy=pharmacy, courier=courier)
    assert clinic.state(rx).status == Status.REFILLABLE
    clinic.redeem(rx, other_pharmacy)
    drug_boxes.dispense(rx.id, [dispense_group(lot, lot.boxes[2:5])], sender=other_pharmacy)
    assert drug_boxes.fill(rx.id, 1) == (pharmacy.address, 2, 0, 0)
    assert drug_boxes.fill(rx.id, 0) == (other_pharmacy.address, 3, 0, 0)


def test_a_fill_of_five_boxes_from_two_lots_in_one_transaction(drug_boxes, factory, clinic, pharmacy):
    a, b = factory.lot(300), factory.lot(40)
    rx = dispensed_rx(clinic, pharmacy)
    groups = [dispense_group(a, [a.boxes[i] for i in (3, 4, 200, 256)]), dispense_group(b, [b.boxes[39]])]
    tx = drug_boxes.dispense(rx.id, groups, sender=pharmacy)
    [(name, args)] = contract_events(tx, drug_boxes)
    assert name == "FillBoxesRecorded"
    assert args["nullifiers"] == normalise([n for group in groups for n in group[2]])
    assert [drug_boxes.isUnsold(a.root, i) for i in (2, 3, 4, 5, 200, 255, 256)] == [
        True,
        False,
        False,
        True,
        False,
        True,
        False,
    ]
    assert not drug_boxes.isUnsold(b.root, 39)
    assert drug_boxes.fill(rx.id, 0).boxes == 5


def test_a_forged_code_without_the_secret_is_refused(drug_boxes, factory, clinic, reverts, pharmacy):
    lot = factory.lot(8)
    rx = dispensed_rx(clinic, pharmacy)
    real = lot.boxes[2]
    # the printed code copied, a guessed secret: its nullifier is no leaf of the lot
    forged = core.Box(2, real.code, core.new_secret())
    with reverts(drug_boxes.NotInLot, lot=lot.root):
        drug_boxes.dispense(rx.id, [(lot.root, [2], [forged.nullifier], lot.proof(2))], sender=pharmacy)
    # a genuine box claimed at another index of its lot
    with reverts(drug_boxes.NotInLot, lot=lot.root):
        drug_boxes.dispense(rx.id, [(lot.root, [3], [real.nullifier], lot.proof(3))], sender=pharmacy)
    # a genuine leaf passed as the nullifier (the leaf is public in the lot file)
    with reverts(drug_boxes.NotInLot, lot=lot.root):
        drug_boxes.dispense(rx.id, [(lot.root, [2], [lot.leaves[2]], lot.proof(2))], sender=pharmacy)
    # an inner node passed off as a box one level up
    with reverts(drug_boxes.NotInLot, lot=lot.root):
        inner = keccak(lot.leaves[2] + lot.leaves[3])
        drug_boxes.dispense(rx.id, [(lot.root, [1], [inner], lot.proof(2)[1:])], sender=pharmacy)
    assert drug_boxes.isUnsold(lot.root, 2)
    assert drug_boxes.boxState(lot.root, 2, forged.nullifier, lot.proof(2)) == BOX_UNKNOWN


def test_a_box_of_one_lot_shown_against_another_is_refused(drug_boxes, factory, clinic, reverts, pharmacy):
    a, b = factory.lot(8), factory.lot(8)
    rx = dispensed_rx(clinic, pharmacy)
    with reverts(drug_boxes.NotInLot, lot=b.root):
        drug_boxes.dispense(rx.id, [(b.root, [1], [a.boxes[1].nullifier], a.proof(1))], sender=pharmacy)


def test_box_indexes_must_be_in_the_lot_and_increasing(drug_boxes, factory, clinic, reverts, pharmacy):
    lot = factory.lot(6)
    rx = dispensed_rx(clinic, pharmacy)
    n = [b.nullifier for b in lot.boxes]
    with reverts(drug_boxes.BadBoxIndex, lot=lot.root, index=6, count=6):
        drug_boxes.dispense(rx.id, [(lot.root, [6], [n[0]], lot.proof(0))], sender=pharmacy)
    with reverts(drug_boxes.BadBoxIndex, lot=lot.root, index=1, count=6):
        drug_boxes.dispense(rx.id, [(lot.root, [2, 1], [n[2], n[1]], lot.multiproof([1, 2]))], sender=pharmacy)
    # the same box twice in one fill
    with reverts(drug_boxes.BadBoxIndex, lot=lot.root, index=2, count=6):
        drug_boxes.dispense(rx.id, [(lot.root, [2, 2], [n[2], n[2]], lot.proof(2))], sender=pharmacy)
    with reverts(drug_boxes.LengthMismatch, indexes=2, nullifiers=1):
        drug_boxes.dispense(rx.id, [(lot.root, [1, 2], [n[1]], lot.multiproof([1, 2]))], sender=pharmacy)
    with reverts(drug_boxes.InvalidBoxCount, count=0, maximum=255):
        drug_boxes.dispense(rx.id, [], sender=pharmacy)
    # a lot named with no box of it, beside a genuine box
    with reverts(drug_boxes.InvalidBoxCount, count=0, maximum=255):
        drug_boxes.dispense(rx.id, [dispense_group(lot, lot.boxes[:1]), (lot.root, [], [], [])], sender=pharmacy)
    # the same box in two groups of one fill
    with reverts(drug_boxes.BoxAlreadyDispensed, nullifier=n[3], lot=lot.root, index=3):
        drug_boxes.dispense(
            rx.id, [dispense_group(lot, lot.boxes[3:4]), dispense_group(lot, lot.boxes[3:4])], sender=pharmacy
        )
    with reverts(drug_boxes.InvalidBoxCount, count=256, maximum=255):
        drug_boxes.dispense(rx.id, [dispense_group(lot, lot.boxes[:1])] * 256, sender=pharmacy)


def test_a_proof_too_long_or_too_short_is_refused(drug_boxes, factory, clinic, reverts, pharmacy):
    lot = factory.lot(8)
    rx = dispensed_rx(clinic, pharmacy)
    box = lot.boxes[1]
    with reverts(drug_boxes.NotInLot, lot=lot.root):
        drug_boxes.dispense(rx.id, [(lot.root, [1], [box.nullifier], lot.proof(1) + [bytes(32)])], sender=pharmacy)
    with reverts(drug_boxes.NotInLot, lot=lot.root):
        drug_boxes.dispense(rx.id, [(lot.root, [1], [box.nullifier], lot.proof(1)[:-1])], sender=pharmacy)


def test_unknown_lots_are_refused(drug_boxes, factory, clinic, reverts, pharmacy):
    factory_boxes = lot_boxes(4)
    lot = core.Lot.from_boxes(factory_boxes)  # never registered
    rx = dispensed_rx(clinic, pharmacy)
    with reverts(drug_boxes.UnknownLot, lot=lot.root):
        drug_boxes.dispense(rx.id, [dispense_group(lot, factory_boxes[:1])], sender=pharmacy)
    assert drug_boxes.boxState(lot.root, 0, factory_boxes[0].nullifier, lot.proof(0)) == BOX_UNKNOWN


def test_a_recalled_lot_is_refused(drug_boxes, factory, clinic, reverts, pharmacy, manufacturer):
    lot = factory.lot(8)
    rx = dispensed_rx(clinic, pharmacy)
    tx = drug_boxes.recallLot(lot.root, sender=manufacturer)
    assert contract_events(tx, drug_boxes) == [
        ("LotRecalled", {"lot": normalise(lot.root), "by": manufacturer.address})
    ]
    with reverts(drug_boxes.LotIsRecalled, lot=lot.root):
        drug_boxes.dispense(rx.id, [dispense_group(lot, lot.boxes[:1])], sender=pharmacy)
    assert drug_boxes.boxState(lot.root, 0, lot.boxes[0].nullifier, lot.proof(0)) == BOX_RECALLED


def test_who_may_recall_a_lot(
    drug_boxes, factory, reverts, registry, regulator, manufacturer, other_manufacturer, pharmacy, insurer
):
    lot = factory.lot(4)
    for attacker in (other_manufacturer, pharmacy, insurer):
        with reverts(drug_boxes.NotLotManufacturer, lot=lot.root, caller=attacker):
            drug_boxes.recallLot(lot.root, sender=attacker)
    assert not drug_boxes.lot(lot.root).recalled
    drug_boxes.recallLot(lot.root, sender=regulator)
    assert drug_boxes.lot(lot.root).recalled
    with reverts(drug_boxes.LotIsRecalled, lot=lot.root):
        drug_boxes.recallLot(lot.root, sender=manufacturer)
    with reverts(drug_boxes.UnknownLot, lot=keccak(text="no such lot")):
        drug_boxes.recallLot(keccak(text="no such lot"), sender=regulator)
    # a manufacturer the regulator revoked no longer recalls its own lots
    other = factory.lot(4)
    registry.revokeRole(MANUFACTURER_ROLE, manufacturer, sender=regulator)
    with reverts(drug_boxes.NotLotManufacturer, lot=other.root, caller=manufacturer):
        drug_boxes.recallLot(other.root, sender=manufacturer)


def test_an_expired_lot_is_refused(drug_boxes, factory, clinic, reverts, chain, pharmacy):
    lot = factory.lot(8, expires_in=2 * DAY)
    travel_to(chain, lot.expires_at + 1)
    rx = dispensed_rx(clinic, pharmacy)
    with reverts(drug_boxes.LotExpired, lot=lot.root, expiresAt=lot.expires_at):
        drug_boxes.dispense(rx.id, [dispense_group(lot, lot.boxes[:1])], sender=pharmacy)
    assert drug_boxes.boxState(lot.root, 0, lot.boxes[0].nullifier, lot.proof(0)) == BOX_EXPIRED


def test_a_lot_is_dispensable_up_to_its_expiry_second(drug_boxes, factory, clinic, chain, pharmacy):
    lot = factory.lot(8, expires_in=2 * DAY)
    rx = dispensed_rx(clinic, pharmacy)
    chain.pending_timestamp = lot.expires_at
    drug_boxes.dispense(rx.id, [dispense_group(lot, lot.boxes[:1])], sender=pharmacy)


# ------------------------------------------------------------------------- who may dispense


def test_only_the_pharmacy_holding_the_dispensed_prescription_records_boxes(
    drug_boxes, factory, clinic, reverts, doctor, pharmacy, other_pharmacy, courier
):
    lot = factory.lot(8)
    group = [dispense_group(lot, lot.boxes[:1])]
    unknown = keccak(text="no such prescription")
    with reverts(drug_boxes.UnknownPrescription, id=unknown):
        drug_boxes.dispense(unknown, group, sender=pharmacy)
    active = clinic.issue()
    with reverts(drug_boxes.NotCustodian, id=active.id, caller=pharmacy, custodian=doctor):
        drug_boxes.dispense(active.id, group, sender=pharmacy)
    theirs = dispensed_rx(clinic, pharmacy)
    with reverts(drug_boxes.NotCustodian, id=theirs.id, caller=other_pharmacy, custodian=pharmacy):
        drug_boxes.dispense(theirs.id, group, sender=other_pharmacy)
    dispatched = clinic.dispatched(pharmacy=pharmacy, courier=courier)
    with reverts(drug_boxes.NotCustodian, id=dispatched.id, caller=pharmacy, custodian=courier):
        drug_boxes.dispense(dispatched.id, group, sender=pharmacy)
    with reverts(drug_boxes.NotDispensed, id=dispatched.id, current=Status.DISPATCHED):
        drug_boxes.dispense(dispatched.id, group, sender=courier)
    assert drug_boxes.isUnsold(lot.root, 0)


def test_a_revoked_pharmacy_records_no_boxes(drug_boxes, factory, clinic, reverts, registry, regulator, pharmacy):
    lot = factory.lot(8)
    rx = dispensed_rx(clinic, pharmacy)
    registry.revokeRole(PHARMACY_ROLE_ID, pharmacy, sender=regulator)
    with reverts(drug_boxes.NotInGoodStanding, account=pharmacy, role=PHARMACY_ROLE_ID):
        drug_boxes.dispense(rx.id, [dispense_group(lot, lot.boxes[:1])], sender=pharmacy)


# --------------------------------------------------------------------------------- the race


def test_four_pharmacies_racing_for_one_box_in_one_block_exactly_one_wins(
    drug_boxes, factory, clinic, chain, registry, regulator, pharmacy, other_pharmacy
):
    """Each of four pharmacies holds its own dispensed prescription and the same box's code and secret;
    their four transactions are mined in one block: exactly one spends the box."""
    extra = [Account.from_key(keccak(text=f"rxchain box race pharmacy {i}")) for i in range(2)]
    end = chain.pending_timestamp + 365 * DAY
    for account in extra:
        registry.admitMember(account.address, PHARMACY_ROLE_ID, end, sender=regulator)
    lot = factory.lot(16)
    box = lot.boxes[7]
    racers = [(pharmacy.address, pharmacy.private_key), (other_pharmacy.address, other_pharmacy.private_key)]
    racers += [(a.address, a.key) for a in extra]
    rxs = [clinic.issue() for _ in racers]
    w3 = chain.provider.web3
    reg = w3.eth.contract(
        address=registry.address, abi=[a.model_dump(mode="json", by_alias=True) for a in registry.contract_type.abi]
    )
    boxes_c = w3.eth.contract(
        address=drug_boxes.address, abi=[a.model_dump(mode="json", by_alias=True) for a in drug_boxes.contract_type.abi]
    )

    def send(address, key, call):
        tx = call.build_transaction(
            {
                "from": address,
                "nonce": w3.eth.get_transaction_count(address, "pending"),
                "gas": 3_000_000,
                "gasPrice": 0,
                "chainId": w3.eth.chain_id,
            }
        )
        signed = Account.sign_transaction(tx, key)
        return w3.eth.send_raw_transaction(signed.raw_transaction)

    deadline = chain.pending_timestamp + HOUR
    for (address, key), rx in zip(racers, rxs):
        sig = clinic.redeem_signature(rx, address, deadline=deadline)
        receipt = w3.eth.wait_for_transaction_receipt(
            send(address, key, reg.functions.redeem(*rx.openings, deadline, sig))
        )
        assert receipt["status"] == 1
    group = [dispense_group(lot, [box])]
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        hashes = [
            send(address, key, boxes_c.functions.dispense(rx.id, group)) for (address, key), rx in zip(racers, rxs)
        ]
        w3.provider.make_request("evm_mine", [])
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    receipts = [w3.eth.wait_for_transaction_receipt(h) for h in hashes]
    assert len({r["blockNumber"] for r in receipts}) == 1, "the four dispenses were not mined in one block"
    assert sorted(r["status"] for r in receipts) == [0, 0, 0, 1]
    winner = next(i for i, r in enumerate(receipts) if r["status"] == 1)
    assert drug_boxes.fill(rxs[winner].id, 0).pharmacy == racers[winner][0]
    for i, rx in enumerate(rxs):
        if i != winner:
            assert drug_boxes.fill(rx.id, 0).boxes == 0
    assert not drug_boxes.isUnsold(lot.root, 7)


def test_the_manufacturer_who_knows_every_secret_cannot_dispense(
    drug_boxes, factory, clinic, reverts, pharmacy, manufacturer
):
    """The manufacturer holds every box's code and secret (it printed them): it still holds no prescription."""
    lot = factory.lot(8)
    rx = dispensed_rx(clinic, pharmacy)
    with reverts(drug_boxes.NotCustodian, id=rx.id, caller=manufacturer, custodian=pharmacy):
        drug_boxes.dispense(rx.id, [dispense_group(lot, lot.boxes[:2])], sender=manufacturer)
    assert drug_boxes.isUnsold(lot.root, 0) and drug_boxes.isUnsold(lot.root, 1)


def test_a_lot_of_65536_boxes_is_registered_whole(drug_boxes, chain, manufacturer):
    """The largest lot: 256 bitmap words, every one of its boxes unsold, the last one included."""
    root = keccak(text="the largest lot")
    drug_boxes.registerLot(root, 65_536, chain.pending_timestamp + DAY, sender=manufacturer)
    assert drug_boxes.lot(root).depth == 16
    assert drug_boxes.isUnsold(root, 0) and drug_boxes.isUnsold(root, 65_535) and not drug_boxes.isUnsold(root, 65_536)


@pytest.mark.parametrize("count", [2, 3, 17, 257, 1000])
def test_any_set_of_boxes_of_a_lot_is_dispensed_in_one_fill(drug_boxes, factory, clinic, pharmacy, count):
    """The contract accepts the client's multiproof for any set of boxes (seeded random: reproducible)."""
    import random

    lot = factory.lot(count)
    rng = random.Random(count)
    chosen = sorted(rng.sample(range(count), min(count, rng.randint(1, 20))))
    rx = dispensed_rx(clinic, pharmacy)
    drug_boxes.dispense(rx.id, [dispense_group(lot, [lot.boxes[i] for i in chosen])], sender=pharmacy)
    around = {j for i in chosen for j in (i - 1, i, i + 1) if 0 <= j < count}  # each box and its neighbours
    assert sorted(i for i in around if not drug_boxes.isUnsold(lot.root, i)) == chosen


def test_the_box_ledger_sees_a_spent_box_and_a_recorded_fill(drug_boxes, factory, clinic, chain, pharmacy):
    """The control for every refusal's unchanged-state check: the same reads do see a dispense."""
    from .boxkit import BoxLedger

    lot = factory.lot(4)
    rx = dispensed_rx(clinic, pharmacy)
    books = BoxLedger(drug_boxes, chain, factory, clinic)
    before = books.read()
    drug_boxes.dispense(rx.id, [dispense_group(lot, lot.boxes[2:3])], sender=pharmacy)
    after = books.read()
    changed = sorted(label for label in before if before[label] != after[label])
    assert changed == [f"fill(0x{rx.id.hex()[:8]}…, 0)", f"isUnsold(0x{lot.root.hex()[:8]}…, 2)"]


# ------------------------------------------------------------------------------ duplicates


def test_a_pharmacy_reports_a_box_scanned_after_its_sale(
    drug_boxes, factory, clinic, reverts, pharmacy, other_pharmacy
):
    lot = factory.lot(8)
    sold, unsold = lot.boxes[2], lot.boxes[3]
    rx = dispensed_rx(clinic, pharmacy)
    drug_boxes.dispense(rx.id, [dispense_group(lot, [sold])], sender=pharmacy)

    # a box never sold is no duplicate: nothing to report
    with reverts(drug_boxes.BoxNotDispensed, lot=lot.root, index=3):
        drug_boxes.reportDuplicate(lot.root, 3, unsold.nullifier, lot.proof(3), sender=other_pharmacy)
    tx = drug_boxes.reportDuplicate(lot.root, 2, sold.nullifier, lot.proof(2), sender=other_pharmacy)
    assert contract_events(tx, drug_boxes) == [
        (
            "DuplicateBoxScanned",
            {
                "lot": normalise(lot.root),
                "pharmacy": other_pharmacy.address,
                "index": 2,
                "nullifier": normalise(sold.nullifier),
            },
        )
    ]
    assert drug_boxes.boxState(lot.root, 2, sold.nullifier, lot.proof(2)) == BOX_DISPENSED


def test_a_duplicate_report_needs_the_genuine_box_and_a_pharmacy(
    drug_boxes, factory, clinic, reverts, registry, regulator, pharmacy, manufacturer, stranger
):
    # An alarm is only raised by someone holding the box's code and secret: a forged report (the
    # nullifier of a printed code without the secret, another box's proof) is refused, so the regulator's
    # duplicate count cannot be inflated with boxes nobody scanned.
    lot = factory.lot(8)
    sold = lot.boxes[5]
    rx = dispensed_rx(clinic, pharmacy)
    drug_boxes.dispense(rx.id, [dispense_group(lot, [sold])], sender=pharmacy)
    forged = core.nullifier(sold.code, "0" * 20)
    with reverts(drug_boxes.NotInLot, lot=lot.root):
        drug_boxes.reportDuplicate(lot.root, 5, forged, lot.proof(5), sender=pharmacy)
    with reverts(drug_boxes.NotInLot, lot=lot.root):
        drug_boxes.reportDuplicate(lot.root, 5, sold.nullifier, lot.proof(4), sender=pharmacy)
    with reverts(drug_boxes.NotInLot, lot=lot.root):
        drug_boxes.reportDuplicate(lot.root, 8, sold.nullifier, lot.proof(5), sender=pharmacy)
    other_root = keccak(text="no such lot")
    with reverts(drug_boxes.UnknownLot, lot=other_root):
        drug_boxes.reportDuplicate(other_root, 5, sold.nullifier, lot.proof(5), sender=pharmacy)
    for outsider in (manufacturer, stranger):
        with reverts(drug_boxes.NotInGoodStanding, account=outsider, role=PHARMACY_ROLE_ID):
            drug_boxes.reportDuplicate(lot.root, 5, sold.nullifier, lot.proof(5), sender=outsider)
    registry.revokeRole(PHARMACY_ROLE_ID, pharmacy, sender=regulator)
    with reverts(drug_boxes.NotInGoodStanding, account=pharmacy, role=PHARMACY_ROLE_ID):
        drug_boxes.reportDuplicate(lot.root, 5, sold.nullifier, lot.proof(5), sender=pharmacy)
