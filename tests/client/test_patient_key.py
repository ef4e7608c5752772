"""The patient holds the key: only the patient consents to a fill and only the patient confirms receipt.

Each attack is played by a member holding everything it legitimately saw (the codes shown to it, the
transactions on chain), twice: through the client, which refuses before sending with a named error,
and raw (the same bytes sent straight to the registry), which the contract refuses itself.
"""

from __future__ import annotations

import json
import zlib

import pytest

from rxchain import errors
from rxchain.audit import trail
from rxchain.core.claims import ANYONE
from rxchain.core.handover import (
    AuthorizationForAnotherFill,
    AuthorizationForAnotherPharmacy,
    BadHandoverSignature,
    HandoverExpired,
    ReceiptForAnotherDelivery,
    decode_authorization,
    decode_receipt,
)
from rxchain.core.payload import WrongRegistry, unframe
from rxchain.core.status import Status
from rxchain.workflow import (
    confirm_receipt_code,
    deliver_with_receipt_code,
    issue_on_paper,
    issue_prescription,
    patient_consent,
    patient_receipt,
    redeem_code,
)


def raw_redeem(client, pharmacy, auth):
    """The authorisation's own bytes sent straight to the registry (no client-side checks)."""
    doctor, designated = auth.parties
    return client.transact(
        pharmacy, "redeem", doctor, auth.doc_hash, designated or ANYONE, auth.claim_key, auth.deadline, auth.signature
    )


def raw_confirm(client, relayer, receipt, *, with_delivery=False):
    fn = "deliverWithReceipt" if with_delivery else "confirmReceipt"
    return client.transact(relayer, fn, receipt.rx_id, receipt.terms, receipt.deadline, receipt.signature)


def consent(client, issued, pharmacy):
    return patient_consent(client, issued.payload_text, client.consent_request(pharmacy.address).encode())


def receipt_for(client, issued, deliverer):
    return patient_receipt(
        client, issued.payload_text, client.delivery_request(deliverer.address, issued.rx_id).encode()
    )


# ---------------------------------------------------------------------------------- app mode


def test_the_patient_consents_per_pharmacy_and_signs_the_receipt_for_the_courier(
    client, doctor, pharmacy, courier, document
):
    issued = issue_prescription(client, doctor, document)
    auth = consent(client, issued, pharmacy)
    assert auth.pharmacy == pharmacy.address and auth.fills_left == 1
    assert issued.payload.claim_key.hex[2:] not in auth.encode() and issued.payload.claim_key.hex[2:] not in json.dumps(
        unframe(auth.encode(), "RXA")
    )  # the code never carries the key

    rx_id, _ = redeem_code(client, pharmacy, auth.encode())
    assert rx_id == issued.rx_id
    client.dispatch(pharmacy, rx_id, courier.address)
    client.deliver(courier, rx_id)
    receipt = receipt_for(client, issued, courier)
    assert receipt.deliverer == courier.address and receipt.fills_left == 0
    confirm_receipt_code(client, courier, receipt.encode())

    assert client.prescription(rx_id).status is Status.COMPLETED
    assert [s.step for s in trail(client, rx_id)][-1] == "received"


def test_a_photographed_authorization_is_useless_to_another_pharmacy(
    client, doctor, pharmacy, other_pharmacy, document
):
    issued = issue_prescription(client, doctor, document)
    photo = consent(client, issued, pharmacy)

    with pytest.raises(AuthorizationForAnotherPharmacy):
        redeem_code(client, other_pharmacy, photo.encode())
    with pytest.raises(errors.BadClaimSignature):
        raw_redeem(client, other_pharmacy, photo)
    assert client.prescription(issued.rx_id).status is Status.ACTIVE
    redeem_code(client, pharmacy, photo.encode())  # still good where it was given


def test_an_authorization_past_its_deadline_is_refused(client, doctor, pharmacy, document, w3):
    issued = issue_prescription(client, doctor, document)
    auth = consent(client, issued, pharmacy)
    w3.provider.make_request("evm_increaseTime", [auth.deadline - client.latest_block_time() + 1])
    w3.provider.make_request("evm_mine", [])

    with pytest.raises(HandoverExpired):
        redeem_code(client, pharmacy, auth.encode())
    with pytest.raises(errors.SignatureDeadlinePassed):
        raw_redeem(client, pharmacy, auth)


