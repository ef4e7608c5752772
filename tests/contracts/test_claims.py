"""Insurance claims: one claim per fill, for good, after the patient's receipt, with the fill's boxes.

Spec: IDrugBoxes.fileClaim / approveClaim / rejectClaim. A fill is named by the prescription id and
the fills left after it. Every refusal is tried by the attacker holding what it legitimately saw: the
pharmacy that dispensed another fill, a pharmacy that saw the boxes, the insurer of another claim.
"""

from __future__ import annotations

import pytest
from eth_utils import keccak

from rxchain.core.ids import ZERO_ADDRESS as ZERO

from .boxkit import (
    INSURER_ROLE,
    PHARMACY_ROLE_ID,
    contract_events,
    dispense_group,
    fill_nullifiers,
)
from .conftest import Status, normalise

NONE, FILED, APPROVED, REJECTED, PAID, VOID = range(6)


def commitment(text="amounts and insurance reference"):
    """Stands for keccak256(salt ‖ amounts ‖ the patient's insurance reference), made off chain."""
    return keccak(text=f"rxchain test claim commitment {text}")


@pytest.fixture
def boxed(drug_boxes, factory, clinic, pharmacy, courier):
    """Makes prescriptions whose fill was dispensed with boxes (and, by default, received)."""

    def make(*, received=True, fills=1, boxes=2, rx=None, by=None):
        by = by or pharmacy
        lot = factory.lot(8)
        rx = clinic.dispensed(rx, pharmacy=by, fills=fills) if rx is None else clinic.dispensed(rx, pharmacy=by)
        fills_left = clinic.state(rx).fillsLeft
        group = dispense_group(lot, lot.boxes[:boxes])
        drug_boxes.dispense(rx.id, [group], sender=by)
        if received:
            clinic.received(rx, pharmacy=by, courier=courier)
        return rx, fills_left, fill_nullifiers(group)

    return make


def test_a_pharmacy_files_one_claim_for_a_received_fill(drug_boxes, boxed, pharmacy, insurer):
    rx, fills_left, nullifiers = boxed()
    tx = drug_boxes.fileClaim(rx.id, fills_left, nullifiers, insurer, commitment(), sender=pharmacy)
    assert contract_events(tx, drug_boxes) == [
        (
            "ClaimFiled",
            {
                "rxId": normalise(rx.id),
                "pharmacy": pharmacy.address,
                "insurer": insurer.address,
                "fillsLeft": 0,
                "commitment": normalise(commitment()),
            },
        ),
    ]
    assert drug_boxes.fill(rx.id, fills_left) == (pharmacy.address, 2, FILED, 0)


def test_the_insurer_approves_with_the_payment_reference(drug_boxes, boxed, pharmacy, insurer):
    rx, fills_left, nullifiers = boxed()
    drug_boxes.fileClaim(rx.id, fills_left, nullifiers, insurer, commitment(), sender=pharmacy)
    reference = keccak(text="payment 2026-11-28 0001")
    tx = drug_boxes.approveClaim(rx.id, fills_left, reference, sender=insurer)
    stamped = {
        "rxId": normalise(rx.id),
        "insurer": insurer.address,
        "fillsLeft": 0,
        "paymentReference": normalise(reference),
    }
    assert contract_events(tx, drug_boxes) == [("ClaimApproved", stamped), ("ClaimPaid", stamped)]
    assert drug_boxes.fill(rx.id, fills_left) == (pharmacy.address, 2, PAID, 0)


