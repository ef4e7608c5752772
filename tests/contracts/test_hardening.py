"""What an outside review broke (issue 11), each tried as the attacker holding everything it saw.

Every test here is an attack a consortium member can mount with its own role and what the chain (or
the transaction pool) showed it, followed by what must still hold. The attacks are written against
whichever form of the call the deployed registry offers, so that each test also ran (and failed) on
the registry before the fix.
"""

import pytest
from ape.exceptions import ContractLogicError
from eth_account import Account
from eth_utils import keccak

from rxchain.core import batch as batches
from rxchain.core import ids

from .conftest import (
    COURIER_ROLE,
    DAY,
    DOCTOR_ROLE,
    HOSPITAL_ROLE,
    MINUTE,
    PHARMACY_ROLE,
    ZERO_ADDRESS,
    Status,
    assert_events,
    event,
    fresh_claim_key,
    fresh_doc_hash,
    next_block_at,
    travel_to,
)

NOTHING = (ZERO_ADDRESS, 0, 0, Status.NONE, 0)


def _inputs(registry, name):
    return len(next(a for a in registry.contract_type.abi if getattr(a, "name", None) == name).inputs)


def _try(call):
    """The attacker's attempt: whether the registry refuses it is not the point, what holds after is."""
    try:
        call()
    except ContractLogicError:
        pass


def _cancel_through(registry, rx, root, proof, sender):
    """cancelBatched of ``rx`` in batch ``root``, in the form the registry offers (the id alone before the
    fix; the id's openings, which the attacker here is granted, after)."""
    if _inputs(registry, "cancelBatched") == 3:
        return registry.cancelBatched(rx.id, root, list(proof), sender=sender)
    return registry.cancelBatched(*rx.openings, root, list(proof), sender=sender)


def _own_batch(registry, chain, hospital, rx_ids):
    """The attacker's batch of ``rx_ids``: its root as the registry computed it."""
    return bytes(registry.issueBatch(list(rx_ids), chain.pending_timestamp + DAY, 1, sender=hospital).return_value)


# ---------------------------------------------- finding 1: cross-hospital cancel, pre-emption, root collision


def test_other_hospital_cannot_cancel_a_prescription_when_it_batches_its_id(
    clinic, registry, chain, hospital, other_hospital, pharmacy
):
    made = clinic.issue_batch(hospital, size=2)
    victim = made.rxs[0]
    # Seen in PrescriptionBatched: the id. Granted too: the openings and the genuine proof.
    own_root = _own_batch(registry, chain, other_hospital, [victim.id])

    _try(lambda: _cancel_through(registry, victim, own_root, (), other_hospital))
    _try(lambda: _cancel_through(registry, victim, made.root, victim.proof, other_hospital))

    assert registry.prescription(victim.id) == NOTHING
    clinic.redeem(victim, pharmacy)
    assert registry.prescription(victim.id).status == Status.DISPENSED


def test_other_hospital_cannot_preempt_an_issue_when_it_sees_it_pending(
    clinic, registry, chain, doctor, other_hospital
):
    claim_key, doc_hash = fresh_claim_key(), fresh_doc_hash()
    # What the pending issue() shows: its sender (the doctor) and every argument.
    rx_id = ids.prescription_id(claim_key.address, ids.terms_hash(doctor.address, doc_hash, ZERO_ADDRESS))
    own_root = _own_batch(registry, chain, other_hospital, [rx_id])
    pending = type(
        "Pending", (), {"id": rx_id, "openings": (doctor.address, doc_hash, ZERO_ADDRESS, claim_key.address)}
    )
    _try(lambda: _cancel_through(registry, pending, own_root, (), other_hospital))

    rx = clinic.issue(doctor, doc_hash=doc_hash, claim_key=claim_key)

    assert rx.id == rx_id
    assert registry.prescription(rx_id).status == Status.ACTIVE


