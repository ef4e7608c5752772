"""Log queries on a node that limits eth_getLogs to a block range, as Besu does (--rpc-max-logs-range,
5,000 blocks by default, error -32005 beyond it).

Besu cannot run here: the node is the suite's anvil behind a small JSON-RPC front that refuses, with
Besu's error, any eth_getLogs spanning more blocks than its limit and passes everything else through.
The control test shows the front refuses what the old single-query code asked.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from web3 import Web3

from rxchain import audit
from rxchain.chain.client import RegistryClient
from rxchain.workflow import issue_prescription, redeem_payload

NODE_LIMIT = 6  # the limited node's --rpc-max-logs-range


class RangeLimitedNode:
    """A JSON-RPC front on 127.0.0.1 that enforces a log range limit in front of a real node."""

    def __init__(self, upstream: str, limit: int):
        self.upstream = upstream
        self.limit = limit
        self.log_queries: list[tuple[int, int]] = []
        self.refused = 0
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                calls = body if isinstance(body, list) else [body]
                answers = [front.answer(call) for call in calls]
                data = json.dumps(answers if isinstance(body, list) else answers[0]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, call: dict) -> dict:
        if call.get("method") == "eth_getLogs":
            params = call["params"][0]
            start, end = self._block(params.get("fromBlock", "latest")), self._block(params.get("toBlock", "latest"))
            # Besu's eth_getLogs refuses when (toBlock - fromBlock) > --rpc-max-logs-range, with
            # RpcErrorType.EXCEEDS_RPC_MAX_BLOCK_RANGE(-32005, "Requested range exceeds maximum RPC range
            # limit") (besu: ethereum/api/jsonrpc/internal/methods/EthGetLogs and RpcErrorType.java)
            if end - start > self.limit:
                self.refused += 1
                return {"jsonrpc": "2.0", "id": call.get("id"),
                        "error": {"code": -32005, "message": "Requested range exceeds maximum RPC range limit"}}  # fmt: skip
            self.log_queries.append((start, end))
        return requests.post(self.upstream, json=call, timeout=60).json()

    def _block(self, tag) -> int:
        if isinstance(tag, int):
            return tag
        if tag in ("latest", "pending", "safe", "finalized"):
            return int(requests.post(self.upstream, json={"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []},
                                     timeout=60).json()["result"], 16)  # fmt: skip
        return 0 if tag == "earliest" else int(tag, 16)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def limited(rpc_url):
    node = RangeLimitedNode(rpc_url, NODE_LIMIT)
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


def limited_client(limited: RangeLimitedNode, client: RegistryClient, max_logs_range: int) -> RegistryClient:
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
