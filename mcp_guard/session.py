"""One client <-> upstream session, without I/O: frames in, actions out.

The relay's pumps call :meth:`Session.from_client` and :meth:`Session.from_upstream` with one
frame each, from their own threads, and carry out the :mod:`~mcp_guard.actions` they get back
(write to a side, start a job on the bounded worker pool). The session keeps the table of
requests in flight and hands every ``tools/call`` to the :class:`~mcp_guard.pipeline.Pipeline`.

Client frames are read strictly (:func:`mcp_guard.wire.frames.read_frame`): a line that is
forwarded is exactly what was judged, as every reader reads it. Upstream frames are forwarded
as they came, except listings the policy filters; the guard parses an upstream frame where it
relies on it (listings, answers to its own requests, the outcome of a call).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from mcp_guard.actions import Action, Emit, Job, Start, ToClient, ToUpstream
from mcp_guard.answers import INSPECTED_METHODS, audit_record, inspect_answer, unreadable_routing
from mcp_guard.approval.flow import ApprovalSettings, GuardIds
from mcp_guard.calls import Call, InFlight, Waiter
from mcp_guard.limits.base import StoreUnavailable
from mcp_guard.pipeline import (
    CallIn,
    Hold,
    Kind,
    Pipeline,
    Refuse,
    Relay,
    Reply,
    Snapshot,
    Verdict,
    run_settled_stages,
    settled_stages_wanted,
    stage_index,
)
from mcp_guard.policy.decision import Allow, Deny
from mcp_guard.rounds import Rounds, issued_state
from mcp_guard.violation import (
    request_refusal,
    unknown_request_answer,
    unknown_tool_answer,
    violation_answer,
    violation_error,
)
from mcp_guard.wire.frames import Message, Refused, read_frame
from mcp_guard.wire.json_types import JSON, JSONObject, Scalar
from mcp_guard.wire.jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    SERVER_ERROR,
    FrameError,
    answer_status,
    encode,
    error_answer,
    error_frame,
    id_key,
    is_modern,
    loads_or_none,
    quick_loads_or_none,
    strict_loads,
)
from mcp_guard.wire.peek import classify, peek

if TYPE_CHECKING:
    from mcp_guard.approval.desk import ApprovalDesk
    from mcp_guard.audit import AuditLog
    from mcp_guard.inspect.plan import ResultPlan
    from mcp_guard.judge import Judge

SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
Warn = Callable[[str], None]
Key = tuple[bool, Scalar]  # id_key of a JSON-RPC id

_REFUSED_KEPT = 1024
MAX_IN_FLIGHT = 4096
# Answers up to this size are parsed to learn whether the call failed (refund, audit). Larger ones are
# parsed only when a refund depends on it: reading 20 MB for an audit word costs more than relaying it.
_STATUS_PARSE_LIMIT = 1 << 20
# Answers up to this size go to the audit writer unread when only the audit log wants their status: bounded
# so the writer's backlog (0.2 s of calls) holds little memory.
_DEFERRED_STATUS_LIMIT = 2048
# Answers past this size read only for their status are parsed by pydantic-core (jsonrpc.quick_loads_or_none).
_QUICK_STATUS_FROM = 1 << 16
_LIST_TIMEOUT_S = 10.0


@dataclass(slots=True)
class ClientInfo:
    name: dict[str, str] | None = None
    elicitation: bool = False  # declared in the handshake-era initialize
    version: str = ""


class Session:
    def __init__(
        self,
        judge: Judge,
        snapshot: Snapshot,
        warn: Warn,
        *,
        audit: AuditLog | None = None,
        server_name: str = "server",
        server_identity: str | None = None,
        approvals: ApprovalSettings | None = None,
    ) -> None:
        self.snapshot = snapshot  # replaced whole by a policy reload; each call reads it once
        self._warn = warn
        self._audit = audit
        self.server_name = server_name
        self.server_identity = server_identity or server_name
        self.client = ClientInfo()
        self.judge = judge
        # Ids of requests the guard sends itself, one space per side: an answer counts only from the side
        # the request went to.
        self._client_ids = GuardIds("c")
        self._upstream_ids = GuardIds("u")
        self._lock = threading.Lock()
        self._inflight: dict[Key, InFlight] = {}
        self._held: dict[Key, Waiter] = {}
        self._asked: dict[str, Waiter] = {}
        self._list_requests: set[Key] = set()
        # Ids of calls the guard answered itself, oldest first, bounded: only a prompt
        # notifications/cancelled for one of them needs catching.
        self._refused: dict[Key, None] = {}
        self._server_meta: JSONObject = {}
        # The server's own answer to an unknown tool, per protocol era (modern or not), learnt once; and to an
        # unknown prompt or resource, per method and era.
        self._unknown_answers: dict[bool | tuple[str, bool], tuple[str, JSONObject]] = {}
        # requestStates the server issued for admitted calls (2026-07-28 input rounds): their retries go on.
        self._rounds = Rounds()
        self._stopping = False
        self._tasks: dict[str, str] = {}  # taskId -> tool, for task-augmented calls whose results are checked
        # Detectors that found something in what came back this session (for inspection; flow rules acquire
        # labels through Call.labels and their ledger, not from here).
        self.labels: set[str] = set()
        self._version: str | None = None  # negotiated in the handshake era's initialize
        self._announces_tool_changes = False  # the server declared capabilities.tools.listChanged
        # 2026-07-28 subscriptions/listen streams on which the server agreed to send tool list changes.
        self._tool_listeners: dict[Key, JSON] = {}
        # Where the session sends what no frame caused (a reload's list_changed); set by the relay.
        self.outbox: Emit | None = None
        desk: ApprovalDesk | None = None
        if approvals is not None:
            from mcp_guard.approval.desk import ApprovalDesk

            desk = ApprovalDesk(self, approvals)
        self.desk = desk
        self.pipeline = Pipeline(judge, desk, warn)

    def install(self, snapshot: Snapshot) -> None:
        """Put a reloaded policy in force (one assignment). When it changes what ``tools/list`` shows, a
        client that was told the server announces such changes (``tools.listChanged``) is told to re-list."""
        before = self.snapshot
        self.snapshot = snapshot
        if _hidden_in_listing(before) == _hidden_in_listing(snapshot):
            return
        outbox = self.outbox
        if outbox is None:
            return
        frames: list[Action] = [ToClient(_LIST_CHANGED)] if self._announces_tool_changes else []
        with self._lock:
            streams = list(self._tool_listeners.values())
        for stream in streams:
            params: JSONObject = {"_meta": {SUBSCRIPTION_ID_KEY: stream}}
            frames.append(ToClient(encode({"jsonrpc": "2.0", "method": _LIST_CHANGED_METHOD, "params": params})))
        if frames:
            outbox(frames)

    # what the approval desk may use -------------------------------------------------------------

    def warn(self, message: str) -> None:
        self._warn(message)

    def server_meta(self) -> JSONObject:
        with self._lock:
            return dict(self._server_meta)

    def ask(
        self, side: str, method: str, params: JSONObject, emit: Emit, timeout_s: float, held: Waiter | None = None
    ) -> JSON:
        """Send a request of the guard's own to ``side`` and wait for its answer (None: timed out or cancelled).

        Blocks: only for jobs on the worker pool. ``held`` is the waiting call, whose cancellation ends the
        wait early; the question is then taken back with ``notifications/cancelled``.
        """
        ids = self._client_ids if side == "client" else self._upstream_ids
        guard_id = ids.new()
        waiter = held if held is not None else Waiter()
        waiter.event.clear()
        waiter.answer = None
        with self._lock:
            self._asked[guard_id] = waiter
        if waiter.cancelled:
            with self._lock:
                self._asked.pop(guard_id, None)
            return None
        send = ToClient if side == "client" else ToUpstream
        try:
            emit([send(encode({"jsonrpc": "2.0", "id": guard_id, "method": method, "params": params}))])
            answered = waiter.event.wait(timeout_s) and not waiter.cancelled and waiter.answer is not None
        finally:
            with self._lock:
                self._asked.pop(guard_id, None)
        if not answered:
            reason = "mcp-guard stopped waiting for an answer"
            emit(
                [
                    send(
                        encode(
                            {
                                "jsonrpc": "2.0",
                                "method": "notifications/cancelled",
                                "params": {"requestId": guard_id, "reason": reason},
                            }
                        )
                    )
                ]
            )
            return None
        return waiter.answer

    # client -> upstream ------------------------------------------------------------------------

    def from_client(self, line: bytes) -> list[Action]:
        try:
            frame = read_frame(line)
        except Refused as exc:
            return self._refused_frame(exc)
        if frame is None:
            return []
        if frame.batch:
            version = self._batchless_version(frame.messages)
            if version is not None:
                return self._refused_frame(
                    Refused(
                        INVALID_REQUEST,
                        f"JSON-RPC batches are not part of MCP {version} (removed in 2025-06-18), which this session "
                        "uses, and its servers do not answer them: send the messages one at a time",
                        [m.id for m in frame.messages if m.kind == "request"],
                        batch=True,
                    )
                )
            return self._batch(line, frame.messages)
        return self._one(line, frame.messages[0])

    def _batchless_version(self, messages: list[Message]) -> str | None:
        """The session's protocol version when it has no batches (2025-06-18 and later), else None."""
        versions = [self._version] if self._version else []
        for m in messages:
            meta = m.params.get("_meta")
            version = meta.get("io.modelcontextprotocol/protocolVersion") if isinstance(meta, dict) else None
            if isinstance(version, str):
                versions.append(version)
        return next((v for v in versions if v >= "2025-06-18"), None)

    def _refused_frame(self, exc: Refused) -> list[Action]:
        """A frame the guard did not fully understand: never forwarded; one error per request in it."""
        message = f"mcp-guard: {exc.message}"
        if exc.notification:
            self._warn(f"a message from the client was dropped (not forwarded): {exc.message}")
            return []
        if len(exc.ids) > 1 or (exc.batch and exc.ids):
            return [ToClient(encode([error_answer(i, exc.code, message) for i in exc.ids]))]
        return [ToClient(error_frame(exc.ids[0] if exc.ids else None, exc.code, message))]

    def _one(self, line: bytes, m: Message) -> list[Action]:
        if m.kind == "response":
            return [ToUpstream(line)] if self._client_response(m) else []
        if m.kind == "notification":
            if m.method == "notifications/cancelled":
                return [ToUpstream(line)] if self._cancelled(m) else []
            if m.method == "tools/call" or (m.method in _JUDGED and self._judged(m.method)):
                return self._call(line, m, None)
            return [ToUpstream(line)]
        if m.method == "initialize":
            self._remember_client(m.params)
        key = id_key(m.id)
        refusal = self._claim(key, m)
        if refusal is not None:
            return [ToClient(encode(refusal))]
        if m.method == "tools/call" or (m.method in _JUDGED and self._judged(m.method)):
            return self._call(line, m, key)
        if m.method == "completion/complete" and self.snapshot.engine.sections:
            hidden = self._hidden_completion(m)
            if hidden is not None:
                return hidden
        flight = InFlight(m.method, m.id)
        if self._tasks and m.method == "tasks/result":
            flight.result_of = self._tasks.get(str(m.params.get("taskId")))
        with self._lock:
            self._inflight[key] = flight
            if m.method == "tools/list" or (m.method in _LISTINGS and self.snapshot.engine.sections):
                self._list_requests.add(key)
        return [ToUpstream(line)]

    def _hidden_completion(self, m: Message) -> list[Action] | None:
        """Completing an argument of a hidden prompt or resource template: answered as for one the server does
        not have, so completion does not reveal what the listings hide. None: not hidden, relay it."""
        ref = m.params.get("ref")
        if not isinstance(ref, dict):
            return None
        kind: Kind = "prompt" if ref.get("type") == "ref/prompt" else "resource"
        name = ref.get("name" if kind == "prompt" else "uri")
        snap = self.snapshot
        section = snap.engine.section(kind)
        if not isinstance(name, str) or section is None or snap.monitor or not section.is_hidden(name):
            return None
        modern = is_modern(m.params)
        call = CallIn(m.id, name, {}, m.params, m.body, modern, kind=kind)
        self._note_refusal(call, Deny("hidden", f"{kind}s.hide", f"{section.noun} {name!r} is hidden."), "refused")
        return self._answer_as_unknown(call, snap)

    def _judged(self, method: str | None) -> bool:
        """Whether a request other than tools/call is judged: only when the policy has its section."""
        kind = _JUDGED.get(method) if method is not None else None
        return kind is not None and kind in self.snapshot.engine.sections

    def _claim(self, key: Key, m: Message) -> JSONObject | None:
        """An error answer when this request id cannot be taken (already in flight, or too many in flight)."""
        if self._client_ids.owns(m.id) or self._upstream_ids.owns(m.id):
            # The answer would be taken for the answer to the guard's own request, and dropped.
            return error_answer(
                m.id,
                INVALID_REQUEST,
                f"mcp-guard: request id {m.id!r} is one of the guard's own ids; use another id",
            )
        with self._lock:
            if key in self._inflight or key in self._held:
                return error_answer(
                    m.id,
                    INVALID_REQUEST,
                    f"mcp-guard: request id {m.id!r} is already in use by a request in flight; JSON-RPC ids must be "
                    "unique among requests in flight, so this one was refused and not sent to the server",
                )
            if len(self._inflight) + len(self._held) >= MAX_IN_FLIGHT:
                return error_answer(
                    m.id,
                    SERVER_ERROR,
                    f"mcp-guard: {MAX_IN_FLIGHT} requests are already waiting for an answer; this one was refused. "
                    "Retry once some have been answered.",
                )
            self._refused.pop(key, None)  # an id the guard refused earlier is the upstream's again once reused
        return None

    def _remember_client(self, params: JSONObject) -> None:
        info = params.get("clientInfo")
        if isinstance(info, dict):
            self.client.name = {k: str(info[k]) for k in ("name", "version") if k in info}
        capabilities = params.get("capabilities")
        if isinstance(capabilities, dict):
            self.client.elicitation = isinstance(capabilities.get("elicitation"), dict)
        version = params.get("protocolVersion")
        if isinstance(version, str):
            self.client.version = version

    def _client_response(self, m: Message) -> bool:
        """Settle an answer to one of the guard's questions; True if it is the upstream's to see."""
        ident = m.id
        if self._client_ids.owns(ident):
            with self._lock:
                waiter = self._asked.get(ident)
            if waiter is not None:
                waiter.settle(m.body)
            return False
        if self._upstream_ids.owns(ident):
            self._warn(f"the client answered {ident!r}, a request the guard sent to the server; dropped")
            return False
        return True

    def _cancelled(self, m: Message) -> bool:
        """A client's ``notifications/cancelled``; True if the upstream should see it."""
        request_id = m.params.get("requestId")
        if request_id is None:
            return True
        key = id_key(request_id)
        with self._lock:
            held = self._held.get(key)
            if held is not None:
                # The client gave up on a call that is waiting: stop waiting, never relay it.
                held.cancel()
                return False
            if key in self._refused:
                # The upstream never saw this request; cancelling it there would confuse it.
                del self._refused[key]
                return False
            request = self._inflight.get(key)
            if request is not None and request.call is not None:
                request.call.cancelled = True
        return True

    def _call_in(self, m: Message, can_hold: bool) -> CallIn | JSONObject:
        """The call (or judged prompt/resource request) to judge, or the error answer for a malformed one."""
        method = m.method or "tools/call"
        kind = _JUDGED.get(method, "tool")
        params = m.body.get("params")
        if not isinstance(params, dict):
            return error_answer(m.id, INVALID_PARAMS, f"mcp-guard: {method} needs a params object")
        field = "uri" if kind == "resource" else "name"
        name = params.get(field)
        if not isinstance(name, str):
            return error_answer(m.id, INVALID_PARAMS, f"mcp-guard: {method} params.{field} must be a string")
        if not name.isascii() and _SURROGATE.search(name):
            return error_answer(m.id, INVALID_PARAMS, f"mcp-guard: the {kind} {field} contains an unpaired surrogate")
        arguments = params.get("arguments") if kind != "resource" else None
        if arguments is None:
            arguments = {}
        elif not isinstance(arguments, dict):
            return error_answer(m.id, INVALID_PARAMS, f"mcp-guard: {method} params.arguments must be an object")
        modern = is_modern(params)
        if modern and self._audit is not None:
            meta = params.get("_meta")  # an object: is_modern says so
            client = meta.get(CLIENT_INFO_KEY) if isinstance(meta, dict) else None
            if isinstance(client, dict):
                self._remember_client({"clientInfo": client})
        call = CallIn(m.id, name, arguments, params, m.body, modern, m.kind == "request", can_hold, kind)
        if modern and kind == "tool" and len(self._rounds):
            state = params.get("requestState")
            if isinstance(state, str):
                call.continues = self._rounds.resume(state, name, arguments)
        return call

    def _call(self, line: bytes, m: Message, key: Key | None) -> list[Action]:
        call = self._call_in(m, can_hold=True)
        if isinstance(call, dict):
            return [ToClient(encode(call))] if key is not None else []
        snap = self.snapshot
        verdict = self.pipeline.judge_call(call, snap)
        return self._carry_out(call, verdict, snap, line)

    def _carry_out(self, call: CallIn, verdict: Verdict, snap: Snapshot, line: bytes | None) -> list[Action]:
        """Turn a verdict into actions. ``line`` is the client's frame (None: re-encode the message)."""
        key = id_key(call.ident) if call.request else None
        if isinstance(verdict, Relay):
            if key is not None:
                with self._lock:
                    self._inflight[key] = InFlight(_method(call), call.ident, verdict.record)
            if verdict.forward is not None or line is None:
                return [ToUpstream(encode(verdict.forward if verdict.forward is not None else call.message))]
            return [ToUpstream(line)]
        if isinstance(verdict, Refuse):
            self._note_refusal(call, verdict.deny, verdict.word)
            if not call.request:
                return []
            if verdict.deny.kind == "hidden":
                if call.kind == "tool" and not snap.engine.default_allow:
                    return [ToClient(encode(self._hidden_under_default_deny(call, snap)))]
                return self._answer_as_unknown(call, snap)
            return [ToClient(encode(self._refusal(call, verdict.deny)))]
        if isinstance(verdict, Reply):
            return [ToClient(encode(verdict.answer))] if call.request else []
        return self._hold(call, verdict, snap)

    def _meta_for(self, call: CallIn) -> JSONObject | None:
        return self.server_meta() if call.modern else None

    def _refusal(self, call: CallIn, deny: Deny) -> JSONObject:
        """The guard's answer to a refused request, in the shape its client asked for (a task-augmented call:
        an error). A hidden one is answered by :meth:`_answer_as_unknown`."""
        if call.kind != "tool":
            return request_refusal(call.ident, call.kind, call.name, deny, _method(call))
        if isinstance(call.params.get("task"), dict):
            return violation_error(call.ident, call.name, deny)
        return violation_answer(call.ident, call.name, deny, self._meta_for(call))

    def _note_refusal(self, call: CallIn, deny: Deny, word: str) -> None:
        """Remember a refused call (for cancellations) and audit it."""
        if call.request:
            with self._lock:
                self._refused[id_key(call.ident)] = None
                if len(self._refused) > _REFUSED_KEPT:
                    del self._refused[next(iter(self._refused))]
        if self._audit is not None:
            from mcp_guard.audit import Event

            self._audit.record(
                Event(
                    self.server_name,
                    self.client.name,
                    call.name,
                    word,
                    deny.rule,
                    deny.reason,
                    call.arguments,
                    status=deny.kind,
                    when=time.time(),
                    kind=call.kind,
                )
            )

    # calls that wait --------------------------------------------------------------------------

    def _hold(self, call: CallIn, hold: Hold, snap: Snapshot) -> list[Action]:
        if not call.request:
            # Nobody waits for a notification's answer: there is nothing to hold it for.
            deny = Deny(
                "invalid", "tools/call", "A tools/call sent as a notification cannot wait for a listing or a person."
            )
            self._note_refusal(call, deny, "refused")
            return []
        key = id_key(call.ident)
        waiter = Waiter()
        with self._lock:
            self._held[key] = waiter

        def run(emit: Emit) -> None:
            try:
                emit(self._run_held(call, hold, snap, waiter, emit))
            except Exception as exc:  # never leave a held call unanswered
                self._warn(f"internal error while a call waited: {exc!r}")
                emit(self._settle_held(call, waiter, Refuse(_failed("holding the call", exc)), snap))
            finally:
                with self._lock:
                    if self._held.get(key) is waiter:
                        del self._held[key]

        def overflow() -> list[Action]:
            with self._lock:
                self._held.pop(key, None)
            deny = Deny(
                "busy",
                "workers",
                "The guard is already holding as many calls as it can (waiting for approvals or tool listings); "
                "this one was refused. Retry once the others have been answered.",
            )
            return self._carry_out(call, Refuse(deny), snap, None)

        return [Start(Job(f"{hold.kind} {call.name}", run, overflow))]

    def _run_held(self, call: CallIn, hold: Hold, snap: Snapshot, waiter: Waiter, emit: Emit) -> list[Action]:
        verdict: Verdict = hold
        while isinstance(verdict, Hold):
            if waiter.cancelled:
                return []
            if verdict.kind == "listing":
                problem = self._list_tools(call, snap, waiter, emit)
                if waiter.cancelled:
                    return []
                if problem is not None:
                    deny = Deny(
                        "pin",
                        "pins",
                        f"The guard could not read the server's tool list to check this call ({problem}), so it "
                        "was refused.",
                    )
                    verdict = Refuse(deny)
                    break
                verdict = self.pipeline.judge_call(call, snap, skip=stage_index("pins"))
                if isinstance(verdict, Hold) and verdict.kind == "listing":
                    verdict = Refuse(Deny("pin", "pins", f"Tool {call.name!r} is still not listed by the server."))
            else:
                assert self.desk is not None and verdict.decision is not None  # noqa: S101
                approved = self.desk.ask_blocking(call.for_approval(), verdict.decision, verdict.channel, emit, waiter)
                if waiter.cancelled:
                    return []
                verdict = self.pipeline.after_approval(call, snap, verdict.decision, approved)
        return self._settle_held(call, waiter, verdict, snap)

    def _settle_held(self, call: CallIn, waiter: Waiter, verdict: Verdict, snap: Snapshot) -> list[Action]:
        if waiter.cancelled:
            return []
        key = id_key(call.ident)
        with self._lock:
            if self._held.get(key) is waiter:
                del self._held[key]
        return self._carry_out(call, verdict, snap, None)

    def _list_tools(self, call: CallIn, snap: Snapshot, waiter: Waiter, emit: Emit) -> str | None:
        """Read the server's whole tool list (guard-owned ids, every page); None when done, else why not."""
        integrity = snap.integrity
        if integrity is None:
            return "tool integrity is off"
        tools: list[JSON] = []
        cursor: JSON = None
        for _ in range(100):  # pages; a server looping on its cursor must not hold the call forever
            params: JSONObject = {}
            if call.modern:
                params["_meta"] = _protocol_meta(call.params)
            if cursor is not None:
                params["cursor"] = cursor
            answer = self.ask("upstream", "tools/list", params, emit, _LIST_TIMEOUT_S, waiter)
            if waiter.cancelled:
                return "cancelled"
            result = answer.get("result") if isinstance(answer, dict) else None
            page = result.get("tools") if isinstance(result, dict) else None
            if not isinstance(result, dict) or not isinstance(page, list):
                return f"the server did not list its tools: {str(answer)[:200]}"
            tools.extend(page)
            cursor = result.get("nextCursor")
            if not cursor:
                break
        integrity.listed(tools, complete=True)
        return None

    # hidden tools -----------------------------------------------------------------------------

    def _can_probe(self, modern: bool, snap: Snapshot, kind: str = "tool") -> bool:
        """Whether the server's own unknown-tool answer can be learnt: only when a made-up name is one the
        policy would relay (default allow), so the upstream never sees a call the policy refuses."""
        engine = snap.engine
        no_arguments: JSONObject = {}
        if kind != "tool":
            section = engine.section(kind)
            probe = _probe_name(kind, "x")
            return section is not None and isinstance(section.decide(probe, no_arguments), Allow)
        return engine.default_allow and isinstance(engine.decide(_PROBE_PREFIX + "x", no_arguments), Allow)

    def _hidden_under_default_deny(self, call: CallIn, snap: Snapshot) -> JSONObject:
        """Under ``default: deny`` a tool the policy does not name is refused by the default, whether the
        server has it or not: a hidden tool gets exactly that answer, so hiding it does not tell it exists."""
        return self._refusal(call, snap.engine.default_deny(call.name))

    def _answer_as_unknown(self, call: CallIn, snap: Snapshot) -> list[Action]:
        """Answer a hidden tool's call exactly as this server answers a tool it does not have.

        The first time (per protocol era) the guard asks the server for a made-up tool name with a
        request id of its own, keeps the answer as a template, and puts the hidden name in place of the
        made-up one: "Unknown tool: X" from a Python SDK server, "MCP error -32602: Tool X not found"
        from a TypeScript one. Nothing about the hidden tool reaches the server.
        """
        key = _unknown_key(call)
        template = self._unknown_answers.get(key)
        if template is not None:
            return [ToClient(encode(_from_template(template, call)))]
        fallback: list[Action] = [ToClient(encode(self._unknown_fallback(call)))]
        if not call.can_hold or not self._can_probe(call.modern, snap, call.kind):
            return fallback

        def run(emit: Emit) -> None:
            try:
                probe = _probe_name(call.kind, secrets.token_hex(6))
                field = "uri" if call.kind == "resource" else "name"
                # Nothing of the client's: no progress token, task, input round or arguments of its own.
                dropped = (field, "arguments", "task", "_meta", "requestState", "inputResponses")
                params = {k: v for k, v in call.params.items() if k not in dropped}
                if call.modern:
                    params["_meta"] = _protocol_meta(call.params)
                if _method(call) == "completion/complete":
                    ref = call.params.get("ref")
                    params["ref"] = {**(ref if isinstance(ref, dict) else {}), field: probe}
                else:
                    params[field] = probe
                    if call.kind != "resource":
                        params["arguments"] = {}
                answer = self.ask("upstream", _method(call), params, emit, _LIST_TIMEOUT_S)
                if not isinstance(answer, dict) or not ("result" in answer or "error" in answer):
                    raise ValueError("no answer")
                template = (probe, answer)
                self._unknown_answers[key] = template
                emit([ToClient(encode(_from_template(template, call)))])
            except Exception:  # the server did not say: answer the way the Python SDK does
                emit(fallback)

        return [Start(Job(f"unknown-{call.kind} answer {call.name}", run, lambda: fallback))]

    def _unknown_fallback(self, call: CallIn) -> JSONObject:
        """What the Python SDK's server answers for a tool (prompt, resource) it does not have, when this
        server's own answer is not known."""
        if call.kind == "tool":
            return unknown_tool_answer(call.ident, call.name, self._meta_for(call))
        if _method(call) == "completion/complete":
            return error_answer(call.ident, INVALID_PARAMS, f"Unknown {call.kind}: {call.name}")
        return unknown_request_answer(call.ident, call.kind, call.name)

    # batches ----------------------------------------------------------------------------------

    def _batch(self, line: bytes, messages: list[Message]) -> list[Action]:
        """Judge each element of a JSON-RPC batch (protocol 2025-03-26) on its own.

        Refused elements are answered by the guard at once (one array); the rest go upstream as a
        batch of exactly the judged elements.
        """
        answers: list[JSONObject] = []
        forward: list[JSONObject] = []
        changed = False
        taken: set[Key] = set()
        for m in messages:
            if m.kind == "response":
                if self._client_response(m):
                    forward.append(m.body)
                else:
                    changed = True
                continue
            if m.kind == "notification":
                if m.method == "notifications/cancelled" and not self._cancelled(m):
                    changed = True
                    continue
                if m.method == "tools/call" or (m.method in _JUDGED and self._judged(m.method)):
                    kept = self._batch_call(m, None, answers)
                    if kept is None:
                        changed = True
                        continue
                    forward.append(kept)
                    changed = changed or kept is not m.body
                    continue
                forward.append(m.body)
                continue
            key = id_key(m.id)
            refusal = (
                self._claim(key, m)
                if key not in taken
                else error_answer(m.id, INVALID_REQUEST, f"mcp-guard: request id {m.id!r} appears twice in the batch")
            )
            if refusal is not None:
                answers.append(refusal)
                changed = True
                continue
            taken.add(key)
            if m.method == "initialize":
                self._remember_client(m.params)
            if m.method == "tools/call" or (m.method in _JUDGED and self._judged(m.method)):
                kept = self._batch_call(m, key, answers)
                if kept is None:
                    changed = True
                    continue
                forward.append(kept)
                changed = changed or kept is not m.body
                continue
            with self._lock:
                self._inflight[key] = InFlight(m.method, m.id)
                if m.method == "tools/list" or (m.method in _LISTINGS and self.snapshot.engine.sections):
                    self._list_requests.add(key)
            forward.append(m.body)
        actions: list[Action] = []
        if answers:
            # At once, in an array of the guard's own: servers of protocol 2025-06-18 and later cannot read
            # batches, so waiting to merge into theirs could leave these requests unanswered for ever.
            actions.append(ToClient(encode(answers)))
        if forward:
            actions.append(ToUpstream(line if not changed else encode(forward)))
        return actions

    def _batch_call(self, m: Message, key: Key | None, answers: list[JSONObject]) -> JSONObject | None:
        """A tools/call inside a batch: the message to forward, or None (answered into ``answers``)."""
        call = self._call_in(m, can_hold=False)
        if isinstance(call, dict):
            if key is not None:
                answers.append(call)
            return None
        snap = self.snapshot
        verdict = self.pipeline.judge_call(call, snap)
        if isinstance(verdict, Relay):
            if key is not None:
                with self._lock:
                    self._inflight[key] = InFlight(_method(call), call.ident, verdict.record)
            return verdict.forward if verdict.forward is not None else m.body
        if isinstance(verdict, Refuse):
            self._note_refusal(call, verdict.deny, verdict.word)
            if key is not None:
                if verdict.deny.kind == "hidden":
                    template = self._unknown_answers.get(_unknown_key(call))
                    if call.kind == "tool" and not snap.engine.default_allow:
                        answers.append(self._hidden_under_default_deny(call, snap))
                    elif template is not None:
                        answers.append(_from_template(template, call))
                    else:
                        answers.append(self._unknown_fallback(call))
                else:
                    answers.append(self._refusal(call, verdict.deny))
            return None
        if isinstance(verdict, Reply):
            if key is not None:
                answers.append(verdict.answer)
            return None
        # can_hold=False: the stages never hold a call inside a batch.
        raise AssertionError("a call inside a batch was held")

    # upstream -> client -----------------------------------------------------------------------

    def from_upstream(self, line: bytes) -> list[Action]:
        # The common case, an answer in the Python SDK's layout, without building a Peek.
        head = _RESPONSE_HEAD.match(line)
        if head is not None:
            token: bytes = head.group(1)
            ident: str | int = token[1:-1].decode("utf-8", "replace") if token[:1] == b'"' else int(token)
            return self._response(line, ident)
        msg = peek(line)
        if msg.kind == "invalid":
            if line.strip():
                shown = line[:200].decode("utf-8", "replace").rstrip()
                self._warn(f"the server wrote a line that is not JSON-RPC to stdout (not forwarded): {shown}")
            return []
        if msg.kind == "response":
            return self._response(line, msg.id)
        if msg.kind == "notification" and msg.method == "notifications/tools/list_changed":
            integrity = self.snapshot.integrity
            if integrity is not None:
                integrity.forget_listing()
        elif msg.kind == "notification" and msg.method == "notifications/subscriptions/acknowledged":
            self._listening(line)
        elif msg.kind == "batch" and isinstance(msg.message, list):  # a batch's message is always its list
            return self._upstream_batch(line, msg.message)
        return [ToClient(line)]

    def _response(self, line: bytes, ident: JSON) -> list[Action]:
        """Settle the request this answers; return what to send the client."""
        if self._upstream_ids.owns(ident):
            self._guard_answer(ident, line)
            return []
        if self._client_ids.owns(ident):
            self._warn(f"the server answered {ident!r}, a request the guard sent to the client; dropped")
            return []
        key = id_key(ident)
        checks_results = self.snapshot.engine.results is not None
        if checks_results:
            # The guard routes by the first "id", a client's reader may take another: such an answer
            # could carry a checked call's result past the check as the answer to an unchecked request.
            problem = unreadable_routing(line)
            if problem is not None:
                self._warn(f"the server's answer to {ident!r} could not be read strictly ({problem}); not passed on")
                line = error_frame(ident, SERVER_ERROR, f"mcp-guard: the server's answer could not be read ({problem})")
        with self._lock:
            request = self._inflight.pop(key, None)
            if self._tool_listeners:
                self._tool_listeners.pop(key, None)  # a listen stream ends with its answer
            is_list = bool(self._list_requests) and key in self._list_requests
            if is_list:
                self._list_requests.discard(key)
            held = request is None and key in self._held
        actions: list[Action] = []
        if request is None and self._stopping:
            return []  # the guard answered it already, saying it is stopping: one answer per request
        if request is None and (held or checks_results):
            # An answer to a request the server was not sent (a call still held for approval: ids are
            # easy to guess), or to none at all: nothing checked it, and the client may be waiting.
            self._warn(f"the server answered {ident!r}, a request it was not sent or answered already; dropped")
            return []
        if request is not None:
            if is_list:
                line = (
                    self._filter_listing(line, ident)
                    if request.method == "tools/list"
                    else self._filter_request_listing(line, ident, request.method)
                )
            elif request.method == "server/discover":
                self._remember_server_meta(line)
            elif request.method == "initialize":
                self._remember_version(line)
            if request.method in ("initialize", "server/discover"):
                line = self._pin_instructions(line, ident, request.method)
            if request.method in ("initialize", "server/discover") and self.snapshot.engine.results is not None:
                line = self._screen_instructions(line)
            checked = line
            plan = self.snapshot.engine.results
            if plan is not None and request.method in INSPECTED_METHODS:
                checked = self._inspect(line, ident, request, plan)
            if request.call is not None:
                # The status (audit, refunds) is the server's own answer's: a withheld result was still run.
                wrapped = self._call_outcome(line, request.call)
                checked = wrapped if wrapped is not line else checked
            line = checked
        actions.append(ToClient(line))
        return actions

    def _inspect(self, line: bytes, ident: JSON, request: InFlight, plan: ResultPlan) -> bytes:
        """The answer after the pipeline's result stages (``results`` rules): the same bytes unless changed."""
        snap = self.snapshot
        call = request.call
        tool = call.tool if call is not None and call.kind == "tool" else request.result_of
        if tool is not None:
            rule = snap.engine.rule_for(tool)
            check = plan.for_rule(rule.key if rule is not None else None)
        elif request.method in ("resources/read", "prompts/get", "tasks/result"):
            check = plan.other  # (tasks/result: a task the guard did not see created; all_tools.results)
        else:
            return line
        if check is None:
            return line
        got = inspect_answer(line, ident, request.method or "", tool, check, self.pipeline, snap)
        if got.task is not None and call is not None:
            with self._lock:
                self._tasks[got.task] = call.tool
                if len(self._tasks) > _REFUSED_KEPT:
                    del self._tasks[next(iter(self._tasks))]
        outcome = got.outcome
        if outcome is None or outcome.outcome == "forward":
            return got.line
        self._warn(f"result check: {outcome.summary}")
        with self._lock:
            self.labels |= outcome.labels
        record = audit_record(outcome)
        if call is not None:
            call.inspected = record
            call.labels |= outcome.labels  # acquired with the tool's own once the answer is final
        elif self._audit is not None:
            from mcp_guard.audit import Event

            no_arguments: JSONObject = {}
            self._audit.record(
                Event(
                    self.server_name,
                    self.client.name,
                    tool or request.method or "",
                    "allowed",
                    None,
                    None,
                    no_arguments,
                    status="ok",
                    when=time.time(),
                    result=record,
                )
            )
        return got.line

    def _guard_answer(self, ident: str, line: bytes) -> None:
        """The server's answer to a request the guard sent it: read strictly, or not at all."""
        try:
            message = strict_loads(line)
        except FrameError as exc:
            self._warn(f"the server's answer to the guard's own request could not be read strictly: {exc.message}")
            message = {"jsonrpc": "2.0", "id": ident, "error": {"code": INVALID_REQUEST, "message": exc.message}}
        with self._lock:
            waiter = self._asked.get(ident)
        if waiter is not None:
            waiter.settle(message)

    def _call_outcome(self, line: bytes, call: Call) -> bytes:
        """Audit (and maybe refund) a relayed call from the server's answer, read by parsing it."""
        needs_refund = call.refund is not None and not call.cancelled
        snap = self.snapshot
        inspect = settled_stages_wanted(call, snap)
        if not needs_refund and not call.modern and not call.modern_approval and not inspect:
            # Only the audit log wants the answer's status: a small answer is read by the audit writer, off
            # the relay's path (it costs as much as the rest of the answer's handling), a larger one here.
            # A 2026-07-28 answer is read here: it may open an input round (issued_state, below).
            if self._audit is None:
                return line
            if len(line) <= _DEFERRED_STATUS_LIMIT:
                self._audit_outcome(call, None, line)
                return line
        message: JSON = None
        if len(line) <= _STATUS_PARSE_LIMIT or needs_refund or call.modern_approval or inspect:
            # Read for its status, an input round and the settled stages (whether it failed): a faster parser
            # that reads the same; not for an approval's wrapping, which re-encodes the whole value.
            quick = len(line) > _QUICK_STATUS_FROM and not call.modern_approval
            message = quick_loads_or_none(line) if quick else loads_or_none(line)
        status = (
            answer_status(message)
            if message is not None
            else ("ok" if len(line) > _STATUS_PARSE_LIMIT else "unreadable")
        )
        if inspect and isinstance(message, dict):
            replaced = run_settled_stages(call, message, snap)
            if replaced is not None:
                message = replaced
                line = encode(replaced)
                status = answer_status(message)
        if call.modern_approval and self.desk is not None and isinstance(message, dict):
            line = self.desk.wrap_upstream_state(message, call) or line
        elif status == "ok" and isinstance(message, dict):
            state = issued_state(message)
            if state is not None:
                # The server asks for input: the call goes on in the client's retry, audited once it ends.
                for unfinished in self._rounds.issued(state, call):
                    self._audit_outcome(unfinished, "input_required")
                return line
        self._audit_outcome(call, status)
        return line

    def _audit_outcome(self, call: Call, status: str | None, answer: bytes | None = None) -> None:
        """Refund and audit a relayed call; ``status`` None: the audit writer reads it from ``answer``."""
        if call.refund is not None and status in ("error", "rpc_error") and not call.cancelled:
            try:
                self.judge.limiter.refund(call.refund)
            except StoreUnavailable as exc:
                self._warn(f"could not refund {call.tool!r} to the limit store: {exc}")
        if self._audit is None:
            return
        from mcp_guard.audit import Event

        self._audit.record(
            Event(
                self.server_name,
                self.client.name,
                call.tool,
                call.decision,
                call.rule,
                call.reason,
                call.arguments,
                status=status,
                duration_ms=(time.perf_counter() - call.started) * 1000,
                when=call.when,
                answer=answer,
                result=call.inspected,
                kind=call.kind,
                rounds=call.rounds,
            )
        )

    def _upstream_batch(self, line: bytes, elements: list[JSON]) -> list[Action]:
        out: list[JSON] = []
        merged: list[JSON] = []
        changed = False
        for element in elements:
            msg = classify(element)
            if msg.kind != "response":
                out.append(element)
                continue
            one = encode(element)
            actions = self._response(one, msg.id)
            frames = [a.frame for a in actions if isinstance(a, ToClient)]
            if not frames:
                changed = True
                continue
            first = frames[0]
            if first is not one:
                changed = True
            value: JSON = json.loads(first)
            out.append(value)
            for extra in frames[1:]:
                merged.extend(cast("list[JSON]", json.loads(extra)))  # the guard's own answers: an array
                changed = True
        if not out and not merged:
            return []
        return [ToClient(encode([*out, *merged]) if changed else line)]

    def _filter_listing(self, line: bytes, ident: JSON) -> bytes:
        """A ``tools/list`` answer without hidden tools, and (with pins) without tools that break their pins.

        Read strictly: a listing the guard cannot read the way every client would is not a clean
        listing; where the guard must filter it, the client gets an error in its place.
        """
        snap = self.snapshot
        integrity = snap.integrity
        watches = integrity is not None and integrity.watches_listings
        hides = bool(snap.engine.policy.hide) and not snap.monitor
        plan = snap.engine.results
        screens = plan is not None and plan.wants_listing
        learns = snap.flows is not None and bool(snap.engine.flows)  # tool annotations give flow labels
        if not watches and not hides and not screens and not learns:
            return line
        try:
            message = strict_loads(line)
        except FrameError as exc:
            enforcing = hides or (integrity is not None and integrity.enforces_pins) or screens
            self._warn(f"the server's tool list could not be read strictly ({exc.message})")
            if not enforcing:
                return line
            return error_frame(
                ident,
                SERVER_ERROR,
                f"mcp-guard: the server's tool list could not be checked ({exc.message}), so it was not passed on",
            )
        result = message.get("result") if isinstance(message, dict) else None
        tools = result.get("tools") if isinstance(result, dict) else None
        if not isinstance(result, dict) or not isinstance(tools, list):
            return line
        if learns and snap.flows is not None:
            snap.flows.learn_listing(tools)
        if not watches and not hides and not screens:
            return line
        kept = integrity.listed(tools)[0] if watches and integrity is not None else list(tools)
        if snap.monitor:
            kept = tools
        elif hides:
            engine = snap.engine
            kept = [t for t in kept if not (isinstance(t, dict) and engine.is_hidden(str(t.get("name", ""))))]
        if plan is not None and screens:
            kept = self._screen_listing(kept, plan, snap.monitor)
        if len(kept) == len(tools):
            return line
        result["tools"] = kept
        return encode(message)

    def _screen_listing(self, tools: list[JSON], plan: ResultPlan, monitor: bool) -> list[JSON]:
        """``tool_descriptions``: withhold tools whose definitions carry what a block rule names (and remember
        the listed output schemas for ``validate_output``)."""
        from mcp_guard.inspect.descriptions import screen_tools

        plan.remember_tools(tools)
        check = plan.descriptions
        if check is None:
            return tools
        kept, reports = screen_tools(tools, check)
        blocked = {name for name, report in reports if report.action == "block"}
        for tool in tools:
            name = tool.get("name") if isinstance(tool, dict) else None
            if isinstance(name, str) and name not in blocked:
                plan.withhold(name, None)  # listed clean now: callable again
        for name, report in reports:
            withhold = report.action == "block" and not monitor
            if withhold:
                plan.withhold(name, report.summary)
            verb = "withheld from the tool list" if withhold else "listed"
            if report.action == "block" and monitor:
                verb = "listed (monitor mode; it would be withheld)"
            self._warn(f"tool {name!r} {verb}: its definition contains {report.summary}")
            self._audit_screened(name, "withheld" if withhold else "allowed", report.summary, report.findings)
        return tools if monitor else cast("list[JSON]", kept)

    def _pin_instructions(self, line: bytes, ident: JSON, method: str) -> bytes:
        """With a lock that pins the server's ``instructions``: ones that differ are dropped (enforce) or reported."""
        integrity = self.snapshot.integrity
        if integrity is None or not integrity.pins_instructions:
            return line
        monitor = self.snapshot.monitor
        try:
            message = strict_loads(line)
        except FrameError as exc:
            self._warn(f"the server's {method} answer could not be read strictly ({exc.message})")
            if monitor or not integrity.enforces_pins:
                return line
            return error_frame(
                ident,
                SERVER_ERROR,
                f"mcp-guard: the server's {method} answer could not be checked against its pinned instructions "
                f"({exc.message}), so it was not passed on",
            )
        result = message.get("result") if isinstance(message, dict) else None
        if not isinstance(result, dict):
            return line  # an error answer carries no instructions
        verdict = integrity.check_instructions(result.get("instructions"), monitor)
        if verdict is None:
            return line
        finding, withhold = verdict
        if self._audit is not None:
            from mcp_guard.audit import Event

            no_arguments: JSONObject = {}
            decision = "withheld" if withhold else "allowed"
            self._audit.record(
                Event(
                    self.server_name,
                    self.client.name,
                    "(instructions)",
                    decision,
                    "pins",
                    finding.summary,
                    no_arguments,
                    status="listed",
                    when=time.time(),
                )
            )
        if not withhold:
            return line
        del result["instructions"]
        return encode(message)

    def _screen_instructions(self, line: bytes) -> bytes:
        """``tool_descriptions`` on the server's ``instructions``: dropped when a block rule finds something."""
        plan = self.snapshot.engine.results
        check = plan.descriptions if plan is not None else None
        if check is None or not check.may_match(line):
            return line
        from mcp_guard.inspect.descriptions import screen

        try:
            message = strict_loads(line)
        except FrameError:
            return line  # the client's own reader decides; the instructions were not checked
        result = message.get("result") if isinstance(message, dict) else None
        text = result.get("instructions") if isinstance(result, dict) else None
        if not isinstance(result, dict) or not isinstance(text, str):
            return line
        found = screen(text, check, "the server's instructions")
        if found is None:
            return line
        withhold = found.action == "block" and not self.snapshot.monitor
        verb = "dropped" if withhold else "passed on"
        self._warn(f"the server's instructions were {verb}: they contain {found.summary}")
        self._audit_screened("(instructions)", "withheld" if withhold else "allowed", found.summary, found.findings)
        if not withhold:
            return line
        del result["instructions"]
        return encode(message)

    def _audit_screened(self, what: str, decision: str, summary: str, findings: list[dict[str, object]]) -> None:
        if self._audit is None:
            return
        from mcp_guard.answers import findings_json
        from mcp_guard.audit import Event

        no_arguments: JSONObject = {}
        record: JSONObject = {"outcome": "block" if decision == "withheld" else "warn"}
        record["findings"] = findings_json(findings)
        self._audit.record(
            Event(
                self.server_name,
                self.client.name,
                what,
                decision,
                "tool_descriptions",
                summary,
                no_arguments,
                status="listed",
                when=time.time(),
                result=record,
            )
        )

    def _filter_request_listing(self, line: bytes, ident: JSON, method: str | None) -> bytes:
        """A prompts or resources listing without what the policy hides (as tools/list, read strictly)."""
        from mcp_guard.wire.tools_list import LISTED

        snap = self.snapshot
        field, key, kind = LISTED[method or ""]
        section = snap.engine.section(kind)
        if section is None or not section.hides or snap.monitor:
            return line
        try:
            message = strict_loads(line)
        except FrameError as exc:
            self._warn(f"the server's {method} answer could not be read strictly ({exc.message})")
            return error_frame(
                ident,
                SERVER_ERROR,
                f"mcp-guard: the server's {method} answer could not be checked ({exc.message}), so it was not "
                "passed on",
            )
        from mcp_guard.wire.tools_list import filter_entries

        return filter_entries(message, field, key, section.is_hidden) or line

    def _listening(self, line: bytes) -> None:
        """The server acknowledged a ``subscriptions/listen`` stream: remember it if it carries tool list changes."""
        message = loads_or_none(line)
        params = message.get("params") if isinstance(message, dict) else None
        honored = params.get("notifications") if isinstance(params, dict) else None
        meta = params.get("_meta") if isinstance(params, dict) else None
        stream = meta.get(SUBSCRIPTION_ID_KEY) if isinstance(meta, dict) else None
        if not isinstance(honored, dict) or honored.get("toolsListChanged") is not True:
            return
        if not isinstance(stream, (str, int)) or isinstance(stream, bool):
            return
        key = id_key(stream)
        with self._lock:
            request = self._inflight.get(key)
            if request is not None and request.method == "subscriptions/listen":
                self._tool_listeners[key] = stream

    def _remember_version(self, line: bytes) -> None:
        """The protocol version the server chose in the handshake (it decides whether batches exist)."""
        message = loads_or_none(line)
        result = message.get("result") if isinstance(message, dict) else None
        version = result.get("protocolVersion") if isinstance(result, dict) else None
        if isinstance(version, str):
            self._version = version
        capabilities = result.get("capabilities") if isinstance(result, dict) else None
        tools = capabilities.get("tools") if isinstance(capabilities, dict) else None
        self._announces_tool_changes = isinstance(tools, dict) and tools.get("listChanged") is True

    def _remember_server_meta(self, line: bytes) -> None:
        """Keep the 2026-07-28 ``_meta`` server identity, so the guard's own answers carry it like the server's."""
        message = loads_or_none(line)
        result = message.get("result") if isinstance(message, dict) else None
        meta = result.get("_meta") if isinstance(result, dict) else None
        if isinstance(meta, dict) and SERVER_INFO_KEY in meta:
            with self._lock:
                self._server_meta = {SERVER_INFO_KEY: meta[SERVER_INFO_KEY]}

    # endings ----------------------------------------------------------------------------------

    def upstream_exited(self, description: str) -> list[Action]:
        """Answer every request the upstream never answered, so no client call hangs."""
        return self._answer_all(f"mcp-guard: the MCP server {description} before answering this request")

    def stopping(self, why: str) -> list[Action]:
        """The guard is shutting down: answer every waiting request now, saying so."""
        self._stopping = True
        return self._answer_all(f"mcp-guard: the guard is stopping ({why}); this request was not answered")

    def _answer_all(self, text: str) -> list[Action]:
        with self._lock:
            pending = list(self._inflight.values())
            self._inflight.clear()
            held = list(self._held.items())
            self._held.clear()
            asked = list(self._asked.values())
        for _, waiter in held:
            waiter.cancel()
        for waiter in asked:
            waiter.cancel()
        actions: list[Action] = []
        for entry in pending:
            if entry.call is not None:
                self._audit_outcome(entry.call, "server_exited" if "server" in text else "guard_stopped")
            actions.append(ToClient(error_frame(entry.ident, SERVER_ERROR, text)))
        for unfinished in self._rounds.drain():  # calls whose client never sent the retry the server asked for
            self._audit_outcome(unfinished, "input_required")
        for key, _ in held:
            actions.append(ToClient(error_frame(key[1], SERVER_ERROR, text)))
        return actions