def test_other_hospital_cannot_take_a_batch_when_it_front_runs_issue_batch(
    clinic, registry, chain, hospital, other_hospital, pharmacy
):
    claim_keys = [fresh_claim_key() for _ in range(3)]
    doc_hashes = [fresh_doc_hash() for _ in range(3)]
    doctor = clinic.parties["doctor"].address
    rx_ids = [
        ids.prescription_id(k.address, ids.terms_hash(doctor, h, ZERO_ADDRESS)) for k, h in zip(claim_keys, doc_hashes)
    ]
    # The hospital's pending issueBatch(ids) shows the ids: the other hospital sends them first.
    _own_batch(registry, chain, other_hospital, rx_ids)

    tx = registry.issueBatch(rx_ids, chain.pending_timestamp + DAY, 1, sender=hospital)
    root = bytes(tx.return_value)
    for i, rx_id in enumerate(rx_ids):
        signature = clinic.redeem_signature(
            type("R", (), {"id": rx_id, "fills": 1, "claim_key": claim_keys[i]}),
            pharmacy,
            fills_left=1,
            deadline=clinic.deadline(),
        )
        registry.redeemBatched(
            doctor,
            doc_hashes[i],
            ZERO_ADDRESS,
            claim_keys[i].address,
            clinic.deadline(),
            signature,
            root,
            batches.merkle_proof(rx_ids, i),
            sender=pharmacy,
        )
        assert registry.prescription(rx_id).status == Status.DISPENSED


def test_other_hospital_cannot_cancel_a_batch_when_it_announced_the_same_root(
    clinic, registry, chain, hospital, other_hospital, pharmacy
):
    made = clinic.issue_batch(hospital, size=2)
    own_root = _own_batch(registry, chain, other_hospital, made.ids)
    assert own_root == made.root  # the same ids, the same root: a batch of its own all the same

    if _inputs(registry, "cancelBatch") == 1:
        _try(lambda: registry.cancelBatch(own_root, sender=other_hospital))
    else:
        registry.cancelBatch(other_hospital, own_root, sender=other_hospital)  # its own batch, and only that

    for rx in made.rxs:
        clinic.redeem(rx, pharmacy)
        assert registry.prescription(rx.id).status == Status.DISPENSED


# ------------------------------------------------------------------ finding 4: a leaf passed off as a node


def test_hospital_cannot_open_an_unannounced_id_when_it_batches_the_halves_of_its_hash(
    clinic, registry, chain, hospital, doctor, pharmacy, reverts
):
    """An id is keccak256(claim key word, terms): a batch of those two words has the id as the parent of
    its leaves if ids are leaves. It must not open, for no PrescriptionBatched names it."""
    claim_key, doc_hash = fresh_claim_key(), fresh_doc_hash()
    terms = ids.terms_hash(doctor.address, doc_hash, ZERO_ADDRESS)
    rx_id = ids.prescription_id(claim_key.address, terms)
    halves = [bytes(12) + bytes.fromhex(claim_key.address[2:]), terms]
    assert keccak(b"".join(sorted(halves))) == rx_id  # the id is the parent of the two halves
    tx = registry.issueBatch(halves, chain.pending_timestamp + DAY, 1, sender=hospital)
    root = bytes(tx.return_value)
    assert rx_id not in [
        bytes(log.event_arguments["id"]) for log in tx.events if log.event_name == "PrescriptionBatched"
    ]

    rx = type("R", (), {"id": rx_id, "fills": 1, "claim_key": claim_key})
    signature = clinic.redeem_signature(rx, pharmacy, fills_left=1, deadline=clinic.deadline())
    for claimed_root in {root, rx_id}:  # before the fix the batch's root was the id itself
        _try(
            lambda: registry.redeemBatched(
                doctor,
                doc_hash,
                ZERO_ADDRESS,
                claim_key.address,
                clinic.deadline(),
                signature,
                claimed_root,
                [],
                sender=pharmacy,
            )
        )
    assert registry.prescription(rx_id) == NOTHING


def test_a_leaf_and_an_inner_node_hash_inputs_of_different_lengths(clinic, hospital):
    made = clinic.issue_batch(hospital, size=2)

    assert made.root == keccak(b"".join(sorted(keccak(i) for i in made.ids)))
    assert made.rxs[0].proof == (keccak(made.ids[1]),)


# ---------------------------------------------------------------------- events alone rebuild the trail


@pytest.mark.parametrize("first_use", ["redeemed", "cancelled"])
def test_auditor_cannot_miss_a_batched_prescriptions_doctor_when_it_reads_only_events(
    clinic, registry, chain, hospital, doctor, pharmacy, first_use
):
    made = clinic.issue_batch(hospital, size=3)
    rx = made.rxs[1]
    tx = clinic.redeem(rx, pharmacy) if first_use == "redeemed" else clinic.cancel_batched(rx, hospital)

    opened = [
        log
        for log in registry.PrescriptionOpened.range(made.issue_tx.block_number, tx.block_number + 1)
        if bytes(log.event_arguments["id"]) == rx.id
    ]
    assert [
        (log.event_arguments["doctor"], log.event_arguments["hospital"], bytes(log.event_arguments["root"]))
        for log in opened
    ] == [(doctor.address, hospital.address, made.root)]


