"""One-time redemption: each allowed fill is redeemed once, by a pharmacy, with the claim key's consent.

Spec: IPrescriptionRegistry.redeem. The claim key signs the EIP-712 message
    Redeem(bytes32 rxId,address pharmacy,uint256 fillsLeft,uint256 deadline)
in the domain ("rxchain PrescriptionRegistry", "1", chainId, registry); rxchain.core.claims makes these
signatures for the client, and these tests check them against the contract.
"""

import pytest
from eth_keys.constants import SECPK1_N
from eth_utils import keccak

from rxchain.core import claims

from .conftest import (
    DAY,
    HOUR,
    PHARMACY_ROLE,
    ZERO_ADDRESS,
    Status,
    assert_events,
    deploy_registry,
    eip712_digest,
    event,
    fresh_claim_key,
    next_block_at,
    travel_to,
)


def test_pharmacy_redeems_with_the_claim_keys_consent(clinic, registry, doctor, pharmacy):
    rx = clinic.issue(doctor)
    issued = registry.prescription(rx.id)

    tx = clinic.redeem(rx, pharmacy)

    assert tx.return_value == rx.id
    assert_events(tx, registry, event("PrescriptionRedeemed", id=rx.id, pharmacy=pharmacy, fillsLeft=0))
    assert registry.prescription(rx.id) == (pharmacy.address, issued.issuedAt, rx.expires_at, Status.DISPENSED, 0)


def test_client_signs_exactly_the_digests_the_registry_verifies(clinic, registry, domain, pharmacy):
    rx_id, deadline = keccak(text="some prescription"), 1_900_000_000

    assert registry.redeemDigest(rx_id, pharmacy, 2, deadline) == eip712_digest(
        claims.redeem_typed_data(domain, rx_id, pharmacy.address, 2, deadline)
    )
    assert registry.receiptDigest(rx_id, pharmacy, 1, deadline) == eip712_digest(
        claims.receipt_typed_data(domain, rx_id, pharmacy.address, 1, deadline)
    )


def test_a_second_redemption_fails(clinic, registry, doctor, pharmacy, other_pharmacy, reverts):
    rx = clinic.dispensed(clinic.issue(doctor), pharmacy=pharmacy)

    for who in (pharmacy, other_pharmacy):
        with reverts(registry.AlreadyRedeemed, id=rx.id):
            clinic.redeem(rx, who, fills_left=1)
        with reverts(registry.AlreadyRedeemed, id=rx.id):
            clinic.redeem(rx, who, fills_left=0)


@pytest.mark.parametrize("stage", ["dispatched", "delivered", "received"])
def test_a_single_fill_cannot_be_redeemed_again_later_in_its_trail(clinic, registry, pharmacy, reverts, stage):
    rx = getattr(clinic, stage)()

    with reverts(registry.AlreadyRedeemed, id=rx.id):
        clinic.redeem(rx, pharmacy, fills_left=1)


def test_consent_given_to_one_pharmacy_does_not_work_for_another(
    clinic, registry, doctor, pharmacy, other_pharmacy, reverts
):
    rx = clinic.issue(doctor)
    deadline = clinic.deadline()
    for_pharmacy = clinic.redeem_signature(rx, pharmacy, deadline=deadline)

    with reverts(registry.BadClaimSignature, id=rx.id):
        clinic.redeem(rx, other_pharmacy, deadline=deadline, signature=for_pharmacy)

    clinic.redeem(rx, pharmacy, deadline=deadline, signature=for_pharmacy)


def test_a_paper_fill_slip_names_no_pharmacy_and_fills_its_own_fill_once(
    clinic, registry, doctor, pharmacy, other_pharmacy, courier, reverts
):
    """A slip signed for pharmacy 0 (paper: printed before any pharmacy was chosen) redeems its fill at
    whichever pharmacy presents it, and only that fill: the next fill's slip is another signature."""
    rx = clinic.issue(doctor, fills=2)
    expiry = rx.expires_at
    slip_one = clinic.redeem_signature(rx, ZERO_ADDRESS, fills_left=2, deadline=expiry)
    slip_two = clinic.redeem_signature(rx, ZERO_ADDRESS, fills_left=1, deadline=expiry)

    with reverts(registry.BadClaimSignature, id=rx.id):  # the second fill's slip does not fill the first
        clinic.redeem(rx, pharmacy, deadline=expiry, signature=slip_two)
    tx = clinic.redeem(rx, other_pharmacy, deadline=expiry, signature=slip_one)
    assert_events(tx, registry, event("PrescriptionRedeemed", id=rx.id, pharmacy=other_pharmacy, fillsLeft=1))
    clinic.deliver(rx, other_pharmacy)
    clinic.confirm(rx, courier)

    with reverts(registry.BadClaimSignature, id=rx.id):  # the slip it kept is spent
        clinic.redeem(rx, other_pharmacy, deadline=expiry, signature=slip_one)
    clinic.redeem(rx, pharmacy, deadline=expiry, signature=slip_two)
    assert registry.prescription(rx.id)[3:] == (Status.DISPENSED, 0)


