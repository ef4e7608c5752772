"""The delivery trail: redeem -> [dispatch ->] deliver -> receipt, each step stamped and in order.

Spec: IPrescriptionRegistry.dispatch / deliver / deliverWithReceipt / confirmReceipt and the Status
machine: Active -> Dispensed -> [Dispatched ->] Delivered -> Completed | Refillable. The receipt is
the claim key's EIP-712 signature of Receipt(bytes32 rxId,uint256 fillsLeft,uint256 deadline).
"""

import dataclasses

import pytest
from eth_utils import keccak

from rxchain.core import claims

from .conftest import (
    COURIER_ROLE,
    DAY,
    HOUR,
    ZERO_ADDRESS,
    Status,
    assert_events,
    event,
    fresh_claim_key,
    next_block_at,
    registry_events,
    travel_to,
)

# The trail events and their indexed arguments (what an auditor filters on).
INDEXED = {
    "PrescriptionIssued": ["id", "doctor", "hospital"],
    "PrescriptionCancelled": ["id", "by"],
    "PrescriptionRedeemed": ["id", "pharmacy"],
    "PrescriptionDispatched": ["id", "pharmacy", "courier"],
    "PrescriptionDelivered": ["id", "by"],
    "ReceiptConfirmed": ["id", "relayer"],
    # Batches: a pharmacy's client finds a batched prescription's root and siblings by these topics.
    "BatchIssued": ["root", "hospital"],
    "PrescriptionBatched": ["id", "root"],
    "BatchCancelled": ["root", "hospital", "by"],
}


def test_trail_events_index_the_prescription_and_the_parties(registry):
    abis = {e.name: e for e in registry.contract_type.events}
    for name, indexed in INDEXED.items():
        assert [i.name for i in abis[name].inputs if i.indexed] == indexed, name


def test_home_delivery_trail_is_stamped_step_by_step(
    clinic, registry, chain, doctor, hospital, pharmacy, courier, stranger
):
    rx = clinic.issue(doctor, pharmacy=pharmacy, valid_for=2 * DAY)
    issued_at = rx.issue_tx.timestamp
    assert registry.prescription(rx.id) == (doctor.address, issued_at, rx.expires_at, Status.ACTIVE, 1)

    chain.pending_timestamp += HOUR
    redeemed = clinic.redeem(rx, pharmacy)
    assert_events(redeemed, registry, event("PrescriptionRedeemed", id=rx.id, pharmacy=pharmacy, fillsLeft=0))
    assert registry.prescription(rx.id) == (pharmacy.address, issued_at, rx.expires_at, Status.DISPENSED, 0)

    chain.pending_timestamp += HOUR
    dispatched = clinic.dispatch(rx, pharmacy, courier)
    assert_events(dispatched, registry, event("PrescriptionDispatched", id=rx.id, pharmacy=pharmacy, courier=courier))
    assert registry.prescription(rx.id) == (courier.address, issued_at, rx.expires_at, Status.DISPATCHED, 0)

    chain.pending_timestamp += HOUR
    delivered = clinic.deliver(rx, courier)
    assert_events(delivered, registry, event("PrescriptionDelivered", id=rx.id, by=courier))
    assert registry.prescription(rx.id) == (courier.address, issued_at, rx.expires_at, Status.DELIVERED, 0)

    chain.pending_timestamp += HOUR
    confirmed = clinic.confirm(rx, stranger)  # anyone may relay the patient's receipt
    assert_events(confirmed, registry, event("ReceiptConfirmed", id=rx.id, relayer=stranger, fillsLeft=0))
    assert registry.prescription(rx.id) == (courier.address, issued_at, rx.expires_at, Status.COMPLETED, 0)

    # An auditor reads the whole trail back by the prescription's id alone, each step at its block's time.
    steps = [rx.issue_tx, redeemed, dispatched, delivered, confirmed]
    trail = trail_of(registry, chain, rx, since=rx.issue_tx.block_number)
    assert [(name, block) for name, block, _ in trail] == list(
        zip(
            [
                "PrescriptionIssued",
                "PrescriptionRedeemed",
                "PrescriptionDispatched",
                "PrescriptionDelivered",
                "ReceiptConfirmed",
            ],
            [tx.block_number for tx in steps],
        )
    )
    stamps = [chain.blocks[block].timestamp for _, block, _ in trail]
    assert stamps == [tx.timestamp for tx in steps]
    assert stamps == sorted(stamps) and stamps[1] - stamps[0] >= HOUR
    assert stamps[0] == issued_at


