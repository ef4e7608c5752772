"""Log queries that a node with a range limit answers: windows of at most ``max_range`` blocks.

Besu refuses an ``eth_getLogs`` whose ``toBlock - fromBlock`` exceeds ``--rpc-max-logs-range`` (5,000
by default) with error -32005 "Requested range exceeds maximum RPC range limit", so a query from the
registry's deploy block to the head fails once the chain is ~5,000 blocks past the deployment (under 1.5
hours at QBFT's 1 s blocks). Every log query of the Python side goes through :func:`logs_in_windows`:
the range is split into windows of ``max_range`` blocks, and a window the node still refuses as too
large is halved until it is answered. A node without a limit answers each window; the cost is one
request per ``max_range`` blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from rxchain.errors import InvalidValue

#: Besu's default ``--rpc-max-logs-range`` (the network kit writes the same value into node configs).
DEFAULT_MAX_LOGS_RANGE = 5_000

#: Words with which nodes refuse a log query that spans too much (Besu: "Requested range exceeds
#: maximum range limit", -32005; others: "limit exceeded", "query returned more than 10000 results").
_TOO_MUCH = ("range", "limit", "too many", "exceed", "more than", "too large")


def logs_in_windows(
    fetch: Callable[[int, int], list[Any]],
    from_block: int,
    to_block: int,
    *,
    max_range: int = DEFAULT_MAX_LOGS_RANGE,
) -> list[Any]:
    """Every log ``fetch(start, end)`` returns over ``[from_block, to_block]``, asked in windows of at
    most ``max_range`` blocks, oldest first; a window refused as too large is split in halves."""
    return [log for window in iter_windows(fetch, from_block, to_block, max_range=max_range) for log in window]


def iter_windows(
    fetch: Callable[[int, int], list[Any]], from_block: int, to_block: int, *, max_range: int = DEFAULT_MAX_LOGS_RANGE
) -> Iterator[list[Any]]:
    """The logs of each window, in block order (for callers that stop early)."""
    if max_range < 1:
        raise InvalidValue(f"max_range must be at least 1 block (got {max_range})")
    start = from_block
    while start <= to_block:
        end = min(start + max_range - 1, to_block)
        yield from _answered(fetch, start, end)
        start = end + 1


def refused_as_too_large(exc: BaseException) -> bool:
    """True when a node's error says the log query spans too many blocks or results."""
    text = str(exc).lower()
    return "-32005" in text or any(word in text for word in _TOO_MUCH)


def _answered(fetch: Callable[[int, int], list[Any]], start: int, end: int) -> Iterator[list[Any]]:
    try:
        yield fetch(start, end)
    except Exception as exc:  # web3 and requests raise several types for a refusal
        if end <= start or not refused_as_too_large(exc):
            raise
        middle = (start + end) // 2
        yield from _answered(fetch, start, middle)
        yield from _answered(fetch, middle + 1, end)
