"""What happens to a judged request, in order. The live guard and ``mcp-guard explain`` both run this.

A judged request is a ``tools/call`` (kind ``tool``) or, when the policy has the section, a
``prompts/get`` (``prompt``) or a ``resources/read``/``resources/subscribe`` (``resource``): they
walk the same stages (pins and schema apply to tools only; own files checks a resource's URI).

A call goes through these stages, each one able to stop it:

0. **rounds**: a 2026-07-28 retry that carries on a call the guard admitted (same tool and
   arguments, the ``requestState`` the server issued for it) is relayed as that call, with no
   second decision or charge (:mod:`mcp_guard.rounds`), unless a deny flow rule now refuses it.
1. **hidden**: a tool the policy hides is answered as if the server did not have it; a tool whose
   definition ``tool_descriptions`` withheld from the listing is refused (**descriptions**).
2. **own files**: arguments that name the guard's own files or folders are refused
   (``protect_own_files``).
3. **pins**: a tool whose definition differs from its pin in the lock file is refused; a tool not
   yet listed in this session makes the guard read the server's list first (the call is *held*).
4. **schema**: arguments that do not match the tool's ``inputSchema`` are refused
   (``validate_arguments``).
5. **rule**: the policy's rule for the tool: ``deny``, ``deny_if``, ``require``, the default.
6. **flows**: a flow rule refuses the call (or asks a person) when the tool (prompt, resource) carries a
   ``to`` label while the client session holds a ``from`` label (:mod:`mcp_guard.flows`).
7. **approval**: a rule that says ``approve`` (or an ``approve_if`` that matched) asks a person
   (a standing grant, an in-band question, a command, the terminal, or an async approval id).
8. **limits**: the call's charges are recorded with the limiter, or a full window refuses it.

A stage returns a :data:`Verdict` to stop the walk or None to pass the call on. In monitor mode
a refusal is reported and the walk goes on, so the call is relayed. A stage that raises refuses
that one call, saying so; it never ends the session.

The result side (:data:`RESULT_STAGES`) runs on the server's answer to a request the policy has
``results`` rules for (a judged ``tools/call``, its task's result fetched later, ``resources/read``,
``prompts/get``): **detectors** (secrets, cards, hidden text: warn, redact or block), **output
schema** (``validate_output``: ``structuredContent`` against the tool's ``outputSchema``),
**labels** (the detectors that found something, for flow rules). A stage returns True to withhold
the result; one that raises withholds it too, saying so.
Once the answer is final, :data:`SETTLED_STAGES` run on the call: **labels** gives the session the
labels of a successful call's tool (prompt, resource) and those the detectors found (``Call.labels``), for
flow rules.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, cast

from mcp_guard.calls import Call
from mcp_guard.judge import Judge
from mcp_guard.limits.base import StoreUnavailable
from mcp_guard.policy.decision import Allow, Approve, Deny
from mcp_guard.policy.engine import Engine
from mcp_guard.wire.json_types import JSON, JSONObject, RequestId
from mcp_guard.wire.jsonrpc import SERVER_ERROR, error_answer

if TYPE_CHECKING:
    # The result side's modules load RE2: imported when a policy has results rules, not at every start.
    from mcp_guard.flows.guard import FlowGuard
    from mcp_guard.inspect.plan import ResultCheck
    from mcp_guard.inspect.verdict import Outcome, ResultVerdict
    from mcp_guard.integrity.guard import ToolIntegrity


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One version of the policy and everything derived from it. A reload replaces it in one assignment
    and a call reads it once, so no call is ever judged against parts of two versions."""

    engine: Engine
    integrity: ToolIntegrity | None = None
    force_monitor: bool = False
    flows: FlowGuard | None = None  # one per guard, kept across reloads (it holds the ledger)

    @property
    def monitor(self) -> bool:
        return self.force_monitor or self.engine.monitor


