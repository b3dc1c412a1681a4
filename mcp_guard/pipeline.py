"""What happens to a ``tools/call``, in order. The live guard and ``mcp-guard explain`` both run this.

A call goes through these stages, each one able to stop it:

0. **rounds**: a 2026-07-28 retry that carries on a call the guard admitted (same tool and
   arguments, the ``requestState`` the server issued for it) is relayed as that call, with no
   second decision or charge (:mod:`mcp_guard.rounds`).
1. **hidden**: a tool the policy hides is answered as if the server did not have it.
2. **own files**: arguments that name the guard's own files or folders are refused
   (``protect_own_files``).
3. **pins**: a tool whose definition differs from its pin in the lock file is refused; a tool not
   yet listed in this session makes the guard read the server's list first (the call is *held*).
4. **schema**: arguments that do not match the tool's ``inputSchema`` are refused
   (``validate_arguments``).
5. **rule**: the policy's rule for the tool: ``deny``, ``deny_if``, ``require``, the default.
6. **approval**: a rule that says ``approve`` (or an ``approve_if`` that matched) asks a person
   (a standing grant, an in-band question, a command, the terminal, or an async approval id).
7. **limits**: the call's charges are recorded with the limiter, or a full window refuses it.

A stage returns a :data:`Verdict` to stop the walk or None to pass the call on. In monitor mode
a refusal is reported and the walk goes on, so the call is relayed. A stage that raises refuses
that one call, saying so; it never ends the session.

The result side (stages run on the server's answer to a judged call) is :data:`RESULT_STAGES`:
empty for now; result inspection plugs in there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from mcp_guard.calls import Call
from mcp_guard.judge import Judge
from mcp_guard.policy.decision import Allow, Approve, Deny
from mcp_guard.policy.engine import Engine
from mcp_guard.wire.json_types import JSONObject, RequestId

if TYPE_CHECKING:
    from mcp_guard.integrity.guard import ToolIntegrity


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One version of the policy and everything derived from it. A reload replaces it in one assignment
    and a call reads it once, so no call is ever judged against parts of two versions."""

    engine: Engine
    integrity: ToolIntegrity | None = None
    force_monitor: bool = False

    @property
    def monitor(self) -> bool:
        return self.force_monitor or self.engine.monitor


@dataclass(slots=True)
class CallIn:
    """A ``tools/call`` as the client sent it, already parsed strictly."""

    ident: RequestId | None  # None for a tools/call sent as a notification
    name: str
    arguments: JSONObject
    params: JSONObject
    message: JSONObject
    modern: bool  # 2026-07-28 era: its answers need resultType
    request: bool = True  # False for a tools/call sent as a notification (judged, never answered)
    can_hold: bool = True  # False inside a batch: the call cannot wait for a listing or a person
    continues: Call | None = None  # the admitted call this 2026-07-28 input-round retry carries on


# Verdicts ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Relay:
    """Send the call upstream (``forward`` in place of the client's message when the guard changed it)."""

    record: Call
    forward: JSONObject | None = None


@dataclass(slots=True)
class Refuse:
    deny: Deny
    word: str = "refused"  # what the audit log says: refused, declined


@dataclass(slots=True)
class Reply:
    """Answer the client with this result in place of the server (a 2026-07-28 approval question)."""

    answer: JSONObject


@dataclass(slots=True)
class Hold:
    """The call must wait off the pump: for the server's tool list, or for a person."""

    kind: Literal["listing", "approval"]
    decision: Approve | None = None
    channel: int = 0


Verdict = Relay | Refuse | Reply | Hold


@dataclass(slots=True)
class Approved:
    """A person (or a standing grant) approved the call: go on to the limits. ``forward`` is the message
    to send when the guard stripped its own fields from it (a 2026-07-28 approval round)."""

    via: str
    forward: JSONObject | None = None


@dataclass(slots=True)
class CallState:
    """What the stages learnt about one call on the way."""

    decision: Allow | Approve | None = None
    approved: Approved | None = None
    monitored: list[Deny] = field(default_factory=list)