def test_a_signature_by_any_other_key_fails(clinic, registry, doctor, pharmacy, reverts):
    rx = clinic.issue(doctor)
    someone_else = clinic.issue(doctor).claim_key  # a real claim key -- of another prescription

    with reverts(registry.BadClaimSignature, id=rx.id):
        clinic.redeem(rx, pharmacy, signer=someone_else)
    with reverts(registry.BadClaimSignature, id=rx.id):
        clinic.redeem(rx, pharmacy, signer=fresh_claim_key())  # a key no prescription knows


def test_a_signature_for_another_chain_fails(clinic, registry, chain, doctor, pharmacy, reverts):
    rx = clinic.issue(doctor)
    other_chain = claims.RegistryDomain(chain_id=chain.chain_id + 1, registry=registry.address)

    with reverts(registry.BadClaimSignature, id=rx.id):
        clinic.redeem(rx, pharmacy, domain=other_chain)


def test_a_signature_for_another_registry_fails(project, clinic, registry, chain, regulator, doctor, pharmacy, reverts):
    rx = clinic.issue(doctor)
    other_registry = deploy_registry(project, regulator)
    elsewhere = claims.RegistryDomain(chain_id=chain.chain_id, registry=other_registry.address)

    with reverts(registry.BadClaimSignature, id=rx.id):
        clinic.redeem(rx, pharmacy, domain=elsewhere)


def test_a_signature_for_another_deadline_fails(clinic, registry, doctor, pharmacy, reverts):
    rx = clinic.issue(doctor)
    deadline = clinic.deadline()
    signature = clinic.redeem_signature(rx, pharmacy, deadline=deadline)

    with reverts(registry.BadClaimSignature, id=rx.id):
        clinic.redeem(rx, pharmacy, deadline=deadline + HOUR, signature=signature)


def test_a_signature_for_another_fill_count_fails(clinic, registry, doctor, pharmacy, reverts):
    rx = clinic.issue(doctor, fills=1)

    with reverts(registry.BadClaimSignature, id=rx.id):
        clinic.redeem(rx, pharmacy, fills_left=2)


@pytest.mark.parametrize("mangle", ["empty", "64-bytes", "garbage-65-bytes", "high-s-twin"])
def test_malformed_or_malleated_signatures_fail(clinic, registry, doctor, pharmacy, reverts, mangle):
    rx = clinic.issue(doctor)
    deadline = clinic.deadline()
    good = clinic.redeem_signature(rx, pharmacy, deadline=deadline)
    bad = {
        "empty": b"",
        "64-bytes": good[:64],
        "garbage-65-bytes": bytes(range(65)),
        # The same signature's twin (s -> n - s, v flipped): valid maths, refused by OpenZeppelin's ECDSA.
        "high-s-twin": good[:32]
        + (SECPK1_N - int.from_bytes(good[32:64], "big")).to_bytes(32, "big")
        + bytes([55 - good[64]]),
    }[mangle]

    with reverts(registry.BadClaimSignature, id=rx.id):
        clinic.redeem(rx, pharmacy, deadline=deadline, signature=bad)


def test_the_signature_deadline_holds_through_its_last_second(clinic, registry, chain, doctor, pharmacy):
    rx = clinic.issue(doctor)
    deadline = chain.pending_timestamp + 10
    next_block_at(chain, deadline)

    tx = clinic.redeem(rx, pharmacy, deadline=deadline)

    assert tx.timestamp == deadline


def test_a_signature_past_its_deadline_fails(clinic, registry, chain, doctor, pharmacy, reverts):
    rx = clinic.issue(doctor)
    deadline = chain.pending_timestamp + 10
    signature = clinic.redeem_signature(rx, pharmacy, deadline=deadline)
    next_block_at(chain, deadline + 1)

    with reverts(registry.SignatureDeadlinePassed, deadline=deadline):
        clinic.redeem(rx, pharmacy, deadline=deadline, signature=signature)


def test_redeeming_an_unknown_prescription_fails(clinic, registry, doctor, pharmacy, reverts):
    rx = clinic.issue(doctor)
    wrong_document = keccak(text="another document")
    openings = (rx.doctor, wrong_document, rx.pharmacy, rx.claim_key.address)
    (unknown_id, _) = registry.computeId(*openings)

    with reverts(registry.UnknownPrescription, id=unknown_id):
        clinic.redeem(rx, pharmacy, openings=openings)


# ---------------------------------------------------------------------------------- expiry


def test_a_prescription_can_be_redeemed_in_its_last_second(clinic, registry, chain, doctor, pharmacy):
    rx = clinic.issue(doctor, valid_for=DAY)
    next_block_at(chain, rx.expires_at)

    tx = clinic.redeem(rx, pharmacy, deadline=rx.expires_at + HOUR)

    assert tx.timestamp == rx.expires_at
    assert registry.prescription(rx.id).status == Status.DISPENSED


def test_an_expired_prescription_cannot_be_redeemed(clinic, registry, chain, doctor, pharmacy, reverts):
    rx = clinic.issue(doctor, valid_for=DAY)
    travel_to(chain, rx.expires_at + 1)

    with reverts(registry.Expired, id=rx.id, expiresAt=rx.expires_at):
        clinic.redeem(rx, pharmacy)


