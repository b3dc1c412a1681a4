"""The approval desk: how a call that needs a person's approval is asked about, held and settled.

A mixin of :class:`~mcp_guard.session.Session`: it works on the session's wire (writers,
in-flight table, guard-owned request ids) and hands every refusal to the session's
``_refuse`` so approvals are answered, remembered and audited like any other decision.
The channels themselves are in :mod:`mcp_guard.approval.flow` and its siblings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcp_guard.approval.flow import (
    APPROVAL_SCHEMA,
    INPUT_KEY,
    STATE_PREFIX,
    ApprovalSettings,
    Held,
    approval_message,
    elicit_outcome,
)
from mcp_guard.calls import HELD, Call
from mcp_guard.judge import Judge
from mcp_guard.policy.decision import Approve, Deny
from mcp_guard.wire.jsonrpc import encode, id_key, is_modern, loads_or_none
from mcp_guard.wire.peek import Peek

CLIENT_CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"


@dataclass(slots=True)
class PendingCall:
    """A ``tools/call`` that needs a person's approval, as the client sent it."""

    message: dict[str, Any]
    ident: Any
    name: str
    arguments: dict[str, Any]
    params: dict[str, Any]
    decision: Approve

    @property
    def modern(self) -> bool:
        """Whether it came in the 2026-07-28 era (its answers need ``resultType``)."""
        return is_modern(self.params)


