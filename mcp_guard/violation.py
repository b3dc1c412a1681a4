"""The answers the guard gives in place of the upstream when the policy speaks."""

from __future__ import annotations

from typing import Any

from mcp_guard.policy.decision import Deny

VIOLATION_META_KEY = "mcp-guard/violation"


def _result(ident: Any, result: dict[str, Any], server_meta: dict[str, Any] | None) -> dict[str, Any]:
    """``server_meta`` is None for a handshake-era request; for a 2026-07-28 one, the ``_meta`` the server adds."""
    if server_meta is not None:
        # 2026-07-28 clients reject results without resultType; servers also identify themselves in _meta.
        result["resultType"] = "complete"
        if server_meta:
            result["_meta"] = {**result.get("_meta", {}), **server_meta}
    return {"jsonrpc": "2.0", "id": ident, "result": result}


def violation_answer(ident: Any, tool: str, deny: Deny, server_meta: dict[str, Any] | None) -> dict[str, Any]:
    """A ``CallToolResult`` with ``isError: true`` that a model can read and act on."""
    text = (
        f"mcp-guard refused this call to {tool!r} (policy rule {deny.rule}): {deny.reason} "
        "The call was not sent to the server."
    )
    meta: dict[str, Any] = {"tool": tool, "rule": deny.rule, "kind": deny.kind, "reason": deny.reason}
    meta.update(deny.details)
    result: dict[str, Any] = {
        "content": [{"type": "text", "text": text}],
        "isError": True,
        "_meta": {VIOLATION_META_KEY: meta},
    }
    return _result(ident, result, server_meta)


def unknown_tool_answer(ident: Any, tool: str, server_meta: dict[str, Any] | None) -> dict[str, Any]:
    """What an MCP SDK server answers for a tool it does not have, so a hidden tool looks absent."""
    result: dict[str, Any] = {"content": [{"type": "text", "text": f"Unknown tool: {tool}"}], "isError": True}
    return _result(ident, result, server_meta)
