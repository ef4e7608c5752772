"""Consortium membership: admission, credential end dates, renewal, revocation, the regulator handover.

Spec: contracts/interfaces/IConsortiumRoles.sol. The regulator (OpenZeppelin's DEFAULT_ADMIN_ROLE,
handed over in two steps after a delay) admits hospitals, pharmacies, couriers and auditors; a
hospital admits, renews and revokes its own doctors. hasRole answers false once a credential ends.
"""

import pytest
from eth_utils import keccak

from .conftest import (
    ADMIN_TRANSFER_DELAY,
    AUDITOR_ROLE,
    COURIER_ROLE,
    DAY,
    DEFAULT_ADMIN_ROLE,
    DOCTOR_ROLE,
    HOSPITAL_ROLE,
    HOUR,
    MAX_FILLS,
    MAX_VALIDITY,
    MINUTE,
    PHARMACY_ROLE,
    ROLE_BITS,
    ZERO_ADDRESS,
    assert_events,
    deploy_registry,
    event,
    fresh_address,
    fresh_claim_key,
    fresh_doc_hash,
    next_block_at,
    registry_events,
    travel_to,
)

YEAR = 365 * DAY
NURSE_ROLE = keccak(text="NURSE_ROLE")  # not a consortium role


def issue_by(registry, chain, doctor):
    """Has ``doctor`` issue a new prescription (a call every doctor in good standing may make)."""
    return registry.issue(
        fresh_doc_hash(), fresh_claim_key().address, ZERO_ADDRESS, chain.pending_timestamp + DAY, 1, sender=doctor
    )


# --------------------------------------------------------------------------------- deployment


def test_deployment_makes_the_regulator_the_one_admin_with_the_given_limits(project, regulator, stranger):
    registry = deploy_registry(project, regulator)

    assert registry.defaultAdmin() == regulator.address
    assert registry.hasRole(DEFAULT_ADMIN_ROLE, regulator)
    assert not registry.hasRole(DEFAULT_ADMIN_ROLE, stranger)
    assert registry.defaultAdminDelay() == ADMIN_TRANSFER_DELAY
    assert registry.limits() == (MAX_VALIDITY, MAX_FILLS, False)
    assert not registry.paused()
    assert_events(
        registry.creation_metadata.receipt,
        registry,
        event("RoleGranted", role=DEFAULT_ADMIN_ROLE, account=regulator, sender=regulator),
        event("LimitsChanged", maxValiditySeconds=MAX_VALIDITY, maxFills=MAX_FILLS),
    )


@pytest.mark.parametrize(
    "max_validity, max_fills",
    [(0, 3), (366 * DAY + 1, 3), (3 * DAY, 0), (3 * DAY, 13)],
    ids=["zero-validity", "validity-over-366-days", "zero-fills", "more-than-12-fills"],
)
def test_deployment_with_limits_out_of_range_fails(project, regulator, registry, reverts, max_validity, max_fills):
    with reverts(registry.InvalidLimits, maxValiditySeconds=max_validity, maxFills=max_fills):
        deploy_registry(project, regulator, max_validity=max_validity, max_fills=max_fills)


def test_deployment_with_no_regulator_fails(project, regulator, registry, reverts):
    with reverts(registry.AccessControlInvalidDefaultAdmin, defaultAdmin=ZERO_ADDRESS):
        deploy_registry(project, ZERO_ADDRESS, sender=regulator)


def test_role_ids_are_the_hashes_of_their_names(registry):
    assert registry.DOCTOR_ROLE() == DOCTOR_ROLE
    assert registry.PHARMACY_ROLE() == PHARMACY_ROLE
    assert registry.COURIER_ROLE() == COURIER_ROLE
    assert registry.AUDITOR_ROLE() == AUDITOR_ROLE
    assert registry.HOSPITAL_ROLE() == HOSPITAL_ROLE
    assert registry.DEFAULT_ADMIN_ROLE() == DEFAULT_ADMIN_ROLE


