"""Batch issuance: a hospital commits many prescriptions in one transaction; every guarantee of the
single path holds (one-time redemption, expiry, designated pharmacy, claim signature, trail)."""

from __future__ import annotations

import pytest

from rxchain import errors
from rxchain.audit import trail, verify_document
from rxchain.core.batch import find_batch_proof, merkle_proof, merkle_root
from rxchain.dev.demo import demo_document
from rxchain.core.payload import ClaimKey
from rxchain.core.document import validate
from rxchain.core.ids import prescription_id_for
from rxchain.core.status import Status
from rxchain.workflow import (
    DoctorNotOfHospital,
    confirm_payload_receipt,
    issue_batch,
    issue_prescription,
    redeem_payload,
)


@pytest.fixture
def documents(client, ids):
    now = client.latest_block_time()
    return [demo_document(ids["doctor"].address, now) for _ in range(5)]


def test_batched_prescriptions_go_through_the_whole_lifecycle(client, ids, documents):
    batch = issue_batch(client, ids["hospital"], documents)

    event = next(e for e in batch.tx.events if e["event"] == "BatchIssued")
    assert bytes(event["args"]["root"]) == batch.root == merkle_root([p.rx_id for p in batch.prescriptions])
    assert event["args"]["count"] == 5
    for item in batch.prescriptions:
        redeem_payload(client, ids["pharmacy"], item.payload_text)
        client.dispatch(ids["pharmacy"], item.rx_id, ids["courier"].address)
        confirm_payload_receipt(client, ids["courier"], item.payload_text, with_delivery=True)
        assert client.prescription(item.rx_id).status is Status.COMPLETED
        steps = trail(client, item.rx_id)
        assert [s.step for s in steps] == [
            "issued in batch",
            "opened from batch",
            "redeemed",
            "dispatched",
            "delivered",
            "received",
        ]
        assert steps[0].actor == ids["hospital"].address
        assert steps[1].actor == ids["doctor"].address
        assert steps[1].details == {"hospital": ids["hospital"].address, "root": "0x" + batch.root.hex()}


def test_batched_prescription_is_redeemed_once(client, ids, documents):
    item = issue_batch(client, ids["hospital"], documents).prescriptions[2]
    redeem_payload(client, ids["pharmacy"], item.payload_text)

    with pytest.raises(errors.AlreadyRedeemed):
        redeem_payload(client, ids["pharmacy2"], item.payload_text)


def test_proof_for_another_batch_fails(client, ids, documents):
    first = issue_batch(client, ids["hospital"], documents[:3])
    second = issue_batch(client, ids["hospital"], documents[3:])
    item = first.prescriptions[0]
    other_proof = find_batch_proof(client, second.prescriptions[0].rx_id, ids["doctor"].address)

    with pytest.raises(errors.NotInBatch) as refused:
        _redeem_with(client, ids["pharmacy"], item, second.root, other_proof.proof)
    assert refused.value.error_args == {"id": item.rx_id, "root": second.root}
    assert client.prescription(item.rx_id).status is Status.NONE


def test_forged_leaf_fails(client, ids, documents):
    batch = issue_batch(client, ids["hospital"], documents)
    forged_key = ClaimKey.generate()  # a prescription the hospital never issued, with a proof of a real leaf
    real = batch.prescriptions[0]
    forged_id = prescription_id_for(ids["doctor"].address, real.payload.doc_hash, forged_key.address)
    proof = find_batch_proof(client, real.rx_id, ids["doctor"].address).proof

    with pytest.raises(errors.NotInBatch):
        _redeem_with(client, ids["pharmacy"], real, batch.root, proof, claim_key=forged_key, rx_id=forged_id)


def test_hospital_cannot_batch_another_hospitals_doctor(client, ids):
    document = demo_document(ids["doctor2"].address, client.latest_block_time())

    with pytest.raises(DoctorNotOfHospital):
        issue_batch(client, ids["hospital"], [document])


def test_registry_checks_the_doctor_of_a_batched_prescription_at_first_use(client, ids):
    """A hospital that skips the client's check still cannot open another hospital's doctor's prescription: the
    registry looks only at the doctor's own hospital's batches (the client too, so it finds none)."""
    document = demo_document(ids["doctor2"].address, client.latest_block_time())
    from rxchain.core.document import validate

    checked = validate(document)
    key = ClaimKey.generate()
    rx_id = prescription_id_for(checked.doctor, checked.doc_hash, key.address)
    root, _ = client.issue_batch(ids["hospital"], [rx_id], int(checked.valid_until.timestamp()))

    with pytest.raises(errors.UnknownPrescription):
        client.redeem(
            ids["pharmacy"],
            doctor=checked.doctor,
            doc_hash=checked.doc_hash,
            designated_pharmacy=None,
            claim_private_key=key.private_key,
        )
    with pytest.raises(errors.UnknownBatch) as refused:
        client.transact(
            ids["pharmacy"],
            "redeemBatched",
            checked.doctor,
            checked.doc_hash,
            "0x" + "00" * 20,
            key.address,
            client.latest_block_time() + 600,
            b"\x00" * 65,
            root,
            [],
        )
    assert refused.value.error_args["root"] == root
    assert client.prescription(rx_id).status is Status.NONE


def test_single_and_batched_prescriptions_mix(client, ids, documents):
    single = issue_prescription(client, ids["doctor"], documents[0])
    batch = issue_batch(client, ids["hospital"], documents[1:])

    for item in [single, *batch.prescriptions]:
        redeem_payload(client, ids["pharmacy"], item.payload_text)
        assert client.prescription(item.rx_id).status is Status.DISPENSED