Kind = Literal["tool", "prompt", "resource"]


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
    kind: Kind = "tool"  # what is judged; ``name`` is the tool or prompt name, or the resource URI
    continues: Call | None = None  # the admitted call this 2026-07-28 input-round retry carries on

    def for_approval(self) -> CallIn:
        """The call as the approval desk sees it: a prompt or resource is named by its kind too, so approving
        the prompt 'fetch' never grants the tool 'fetch'."""
        if self.kind == "tool":
            return self
        return dataclasses.replace(self, name=f"{self.kind}:{self.name}")


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
    flows = snap.flows
    if flows is not None and snap.engine.flows and not snap.monitor:
        # Except a deny flow: the server acts only now, so a 'from' label acquired since the first round (data
        # the client may put in its inputResponses) stops the call, as it stops a new one. Nothing is re-charged.
        verdict = flows.check(snap.engine, call.name, snap.engine.policy.on_store_error)
        if isinstance(verdict, Deny):
            return Refuse(verdict)
    continued.rounds += 1
    return Relay(continued)


def _hidden(call: CallIn, snap: Snapshot, state: CallState) -> Verdict | None:
    # In monitor mode the rule stage reports it (the engine decides hidden tools too), once.
    if snap.force_monitor or snap.engine.monitor:
        return None
    if call.kind == "tool":
        if snap.engine.is_hidden(call.name):
            return Refuse(Deny("hidden", "hide", f"Tool {call.name!r} is hidden by the policy."))
        return None
    section = snap.engine.section(call.kind)
    if section is not None and section.is_hidden(call.name):
        return Refuse(Deny("hidden", f"{call.kind}s.hide", f"{section.noun} {call.name!r} is hidden by the policy."))
    return None


def _withheld(call: CallIn, snap: Snapshot, state: CallState) -> Verdict | None:
    plan = snap.engine.results
    if call.kind != "tool":
        return None  # tool_descriptions withholds tools; a prompt of the same name is another thing
    why = plan.withheld_reason(call.name) if plan is not None else None
    if why is None:
        return None
    return Refuse(
        Deny(
            "tool_description",
            "tool_descriptions",
            f"Tool {call.name!r} was withheld from the tool list: its definition contains {why}, which the policy "
            "does not let through.",
        )
    )


def _own_files(call: CallIn, snap: Snapshot, state: CallState) -> Verdict | None:
    integrity = snap.integrity
    if integrity is None:
        return None
    # A resource names what it reads by its URI (file:///…/policy.json): checked like an argument, also as a
    # URL parser reads it (the TypeScript SDK's: file:///…/pol<TAB>icy.json is …/policy.json there).
    subject: JSONObject = call.arguments
    if call.kind == "resource":
        from mcp_guard.policy.uris import whatwg

        subject = {"uri": call.name, "url": whatwg(call.name) or call.name}
    deny = integrity.check_own_files(subject)
    return Refuse(deny) if deny is not None else None


def _pins(call: CallIn, snap: Snapshot, state: CallState) -> Verdict | None:
    integrity = snap.integrity
    if integrity is None or call.kind != "tool":
        return None
    verdict = integrity.check_pin(call.name)
    if verdict == "needs-listing":
        return _needs_listing(call)
    return Refuse(verdict) if isinstance(verdict, Deny) else None


def _schema(call: CallIn, snap: Snapshot, state: CallState) -> Verdict | None:
    integrity = snap.integrity
    if integrity is None or call.kind != "tool":
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
    if call.kind == "tool":
        decision = snap.engine.decide(call.name, call.arguments)
    else:
        section = snap.engine.section(call.kind)
        if section is None:  # a reload removed the section while the request was on its way
            state.decision = Allow(None)
            return None
        decision = section.decide(call.name, call.arguments)
    if isinstance(decision, Deny):
        return Refuse(decision)
    state.decision = decision
    return None


def _flows(call: CallIn, snap: Snapshot, state: CallState) -> Verdict | None:
    flows = snap.flows
    if flows is None or not snap.engine.flows:
        return None
    # A prompt or resource carries its own section's labels (the prompt 'fetch' is not the tool 'fetch').
    verdict = flows.check(snap.engine, call.name, snap.engine.policy.on_store_error, call.kind)
    if isinstance(verdict, Deny):
        return Refuse(verdict)
    decision = state.decision
    if verdict is not None and isinstance(decision, Allow):
        # The flow asks a person; the limits still count once approved.
        state.decision = Approve(verdict.rule, verdict.reason, decision.charges)
    return None


