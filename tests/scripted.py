"""A scripted MCP client on the raw wire, for transcript tests: it answers the server's own requests.

``converse`` in conftest sends a fixed list of frames; a real client also answers what the
server asks it (sampling, elicitation, roots), decides what to send next from what it got
(the next page of a list, the retry of an ``input_required`` call) and waits for the
notifications it expects before moving on. :class:`ScriptedClient` does that, and
deterministically: it only sends its next frame once everything the previous one caused
has arrived, so the bytes a server writes come in one order whatever the timing.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conftest import READ_TIMEOUT_S, RawSession

Message = dict[str, Any]
Responder = Callable[[Message], Message]
Until = Callable[[Sequence[Any]], bool]


def is_response(message: Any, ident: Any) -> bool:
    return (
        isinstance(message, dict)
        and "method" not in message
        and ("result" in message or "error" in message)
        and message.get("id") == ident
        and type(message.get("id")) is type(ident)
    )


def notified(method: str, count: int = 1, where: Callable[[Message], bool] | None = None) -> Until:
    """An ``until`` condition: ``count`` notifications ``method`` (matching ``where``) have arrived."""

    def until(messages: Sequence[Any]) -> bool:
        hits = [
            m
            for m in messages
            if isinstance(m, dict) and m.get("method") == method and "id" not in m and (where is None or where(m))
        ]
        return len(hits) >= count

    return until


def asked(method: str) -> Until:
    """An ``until`` condition: the server sent a request ``method`` (which the client answered)."""
    return lambda messages: any(isinstance(m, dict) and m.get("method") == method and "id" in m for m in messages)


def all_of(*conditions: Until) -> Until:
    return lambda messages: all(condition(messages) for condition in conditions)


class ScriptedClient:
    """Sends requests one at a time over a :class:`RawSession` and answers the server's requests."""

    def __init__(self, session: RawSession, responder: Responder, meta: Mapping[str, Any] | None = None) -> None:
        self.session = session
        self.responder = responder
        self.meta = dict(meta) if meta is not None else None  # the 2026-07-28 per-request _meta
        self.messages: list[Any] = []
        self.sent: list[Any] = []
        self._ids = itertools.count(1)

    # sending -------------------------------------------------------------------------

    def _params(self, params: Mapping[str, Any] | None, extra_meta: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if params is None and self.meta is None and extra_meta is None:
            return None
        out = dict(params or {})
        meta = {**(self.meta or {}), **dict(out.get("_meta") or {}), **dict(extra_meta or {})}
        if meta:
            out["_meta"] = meta
        return out

    def send(self, frame: Mapping[str, Any]) -> None:
        self.sent.append(frame)
        self.session.send(frame)

    def request(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        meta: Mapping[str, Any] | None = None,
        until: Until | None = None,
        timeout: float = READ_TIMEOUT_S,
    ) -> Message:
        """Send a request; return its answer once it, and whatever ``until`` waits for, has arrived."""
        ident = next(self._ids)
        frame: Message = {"jsonrpc": "2.0", "id": ident, "method": method}
        full = self._params(params, meta)
        if full is not None:
            frame["params"] = full
        since = len(self.messages)
        self.send(frame)

        def done(new: Sequence[Any]) -> bool:
            return any(is_response(m, ident) for m in new) and (until is None or until(new))

        self.pump(done, since, timeout)
        return next(m for m in self.messages[since:] if is_response(m, ident))

    def notify(self, method: str, params: Mapping[str, Any] | None = None, *, until: Until | None = None) -> None:
        frame: Message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            frame["params"] = dict(params)
        since = len(self.messages)
        self.send(frame)
        if until is not None:
            self.pump(until, since, READ_TIMEOUT_S)

    # reading ---------------------------------------------------------------------------

    def pump(self, done: Until, since: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done(self.messages[since:]):
            line = self.session.read_line(max(0.0, deadline - time.monotonic()))
            message = json.loads(line)
            self.messages.append(message)
            if isinstance(message, dict) and "method" in message and "id" in message:
                self.send(self.responder(message))

    # compound steps ------------------------------------------------------------------------

    def list_all(self, method: str, key: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Every page of a list method, following ``nextCursor``."""
        items: list[Any] = []
        cursor: str | None = None
        for _ in range(100):
            page_params = dict(params or {})
            if cursor is not None:
                page_params["cursor"] = cursor
            answer = self.request(method, page_params or None)
            result = answer["result"]
            items.extend(result[key])
            cursor = result.get("nextCursor")
            if cursor is None:
                return items
        raise AssertionError(f"{method} did not stop paging")

    def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        meta: Mapping[str, Any] | None = None,
        until: Until | None = None,
        timeout: float = READ_TIMEOUT_S,
    ) -> Message:
        """``tools/call``; a 2026-07-28 ``input_required`` result is answered and the call retried."""
        params: dict[str, Any] = {"name": name, "arguments": dict(arguments or {})}
        answer = self.request("tools/call", params, meta=meta, until=until, timeout=timeout)
        for _ in range(5):
            result = answer.get("result")
            if not (isinstance(result, dict) and result.get("resultType") == "input_required"):
                return answer
            responses = {
                key: self.responder({"jsonrpc": "2.0", "id": None, **request})["result"]
                for key, request in result.get("inputRequests", {}).items()
            }
            retry = {**params, "inputResponses": responses}
            if "requestState" in result:
                retry["requestState"] = result["requestState"]
            answer = self.request("tools/call", retry, meta=meta, until=until, timeout=timeout)
        raise AssertionError(f"{name} kept asking for input")


# --- a client's answers to what servers ask ------------------------------------------------------------

SAMPLING_RESULT: Message = {
    "role": "assistant",
    "content": {"type": "text", "text": "Scripted answer: 42."},
    "model": "scripted-model-1",
    "stopReason": "endTurn",
}
ROOTS_RESULT: Message = {"roots": [{"uri": "file:///tmp/mcp-guard-transcripts", "name": "transcripts"}]}


def elicitation_result(params: Mapping[str, Any]) -> Message:
    """Accept a form, filling each field of the requested schema with a fixed value of its type."""
    schema = params.get("requestedSchema") or {}
    content: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type")
        if "default" in prop:
            content[name] = prop["default"]
        elif kind == "boolean":
            content[name] = True
        elif kind in ("integer", "number"):
            content[name] = 7
        elif kind == "string":
            fmt = prop.get("format")
            content[name] = {"email": "ada@example.com", "uri": "https://example.com", "date": "1815-12-10"}.get(
                fmt, "Ada"
            )
        elif kind == "array":
            content[name] = []
    return {"action": "accept", "content": content}


def scripted_responder(message: Message) -> Message:
    method, params, ident = message.get("method"), message.get("params") or {}, message.get("id")
    if method == "sampling/createMessage":
        result: Message = SAMPLING_RESULT
    elif method == "elicitation/create":
        result = elicitation_result(params)
    elif method == "roots/list":
        result = ROOTS_RESULT
    elif method == "ping":
        result = {}
    else:
        return {"jsonrpc": "2.0", "id": ident, "error": {"code": -32601, "message": f"Method not found: {method}"}}
    return {"jsonrpc": "2.0", "id": ident, "result": result}


@dataclass(frozen=True)
class Run:
    """What a client saw in one session: every line it read, in order, and how the process ended."""

    lines: list[bytes]
    returncode: int
    stderr: str

    @property
    def received(self) -> bytes:
        return b"".join(self.lines)