class ApprovalStage(Protocol):
    """How the pipeline asks for a person's approval (the approval desk, or explain's stand-in)."""

    def consider(self, call: CallIn, decision: Approve) -> Verdict | Approved:
        """A verdict, or :class:`Approved` when the call is approved already (a standing grant, an answered
        2026-07-28 question)."""


Stage = Callable[[CallIn, Snapshot, CallState], "Verdict | None"]


def _rounds(call: CallIn, snap: Snapshot, state: CallState) -> Verdict | None:
    # A retry carrying the requestState the server issued for an admitted call, with the same tool and
    # arguments, is that call going on (see rounds.py): relayed as it was judged, never decided or charged again.
    continued = call.continues
    if continued is None:
        return None
    continued.rounds += 1
    return Relay(continued)


def _hidden(call: CallIn, snap: Snapshot, state: CallState) -> Verdict | None:
    # In monitor mode the rule stage reports it (the engine decides hidden tools too), once.
    if not snap.force_monitor and not snap.engine.monitor and snap.engine.is_hidden(call.name):
        return Refuse(Deny("hidden", "hide", f"Tool {call.name!r} is hidden by the policy."))
    return None


def _own_files(call: CallIn, snap: Snapshot, state: CallState) -> Verdict | None:
    integrity = snap.integrity
    deny = integrity.check_own_files(call.arguments) if integrity is not None else None
    return Refuse(deny) if deny is not None else None


def _pins(call: CallIn, snap: Snapshot, state: CallState) -> Verdict | None:
    integrity = snap.integrity
    if integrity is None:
        return None
    verdict = integrity.check_pin(call.name)
    if verdict == "needs-listing":
        return _needs_listing(call)
    return Refuse(verdict) if isinstance(verdict, Deny) else None


def _schema(call: CallIn, snap: Snapshot, state: CallState) -> Verdict | None:
    integrity = snap.integrity
    if integrity is None:
        return None
    verdict = integrity.check_arguments(call.name, call.arguments)
    if verdict == "needs-listing":
        return _needs_listing(call)
    return Refuse(verdict) if isinstance(verdict, Deny) else None


def _needs_listing(call: CallIn) -> Verdict:
    if call.can_hold:
        return Hold("listing")
    return Refuse(
        Deny(
            "pin",
            "pins",
            f"Tool {call.name!r} has not been listed in this session, and the guard checks tools against their "
            "listing before a call: list the tools (tools/list), or send this call on its own.",
        )
    )


def _rule(call: CallIn, snap: Snapshot, state: CallState) -> Verdict | None:
    decision = snap.engine.decide(call.name, call.arguments)
    if isinstance(decision, Deny):
        return Refuse(decision)
    state.decision = decision
    return None


STAGES: tuple[tuple[str, Stage], ...] = (
    ("rounds", _rounds),
    ("hidden", _hidden),
    ("own files", _own_files),
    ("pins", _pins),
    ("schema", _schema),
    ("rule", _rule),
)

# Stages run on the server's answer to a judged call; result inspection plugs in here.
ResultStage = Callable[[Call, JSONObject, Snapshot], "JSONObject | None"]
RESULT_STAGES: tuple[tuple[str, ResultStage], ...] = ()