def test_the_pharmacy_of_fill_one_can_neither_fill_again_nor_forge_the_receipt(
    client, doctor, pharmacy, courier, document
):
    issued = issue_prescription(client, doctor, document, fills=2)
    seen = consent(client, issued, pharmacy)  # everything the pharmacy was shown
    redeem_code(client, pharmacy, seen.encode())

    # the receipt: the only signature it holds is the consent, which is no receipt
    forged = decode_receipt(receipt_for(client, issued, pharmacy).encode())  # the shape of a receipt
    forged = type(forged)(
        forged.chain_id, forged.registry, forged.rx_id, forged.terms, pharmacy.address, 1, seen.deadline, seen.signature
    )
    with pytest.raises(BadHandoverSignature):
        decode_receipt(forged.encode())
    with pytest.raises(errors.BadClaimSignature):
        raw_confirm(client, pharmacy, forged, with_delivery=True)

    # the patient receives fill 1 at the counter
    deliver_with_receipt_code(client, pharmacy, receipt_for(client, issued, pharmacy).encode())
    assert client.prescription(issued.rx_id).status is Status.REFILLABLE

    # fill 2: the consent for fill 1 does not do
    with pytest.raises(AuthorizationForAnotherFill):
        redeem_code(client, pharmacy, seen.encode())
    with pytest.raises(errors.BadClaimSignature):
        raw_redeem(client, pharmacy, seen)
    assert client.prescription(issued.rx_id).fills_left == 1

    # only a new consent from the patient fills it
    redeem_code(client, pharmacy, consent(client, issued, pharmacy).encode())
    assert client.prescription(issued.rx_id).fills_left == 0


def test_a_courier_cannot_confirm_without_the_patient_nor_with_another_handovers_receipt(
    client, doctor, pharmacy, courier, ids, document
):
    issued = issue_prescription(client, doctor, document, fills=2)
    other_courier = ids["courier2"]
    redeem_code(client, pharmacy, consent(client, issued, pharmacy).encode())
    client.dispatch(pharmacy, issued.rx_id, courier.address)

    # a receipt the patient signed for another courier's hand-over
    elsewhere = receipt_for(client, issued, other_courier)
    with pytest.raises(ReceiptForAnotherDelivery):
        deliver_with_receipt_code(client, courier, elsewhere.encode())
    with pytest.raises(errors.BadClaimSignature):
        raw_confirm(client, courier, elsewhere, with_delivery=True)

    # the courier's own request, signed by someone who is not the patient's key
    made_up = decode_receipt(receipt_for(client, issued, courier).encode())
    from rxchain.core.claims import RegistryDomain, sign_receipt

    fake = sign_receipt(
        courier.key, RegistryDomain(client.chain_id, client.address), issued.rx_id, courier.address, 1, made_up.deadline
    )
    forged = type(made_up)(
        *[
            getattr(made_up, f)
            for f in ("chain_id", "registry", "rx_id", "terms", "deliverer", "fills_left", "deadline")
        ],
        fake,
    )
    with pytest.raises(BadHandoverSignature):
        decode_receipt(forged.encode())
    with pytest.raises(errors.BadClaimSignature):
        raw_confirm(client, courier, forged, with_delivery=True)
    assert client.prescription(issued.rx_id).status is Status.DISPATCHED

    # fill 1 received at the door; its receipt cannot confirm fill 2
    first = receipt_for(client, issued, courier)
    deliver_with_receipt_code(client, courier, first.encode())
    redeem_code(client, pharmacy, consent(client, issued, pharmacy).encode())
    client.dispatch(pharmacy, issued.rx_id, courier.address)
    client.deliver(courier, issued.rx_id)
    with pytest.raises(ReceiptForAnotherDelivery):
        confirm_receipt_code(client, courier, first.encode())
    with pytest.raises(errors.BadClaimSignature):
        raw_confirm(client, courier, first)
    assert client.prescription(issued.rx_id).status is Status.DELIVERED


def test_a_consent_request_for_another_registry_is_refused_by_the_patient(client, doctor, pharmacy, document):
    issued = issue_prescription(client, doctor, document)
    request = client.consent_request(pharmacy.address)
    foreign = type(request)(request.chain_id, pharmacy.address, request.pharmacy, request.deadline)
    with pytest.raises(WrongRegistry):
        patient_consent(client, issued.payload_text, foreign.encode())


