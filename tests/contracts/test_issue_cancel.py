"""Issuing and cancelling prescriptions: deterministic ids, the issue rules, no patient data on chain.

Spec: IPrescriptionRegistry.issue / cancel / computeId, and the id scheme
    terms = keccak256(abi.encode(doctor, docHash, designatedPharmacy))
    id    = keccak256(abi.encode(claimKey, terms))
"""

import pytest
from eth_abi import decode as abi_decode
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rxchain.core import ids

from .conftest import (
    DAY,
    DOCTOR_ROLE,
    HOUR,
    MAX_FILLS,
    MAX_VALIDITY,
    PHARMACY_ROLE,
    ZERO_ADDRESS,
    Status,
    assert_events,
    event,
    fresh_claim_key,
    fresh_doc_hash,
    next_block_at,
    registry_events,
    travel_to,
)

# -------------------------------------------------------------------------------------- issue


def test_doctor_issues_a_prescription_stamped_with_the_block_time(registry, chain, doctor, hospital):
    claim_key, doc_hash = fresh_claim_key(), fresh_doc_hash()
    expires_at = chain.pending_timestamp + 2 * DAY
    rx_id, _ = registry.computeId(doctor, doc_hash, ZERO_ADDRESS, claim_key.address)

    tx = registry.issue(doc_hash, claim_key.address, ZERO_ADDRESS, expires_at, 2, sender=doctor)

    assert tx.return_value == rx_id
    assert_events(
        tx,
        registry,
        event(
            "PrescriptionIssued",
            id=rx_id,
            doctor=doctor,
            hospital=hospital,
            docHash=doc_hash,
            designatedPharmacy=ZERO_ADDRESS,
            expiresAt=expires_at,
            fills=2,
        ),
    )
    assert registry.prescription(rx_id) == (doctor.address, tx.timestamp, expires_at, Status.ACTIVE, 2)
    assert tx.timestamp == chain.blocks[tx.block_number].timestamp


def test_prescription_for_a_designated_pharmacy_names_it_in_the_event(clinic, registry, doctor, hospital, pharmacy):
    rx = clinic.issue(doctor, pharmacy=pharmacy)

    assert_events(
        rx.issue_tx,
        registry,
        event(
            "PrescriptionIssued",
            id=rx.id,
            doctor=doctor,
            hospital=hospital,
            docHash=rx.doc_hash,
            designatedPharmacy=pharmacy,
            expiresAt=rx.expires_at,
            fills=1,
        ),
    )


def test_event_names_the_hospital_of_the_issuing_doctor(clinic, registry, other_doctor, other_hospital):
    rx = clinic.issue(other_doctor)

    ((name, issued),) = registry_events(rx.issue_tx, registry)
    assert name == "PrescriptionIssued"
    assert issued["doctor"] == other_doctor.address
    assert issued["hospital"] == other_hospital.address


def test_unknown_prescription_reads_as_all_zero(registry):
    assert registry.prescription(keccak(text="never issued")) == (ZERO_ADDRESS, 0, 0, Status.NONE, 0)


# ------------------------------------------------------------------------------ deterministic id


def test_issue_returns_the_id_that_compute_id_and_the_client_compute(clinic, registry, doctor, pharmacy):
    rx = clinic.issue(doctor, pharmacy=pharmacy)

    on_chain_id, on_chain_terms = registry.computeId(doctor, rx.doc_hash, pharmacy, rx.claim_key.address)
    assert rx.issue_tx.return_value == on_chain_id
    assert on_chain_terms == ids.terms_hash(doctor.address, rx.doc_hash, pharmacy.address)
    assert on_chain_id == ids.prescription_id(rx.claim_key.address, on_chain_terms)
    assert on_chain_id == ids.prescription_id_for(doctor.address, rx.doc_hash, rx.claim_key.address, pharmacy.address)


_addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
_hashes = st.binary(min_size=32, max_size=32)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doctor=_addresses, doc_hash=_hashes, pharmacy=st.one_of(st.just(ZERO_ADDRESS), _addresses), claim_key=_addresses)
def test_compute_id_agrees_with_the_client_for_any_inputs(registry, doctor, doc_hash, pharmacy, claim_key):
    rx_id, terms = registry.computeId(doctor, doc_hash, pharmacy, claim_key)

    assert terms == ids.terms_hash(doctor, doc_hash, pharmacy)
    assert rx_id == ids.prescription_id(claim_key, terms)