# Requests judged when the policy has their section, by kind; and the listings a section's hide filters.
_JUDGED: dict[str, Kind] = {"prompts/get": "prompt", "resources/read": "resource", "resources/subscribe": "resource"}
_LISTINGS = frozenset(("prompts/list", "resources/list", "resources/templates/list"))


def _unknown_key(call: CallIn) -> bool | tuple[str, bool]:
    # Per method: a server answers an unknown URI's resources/subscribe otherwise than its resources/read.
    return call.modern if call.kind == "tool" else (f"{_method(call)} {call.kind}", call.modern)


def _probe_name(kind: str, token: str) -> str:
    """A made-up name no server has: a tool or prompt name, or a URI of a scheme of the guard's own."""
    return f"mcp-guard-unknown-resource://{token}" if kind == "resource" else _PROBE_PREFIX + token


def _method(call: CallIn) -> str:
    method = call.message.get("method")
    return method if isinstance(method, str) else "tools/call"


def _from_template(template: tuple[str, JSONObject], call: CallIn) -> JSONObject:
    probe, answer = template
    reply = {k.replace(probe, call.name): _replace_strings(v, probe, call.name) for k, v in answer.items()}
    reply["id"] = call.ident
    return reply


_PROTOCOL_META_KEYS = (
    "io.modelcontextprotocol/protocolVersion",
    "io.modelcontextprotocol/clientInfo",
    "io.modelcontextprotocol/clientCapabilities",
)