def test_the_insurer_approves_first_and_stamps_the_payment_later(
    drug_boxes, boxed, reverts, pharmacy, insurer, other_insurer
):
    rx, fills_left, nullifiers = boxed()
    drug_boxes.fileClaim(rx.id, fills_left, nullifiers, insurer, commitment(), sender=pharmacy)
    reference = keccak(text="settlement run 2026-12")
    # nothing to pay before the approval
    with reverts(drug_boxes.ClaimNotApproved, id=rx.id, fillsLeft=fills_left, claim=FILED):
        drug_boxes.recordPayment(rx.id, fills_left, reference, sender=insurer)
    tx = drug_boxes.approveClaim(rx.id, fills_left, bytes(32), sender=insurer)
    assert [name for name, _ in contract_events(tx, drug_boxes)] == ["ClaimApproved"]
    assert drug_boxes.fill(rx.id, fills_left) == (pharmacy.address, 2, APPROVED, 0)
    with reverts(drug_boxes.ZeroPaymentReference):
        drug_boxes.recordPayment(rx.id, fills_left, bytes(32), sender=insurer)
    # another insurer, or the pharmacy, stamping a payment it did not make
    for intruder in (other_insurer, pharmacy):
        with reverts(drug_boxes.NotClaimInsurer, id=rx.id, fillsLeft=fills_left, caller=intruder):
            drug_boxes.recordPayment(rx.id, fills_left, reference, sender=intruder)
    tx = drug_boxes.recordPayment(rx.id, fills_left, reference, sender=insurer)
    assert contract_events(tx, drug_boxes) == [
        (
            "ClaimPaid",
            {
                "rxId": normalise(rx.id),
                "insurer": insurer.address,
                "fillsLeft": 0,
                "paymentReference": normalise(reference),
            },
        )
    ]
    assert drug_boxes.fill(rx.id, fills_left) == (pharmacy.address, 2, PAID, 0)
    # paid once: neither paid again nor decided again
    with reverts(drug_boxes.ClaimNotApproved, id=rx.id, fillsLeft=fills_left, claim=PAID):
        drug_boxes.recordPayment(rx.id, fills_left, keccak(text="twice"), sender=insurer)
    with reverts(drug_boxes.ClaimNotPending, id=rx.id, fillsLeft=fills_left, claim=PAID):
        drug_boxes.rejectClaim(rx.id, fills_left, 3, sender=insurer)


def test_a_revoked_insurer_stamps_no_payment(drug_boxes, boxed, reverts, registry, regulator, pharmacy, insurer):
    rx, fills_left, nullifiers = boxed()
    drug_boxes.fileClaim(rx.id, fills_left, nullifiers, insurer, commitment(), sender=pharmacy)
    drug_boxes.approveClaim(rx.id, fills_left, bytes(32), sender=insurer)
    registry.revokeRole(INSURER_ROLE, insurer, sender=regulator)
    with reverts(drug_boxes.NotInGoodStanding, account=insurer, role=INSURER_ROLE):
        drug_boxes.recordPayment(rx.id, fills_left, keccak(text="late"), sender=insurer)


def test_the_insurer_rejects_with_a_reason(drug_boxes, boxed, reverts, pharmacy, insurer):
    rx, fills_left, nullifiers = boxed()
    drug_boxes.fileClaim(rx.id, fills_left, nullifiers, insurer, commitment(), sender=pharmacy)
    with reverts(drug_boxes.ZeroReason):
        drug_boxes.rejectClaim(rx.id, fills_left, 0, sender=insurer)
    tx = drug_boxes.rejectClaim(rx.id, fills_left, 7, sender=insurer)
    assert contract_events(tx, drug_boxes) == [
        ("ClaimRejected", {"rxId": normalise(rx.id), "insurer": insurer.address, "fillsLeft": 0, "reason": 7}),
    ]
    assert drug_boxes.fill(rx.id, fills_left) == (pharmacy.address, 2, REJECTED, 7)
    # rejected is final: neither decided again nor filed again
    with reverts(drug_boxes.ClaimNotPending, id=rx.id, fillsLeft=fills_left, claim=REJECTED):
        drug_boxes.approveClaim(rx.id, fills_left, keccak(text="pay anyway"), sender=insurer)
    with reverts(drug_boxes.ClaimAlreadyFiled, id=rx.id, fillsLeft=fills_left, claim=REJECTED):
        drug_boxes.fileClaim(rx.id, fills_left, nullifiers, insurer, commitment("again"), sender=pharmacy)


