"""One client <-> upstream session: where the policy's decisions meet the wire.

The two pumps call :meth:`Session.from_client` and :meth:`Session.from_upstream`
with one frame each, from their own threads. Frames the policy does not touch are
forwarded as the exact bytes that arrived; only ``tools/call`` requests (and
anything that could be one under some JSON parser's reading) are parsed and
judged.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mcp_guard.approval.desk import ApprovalDesk, PendingCall
from mcp_guard.approval.flow import ApprovalSettings, GuardIds, Held
from mcp_guard.audit import AuditLog, Event
from mcp_guard.calls import HELD, Call, InFlight, Merge
from mcp_guard.judge import Judge
from mcp_guard.limits.base import StoreUnavailable
from mcp_guard.policy.decision import Allow, Approve, Deny
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
    lenient_loads,
    loads_or_none,
    strict_loads,
)
from mcp_guard.wire.peek import Peek, classify, peek
from mcp_guard.wire.tools_list import filter_tools_result

if TYPE_CHECKING:
    from mcp_guard.integrity.guard import ToolIntegrity

Write = Callable[[bytes], None]
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
CLIENT_CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
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


class Session(ApprovalDesk):
    def __init__(
        self,
        judge: Judge,
        to_client: Write,
        to_upstream: Write,
        warn: Warn,
        *,
        audit: AuditLog | None = None,
        server_name: str = "server",
        approvals: ApprovalSettings | None = None,
        integrity: ToolIntegrity | None = None,
    ) -> None:
        self.judge = judge
        self._to_client = to_client
        self._to_upstream = to_upstream
        self._warn = warn
        self._audit = audit
        self._server_name = server_name
        self._client_info: dict[str, str] | None = None
        self._approvals = approvals
        self._integrity = integrity
        # Ids for requests the guard sends itself (approval questions, tool listings), one sequence for all.
        self._ids = approvals.ids if approvals is not None else GuardIds()
        # The server's own answer to an unknown tool, per protocol era (modern or not), learnt once.
        self._unknown_answers: dict[bool, tuple[str, dict[str, Any]]] = {}
        self._client_elicitation = False  # declared in the handshake-era initialize
        self._client_version = ""
        self._held: dict[tuple[bool, Any], Held] = {}
        self._guard_requests: dict[str, Held] = {}
        self._workers: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._inflight: dict[tuple[bool, Any], InFlight] = {}
        self._list_requests: set[tuple[bool, Any]] = set()
        # Ids of calls the guard answered itself, oldest first, bounded: only a prompt
        # notifications/cancelled for one of them needs catching.
        self._refused: dict[tuple[bool, Any], None] = {}
        self._server_meta: dict[str, Any] = {}
        self._merges: list[Merge] = []

    # client -> upstream -------------------------------------------------------------

    def from_client(self, line: bytes) -> None:
        if needs_judging(line):
            self._from_client_parsed(line)
            return
        msg = peek(line)
        if msg.kind == "notification" and msg.method == "notifications/cancelled":
            self._cancelled(line, msg)
            return
        if msg.kind == "response" and self._ids.owns(msg.id):
            self._guard_response(msg.id, msg.message if msg.message is not None else loads_or_none(line))
            return
        if msg.method == "initialize":
            self._remember_client(msg.message if msg.message is not None else loads_or_none(line))
        self._track_request(msg)
        self._to_upstream(line)

    def _remember_client(self, message: Any) -> None:
        params = message.get("params") if isinstance(message, dict) else None
        if not isinstance(params, dict):
            return
        info = params.get("clientInfo")
        if isinstance(info, dict):
            self._client_info = {k: str(info[k]) for k in ("name", "version") if k in info}
        capabilities = params.get("capabilities")
        if isinstance(capabilities, dict):
            self._client_elicitation = isinstance(capabilities.get("elicitation"), dict)
        version = params.get("protocolVersion")
        if isinstance(version, str):
            self._client_version = version

    def _guard_response(self, ident: Any, message: Any) -> None:
        """The client's answer to a request the guard sent (an approval question)."""
        with self._lock:
            held = self._guard_requests.get(ident)
        if held is not None:
            held.answer = message
            held.event.set()

    def _track_request(self, msg: Peek, call: Call | None = None) -> None:
        if msg.kind != "request":
            return
        key = id_key(msg.id)
        with self._lock:
            # An id the guard refused earlier is the upstream's again once reused.
            self._refused.pop(key, None)
            self._inflight[key] = InFlight(msg.method, msg.id, call)
            if msg.method == "tools/list":
                self._list_requests.add(key)

    def _cancelled(self, line: bytes, msg: Peek) -> None:
        message = msg.message if msg.message is not None else loads_or_none(line)
        params = message.get("params") if isinstance(message, dict) else None
        request_id = params.get("requestId") if isinstance(params, dict) else None
        if request_id is not None:
            key = id_key(request_id)
            with self._lock:
                held = self._held.get(key)
                if held is not None:
                    # The client gave up on a call waiting for approval: stop asking, never relay it.
                    held.cancelled = True
                    held.event.set()
                    return
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
                self._refuse_frame(line, exc)
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
                if msg.kind == "request" and answer is not HELD:
                    self._to_client(encode(answer))
                return
        elif msg.kind == "notification" and msg.method == "notifications/cancelled":
            self._cancelled(line, msg)
            return
        elif msg.method == "initialize":
            self._remember_client(message)
        elif msg.kind == "response" and self._ids.owns(msg.id):
            self._guard_response(msg.id, message)
            return
        self._track_request(msg, call)
        self._to_upstream(line)

    def _refuse_frame(self, line: bytes, exc: FrameError) -> None:
        """A frame the guard cannot judge: one error per request in it, so no request waits forever."""
        message = f"mcp-guard: {exc.message}"
        try:
            parsed = lenient_loads(line)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, list):
            answers = [
                error_answer(e.get("id"), exc.code, message)
                for e in parsed
                if isinstance(e, dict) and "id" in e and isinstance(e.get("method"), str)
            ]
            self._to_client(encode(answers) if answers else error_frame(None, exc.code, message))
            return
        self._to_client(error_frame(lenient_id(line), exc.code, message))

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
        calls: dict[tuple[bool, Any], Call] = {}
        dropped = False
        for element in elements:
            msg = classify(element)
            if msg.method == "tools/call" and msg.kind in ("request", "notification"):
                answer, call = self._judge_call(element, allow_hold=False)
                if answer is not None:
                    dropped = True
                    if msg.kind == "request" and answer is not HELD:
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
                        dropped = True
                        continue
            forward.append(element)
        if not dropped:
            for element in forward:
                msg = classify(element)
                self._track_request(msg, calls.get(id_key(msg.id)))
            self._to_upstream(line)
            return
        expected = [classify(e) for e in forward]
        request_keys = frozenset(id_key(m.id) for m in expected if m.kind == "request")
        if not request_keys:
            # Nothing upstream will answer: the guard's answers are the whole reply.
            if answers:
                self._to_client(encode(answers))
        elif answers:
            with self._lock:
                self._merges.append(Merge(request_keys, answers))
        if forward:
            for m in expected:
                self._track_request(m, calls.get(id_key(m.id)))
            self._to_upstream(encode(forward))

    def _judge_call(
        self, message: dict[str, Any], allow_hold: bool = True
    ) -> tuple[dict[str, Any] | None, Call | None]:
        """The guard's own answer to a ``tools/call`` (None to relay it), and what to audit when it is relayed."""
        ident = message.get("id")
        params = message.get("params")
        if not isinstance(params, dict):
            return error_answer(ident, INVALID_PARAMS, "mcp-guard: tools/call needs a params object"), None
        name = params.get("name")
        if not isinstance(name, str):
            return error_answer(ident, INVALID_PARAMS, "mcp-guard: tools/call params.name must be a string"), None
        if not name.isascii() and _SURROGATE.search(name):
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
        if self.judge.engine.is_hidden(name) and not self.judge.monitor and allow_hold and self._can_probe(modern):
            self._refuse(
                ident,
                name,
                arguments,
                Deny("hidden", "hide", f"Tool {name!r} is hidden by the policy."),
                modern,
                answer=False,
            )
            self._answer_as_unknown(ident, name, params, modern)
            return HELD, None
        if self._integrity is not None:
            verdict = self._integrity.check_call(name, arguments)
            if verdict == _NEEDS_LISTING:
                if not allow_hold:
                    deny = Deny(
                        "pin",
                        "pins",
                        f"Tool {name!r} has not been listed in this session, and the guard checks tools against "
                        "their listing before a call: list the tools (tools/list), or send this call on its own.",
                    )
                    return self._refuse(ident, name, arguments, deny, modern), None
                self._list_then_judge(message, params)
                return HELD, None
            if isinstance(verdict, Deny):
                if not self.judge.monitor:
                    return self._refuse(ident, name, arguments, verdict, modern), None
                self._warn(f"monitor: would refuse {name!r} ({verdict.rule}): {verdict.reason}")
        decision = self.judge.judge(name, arguments)
        if isinstance(decision, Approve):
            if self.judge.monitor:
                self._warn(f"monitor: would ask a person to approve {name!r} ({decision.rule}): {decision.reason}")
                return None, self._call_record(name, decision.rule, decision.reason, "monitored", arguments, None)
            return self._approve(PendingCall(message, ident, name, arguments, params, decision), allow_hold)
        if not isinstance(decision, Deny):
            refund = decision.receipt.refundable() if decision.receipt is not None else None
            if self._audit is None and refund is None:
                return None, None
            return None, self._call_record(name, decision.rule, None, "allowed", arguments, refund)
        if self.judge.monitor:
            self._warn(f"monitor: would refuse {name!r} ({decision.rule}): {decision.reason}")
            return None, self._call_record(name, decision.rule, decision.reason, "monitored", arguments, None)
        return self._refuse(ident, name, arguments, decision, modern), None

    def _call_record(
        self, tool: str, rule: str | None, reason: str | None, word: str, arguments: dict[str, Any], refund: Any
    ) -> Call | None:
        if self._audit is None and refund is None:
            return None
        return Call(tool, rule, reason, word, arguments, time.time(), time.perf_counter(), refund)

    def _refuse(
        self,
        ident: Any,
        name: str,
        arguments: dict[str, Any],
        decision: Deny,
        modern: bool,
        word: str = "refused",
        answer: bool = True,
    ) -> dict[str, Any]:
        """The guard's answer to a refused call, remembered (for cancellations) and audited."""
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
                    word,
                    decision.rule,
                    decision.reason,
                    arguments,
                    status=decision.kind,
                    when=time.time(),
                )
            )
        if not answer:
            return {}
        if decision.kind == "hidden":
            return unknown_tool_answer(ident, name, server_meta)
        return violation_answer(ident, name, decision, server_meta)

    @property
    def integrity(self) -> ToolIntegrity | None:
        return self._integrity

    @integrity.setter
    def integrity(self, value: ToolIntegrity | None) -> None:
        """Swapped whole on a policy reload (one reference: the pumps see the old or the new, never a mix)."""
        self._integrity = value

    # hidden tools -------------------------------------------------------------------

    def _can_probe(self, modern: bool) -> bool:
        """Whether the server's own unknown-tool answer can be learnt: only when a made-up name is one the
        policy would relay (default allow), so the upstream never sees a call the policy refuses."""
        if modern in self._unknown_answers:
            return True
        return self.judge.engine.default_allow and isinstance(self.judge.engine.decide(_PROBE_PREFIX + "x", {}), Allow)

    def _answer_as_unknown(self, ident: Any, name: str, params: dict[str, Any], modern: bool) -> None:
        """Answer a hidden tool's call exactly as this server answers a tool it does not have.

        The first time (per protocol era) the guard asks the server for a made-up tool name with a
        request id of its own, keeps the answer as a template, and puts the hidden name in place of the
        made-up one: "Unknown tool: X" from a Python SDK server, "MCP error -32602: Tool X not found"
        from a TypeScript one. Runs off the pump; nothing about the hidden tool reaches the server.
        """

        def run() -> None:
            try:
                template = self._unknown_answers.get(modern)
                if template is None:
                    probe = _PROBE_PREFIX + secrets.token_hex(6)
                    probe_params = {k: v for k, v in params.items() if k not in ("name", "arguments", "task")}
                    probe_params.update(name=probe, arguments={})
                    answer = self._ask_upstream("tools/call", probe_params, timeout_s=10.0)
                    if not isinstance(answer, dict) or not ("result" in answer or "error" in answer):
                        raise ValueError("no answer")
                    template = (probe, answer)
                    self._unknown_answers[modern] = template
                probe, answer = template
                reply = _replace_strings(answer, probe, name)
                reply["id"] = ident
                self._to_client(encode(reply))
            except Exception:  # the server did not say: answer the way the Python SDK does
                with self._lock:
                    server_meta = dict(self._server_meta) if modern else None
                self._to_client(encode(unknown_tool_answer(ident, name, server_meta)))
            finally:
                self._workers.discard(threading.current_thread())

        worker = threading.Thread(target=run, name="mcp-guard unknown-tool answer", daemon=True)
        self._workers.add(worker)
        worker.start()

    def _audit_outcome(self, call: Call, status: str) -> None:
        if call.refund is not None and status in ("error", "rpc_error"):
            try:
                self.judge.limiter.refund(call.refund)
            except StoreUnavailable as exc:
                self._warn(f"could not refund {call.tool!r} to the limit store: {exc}")
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
        # The common case, an answer in the Python SDK's layout, without building a Peek.
        head = _RESPONSE_HEAD.match(line)
        if head is not None:
            token = head.group(1)
            if token[:1] == b'"':
                ident: Any = token[1:-1].decode("utf-8", "replace")
                if self._ids.owns(ident):
                    self._guard_response(ident, loads_or_none(line))
                    return
            else:
                ident = int(token)
            self._to_client(self._response(line, ident))
            return
        msg = peek(line)
        if msg.kind == "invalid":
            if line.strip():
                shown = line[:200].decode("utf-8", "replace").rstrip()
                self._warn(f"the server wrote a line that is not JSON-RPC to stdout (not forwarded): {shown}")
            return
        if msg.kind == "response":
            if self._ids.owns(msg.id):
                self._guard_response(msg.id, msg.message if msg.message is not None else loads_or_none(line))
                return
            line = self._response(line, msg.id)
        elif msg.kind == "notification" and msg.method == "notifications/tools/list_changed":
            if self._integrity is not None:
                self._integrity.forget_listing()
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

    def _response(self, line: bytes, ident: Any) -> bytes:
        """Settle the request this answers; return the frame to send the client (filtered, if it must be)."""
        key = id_key(ident)
        with self._lock:
            request = self._inflight.pop(key, None)
            is_list = bool(self._list_requests) and key in self._list_requests
            if is_list:
                self._list_requests.discard(key)
        if request is None:
            return line
        if is_list:
            line = self._filter_listing(line)
        elif request.method == "server/discover":
            self._remember_server_meta(line)
        if request.call is not None:
            if request.call.modern_approval and b'"input_required"' in line:
                line = self._wrap_upstream_state(line, request.call)
            self._audit_outcome(request.call, _call_status(line))
        return line

    def _filter_listing(self, line: bytes) -> bytes:
        """A ``tools/list`` answer without hidden tools, and (with pins) without tools that break their pins."""
        integrity = self._integrity
        monitor = self.judge.monitor
        if integrity is None or not integrity.watches_listings:
            if monitor:
                return line
            engine = self.judge.engine
            filtered = filter_tools_result(line, lambda name: not engine.is_hidden(name))
            return line if filtered is None else filtered
        message = loads_or_none(line)
        result = message.get("result") if isinstance(message, dict) else None
        if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
            return line
        tools: list[Any] = result["tools"]
        kept, _ = integrity.listed(tools)
        if not monitor:
            engine = self.judge.engine
            kept = [t for t in kept if not (isinstance(t, dict) and engine.is_hidden(str(t.get("name", ""))))]
        else:
            kept = tools
        if len(kept) == len(tools):
            return line
        result["tools"] = kept
        return encode(message)

    def _list_then_judge(self, message: dict[str, Any], params: dict[str, Any]) -> None:
        """Read the server's whole tool list (guard-owned ids, every page), then judge the held call."""
        worker = threading.Thread(
            target=self._list_then_judge_run, args=(message, params), name="mcp-guard tool listing", daemon=True
        )
        self._workers.add(worker)
        worker.start()

    def _list_then_judge_run(self, message: dict[str, Any], params: dict[str, Any]) -> None:
        ident = message.get("id")
        try:
            tools: list[Any] = []
            cursor: Any = None
            for _ in range(100):  # pages; a server looping on its cursor must not hold the call forever
                list_params: dict[str, Any] = {}
                if is_modern(params):
                    list_params["_meta"] = params["_meta"]
                if cursor is not None:
                    list_params["cursor"] = cursor
                answer = self._ask_upstream("tools/list", list_params)
                result = answer.get("result") if isinstance(answer, dict) else None
                if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
                    raise RuntimeError(f"the server did not list its tools: {str(answer)[:200]}")
                tools.extend(result["tools"])
                cursor = result.get("nextCursor")
                if not cursor:
                    break
            assert self._integrity is not None  # noqa: S101
            self._integrity.listed(tools, complete=True)
            answer_now, call = self._judge_call(message, allow_hold=False)
            if answer_now is HELD:
                return
            if answer_now is not None:
                if "id" in message:
                    self._to_client(encode(answer_now))
                return
            self._track_request(Peek("request", ident, "tools/call"), call)
            self._to_upstream(encode(message))
        except Exception as exc:
            name = params.get("name")
            deny = Deny(
                "pin",
                "pins",
                f"The guard could not read the server's tool list to check this call ({exc}), so it was refused.",
            )
            if "id" in message:
                self._to_client(encode(self._refuse(ident, str(name), {}, deny, is_modern(params))))
        finally:
            self._workers.discard(threading.current_thread())

    def _ask_upstream(self, method: str, params: dict[str, Any], timeout_s: float = 10.0) -> Any:
        guard_id = self._ids.new()
        held = Held(guard_id=guard_id)
        with self._lock:
            self._guard_requests[guard_id] = held
        try:
            self._to_upstream(encode({"jsonrpc": "2.0", "id": guard_id, "method": method, "params": params}))
            if not held.event.wait(timeout_s):
                raise TimeoutError(f"no answer to {method} within {timeout_s:g} s")
            return held.answer
        finally:
            with self._lock:
                self._guard_requests.pop(guard_id, None)

    def _remember_server_meta(self, line: bytes) -> None:
        """Keep the 2026-07-28 ``_meta`` server identity, so the guard's own answers carry it like the server's."""
        message = loads_or_none(line)
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


