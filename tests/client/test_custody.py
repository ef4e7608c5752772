"""The regulator reassigns or voids what a revoked pharmacy holds, and the trail says so (issue 11, finding 6)."""

from __future__ import annotations

from rxchain.audit import trail
from rxchain.dev.demo import demo_document
from rxchain.core.status import Status
from rxchain.workflow import issue_prescription, redeem_payload


def test_auditor_cannot_miss_a_reassignment_when_it_reads_the_trail(client, ids):
    item = issue_prescription(client, ids["doctor"], demo_document(ids["doctor"].address, client.latest_block_time()))
    redeem_payload(client, ids["pharmacy"], item.payload_text)
    client.revoke(ids["regulator"], ids["pharmacy"].address, "pharmacy")

    client.transact(ids["regulator"], "reassignCustody", item.rx_id, ids["pharmacy2"].address)
    client.deliver(ids["pharmacy2"], item.rx_id)

    steps = trail(client, item.rx_id)
    assert [s.step for s in steps] == ["issued", "redeemed", "custody reassigned", "delivered"]
    moved = steps[2]
    assert moved.actor == ids["regulator"].address
    assert moved.details == {"from": ids["pharmacy"].address, "to": ids["pharmacy2"].address}
    assert client.prescription(item.rx_id).status is Status.DELIVERED


def test_auditor_cannot_miss_a_voided_fill_when_it_reads_the_trail(client, ids):
    document = demo_document(ids["doctor"].address, client.latest_block_time())
    item = issue_prescription(client, ids["doctor"], document, fills=2)
    redeem_payload(client, ids["pharmacy"], item.payload_text)
    client.dispatch(ids["pharmacy"], item.rx_id, ids["courier"].address)
    client.revoke(ids["regulator"], ids["courier"].address, "courier")

    client.transact(ids["regulator"], "voidCustody", item.rx_id)
    assert client.prescription(item.rx_id).status is Status.REFILLABLE
    redeem_payload(client, ids["pharmacy2"], item.payload_text)  # the fill left, elsewhere

    steps = trail(client, item.rx_id)
    assert [s.step for s in steps] == ["issued", "redeemed", "dispatched", "custody voided", "redeemed"]
    voided = steps[3]
    assert voided.actor == ids["regulator"].address
    assert voided.details == {"custodian": ids["courier"].address, "fillsLeft": 1}
    assert steps[4].actor == ids["pharmacy2"].address
