"""The patient's app and the pharmacy dApp in a real browser (headless Debian chromium) against ape's
ephemeral anvil: the whole way with the claim key on the patient's phone (the hospital issues, the
patient's app takes the code home under a PIN, consents to one pharmacy for one fill, signs the receipt
at the door or the counter), and the attacks on it (another pharmacy, another fill, a stale code, the
key read back from the phone's storage).

Every page fails its test if it logged a console error or an uncaught exception (checked at teardown
and explicitly)."""

from __future__ import annotations

import re

import pytest
from ape import chain

from rxchain import errors
from rxchain.audit import trail
from rxchain.core import handover as h
from rxchain.core.payload import decode_payload
from rxchain.core.status import Status

from .conftest import PIN, save_patient_docs_image

expect = pytest.importorskip(
    "playwright.sync_api", reason="the browser tests need the Python package playwright (fix: make setup)"
).expect

DRUG = "Amoxicillin 500 mg oral capsule"


def consent_code(dapp) -> str:
    """The pharmacy page's own consent request (RXP1)."""
    expect(dapp.page.locator("#consent-section")).to_be_visible()
    code = dapp.page.input_value("#consent-code")
    assert code.startswith("RXP1.")
    return code


def assert_key_never_stored(patient, issued) -> None:
    """Nothing the page keeps holds the claim key in clear, nor the hospital's code."""
    kept = patient.stored()
    key = decode_payload(issued.payload_text).claim_key.hex
    assert key[2:] not in kept.lower()
    assert issued.payload_text not in kept
    assert issued.payload_text[4:60] not in kept
    assert PIN not in kept


def receipt_events(client, w3, tx_hash: str) -> list[dict]:
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    return [dict(event["args"]) for event in client.contract.events.ReceiptConfirmed().process_receipt(receipt)]


# ------------------------------------------------------------------------------ the whole way


def test_whole_way_patient_consents_pharmacy_redeems_courier_delivers_patient_signs_the_receipt(
    patient, dapp, client, issue, ids, w3
):
    issued = issue()
    rx_id = "0x" + issued.rx_id.hex()

    # The hospital's code goes home in the patient's app, under a PIN.
    app = patient.open().page
    expect(app.locator("#import-section")).to_be_visible()
    patient.take_home(issued.payload_text)
    expect(app.locator("#rx-drugs")).to_have_text(DRUG)
    expect(app.locator("#rx-pharmacy")).to_have_text("any pharmacy")
    expect(app.locator("#rx-fills")).to_have_text("1")
    expect(app.locator("#rx-state")).to_contain_text("Active")
    expect(app.locator("#rx-id")).to_have_text(rx_id)
    assert app.input_value("#rx-code") == "" and app.input_value("#new-pin") == ""
    assert_key_never_stored(patient, issued)

    # The pharmacy shows its consent request; the patient's app shows who asks and, on the PIN, the authorization.
    counter = dapp.open().page
    request = h.decode_consent_request(consent_code(dapp))
    assert request.pharmacy == ids["pharmacy"].address and request.registry == client.address
    assert request.deadline > client.latest_block_time()
    dapp.screenshot("patient-01-ask-the-patient")
    patient.read(consent_code(dapp))
    expect(app.locator("#ask-who")).to_have_text(ids["pharmacy"].address)
    expect(app.locator("#ask-member")).to_contain_text("a pharmacy in good standing")
    expect(app.locator("#ask-fill")).to_contain_text("1 left")
    authorization = patient.agree()
    assert authorization.startswith("RXA1.")
    expect(app.locator("#answer-qr")).to_be_visible()
    assert int(app.locator("#answer-qr").get_attribute("data-modules")) > 21
    save_patient_docs_image(patient)
    auth = h.decode_authorization(authorization, expected_chain_id=client.chain_id, expected_registry=client.address)
    assert auth.pharmacy == ids["pharmacy"].address and auth.fills_left == 1 and auth.deadline == request.deadline
    assert auth.claim_key == decode_payload(issued.payload_text).claim_key.address
    assert_key_never_stored(patient, issued)

    # The pharmacy redeems with the patient's authorization: no claim key on the counter.
    dapp.paste(authorization)
    expect(counter.locator("#rx-id")).to_have_text(rx_id)
    expect(dapp.check("authorization")).to_have_class("ok")
    expect(counter.locator("#rx-checks li.bad")).to_have_count(0)
    counter.click("#redeem")
    expect(counter.locator("#redeem-outcome")).to_contain_text("Redeemed in block")
    assert client.prescription(issued.rx_id).status is Status.DISPENSED
    dapp.screenshot("patient-02-redeemed-with-the-authorization")

    # The courier: dispatched, at the door it shows its delivery request; the patient signs the receipt.
    client.dispatch(ids["pharmacy"], issued.rx_id, ids["courier"].address)
    delivery = client.delivery_request(ids["courier"].address, issued.rx_id)
    patient.read(delivery.encode())
    expect(app.locator("#ask-who")).to_have_text(ids["courier"].address)
    expect(app.locator("#ask-text")).to_contain_text("Courier")
    expect(app.locator("#ask-member")).to_contain_text("a courier in good standing")
    receipt_text = patient.agree()
    assert receipt_text.startswith("RXR1.")
    receipt = h.decode_receipt(receipt_text, expected_chain_id=client.chain_id, expected_registry=client.address)
    assert receipt.deliverer == ids["courier"].address and receipt.fills_left == 0

    result = client.deliver_with_patient_receipt(ids["courier"], receipt)
    state = client.prescription(issued.rx_id)
    assert state.status is Status.COMPLETED
    assert receipt_events(client, w3, result.tx_hash) == [
        {"id": issued.rx_id, "relayer": ids["courier"].address, "fillsLeft": 0}
    ]
    assert [s.step for s in trail(client, issued.rx_id)] == [
        "issued",
        "redeemed",
        "dispatched",
        "delivered",
        "received",
    ]
    patient.page.click("#done")
    expect(app.locator("#rx-state")).to_contain_text("Completed")
    patient.assert_clean()
    dapp.assert_clean()