STAGES: tuple[tuple[str, Stage], ...] = (
    ("rounds", _rounds),
    ("hidden", _hidden),
    ("descriptions", _withheld),
    ("own files", _own_files),
    ("pins", _pins),
    ("schema", _schema),
    ("rule", _rule),
    ("flows", _flows),
)

# Whether a stage can stop or change any call under a snapshot. A stage that cannot (no pins, no validation,
# nothing hidden...) is left out of the walk: judged once per snapshot, not once per call. Stages not named
# here always run.
_CAN_ACT: dict[str, Callable[[Snapshot], bool]] = {
    "hidden": lambda snap: not snap.monitor and (snap.engine.hides_any or bool(snap.engine.sections)),
    "descriptions": lambda snap: snap.engine.results is not None,
    "own files": lambda snap: snap.integrity is not None and snap.integrity.settings.protected is not None,
    "pins": lambda snap: snap.integrity is not None and snap.integrity.checks_pins,
    "schema": lambda snap: snap.integrity is not None and snap.integrity.checks_arguments,
    "flows": lambda snap: snap.flows is not None and bool(snap.engine.flows),
}

# The result side ---------------------------------------------------------------------------------


@dataclass(slots=True)
class ResultIn:
    """The server's answer to a request the policy has ``results`` rules for, parsed strictly."""

    method: str  # tools/call (a task's result fetched later too), resources/read, prompts/get
    tool: str | None
    result: JSONObject
    check: ResultCheck
    complete: bool  # a 2026-07-28 answer (it has resultType): a replacement needs "resultType": "complete"
    ident: JSON = None  # the answer's JSON-RPC id: observers (telemetry) match it to the call


@dataclass(slots=True)
class ResultState:
    """What the result stages decided so far: the detectors' verdict, then an output schema problem."""

    verdict: ResultVerdict | None = None
    problem: str | None = None  # why the structuredContent was refused (validate_output)
    labels: frozenset[str] = frozenset()


@dataclass(slots=True)
class ResultOutcome:
    """What to send for one answer. ``result`` None: the server's bytes as they came (forward, warn,
    or a blocked ``resources/read``/``prompts/get``, which is answered with an error saying ``message``)."""

    outcome: Outcome
    result: JSONObject | None = None
    message: str | None = None
    findings: list[dict[str, object]] = field(default_factory=list)  # for the audit: never the values
    labels: frozenset[str] = frozenset()
    summary: str = ""


ResultStage = Callable[[ResultIn, Snapshot, ResultState], bool]  # True: stop (the result is blocked)


def _detectors(answer: ResultIn, snap: Snapshot, state: ResultState) -> bool:
    from mcp_guard.inspect.verdict import judge_result

    rules = answer.check.rules
    if not rules:
        return False
    state.verdict = judge_result(
        answer.result, rules, answer.check.scanner, complete=answer.complete, method=answer.method
    )
    return state.verdict.outcome == "block"


def _output_schema(answer: ResultIn, snap: Snapshot, state: ResultState) -> bool:
    if not answer.check.validate_output or answer.method != "tools/call" or answer.tool is None:
        return False
    if answer.result.get("isError") is True:
        return False  # an error result carries no structured output to check
    from mcp_guard.inspect.outputs import check_output, output_schema

    plan = snap.engine.results
    schema = output_schema(answer.tool, snap.integrity, plan)
    if schema is None:
        return False
    problem = check_output(schema, answer.result)
    scanner = answer.check.scanner
    if problem is not None and scanner is not None:
        # The validator quotes the value it rejects: what the detectors find in it is not repeated to
        # the client, stderr and the audit log in the message that withholds the result.
        from mcp_guard.inspect.findings import redact

        problem = redact(problem, scanner.scan(problem))
    state.problem = problem
    return problem is not None


def _labels(answer: ResultIn, snap: Snapshot, state: ResultState) -> bool:
    if state.verdict is not None:
        state.labels = state.verdict.labels  # the flow rules read them off the outcome
    return False


RESULT_STAGES: tuple[tuple[str, ResultStage], ...] = (
    ("detectors", _detectors),
    ("output schema", _output_schema),
    ("labels", _labels),
)


