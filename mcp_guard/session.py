"""One client <-> upstream session: where the policy's decisions meet the wire.

The two pumps call :meth:`Session.from_client` and :meth:`Session.from_upstream`
with one frame each, from their own threads. Frames the policy does not touch are
forwarded as the exact bytes that arrived; only ``tools/call`` requests (and
anything that could be one under some JSON parser's reading) are parsed and
judged.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcp_guard.audit import AuditLog, Event
from mcp_guard.judge import Judge
from mcp_guard.policy.decision import Deny
from mcp_guard.violation import unknown_tool_answer, violation_answer
from mcp_guard.wire.jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    SERVER_ERROR,
    FrameError,
    encode,
    error_answer,
    error_frame,
    id_key,
    is_modern,
    lenient_id,
    strict_loads,
)
from mcp_guard.wire.peek import Peek, classify, peek
from mcp_guard.wire.tools_list import filter_tools_result

Write = Callable[[bytes], None]
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
_REFUSED_KEPT = 1024
Warn = Callable[[str], None]


def needs_judging(line: bytes) -> bool:
    """Whether a client frame could be a ``tools/call`` under any JSON parser's reading.

    Without the literal text ``tools/call`` a frame can only spell the method with
    escapes (``tools\\/call``, ``\\u0074ools/call``), which need a backslash; a
    batch may hide one among its elements. Everything else is safe to forward
    unparsed.
    """
    return b"tools/call" in line or b"\\" in line or line.lstrip()[:1] == b"["


def _first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        result.setdefault(key, value)
    return result


def _has_call(message: Any) -> bool:
    elements = message if isinstance(message, list) else [message]
    return any(isinstance(e, dict) and e.get("method") == "tools/call" for e in elements)


def could_be_call(line: bytes) -> bool:
    """For a frame that failed strict parsing: might some JSON parser read a ``tools/call`` in it?

    Read leniently both ways a parser may resolve duplicate keys (last wins, first
    wins); a frame that cannot be read at all might still be read by a more lenient
    parser upstream, so it counts as a possible call.
    """
    try:
        last = json.loads(line)
        first = json.loads(line, object_pairs_hook=_first_wins)
    except (ValueError, RecursionError):
        return True
    return _has_call(last) or _has_call(first)


@dataclass
class _Merge:
    """Guard answers waiting to join the upstream's answer to a batch."""

    keys: frozenset[tuple[bool, Any]]
    answers: list[dict[str, Any]]


@dataclass
class _Call:
    """A relayed tools/call whose outcome the audit log is waiting for."""

    tool: str
    rule: str | None
    reason: str | None
    decision: str
    arguments: dict[str, Any]
    when: float
    started: float


@dataclass
class _InFlight:
    method: str | None
    ident: Any
    call: _Call | None = None