def test_reissuing_the_same_prescription_fails_even_with_other_expiry_and_fills(clinic, registry, doctor, reverts):
    rx = clinic.issue(doctor, fills=1)

    with reverts(registry.AlreadyIssued, id=rx.id):
        registry.issue(rx.doc_hash, rx.claim_key.address, ZERO_ADDRESS, rx.expires_at - HOUR, 2, sender=doctor)


def test_reissuing_a_cancelled_prescription_fails(clinic, registry, doctor, reverts):
    rx = clinic.issue(doctor)
    registry.cancel(rx.id, sender=doctor)

    with reverts(registry.AlreadyIssued, id=rx.id):
        registry.issue(rx.doc_hash, rx.claim_key.address, ZERO_ADDRESS, rx.expires_at, 1, sender=doctor)


def test_id_binds_the_doctor_pharmacy_document_and_claim_key(clinic, registry, doctor, other_doctor, pharmacy):
    rx = clinic.issue(doctor)

    variants = [
        clinic.issue(other_doctor, doc_hash=rx.doc_hash, claim_key=rx.claim_key),
        clinic.issue(doctor, doc_hash=rx.doc_hash, claim_key=rx.claim_key, pharmacy=pharmacy),
        clinic.issue(doctor, claim_key=rx.claim_key),
        clinic.issue(doctor, doc_hash=rx.doc_hash),
    ]

    assert len({rx.id, *(v.id for v in variants)}) == 5
    for v in variants:
        assert registry.prescription(v.id).status == Status.ACTIVE


# ---------------------------------------------------------------------------------- no patient data


def test_issue_carries_only_hashes_addresses_and_numbers(clinic, registry, doctor, hospital, pharmacy):
    rx = clinic.issue(doctor, pharmacy=pharmacy, fills=3)
    tx = rx.issue_tx

    # Calldata: the selector and five fixed-size words -- nothing of variable length to hide data in.
    calldata = bytes(tx.transaction.data)
    assert calldata[:4] == keccak(text="issue(bytes32,address,address,uint40,uint8)")[:4]
    assert len(calldata) == 4 + 5 * 32
    assert abi_decode(["bytes32", "address", "address", "uint40", "uint8"], calldata[4:]) == (
        rx.doc_hash,
        rx.claim_key.address.lower(),
        pharmacy.address.lower(),
        rx.expires_at,
        3,
    )

    # The log: the id, doctor and hospital as topics; four words of data, each one expected.
    (log,) = tx.logs
    topics = [bytes(t) for t in log["topics"]]
    assert topics == [
        keccak(text="PrescriptionIssued(bytes32,address,address,bytes32,address,uint40,uint8)"),
        rx.id,
        bytes(12) + bytes.fromhex(doctor.address[2:]),
        bytes(12) + bytes.fromhex(hospital.address[2:]),
    ]
    data = bytes(log["data"])
    assert data == (
        rx.doc_hash
        + bytes(12)
        + bytes.fromhex(pharmacy.address[2:])
        + rx.expires_at.to_bytes(32, "big")
        + (3).to_bytes(32, "big")
    )


def test_no_event_has_a_free_form_field(registry):
    free_form = [
        (e.name, i.name) for e in registry.contract_type.events for i in e.inputs if i.type in ("string", "bytes")
    ]
    assert free_form == []


# ---------------------------------------------------------------------------------- issue rules


def test_zero_document_hash_is_refused(registry, doctor, chain, reverts):
    with reverts(registry.ZeroDocumentHash):
        registry.issue(
            bytes(32), fresh_claim_key().address, ZERO_ADDRESS, chain.pending_timestamp + DAY, 1, sender=doctor
        )


def test_zero_claim_key_is_refused(registry, doctor, chain, reverts):
    with reverts(registry.ZeroClaimKey):
        registry.issue(fresh_doc_hash(), ZERO_ADDRESS, ZERO_ADDRESS, chain.pending_timestamp + DAY, 1, sender=doctor)


@pytest.mark.parametrize(
    "offset",
    [0, -1, -DAY, MAX_VALIDITY + 1, 10 * MAX_VALIDITY],
    ids=["expiring-now", "expired-a-second-ago", "expired-a-day-ago", "a-second-past-the-limit", "far-future"],
)
def test_expiry_must_be_after_now_and_within_the_maximum_validity(registry, chain, doctor, reverts, offset):
    now = chain.pending_timestamp + 10
    next_block_at(chain, now)
    with reverts(registry.InvalidExpiry, expiresAt=now + offset, latestAllowed=now + MAX_VALIDITY):
        registry.issue(fresh_doc_hash(), fresh_claim_key().address, ZERO_ADDRESS, now + offset, 1, sender=doctor)


