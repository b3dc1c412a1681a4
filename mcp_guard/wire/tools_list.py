"""Filtering ``tools/list`` results without disturbing anything else in them."""

from __future__ import annotations

import json
from collections.abc import Callable

from mcp_guard.wire.json_types import JSON
from mcp_guard.wire.jsonrpc import encode


def filter_tools_result(line: bytes, keep: Callable[[str], bool]) -> bytes | None:
    """The frame with tools that ``keep`` rejects removed, or None if nothing had to change.

    Every other field (``nextCursor``, ``_meta``, ``resultType``, cache hints, unknown
    future fields) and the order of the remaining tools are kept.
    """
    try:
        message: JSON = json.loads(line)
    except (ValueError, RecursionError):
        return None
    result = message.get("result") if isinstance(message, dict) else None
    tools = result.get("tools") if isinstance(result, dict) else None
    if not isinstance(result, dict) or not isinstance(tools, list):
        return None
    kept: list[JSON] = [t for t in tools if not (isinstance(t, dict) and not keep(str(t.get("name", ""))))]
    if len(kept) == len(tools):
        return None
    result["tools"] = kept
    return encode(message)
