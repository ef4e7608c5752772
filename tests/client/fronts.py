"""JSON-RPC fronts for the client tests: the suite's real anvil behind a small server of ours that
enforces what a Besu node enforces and anvil does not (each rule cited to Besu's source)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
import rlp
from eth_account import Account


class NodeFront:
    """A JSON-RPC front on 127.0.0.1 before a real node that enforces what Besu enforces and anvil
    does not: a log range limit (``max_logs_range``), a per-sender pool limit (``max_future_nonces``),
    or a method the node lacks (``without``)."""

    def __init__(
        self,
        upstream: str,
        *,
        max_logs_range: int | None = None,
        max_future_nonces: int | None = None,
        without: tuple[str, ...] = (),
    ):
        self.upstream = upstream
        self.limit = max_logs_range
        self.max_future_nonces = max_future_nonces
        self.without = without
        self.methods: list[str] = []
        self.log_queries: list[tuple[int, int]] = []
        self.refused = 0
        #: Sends refused for a nonce too far ahead of the sender's, and the furthest one admitted.
        self.refused_sends = 0
        self.furthest_admitted = 0
        self._pool_lock = threading.Lock()
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # http.server's method name
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
        self.methods.append(call.get("method"))
        if call.get("method") in self.without:
            return {"jsonrpc": "2.0", "id": call.get("id"), "error": {"code": -32601, "message": "Method not found"}}
        if call.get("method") == "eth_getLogs" and self.limit is not None:
            params = call["params"][0]
            start, end = self._block(params.get("fromBlock", "latest")), self._block(params.get("toBlock", "latest"))
            # Besu's eth_getLogs refuses when (toBlock - fromBlock) > --rpc-max-logs-range, with
            # RpcErrorType.EXCEEDS_RPC_MAX_BLOCK_RANGE(-32005, "Requested range exceeds maximum RPC range
            # limit") (besu: ethereum/api/jsonrpc/internal/methods/EthGetLogs and RpcErrorType.java)
            if end - start > self.limit:
                self.refused += 1
                return {
                    "jsonrpc": "2.0",
                    "id": call.get("id"),
                    "error": {"code": -32005, "message": "Requested range exceeds maximum RPC range limit"},
                }
            self.log_queries.append((start, end))
        if call.get("method") == "eth_sendRawTransaction" and self.max_future_nonces is not None:
            with self._pool_lock:  # one send at a time, so the distance checked is the one the node sees
                return self._pooled(call)
        return requests.post(self.upstream, json=call, timeout=60).json()

    def _pooled(self, call: dict) -> dict:
        # Besu's transaction pool refuses a transaction whose nonce is max-future-by-sender or more
        # ahead of its sender's confirmed nonce: AbstractPendingTransactionsSorter.addTransaction
        # (the SEQUENCED pool): `transaction.getNonce() - senderAccount.getNonce() >=
        # poolConfig.getTxPoolMaxFutureTransactionByAccount()` -> NONCE_TOO_FAR_IN_FUTURE_FOR_SENDER,
        # answered as RpcErrorType.NONCE_TOO_FAR_IN_FUTURE_FOR_SENDER(-32000, "Transaction nonce is too
        # distant from current sender nonce"); the limit is TransactionPoolConfiguration's
        # ceil(tx-pool-limit-by-account-percentage x tx-pool-max-size), 615 at the kit's 0.15 x 4,096.
        raw = bytes.fromhex(call["params"][0].removeprefix("0x"))
        fields = rlp.decode(raw) if raw[0] >= 0xC0 else rlp.decode(raw[1:])  # legacy, or typed (nonce after chain id)
        nonce = int.from_bytes(fields[0] if raw[0] >= 0xC0 else fields[1], "big")
        sender = Account.recover_transaction(raw)
        confirmed = int(
            requests.post(
                self.upstream,
                json={"jsonrpc": "2.0", "id": 0, "method": "eth_getTransactionCount", "params": [sender, "latest"]},
                timeout=60,
            ).json()["result"],
            16,
        )
        if nonce - confirmed >= self.max_future_nonces:
            self.refused_sends += 1
            return {
                "jsonrpc": "2.0",
                "id": call.get("id"),
                "error": {"code": -32000, "message": "Transaction nonce is too distant from current sender nonce"},
            }
        self.furthest_admitted = max(self.furthest_admitted, nonce - confirmed)
        return requests.post(self.upstream, json=call, timeout=60).json()

    def _block(self, tag) -> int:
        if isinstance(tag, int):
            return tag
        if tag in ("latest", "pending", "safe", "finalized"):
            return int(
                requests.post(
                    self.upstream,
                    json={"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []},
                    timeout=60,
                ).json()["result"],
                16,
            )
        return 0 if tag == "earliest" else int(tag, 16)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