def test_counter_hand_over_with_the_patients_receipt(patient, dapp, client, issue, ids, w3):
    issued = issue(designated_pharmacy=ids["pharmacy"].address)
    app = patient.open().page
    patient.take_home(issued.payload_text)
    expect(app.locator("#rx-pharmacy")).to_contain_text(ids["pharmacy"].address)

    counter = dapp.open().page
    patient.read(consent_code(dapp))
    dapp.paste(patient.agree())
    counter.click("#redeem")
    expect(counter.locator("#redeem-outcome")).to_contain_text("Redeemed in block")

    expect(counter.locator("#counter-receipt")).to_be_visible()
    counter.click("#ask-receipt")
    expect(counter.locator("#delivery-request")).to_be_visible()
    expect(counter.locator("#delivery-code")).to_have_value(re.compile(r"^RXD1\."))
    delivery_text = counter.input_value("#delivery-code")
    delivery = h.decode_delivery_request(delivery_text)
    assert delivery.deliverer == ids["pharmacy"].address and delivery.fills_left == 0 and delivery.rx_id == issued.rx_id
    patient.read(delivery_text)
    expect(app.locator("#ask-text")).to_contain_text("Pharmacy")
    receipt_text = patient.agree()

    counter.fill("#receipt-code", receipt_text)
    counter.click("#deliver-receipt")
    outcome = counter.locator("#handover-outcome")
    expect(outcome).to_contain_text("the patient confirmed receipt in block")
    assert client.prescription(issued.rx_id).status is Status.COMPLETED
    tx = outcome.locator(".mono").inner_text().removeprefix("transaction ").strip()
    assert receipt_events(client, w3, tx) == [{"id": issued.rx_id, "relayer": ids["pharmacy"].address, "fillsLeft": 0}]
    expect(counter.locator("#trail tbody tr[data-step='received']")).to_have_count(1)
    patient.assert_clean()
    dapp.assert_clean()