def test_onboarded_members_hold_their_roles_and_doctors_belong_to_their_hospitals(registry, parties, credential_end):
    expected = {
        "hospital": (HOSPITAL_ROLE, ZERO_ADDRESS),
        "other_hospital": (HOSPITAL_ROLE, ZERO_ADDRESS),
        "doctor": (DOCTOR_ROLE, parties["hospital"].address),
        "other_doctor": (DOCTOR_ROLE, parties["other_hospital"].address),
        "pharmacy": (PHARMACY_ROLE, ZERO_ADDRESS),
        "other_pharmacy": (PHARMACY_ROLE, ZERO_ADDRESS),
        "courier": (COURIER_ROLE, ZERO_ADDRESS),
        "auditor": (AUDITOR_ROLE, ZERO_ADDRESS),
    }
    for name, (role, hospital) in expected.items():
        account = parties[name]
        assert registry.member(account) == (ROLE_BITS[role], credential_end, hospital), name
        assert registry.isMemberInGoodStanding(account, role), name
        for other in ROLE_BITS:
            assert registry.hasRole(other, account) == (other == role), (name, other)
    assert registry.member(parties["stranger"]) == (0, 0, ZERO_ADDRESS)
    assert registry.member(parties["regulator"]) == (0, 0, ZERO_ADDRESS)


# ---------------------------------------------------------------------------------- admission


@pytest.mark.parametrize(
    "role",
    [PHARMACY_ROLE, COURIER_ROLE, AUDITOR_ROLE, HOSPITAL_ROLE],
    ids=["pharmacy", "courier", "auditor", "hospital"],
)
def test_regulator_admits_a_member_until_a_date(registry, chain, regulator, role):
    account = fresh_address()
    until = chain.pending_timestamp + YEAR

    tx = registry.admitMember(account, role, until, sender=regulator)

    assert_events(
        tx,
        registry,
        event("RoleGranted", role=role, account=account, sender=regulator),
        event(
            "MemberAdmitted", account=account, role=role, admittedBy=regulator, hospital=ZERO_ADDRESS, validUntil=until
        ),
    )
    assert registry.member(account) == (ROLE_BITS[role], until, ZERO_ADDRESS)
    assert registry.hasRole(role, account)
    assert registry.isMemberInGoodStanding(account, role)


def test_hospital_admits_a_doctor_who_then_belongs_to_it(registry, chain, hospital, credential_end):
    account = fresh_address()
    until = credential_end  # no later than the hospital's own credential

    tx = registry.admitMember(account, DOCTOR_ROLE, until, sender=hospital)

    assert_events(
        tx,
        registry,
        event("RoleGranted", role=DOCTOR_ROLE, account=account, sender=hospital),
        event(
            "MemberAdmitted",
            account=account,
            role=DOCTOR_ROLE,
            admittedBy=hospital,
            hospital=hospital,
            validUntil=until,
        ),
    )
    assert registry.member(account) == (ROLE_BITS[DOCTOR_ROLE], until, hospital.address)
    assert registry.hasRole(DOCTOR_ROLE, account)


def test_readmitting_a_member_adds_the_role_and_replaces_the_credential_end(
    registry, chain, regulator, courier, credential_end
):
    until = credential_end - 100 * DAY

    registry.admitMember(courier, AUDITOR_ROLE, until, sender=regulator)

    assert registry.member(courier) == (ROLE_BITS[COURIER_ROLE] | ROLE_BITS[AUDITOR_ROLE], until, ZERO_ADDRESS)
    assert registry.hasRole(COURIER_ROLE, courier) and registry.hasRole(AUDITOR_ROLE, courier)


def test_hospital_readmitting_its_own_doctor_moves_the_end_date(registry, regulator, hospital, doctor, credential_end):
    registry.renewMember(hospital, credential_end + YEAR, sender=regulator)
    registry.admitMember(doctor, DOCTOR_ROLE, credential_end + YEAR, sender=hospital)

    assert registry.member(doctor) == (ROLE_BITS[DOCTOR_ROLE], credential_end + YEAR, hospital.address)


@pytest.mark.parametrize("role", [NURSE_ROLE, DEFAULT_ADMIN_ROLE], ids=["made-up-role", "regulator-role"])
def test_admitting_to_a_role_that_is_not_a_member_role_fails(registry, chain, regulator, reverts, role):
    with reverts(registry.UnknownRole, role=role):
        registry.admitMember(fresh_address(), role, chain.pending_timestamp + YEAR, sender=regulator)