class ApprovalDesk:
    """Approval handling for a session; the attributes below are the session's."""

    judge: Judge
    _approvals: ApprovalSettings | None
    _lock: threading.Lock
    _held: dict[tuple[bool, Any], Held]
    _guard_requests: dict[str, Held]
    _workers: set[threading.Thread]
    _server_name: str
    _server_meta: dict[str, Any]
    _client_elicitation: bool
    _client_version: str
    _to_client: Callable[[bytes], None]
    _to_upstream: Callable[[bytes], None]
    _warn: Callable[[str], None]

    def _refuse(
        self,
        ident: Any,
        name: str,
        arguments: dict[str, Any],
        decision: Deny,
        modern: bool,
        word: str = "refused",
    ) -> dict[str, Any]:
        raise NotImplementedError  # the session's

    def _track_request(self, msg: Peek, call: Call | None = None) -> None:
        raise NotImplementedError  # the session's

    def _refuse_pending(self, call: PendingCall, deny: Deny, word: str = "refused") -> dict[str, Any]:
        return self._refuse(call.ident, call.name, call.arguments, deny, call.modern, word)

    def _approve(self, call: PendingCall, allow_hold: bool = True) -> tuple[dict[str, Any] | None, Call | None]:
        """A call a person must approve: a standing grant, or ask through the configured channels."""
        settings = self._approvals
        if settings is None:
            return self._refuse_pending(call, _no_channel(call.decision, "none is configured")), None
        state = call.params.get("requestState")
        if call.modern and isinstance(state, str) and state.startswith(STATE_PREFIX):
            return self._approval_retry(call, state)
        if settings.store is not None:
            try:
                grant = settings.store.consume_grant(self._server_name, call.name, call.arguments)
            except Exception as exc:  # a broken store must not break the session: ask another way
                self._warn(f"approval store: {exc}")
                grant = None
            if grant is not None:
                return self._approved(call, "an earlier approval")
        return self._ask(call, 0, allow_hold)

    def _approved(self, call: PendingCall, via: str) -> tuple[dict[str, Any] | None, Call | None]:
        settled = self.judge.settle(call.decision)
        if isinstance(settled, Deny):
            return self._refuse_pending(call, settled), None
        record = Call(
            call.name,
            call.decision.rule,
            f"approved via {via}",
            "approved",
            call.arguments,
            time.time(),
            time.perf_counter(),
        )
        record.refund = settled.receipt.refundable() if settled.receipt is not None else None
        record.modern_approval = call.modern
        return None, record

    def _ask(self, call: PendingCall, start: int, allow_hold: bool) -> tuple[dict[str, Any] | None, Call | None]:
        """Walk the channels from ``start`` on the pump thread until one answers now or must hold the call."""
        settings = self._approvals
        assert settings is not None  # noqa: S101
        tried: list[str] = []
        for index in range(start, len(settings.channels)):
            channel = settings.channels[index]
            if channel == "client":
                if call.modern:
                    if _declares_elicitation(call.params):
                        return self._input_required(call), None
                    tried.append("client (this client cannot show questions)")
                    continue
                if not self._client_elicitation:
                    tried.append("client (this client cannot show questions)")
                    continue
            elif channel == "command" and not settings.command:
                tried.append("command (no --approval-command given)")
                continue
            elif channel == "async":
                return self._async_refusal(call), None
            if not allow_hold:
                tried.append(f"{channel} (not inside a batch)")
                continue
            self._hold(call, index)
            return HELD, None
        return self._refuse_pending(call, _no_channel(call.decision, "; ".join(tried) or "none")), None

    def _hold(self, call: PendingCall, index: int) -> None:
        held = Held(guard_id="")
        with self._lock:
            self._held[id_key(call.ident)] = held
        worker = threading.Thread(
            target=self._ask_blocking,
            args=(held, call, index),
            name=f"mcp-guard approval {call.name}",
            daemon=True,
        )
        self._workers.add(worker)
        worker.start()

    def _ask_blocking(self, held: Held, call: PendingCall, index: int) -> None:
        """A held call's channels, in its own thread: each waits at most the approval timeout."""
        settings = self._approvals
        assert settings is not None  # noqa: S101
        try:
            for channel in settings.channels[index:]:
                if held.cancelled:
                    return
                if channel == "async":
                    self._to_client(encode(self._async_refusal(call)))
                    return
                outcome = self._ask_channel(channel, held, call)
                if held.cancelled:
                    return
                if outcome == "approved":
                    answer, record = self._approved(call, f"the {channel} channel")
                    if answer is not None:
                        self._to_client(encode(answer))
                        return
                    if channel == "client":  # the other channels recorded their answer in the store already
                        self._remember_approval(call, channel)
                    self._track_request(Peek("request", call.ident, "tools/call"), record)
                    self._to_upstream(encode(call.message))
                    return
                if outcome in ("declined", "cancelled"):
                    how = "declined" if outcome == "declined" else "dismissed the question without answering"
                    deny = Deny(
                        "approval_required",
                        call.decision.rule,
                        f"{call.decision.reason} A person {how} this call (asked through the {channel} channel), "
                        "so it was refused. Do not retry it unchanged.",
                    )
                    self._to_client(encode(self._refuse_pending(call, deny, "declined")))
                    return
                self._warn(f"approval through the {channel} channel: {outcome}; trying the next channel")
            deny = _no_channel(call.decision, "no channel answered in time")
            self._to_client(encode(self._refuse_pending(call, deny, "declined")))
        except Exception as exc:  # never leave a held call unanswered
            self._warn(f"internal error while asking for approval: {exc!r}")
            deny = _no_channel(call.decision, f"an internal error ({exc})")
            self._to_client(encode(self._refuse_pending(call, deny)))
        finally:
            with self._lock:
                self._held.pop(id_key(call.ident), None)
            self._workers.discard(threading.current_thread())

    def _ask_channel(self, channel: str, held: Held, call: PendingCall) -> str:
        name, arguments, decision = call.name, call.arguments, call.decision
        settings = self._approvals
        assert settings is not None  # noqa: S101
        if channel == "client":
            guard_id = settings.ids.new()
            held.guard_id = guard_id
            held.event.clear()
            params: dict[str, Any] = {
                "message": approval_message(self._server_name, name, arguments, decision),
                "requestedSchema": APPROVAL_SCHEMA,
            }
            if self._client_version >= "2025-11-25":
                params["mode"] = "form"
            with self._lock:
                self._guard_requests[guard_id] = held
            self._to_client(
                encode({"jsonrpc": "2.0", "id": guard_id, "method": "elicitation/create", "params": params})
            )
            answered = held.event.wait(settings.timeout_s)
            with self._lock:
                self._guard_requests.pop(guard_id, None)
            if held.cancelled or not answered:
                # Take the question back from the client: nobody is waiting for its answer any more.
                self._to_client(
                    encode(
                        {
                            "jsonrpc": "2.0",
                            "method": "notifications/cancelled",
                            "params": {"requestId": guard_id, "reason": "mcp-guard stopped waiting for an approval"},
                        }
                    )
                )
                return "cancelled" if held.cancelled else "timeout"
            answer = held.answer
            if isinstance(answer, dict) and "error" in answer:
                return "unavailable"
            return elicit_outcome(answer.get("result") if isinstance(answer, dict) else None)
        # The stored request: its id is the one the person sees, and mcp-guard approve/deny work on it too.
        from mcp_guard.approval.store import ApprovalDenied

        request: Any
        if settings.store is not None:
            try:
                request = settings.store.pending_for(self._server_name, name, arguments, decision.rule, decision.reason)
            except ApprovalDenied:
                return "declined"
            except Exception as exc:
                self._warn(f"approval store: {exc}")
                request = self._approval_request(call)
        else:
            request = self._approval_request(call)
        if channel == "command":
            from mcp_guard.approval.command import ask_command

            outcome = str(ask_command(str(settings.command), request, settings.timeout_s, warn=self._warn))
        elif channel == "tty":
            from mcp_guard.approval.tty import ask_tty

            outcome = str(ask_tty(request, settings.timeout_s, settings.tty_path))
        else:
            return "unavailable"
        if outcome in ("approved", "declined") and settings.store is not None and request.id:
            try:
                # Recorded in the store: a "no" refuses the retry; a "yes" is used now (and remembered if asked).
                settings.store.settle(request, outcome == "approved", by=channel, remember_s=decision.remember_s)
            except Exception as exc:
                self._warn(f"approval store: could not record the answer: {exc}")
        return outcome

    def _approval_request(self, call: PendingCall) -> Any:
        name, arguments, decision = call.name, call.arguments, call.decision
        from mcp_guard.approval.request import ApprovalRequest, new_request_id
        from mcp_guard.audit import arguments_sha256

        settings = self._approvals
        now = time.time()
        timeout = settings.timeout_s if settings is not None else 45.0
        return ApprovalRequest(
            new_request_id(),
            self._server_name,
            name,
            dict(arguments),
            arguments_sha256(arguments),
            decision.rule,
            decision.reason,
            now,
            now + timeout,
        )

    def _remember_approval(self, call: PendingCall, channel: str) -> None:
        name, arguments, decision = call.name, call.arguments, call.decision
        settings = self._approvals
        if settings is None or settings.store is None or not decision.remember_s:
            return
        try:
            settings.store.remember(self._server_name, name, arguments, decision.remember_s, f"{channel} channel")
        except Exception as exc:
            self._warn(f"approval store: could not remember an approval: {exc}")

    def _async_refusal(self, call: PendingCall) -> dict[str, Any]:
        ident, name, arguments, decision, modern = call.ident, call.name, call.arguments, call.decision, call.modern
        settings = self._approvals
        assert settings is not None  # noqa: S101
        if settings.store is None:
            return self._refuse(ident, name, arguments, _no_channel(decision, "async (no approval store)"), modern)
        from mcp_guard.approval.store import ApprovalDenied

        try:
            request = settings.store.pending_for(self._server_name, name, arguments, decision.rule, decision.reason)
        except ApprovalDenied as denied:
            deny = Deny(
                "approval_required",
                decision.rule,
                f"{decision.reason} {denied}",
                {"approval_id": denied.request.id, "approval": "denied"},
            )
            return self._refuse(ident, name, arguments, deny, modern, "declined")
        except Exception as exc:
            detail = f"async (the approval store failed: {exc})"
            return self._refuse(ident, name, arguments, _no_channel(decision, detail), modern)
        minutes = max(1, round((request.expires - time.time()) / 60))
        deny = Deny(
            "approval_required",
            decision.rule,
            f"{decision.reason} This call needs a person's approval before it can run. Ask the user to approve it "
            f"by running:  mcp-guard approve {request.id}  (approval id {request.id}, valid for about {minutes} "
            "minutes). Once they have, retry exactly the same call (same tool and arguments) and it will go "
            "through. Do not change the arguments to get around this.",
            {"approval_id": request.id, "approval": "pending", "approve_command": f"mcp-guard approve {request.id}"},
        )
        return self._refuse(ident, name, arguments, deny, modern)

    def _input_required(self, call: PendingCall) -> dict[str, Any]:
        ident, name, arguments, decision = call.ident, call.name, call.arguments, call.decision
        """2026-07-28: ask through the client's own input round instead of a server-to-client request."""
        settings = self._approvals
        assert settings is not None  # noqa: S101
        with self._lock:
            server_meta = dict(self._server_meta)
        result: dict[str, Any] = {
            "resultType": "input_required",
            "inputRequests": {
                INPUT_KEY: {
                    "method": "elicitation/create",
                    "params": {
                        "mode": "form",
                        "message": approval_message(self._server_name, name, arguments, decision),
                        "requestedSchema": APPROVAL_SCHEMA,
                    },
                }
            },
            "requestState": settings.signer.issue(name, arguments, approved=False),
        }
        if server_meta:
            result["_meta"] = server_meta
        return {"jsonrpc": "2.0", "id": ident, "result": result}

    def _approval_retry(self, call: PendingCall, state: str) -> tuple[dict[str, Any] | None, Call | None]:
        """A 2026-07-28 retry carrying the guard's state: verify it, strip the guard's fields, relay or refuse."""
        message, ident, name, arguments, params = call.message, call.ident, call.name, call.arguments, call.params
        decision = call.decision
        settings = self._approvals
        assert settings is not None  # noqa: S101
        body, why = settings.signer.redeem(state, name, arguments)
        if body is None:
            deny = Deny(
                "approval_required",
                decision.rule,
                f"{decision.reason} The approval state sent with this call is not valid ({why}), so it was refused.",
            )
            return self._refuse(ident, name, arguments, deny, True), None
        stripped = dict(params)
        inner = body.get("i")
        if isinstance(inner, str):
            stripped["requestState"] = inner
        else:
            stripped.pop("requestState", None)
        responses = params.get("inputResponses")
        ours = None
        if isinstance(responses, dict) and INPUT_KEY in responses:
            ours = responses[INPUT_KEY]
            rest = {k: v for k, v in responses.items() if k != INPUT_KEY}
            if rest:
                stripped["inputResponses"] = rest
            else:
                stripped.pop("inputResponses", None)
        forward = {**message, "params": stripped}
        if body.get("a") is True:
            # Approved earlier; this round answers the server's own questions. It was counted then.
            record = Call(
                name, decision.rule, "approved earlier", "approved", arguments, time.time(), time.perf_counter()
            )
            record.modern_approval = True
            self._track_request(Peek("request", ident, "tools/call"), record)
            self._to_upstream(encode(forward))
            return HELD, None
        outcome = elicit_outcome(ours)
        if outcome != "approved":
            how = "declined" if outcome == "declined" else "dismissed the question without answering"
            deny = Deny(
                "approval_required",
                decision.rule,
                f"{decision.reason} A person {how} this call, so it was refused. Do not retry it unchanged.",
            )
            return self._refuse(ident, name, arguments, deny, True, "declined"), None
        answer, approved = self._approved(call, "the client")
        if answer is not None:
            return answer, None
        self._remember_approval(call, "client")
        self._track_request(Peek("request", ident, "tools/call"), approved)
        self._to_upstream(encode(forward))
        return HELD, None

    def _wrap_upstream_state(self, line: bytes, call: Call) -> bytes:
        """An approved call's server asks for input: nest its state in the guard's, so the retry is not re-asked."""
        settings = self._approvals
        message = loads_or_none(line)
        result = message.get("result") if isinstance(message, dict) else None
        if settings is None or not isinstance(result, dict) or result.get("resultType") != "input_required":
            return line
        inner = result.get("requestState")
        result["requestState"] = settings.signer.issue(
            call.tool, call.arguments, approved=True, inner=inner if isinstance(inner, str) else None
        )
        return encode(message)


def _declares_elicitation(params: dict[str, Any]) -> bool:
    meta = params.get("_meta")
    capabilities = meta.get(CLIENT_CAPABILITIES_KEY) if isinstance(meta, dict) else None
    return isinstance(capabilities, dict) and isinstance(capabilities.get("elicitation"), dict)


def _no_channel(decision: Approve, detail: str) -> Deny:
    return Deny(
        "approval_required",
        decision.rule,
        f"{decision.reason} This call needs a person's approval and none could be asked ({detail}), so it was "
        "refused. To enable approvals, run the guard with --approval client,async (the default) or configure "
        "--approval-command; see the README's approval section.",
    )
