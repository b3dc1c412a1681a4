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


# What a prompts or resources listing holds: method -> (list field, the key a hide entry matches, kind).
LISTED: dict[str, tuple[str, str, str]] = {
    "prompts/list": ("prompts", "name", "prompt"),
    "resources/list": ("resources", "uri", "resource"),
    "resources/templates/list": ("resourceTemplates", "uriTemplate", "resource"),
}


def filter_entries(message: JSON, field: str, key: str, hidden: Callable[[str], bool]) -> bytes | None:
    """The answer ``message`` with the entries of ``result[field]`` whose ``key`` is ``hidden`` removed, or
    None if nothing had to change. As for tools: every other field (``nextCursor``, ``_meta``,
    ``resultType``) and the order of what is left are kept, so each page of a paginated listing is
    filtered on its own."""
    result = message.get("result") if isinstance(message, dict) else None
    entries = result.get(field) if isinstance(result, dict) else None
    if not isinstance(result, dict) or not isinstance(entries, list):
        return None
    kept: list[JSON] = [e for e in entries if not (isinstance(e, dict) and hidden(str(e.get(key, ""))))]
    if len(kept) == len(entries):
        return None
    result[field] = kept
    return encode(message)
