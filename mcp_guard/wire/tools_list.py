"""Filtering ``tools/list`` results without disturbing anything else in them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mcp_guard.wire.jsonrpc import encode


def filter_tools_result(line: bytes, keep: Callable[[str], bool]) -> bytes | None:
    """The frame with tools that ``keep`` rejects removed, or None if nothing had to change.

    Every other field (``nextCursor``, ``_meta``, ``resultType``, cache hints, unknown
    future fields) and the order of the remaining tools are kept.
    """
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return None
    result = message.get("result") if isinstance(message, dict) else None
    if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
        return None
    tools: list[Any] = result["tools"]
    kept: list[Any] = [t for t in tools if not (isinstance(t, dict) and not keep(str(t.get("name", ""))))]
    if len(kept) == len(tools):
        return None
    result["tools"] = kept
    return encode(message)
