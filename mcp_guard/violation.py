"""The answers the guard gives in place of the upstream when the policy speaks."""

from __future__ import annotations

from mcp_guard.policy.decision import Deny
from mcp_guard.wire.json_types import JSON, JSONObject
from mcp_guard.wire.jsonrpc import SERVER_ERROR

VIOLATION_META_KEY = "mcp-guard/violation"


def _result(ident: JSON, result: JSONObject, server_meta: JSONObject | None) -> JSONObject:
    """``server_meta`` is None for a handshake-era request; for a 2026-07-28 one, the ``_meta`` the server adds."""
    if server_meta is not None:
        # 2026-07-28 clients reject results without resultType; servers also identify themselves in _meta.
        result["resultType"] = "complete"
        if server_meta:
            own = result.get("_meta")
            result["_meta"] = {**(own if isinstance(own, dict) else {}), **server_meta}
    return {"jsonrpc": "2.0", "id": ident, "result": result}


def _refusal_text(tool: str, deny: Deny) -> str:
    return (
        f"mcp-guard refused this call to {tool!r} (policy rule {deny.rule}): {deny.reason} "
        "The call was not sent to the server."
    )


def _violation_meta(tool: str, deny: Deny) -> JSONObject:
    meta: JSONObject = {"tool": tool, "rule": deny.rule, "kind": deny.kind, "reason": deny.reason}
    meta.update(deny.details)
    return meta


def violation_answer(ident: JSON, tool: str, deny: Deny, server_meta: JSONObject | None) -> JSONObject:
    """A ``CallToolResult`` with ``isError: true`` that a model can read and act on."""
    result: JSONObject = {
        "content": [{"type": "text", "text": _refusal_text(tool, deny)}],
        "isError": True,
        "_meta": {VIOLATION_META_KEY: _violation_meta(tool, deny)},
    }
    return _result(ident, result, server_meta)


def violation_error(ident: JSON, tool: str, deny: Deny) -> JSONObject:
    """The refusal of a task-augmented call (``params.task``): a JSON-RPC error with the same text and facts.

    Its client expects a ``CreateTaskResult`` and rejects a ``CallToolResult`` in its place (the
    TypeScript SDK reports a schema error, not the reason); an error is an answer every client takes
    for any request, and a task that never started has nothing to poll.
    """
    error: JSONObject = {
        "code": SERVER_ERROR,
        "message": _refusal_text(tool, deny),
        "data": {VIOLATION_META_KEY: _violation_meta(tool, deny)},
    }
    return {"jsonrpc": "2.0", "id": ident, "error": error}


def unknown_tool_answer(ident: JSON, tool: str, server_meta: JSONObject | None) -> JSONObject:
    """What an MCP SDK server answers for a tool it does not have, so a hidden tool looks absent."""
    result: JSONObject = {"content": [{"type": "text", "text": f"Unknown tool: {tool}"}], "isError": True}
    return _result(ident, result, server_meta)


POLICY_REFUSED = -32003
"""The JSON-RPC error code of a prompt or resource request the policy refused (a server-defined code:
-32000/-32001 are taken by the SDKs for a closed connection and a timeout, -32002 means "resource not found")."""

_WHAT = {"prompt": ("prompts/get", "the prompt"), "resource": ("resources/read", "the resource")}


def request_refusal(ident: JSON, kind: str, name: str, deny: Deny, method: str | None = None) -> JSONObject:
    """A JSON-RPC error for a refused ``prompts/get`` or ``resources/read``: their results have no ``isError``,
    and every SDK client hands an error's message to its caller (valid in both eras, no ``resultType``)."""
    verb, what = _WHAT.get(kind, (kind, kind))
    text = (
        f"mcp-guard refused this {method or verb} of {what} {name!r} (policy rule {deny.rule}): {deny.reason} "
        "The request was not sent to the server."
    )
    meta: JSONObject = {kind: name, "rule": deny.rule, "kind": deny.kind, "reason": deny.reason}
    meta.update(deny.details)
    return {
        "jsonrpc": "2.0",
        "id": ident,
        "error": {"code": POLICY_REFUSED, "message": text, "data": {VIOLATION_META_KEY: meta}},
    }


def unknown_request_answer(ident: JSON, kind: str, name: str) -> JSONObject:
    """What an MCP SDK server answers for a prompt or resource it does not have, so a hidden one looks absent."""
    # As the Python SDK's MCPServer words them (its prompt error carries code 0).
    if kind == "prompt":
        error: JSONObject = {"code": 0, "message": f"Unknown prompt: {name}"}
    else:
        error = {"code": -32602, "message": f"Unknown resource: {name}", "data": {"uri": name}}
    return {"jsonrpc": "2.0", "id": ident, "error": error}