def trail_of(registry, chain, rx, since):
    """(event name, block number, topics) of every registry log whose first topic after the signature is
    ``rx.id`` -- the query an auditor runs, needing nothing but the id."""
    names = {keccak(text=e.selector): e.name for e in registry.contract_type.events}
    logs = chain.provider.web3.eth.get_logs(
        {"address": registry.address, "fromBlock": since, "toBlock": "latest", "topics": [None, "0x" + rx.id.hex()]}
    )
    return [(names[bytes(log["topics"][0])], log["blockNumber"], log["topics"]) for log in logs]


def test_auditor_finds_a_pharmacys_redemptions_by_its_topic(clinic, registry, chain, doctor, pharmacy, other_pharmacy):
    start = chain.blocks.head.number
    mine = [clinic.dispensed(clinic.issue(doctor), pharmacy=pharmacy) for _ in range(2)]
    clinic.dispensed(clinic.issue(doctor), pharmacy=other_pharmacy)

    redeemed = keccak(text="PrescriptionRedeemed(bytes32,address,uint8)")
    logs = chain.provider.web3.eth.get_logs(
        {
            "address": registry.address,
            "fromBlock": start,
            "toBlock": "latest",
            "topics": ["0x" + redeemed.hex(), None, "0x" + bytes(12).hex() + pharmacy.address[2:].lower()],
        }
    )
    assert [bytes(log["topics"][1]) for log in logs] == [rx.id for rx in mine]


def test_courier_delivers_with_the_receipt_in_one_transaction(clinic, registry, doctor, pharmacy, courier):
    rx = clinic.dispatched(clinic.issue(doctor), pharmacy=pharmacy, courier=courier)

    tx = clinic.deliver_with_receipt(rx, courier)

    assert_events(
        tx,
        registry,
        event("PrescriptionDelivered", id=rx.id, by=courier),
        event("ReceiptConfirmed", id=rx.id, relayer=courier, fillsLeft=0),
    )
    assert registry.prescription(rx.id)[3:] == (Status.COMPLETED, 0)


def test_pharmacy_hands_over_the_counter_then_the_receipt_is_confirmed(clinic, registry, doctor, pharmacy):
    rx = clinic.dispensed(clinic.issue(doctor), pharmacy=pharmacy)

    delivered = clinic.deliver(rx, pharmacy)

    assert_events(delivered, registry, event("PrescriptionDelivered", id=rx.id, by=pharmacy))
    assert registry.prescription(rx.id)[::3] == (pharmacy.address, Status.DELIVERED)

    confirmed = clinic.confirm(rx, pharmacy)

    assert_events(confirmed, registry, event("ReceiptConfirmed", id=rx.id, relayer=pharmacy, fillsLeft=0))
    assert registry.prescription(rx.id)[3:] == (Status.COMPLETED, 0)


def test_pharmacy_hands_over_the_counter_with_the_receipt_in_one_transaction(clinic, registry, doctor, pharmacy):
    rx = clinic.dispensed(clinic.issue(doctor), pharmacy=pharmacy)

    tx = clinic.deliver_with_receipt(rx, pharmacy)

    assert_events(
        tx,
        registry,
        event("PrescriptionDelivered", id=rx.id, by=pharmacy),
        event("ReceiptConfirmed", id=rx.id, relayer=pharmacy, fillsLeft=0),
    )
    assert registry.prescription(rx.id)[3:] == (Status.COMPLETED, 0)