# Stages run on a judged call once its answer is final (after RESULT_STAGES), in order; each may return a
# message to send the client in place of the server's.
SettledStage = Callable[[Call, JSONObject, Snapshot], "JSONObject | None"]


def _acquire_labels(call: Call, message: JSONObject, snap: Snapshot) -> JSONObject | None:
    flows = snap.flows
    if flows is None or not snap.engine.flows or "error" in message:
        return None
    result = message.get("result")
    if isinstance(result, dict) and result.get("isError") is True:
        return None  # a failed call put no data in the agent's context
    if call.subscribe:
        return None  # nor did a resources/subscribe
    try:
        flows.acquire(snap.engine, call.tool, call.labels, kind=call.kind)
    except StoreUnavailable as exc:
        # The data must not reach the agent unrecorded: answer with an error in its place (fail closed).
        return withheld(
            message,
            f"mcp-guard withheld the answer of {call.tool!r}: the flow ledger that records which labels this "
            f"session holds is unavailable ({exc}). Try again shortly.",
            call.kind,
        )
    return None


def withheld(message: JSONObject, text: str, kind: str = "tool") -> JSONObject:
    """An error result saying ``text``, in place of the server's answer ``message`` (in the answer's era); for a
    prompt or resource, whose results have no ``isError``, a JSON-RPC error (as for a result the detectors block)."""
    if kind != "tool":
        return error_answer(message.get("id"), SERVER_ERROR, text)
    failed: JSONObject = {"content": [{"type": "text", "text": text}], "isError": True}
    result = message.get("result")
    if isinstance(result, dict) and "resultType" in result:
        failed["resultType"] = "complete"
    return {"jsonrpc": "2.0", "id": message.get("id"), "result": failed}


SETTLED_STAGES: tuple[tuple[str, SettledStage], ...] = (("labels", _acquire_labels),)


def run_settled_stages(call: Call, message: JSONObject, snap: Snapshot) -> JSONObject | None:
    """The settled stages on the server's answer; the message to send in its place, if a stage replaced it."""
    replaced: JSONObject | None = None
    for name, stage in SETTLED_STAGES:
        try:
            out = stage(call, message, snap)
        except Exception as exc:  # one answer's failure, never the session's: it is withheld
            out = withheld(message, _stage_failed(name, exc).reason.replace("was refused", "was withheld"), call.kind)
        if out is not None:
            message = replaced = out
    return replaced


def settled_stages_wanted(call: Call, snap: Snapshot) -> bool:
    """Whether the server's answer to ``call`` must be read for the settled stages (any stage wanting it):
    its tool (prompt, resource) has a label a flow rule watches, or the detectors found one in the answer."""
    flows = snap.flows
    if flows is None:
        return False
    found = bool(call.labels & snap.engine.flow_sources)
    return found or flows.wants_result(snap.engine, call.tool, call.kind)


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
        self._walked: tuple[Snapshot, tuple[tuple[int, str, Stage], ...]] | None = None

    def _walk(self, snap: Snapshot) -> tuple[tuple[int, str, Stage], ...]:
        """The stages that can act under ``snap``, with their index in the whole list."""
        walked = self._walked
        if walked is not None and walked[0] is snap:
            return walked[1]
        try:
            walk = tuple(
                (index, name, stage)
                for index, (name, stage) in enumerate(self._stages)
                if name not in _CAN_ACT or _CAN_ACT[name](snap)
            )
        except Exception:  # a snapshot the table cannot read: every stage runs (each one catches its own faults)
            walk = tuple((index, name, stage) for index, (name, stage) in enumerate(self._stages))
        self._walked = (snap, walk)  # one assignment: a pump thread reading it sees the old pair or the new
        return walk

    def judge_call(self, call: CallIn, snap: Snapshot, skip: int = 0) -> Verdict:
        """Walk the stages from ``skip`` (the index to resume at after a hold) and return the verdict."""
        state = CallState()
        for index, name, stage in self._walk(snap):
            if index < skip:
                continue
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
                return Relay(new_record(call, decision.rule, decision.reason, "monitored"))
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
        return self.approvals.consider(call.for_approval(), decision)

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
            record = new_record(call, decision.rule, f"approved via {state.approved.via}", "approved")
            record.modern_approval = call.modern
            forward = state.approved.forward
        else:
            record = new_record(call, decision.rule, None, "allowed")
        record.refund = settled.receipt.refundable() if settled.receipt is not None else None
        return Relay(record, forward)

    def judge_result(self, answer: ResultIn, snap: Snapshot) -> ResultOutcome:
        """Run the result stages on one answer. A stage that fails withholds the result (fail closed)."""
        state = ResultState()
        failed: str | None = None
        for name, stage in RESULT_STAGES:
            try:
                if stage(answer, snap, state):
                    break
            except Exception as exc:
                failed = f"the guard's {name} check failed on it ({type(exc).__name__}: {exc})"
                break
        return _result_outcome(answer, snap, state, failed)

    def _monitored(self, call: CallIn, state: CallState, deny: Deny) -> None:
        state.monitored.append(deny)
        self._warn(f"monitor: would refuse {call.name!r} ({deny.rule}): {deny.reason}")

    @staticmethod
    def _record(call: CallIn, state: CallState, settled: Allow | None, word: str) -> Call:
        first = state.monitored[0] if state.monitored else None
        record = new_record(call, first.rule if first else None, first.reason if first else None, word)
        if settled is not None and settled.receipt is not None:
            record.refund = settled.receipt.refundable()
        return record


