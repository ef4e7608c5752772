"""One way to talk JSON-RPC to a node without web3.py: batched calls in one HTTP POST.

web3.py is the client's way (typed contracts, middleware); the bulk paths (the pipeline, the
indexer, the bench, the devnet's health check) need many calls per round trip and raw answers, which
:class:`RpcSession` gives: a list of ``(method, params)`` in, the replies (``result`` or ``error``)
out in the same order, one POST. A node that does not answer is :class:`~rxchain.errors.NodeUnavailable`.
"""

from __future__ import annotations

import itertools

import requests

try:  # pinned in requirements.lock (ape's); parses the node's large eth_getLogs answers several times faster
    from msgspec.json import decode as _loads
except ImportError:  # pragma: no cover
    from json import loads as _loads

from rxchain.errors import NodeUnavailable

__all__ = ["RpcSession"]


class RpcSession:
    """JSON-RPC over HTTP with batches (one POST for many calls) to the node at ``url``."""

    def __init__(self, url: str, *, timeout: float = 60.0, unavailable_hint: str = ""):
        self.url = url
        self.timeout = timeout
        self.unavailable_hint = unavailable_hint
        self._session = requests.Session()
        self._ids = itertools.count(1)
        #: How many calls this session has sent (the indexer reports it).
        self.calls = 0

    def batch_raw(self, calls: list[tuple[str, list]]) -> list[dict]:
        """The replies of ``calls`` in order, each ``{"result": …}`` or ``{"error": …}``; a call the
        node left unanswered gets ``{"error": {"message": "no reply"}}``."""
        if not calls:
            return []
        payload = [{"jsonrpc": "2.0", "id": next(self._ids), "method": m, "params": p} for m, p in calls]
        self.calls += len(calls)
        try:
            response = self._session.post(self.url, json=payload if len(payload) > 1 else payload[0], timeout=self.timeout)
            replies = _loads(response.content)
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            hint = f"; {self.unavailable_hint}" if self.unavailable_hint else ": is the node running?"
            raise NodeUnavailable(f"no answer from {self.url} ({exc.__class__.__name__}){hint}") from None
        except (ValueError, TypeError):
            raise NodeUnavailable(f"{self.url} did not answer JSON-RPC (HTTP {response.status_code})") from None
        if isinstance(replies, dict):
            if len(payload) > 1 and "error" in replies:  # a node that refuses batches answers with one error
                return [replies] * len(payload)
            replies = [replies]
        by_id = {reply.get("id"): reply for reply in replies}
        return [by_id.get(item["id"], {"error": {"message": "no reply"}}) for item in payload]

    def call_raw(self, method: str, params: list | None = None) -> dict:
        """The reply of one call (``result`` or ``error``)."""
        return self.batch_raw([(method, params or [])])[0]
