"""The hand-over codes without a chain: one input gives one text, and the patient's side refuses
requests it must not answer."""

from __future__ import annotations

import pytest

from rxchain.core.handover import (
    ConsentRequest,
    DeliveryRequest,
    HandoverExpired,
    PharmacyNotDesignated,
    authorize,
    decode_authorization,
    decode_consent_request,
    decode_delivery_request,
    sign_receipt_for,
)
from rxchain.core.payload import ClaimKey, PrescriptionPayload

from test_payload import CHAIN_ID, PHARMACY, REGISTRY, make_document

OTHER = "0x5c6B0f7Bf3E7ce046039Bd8FABdfD3f9F5021678"


def payload(pharmacy: str | None = None) -> PrescriptionPayload:
    return PrescriptionPayload.create(
        chain_id=CHAIN_ID, registry=REGISTRY, claim_key=ClaimKey.generate(), document=make_document(pharmacy)
    )


def test_addresses_are_checksummed_so_one_input_gives_one_text():
    lower = ConsentRequest(CHAIN_ID, REGISTRY.lower(), PHARMACY.lower(), 1_900_000_000)
    mixed = ConsentRequest(CHAIN_ID, REGISTRY, PHARMACY, 1_900_000_000)
    assert lower == mixed and lower.encode() == mixed.encode()
    assert decode_consent_request(lower.encode()) == lower
    request = DeliveryRequest(CHAIN_ID, REGISTRY.lower(), bytes(32), OTHER.lower(), 1, 5)
    assert decode_delivery_request(request.encode()) == request and request.deliverer == OTHER


def test_the_patient_refuses_a_pharmacy_the_doctor_did_not_designate():
    designated = payload(PHARMACY)
    with pytest.raises(PharmacyNotDesignated) as err:
        authorize(designated, ConsentRequest(CHAIN_ID, REGISTRY, OTHER, 2_000_000_000), 1)
    assert (err.value.designated, err.value.asking) == (PHARMACY, OTHER)
    auth = authorize(designated, ConsentRequest(CHAIN_ID, REGISTRY, PHARMACY, 2_000_000_000), 1)
    assert decode_authorization(auth.encode()) == auth


def test_the_patient_refuses_a_request_past_its_deadline():
    p = payload()
    with pytest.raises(HandoverExpired):
        authorize(p, ConsentRequest(CHAIN_ID, REGISTRY, PHARMACY, 1_000), 1, now=1_001)
    authorize(p, ConsentRequest(CHAIN_ID, REGISTRY, PHARMACY, 1_000), 1, now=1_000)  # its last second
    with pytest.raises(HandoverExpired):
        sign_receipt_for(p, DeliveryRequest(CHAIN_ID, REGISTRY, p.rx_id, OTHER, 0, 1_000), now=1_001)


@pytest.mark.parametrize(
    ("decode", "noun", "prefix"),
    [
        ("decode_consent_request", "consent request", "RXP1."),
        ("decode_authorization", "authorization code", "RXA1."),
        ("decode_delivery_request", "delivery request", "RXD1."),
        ("decode_receipt", "receipt code", "RXR1."),
    ],
)
def test_a_damaged_hand_over_code_is_named_for_what_it_is_not_called_a_prescription_code(decode, noun, prefix):
    """A pharmacist who scanned a damaged authorisation must read "authorization code", not be sent
    looking for a prescription's QR."""
    from rxchain import core
    from rxchain.core.payload import PayloadError

    for text in ("hello", prefix + "abc", prefix + "A" * 40, prefix.replace("1.", "2.") + "AAAA"):
        with pytest.raises(PayloadError) as refused:
            getattr(core.handover, decode)(text)
        assert noun in str(refused.value) and "prescription code" not in str(refused.value), (text, refused.value)