def _result_outcome(answer: ResultIn, snap: Snapshot, state: ResultState, failed: str | None) -> ResultOutcome:
    from mcp_guard.inspect.verdict import FORWARD, block_message, describe

    verdict = state.verdict or FORWARD
    what = answer.tool if answer.tool is not None else answer.method
    findings = verdict.audit()
    labels = state.labels or verdict.labels
    problem = failed or (
        f"its structuredContent does not match the tool's outputSchema: {state.problem}" if state.problem else None
    )
    if problem is not None:
        message = f"mcp-guard withheld the result of this {_noun(answer.method)}: the server did run it, but {problem}."
        outcome = ResultOutcome("block", None, message, findings, labels)
        detail = problem
    elif verdict.outcome == "forward":
        return ResultOutcome("forward", labels=labels)
    else:
        detail = describe(verdict.findings, truncated=verdict.truncated)
        message = None
        if verdict.outcome == "block":
            message = block_message(verdict.findings, what=_noun(answer.method), truncated=verdict.truncated)
        replaced = cast("JSONObject | None", verdict.result if isinstance(verdict.result, dict) else None)
        outcome = ResultOutcome(verdict.outcome, replaced, message, findings, labels)
    done = {"warn": "passed on", "redact": "redacted", "block": "blocked"}[outcome.outcome]
    if snap.monitor and outcome.outcome in ("redact", "block"):
        # Monitor mode reports what enforcing would do, and sends the server's answer.
        return ResultOutcome("warn", None, None, findings, labels, f"{what!r}: monitor mode, would be {done}: {detail}")
    outcome.summary = f"{what!r}: result {done}: {detail}"
    if outcome.outcome == "block" and answer.method == "tools/call" and outcome.result is None:
        outcome.result = error_result(outcome.message or "", answer.complete)
    return outcome


def _noun(method: str) -> str:
    return {"resources/read": "resource read", "prompts/get": "prompt request"}.get(method, "call")


def error_result(text: str, complete: bool) -> JSONObject:
    """A ``CallToolResult`` with ``isError`` that the guard sends in place of a withheld one."""
    result: JSONObject = {"content": [{"type": "text", "text": text}], "isError": True}
    if complete:
        result["resultType"] = "complete"
    return result


def new_record(call: CallIn, rule: str | None, reason: str | None, word: str) -> Call:
    """The record of a relayed call (audit, refund, result and settled stages), by its kind."""
    record = Call(call.name, rule, reason, word, call.arguments, time.time(), time.perf_counter())
    if call.kind != "tool":
        record.kind = call.kind
        # Told by the request, not by the answer's shape: a reader may take "Contents" for contents (Go).
        record.subscribe = call.message.get("method") == "resources/subscribe"
    if call.modern:
        record.modern = True
    return record


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
