"""Log queries on a node that limits eth_getLogs to a block range, as Besu does (--rpc-max-logs-range,
5,000 blocks by default, error -32005 beyond it).

Besu cannot run here: the node is the suite's anvil behind a small JSON-RPC front that refuses, with
Besu's error, any eth_getLogs spanning more blocks than its limit and passes everything else through.
The control test shows the front refuses what the old single-query code asked.
"""

from __future__ import annotations

import pytest
from web3 import Web3

from rxchain import audit
from rxchain.chain.client import RegistryClient
from rxchain.core.batch import find_batch_proof
from rxchain.core.status import Status
from rxchain.dev.demo import demo_document
from rxchain.workflow import issue_batch, issue_prescription, redeem_payload

from .fronts import NodeFront

NODE_LIMIT = 6  # the limited node's --rpc-max-logs-range


@pytest.fixture
def limited(rpc_url):
    node = NodeFront(rpc_url, max_logs_range=NODE_LIMIT)
    yield node
    node.stop()


@pytest.fixture
def a_long_history(client, ids, document):
    """A prescription through redemption, then many empty blocks: the history spans far more than the limit."""
    issued = issue_prescription(client, ids["doctor"], document)
    redeem_payload(client, ids["pharmacy"], issued.payload_text)
    for _ in range(4 * NODE_LIMIT):
        client.w3.provider.make_request("evm_mine", [])
    assert client.head() - client.deploy_block > 3 * NODE_LIMIT
    return issued


def limited_client(limited: NodeFront, client: RegistryClient, max_logs_range: int) -> RegistryClient:
    return RegistryClient(Web3(Web3.HTTPProvider(limited.url)), client.address, deploy_block=client.deploy_block,
                          max_logs_range=max_logs_range)  # fmt: skip


def test_the_limited_node_refuses_a_query_from_the_deploy_block_to_the_head(limited, client, a_long_history):
    w3 = Web3(Web3.HTTPProvider(limited.url))

    with pytest.raises(Exception, match="exceeds maximum RPC range limit"):
        w3.eth.get_logs({"address": client.address, "fromBlock": client.deploy_block, "toBlock": "latest"})


def test_trail_members_and_reports_work_on_a_range_limited_node(limited, client, a_long_history):
    on_limited = limited_client(limited, client, max_logs_range=NODE_LIMIT)

    assert audit.trail(on_limited, a_long_history.rx_id) == audit.trail(client, a_long_history.rx_id)
    assert on_limited.members() == client.members()
    assert audit.member_report(on_limited) == audit.member_report(client)
    assert limited.refused == 0 and limited.log_queries
    assert all(end - start <= NODE_LIMIT for start, end in limited.log_queries)


def test_a_client_that_asks_more_than_the_node_allows_splits_the_refused_windows(limited, client, a_long_history):
    on_limited = limited_client(limited, client, max_logs_range=1_000)

    steps = audit.trail(on_limited, a_long_history.rx_id)

    assert [s.step for s in steps] == ["issued", "redeemed"]
    assert limited.refused >= 1  # the first window was refused, then halved until answered
    covered = sorted(limited.log_queries)
    assert covered[0][0] == client.deploy_block and covered[-1][1] >= a_long_history.tx.block_number
    assert all(b[0] == a[1] + 1 for a, b in zip(covered, covered[1:], strict=False))  # no block skipped


def test_a_batched_prescription_is_found_and_redeemed_through_a_range_limited_node(limited, client, ids):
    """The pharmacy's first redemption of a batched prescription rebuilds its proof from the batch's
    events (core.batch.find_batch_proof), searched from the deploy block to the head."""
    now = client.latest_block_time()
    batch = issue_batch(client, ids["hospital"], [demo_document(ids["doctor"].address, now) for _ in range(3)])
    for _ in range(4 * NODE_LIMIT):
        client.w3.provider.make_request("evm_mine", [])
    item = batch.prescriptions[1]
    on_limited = limited_client(limited, client, max_logs_range=NODE_LIMIT)

    assert find_batch_proof(on_limited, item.rx_id, ids["doctor"].address) == find_batch_proof(client, item.rx_id, ids["doctor"].address)
    redeem_payload(on_limited, ids["pharmacy"], item.payload_text)

    assert client.prescription(item.rx_id).status is Status.DISPENSED
    assert limited.refused == 0 and all(end - start <= NODE_LIMIT for start, end in limited.log_queries)


def test_the_index_is_built_and_verified_in_full_through_a_range_limited_node(limited, client, a_long_history, tmp_path):
    """rx index run and rx index verify --everything: both read the registry's logs in windows the
    limited node answers (verify's full re-read splits what the node refuses)."""
    from rxchain.indexer import index, verify

    db_url = str(tmp_path / "index.sqlite")
    index(limited.url, client.address, client.deploy_block, db_url, max_range=NODE_LIMIT)

    assert verify(db_url, limited.url, sample=None) == []
    assert limited.refused >= 1  # verify's first window spanned the whole history and was refused, then split
    assert all(end - start <= NODE_LIMIT for start, end in limited.log_queries)