def test_a_second_claim_for_the_same_fill_is_refused_for_good(
    drug_boxes, boxed, reverts, pharmacy, insurer, other_insurer
):
    rx, fills_left, nullifiers = boxed()
    drug_boxes.fileClaim(rx.id, fills_left, nullifiers, insurer, commitment(), sender=pharmacy)
    with reverts(drug_boxes.ClaimAlreadyFiled, id=rx.id, fillsLeft=fills_left, claim=FILED):
        drug_boxes.fileClaim(rx.id, fills_left, nullifiers, other_insurer, commitment("other"), sender=pharmacy)
    drug_boxes.approveClaim(rx.id, fills_left, bytes(32), sender=insurer)
    with reverts(drug_boxes.ClaimAlreadyFiled, id=rx.id, fillsLeft=fills_left, claim=APPROVED):
        drug_boxes.fileClaim(rx.id, fills_left, nullifiers, insurer, commitment(), sender=pharmacy)
    with reverts(drug_boxes.ClaimNotPending, id=rx.id, fillsLeft=fills_left, claim=APPROVED):
        drug_boxes.approveClaim(rx.id, fills_left, keccak(text="paid twice"), sender=insurer)
    drug_boxes.recordPayment(rx.id, fills_left, keccak(text="paid"), sender=insurer)
    with reverts(drug_boxes.ClaimAlreadyFiled, id=rx.id, fillsLeft=fills_left, claim=PAID):
        drug_boxes.fileClaim(rx.id, fills_left, nullifiers, insurer, commitment(), sender=pharmacy)


def test_a_fill_not_yet_received_cannot_be_claimed(drug_boxes, boxed, clinic, reverts, pharmacy, courier, insurer):
    rx, fills_left, nullifiers = boxed(received=False)  # Dispensed
    with reverts(drug_boxes.FillNotReceived, id=rx.id, fillsLeft=0, current=Status.DISPENSED, currentFillsLeft=0):
        drug_boxes.fileClaim(rx.id, fills_left, nullifiers, insurer, commitment(), sender=pharmacy)
    clinic.delivered(rx, pharmacy=pharmacy, courier=courier)  # delivered, but no receipt from the patient
    with reverts(drug_boxes.FillNotReceived, id=rx.id, fillsLeft=0, current=Status.DELIVERED, currentFillsLeft=0):
        drug_boxes.fileClaim(rx.id, fills_left, nullifiers, insurer, commitment(), sender=pharmacy)
    clinic.confirm(rx, courier)
    drug_boxes.fileClaim(rx.id, fills_left, nullifiers, insurer, commitment(), sender=pharmacy)


def test_each_fill_of_a_refillable_prescription_is_claimed_by_its_own_pharmacy(
    drug_boxes, boxed, clinic, reverts, pharmacy, other_pharmacy, insurer
):
    rx, first, first_boxes = boxed(fills=2)  # fill 1 by pharmacy, received: Refillable with 1 left
    assert (first, clinic.state(rx).status) == (1, Status.REFILLABLE)
    # the second fill, by another pharmacy, dispensed but not yet received
    rx, second, second_boxes = boxed(rx=rx, by=other_pharmacy, received=False)
    assert second == 0
    drug_boxes.fileClaim(rx.id, first, first_boxes, insurer, commitment("first"), sender=pharmacy)
    with reverts(drug_boxes.FillNotReceived, id=rx.id, fillsLeft=0, current=Status.DISPENSED, currentFillsLeft=0):
        drug_boxes.fileClaim(rx.id, second, second_boxes, insurer, commitment("second"), sender=other_pharmacy)
    # the pharmacy of the first fill claiming the second one, which it did not dispense
    with reverts(drug_boxes.NotFillPharmacy, id=rx.id, fillsLeft=0, caller=pharmacy, pharmacy=other_pharmacy):
        drug_boxes.fileClaim(rx.id, second, second_boxes, insurer, commitment("theft"), sender=pharmacy)


def test_a_later_fill_shows_the_earlier_one_ended(drug_boxes, boxed, clinic, pharmacy, other_pharmacy, insurer):
    rx, first, first_boxes = boxed(fills=2)
    clinic.redeem(rx, other_pharmacy)  # the second fill redeemed before the first was claimed
    drug_boxes.fileClaim(rx.id, first, first_boxes, insurer, commitment(), sender=pharmacy)


def test_a_pharmacy_cannot_claim_a_fill_it_did_not_dispense(
    drug_boxes, boxed, reverts, pharmacy, other_pharmacy, insurer
):
    rx, fills_left, nullifiers = boxed()
    with reverts(drug_boxes.NotFillPharmacy, id=rx.id, fillsLeft=fills_left, caller=other_pharmacy, pharmacy=pharmacy):
        drug_boxes.fileClaim(rx.id, fills_left, nullifiers, insurer, commitment(), sender=other_pharmacy)


