"""The approval desk: how a call that needs a person's approval is asked about, held and settled.

It is the pipeline's approval stage (:meth:`ApprovalDesk.consider`) and the body of a held call's
job (:meth:`ApprovalDesk.ask_blocking`). It reaches the wire only through a narrow
:class:`DeskPort` (the session): ask the client something and wait, warn, the server's identity.
The channels themselves are in :mod:`mcp_guard.approval.flow` and its siblings.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from mcp_guard.actions import Emit
from mcp_guard.approval.flow import (
    APPROVAL_SCHEMA,
    INPUT_KEY,
    STATE_PREFIX,
    ApprovalSettings,
    approval_message,
    elicit_outcome,
)
from mcp_guard.calls import Call, Waiter
from mcp_guard.pipeline import Approved, CallIn, Hold, Refuse, Relay, Reply, Verdict, new_record, no_channel
from mcp_guard.policy.decision import Approve, Deny
from mcp_guard.wire.json_types import JSON, JSONObject

if TYPE_CHECKING:
    from mcp_guard.approval.request import ApprovalRequest
    from mcp_guard.approval.store import Grant

CLIENT_CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"


class ClientFacts(Protocol):
    elicitation: bool
    version: str


class DeskPort(Protocol):
    """What the desk needs from the session."""

    server_name: str
    server_identity: str

    @property
    def client(self) -> ClientFacts: ...

    def server_meta(self) -> JSONObject: ...

    def warn(self, message: str) -> None: ...

    def ask(
        self, side: str, method: str, params: JSONObject, emit: Emit, timeout_s: float, held: Waiter | None = None
    ) -> JSON: ...


class StorePort(Protocol):
    """What the desk uses of the approval store (an ``ApprovalStore``, or the lazy one that opens it)."""

    def consume_grant(
        self, server: str, tool: str, arguments: JSONObject, *, identity: str | None = None
    ) -> Grant | None: ...

    def pending_for(
        self, server: str, tool: str, arguments: JSONObject, rule: str, reason: str, *, identity: str | None = None
    ) -> ApprovalRequest: ...

    def remember(
        self, server: str, tool: str, arguments: JSONObject, seconds: float, source: str, *, identity: str | None = None
    ) -> Grant: ...

    def settle(
        self, request: ApprovalRequest, approved: bool, *, by: str, remember_s: float | None = None
    ) -> Grant | None: ...


class ApprovalDesk:
    def __init__(self, port: DeskPort, settings: ApprovalSettings) -> None:
        self._port = port
        self.settings = settings

    @property
    def _store(self) -> StorePort | None:
        # The settings hold it untyped (the lazy store forwards by __getattr__): typed here, where it is read.
        store: StorePort | None = self.settings.store
        return store

    # the pipeline's approval stage ------------------------------------------------------------

    def consider(self, call: CallIn, decision: Approve) -> Verdict | Approved:
        """A standing grant, an answered 2026-07-28 question, or which channel to ask (now or held)."""
        state = call.params.get("requestState")
        if call.modern and isinstance(state, str) and state.startswith(STATE_PREFIX):
            return self._approval_retry(call, decision, state)
        store = self._store
        if store is not None:
            try:
                grant = store.consume_grant(
                    self._port.server_name, call.name, call.arguments, identity=self._port.server_identity
                )
            except Exception as exc:  # a broken store must not break the session: ask another way
                self._port.warn(f"approval store: {exc}")
                grant = None
            if grant is not None:
                return Approved("an earlier approval")
        return self._first_channel(call, decision)

    def _first_channel(self, call: CallIn, decision: Approve) -> Verdict:
        tried: list[str] = []
        for index, channel in enumerate(self.settings.channels):
            if channel == "client":
                if call.modern:
                    if _declares_elicitation(call.params):
                        return Reply(self._input_required(call, decision))
                    tried.append("client (this client cannot show questions)")
                    continue
                if not self._port.client.elicitation:
                    tried.append("client (this client cannot show questions)")
                    continue
            elif channel == "command" and not self.settings.command:
                tried.append("command (no --approval-command given)")
                continue
            elif channel == "async":
                return self._async_refusal(call, decision)
            if not call.can_hold:
                tried.append(f"{channel} (not inside a batch)")
                continue
            return Hold("approval", decision, index)
        return Refuse(no_channel(decision, "; ".join(tried) or "none"))

    # a held call, on a worker -----------------------------------------------------------------

    def ask_blocking(self, call: CallIn, decision: Approve, start: int, emit: Emit, held: Waiter) -> Verdict | Approved:
        """Walk the channels from ``start``; each waits at most the approval timeout."""
        for channel in self.settings.channels[start:]:
            if held.cancelled:
                return Refuse(no_channel(decision, "the client cancelled the call"))
            if channel == "async":
                return self._async_refusal(call, decision)
            outcome = self._ask_channel(channel, call, decision, emit, held)
            if held.cancelled:
                return Refuse(no_channel(decision, "the client cancelled the call"))
            if outcome == "approved":
                if channel == "client":  # the other channels recorded their answer in the store already
                    self._remember(call, decision, channel)
                return Approved(f"the {channel} channel")
            if outcome in ("declined", "cancelled"):
                how = "declined" if outcome == "declined" else "dismissed the question without answering"
                deny = Deny(
                    "approval_required",
                    decision.rule,
                    f"{decision.reason} A person {how} this call (asked through the {channel} channel), "
                    "so it was refused. Do not retry it unchanged.",
                )
                return Refuse(deny, "declined")
            self._port.warn(f"approval through the {channel} channel: {outcome}; trying the next channel")
        return Refuse(no_channel(decision, "no channel answered in time"), "declined")

    def _ask_channel(self, channel: str, call: CallIn, decision: Approve, emit: Emit, held: Waiter) -> str:
        settings = self.settings
        if channel == "client":
            params: JSONObject = {
                "message": approval_message(self._port.server_name, call.name, call.arguments, decision),
                "requestedSchema": APPROVAL_SCHEMA,
            }
            if self._port.client.version >= "2025-11-25":
                params["mode"] = "form"
            answer = self._port.ask("client", "elicitation/create", params, emit, settings.timeout_s, held)
            if held.cancelled:
                return "cancelled"
            if answer is None:
                return "timeout"
            if isinstance(answer, dict) and "error" in answer:
                return "unavailable"
            return elicit_outcome(answer.get("result") if isinstance(answer, dict) else None)
        # The stored request: its id is the one the person sees, and mcp-guard approve/deny work on it too.
        from mcp_guard.approval.store import ApprovalDenied

        request: ApprovalRequest
        store = self._store
        if store is not None:
            try:
                request = self._pending(store, call, decision)
            except ApprovalDenied:
                return "declined"
            except Exception as exc:
                self._port.warn(f"approval store: {exc}")
                request = self._approval_request(call, decision)
        else:
            request = self._approval_request(call, decision)
        if channel == "command":
            from mcp_guard.approval.command import ask_command

            outcome = str(ask_command(str(settings.command), request, settings.timeout_s, warn=self._port.warn))
        elif channel == "tty":
            from mcp_guard.approval.tty import ask_tty

            outcome = str(ask_tty(request, settings.timeout_s, settings.tty_path))
        else:
            return "unavailable"
        if outcome in ("approved", "declined") and store is not None and request.id:
            try:
                # Recorded in the store: a "no" refuses the retry; a "yes" is used now (and remembered if asked).
                store.settle(request, outcome == "approved", by=channel, remember_s=decision.remember_s)
            except Exception as exc:
                self._port.warn(f"approval store: could not record the answer: {exc}")
        return outcome

    def _pending(self, store: StorePort, call: CallIn, decision: Approve) -> ApprovalRequest:
        """The stored request for this call (raises ApprovalDenied when a person already said no)."""
        return store.pending_for(
            self._port.server_name,
            call.name,
            call.arguments,
            decision.rule,
            decision.reason,
            identity=self._port.server_identity,
        )

    def _approval_request(self, call: CallIn, decision: Approve) -> ApprovalRequest:
        from mcp_guard.approval.request import ApprovalRequest, new_request_id
        from mcp_guard.audit import arguments_sha256

        now = time.time()
        arguments: JSONObject = dict(call.arguments)  # the request's own copy
        return ApprovalRequest(
            new_request_id(),
            self._port.server_name,
            call.name,
            arguments,
            arguments_sha256(call.arguments),
            decision.rule,
            decision.reason,
            now,
            now + self.settings.timeout_s,
            server_identity=self._port.server_identity,
        )

    def _remember(self, call: CallIn, decision: Approve, channel: str) -> None:
        store = self._store
        if store is None or not decision.remember_s:
            return
        try:
            store.remember(
                self._port.server_name,
                call.name,
                call.arguments,
                decision.remember_s,
                f"{channel} channel",
                identity=self._port.server_identity,
            )
        except Exception as exc:
            self._port.warn(f"approval store: could not remember an approval: {exc}")

    def _async_refusal(self, call: CallIn, decision: Approve) -> Refuse:
        store = self._store
        if store is None:
            return Refuse(no_channel(decision, "async (no approval store)"))
        from mcp_guard.approval.store import ApprovalDenied

        try:
            request = self._pending(store, call, decision)
        except ApprovalDenied as denied:
            deny = Deny(
                "approval_required",
                decision.rule,
                f"{decision.reason} {denied}",
                {"approval_id": denied.request.id, "approval": "denied"},
            )
            return Refuse(deny, "declined")
        except Exception as exc:
            return Refuse(no_channel(decision, f"async (the approval store failed: {exc})"))
        minutes = max(1, round((request.expires - time.time()) / 60))
        deny = Deny(
            "approval_required",
            decision.rule,
            f"{decision.reason} This call needs a person's approval before it can run. Ask the user to approve it "
            f"by running:  mcp-guard approve {request.id}  (approval id {request.id}, valid for about {minutes} "
            f"minutes; the call: {request.describe()}; every argument: mcp-guard approvals show {request.id}). "
            "Once they have, retry exactly the same call (same tool and arguments) and it will go "
            "through. Do not change the arguments to get around this.",
            {"approval_id": request.id, "approval": "pending", "approve_command": f"mcp-guard approve {request.id}"},
        )
        return Refuse(deny)

    # the 2026-07-28 input round ---------------------------------------------------------------

    def _input_required(self, call: CallIn, decision: Approve) -> JSONObject:
        """Ask through the client's own input round instead of a server-to-client request."""
        result: JSONObject = {
            "resultType": "input_required",
            "inputRequests": {
                INPUT_KEY: {
                    "method": "elicitation/create",
                    "params": {
                        "mode": "form",
                        "message": approval_message(self._port.server_name, call.name, call.arguments, decision),
                        "requestedSchema": APPROVAL_SCHEMA,
                    },
                }
            },
            "requestState": self.settings.signer.issue(call.name, call.arguments, approved=False),
        }
        server_meta = self._port.server_meta()
        if server_meta:
            result["_meta"] = server_meta
        return {"jsonrpc": "2.0", "id": call.ident, "result": result}

    def _approval_retry(self, call: CallIn, decision: Approve, state: str) -> Verdict | Approved:
        """A retry carrying the guard's state: verify it, strip the guard's fields, relay or refuse."""
        body, why = self.settings.signer.redeem(state, call.name, call.arguments)
        if body is None:
            deny = Deny(
                "approval_required",
                decision.rule,
                f"{decision.reason} The approval state sent with this call is not valid ({why}), so it was refused.",
            )
            return Refuse(deny)
        stripped = dict(call.params)
        inner = body.get("i")
        if isinstance(inner, str):
            stripped["requestState"] = inner
        else:
            stripped.pop("requestState", None)
        responses = call.params.get("inputResponses")
        ours = None
        if isinstance(responses, dict) and INPUT_KEY in responses:
            ours = responses[INPUT_KEY]
            rest = {k: v for k, v in responses.items() if k != INPUT_KEY}
            if rest:
                stripped["inputResponses"] = rest
            else:
                stripped.pop("inputResponses", None)
        forward: JSONObject = {**call.message, "params": stripped}
        if body.get("a") is True:
            # Approved earlier; this round answers the server's own questions. It was counted then.
            # ``call`` is named as approvals name it (prompt:NAME): the record is the prompt's or resource's own,
            # so its labels and audit line are theirs, as for any other relayed call of its kind.
            own = call if call.kind == "tool" else replace(call, name=call.name.removeprefix(f"{call.kind}:"))
            record = new_record(own, decision.rule, "approved earlier", "approved")
            record.modern_approval = True
            return Relay(record, forward)
        outcome = elicit_outcome(ours)
        if outcome != "approved":
            how = "declined" if outcome == "declined" else "dismissed the question without answering"
            deny = Deny(
                "approval_required",
                decision.rule,
                f"{decision.reason} A person {how} this call, so it was refused. Do not retry it unchanged.",
            )
            return Refuse(deny, "declined")
        self._remember(call, decision, "client")
        return Approved("the client", forward)

    def wrap_upstream_state(self, message: JSONObject, call: Call) -> bytes | None:
        """An approved call's server asks for input: nest its state in the guard's, so the retry is not re-asked."""
        from mcp_guard.wire.jsonrpc import encode

        result = message.get("result")
        if not isinstance(result, dict) or result.get("resultType") != "input_required":
            return None
        inner = result.get("requestState")
        result["requestState"] = self.settings.signer.issue(
            call.subject, call.arguments, approved=True, inner=inner if isinstance(inner, str) else None
        )
        return encode(message)


def _declares_elicitation(params: JSONObject) -> bool:
    meta = params.get("_meta")
    capabilities = meta.get(CLIENT_CAPABILITIES_KEY) if isinstance(meta, dict) else None
    return isinstance(capabilities, dict) and isinstance(capabilities.get("elicitation"), dict)
