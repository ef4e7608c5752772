"""The client picks only batches the registry would open a prescription from (issue 11, finding 2).

Another hospital sees a batched prescription's id in its ``PrescriptionBatched`` event and announces
it in a batch of its own, newer than the genuine one; it also announces the genuine batch's root.
The pharmacy's client must still find the genuine batch -- its doctor's own hospital's -- and redeem.
"""

from __future__ import annotations

import pytest

from rxchain.core.batch import find_batch_proof
from rxchain.dev.demo import demo_document
from rxchain.core.status import Status
from rxchain.workflow import issue_batch, redeem_payload


@pytest.fixture
def documents(client, ids):
    now = client.latest_block_time()
    return [demo_document(ids["doctor"].address, now) for _ in range(3)]


def test_other_hospital_cannot_steer_the_client_to_its_batch_when_it_announces_the_id(client, ids, documents):
    genuine = issue_batch(client, ids["hospital"], documents)
    victim = genuine.prescriptions[0]
    expires_at = victim.expires_at
    client.issue_batch(ids["hospital2"], [victim.rx_id], expires_at)  # newer, and it names the id
    client.issue_batch(ids["hospital2"], [p.rx_id for p in reversed(genuine.prescriptions)], expires_at)

    redeem_payload(client, ids["pharmacy"], victim.payload_text)
    assert client.prescription(victim.rx_id).status is Status.DISPENSED
    assert find_batch_proof(client, victim.rx_id, ids["doctor"].address).root == genuine.root