def test_an_altered_authorization_is_refused_before_sending(client, doctor, pharmacy, other_pharmacy, document):
    issued = issue_prescription(client, doctor, document)
    auth = consent(client, issued, pharmacy)
    obj = unframe(auth.encode(), "RXA")
    obj["pharmacy"] = other_pharmacy.address  # retarget the consent
    from rxchain.core.payload import frame

    with pytest.raises(BadHandoverSignature):
        decode_authorization(frame(obj, "RXA"))
    obj = unframe(auth.encode(), "RXA")
    obj["fillsLeft"] = 5
    with pytest.raises(BadHandoverSignature):
        decode_authorization(frame(obj, "RXA"))


# ---------------------------------------------------------------------------------- paper mode


def test_paper_slips_carry_no_key_and_each_fill_has_its_own(client, doctor, document):
    paper = issue_on_paper(client, doctor, document, fills=3)
    assert len(paper.fill_slips) == 3 and len(paper.receipt_slips) == 3
    assert len(set(paper.fill_slips + paper.receipt_slips)) == 6
    for text in paper.fill_slips:
        obj = unframe(text, "RXA")
        assert set(obj) == {
            "v",
            "chainId",
            "registry",
            "rxId",
            "claimAddress",
            "doc",
            "pharmacy",
            "fillsLeft",
            "deadline",
            "signature",
        }
        assert obj["pharmacy"] == ANYONE
        assert len(bytes.fromhex(obj["claimAddress"][2:])) == 20  # an address, never a private key
    assert [unframe(t, "RXA")["fillsLeft"] for t in paper.fill_slips] == [3, 2, 1]
    assert [unframe(t, "RXR")["fillsLeft"] for t in paper.receipt_slips] == [2, 1, 0]
    # nothing but these hex strings: no 32-byte secret anywhere in the slips' JSON
    for text in paper.fill_slips + paper.receipt_slips:
        raw = zlib.decompress(__import__("base64").urlsafe_b64decode(text[5:] + "=" * (-len(text[5:]) % 4))[:-4])
        hexes = [w for w in raw.decode().replace('"', " ").split() if w.startswith("0x")]
        assert all(len(h) in (42, 66, 132) for h in hexes)
        assert all(
            len(h) != 66 or h in (unframe(text, text[:3]).get("rxId"), unframe(text, text[:3]).get("terms"))
            for h in hexes
        )


def test_paper_the_pharmacy_of_fill_one_can_neither_fill_again_nor_confirm_receipt(
    client, doctor, pharmacy, other_pharmacy, courier, document
):
    paper = issue_on_paper(client, doctor, document, fills=2)
    slip1 = decode_authorization(paper.fill_slips[0])
    redeem_code(client, pharmacy, paper.fill_slips[0])

    # the slip it kept does not fill again, not even after the patient received fill 1
    with pytest.raises(AuthorizationForAnotherFill):
        redeem_code(client, pharmacy, paper.fill_slips[0])
    # the fill slip's signature is no receipt
    forged = decode_receipt(paper.receipt_slips[0])
    forged = type(forged)(
        forged.chain_id, forged.registry, forged.rx_id, forged.terms, ANYONE, 1, slip1.deadline, slip1.signature
    )
    with pytest.raises(errors.BadClaimSignature):
        raw_confirm(client, pharmacy, forged, with_delivery=True)

    # the courier gets the receipt slip at the door (from under the fold)
    client.dispatch(pharmacy, slip1.rx_id, courier.address)
    # the receipt slip of fill 2 does not confirm fill 1
    with pytest.raises(ReceiptForAnotherDelivery):
        deliver_with_receipt_code(client, courier, paper.receipt_slips[1])
    with pytest.raises(errors.BadClaimSignature):
        raw_confirm(client, courier, decode_receipt(paper.receipt_slips[1]), with_delivery=True)
    deliver_with_receipt_code(client, courier, paper.receipt_slips[0])
    assert client.prescription(slip1.rx_id).status is Status.REFILLABLE

    with pytest.raises(AuthorizationForAnotherFill):
        redeem_code(client, pharmacy, paper.fill_slips[0])
    with pytest.raises(errors.BadClaimSignature):
        raw_redeem(client, pharmacy, slip1)
    # fill 2 at another pharmacy, with its own slip
    redeem_code(client, other_pharmacy, paper.fill_slips[1])
    client.deliver(other_pharmacy, slip1.rx_id)
    confirm_receipt_code(client, other_pharmacy, paper.receipt_slips[1])
    assert client.prescription(slip1.rx_id).status is Status.COMPLETED