def test_drugs_dispensed_in_time_may_still_be_delivered_after_the_prescription_expires(
    clinic, registry, chain, doctor, pharmacy, courier
):
    rx = clinic.dispensed(clinic.issue(doctor, valid_for=HOUR), pharmacy=pharmacy)
    travel_to(chain, rx.expires_at + DAY)

    clinic.dispatch(rx, pharmacy, courier)
    clinic.deliver(rx, courier)
    clinic.confirm(rx, courier)

    assert registry.prescription(rx.id).status == Status.COMPLETED


def test_two_fills_each_get_their_own_receipt(clinic, registry, doctor, pharmacy, other_pharmacy, courier, reverts):
    rx = clinic.delivered(clinic.issue(doctor, fills=2), pharmacy=pharmacy, courier=courier)
    deadline = clinic.deadline(DAY)
    first_receipt = clinic.receipt_signature(rx, fills_left=1, deadline=deadline)

    first = clinic.confirm(rx, courier, deadline=deadline, signature=first_receipt)

    assert_events(first, registry, event("ReceiptConfirmed", id=rx.id, relayer=courier, fillsLeft=1))
    assert registry.prescription(rx.id)[::3] == (courier.address, Status.REFILLABLE)

    clinic.dispensed(rx, pharmacy=other_pharmacy)
    clinic.deliver(rx, other_pharmacy)

    # The first fill's receipt says nothing about the second.
    with reverts(registry.BadClaimSignature, id=rx.id):
        clinic.confirm(rx, courier, deadline=deadline, signature=first_receipt)

    second = clinic.confirm(rx, other_pharmacy)

    assert_events(second, registry, event("ReceiptConfirmed", id=rx.id, relayer=other_pharmacy, fillsLeft=0))
    assert registry.prescription(rx.id)[3:] == (Status.COMPLETED, 0)


# --------------------------------------------------------------------------------- bad receipts


@pytest.mark.parametrize("how", ["confirmReceipt", "deliverWithReceipt"])
class TestBadReceipts:
    """A receipt must be the claim key's, for this prescription's fill, in time; else nothing changes."""

    @staticmethod
    def send(clinic, how, rx, courier, **kwargs):
        if how == "confirmReceipt":
            return clinic.confirm(rx, courier, **kwargs)
        return clinic.deliver_with_receipt(rx, courier, **kwargs)

    @pytest.fixture
    def rx(self, clinic, how, doctor, pharmacy, courier):
        rx = clinic.issue(doctor, fills=2)
        return clinic.delivered(rx) if how == "confirmReceipt" else clinic.dispatched(rx)

    def test_a_receipt_signed_by_another_key_fails(self, clinic, registry, courier, reverts, how, rx):
        with reverts(registry.BadClaimSignature, id=rx.id):
            self.send(clinic, how, rx, courier, signer=fresh_claim_key())

    def test_a_receipt_with_the_terms_of_another_prescription_fails(self, clinic, registry, courier, reverts, how, rx):
        other = clinic.issue()
        with reverts(registry.BadClaimSignature, id=rx.id):
            self.send(clinic, how, rx, courier, terms=other.terms)

    def test_a_receipt_for_another_fill_fails(self, clinic, registry, courier, reverts, how, rx):
        with reverts(registry.BadClaimSignature, id=rx.id):
            self.send(clinic, how, rx, courier, fills_left=2)

    def test_a_receipt_for_another_chain_fails(self, clinic, registry, chain, courier, reverts, how, rx):
        other_chain = claims.RegistryDomain(chain_id=chain.chain_id + 1, registry=registry.address)
        with reverts(registry.BadClaimSignature, id=rx.id):
            self.send(clinic, how, rx, courier, domain=other_chain)

    def test_a_redeem_consent_is_not_a_receipt(self, clinic, registry, courier, reverts, how, rx):
        deadline = clinic.deadline()
        consent = clinic.redeem_signature(rx, courier, deadline=deadline)
        with reverts(registry.BadClaimSignature, id=rx.id):
            self.send(clinic, how, rx, courier, deadline=deadline, signature=consent)

    def test_a_receipt_for_another_deliverer_fails(
        self, clinic, registry, courier, pharmacy, other_pharmacy, reverts, how, rx
    ):
        # the patient signed for another hand-over: another courier's, or the counter's
        for deliverer in (other_pharmacy, pharmacy):
            with reverts(registry.BadClaimSignature, id=rx.id):
                self.send(clinic, how, rx, courier, deliverer=deliverer.address)

    def test_a_paper_receipt_slip_names_nobody_and_holds(self, clinic, registry, courier, how, rx):
        tx = self.send(clinic, how, rx, courier, deliverer=ZERO_ADDRESS)
        assert registry_events(tx, registry)[-1] == event("ReceiptConfirmed", id=rx.id, relayer=courier, fillsLeft=1)

    def test_a_garbage_receipt_fails(self, clinic, registry, courier, reverts, how, rx):
        with reverts(registry.BadClaimSignature, id=rx.id):
            self.send(clinic, how, rx, courier, deadline=clinic.deadline(), signature=bytes(65))

    def test_a_receipt_past_its_deadline_fails(self, clinic, registry, chain, courier, reverts, how, rx):
        deadline = chain.pending_timestamp + 10
        signature = clinic.receipt_signature(rx, deadline=deadline, fills_left=1)
        next_block_at(chain, deadline + 1)
        with reverts(registry.SignatureDeadlinePassed, deadline=deadline):
            self.send(clinic, how, rx, courier, deadline=deadline, signature=signature)


