"""The regulator's switches: pausing the registry, and the limits on validity and fills.

Spec: IPrescriptionRegistry.pause / unpause / setLimits / limits / paused. While paused, issuing and
redeeming (single and batched) are refused with EnforcedPause; the delivery trail, cancellations,
membership management and views go on.
"""

import pytest

from .conftest import (
    DAY,
    DOCTOR_ROLE,
    MAX_FILLS,
    MAX_VALIDITY,
    ZERO_ADDRESS,
    Status,
    assert_events,
    event,
    fresh_claim_key,
    fresh_doc_hash,
    next_block_at,
)

YEAR = 365 * DAY
VALIDITY_CAP = 366 * DAY
FILLS_CAP = 12

# ------------------------------------------------------------------------------------ pause


def test_regulator_pauses_and_unpauses(registry, regulator):
    paused = registry.pause(sender=regulator)

    assert_events(paused, registry, event("Paused", account=regulator))
    assert registry.paused()
    assert registry.limits() == (MAX_VALIDITY, MAX_FILLS, True)

    unpaused = registry.unpause(sender=regulator)

    assert_events(unpaused, registry, event("Unpaused", account=regulator))
    assert not registry.paused()
    assert registry.limits() == (MAX_VALIDITY, MAX_FILLS, False)


def test_pausing_a_paused_registry_fails(registry, regulator, reverts):
    registry.pause(sender=regulator)

    with reverts(registry.EnforcedPause):
        registry.pause(sender=regulator)


def test_unpausing_a_running_registry_fails(registry, regulator, reverts):
    with reverts(registry.ExpectedPause):
        registry.unpause(sender=regulator)


# Each call, prepared so that it succeeds while the registry runs.
def _issue(clinic):
    return lambda: clinic.issue()


def _issue_batch(clinic):
    return lambda: clinic.issue_batch()


def _redeem(clinic):
    rx = clinic.issue()
    return lambda: clinic.redeem(rx, clinic.parties["pharmacy"])


def _redeem_batched(clinic):
    rx = clinic.issue_batch().rxs[0]
    return lambda: clinic.redeem(rx, clinic.parties["pharmacy"])


def _cancel_by(who):
    def prepare(clinic):
        rx = clinic.issue()
        return lambda: clinic.registry.cancel(rx.id, sender=clinic.parties[who])

    return prepare


def _cancel_batched(clinic):
    made = clinic.issue_batch()
    rx = made.rxs[0]
    return lambda: clinic.cancel_batched(rx, clinic.parties["hospital"])


def _cancel_batch(clinic):
    made = clinic.issue_batch()
    return lambda: clinic.registry.cancelBatch(made.hospital, made.root, sender=clinic.parties["hospital"])


def _dispatch(clinic):
    rx = clinic.dispensed()
    return lambda: clinic.dispatch(rx, clinic.parties["pharmacy"], clinic.parties["courier"])


def _deliver(clinic):
    rx = clinic.dispatched()
    return lambda: clinic.deliver(rx, clinic.parties["courier"])


def _deliver_with_receipt(clinic):
    rx = clinic.dispatched()
    return lambda: clinic.deliver_with_receipt(rx, clinic.parties["courier"])


def _confirm_receipt(clinic):
    rx = clinic.delivered()
    return lambda: clinic.confirm(rx, clinic.parties["courier"])


# A pause stops what creates obligations: new prescriptions and new fills.
STOPPED_BY_A_PAUSE = {
    "issue": _issue,
    "issueBatch": _issue_batch,
    "redeem": _redeem,
    "redeemBatched": _redeem_batched,
}

# Drugs already dispensed still reach their patients, their trail is still recorded, and
# prescriptions can still be withdrawn.
GOING_ON_WHILE_PAUSED = {
    "cancel-by-the-doctor": _cancel_by("doctor"),
    "cancel-by-the-regulator": _cancel_by("regulator"),
    "cancelBatched": _cancel_batched,
    "cancelBatch": _cancel_batch,
    "dispatch": _dispatch,
    "deliver": _deliver,
    "deliverWithReceipt": _deliver_with_receipt,
    "confirmReceipt": _confirm_receipt,
}


@pytest.mark.parametrize("call", list(STOPPED_BY_A_PAUSE))
def test_issuing_and_redeeming_are_refused_while_paused_and_work_again_after(
    clinic, registry, regulator, reverts, call
):
    send = STOPPED_BY_A_PAUSE[call](clinic)
    registry.pause(sender=regulator)

    with reverts(registry.EnforcedPause):
        send()

    registry.unpause(sender=regulator)
    send()