# ---------------------------------------- finding 3: a revoked or lapsed hospital stops its doctors and batches


def _hospital_gone(registry, chain, regulator, hospital, how):
    if how == "revoked":
        registry.revokeRole(HOSPITAL_ROLE, hospital, sender=regulator)
    else:
        end = chain.pending_timestamp + MINUTE
        registry.renewMember(hospital, end, sender=regulator)
        travel_to(chain, end + 1)


@pytest.mark.parametrize("how", ["revoked", "lapsed"])
def test_doctor_cannot_issue_when_its_hospital_is_gone(registry, chain, regulator, hospital, doctor, reverts, how):
    _hospital_gone(registry, chain, regulator, hospital, how)

    assert not registry.hasRole(DOCTOR_ROLE, doctor)
    with reverts(registry.HospitalNotInGoodStanding, doctor=doctor, hospital=hospital):
        registry.issue(
            fresh_doc_hash(), fresh_claim_key().address, ZERO_ADDRESS, chain.pending_timestamp + DAY, 1, sender=doctor
        )


def test_doctor_cannot_cancel_when_its_hospital_is_gone_but_the_regulator_can(
    clinic, registry, chain, regulator, hospital, doctor, reverts
):
    rx = clinic.issue(doctor)
    _hospital_gone(registry, chain, regulator, hospital, "revoked")

    with reverts(registry.HospitalNotInGoodStanding, doctor=doctor, hospital=hospital):
        registry.cancel(rx.id, sender=doctor)
    registry.cancel(rx.id, sender=regulator)


@pytest.mark.parametrize("how", ["revoked", "lapsed"])
def test_pharmacy_cannot_open_a_batch_when_its_hospital_is_gone(
    clinic, registry, chain, regulator, hospital, doctor, pharmacy, reverts, how
):
    made = clinic.issue_batch(hospital, size=2, valid_for=2 * DAY)
    _hospital_gone(registry, chain, regulator, hospital, how)

    with reverts(registry.HospitalNotInGoodStanding, doctor=doctor, hospital=hospital):
        clinic.redeem(made.rxs[0], pharmacy)


@pytest.mark.parametrize("end", ["a-second-later", "the-end-of-time"])
def test_hospital_cannot_license_a_doctor_past_its_own_credential_when_admitting_or_renewing(
    registry, regulator, hospital, doctor, credential_end, reverts, end
):
    until = credential_end + 1 if end == "a-second-later" else 2**40 - 1
    account = fresh_claim_key().address

    with reverts(
        registry.CredentialOutlivesHospital,
        account=account,
        validUntil=until,
        hospital=hospital,
        hospitalValidUntil=credential_end,
    ):
        registry.admitMember(account, DOCTOR_ROLE, until, sender=hospital)
    with reverts(
        registry.CredentialOutlivesHospital,
        account=doctor,
        validUntil=until,
        hospital=hospital,
        hospitalValidUntil=credential_end,
    ):
        registry.renewMember(doctor, until, sender=hospital)
    with reverts(
        registry.CredentialOutlivesHospital,
        account=doctor,
        validUntil=until,
        hospital=hospital,
        hospitalValidUntil=credential_end,
    ):
        registry.renewMember(doctor, until, sender=regulator)


# ------------------------------------------------ finding 7: the regulator's revocation holds until it lifts it


def test_hospital_cannot_readmit_a_doctor_when_the_regulator_revoked_it(
    registry, regulator, hospital, doctor, credential_end, reverts
):
    tx = registry.revokeRole(DOCTOR_ROLE, doctor, sender=regulator)
    assert_events(
        tx,
        registry,
        event("RoleRevoked", role=DOCTOR_ROLE, account=doctor, sender=regulator),
        event("MemberBarred", account=doctor, by=regulator),
    )

    with reverts(registry.BarredByRegulator, account=doctor):
        registry.admitMember(doctor, DOCTOR_ROLE, credential_end, sender=hospital)
    with reverts(registry.AccessControlUnauthorizedAccount, account=hospital, neededRole=bytes(32)):
        registry.allowReadmission(doctor, sender=hospital)

    tx = registry.allowReadmission(doctor, sender=regulator)
    assert_events(tx, registry, event("ReadmissionAllowed", account=doctor, by=regulator))
    assert registry.admission(doctor).barred is False
    registry.admitMember(doctor, DOCTOR_ROLE, credential_end, sender=hospital)
    assert registry.hasRole(DOCTOR_ROLE, doctor)


