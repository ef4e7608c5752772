"""Batch issuance: a hospital commits many prescriptions for its doctors under one Merkle root.

Spec: IPrescriptionRegistry.issueBatch / redeemBatched / cancelBatched / cancelBatch / batch. Nothing
is stored per prescription until its first redemption opens it with a Merkle proof (sorted-pair
keccak256, odd last node carried up -- rxchain.core.batch builds the same tree for the client); the
named doctor must then be a doctor of the batch's hospital.
"""

import pytest
from ape.exceptions import ContractLogicError
from eth_utils import keccak

from rxchain.core import batch as batches
from rxchain.core import ids

from .conftest import (
    DAY,
    DOCTOR_ROLE,
    HOSPITAL_ROLE,
    HOUR,
    MAX_FILLS,
    MAX_VALIDITY,
    MINUTE,
    ZERO_ADDRESS,
    Status,
    assert_events,
    event,
    fresh_claim_key,
    fresh_doc_hash,
    next_block_at,
    travel_to,
)

MAX_BATCH = 1024
NOTHING = (ZERO_ADDRESS, 0, 0, Status.NONE, 0)


# ------------------------------------------------------------------------------------- issue


def test_hospital_issues_a_batch_committed_by_the_merkle_root_of_its_ids(clinic, registry, hospital):
    made = clinic.issue_batch(hospital, size=5, fills=2)
    tx = made.issue_tx

    assert tx.return_value == batches.merkle_root(made.ids) == made.root
    assert_events(
        tx,
        registry,
        *[event("PrescriptionBatched", id=rx_id, root=made.root) for rx_id in made.ids],
        event("BatchIssued", root=made.root, hospital=hospital, expiresAt=made.expires_at, fills=2, count=5),
    )
    assert registry.batch(hospital, made.root) == (tx.timestamp, made.expires_at, 2, False)
    for rx in made.rxs:  # nothing is stored per prescription until it is first redeemed
        assert registry.prescription(rx.id) == NOTHING


def test_a_batch_of_one_is_keyed_by_the_leaf_of_its_id(clinic, registry, hospital):
    made = clinic.issue_batch(hospital, size=1)

    assert made.root == keccak(made.ids[0]) == batches.leaf(made.ids[0])
    assert made.rxs[0].proof == ()


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7])
def test_every_prescription_of_a_batch_redeems_with_its_proof(clinic, registry, hospital, doctor, pharmacy, size):
    made = clinic.issue_batch(hospital, size=size)
    issued_at = made.issue_tx.timestamp

    for rx in made.rxs:
        assert batches.verify_proof(list(rx.proof), made.root, rx.id)
        tx = clinic.redeem(rx, pharmacy)
        assert tx.return_value == rx.id
        assert_events(
            tx,
            registry,
            event("PrescriptionOpened", id=rx.id, doctor=doctor, hospital=hospital, root=made.root),
            event("PrescriptionRedeemed", id=rx.id, pharmacy=pharmacy, fillsLeft=0),
        )
        assert registry.prescription(rx.id) == (pharmacy.address, issued_at, made.expires_at, Status.DISPENSED, 0)


def test_a_batched_prescription_follows_the_whole_trail(clinic, registry, hospital, pharmacy, courier):
    rx = clinic.issue_batch(hospital, size=3).rxs[1]

    clinic.received(rx, pharmacy=pharmacy, courier=courier)

    assert registry.prescription(rx.id)[::3] == (courier.address, Status.COMPLETED)


def test_later_fills_of_a_batched_prescription_need_no_proof(
    clinic, registry, hospital, pharmacy, other_pharmacy, reverts
):
    rx = clinic.issue_batch(hospital, size=3, fills=3).rxs[2]
    clinic.received(rx, pharmacy=pharmacy)  # first fill, opened with the proof
    assert registry.prescription(rx.id)[3:] == (Status.REFILLABLE, 2)

    clinic.redeem(rx, other_pharmacy, batched=False)  # second fill, plain redeem
    clinic.received(rx, pharmacy=other_pharmacy)
    clinic.redeem(rx, pharmacy, proof=[])  # third fill, redeemBatched without a proof

    assert registry.prescription(rx.id)[3:] == (Status.DISPENSED, 0)
    with reverts(registry.AlreadyRedeemed, id=rx.id):
        clinic.redeem(rx, other_pharmacy, fills_left=0)


