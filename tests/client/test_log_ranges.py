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
    return RegistryClient(
        Web3(Web3.HTTPProvider(limited.url)),
        client.address,
        deploy_block=client.deploy_block,
        max_logs_range=max_logs_range,
    )


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

    assert find_batch_proof(on_limited, item.rx_id, ids["doctor"].address) == find_batch_proof(
        client, item.rx_id, ids["doctor"].address
    )
    redeem_payload(on_limited, ids["pharmacy"], item.payload_text)

    assert client.prescription(item.rx_id).status is Status.DISPENSED
    assert limited.refused == 0 and all(end - start <= NODE_LIMIT for start, end in limited.log_queries)


def test_the_index_is_built_and_verified_in_full_through_a_range_limited_node(
    limited, client, a_long_history, tmp_path
):
    """rx index run and rx index verify --everything: both read the registry's logs in windows the
    limited node answers (verify's full re-read splits what the node refuses)."""
    from rxchain.indexer import index, verify

    db_url = str(tmp_path / "index.sqlite")
    index(limited.url, client.address, client.deploy_block, db_url, max_range=NODE_LIMIT)

    assert verify(db_url, limited.url, sample=None) == []
    assert limited.refused >= 1  # verify's first window spanned the whole history and was refused, then split
    assert all(end - start <= NODE_LIMIT for start, end in limited.log_queries)


def test_a_trail_is_read_from_the_index_and_only_the_newer_blocks_from_the_node(
    limited, client, ids, a_long_history, tmp_path, rx
):
    """Where an index exists, the trail up to its last block comes from it and only the blocks after
    it from the node: on a long chain a few windows, not the whole history. Steps after the index
    (a dispatch) are still there, and the result is the chain's trail."""
    from rxchain.indexer import index

    db_url = str(tmp_path / "index.sqlite")
    index(limited.url, client.address, client.deploy_block, db_url, max_range=NODE_LIMIT)
    indexed_to = client.head()
    client.dispatch(ids["pharmacy"], a_long_history.rx_id, ids["courier"].address)
    on_limited = limited_client(limited, client, max_logs_range=NODE_LIMIT)
    limited.log_queries.clear()

    steps = audit.trail_from_index(on_limited, a_long_history.rx_id, db_url)

    assert steps == audit.trail(client, a_long_history.rx_id)
    assert [s.step for s in steps] == ["issued", "redeemed", "dispatched"]
    assert limited.log_queries and all(start > indexed_to for start, _ in limited.log_queries)
    code, cli_steps, _ = rx("trail", "0x" + a_long_history.rx_id.hex(), "--index", db_url, json_out=True)
    assert code == 0 and cli_steps == [s.as_json() for s in steps]


def test_an_index_of_another_registry_is_not_used_for_a_trail(client, ids, a_long_history, tmp_path):
    from rxchain.chain.deploy import deploy_registry
    from rxchain.indexer import index

    other = deploy_registry(client.w3, ids["regulator"], network="local", record=False)
    db_url = str(tmp_path / "other.sqlite")
    index(client.w3.provider.endpoint_uri, other.registry, other.deploy_block, db_url)

    assert audit.trail_from_index(client, a_long_history.rx_id, db_url) is None