@pytest.mark.parametrize("call", list(GOING_ON_WHILE_PAUSED))
def test_the_trail_and_withdrawals_go_on_while_paused(clinic, registry, regulator, call):
    send = GOING_ON_WHILE_PAUSED[call](clinic)
    registry.pause(sender=regulator)

    send()

    assert registry.paused()


def test_views_answer_while_paused(clinic, registry, regulator, doctor):
    rx = clinic.issue()
    registry.pause(sender=regulator)

    assert registry.prescription(rx.id).status == Status.ACTIVE
    assert registry.computeId(doctor, rx.doc_hash, rx.pharmacy, rx.claim_key.address) == (rx.id, rx.terms)
    assert registry.hasRole(DOCTOR_ROLE, doctor)


def test_regulator_can_still_revoke_and_admit_members_while_paused(registry, chain, regulator, hospital, doctor):
    """A pause is for incidents; the regulator must still be able to shut out a compromised member."""
    registry.pause(sender=regulator)

    registry.revokeRole(DOCTOR_ROLE, doctor, sender=regulator)
    assert not registry.hasRole(DOCTOR_ROLE, doctor)

    registry.allowReadmission(doctor, sender=regulator)  # the regulator's bar is lifted by the regulator only
    registry.admitMember(doctor, DOCTOR_ROLE, registry.member(hospital).validUntil, sender=hospital)
    assert registry.hasRole(DOCTOR_ROLE, doctor)


# ----------------------------------------------------------------------------------- limits


def test_regulator_sets_the_limits(registry, regulator):
    tx = registry.setLimits(DAY, 6, sender=regulator)

    assert_events(tx, registry, event("LimitsChanged", maxValiditySeconds=DAY, maxFills=6))
    assert registry.limits() == (DAY, 6, False)


@pytest.mark.parametrize(
    "max_validity, max_fills",
    [(1, 1), (VALIDITY_CAP, FILLS_CAP)],
    ids=["the-smallest", "the-largest"],
)
def test_limits_at_their_bounds_are_accepted(registry, regulator, max_validity, max_fills):
    registry.setLimits(max_validity, max_fills, sender=regulator)

    assert registry.limits() == (max_validity, max_fills, False)


@pytest.mark.parametrize(
    "max_validity, max_fills",
    [(0, 3), (VALIDITY_CAP + 1, 3), (2**32 - 1, 3), (DAY, 0), (DAY, FILLS_CAP + 1), (DAY, 255)],
    ids=["zero-validity", "validity-over-366-days", "validity-at-uint32-max", "zero-fills", "13-fills", "255-fills"],
)
def test_limits_out_of_range_are_refused(registry, regulator, reverts, max_validity, max_fills):
    with reverts(registry.InvalidLimits, maxValiditySeconds=max_validity, maxFills=max_fills):
        registry.setLimits(max_validity, max_fills, sender=regulator)


def test_raised_limits_allow_longer_and_more_filled_prescriptions(clinic, registry, regulator, doctor):
    registry.setLimits(30 * DAY, 6, sender=regulator)

    rx = clinic.issue(doctor, fills=6, valid_for=30 * DAY)

    assert registry.prescription(rx.id)[2:] == (rx.expires_at, Status.ACTIVE, 6)


def test_lowered_limits_refuse_what_was_allowed_before(registry, chain, regulator, doctor, reverts):
    registry.setLimits(DAY, 1, sender=regulator)
    now = chain.pending_timestamp + 10

    next_block_at(chain, now)
    with reverts(registry.InvalidExpiry, expiresAt=now + 2 * DAY, latestAllowed=now + DAY):
        registry.issue(fresh_doc_hash(), fresh_claim_key().address, ZERO_ADDRESS, now + 2 * DAY, 1, sender=doctor)
    with reverts(registry.InvalidFills, fills=2, maxFills=1):
        registry.issue(fresh_doc_hash(), fresh_claim_key().address, ZERO_ADDRESS, now + DAY // 2, 2, sender=doctor)


def test_lowered_limits_leave_issued_prescriptions_as_they_were(clinic, registry, regulator, doctor, pharmacy):
    rx = clinic.issue(doctor, fills=3, valid_for=2 * DAY)

    registry.setLimits(DAY, 1, sender=regulator)

    assert registry.prescription(rx.id)[2:] == (rx.expires_at, Status.ACTIVE, 3)
    tx = clinic.redeem(rx, pharmacy)
    assert_events(tx, registry, event("PrescriptionRedeemed", id=rx.id, pharmacy=pharmacy, fillsLeft=2))


def test_limits_may_be_changed_while_paused(registry, regulator):
    registry.pause(sender=regulator)

    registry.setLimits(DAY, 2, sender=regulator)

    assert registry.limits() == (DAY, 2, True)