def _protocol_meta(params: JSONObject) -> JSONObject:
    """The 2026-07-28 envelope of a client's request, for a request of the guard's own: the protocol's keys
    only, never the client's (a progress token would have the server report the guard's work to the client)."""
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        return {}
    return {k: meta[k] for k in _PROTOCOL_META_KEYS if k in meta}


_LIST_CHANGED_METHOD = "notifications/tools/list_changed"
_LIST_CHANGED = b'{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n'
SUBSCRIPTION_ID_KEY = "io.modelcontextprotocol/subscriptionId"


def _hidden_in_listing(snap: Snapshot) -> tuple[str, ...]:
    """What a snapshot removes from ``tools/list`` (monitor mode removes nothing)."""
    return () if snap.monitor else tuple(snap.engine.policy.hide)


def _failed(what: str, exc: BaseException) -> Deny:
    return Deny("invalid", "mcp-guard", f"The guard failed while {what} ({exc!r}), so the call was refused.")


_RESPONSE_HEAD = re.compile(rb'\{"jsonrpc":"2\.0","id":(-?\d+|"[^"\\]*"),"(?:result|error)":')
_SURROGATE = re.compile("[\ud800-\udfff]")
_PROBE_PREFIX = "mcp-guard-unknown-tool-"


def _replace_strings(value: JSON, old: str, new: str) -> JSON:
    """``value`` with ``old`` replaced by ``new`` in every string (keys included)."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [_replace_strings(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k.replace(old, new): _replace_strings(v, old, new) for k, v in value.items()}
    return value