def test_an_unopened_batched_prescription_cannot_be_redeemed_without_its_batch(
    clinic, registry, hospital, pharmacy, reverts
):
    rx = clinic.issue_batch(hospital, size=2).rxs[0]

    with reverts(registry.UnknownPrescription, id=rx.id):
        clinic.redeem(rx, pharmacy, batched=False)


def test_a_batched_prescription_is_redeemed_once(clinic, registry, hospital, pharmacy, other_pharmacy, reverts):
    rx = clinic.dispensed(clinic.issue_batch(hospital, size=2).rxs[0], pharmacy=pharmacy)

    with reverts(registry.AlreadyRedeemed, id=rx.id):
        clinic.redeem(rx, other_pharmacy, fills_left=1)


def test_reissuing_the_same_batch_fails(clinic, registry, hospital, reverts):
    made = clinic.issue_batch(hospital, size=3)

    with reverts(registry.BatchAlreadyIssued, hospital=hospital, root=made.root):
        registry.issueBatch(made.ids, made.expires_at, 1, sender=hospital)


@pytest.mark.parametrize("count", [0, MAX_BATCH + 1])
def test_a_batch_holds_one_to_1024_prescriptions(registry, chain, hospital, reverts, count):
    rx_ids = [keccak(text=f"batched {i}") for i in range(count)]
    with reverts(registry.InvalidBatchSize, count=count, maximum=MAX_BATCH):
        registry.issueBatch(rx_ids, chain.pending_timestamp + DAY, 1, sender=hospital)


def test_the_largest_batch_is_accepted(registry, chain, hospital):
    rx_ids = [keccak(text=f"batched {i}") for i in range(MAX_BATCH)]

    tx = registry.issueBatch(rx_ids, chain.pending_timestamp + DAY, 1, sender=hospital)

    assert tx.return_value == batches.merkle_root(rx_ids)


@pytest.mark.parametrize("offset", [0, MAX_VALIDITY + 1], ids=["expiring-now", "past-the-maximum-validity"])
def test_a_batch_follows_the_expiry_rule(registry, chain, hospital, reverts, offset):
    now = chain.pending_timestamp + 10
    next_block_at(chain, now)
    with reverts(registry.InvalidExpiry, expiresAt=now + offset, latestAllowed=now + MAX_VALIDITY):
        registry.issueBatch([keccak(text="batched")], now + offset, 1, sender=hospital)


@pytest.mark.parametrize("fills", [0, MAX_FILLS + 1])
def test_a_batch_follows_the_fills_rule(registry, chain, hospital, reverts, fills):
    with reverts(registry.InvalidFills, fills=fills, maxFills=MAX_FILLS):
        registry.issueBatch([keccak(text="batched")], chain.pending_timestamp + DAY, fills, sender=hospital)


def test_a_doctor_cannot_issue_a_batch(registry, chain, doctor, reverts):
    with reverts(registry.AccessControlUnauthorizedAccount, account=doctor, neededRole=HOSPITAL_ROLE):
        registry.issueBatch([keccak(text="batched")], chain.pending_timestamp + DAY, 1, sender=doctor)


def test_a_hospital_whose_credential_ended_cannot_issue_a_batch(registry, chain, hospital, credential_end, reverts):
    travel_to(chain, credential_end + 1)
    with reverts(registry.CredentialExpired, account=hospital, role=HOSPITAL_ROLE, validUntil=credential_end):
        registry.issueBatch([keccak(text="batched")], chain.pending_timestamp + DAY, 1, sender=hospital)


# ----------------------------------------------------------------------------- opening a batch