@pytest.mark.parametrize("how", ["confirmReceipt", "deliverWithReceipt"])
def test_a_receipt_holds_through_its_deadlines_last_second(clinic, registry, chain, doctor, pharmacy, courier, how):
    """The receipt's deadline is its last valid second, as a redeem consent's is (``>``, never ``>=``)."""
    rx = clinic.issue(doctor, fills=2)
    rx = clinic.delivered(rx) if how == "confirmReceipt" else clinic.dispatched(rx)
    deadline = chain.pending_timestamp + 10
    signature = clinic.receipt_signature(rx, deadline=deadline, fills_left=1)
    next_block_at(chain, deadline)

    tx = TestBadReceipts.send(clinic, how, rx, courier, deadline=deadline, signature=signature)

    assert tx.timestamp == deadline
    assert registry_events(tx, registry)[-1] == event("ReceiptConfirmed", id=rx.id, relayer=courier, fillsLeft=1)
    assert registry.prescription(rx.id)[3:] == (Status.REFILLABLE, 1)


# ------------------------------------------------------------------------------- out of order


# step -> who takes it, for the step's own call
def _take(step, clinic, rx, parties):
    p = parties
    if step == "dispatch":
        return clinic.dispatch(rx, p["pharmacy"], p["courier"])
    if step == "deliver":
        return clinic.deliver(rx, p["courier"])
    if step == "deliverWithReceipt":
        return clinic.deliver_with_receipt(rx, p["courier"], fills_left=0)
    if step == "confirmReceipt":
        return clinic.confirm(rx, p["courier"], fills_left=0)
    raise AssertionError(step)


_STAGES = {
    Status.ACTIVE: lambda clinic: clinic.issue(),
    Status.CANCELLED: lambda clinic: _cancelled(clinic),
    Status.DISPENSED: lambda clinic: clinic.dispensed(),
    Status.DISPATCHED: lambda clinic: clinic.dispatched(),
    Status.DELIVERED: lambda clinic: clinic.delivered(),
    Status.COMPLETED: lambda clinic: clinic.received(),
    Status.REFILLABLE: lambda clinic: clinic.received(fills=2),
}


def _cancelled(clinic):
    rx = clinic.issue()
    clinic.registry.cancel(rx.id, sender=clinic.parties["doctor"])
    return rx


# Where each step is allowed (its status before); every other status is WrongStatus.
_ALLOWED_FROM = {
    "dispatch": {Status.DISPENSED},
    "deliver": {Status.DISPENSED, Status.DISPATCHED},
    "deliverWithReceipt": {Status.DISPENSED, Status.DISPATCHED},
    "confirmReceipt": {Status.DELIVERED},
}

_OUT_OF_ORDER = [
    pytest.param(step, status, id=f"{step}-when-{status.name.lower()}")
    for step, allowed in _ALLOWED_FROM.items()
    for status in _STAGES
    if status not in allowed
]