class Session:
    def __init__(
        self,
        judge: Judge,
        to_client: Write,
        to_upstream: Write,
        warn: Warn,
        *,
        audit: AuditLog | None = None,
        server_name: str = "server",
    ) -> None:
        self.judge = judge
        self._to_client = to_client
        self._to_upstream = to_upstream
        self._warn = warn
        self._audit = audit
        self._server_name = server_name
        self._client_info: dict[str, str] | None = None
        self._lock = threading.Lock()
        self._inflight: dict[tuple[bool, Any], _InFlight] = {}
        self._list_requests: set[tuple[bool, Any]] = set()
        # Ids of calls the guard answered itself, oldest first, bounded: only a prompt
        # notifications/cancelled for one of them needs catching.
        self._refused: dict[tuple[bool, Any], None] = {}
        self._server_meta: dict[str, Any] = {}
        self._merges: list[_Merge] = []

    # client -> upstream -------------------------------------------------------------

    def from_client(self, line: bytes) -> None:
        if needs_judging(line):
            self._from_client_parsed(line)
            return
        msg = peek(line)
        if msg.kind == "notification" and msg.method == "notifications/cancelled":
            self._cancelled(line, msg)
            return
        if msg.method == "initialize" and self._audit is not None:
            self._remember_client(msg.message if msg.message is not None else _loads_or_none(line))
        self._track_request(msg)
        self._to_upstream(line)

    def _remember_client(self, message: Any) -> None:
        params = message.get("params") if isinstance(message, dict) else None
        info = params.get("clientInfo") if isinstance(params, dict) else None
        if isinstance(info, dict):
            self._client_info = {k: str(info[k]) for k in ("name", "version") if k in info}

    def _track_request(self, msg: Peek, call: _Call | None = None) -> None:
        if msg.kind != "request":
            return
        key = id_key(msg.id)
        with self._lock:
            # An id the guard refused earlier is the upstream's again once reused.
            self._refused.pop(key, None)
            self._inflight[key] = _InFlight(msg.method, msg.id, call)
            if msg.method == "tools/list":
                self._list_requests.add(key)

    def _cancelled(self, line: bytes, msg: Peek) -> None:
        message = msg.message if msg.message is not None else _loads_or_none(line)
        params = message.get("params") if isinstance(message, dict) else None
        request_id = params.get("requestId") if isinstance(params, dict) else None
        if request_id is not None:
            key = id_key(request_id)
            with self._lock:
                if key in self._refused:
                    # The upstream never saw this request; cancelling it there would confuse it.
                    del self._refused[key]
                    return
        self._to_upstream(line)

    def _from_client_parsed(self, line: bytes) -> None:
        try:
            message = strict_loads(line)
        except FrameError as exc:
            if could_be_call(line):
                self._to_client(error_frame(lenient_id(line), exc.code, f"mcp-guard: {exc.message}"))
                return
            # Not a call under any reading: strictness is only owed to what the guard judges.
            msg = peek(line)
            if msg.kind == "notification" and msg.method == "notifications/cancelled":
                self._cancelled(line, msg)
                return
            self._track_request(msg)
            self._to_upstream(line)
            return
        if isinstance(message, list):
            self._batch(line, message)
            return
        msg = classify(message)
        call = None
        if msg.method == "tools/call" and msg.kind in ("request", "notification"):
            answer, call = self._judge_call(message)
            if answer is not None:
                if msg.kind == "request":
                    self._to_client(encode(answer))
                return
        elif msg.kind == "notification" and msg.method == "notifications/cancelled":
            self._cancelled(line, msg)
            return
        elif msg.method == "initialize" and self._audit is not None:
            self._remember_client(message)
        self._track_request(msg, call)
        self._to_upstream(line)

    def _batch(self, line: bytes, elements: list[Any]) -> None:
        """Judge each element of a JSON-RPC batch (protocol 2025-03-26) on its own.

        Refused calls are answered by the guard; the rest go upstream as a batch of
        exactly the judged elements. The guard's answers are merged into the
        upstream's batch answer, so the client gets one array as JSON-RPC requires.
        """
        if not elements:
            self._to_client(error_frame(None, INVALID_REQUEST, "mcp-guard: an empty batch is not valid JSON-RPC"))
            return
        answers: list[dict[str, Any]] = []
        forward: list[Any] = []
        calls: dict[tuple[bool, Any], _Call] = {}
        for element in elements:
            msg = classify(element)
            if msg.method == "tools/call" and msg.kind in ("request", "notification"):
                answer, call = self._judge_call(element)
                if answer is not None:
                    if msg.kind == "request":
                        answers.append(answer)
                    continue
                if call is not None and msg.kind == "request":
                    calls[id_key(msg.id)] = call
            elif msg.kind == "notification" and msg.method == "notifications/cancelled":
                params = element.get("params")
                request_id = params.get("requestId") if isinstance(params, dict) else None
                with self._lock:
                    if request_id is not None and id_key(request_id) in self._refused:
                        del self._refused[id_key(request_id)]
                        continue
            forward.append(element)
        if not answers:
            for element in forward:
                msg = classify(element)
                self._track_request(msg, calls.get(id_key(msg.id)))
            self._to_upstream(line)
            return
        expected = [classify(e) for e in forward]
        request_keys = frozenset(id_key(m.id) for m in expected if m.kind == "request")
        if not request_keys:
            # Nothing upstream will answer: the guard's answers are the whole reply.
            self._to_client(encode(answers))
        else:
            with self._lock:
                self._merges.append(_Merge(request_keys, answers))
        if forward:
            for m in expected:
                self._track_request(m, calls.get(id_key(m.id)))
            self._to_upstream(encode(forward))

    def _judge_call(self, message: dict[str, Any]) -> tuple[dict[str, Any] | None, _Call | None]:
        """The guard's own answer to a ``tools/call`` (None to relay it), and what to audit when it is relayed."""
        ident = message.get("id")
        params = message.get("params")
        if not isinstance(params, dict):
            return error_answer(ident, INVALID_PARAMS, "mcp-guard: tools/call needs a params object"), None
        name = params.get("name")
        if not isinstance(name, str):
            return error_answer(ident, INVALID_PARAMS, "mcp-guard: tools/call params.name must be a string"), None
        if any("\ud800" <= ch <= "\udfff" for ch in name):
            return error_answer(ident, INVALID_PARAMS, "mcp-guard: the tool name contains an unpaired surrogate"), None
        arguments = params.get("arguments")
        if arguments is None:
            arguments = {}
        elif not isinstance(arguments, dict):
            return error_answer(ident, INVALID_PARAMS, "mcp-guard: tools/call params.arguments must be an object"), None
        modern = is_modern(params)
        if modern and self._audit is not None:
            client = params["_meta"].get(CLIENT_INFO_KEY)
            if isinstance(client, dict):
                self._remember_client({"params": {"clientInfo": client}})
        decision = self.judge.judge(name, arguments)
        if not isinstance(decision, Deny):
            if self._audit is None:
                return None, None
            return None, _Call(name, decision.rule, None, "allowed", arguments, time.time(), time.perf_counter())
        if self.judge.monitor:
            self._warn(f"monitor: would refuse {name!r} ({decision.rule}): {decision.reason}")
            if self._audit is None:
                return None, None
            call = _Call(name, decision.rule, decision.reason, "monitored", arguments, time.time(), time.perf_counter())
            return None, call
        with self._lock:
            self._refused[id_key(ident)] = None
            if len(self._refused) > _REFUSED_KEPT:
                del self._refused[next(iter(self._refused))]
            server_meta = dict(self._server_meta) if modern else None
        if self._audit is not None:
            self._audit.record(
                Event(
                    self._server_name,
                    self._client_info,
                    name,
                    "refused",
                    decision.rule,
                    decision.reason,
                    arguments,
                    status=decision.kind,
                    when=time.time(),
                )
            )
        if decision.kind == "hidden":
            return unknown_tool_answer(ident, name, server_meta), None
        return violation_answer(ident, name, decision, server_meta), None

    def _audit_outcome(self, call: _Call, status: str) -> None:
        if self._audit is None:
            return
        self._audit.record(
            Event(
                self._server_name,
                self._client_info,
                call.tool,
                call.decision,
                call.rule,
                call.reason,
                call.arguments,
                status=status,
                duration_ms=(time.perf_counter() - call.started) * 1000,
                when=call.when,
            )
        )

    # upstream -> client -------------------------------------------------------------

    def from_upstream(self, line: bytes) -> None:
        msg = peek(line)
        if msg.kind == "invalid":
            if line.strip():
                shown = line[:200].decode("utf-8", "replace").rstrip()
                self._warn(f"the server wrote a line that is not JSON-RPC to stdout (not forwarded): {shown}")
            return
        if msg.kind == "response":
            key = id_key(msg.id)
            with self._lock:
                request = self._inflight.pop(key, None)
                is_list = key in self._list_requests
                if is_list:
                    self._list_requests.discard(key)
            if is_list and not self.judge.monitor:
                engine = self.judge.engine
                filtered = filter_tools_result(line, lambda name: not engine.is_hidden(name))
                if filtered is not None:
                    line = filtered
            elif request is not None and request.method == "server/discover":
                self._remember_server_meta(line)
            if request is not None and request.call is not None:
                self._audit_outcome(request.call, _call_status(line))
        elif msg.kind == "batch":
            keys = {id_key(classify(e).id) for e in msg.message if classify(e).kind == "response"}
            merged: list[dict[str, Any]] = []
            with self._lock:
                finished = [self._inflight.pop(key, None) for key in keys]
            for request in finished:
                if request is not None and request.call is not None:
                    self._audit_outcome(request.call, "ok")
            with self._lock:
                for merge in [m for m in self._merges if m.keys & keys]:
                    self._merges.remove(merge)
                    merged.extend(merge.answers)
            if merged:
                line = encode([*msg.message, *merged])
        self._to_client(line)

    def _remember_server_meta(self, line: bytes) -> None:
        """Keep the 2026-07-28 ``_meta`` server identity, so the guard's own answers carry it like the server's."""
        message = _loads_or_none(line)
        result = message.get("result") if isinstance(message, dict) else None
        meta = result.get("_meta") if isinstance(result, dict) else None
        if isinstance(meta, dict) and SERVER_INFO_KEY in meta:
            with self._lock:
                self._server_meta = {SERVER_INFO_KEY: meta[SERVER_INFO_KEY]}

    # endings ------------------------------------------------------------------------

    def upstream_exited(self, description: str) -> None:
        """Answer every request the upstream never answered, so no client call hangs."""
        with self._lock:
            pending = list(self._inflight.values())
            self._inflight.clear()
        for entry in pending:
            if entry.call is not None:
                self._audit_outcome(entry.call, "server_exited")
            self._to_client(
                error_frame(
                    entry.ident,
                    SERVER_ERROR,
                    f"mcp-guard: the MCP server {description} before answering this request",
                )
            )

    def pending_requests(self) -> int:
        with self._lock:
            return len(self._inflight)


def _call_status(line: bytes) -> str:
    """ok, error (a CallToolResult with isError) or rpc_error, read cheaply from a large answer."""
    if len(line) <= 65536:
        message = _loads_or_none(line)
        if isinstance(message, dict):
            if "error" in message:
                return "rpc_error"
            result = message.get("result")
            return "error" if isinstance(result, dict) and result.get("isError") is True else "ok"
    if b'"isError":true' in line:
        return "error"
    return "rpc_error" if b'"error":{' in line[:200] else "ok"


def _loads_or_none(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None