def test_admitting_the_zero_address_fails(registry, chain, regulator, reverts):
    with reverts(registry.ZeroAddressMember):
        registry.admitMember(ZERO_ADDRESS, PHARMACY_ROLE, chain.pending_timestamp + YEAR, sender=regulator)


@pytest.mark.parametrize("ends_before", [0, 1, YEAR], ids=["ending-now", "ended-a-second-ago", "ended-a-year-ago"])
def test_admitting_with_a_credential_that_is_not_in_the_future_fails(registry, chain, regulator, reverts, ends_before):
    now = chain.pending_timestamp + 10
    next_block_at(chain, now)
    with reverts(registry.InvalidCredentialEnd, validUntil=now - ends_before, nowTime=now):
        registry.admitMember(fresh_address(), PHARMACY_ROLE, now - ends_before, sender=regulator)


def test_regulator_cannot_admit_a_doctor_directly(registry, chain, regulator, reverts):
    with reverts(registry.AccessControlUnauthorizedAccount, account=regulator, neededRole=HOSPITAL_ROLE):
        registry.admitMember(fresh_address(), DOCTOR_ROLE, chain.pending_timestamp + YEAR, sender=regulator)


def test_hospital_cannot_admit_other_kinds_of_member(registry, chain, hospital, reverts):
    with reverts(registry.AccessControlUnauthorizedAccount, account=hospital, neededRole=DEFAULT_ADMIN_ROLE):
        registry.admitMember(fresh_address(), PHARMACY_ROLE, chain.pending_timestamp + YEAR, sender=hospital)


def test_hospital_cannot_take_over_another_hospitals_doctor(registry, chain, other_hospital, doctor, reverts):
    with reverts(registry.NotDoctorsHospital, caller=other_hospital, doctor=doctor):
        registry.admitMember(doctor, DOCTOR_ROLE, chain.pending_timestamp + YEAR, sender=other_hospital)


def test_hospital_whose_credential_ended_cannot_admit_doctors(registry, chain, hospital, credential_end, reverts):
    travel_to(chain, credential_end + 1)
    with reverts(registry.CredentialExpired, account=hospital, role=HOSPITAL_ROLE, validUntil=credential_end):
        registry.admitMember(fresh_address(), DOCTOR_ROLE, credential_end + YEAR, sender=hospital)


def test_grant_role_refuses_member_roles_even_from_the_regulator(registry, regulator, reverts):
    with reverts(registry.UseAdmitMember, role=DOCTOR_ROLE):
        registry.grantRole(DOCTOR_ROLE, fresh_address(), sender=regulator)


def test_grant_role_from_a_non_regulator_fails(registry, hospital, reverts):
    with reverts(registry.AccessControlUnauthorizedAccount, account=hospital, neededRole=DEFAULT_ADMIN_ROLE):
        registry.grantRole(DOCTOR_ROLE, fresh_address(), sender=hospital)


def test_grant_role_cannot_make_a_second_regulator(registry, regulator, stranger, reverts):
    with reverts(registry.AccessControlEnforcedDefaultAdminRules):
        registry.grantRole(DEFAULT_ADMIN_ROLE, stranger, sender=regulator)


def test_regulator_role_cannot_be_revoked_outright(registry, regulator, reverts):
    with reverts(registry.AccessControlEnforcedDefaultAdminRules):
        registry.revokeRole(DEFAULT_ADMIN_ROLE, regulator, sender=regulator)


# ------------------------------------------------------------------------- credential end dates


def test_credential_holds_through_its_last_second_and_ends_after_it(registry, chain, doctor, credential_end):
    travel_to(chain, credential_end)
    assert registry.hasRole(DOCTOR_ROLE, doctor)
    assert registry.isMemberInGoodStanding(doctor, DOCTOR_ROLE)

    travel_to(chain, credential_end + 1)
    assert not registry.hasRole(DOCTOR_ROLE, doctor)
    assert not registry.isMemberInGoodStanding(doctor, DOCTOR_ROLE)
    # The record itself stays: the member still holds the role, with an ended credential.
    assert registry.member(doctor).roles == ROLE_BITS[DOCTOR_ROLE]