def test_a_fill_without_recorded_boxes_cannot_be_claimed(drug_boxes, clinic, reverts, pharmacy, courier, insurer):
    rx = clinic.received(pharmacy=pharmacy, courier=courier)
    with reverts(drug_boxes.NoBoxesRecorded, id=rx.id, fillsLeft=0):
        drug_boxes.fileClaim(rx.id, 0, [keccak(text="a box")], insurer, commitment(), sender=pharmacy)
    with reverts(drug_boxes.NoBoxesRecorded, id=rx.id, fillsLeft=1):
        drug_boxes.fileClaim(rx.id, 1, [keccak(text="a box")], insurer, commitment(), sender=pharmacy)


def test_a_claim_must_name_exactly_the_boxes_of_its_fill(drug_boxes, boxed, reverts, pharmacy, insurer):
    rx, fills_left, nullifiers = boxed(boxes=3)
    _, _, other_boxes = boxed()  # boxes this pharmacy dispensed for another prescription
    for wrong in (
        nullifiers[:2],
        nullifiers + other_boxes[:1],
        [nullifiers[0], other_boxes[0], nullifiers[2]],
        list(reversed(nullifiers)),
        [],
    ):
        with reverts(drug_boxes.BoxesNotOfFill, id=rx.id, fillsLeft=fills_left):
            drug_boxes.fileClaim(rx.id, fills_left, wrong, insurer, commitment(), sender=pharmacy)
    assert drug_boxes.fill(rx.id, fills_left).claim == NONE


def test_a_claim_needs_an_insurer_in_good_standing_and_a_commitment(
    drug_boxes, boxed, reverts, registry, regulator, pharmacy, other_pharmacy, insurer, stranger
):
    rx, fills_left, nullifiers = boxed()
    for not_insurer in (stranger, other_pharmacy):
        with reverts(drug_boxes.NotInGoodStanding, account=not_insurer, role=INSURER_ROLE):
            drug_boxes.fileClaim(rx.id, fills_left, nullifiers, not_insurer, commitment(), sender=pharmacy)
    with reverts(drug_boxes.ZeroCommitment):
        drug_boxes.fileClaim(rx.id, fills_left, nullifiers, insurer, bytes(32), sender=pharmacy)
    registry.revokeRole(INSURER_ROLE, insurer, sender=regulator)
    with reverts(drug_boxes.NotInGoodStanding, account=insurer, role=INSURER_ROLE):
        drug_boxes.fileClaim(rx.id, fills_left, nullifiers, insurer, commitment(), sender=pharmacy)


def test_a_revoked_pharmacy_files_no_claim(drug_boxes, boxed, reverts, registry, regulator, pharmacy, insurer):
    rx, fills_left, nullifiers = boxed()
    registry.revokeRole(PHARMACY_ROLE_ID, pharmacy, sender=regulator)
    with reverts(drug_boxes.NotInGoodStanding, account=pharmacy, role=PHARMACY_ROLE_ID):
        drug_boxes.fileClaim(rx.id, fills_left, nullifiers, insurer, commitment(), sender=pharmacy)


def test_only_the_claims_insurer_decides_it(
    drug_boxes, boxed, reverts, registry, regulator, pharmacy, insurer, other_insurer, stranger
):
    rx, fills_left, nullifiers = boxed()
    with reverts(drug_boxes.ClaimNotPending, id=rx.id, fillsLeft=fills_left, claim=NONE):
        drug_boxes.approveClaim(rx.id, fills_left, keccak(text="early"), sender=insurer)
    drug_boxes.fileClaim(rx.id, fills_left, nullifiers, insurer, commitment(), sender=pharmacy)
    for attacker in (other_insurer, pharmacy, regulator, stranger):
        with reverts(drug_boxes.NotClaimInsurer, id=rx.id, fillsLeft=fills_left, caller=attacker):
            drug_boxes.approveClaim(rx.id, fills_left, keccak(text="mine"), sender=attacker)
        with reverts(drug_boxes.NotClaimInsurer, id=rx.id, fillsLeft=fills_left, caller=attacker):
            drug_boxes.rejectClaim(rx.id, fills_left, 3, sender=attacker)
    registry.revokeRole(INSURER_ROLE, insurer, sender=regulator)
    with reverts(drug_boxes.NotInGoodStanding, account=insurer, role=INSURER_ROLE):
        drug_boxes.approveClaim(rx.id, fills_left, keccak(text="late"), sender=insurer)
    assert drug_boxes.fill(rx.id, fills_left).claim == FILED