@pytest.mark.parametrize("first", ["hospital-removes-it", "doctor-renounces"])
def test_hospital_cannot_readmit_a_doctor_when_it_removed_it_just_before_the_regulator_revoked_it(
    registry, regulator, hospital, doctor, credential_end, reverts, first
):
    """The regulator's revokeRole is seen pending; the hospital (or the doctor's own key) takes the role
    away first, so that the regulator's call finds no role to take, and then admits the doctor again."""
    if first == "hospital-removes-it":
        registry.revokeRole(DOCTOR_ROLE, doctor, sender=hospital)
    else:
        registry.renounceRole(DOCTOR_ROLE, doctor, sender=doctor)

    tx = registry.revokeRole(DOCTOR_ROLE, doctor, sender=regulator)

    assert_events(tx, registry, event("MemberBarred", account=doctor, by=regulator))
    with reverts(registry.BarredByRegulator, account=doctor):
        registry.admitMember(doctor, DOCTOR_ROLE, credential_end, sender=hospital)
    assert not registry.hasRole(DOCTOR_ROLE, doctor)


def test_regulator_cannot_allow_back_a_member_when_it_is_not_barred(registry, regulator, doctor, reverts):
    with reverts(registry.NotBarred, account=doctor):
        registry.allowReadmission(doctor, sender=regulator)


def test_hospital_can_readmit_a_doctor_when_it_removed_the_doctor_itself(registry, hospital, doctor, credential_end):
    registry.revokeRole(DOCTOR_ROLE, doctor, sender=hospital)
    registry.admitMember(doctor, DOCTOR_ROLE, credential_end, sender=hospital)
    assert registry.hasRole(DOCTOR_ROLE, doctor)


# ---------------------------------------------- finding 8: the licence as it was when the batch was issued


def test_pharmacy_cannot_open_a_batch_for_a_doctor_when_the_licence_had_lapsed_at_batch_time(
    clinic, registry, chain, hospital, doctor, pharmacy, credential_end, reverts
):
    end = chain.pending_timestamp + MINUTE
    registry.renewMember(doctor, end, sender=hospital)
    travel_to(chain, end + 1)
    made = clinic.issue_batch(hospital, size=2)  # the doctor's licence has ended
    chain.pending_timestamp += MINUTE
    registry.renewMember(doctor, credential_end, sender=hospital)  # renewed afterwards

    with reverts(registry.NotBatchDoctor, id=made.rxs[0].id, doctor=doctor, hospital=hospital):
        clinic.redeem(made.rxs[0], pharmacy)


def test_pharmacy_cannot_open_a_batch_for_a_doctor_when_it_was_admitted_after_the_batch(
    clinic, registry, chain, hospital, pharmacy, credential_end, reverts
):
    newcomer = Account.from_key(keccak(text="rxchain test doctor admitted after the batch"))
    made = clinic.issue_batch(hospital, doctors=[newcomer, newcomer])
    chain.pending_timestamp += MINUTE
    registry.admitMember(newcomer.address, DOCTOR_ROLE, credential_end, sender=hospital)

    with reverts(registry.NotBatchDoctor, id=made.rxs[0].id, doctor=newcomer.address, hospital=hospital):
        clinic.redeem(made.rxs[0], pharmacy)


def test_a_doctor_renewed_before_the_licence_lapsed_still_opens_an_earlier_batch(
    clinic, registry, chain, hospital, doctor, pharmacy, credential_end
):
    made = clinic.issue_batch(hospital, size=2)
    registry.renewMember(doctor, chain.pending_timestamp + DAY, sender=hospital)  # uninterrupted
    registry.renewMember(doctor, credential_end, sender=hospital)

    clinic.redeem(made.rxs[0], pharmacy)
    assert registry.prescription(made.rxs[0].id).status == Status.DISPENSED