def test_doctor_can_issue_in_the_last_second_of_the_credential(registry, chain, hospital, doctor):
    end = chain.pending_timestamp + HOUR
    registry.renewMember(doctor, end, sender=hospital)
    next_block_at(chain, end)

    tx = issue_by(registry, chain, doctor)

    assert tx.timestamp == end


def test_doctor_cannot_issue_once_the_credential_ended_and_can_again_after_renewal(
    registry, chain, hospital, doctor, credential_end, reverts
):
    end = chain.pending_timestamp + HOUR
    registry.renewMember(doctor, end, sender=hospital)
    travel_to(chain, end + 1)
    assert not registry.hasRole(DOCTOR_ROLE, doctor)

    with reverts(registry.CredentialExpired, account=doctor, role=DOCTOR_ROLE, validUntil=end):
        issue_by(registry, chain, doctor)

    tx = registry.renewMember(doctor, credential_end, sender=hospital)

    assert_events(
        tx, registry, event("CredentialRenewed", account=doctor, renewedBy=hospital, validUntil=credential_end)
    )
    assert registry.hasRole(DOCTOR_ROLE, doctor)
    issue_by(registry, chain, doctor)


# ------------------------------------------------------------------------------------- renewal


@pytest.mark.parametrize("name", ["hospital", "doctor", "pharmacy", "courier", "auditor"])
def test_regulator_renews_any_member(registry, regulator, parties, credential_end, name):
    account = parties[name]
    before = registry.member(account)
    if name == "doctor":  # a doctor's licence never outlives its hospital's credential
        registry.renewMember(parties["hospital"], credential_end + YEAR, sender=regulator)

    tx = registry.renewMember(account, credential_end + YEAR, sender=regulator)

    assert_events(
        tx, registry, event("CredentialRenewed", account=account, renewedBy=regulator, validUntil=credential_end + YEAR)
    )
    assert registry.member(account) == (before.roles, credential_end + YEAR, before.hospital)


def test_regulator_can_shorten_a_credential(registry, chain, regulator, pharmacy):
    end = chain.pending_timestamp + HOUR
    registry.renewMember(pharmacy, end, sender=regulator)
    travel_to(chain, end + 1)

    assert not registry.hasRole(PHARMACY_ROLE, pharmacy)


def test_other_hospital_cannot_renew_a_doctor(registry, other_hospital, doctor, credential_end, reverts):
    with reverts(registry.NotDoctorsHospital, caller=other_hospital, doctor=doctor):
        registry.renewMember(doctor, credential_end + YEAR, sender=other_hospital)


def test_hospital_cannot_renew_a_member_that_is_not_its_doctor(registry, hospital, pharmacy, credential_end, reverts):
    with reverts(registry.NotDoctorsHospital, caller=hospital, doctor=pharmacy):
        registry.renewMember(pharmacy, credential_end + YEAR, sender=hospital)


def test_renewing_someone_who_never_was_a_member_fails(registry, regulator, stranger, credential_end, reverts):
    with reverts(registry.NotAMember, account=stranger):
        registry.renewMember(stranger, credential_end, sender=regulator)


def test_renewing_a_member_whose_every_role_was_revoked_fails(registry, regulator, pharmacy, credential_end, reverts):
    registry.revokeRole(PHARMACY_ROLE, pharmacy, sender=regulator)
    with reverts(registry.NotAMember, account=pharmacy):
        registry.renewMember(pharmacy, credential_end + YEAR, sender=regulator)


def test_renewing_to_an_end_that_is_not_in_the_future_fails(registry, chain, regulator, pharmacy, reverts):
    now = chain.pending_timestamp + 10
    next_block_at(chain, now)
    with reverts(registry.InvalidCredentialEnd, validUntil=now, nowTime=now):
        registry.renewMember(pharmacy, now, sender=regulator)


# ---------------------------------------------------------------------------------- revocation