def test_a_cancelled_prescription_was_never_received(
    drug_boxes, boxed, clinic, reverts, registry, regulator, pharmacy, insurer
):
    """A pharmacy-held fill voided by the regulator (the pharmacy revoked) with no fills left ends Cancelled: no
    receipt, no claim, even once the pharmacy is back in good standing."""
    rx, fills_left, nullifiers = boxed(received=False)
    registry.revokeRole(PHARMACY_ROLE_ID, pharmacy, sender=regulator)
    registry.voidCustody(rx.id, sender=regulator)
    registry.admitMember(pharmacy, PHARMACY_ROLE_ID, registry.member(insurer).validUntil, sender=regulator)
    with reverts(drug_boxes.FillNotReceived, id=rx.id, fillsLeft=0, current=Status.CANCELLED, currentFillsLeft=0):
        drug_boxes.fileClaim(rx.id, fills_left, nullifiers, insurer, commitment(), sender=pharmacy)
    assert ZERO != pharmacy.address


# ------------------------------------------------------------------------ a voided fill


def test_a_fill_the_regulator_voided_is_never_claimed(
    drug_boxes, boxed, clinic, reverts, registry, regulator, chain, pharmacy, other_pharmacy, courier, insurer
):
    # The pharmacy recorded the first fill's boxes, then was revoked holding it; the regulator voided its
    # custody. The registry now shows the prescription Refillable with one fill left, as if the fill had
    # been received: the pharmacy, once readmitted, would claim a fill the patient never got.
    rx, fills_left, nullifiers = boxed(fills=2, received=False)
    assert fills_left == 1
    registry.revokeRole(PHARMACY_ROLE_ID, pharmacy, sender=regulator)
    registry.voidCustody(rx.id, sender=regulator)
    assert clinic.state(rx).status == Status.REFILLABLE and clinic.state(rx).fillsLeft == fills_left

    # only the regulator voids a fill
    for intruder in (other_pharmacy, insurer, pharmacy):
        with reverts(drug_boxes.NotInGoodStanding, account=intruder, role=bytes(32)):
            drug_boxes.voidFill(rx.id, fills_left, sender=intruder)
    tx = drug_boxes.voidFill(rx.id, fills_left, sender=regulator)
    assert contract_events(tx, drug_boxes) == [
        ("FillVoided", {"rxId": normalise(rx.id), "by": regulator.address, "fillsLeft": fills_left})
    ]
    assert drug_boxes.fill(rx.id, fills_left) == (pharmacy.address, 2, VOID, 0)
    with reverts(drug_boxes.ClaimAlreadyFiled, id=rx.id, fillsLeft=fills_left, claim=VOID):
        drug_boxes.voidFill(rx.id, fills_left, sender=regulator)

    registry.admitMember(pharmacy, PHARMACY_ROLE_ID, chain.pending_timestamp + 30 * 86_400, sender=regulator)
    with reverts(drug_boxes.FillIsVoid, id=rx.id, fillsLeft=fills_left):
        drug_boxes.fileClaim(rx.id, fills_left, nullifiers, insurer, commitment(), sender=pharmacy)
    # even after the next fill, redeemed and received elsewhere, made the voided one look ended
    rx, second, second_boxes = boxed(rx=rx, by=other_pharmacy)
    with reverts(drug_boxes.FillIsVoid, id=rx.id, fillsLeft=fills_left):
        drug_boxes.fileClaim(rx.id, fills_left, nullifiers, insurer, commitment(), sender=pharmacy)
    drug_boxes.fileClaim(rx.id, second, second_boxes, insurer, commitment("second"), sender=other_pharmacy)


def test_a_fill_with_no_boxes_or_a_claim_is_not_voided(
    drug_boxes, boxed, clinic, reverts, regulator, pharmacy, courier, insurer
):
    rx = clinic.received(pharmacy=pharmacy, courier=courier)
    with reverts(drug_boxes.NoBoxesRecorded, id=rx.id, fillsLeft=0):
        drug_boxes.voidFill(rx.id, 0, sender=regulator)
    rx, fills_left, nullifiers = boxed()
    drug_boxes.fileClaim(rx.id, fills_left, nullifiers, insurer, commitment(), sender=pharmacy)
    with reverts(drug_boxes.ClaimAlreadyFiled, id=rx.id, fillsLeft=fills_left, claim=FILED):
        drug_boxes.voidFill(rx.id, fills_left, sender=regulator)