@pytest.mark.parametrize("offset", [1, MAX_VALIDITY], ids=["a-second-ahead", "the-maximum-validity"])
def test_expiry_at_the_bounds_is_accepted(clinic, registry, chain, doctor, offset):
    now = chain.pending_timestamp + 10
    next_block_at(chain, now)

    rx = clinic.issue(doctor, expires_at=now + offset)

    assert registry.prescription(rx.id).expiresAt == now + offset


@pytest.mark.parametrize("fills", [0, MAX_FILLS + 1, 255])
def test_fills_must_be_between_one_and_the_maximum(registry, chain, doctor, reverts, fills):
    with reverts(registry.InvalidFills, fills=fills, maxFills=MAX_FILLS):
        registry.issue(
            fresh_doc_hash(),
            fresh_claim_key().address,
            ZERO_ADDRESS,
            chain.pending_timestamp + DAY,
            fills,
            sender=doctor,
        )


def test_the_maximum_number_of_fills_is_accepted(clinic, registry, doctor):
    rx = clinic.issue(doctor, fills=MAX_FILLS)

    assert registry.prescription(rx.id).fillsLeft == MAX_FILLS


@pytest.mark.parametrize("name", ["courier", "auditor", "hospital", "doctor", "stranger", "regulator"])
def test_designating_an_account_that_is_not_a_pharmacy_fails(registry, chain, doctor, parties, reverts, name):
    with reverts(registry.NotAPharmacy, pharmacy=parties[name]):
        registry.issue(
            fresh_doc_hash(), fresh_claim_key().address, parties[name], chain.pending_timestamp + DAY, 1, sender=doctor
        )


def test_designating_a_pharmacy_whose_credential_ended_fails(registry, chain, regulator, doctor, pharmacy, reverts):
    end = chain.pending_timestamp + HOUR
    registry.renewMember(pharmacy, end, sender=regulator)
    travel_to(chain, end + 1)

    with reverts(registry.NotAPharmacy, pharmacy=pharmacy):
        registry.issue(
            fresh_doc_hash(), fresh_claim_key().address, pharmacy, chain.pending_timestamp + DAY, 1, sender=doctor
        )


def test_designating_a_revoked_pharmacy_fails(registry, chain, regulator, doctor, pharmacy, reverts):
    registry.revokeRole(PHARMACY_ROLE, pharmacy, sender=regulator)

    with reverts(registry.NotAPharmacy, pharmacy=pharmacy):
        registry.issue(
            fresh_doc_hash(), fresh_claim_key().address, pharmacy, chain.pending_timestamp + DAY, 1, sender=doctor
        )


def test_only_a_doctor_in_good_standing_issues(registry, chain, pharmacy, reverts):
    with reverts(registry.AccessControlUnauthorizedAccount, account=pharmacy, neededRole=DOCTOR_ROLE):
        registry.issue(
            fresh_doc_hash(), fresh_claim_key().address, ZERO_ADDRESS, chain.pending_timestamp + DAY, 1, sender=pharmacy
        )


# ------------------------------------------------------------------------------------- cancel


def test_issuing_doctor_cancels_an_unredeemed_prescription(clinic, registry, doctor, reverts, pharmacy):
    rx = clinic.issue(doctor, fills=2)
    issued = registry.prescription(rx.id)

    tx = registry.cancel(rx.id, sender=doctor)

    assert_events(tx, registry, event("PrescriptionCancelled", id=rx.id, by=doctor))
    assert registry.prescription(rx.id) == (doctor.address, issued.issuedAt, rx.expires_at, Status.CANCELLED, 2)
    with reverts(registry.PrescriptionIsCancelled, id=rx.id):
        clinic.redeem(rx, pharmacy, fills_left=2)


def test_regulator_cancels_an_unredeemed_prescription(clinic, registry, doctor, regulator):
    rx = clinic.issue(doctor)

    tx = registry.cancel(rx.id, sender=regulator)

    assert_events(tx, registry, event("PrescriptionCancelled", id=rx.id, by=regulator))
    assert registry.prescription(rx.id).status == Status.CANCELLED


def test_regulator_cancels_the_remaining_fills_of_a_refillable_prescription(
    clinic, registry, doctor, regulator, pharmacy, reverts
):
    rx = clinic.received(clinic.issue(doctor, fills=2))
    assert registry.prescription(rx.id).status == Status.REFILLABLE

    tx = registry.cancel(rx.id, sender=regulator)

    assert_events(tx, registry, event("PrescriptionCancelled", id=rx.id, by=regulator))
    assert registry.prescription(rx.id)[3:] == (Status.CANCELLED, 1)
    with reverts(registry.PrescriptionIsCancelled, id=rx.id):
        clinic.redeem(rx, pharmacy, fills_left=1)