def test_hospital_revokes_its_doctor_who_is_refused_at_once(registry, chain, hospital, doctor, credential_end, reverts):
    tx = registry.revokeRole(DOCTOR_ROLE, doctor, sender=hospital)

    assert_events(tx, registry, event("RoleRevoked", role=DOCTOR_ROLE, account=doctor, sender=hospital))
    assert registry.member(doctor) == (0, credential_end, hospital.address)
    assert not registry.hasRole(DOCTOR_ROLE, doctor)
    with reverts(registry.AccessControlUnauthorizedAccount, account=doctor, neededRole=DOCTOR_ROLE):
        issue_by(registry, chain, doctor)


def test_other_hospital_cannot_revoke_a_doctor(registry, other_hospital, doctor, reverts):
    with reverts(registry.NotDoctorsHospital, caller=other_hospital, doctor=doctor):
        registry.revokeRole(DOCTOR_ROLE, doctor, sender=other_hospital)


def test_hospital_cannot_revoke_other_kinds_of_member(registry, hospital, pharmacy, reverts):
    with reverts(registry.AccessControlUnauthorizedAccount, account=hospital, neededRole=DEFAULT_ADMIN_ROLE):
        registry.revokeRole(PHARMACY_ROLE, pharmacy, sender=hospital)


@pytest.mark.parametrize(
    "name, role",
    [
        ("hospital", HOSPITAL_ROLE),
        ("doctor", DOCTOR_ROLE),
        ("other_doctor", DOCTOR_ROLE),
        ("pharmacy", PHARMACY_ROLE),
        ("courier", COURIER_ROLE),
        ("auditor", AUDITOR_ROLE),
    ],
    ids=["hospital", "doctor", "other-hospitals-doctor", "pharmacy", "courier", "auditor"],
)
def test_regulator_revokes_anyone(registry, regulator, parties, name, role):
    account = parties[name]

    tx = registry.revokeRole(role, account, sender=regulator)

    assert_events(
        tx,
        registry,
        event("RoleRevoked", role=role, account=account, sender=regulator),
        event("MemberBarred", account=account, by=regulator),
    )
    assert not registry.hasRole(role, account)
    assert registry.member(account).roles == 0


def test_revoking_a_role_the_account_does_not_hold_changes_nothing(registry, regulator, courier):
    before = registry.member(courier)

    tx = registry.revokeRole(PHARMACY_ROLE, courier, sender=regulator)

    assert registry_events(tx, registry) == []
    assert registry.member(courier) == before


def test_revoking_an_unknown_role_fails(registry, regulator, courier, reverts):
    with reverts(registry.UnknownRole, role=NURSE_ROLE):
        registry.revokeRole(NURSE_ROLE, courier, sender=regulator)


def test_revoking_one_of_two_roles_keeps_the_other(registry, regulator, courier, credential_end):
    registry.admitMember(courier, AUDITOR_ROLE, credential_end, sender=regulator)

    registry.revokeRole(COURIER_ROLE, courier, sender=regulator)

    assert registry.member(courier) == (ROLE_BITS[AUDITOR_ROLE], credential_end, ZERO_ADDRESS)
    assert registry.hasRole(AUDITOR_ROLE, courier) and not registry.hasRole(COURIER_ROLE, courier)


def test_member_may_renounce_its_own_role(registry, pharmacy):
    tx = registry.renounceRole(PHARMACY_ROLE, pharmacy, sender=pharmacy)

    assert_events(tx, registry, event("RoleRevoked", role=PHARMACY_ROLE, account=pharmacy, sender=pharmacy))
    assert not registry.hasRole(PHARMACY_ROLE, pharmacy)


def test_no_one_may_renounce_a_role_for_someone_else(registry, courier, pharmacy, reverts):
    with reverts(registry.AccessControlBadConfirmation):
        registry.renounceRole(PHARMACY_ROLE, pharmacy, sender=courier)


def test_revoked_doctor_may_be_admitted_by_another_hospital(
    registry, chain, hospital, other_hospital, doctor, credential_end
):
    registry.revokeRole(DOCTOR_ROLE, doctor, sender=hospital)

    registry.admitMember(doctor, DOCTOR_ROLE, credential_end, sender=other_hospital)

    assert registry.member(doctor) == (ROLE_BITS[DOCTOR_ROLE], credential_end, other_hospital.address)
    tx = issue_by(registry, chain, doctor)
    (issued,) = registry_events(tx, registry)
    assert issued[1]["hospital"] == other_hospital.address


