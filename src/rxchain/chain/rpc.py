"""One way to talk JSON-RPC to a node without web3.py: batched calls in one HTTP POST.

web3.py is the client's way (typed contracts, middleware); the bulk paths (the pipeline, the
indexer, the bench, the devnet's health check) need many calls per round trip and raw answers, which
:class:`RpcSession` gives: a list of ``(method, params)`` in, the replies (``result`` or ``error``)
out in the same order, one POST. A node that does not answer is :class:`~rxchain.errors.NodeUnavailable`.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, Generic, TypeVar

import msgspec
import requests
from msgspec.json import decode as _loads  # parses the node's large eth_getLogs answers several times faster than json

from rxchain.errors import NodeUnavailable

__all__ = ["Receipt", "RpcSession"]

T = TypeVar("T")


class Receipt(msgspec.Struct):
    """What the bulk paths read of a transaction receipt. Decoding into it skips the rest of the
    receipt (its logs: a batch of 256 prescriptions logs 512 events) without building Python objects
    for them: a block of hundreds of batches answers tens of megabytes."""

    transactionHash: str  # camelCase: the node's JSON keys
    status: str
    blockNumber: str
    gasUsed: str


class _Reply(msgspec.Struct, Generic[T]):
    id: Any = None
    result: T | None = None
    error: dict | None = None


@functools.cache
def _decoder(result_type) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(list[_Reply[result_type]] | _Reply[result_type])


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

    def batch_raw(self, calls: list[tuple[str, list]], *, result_type=None) -> list[dict]:
        """The replies of ``calls`` in order, each ``{"result": …}`` or ``{"error": …}``; a call the
        node left unanswered gets ``{"error": {"message": "no reply"}}``. With ``result_type`` (a
        msgspec type such as ``list[Receipt]``) each result is decoded into it, keeping only its fields."""
        if not calls:
            return []
        payload = [{"jsonrpc": "2.0", "id": next(self._ids), "method": m, "params": p} for m, p in calls]
        self.calls += len(calls)
        try:
            response = self._session.post(
                self.url, json=payload if len(payload) > 1 else payload[0], timeout=self.timeout
            )
            replies = (
                _loads(response.content)
                if result_type is None
                else _typed(_decoder(result_type).decode(response.content))
            )
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            hint = f"; {self.unavailable_hint}" if self.unavailable_hint else ": is the node running?"
            raise NodeUnavailable(f"no answer from {self.url} ({exc.__class__.__name__}){hint}") from None
        except (ValueError, TypeError, msgspec.ValidationError):
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


def _typed(replies) -> list[dict] | dict:
    """Typed replies in the untyped replies' shape (``result`` or ``error`` keys, never both)."""

    def one(reply: _Reply) -> dict:
        out = {"id": reply.id}
        if reply.error is not None:
            out["error"] = reply.error
        else:
            out["result"] = reply.result
        return out

    return [one(r) for r in replies] if isinstance(replies, list) else one(replies)