def test_redeeming_against_an_unknown_batch_fails(clinic, registry, hospital, pharmacy, reverts):
    rx = clinic.issue_batch(hospital, size=2).rxs[0]
    unknown = keccak(text="no such batch")

    with reverts(registry.UnknownBatch, root=unknown):
        clinic.redeem(rx, pharmacy, root=unknown)


@pytest.mark.parametrize("proof", ["of-another-id", "none", "truncated", "tampered"])
def test_a_proof_that_does_not_place_the_id_in_the_batch_fails(clinic, registry, hospital, pharmacy, reverts, proof):
    made = clinic.issue_batch(hospital, size=4)
    rx = made.rxs[0]
    wrong = {
        "of-another-id": made.rxs[2].proof,
        "none": (),
        "truncated": rx.proof[:-1],
        "tampered": (keccak(text="not a sibling"), *rx.proof[1:]),
    }[proof]

    with reverts(registry.NotInBatch, id=rx.id, root=made.root):
        clinic.redeem(rx, pharmacy, proof=wrong)


def test_an_id_left_out_of_the_batch_cannot_borrow_its_root(clinic, registry, hospital, doctor, pharmacy, reverts):
    made = clinic.issue_batch(hospital, size=2)
    outsider = clinic.issue_batch(hospital, size=2).rxs[0]

    with reverts(registry.NotInBatch, id=outsider.id, root=made.root):
        clinic.redeem(outsider, pharmacy, root=made.root, proof=made.rxs[0].proof)


@pytest.mark.parametrize("name", ["other_doctor", "stranger", "pharmacy"])
def test_a_batched_prescription_must_name_a_doctor_of_the_batchs_hospital(
    clinic, registry, parties, hospital, pharmacy, reverts, name
):
    """Only the named doctor's own hospital's batch is looked at: another hospital's doctor, or an account
    that is no hospital's doctor, finds no such batch."""
    named = parties[name]
    made = clinic.issue_batch(hospital, doctors=[parties["doctor"], named])
    rx = made.rxs[1]

    with reverts(registry.UnknownBatch, root=made.root):
        clinic.redeem(rx, pharmacy)

    clinic.redeem(made.rxs[0], pharmacy)  # the hospital's own doctor's prescription is fine


def test_a_batched_prescription_of_a_doctor_who_since_left_the_hospital_fails(
    clinic, registry, hospital, doctor, pharmacy, reverts
):
    rx = clinic.issue_batch(hospital, size=2).rxs[0]
    registry.revokeRole(DOCTOR_ROLE, doctor, sender=hospital)

    with reverts(registry.NotBatchDoctor, id=rx.id, doctor=doctor, hospital=hospital):
        clinic.redeem(rx, pharmacy)


def test_a_batch_issued_after_its_doctors_licence_lapsed_cannot_be_opened(
    clinic, registry, chain, hospital, doctor, pharmacy, reverts
):
    """Lapsed, not revoked: the doctor still holds the role, but the credential ended before the batch."""
    end = chain.pending_timestamp + HOUR
    registry.renewMember(doctor, end, sender=hospital)
    next_block_at(chain, end + 1)
    made = clinic.issue_batch(hospital, size=2)  # the hospital's own credential is still live
    assert made.issue_tx.timestamp == end + 1
    assert registry.member(doctor).roles == 1  # still a doctor on paper

    for rx in made.rxs:
        with reverts(registry.NotBatchDoctor, id=rx.id, doctor=doctor, hospital=hospital):
            clinic.redeem(rx, pharmacy)


def test_a_batch_issued_in_the_last_second_of_its_doctors_licence_opens_after_it_lapsed(
    clinic, registry, chain, hospital, doctor, pharmacy
):
    end = chain.pending_timestamp + HOUR
    registry.renewMember(doctor, end, sender=hospital)
    next_block_at(chain, end)
    made = clinic.issue_batch(hospital, size=2)
    assert made.issue_tx.timestamp == end
    travel_to(chain, end + MINUTE)  # the licence has lapsed since; the batch was issued while it was live

    clinic.redeem(made.rxs[0], pharmacy)

    assert registry.prescription(made.rxs[0].id).status == Status.DISPENSED