def test_revoked_hospital_can_no_longer_manage_its_doctors_but_the_regulator_can(
    registry, regulator, hospital, doctor, credential_end, reverts
):
    registry.revokeRole(HOSPITAL_ROLE, hospital, sender=regulator)

    with reverts(registry.AccessControlUnauthorizedAccount, account=hospital, neededRole=HOSPITAL_ROLE):
        registry.renewMember(doctor, credential_end + YEAR, sender=hospital)
    with reverts(registry.AccessControlUnauthorizedAccount, account=hospital, neededRole=HOSPITAL_ROLE):
        registry.revokeRole(DOCTOR_ROLE, doctor, sender=hospital)

    registry.revokeRole(DOCTOR_ROLE, doctor, sender=regulator)
    assert not registry.hasRole(DOCTOR_ROLE, doctor)


# ------------------------------------------------- a hospital's reach: its doctors, nothing more
#
# A member has one credential end date for all its roles, so a hospital that could make any member
# one of its doctors could move that member's other licences too. A hospital may only admit and renew
# accounts that hold no role but doctor; removing its own doctor moves no date, so it may always do that.


def test_hospital_cannot_prolong_its_own_credential_by_making_itself_a_doctor(
    registry, chain, hospital, credential_end, reverts
):
    with reverts(registry.HoldsOtherRoles, account=hospital, roles=ROLE_BITS[HOSPITAL_ROLE]):
        registry.admitMember(hospital, DOCTOR_ROLE, credential_end + 10 * YEAR, sender=hospital)
    with reverts(registry.NotDoctorsHospital, caller=hospital, doctor=hospital):
        registry.renewMember(hospital, credential_end + 10 * YEAR, sender=hospital)

    travel_to(chain, credential_end + 1)
    assert not registry.hasRole(HOSPITAL_ROLE, hospital)


@pytest.mark.parametrize("name", ["pharmacy", "courier", "auditor", "other_hospital"])
def test_hospital_cannot_make_another_kind_of_member_its_doctor(
    registry, chain, hospital, parties, credential_end, reverts, name
):
    """Else it could cut short (or prolong) a licence only the regulator grants."""
    member = parties[name]
    soon = chain.pending_timestamp + MINUTE

    with reverts(registry.HoldsOtherRoles, account=member, roles=registry.member(member).roles):
        registry.admitMember(member, DOCTOR_ROLE, soon, sender=hospital)

    travel_to(chain, soon + 1)
    assert registry.member(member).validUntil == credential_end


def test_hospital_cannot_move_the_credential_of_a_doctor_the_regulator_gave_another_role(
    registry, regulator, hospital, doctor, credential_end, reverts
):
    registry.admitMember(doctor, AUDITOR_ROLE, credential_end, sender=regulator)
    roles = ROLE_BITS[DOCTOR_ROLE] | ROLE_BITS[AUDITOR_ROLE]

    with reverts(registry.HoldsOtherRoles, account=doctor, roles=roles):
        registry.renewMember(doctor, credential_end + YEAR, sender=hospital)
    with reverts(registry.HoldsOtherRoles, account=doctor, roles=roles):
        registry.admitMember(doctor, DOCTOR_ROLE, credential_end + YEAR, sender=hospital)

    registry.renewMember(hospital, credential_end + YEAR, sender=regulator)  # a doctor's never outlives it
    registry.renewMember(doctor, credential_end + YEAR, sender=regulator)
    assert registry.member(doctor) == (roles, credential_end + YEAR, hospital.address)


