"""Strict JSON for what the project reads from outside: a prescription document, a QR payload.

:func:`loads_strict` refuses what ``json.loads`` quietly accepts and what would make content
ambiguous or a parser fragile: duplicate keys (which of the two did the signer mean?), NaN and
Infinity (not JSON, and not canonicalisable by RFC 8785), invalid UTF-8, and nesting deeper than
:data:`MAX_JSON_DEPTH`. The standard library's parser does the parsing; this module adds the checks
through its hooks (no third-party parser offers all of them).
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_JSON_DEPTH", "loads_strict"]

MAX_JSON_DEPTH = 64
"""Deepest JSON nesting accepted when parsing a document or payload (a prescription needs about 10)."""

_JSON_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET_RE = re.compile(r"[^\[\]{}]+")


def loads_strict(data: bytes) -> Any:
    """Parse UTF-8 JSON strictly: no duplicate keys, no NaN/Infinity, bounded nesting.

    Every failure is a ``ValueError``. The nesting is measured before parsing
    because the C JSON parser recurses on the C stack: in a process that has
    raised the recursion limit, a deeply nested input could crash it outright
    instead of raising RecursionError.
    """
    text = data.decode("utf-8")
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nested {depth} levels deep, the maximum is {MAX_JSON_DEPTH}")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc


def _json_depth(text: str) -> int:
    """Return the deepest bracket nesting of JSON text, ignoring brackets inside strings.

    An unterminated string is not removed, so malformed text can only be over-estimated.
    """
    brackets = _NOT_BRACKET_RE.sub("", _JSON_STRING_RE.sub("", text))
    depth = deepest = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object hook refusing duplicate keys, which would make the content ambiguous."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    """json constant hook refusing NaN and Infinity."""
    raise ValueError(f"{name} is not allowed")