@pytest.mark.parametrize("how", ["admitMember", "renewMember"])
def test_a_licence_extended_in_its_last_second_stays_uninterrupted_and_an_earlier_batch_opens(
    clinic, registry, chain, hospital, doctor, pharmacy, credential_end, how
):
    """A licence is live through its last second (``validUntil``): extending it then is no lapse, so
    the uninterrupted licence keeps its start and a batch issued before still opens (found by
    mutation testing: ``<`` to ``<=`` in the lapse check survived)."""
    end = chain.pending_timestamp + MINUTE
    registry.renewMember(doctor, end, sender=hospital)
    since = registry.admission(doctor)[0]
    made = clinic.issue_batch(hospital, size=2)
    next_block_at(chain, end)  # the licence's last valid second

    if how == "admitMember":
        tx = registry.admitMember(doctor, DOCTOR_ROLE, credential_end, sender=hospital)
    else:
        tx = registry.renewMember(doctor, credential_end, sender=hospital)

    assert tx.timestamp == end
    assert registry.admission(doctor)[0] == since
    clinic.redeem(made.rxs[0], pharmacy)
    assert registry.prescription(made.rxs[0].id).status == Status.DISPENSED


# ------------------------------------- finding 6: what a revoked pharmacy or courier holds is not stranded


def test_regulator_can_reassign_what_a_revoked_pharmacy_holds(
    clinic, registry, regulator, pharmacy, other_pharmacy, courier, reverts
):
    rx = clinic.dispensed(pharmacy=pharmacy, fills=2)
    with reverts(registry.CustodianInGoodStanding, id=rx.id, custodian=pharmacy):
        registry.reassignCustody(rx.id, other_pharmacy, sender=regulator)
    registry.revokeRole(PHARMACY_ROLE, pharmacy, sender=regulator)
    with reverts(registry.AccessControlUnauthorizedAccount, account=courier, neededRole=PHARMACY_ROLE):
        registry.reassignCustody(rx.id, courier, sender=regulator)  # a pharmacy's drugs go to a pharmacy

    tx = registry.reassignCustody(rx.id, other_pharmacy, sender=regulator)

    assert_events(
        tx, registry, event("CustodyReassigned", id=rx.id, **{"from": pharmacy}, to=other_pharmacy, by=regulator)
    )
    assert registry.prescription(rx.id)[0] == other_pharmacy.address
    clinic.received(rx, pharmacy=other_pharmacy, courier=courier)  # the trail goes on from the new holder
    assert registry.prescription(rx.id).status == Status.REFILLABLE


def test_regulator_can_reassign_what_a_lapsed_courier_holds(
    clinic, registry, chain, regulator, pharmacy, courier, reverts
):
    rx = clinic.dispatched(pharmacy=pharmacy, courier=courier)
    end = chain.pending_timestamp + MINUTE
    registry.renewMember(courier, end, sender=regulator)
    travel_to(chain, end + 1)
    other_courier = Account.from_key(keccak(text="rxchain test second courier")).address
    registry.admitMember(other_courier, COURIER_ROLE, chain.pending_timestamp + DAY, sender=regulator)

    registry.reassignCustody(rx.id, other_courier, sender=regulator)

    assert registry.prescription(rx.id)[0] == other_courier
    assert registry.prescription(rx.id).status == Status.DISPATCHED


@pytest.mark.parametrize("fills", [1, 3])
def test_regulator_can_void_what_a_revoked_courier_holds(
    clinic, registry, regulator, pharmacy, other_pharmacy, courier, reverts, fills
):
    rx = clinic.dispatched(pharmacy=pharmacy, courier=courier, fills=fills)
    with reverts(registry.CustodianInGoodStanding, id=rx.id, custodian=courier):
        registry.voidCustody(rx.id, sender=regulator)
    registry.revokeRole(COURIER_ROLE, courier, sender=regulator)

    tx = registry.voidCustody(rx.id, sender=regulator)

    assert_events(tx, registry, event("CustodyVoided", id=rx.id, custodian=courier, by=regulator, fillsLeft=fills - 1))
    if fills == 1:
        assert registry.prescription(rx.id).status == Status.CANCELLED
    else:  # the fills left are redeemable at another pharmacy
        assert registry.prescription(rx.id).status == Status.REFILLABLE
        clinic.redeem(rx, other_pharmacy, batched=False)
        assert registry.prescription(rx.id)[0] == other_pharmacy.address


def test_regulator_cannot_void_a_prescription_when_nobody_holds_it(clinic, registry, regulator, reverts):
    rx = clinic.issue()
    with reverts(registry.WrongStatus, id=rx.id, current=Status.ACTIVE):
        registry.voidCustody(rx.id, sender=regulator)