def test_hospital_can_still_remove_its_doctor_who_holds_another_role(
    registry, chain, regulator, hospital, doctor, credential_end
):
    """Removing a doctor clears the doctor role only -- no credential date moves -- so a hospital must be
    able to stop a doctor issuing in its name whatever else the regulator made that account."""
    registry.admitMember(doctor, AUDITOR_ROLE, credential_end, sender=regulator)

    tx = registry.revokeRole(DOCTOR_ROLE, doctor, sender=hospital)

    assert_events(tx, registry, event("RoleRevoked", role=DOCTOR_ROLE, account=doctor, sender=hospital))
    assert registry.member(doctor) == (ROLE_BITS[AUDITOR_ROLE], credential_end, hospital.address)
    assert not registry.hasRole(DOCTOR_ROLE, doctor)
    assert registry.hasRole(AUDITOR_ROLE, doctor)


def test_hospital_may_admit_a_former_member_that_holds_no_role_now(
    registry, chain, regulator, hospital, pharmacy, credential_end, reverts
):
    """Once the regulator, which revoked it, lets it back (until then it is barred: see test_hardening)."""
    registry.revokeRole(PHARMACY_ROLE, pharmacy, sender=regulator)
    registry.allowReadmission(pharmacy, sender=regulator)
    until = credential_end

    registry.admitMember(pharmacy, DOCTOR_ROLE, until, sender=hospital)

    assert registry.member(pharmacy) == (ROLE_BITS[DOCTOR_ROLE], until, hospital.address)


# --------------------------------------------------------------------------- regulator handover


def test_regulator_handover_takes_two_steps_and_the_delay(registry, chain, regulator, stranger, reverts):
    new_regulator = stranger

    begun = registry.beginDefaultAdminTransfer(new_regulator, sender=regulator)

    schedule = begun.timestamp + ADMIN_TRANSFER_DELAY
    assert_events(
        begun, registry, event("DefaultAdminTransferScheduled", newAdmin=new_regulator, acceptSchedule=schedule)
    )
    assert registry.pendingDefaultAdmin() == (new_regulator.address, schedule)
    assert registry.defaultAdmin() == regulator.address

    # Not before the delay has passed -- not even in its last second.
    for when in (begun.timestamp + 1, schedule):
        next_block_at(chain, when)
        with reverts(registry.AccessControlEnforcedDefaultAdminDelay, schedule=schedule):
            registry.acceptDefaultAdminTransfer(sender=new_regulator)

    next_block_at(chain, schedule + 1)
    accepted = registry.acceptDefaultAdminTransfer(sender=new_regulator)

    assert_events(
        accepted,
        registry,
        event("RoleRevoked", role=DEFAULT_ADMIN_ROLE, account=regulator, sender=new_regulator),
        event("RoleGranted", role=DEFAULT_ADMIN_ROLE, account=new_regulator, sender=new_regulator),
    )
    assert registry.defaultAdmin() == new_regulator.address
    assert registry.hasRole(DEFAULT_ADMIN_ROLE, new_regulator)
    assert not registry.hasRole(DEFAULT_ADMIN_ROLE, regulator)
    assert registry.pendingDefaultAdmin() == (ZERO_ADDRESS, 0)

    with reverts(registry.AccessControlUnauthorizedAccount, account=regulator, neededRole=DEFAULT_ADMIN_ROLE):
        registry.pause(sender=regulator)
    registry.pause(sender=new_regulator)
    assert registry.paused()


def test_only_the_pending_regulator_can_accept_the_handover(registry, chain, regulator, stranger, auditor, reverts):
    begun = registry.beginDefaultAdminTransfer(stranger, sender=regulator)
    next_block_at(chain, begun.timestamp + ADMIN_TRANSFER_DELAY + 1)

    with reverts(registry.AccessControlInvalidDefaultAdmin, defaultAdmin=auditor):
        registry.acceptDefaultAdminTransfer(sender=auditor)


def test_regulator_can_cancel_a_pending_handover(registry, chain, regulator, stranger, reverts):
    begun = registry.beginDefaultAdminTransfer(stranger, sender=regulator)

    tx = registry.cancelDefaultAdminTransfer(sender=regulator)

    assert_events(tx, registry, event("DefaultAdminTransferCanceled"))
    next_block_at(chain, begun.timestamp + ADMIN_TRANSFER_DELAY + 1)
    with reverts(registry.AccessControlInvalidDefaultAdmin, defaultAdmin=stranger):
        registry.acceptDefaultAdminTransfer(sender=stranger)
    assert registry.defaultAdmin() == regulator.address