def test_the_remaining_fills_expire_with_the_prescription(clinic, registry, chain, doctor, pharmacy, reverts):
    rx = clinic.received(clinic.issue(doctor, fills=2, valid_for=DAY))
    assert registry.prescription(rx.id).status == Status.REFILLABLE
    travel_to(chain, rx.expires_at + 1)

    with reverts(registry.Expired, id=rx.id, expiresAt=rx.expires_at):
        clinic.redeem(rx, pharmacy)


# ------------------------------------------------------------------------ designated pharmacy


def test_only_the_designated_pharmacy_redeems(clinic, registry, doctor, pharmacy, other_pharmacy, reverts):
    rx = clinic.issue(doctor, pharmacy=pharmacy)

    with reverts(registry.NotDesignatedPharmacy, id=rx.id, pharmacy=other_pharmacy):
        clinic.redeem(rx, other_pharmacy)

    tx = clinic.redeem(rx, pharmacy)
    assert_events(tx, registry, event("PrescriptionRedeemed", id=rx.id, pharmacy=pharmacy, fillsLeft=0))


def test_another_pharmacy_cannot_strip_the_designation(clinic, registry, doctor, pharmacy, other_pharmacy, reverts):
    rx = clinic.issue(doctor, pharmacy=pharmacy)
    stripped = (rx.doctor, rx.doc_hash, ZERO_ADDRESS, rx.claim_key.address)
    (stripped_id, _) = registry.computeId(*stripped)

    with reverts(registry.UnknownPrescription, id=stripped_id):
        clinic.redeem(rx, other_pharmacy, openings=stripped)


def test_a_designated_pharmacy_that_lost_its_licence_cannot_redeem(
    clinic, registry, regulator, doctor, pharmacy, reverts
):
    rx = clinic.issue(doctor, pharmacy=pharmacy)
    registry.revokeRole(PHARMACY_ROLE, pharmacy, sender=regulator)

    with reverts(registry.AccessControlUnauthorizedAccount, account=pharmacy, neededRole=PHARMACY_ROLE):
        clinic.redeem(rx, pharmacy)


def test_any_pharmacy_redeems_an_undesignated_prescription(clinic, registry, doctor, other_pharmacy):
    rx = clinic.issue(doctor)

    clinic.redeem(rx, other_pharmacy)

    assert registry.prescription(rx.id).custodian == other_pharmacy.address


# ------------------------------------------------------------------------------- several fills


def test_two_fills_are_redeemed_once_each_and_a_third_fails(
    clinic, registry, doctor, courier, pharmacy, other_pharmacy, reverts
):
    rx = clinic.issue(doctor, fills=2)
    deadline = clinic.deadline(DAY)
    first_fill_consent = clinic.redeem_signature(rx, pharmacy, fills_left=2, deadline=deadline)

    first = clinic.redeem(rx, pharmacy, deadline=deadline, signature=first_fill_consent)

    assert_events(first, registry, event("PrescriptionRedeemed", id=rx.id, pharmacy=pharmacy, fillsLeft=1))
    assert registry.prescription(rx.id)[3:] == (Status.DISPENSED, 1)
    # The next fill waits for the patient's receipt of this one.
    with reverts(registry.AlreadyRedeemed, id=rx.id):
        clinic.redeem(rx, pharmacy, fills_left=1)

    clinic.received(rx)  # dispatched, delivered, receipt confirmed
    assert registry.prescription(rx.id)[3:] == (Status.REFILLABLE, 1)

    # The first fill's consent cannot be replayed for the second.
    with reverts(registry.BadClaimSignature, id=rx.id):
        clinic.redeem(rx, pharmacy, deadline=deadline, signature=first_fill_consent)

    second = clinic.redeem(rx, pharmacy, fills_left=1)

    assert_events(second, registry, event("PrescriptionRedeemed", id=rx.id, pharmacy=pharmacy, fillsLeft=0))
    assert registry.prescription(rx.id)[3:] == (Status.DISPENSED, 0)

    clinic.received(rx)
    assert registry.prescription(rx.id)[3:] == (Status.COMPLETED, 0)
    for fills_left in (0, 1, 2):
        with reverts(registry.AlreadyRedeemed, id=rx.id):
            clinic.redeem(rx, other_pharmacy, fills_left=fills_left)


def test_each_fill_may_go_to_a_different_pharmacy(clinic, registry, doctor, pharmacy, other_pharmacy, courier):
    rx = clinic.issue(doctor, fills=3)
    fillers = [pharmacy, other_pharmacy, pharmacy]

    for fills_left, filler in zip((3, 2, 1), fillers):
        tx = clinic.redeem(rx, filler, fills_left=fills_left)
        assert_events(tx, registry, event("PrescriptionRedeemed", id=rx.id, pharmacy=filler, fillsLeft=fills_left - 1))
        assert registry.prescription(rx.id).custodian == filler.address
        clinic.dispatch(rx, filler, courier)
        clinic.deliver(rx, courier)
        clinic.confirm(rx, courier)

    assert registry.prescription(rx.id)[3:] == (Status.COMPLETED, 0)
