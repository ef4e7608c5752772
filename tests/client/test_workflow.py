"""The hospital's and pharmacy's calls end to end: document -> issue -> QR -> redeem -> trail."""

from __future__ import annotations

import pytest

from rxchain import errors
from rxchain.audit import trail
from rxchain.core.document import document_hash
from rxchain.dev.demo import demo_document, run_lifecycle
from rxchain.core.payload import WrongChain, WrongRegistry, decode_payload
from rxchain.core.status import Status
from rxchain.workflow import (
    SignerIsNotRequester,
    confirm_payload_receipt,
    issue_prescription,
    read_payload,
    redeem_payload,
)


def test_lifecycle_takes_one_prescription_through_five_stamped_steps(client, ids):
    result = run_lifecycle(client, ids)

    assert [s.step for s in result.steps] == ["issued", "redeemed", "dispatched", "delivered", "received"]
    assert [s.actor for s in result.steps] == [
        ids[n].address for n in ("doctor", "pharmacy", "pharmacy", "courier", "courier")
    ]
    times = [s.block_time for s in result.steps]
    assert times == sorted(times)
    blocks = [s.block_number for s in result.steps]
    assert blocks == sorted(blocks) and len(set(blocks)) == 5
    for step in result.steps:
        assert step.block_time == client.block_time(step.block_number)
    assert client.prescription(result.issued.rx_id).status is Status.COMPLETED
    assert set(result.gas) == {"issue", "redeem", "dispatch", "deliver", "confirm", "lifecycle"}


def test_issued_prescription_commits_the_document_hash_and_expiry(client, doctor, document):
    issued = issue_prescription(client, doctor, document)

    state = client.prescription(issued.rx_id)
    assert state.status is Status.ACTIVE
    assert state.custodian == doctor.address
    assert state.expires_at == issued.expires_at
    assert state.fills_left == 1
    event = issued.tx.events[0]
    assert event["event"] == "PrescriptionIssued"
    assert bytes(event["args"]["docHash"]) == document_hash(document)
    assert event["args"]["doctor"] == doctor.address


def test_payload_decodes_to_the_same_prescription(client, doctor, document):
    issued = issue_prescription(client, doctor, document)

    payload = read_payload(client, issued.payload_text)
    assert payload.rx_id == issued.rx_id
    assert payload.document == document


def test_payload_for_another_chain_or_registry_is_refused(client, doctor, document):
    issued = issue_prescription(client, doctor, document)

    with pytest.raises(WrongChain):
        decode_payload(issued.payload_text, expected_chain_id=client.chain_id + 1)
    with pytest.raises(WrongRegistry):
        decode_payload(issued.payload_text, expected_chain_id=client.chain_id, expected_registry="0x" + "11" * 20)


def test_doctor_cannot_issue_a_document_naming_another_doctor(client, ids):
    document = demo_document(ids["doctor2"].address, client.latest_block_time())

    with pytest.raises(SignerIsNotRequester):
        issue_prescription(client, ids["doctor"], document)


def test_pharmacy_redeems_from_the_qr_payload_once(client, doctor, pharmacy, other_pharmacy, document):
    issued = issue_prescription(client, doctor, document)

    rx_id, tx = redeem_payload(client, pharmacy, issued.payload_text)
    assert rx_id == issued.rx_id
    assert client.prescription(rx_id).status is Status.DISPENSED
    assert client.prescription(rx_id).custodian == pharmacy.address

    with pytest.raises(errors.AlreadyRedeemed) as refused:
        redeem_payload(client, other_pharmacy, issued.payload_text)
    assert refused.value.error_args == {"id": rx_id}
    assert "already redeemed" in str(refused.value)


def test_designated_pharmacy_alone_can_redeem(client, doctor, pharmacy, other_pharmacy):
    document = demo_document(doctor.address, client.latest_block_time(), designated_pharmacy=pharmacy.address)
    issued = issue_prescription(client, doctor, document)

    with pytest.raises(errors.NotDesignatedPharmacy) as refused:
        redeem_payload(client, other_pharmacy, issued.payload_text)
    assert refused.value.error_args["pharmacy"] == other_pharmacy.address
    assert client.prescription(issued.rx_id).status is Status.ACTIVE

    redeem_payload(client, pharmacy, issued.payload_text)
    assert client.prescription(issued.rx_id).status is Status.DISPENSED


def test_courier_delivers_with_the_patients_receipt_in_one_transaction(client, doctor, pharmacy, courier, document):
    issued = issue_prescription(client, doctor, document)
    redeem_payload(client, pharmacy, issued.payload_text)
    client.dispatch(pharmacy, issued.rx_id, courier.address)

    tx = confirm_payload_receipt(client, courier, issued.payload_text, with_delivery=True)

    assert [e["event"] for e in tx.events] == ["PrescriptionDelivered", "ReceiptConfirmed"]
    assert client.prescription(issued.rx_id).status is Status.COMPLETED
    assert [s.step for s in trail(client, issued.rx_id)] == [
        "issued",
        "redeemed",
        "dispatched",
        "delivered",
        "received",
    ]


def test_over_the_counter_handover_is_labelled_in_the_trail(client, doctor, pharmacy, document):
    issued = issue_prescription(client, doctor, document)
    redeem_payload(client, pharmacy, issued.payload_text)
    client.deliver(pharmacy, issued.rx_id)
    confirm_payload_receipt(client, pharmacy, issued.payload_text)

    assert [s.step for s in trail(client, issued.rx_id)] == ["issued", "redeemed", "handed over in store", "received"]


def test_retried_issue_returns_the_first_transaction_from_the_outbox(client, doctor, document):
    issued = issue_prescription(client, doctor, document)

    again = issue_prescription(client, doctor, document, claim_key=issued.payload.claim_key)

    assert again.rx_id == issued.rx_id
    assert again.tx.tx_hash == issued.tx.tx_hash
    assert client.outbox.counts() == {"mined": 1}


def test_retried_issue_without_the_outbox_is_refused_as_already_issued(client, w3, deployment, doctor, document):
    from rxchain.chain.client import RegistryClient

    issued = issue_prescription(client, doctor, document)
    elsewhere = RegistryClient(w3, deployment.registry, deploy_block=deployment.deploy_block)

    with pytest.raises(errors.AlreadyIssued) as refused:
        issue_prescription(elsewhere, doctor, document, claim_key=issued.payload.claim_key)
    assert refused.value.error_args == {"id": issued.rx_id}
    assert elsewhere.outbox.counts() == {}