def test_an_expired_batched_prescription_cannot_be_opened(clinic, registry, chain, hospital, pharmacy, reverts):
    made = clinic.issue_batch(hospital, size=2, valid_for=DAY)
    rx = made.rxs[0]
    travel_to(chain, made.expires_at + 1)

    with reverts(registry.Expired, id=rx.id, expiresAt=made.expires_at):
        clinic.redeem(rx, pharmacy)


def test_the_claim_key_must_consent_to_a_batched_redemption(
    clinic, registry, hospital, pharmacy, other_pharmacy, reverts
):
    rx = clinic.issue_batch(hospital, size=2).rxs[0]
    deadline = clinic.deadline()
    for_pharmacy = clinic.redeem_signature(rx, pharmacy, deadline=deadline)

    with reverts(registry.BadClaimSignature, id=rx.id):
        clinic.redeem(rx, other_pharmacy, deadline=deadline, signature=for_pharmacy)
    with reverts(registry.BadClaimSignature, id=rx.id):
        clinic.redeem(rx, pharmacy, signer=fresh_claim_key())


def test_a_batched_prescription_with_no_claim_key_cannot_be_redeemed_without_consent(
    clinic, registry, chain, hospital, doctor, pharmacy, ledger
):
    """issue() refuses a zero claim key (ZeroClaimKey); a batch cannot see inside its ids, so redeeming
    must not take "no valid signature" (which recovers to the zero address) as the zero key's consent."""
    doc_hash = fresh_doc_hash()
    rx_id = ids.prescription_id_for(doctor.address, doc_hash, ZERO_ADDRESS)
    registry.issueBatch([rx_id], chain.pending_timestamp + DAY, 1, sender=hospital)
    before = ledger.read()

    for no_signature in (b"", bytes(65)):
        with pytest.raises(ContractLogicError) as refused:
            registry.redeemBatched(
                doctor,
                doc_hash,
                ZERO_ADDRESS,
                ZERO_ADDRESS,
                clinic.deadline(),
                no_signature,
                batches.merkle_root([rx_id]),
                [],
                sender=pharmacy,
            )
        assert refused.value.name in ("BadClaimSignature", "ZeroClaimKey")

    assert registry.prescription(rx_id) == NOTHING
    assert ledger.read() == before


def test_a_batched_prescription_for_a_designated_pharmacy_goes_to_it_only(
    clinic, registry, hospital, pharmacy, other_pharmacy, reverts
):
    rx = clinic.issue_batch(hospital, size=2, pharmacies=[pharmacy, None]).rxs[0]

    with reverts(registry.NotDesignatedPharmacy, id=rx.id, pharmacy=other_pharmacy):
        clinic.redeem(rx, other_pharmacy)
    clinic.redeem(rx, pharmacy)


# ------------------------------------------------------------------------------ cancellation


@pytest.mark.parametrize("canceller", ["hospital", "regulator"])
def test_one_prescription_of_a_batch_is_cancelled(clinic, registry, parties, pharmacy, reverts, canceller):
    made = clinic.issue_batch(parties["hospital"], size=3)
    rx = made.rxs[1]
    by = parties[canceller]

    tx = clinic.cancel_batched(rx, by)

    assert tx.return_value == rx.id
    assert_events(
        tx,
        registry,
        event("PrescriptionOpened", id=rx.id, doctor=rx.doctor, hospital=made.hospital, root=made.root),
        event("PrescriptionCancelled", id=rx.id, by=by),
    )
    assert registry.prescription(rx.id) == (rx.doctor, made.issue_tx.timestamp, made.expires_at, Status.CANCELLED, 0)
    with reverts(registry.PrescriptionIsCancelled, id=rx.id):
        clinic.redeem(rx, pharmacy)
    with reverts(registry.PrescriptionIsCancelled, id=rx.id):
        clinic.cancel_batched(rx, by)
    clinic.redeem(made.rxs[0], pharmacy)  # the rest of the batch is untouched