class Pipeline:
    """The ordered checks for one guard: the stages above, then approval and limits.

    ``approvals`` is None where nobody can be asked (then an ``approve`` verdict refuses the call).
    """

    def __init__(
        self,
        judge: Judge,
        approvals: ApprovalStage | None = None,
        warn: Callable[[str], None] = lambda _: None,
        stages: Sequence[tuple[str, Stage]] = STAGES,
    ) -> None:
        self.judge = judge
        self.approvals = approvals
        self._warn = warn
        self._stages = stages

    def judge_call(self, call: CallIn, snap: Snapshot, skip: int = 0) -> Verdict:
        """Walk the stages from ``skip`` (the index to resume at after a hold) and return the verdict."""
        state = CallState()
        stages = self._stages
        for index in range(skip, len(stages)):
            name, stage = stages[index]
            try:
                verdict = stage(call, snap, state)
            except Exception as exc:  # one call's failure, never the session's
                return Refuse(_stage_failed(name, exc))
            if verdict is None:
                continue
            if isinstance(verdict, Refuse) and snap.monitor:
                self._monitored(call, state, verdict.deny)
                continue
            return verdict
        if state.decision is None:  # monitor mode let a refusal through
            return Relay(self._record(call, state, None, "monitored"))
        decision = state.decision
        if isinstance(decision, Approve):
            if snap.monitor:
                self._warn(f"monitor: would ask a person to approve {call.name!r} ({decision.rule}): {decision.reason}")
                return Relay(_new_record(call, decision.rule, decision.reason, "monitored"))
            try:
                outcome = self._approval(call, decision)
            except Exception as exc:
                return Refuse(_stage_failed("approval", exc))
            if not isinstance(outcome, Approved):
                return outcome
            state.approved = outcome
        return self.limits(call, snap, state)

    def after_approval(self, call: CallIn, snap: Snapshot, decision: Approve, outcome: Verdict | Approved) -> Verdict:
        """A held call's approval came back: on to the limits when approved, else the refusal."""
        if not isinstance(outcome, Approved):
            return outcome
        return self.limits(call, snap, CallState(decision, outcome))

    def _approval(self, call: CallIn, decision: Approve) -> Verdict | Approved:
        if self.approvals is None:
            return Refuse(no_channel(decision, "none is configured"))
        return self.approvals.consider(call, decision)

    def limits(self, call: CallIn, snap: Snapshot, state: CallState) -> Verdict:
        """The last stage: record the call's charges, or refuse it when a window is full."""
        decision = state.decision
        if decision is None:  # monitor mode let an earlier refusal through
            return Relay(self._record(call, state, None, "monitored"))
        try:
            settled = self.judge.settle(decision, snap.engine.policy.on_store_error)
        except Exception as exc:
            return Refuse(_stage_failed("limits", exc))
        if isinstance(settled, Deny):
            if not snap.monitor:
                return Refuse(settled)
            self._monitored(call, state, settled)
            return Relay(self._record(call, state, None, "monitored"))
        if state.monitored:
            return Relay(self._record(call, state, settled, "monitored"))
        forward = None
        if state.approved is not None:
            record = _new_record(call, decision.rule, f"approved via {state.approved.via}", "approved")
            record.modern_approval = call.modern
            forward = state.approved.forward
        else:
            record = _new_record(call, decision.rule, None, "allowed")
        record.refund = settled.receipt.refundable() if settled.receipt is not None else None
        return Relay(record, forward)

    def _monitored(self, call: CallIn, state: CallState, deny: Deny) -> None:
        state.monitored.append(deny)
        self._warn(f"monitor: would refuse {call.name!r} ({deny.rule}): {deny.reason}")

    @staticmethod
    def _record(call: CallIn, state: CallState, settled: Allow | None, word: str) -> Call:
        first = state.monitored[0] if state.monitored else None
        record = _new_record(call, first.rule if first else None, first.reason if first else None, word)
        if settled is not None and settled.receipt is not None:
            record.refund = settled.receipt.refundable()
        return record


def _new_record(call: CallIn, rule: str | None, reason: str | None, word: str) -> Call:
    return Call(call.name, rule, reason, word, call.arguments, time.time(), time.perf_counter())


def _stage_failed(stage: str, exc: BaseException) -> Deny:
    return Deny(
        "invalid",
        stage,
        f"The guard's {stage} check failed on this call ({type(exc).__name__}: {exc}), so it was refused. "
        "This is a fault in mcp-guard or its configuration, not in the call.",
    )


def no_channel(decision: Approve, detail: str) -> Deny:
    return Deny(
        "approval_required",
        decision.rule,
        f"{decision.reason} This call needs a person's approval and none could be asked ({detail}), so it was "
        "refused. To enable approvals, run the guard with --approval client,async (the default) or configure "
        "--approval-command; see the README's approval section.",
    )


def stage_index(name: str) -> int:
    """Where to resume a held call: after the listing, the pins stage runs again."""
    return next(i for i, (n, _) in enumerate(STAGES) if n == name)