def test_keyboard_only_on_the_patients_app(patient, dapp, client, issue):
    """The patient's app by keyboard: labels reach the fields, Enter submits, the answer takes the focus."""
    issued = issue()
    app = patient.open().page
    app.focus("#rx-code")
    app.keyboard.insert_text(issued.payload_text)
    app.keyboard.press("Tab")  # the photo button
    app.keyboard.press("Tab")
    expect(app.locator("#new-pin")).to_be_focused()
    app.keyboard.type(PIN)
    app.keyboard.press("Tab")
    app.keyboard.type(PIN)
    app.keyboard.press("Enter")
    expect(app.locator("#list-heading")).to_be_focused()
    dapp.open()
    app.focus("#request-code")
    app.keyboard.insert_text(consent_code(dapp))
    app.keyboard.press("Tab")
    app.keyboard.press("Enter")
    expect(app.locator("#pin")).to_be_focused()
    app.keyboard.type(PIN)
    app.keyboard.press("Enter")
    expect(app.locator("#answer-heading")).to_be_focused()
    expect(app.locator("#status")).to_contain_text("Show this to pharmacy")
    assert app.get_attribute("#status", "aria-live") == "polite"
    patient.assert_clean()


# ------------------------------------------------------------------------------ attacks


def test_another_pharmacy_cannot_use_the_authorization(patient, dapp, client, issue, ids, w3):
    """Pharmacy A's authorization pasted into pharmacy B's page: refused before sending; sent raw, the registry
    refuses it."""
    issued = issue()
    patient.open()
    patient.take_home(issued.payload_text)
    dapp.open()
    patient.read(consent_code(dapp))
    authorization = patient.agree()

    page = dapp.open("pharmacy2").page
    block = w3.eth.block_number
    dapp.paste(authorization)
    expect(dapp.check("authorization")).to_have_class("bad")
    expect(dapp.check("authorization")).to_contain_text(f"authorised pharmacy {ids['pharmacy'].address}, not this one")
    expect(page.locator("#redeem")).to_be_disabled()
    assert w3.eth.block_number == block

    auth = h.decode_authorization(authorization)
    doctor, designated = auth.parties
    with pytest.raises(errors.BadClaimSignature):
        client.transact(
            ids["pharmacy2"],
            "redeem",
            doctor,
            auth.doc_hash,
            designated or h.ANYONE,
            auth.claim_key,
            auth.deadline,
            auth.signature,
        )
    with pytest.raises(h.AuthorizationForAnotherPharmacy):
        client.redeem_authorized(ids["pharmacy2"], auth)
    assert client.prescription(issued.rx_id).status is Status.ACTIVE
    dapp.assert_clean()


def test_the_authorization_for_fill_one_cannot_redeem_fill_two(patient, dapp, client, issue, ids):
    issued = issue(fills=2)
    app = patient.open().page
    patient.take_home(issued.payload_text)
    expect(app.locator("#rx-fills")).to_have_text("2")
    counter = dapp.open().page
    patient.read(consent_code(dapp))
    first = patient.agree()
    dapp.paste(first)
    counter.click("#redeem")
    expect(counter.locator("#redeem-outcome")).to_contain_text("Redeemed in block")
    client.dispatch(ids["pharmacy"], issued.rx_id, ids["courier"].address)
    patient.page.click("#done")
    patient.read(client.delivery_request(ids["courier"].address, issued.rx_id).encode())
    client.deliver_with_patient_receipt(ids["courier"], h.decode_receipt(patient.agree()))
    assert client.prescription(issued.rx_id).status is Status.REFILLABLE

    # The pharmacy kept the first authorization: the second fill is refused before sending and on chain.
    dapp.open()
    dapp.paste(first)
    expect(dapp.check("redeemable")).to_have_class("ok")
    expect(dapp.check("authorization")).to_have_class("bad")
    expect(dapp.check("authorization")).to_contain_text("for the fill with 2 fill(s) left; the prescription has 1 left")
    expect(counter.locator("#redeem")).to_be_disabled()
    auth = h.decode_authorization(first)
    doctor, designated = auth.parties
    with pytest.raises(errors.BadClaimSignature):
        client.transact(
            ids["pharmacy"],
            "redeem",
            doctor,
            auth.doc_hash,
            designated or h.ANYONE,
            auth.claim_key,
            auth.deadline,
            auth.signature,
        )

    # The patient consents again: the second fill goes through.
    patient.page.click("#done")
    patient.read(consent_code(dapp))
    expect(patient.page.locator("#ask-fill")).to_contain_text("1 left")
    dapp.paste(patient.agree())
    counter.click("#redeem")
    expect(counter.locator("#redeem-outcome")).to_contain_text("Redeemed in block")
    assert client.prescription(issued.rx_id).fills_left == 0
    dapp.assert_clean()
    patient.assert_clean()