@pytest.mark.parametrize("name", ["other_hospital", "doctor", "pharmacy", "stranger"])
def test_only_the_batchs_hospital_and_the_regulator_cancel_one_of_its_prescriptions(
    clinic, registry, parties, hospital, reverts, name
):
    made = clinic.issue_batch(hospital, size=2)
    rx = made.rxs[0]

    with reverts(registry.NotBatchHospital, root=made.root, caller=parties[name]):
        clinic.cancel_batched(rx, parties[name])


def test_a_redeemed_batched_prescription_cannot_be_cancelled_from_the_batch(
    clinic, registry, hospital, pharmacy, reverts
):
    made = clinic.issue_batch(hospital, size=2)
    rx = clinic.dispensed(made.rxs[0], pharmacy=pharmacy)

    with reverts(registry.AlreadyRedeemed, id=rx.id):
        clinic.cancel_batched(rx, hospital)


def test_cancelling_from_a_batch_needs_a_valid_proof(clinic, registry, hospital, reverts):
    made = clinic.issue_batch(hospital, size=4)
    rx = made.rxs[3]

    with reverts(registry.NotInBatch, id=rx.id, root=made.root):
        clinic.cancel_batched(rx, hospital, proof=made.rxs[0].proof)
    with reverts(registry.UnknownBatch, root=rx.id):
        clinic.cancel_batched(rx, hospital, root=rx.id, proof=())


@pytest.mark.parametrize("canceller", ["hospital", "regulator"])
def test_a_whole_batch_is_withdrawn(clinic, registry, parties, pharmacy, reverts, canceller):
    made = clinic.issue_batch(parties["hospital"], size=3)
    by = parties[canceller]

    tx = registry.cancelBatch(made.hospital, made.root, sender=by)

    assert_events(tx, registry, event("BatchCancelled", root=made.root, hospital=made.hospital, by=by))
    assert registry.batch(made.hospital, made.root)[3] is True
    for rx in made.rxs:
        with reverts(registry.BatchIsCancelled, root=made.root):
            clinic.redeem(rx, pharmacy)
    with reverts(registry.BatchIsCancelled, root=made.root):
        registry.cancelBatch(made.hospital, made.root, sender=by)
    with reverts(registry.BatchIsCancelled, root=made.root):
        clinic.cancel_batched(made.rxs[0], by)


def test_withdrawing_a_batch_leaves_dispensed_drugs_to_their_trail(clinic, registry, hospital, pharmacy, courier):
    made = clinic.issue_batch(hospital, size=2)
    rx = clinic.dispensed(made.rxs[0], pharmacy=pharmacy)

    registry.cancelBatch(hospital, made.root, sender=hospital)

    clinic.received(rx, pharmacy=pharmacy, courier=courier)
    assert registry.prescription(rx.id).status == Status.COMPLETED


@pytest.mark.parametrize("name", ["other_hospital", "doctor", "pharmacy", "stranger"])
def test_only_the_batchs_hospital_and_the_regulator_withdraw_it(clinic, registry, parties, hospital, reverts, name):
    made = clinic.issue_batch(hospital, size=2)

    with reverts(registry.NotBatchHospital, root=made.root, caller=parties[name]):
        registry.cancelBatch(hospital, made.root, sender=parties[name])


def test_withdrawing_an_unknown_batch_fails(registry, parties, regulator, reverts):
    unknown = keccak(text="no such batch")
    with reverts(registry.UnknownBatch, root=unknown):
        registry.cancelBatch(parties["hospital"], unknown, sender=regulator)


def test_a_hospital_whose_credential_ended_cannot_withdraw_its_batch_but_the_regulator_can(
    clinic, registry, chain, regulator, hospital, reverts
):
    made = clinic.issue_batch(hospital, size=2, valid_for=DAY)
    end = chain.pending_timestamp + HOUR
    registry.renewMember(hospital, end, sender=regulator)
    travel_to(chain, end + 1)

    with reverts(registry.CredentialExpired, account=hospital, role=HOSPITAL_ROLE, validUntil=end):
        registry.cancelBatch(hospital, made.root, sender=hospital)
    registry.cancelBatch(hospital, made.root, sender=regulator)