_RESPONSE_HEAD = re.compile(rb'\{"jsonrpc":"2\.0","id":(-?\d+|"[^"\\]*"),"(?:result|error)":')
_SURROGATE = re.compile("[\ud800-\udfff]")

_PROBE_PREFIX = "mcp-guard-unknown-tool-"


def _replace_strings(value: Any, old: str, new: str) -> Any:
    """``value`` with ``old`` replaced by ``new`` in every string (keys included)."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [_replace_strings(v, old, new) for v in value]
    if isinstance(value, dict):
        return {_replace_strings(k, old, new): _replace_strings(v, old, new) for k, v in value.items()}
    return value


_NEEDS_LISTING = "needs-listing"  # mcp_guard.integrity.guard.NEEDS_LISTING, without importing it at start-up


def _call_status(line: bytes) -> str:
    """ok, error (a CallToolResult with isError) or rpc_error, from the frame's head and tail only.

    Audit metadata, not a security decision: reading a 20 MB answer whole for it cost
    milliseconds. The SDKs write ``isError`` near the end (Python) or the start
    (TypeScript) of the result, and ``error`` first or last in the envelope.
    """
    head, tail = line[:300], line[-300:]
    if b'"isError":true' in tail or b'"isError":true' in head:
        return "error"
    if b'"error":{' in head[:60] or (b'"error":{' in head and b'"result"' not in head):
        return "rpc_error"
    return "ok"