def test_cancelled_batch_cannot_be_redeemed(client, ids, documents):
    batch = issue_batch(client, ids["hospital"], documents)
    client.transact(ids["hospital"], "cancelBatch", ids["hospital"].address, batch.root)

    with pytest.raises(errors.BatchIsCancelled):
        redeem_payload(client, ids["pharmacy"], batch.prescriptions[0].payload_text)
    assert client.batch(ids["hospital"].address, batch.root)["cancelled"] is True


def test_one_batched_prescription_can_be_cancelled(client, ids, documents):
    batch = issue_batch(client, ids["hospital"], documents)
    victim, kept = batch.prescriptions[0], batch.prescriptions[1]
    proof = find_batch_proof(client, victim.rx_id, ids["doctor"].address)
    checked = victim.payload.document
    from rxchain.core.document import validate

    opening = validate(checked)
    client.transact(
        ids["hospital"],
        "cancelBatched",
        opening.doctor,
        opening.doc_hash,
        "0x" + "00" * 20,
        victim.payload.claim_key.address,
        proof.root,
        proof.proof,
    )

    with pytest.raises(errors.PrescriptionIsCancelled):
        redeem_payload(client, ids["pharmacy"], victim.payload_text)
    redeem_payload(client, ids["pharmacy"], kept.payload_text)
    assert client.prescription(kept.rx_id).status is Status.DISPENSED


def test_other_hospital_cannot_cancel_the_batch(client, ids, documents):
    batch = issue_batch(client, ids["hospital"], documents)

    with pytest.raises(errors.NotBatchHospital):
        client.transact(ids["hospital2"], "cancelBatch", ids["hospital"].address, batch.root)


def test_expired_batch_prescription_is_refused(client, ids, documents, chain):
    batch = issue_batch(client, ids["hospital"], documents)
    chain.mine(timestamp=batch.prescriptions[0].expires_at + 1)

    with pytest.raises(errors.Expired):
        redeem_payload(client, ids["pharmacy"], batch.prescriptions[0].payload_text)


def test_document_of_a_batched_prescription_verifies_after_redemption(client, ids, documents):
    item = issue_batch(client, ids["hospital"], documents).prescriptions[1]
    redeem_payload(client, ids["pharmacy"], item.payload_text)

    assert verify_document(client, item.rx_id, documents[1]).matches
    tampered = {**documents[1], "identifier": {**documents[1]["identifier"], "value": "0" * 32}}
    assert not verify_document(client, item.rx_id, tampered).matches


def test_document_of_a_batched_prescription_verifies_after_it_was_cancelled_from_its_batch(client, ids, documents):
    """Opened by cancelBatched, never redeemed: the call that opened it (PrescriptionOpened's transaction)
    gives the document hash, as a first redemption would."""
    item = issue_batch(client, ids["hospital"], documents).prescriptions[2]
    proof = find_batch_proof(client, item.rx_id, ids["doctor"].address)
    client.transact(
        ids["hospital"],
        "cancelBatched",
        ids["doctor"].address,
        validate(documents[2]).doc_hash,
        "0x" + "00" * 20,
        item.payload.claim_key.address,
        proof.root,
        proof.proof,
    )

    assert [s.step for s in trail(client, item.rx_id)] == ["issued in batch", "opened from batch", "cancelled"]
    assert verify_document(client, item.rx_id, documents[2]).matches
    tampered = {**documents[2], "identifier": {**documents[2]["identifier"], "value": "0" * 32}}
    assert not verify_document(client, item.rx_id, tampered).matches


def test_proofs_of_every_batch_size_match_the_registry(client, ids):
    """The Python tree equals the registry's for sizes around the powers of two."""
    for size in (1, 2, 3, 4, 5, 7, 8, 9, 16, 17):
        leaves = [ClaimKey.generate().private_key for _ in range(size)]
        root, tx = client.issue_batch(ids["hospital"], leaves, client.latest_block_time() + 3600)
        assert bytes(next(e for e in tx.events if e["event"] == "BatchIssued")["args"]["root"]) == root
        for index in range(size):
            assert client.batch(ids["hospital"].address, root)["issuedAt"] > 0
            assert merkle_proof(leaves, index) == find_batch_proof(client, leaves[index], ids["doctor"].address).proof


def _redeem_with(client, pharmacy, item, root, proof, claim_key=None, rx_id=None):
    from rxchain.core.claims import sign_redeem
    from rxchain.core.document import validate

    checked = validate(item.payload.document)
    key = claim_key or item.payload.claim_key
    deadline = client.latest_block_time() + 600
    signature = sign_redeem(key.private_key, client.domain, rx_id or item.rx_id, pharmacy.address, 1, deadline)
    return client.transact(
        pharmacy,
        "redeemBatched",
        checked.doctor,
        checked.doc_hash,
        "0x" + "00" * 20,
        key.address,
        deadline,
        signature,
        root,
        proof,
    )


def test_batch_issued_again_after_its_withdrawal_is_the_one_redeemed(client, ids, documents):
    withdrawn = issue_batch(client, ids["hospital"], documents[:3])
    client.transact(ids["hospital"], "cancelBatch", ids["hospital"].address, withdrawn.root)
    leaves = [p.rx_id for p in withdrawn.prescriptions] + [ClaimKey.generate().private_key]
    root, _ = client.issue_batch(ids["hospital"], leaves, withdrawn.prescriptions[0].expires_at)

    proof = find_batch_proof(client, withdrawn.prescriptions[0].rx_id, ids["doctor"].address)
    assert proof.root == root
    redeem_payload(client, ids["pharmacy"], withdrawn.prescriptions[0].payload_text)
    assert client.prescription(withdrawn.prescriptions[0].rx_id).status is Status.DISPENSED