@pytest.mark.parametrize("step, status", _OUT_OF_ORDER)
def test_a_step_out_of_order_fails_with_wrong_status(clinic, registry, parties, reverts, step, status):
    rx = _STAGES[status](clinic)
    assert registry.prescription(rx.id).status == status

    with reverts(registry.WrongStatus, id=rx.id, current=status):
        _take(step, clinic, rx, parties)


@pytest.mark.parametrize("step", list(_ALLOWED_FROM))
def test_a_step_on_an_unknown_prescription_fails(clinic, registry, parties, reverts, step):
    rx = clinic.issue()
    unknown = dataclasses.replace(rx, id=keccak(text="never issued"))

    with reverts(registry.UnknownPrescription, id=unknown.id):
        _take(step, clinic, unknown, parties)


# ------------------------------------------------------------------------------- who holds it


def test_only_the_pharmacy_that_filled_it_dispatches(clinic, registry, pharmacy, other_pharmacy, courier, reverts):
    rx = clinic.dispensed(pharmacy=pharmacy)

    with reverts(registry.NotCustodian, id=rx.id, caller=other_pharmacy, custodian=pharmacy):
        clinic.dispatch(rx, other_pharmacy, courier)


def test_pharmacy_cannot_deliver_what_it_handed_to_a_courier(clinic, registry, pharmacy, courier, reverts):
    rx = clinic.dispatched(pharmacy=pharmacy, courier=courier)

    with reverts(registry.NotCustodian, id=rx.id, caller=pharmacy, custodian=courier):
        clinic.deliver(rx, pharmacy)


def test_courier_cannot_deliver_what_it_was_not_handed(clinic, registry, pharmacy, courier, reverts):
    rx = clinic.dispensed(pharmacy=pharmacy)

    with reverts(registry.NotCustodian, id=rx.id, caller=courier, custodian=pharmacy):
        clinic.deliver(rx, courier)
    with reverts(registry.NotCustodian, id=rx.id, caller=courier, custodian=pharmacy):
        clinic.deliver_with_receipt(rx, courier)


def test_dispatching_to_the_zero_address_fails(clinic, registry, pharmacy, reverts):
    rx = clinic.dispensed(pharmacy=pharmacy)

    with reverts(registry.ZeroCourier):
        clinic.dispatch(rx, pharmacy, ZERO_ADDRESS)


@pytest.mark.parametrize("name", ["auditor", "other_pharmacy", "doctor", "stranger"])
def test_dispatching_to_someone_who_is_not_a_courier_fails(clinic, registry, parties, pharmacy, reverts, name):
    rx = clinic.dispensed(pharmacy=pharmacy)

    with reverts(registry.AccessControlUnauthorizedAccount, account=parties[name], neededRole=COURIER_ROLE):
        clinic.dispatch(rx, pharmacy, parties[name])


def test_dispatching_to_a_courier_whose_credential_ended_fails(
    clinic, registry, chain, regulator, pharmacy, courier, reverts
):
    rx = clinic.dispensed(pharmacy=pharmacy)
    end = chain.pending_timestamp + HOUR
    registry.renewMember(courier, end, sender=regulator)
    travel_to(chain, end + 1)

    with reverts(registry.CredentialExpired, account=courier, role=COURIER_ROLE, validUntil=end):
        clinic.dispatch(rx, pharmacy, courier)


def test_dispatching_to_a_revoked_courier_fails(clinic, registry, regulator, pharmacy, courier, reverts):
    rx = clinic.dispensed(pharmacy=pharmacy)
    registry.revokeRole(COURIER_ROLE, courier, sender=regulator)

    with reverts(registry.AccessControlUnauthorizedAccount, account=courier, neededRole=COURIER_ROLE):
        clinic.dispatch(rx, pharmacy, courier)


def test_the_trail_keeps_issue_and_expiry_times(clinic, registry, doctor, courier):
    rx = clinic.received(clinic.issue(doctor, valid_for=DAY), courier=courier)

    assert registry.prescription(rx.id) == (courier.address, rx.issue_tx.timestamp, rx.expires_at, Status.COMPLETED, 0)