def test_an_expired_authorization_is_refused_and_an_expired_request_is_not_signed(patient, dapp, client, issue, w3):
    issued = issue()
    patient.open()
    patient.take_home(issued.payload_text)
    counter = dapp.open().page
    request = consent_code(dapp)
    patient.read(request)
    authorization = patient.agree()
    deadline = h.decode_authorization(authorization).deadline
    chain.mine(timestamp=deadline + 5)

    block = w3.eth.block_number
    dapp.paste(authorization)
    expect(dapp.check("authorization")).to_have_class("bad")
    expect(dapp.check("authorization")).to_contain_text("expired")
    expect(counter.locator("#redeem")).to_be_disabled()
    assert w3.eth.block_number == block

    patient.page.click("#done")
    patient.read(request)
    expect(patient.page.locator("#request-error")).to_contain_text("expired")
    expect(patient.page.locator("#ask")).to_be_hidden()
    patient.assert_clean()
    dapp.assert_clean()


def test_wrong_pin_signs_nothing_and_foreign_codes_are_refused(patient, dapp, client, issue, ids):
    issued = issue()
    app = patient.open().page
    patient.take_home(issued.payload_text)
    dapp.open()
    request = consent_code(dapp)

    patient.read(request)
    app.fill("#pin", "000000")
    app.click("#sign")
    expect(app.locator("#sign-error")).to_have_text("Wrong PIN. Nothing was signed.")
    expect(app.locator("#answer")).to_be_hidden()

    # A request for another registry, and a code that is none of the pharmacy's or courier's.
    other = h.ConsentRequest(
        client.chain_id, ids["courier"].address, ids["pharmacy"].address, client.latest_block_time() + 600
    )
    patient.read(other.encode())
    expect(app.locator("#request-error")).to_contain_text("another registry")
    patient.read(issued.payload_text)
    expect(app.locator("#request-error")).to_contain_text("prescription code from the hospital")
    patient.read(request[:-10])
    expect(app.locator("#request-error")).to_contain_text("incomplete")
    # A courier's request for a prescription not on this phone.
    foreign = issue()
    patient.read(
        h.DeliveryRequest(
            client.chain_id, client.address, foreign.rx_id, ids["courier"].address, 0, client.latest_block_time() + 600
        ).encode()
    )
    expect(app.locator("#request-error")).to_contain_text("not on this phone")
    assert_key_never_stored(patient, issued)

    # Removing asks first; once removed, nothing of it is left.
    app.click("#forget")
    expect(app.locator("#forget-no")).to_be_focused()
    app.click("#forget-no")
    assert issued.payload_text[4:20] not in patient.stored() and ("0x" + issued.rx_id.hex()) in patient.stored()
    app.click("#forget")
    app.click("#forget-yes")
    expect(app.locator("#list-section")).to_be_hidden()
    assert ("0x" + issued.rx_id.hex()) not in patient.stored()
    patient.assert_clean()