def test_issuing_doctor_cannot_cancel_a_refillable_prescription(clinic, registry, doctor, reverts):
    rx = clinic.received(clinic.issue(doctor, fills=2))

    with reverts(registry.NotIssuer, id=rx.id, caller=doctor):
        registry.cancel(rx.id, sender=doctor)


@pytest.mark.parametrize("holder", ["pharmacy", "courier", "doctor_and_pharmacy"])
def test_the_holder_of_a_refillable_prescription_cannot_cancel_it(
    clinic, registry, regulator, doctor, parties, credential_end, reverts, holder
):
    """Only the issuing doctor cancels, and only while it is Active: holding the drugs of a fill gives no say
    over the fills left -- not even to an account that is a doctor as well as the pharmacy that holds it."""
    if holder == "doctor_and_pharmacy":
        holder_account = parties["other_doctor"]
        registry.admitMember(holder_account, PHARMACY_ROLE, credential_end, sender=regulator)
    else:
        holder_account = parties[holder]
    rx = clinic.issue(doctor, fills=2)
    if holder == "courier":
        clinic.received(rx)
    else:  # over the counter: the pharmacy that filled it holds it
        clinic.dispensed(rx, pharmacy=holder_account)
        clinic.deliver(rx, holder_account)
        clinic.confirm(rx, holder_account)
    assert registry.prescription(rx.id)[::3] == (holder_account.address, Status.REFILLABLE)

    with reverts(registry.NotIssuer, id=rx.id, caller=holder_account):
        registry.cancel(rx.id, sender=holder_account)


@pytest.mark.parametrize("name", ["other_doctor", "hospital", "pharmacy", "courier", "auditor", "stranger"])
def test_nobody_but_the_issuing_doctor_and_the_regulator_cancels(clinic, registry, doctor, parties, reverts, name):
    rx = clinic.issue(doctor)

    with reverts(registry.NotIssuer, id=rx.id, caller=parties[name]):
        registry.cancel(rx.id, sender=parties[name])


@pytest.mark.parametrize("stage", ["dispensed", "dispatched", "delivered", "received"])
@pytest.mark.parametrize("canceller", ["doctor", "regulator"])
def test_a_redeemed_prescription_cannot_be_cancelled(clinic, registry, parties, reverts, stage, canceller):
    rx = getattr(clinic, stage)()

    with reverts(registry.AlreadyRedeemed, id=rx.id):
        registry.cancel(rx.id, sender=parties[canceller])


def test_cancelling_twice_fails(clinic, registry, doctor, regulator, reverts):
    rx = clinic.issue(doctor)
    registry.cancel(rx.id, sender=doctor)

    with reverts(registry.PrescriptionIsCancelled, id=rx.id):
        registry.cancel(rx.id, sender=regulator)


def test_cancelling_an_unknown_prescription_fails(registry, regulator, reverts):
    unknown = keccak(text="never issued")
    with reverts(registry.UnknownPrescription, id=unknown):
        registry.cancel(unknown, sender=regulator)


def test_doctor_whose_credential_ended_cannot_cancel_but_the_regulator_can(
    clinic, registry, chain, hospital, doctor, regulator, reverts
):
    rx = clinic.issue(doctor)
    end = chain.pending_timestamp + HOUR
    registry.renewMember(doctor, end, sender=hospital)
    travel_to(chain, end + 1)

    with reverts(registry.CredentialExpired, account=doctor, role=DOCTOR_ROLE, validUntil=end):
        registry.cancel(rx.id, sender=doctor)
    registry.cancel(rx.id, sender=regulator)
    assert registry.prescription(rx.id).status == Status.CANCELLED


def test_revoked_doctor_cannot_cancel(clinic, registry, hospital, doctor, reverts):
    rx = clinic.issue(doctor)
    registry.revokeRole(DOCTOR_ROLE, doctor, sender=hospital)

    with reverts(registry.AccessControlUnauthorizedAccount, account=doctor, neededRole=DOCTOR_ROLE):
        registry.cancel(rx.id, sender=doctor)


def test_prescriptions_of_a_revoked_doctor_stay_redeemable(clinic, registry, hospital, doctor, pharmacy):
    """Revocation stops the doctor issuing; what was issued before stays valid until cancelled."""
    rx = clinic.issue(doctor)
    registry.revokeRole(DOCTOR_ROLE, doctor, sender=hospital)

    clinic.redeem(rx, pharmacy)

    assert registry.prescription(rx.id).status == Status.DISPENSED