def test_the_page_works_offline_once_loaded(patient, issue):
    """The service worker keeps the page: with the network cut, the page loads again and shows the prescription."""
    issued = issue()
    app = patient.open().page
    patient.take_home(issued.payload_text)
    app.wait_for_function(
        "() => navigator.serviceWorker.controller !== null || navigator.serviceWorker.ready.then(() => true)"
    )
    app.evaluate("() => navigator.serviceWorker.ready")
    app.reload()
    app.wait_for_selector("body[data-ready]")
    app.wait_for_function("() => navigator.serviceWorker.controller !== null")
    app.context.set_offline(True)
    app.reload()
    app.wait_for_selector("body[data-ready]")
    expect(app.locator("#rx-drugs")).to_have_text(DRUG)
    expect(app.locator("#rx-fills")).to_contain_text("unknown")
    app.context.set_offline(False)
    # Offline, the browser itself logs the failed reads of the chain; the page logged nothing of its own.
    patient.problems[:] = [
        p for p in patient.problems if "net::ERR_INTERNET_DISCONNECTED" not in p and "Failed to load resource" not in p
    ]


def test_paper_slips_at_the_counter(dapp, client, issue, ids):
    """A patient without a phone: the hospital printed a fill slip and a receipt slip (pharmacy and
    deliverer 0); the counter redeems with the one and hands over with the other."""
    issued = issue()
    fills, receipts = h.paper_slips(decode_payload(issued.payload_text), 1, issued.expires_at)
    counter = dapp.open().page
    dapp.paste(fills[0].encode())
    expect(dapp.check("authorization")).to_contain_text("A paper fill slip for this fill")
    counter.click("#redeem")
    expect(counter.locator("#redeem-outcome")).to_contain_text("Redeemed in block")
    counter.fill("#receipt-code", receipts[0].encode())
    counter.click("#deliver-receipt")
    expect(counter.locator("#handover-outcome")).to_contain_text("the patient confirmed receipt in block")
    assert client.prescription(issued.rx_id).status is Status.COMPLETED
    dapp.assert_clean()


def test_a_prescription_from_a_hospital_batch(patient, dapp, client, issue_batched, ids):
    """Issued in a batch of three, nothing of it on chain until its first fill: the patient's app reads
    the fills from its batch, consents, and the pharmacy opens it with redeemBatched."""
    batch = issue_batched(3, fills=2)
    item = batch.prescriptions[2]
    assert client.prescription(item.rx_id).status is Status.NONE
    app = patient.open().page
    patient.take_home(item.payload_text)
    expect(app.locator("#rx-fills")).to_have_text("2")
    expect(app.locator("#rx-state")).to_contain_text("Active")
    counter = dapp.open().page
    patient.read(consent_code(dapp))
    expect(app.locator("#ask-fill")).to_contain_text("2 left")
    dapp.paste(patient.agree())
    expect(counter.locator("#rx-status")).to_contain_text("issued in a batch, not yet redeemed")
    expect(dapp.check("authorization")).to_have_class("ok")
    counter.click("#redeem")
    expect(counter.locator("#redeem-outcome")).to_contain_text("Redeemed in block")
    state = client.prescription(item.rx_id)
    assert state.status is Status.DISPENSED and state.fills_left == 1
    dapp.assert_clean()
    patient.assert_clean()


def test_a_batched_prescription_is_read_through_a_range_limited_node(
    patient, client, issue_batched, deployment, rpc_url
):
    """The patient's app finds a batched prescription's batch in the chain's events on a node that
    refuses eth_getLogs over more than a few blocks (as Besu does beyond --rpc-max-logs-range)."""
    from client.fronts import NodeFront  # tests/ is on the path: pytest imports tests/client as "client"
    from rxchain.web.patient import make_patient_server

    item = issue_batched(3, fills=2).prescriptions[0]
    for _ in range(30):
        client.w3.provider.make_request("evm_mine", [])
    front = NodeFront(rpc_url, max_logs_range=6)
    try:
        with make_patient_server("127.0.0.1", 0, rpc_url=front.url, deployment=deployment) as limited:
            patient.url = limited.url
            app = patient.open().page
            patient.take_home(item.payload_text)
            expect(app.locator("#rx-fills")).to_have_text("2")
            expect(app.locator("#rx-state")).to_contain_text("Active")
        assert front.refused >= 1 and front.log_queries and all(end - start <= 6 for start, end in front.log_queries)
    finally:
        front.stop()
    patient.assert_clean()
