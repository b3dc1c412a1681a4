"""Replay recorded traffic under another policy: what the guard would decide differently.

The calls come from a record file (``--record``: every ``tools/call`` with its arguments, the server's
answer and the guard's verdict) or from the audit log (tool names and times only). Each recorded
session is replayed as a session of its own: fresh counters, the clock of :mod:`.testing` set to
each call's recorded time, the same :class:`~mcp_guard.pipeline.Pipeline` as the live guard, ``explain``
and ``test``. A call the server answered with an error gives back its ``refund_on_error`` limits, as it
did live. A call that needs a person's approval counts as ``approve``; it then goes on to the limits as
if approved (unless the recording shows a person declined it), so later calls see the counters they saw.

Schema checks (``validate_arguments``) read the tools from ``--lock`` or the policy's ``pins.file``, else
from the server's ``tools/list`` answer in the recording.

Compared with: the decisions recorded (what the guard did then), or ``--against`` a second policy
replayed the same way. From the audit log, a call can be replayed only where neither policy's decision
depends on its arguments (the log keeps their keys, never their values): the rest are listed as such.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mcp_guard.canonical import canonical_json
from mcp_guard.commands.testing import Outcome, SimulatedClock
from mcp_guard.pipeline import Approved, CallIn, Hold, Pipeline, Refuse, Relay, Snapshot, Verdict
from mcp_guard.policy.decision import Approve, Deny
from mcp_guard.policy.model import Policy

Source = Literal["record", "audit"]
# Refusal kinds an audit log entry can be replayed for: the rest came from checks on what the log does
# not keep (argument values, the server's tool definitions).
_AUDIT_KINDS = {"default_deny", "deny", "hidden", "limit", "approval_required", "store_unavailable"}


class ReplayError(ValueError):
    """The input cannot be replayed (not a record file or an audit log, unreadable)."""


@dataclass
class RecordedCall:
    session: int  # from 1
    number: int  # from 1, in the file
    line: int  # of the file, from 1
    at: float  # seconds from the session's start
    tool: str
    arguments: dict[str, Any] | None  # None: not known (an audit log)
    ident: Any = None
    result: str = "ok"  # ok | error: the server's answer, for refunds
    recorded: Outcome | None = None  # what the guard decided then
    declined: bool = False  # a person declined it then
    asked: bool = False  # a person was asked then (sticky: whatever followed)
    why_not: str | None = None  # why the input cannot replay it (set while loading)


@dataclass
class Recording:
    file: Path
    source: Source
    calls: list[RecordedCall]
    sessions: int
    listings: dict[int, list[Any]] = field(default_factory=dict)  # session -> the tools the server listed


@dataclass
class Change:
    call: RecordedCall
    before: Outcome
    after: Outcome

    @property
    def category(self) -> str:
        return {"deny": "newly refused", "allow": "newly allowed", "approve": "newly needing approval"}[
            self.after.decision
        ]


@dataclass
class Skipped:
    call: RecordedCall
    why: str


@dataclass
class ReplayReport:
    recording: Recording
    policy: Path
    against: Path | None
    replayed: int = 0
    changes: list[Change] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {"newly refused": 0, "newly allowed": 0, "newly needing approval": 0}
        for change in self.changes:
            out[change.category] += 1
        return out


# Loading -------------------------------------------------------------------------------------------


def load_recording(path: Path) -> Recording:
    """A record file or an audit log (told apart by their first record). Raises :class:`ReplayError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplayError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    records: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            raise ReplayError(f"{path}:{number}: not a JSON line; expected a record file or an audit log") from None
        if not isinstance(value, dict):
            raise ReplayError(f"{path}:{number}: not a JSON object; expected a record file or an audit log")
        records.append((number, value))
    if not records:
        raise ReplayError(f"{path} is empty: nothing to replay")
    first = records[0][1]
    if first.get("type") == "session":
        return _from_record(path, records)
    if "ts" in first and "decision" in first and "tool" in first:
        return _from_audit(path, records)
    raise ReplayError(
        f"{path}:{records[0][0]}: neither a record file (mcp-guard --record) nor an audit log: its first line "
        "is not a session header or an audit entry"
    )


def _from_record(path: Path, records: list[tuple[int, dict[str, Any]]]) -> Recording:
    calls: list[RecordedCall] = []
    session = 0
    pending: dict[bytes, RecordedCall] = {}  # request id (canonical) -> the call waiting for its answer
    judged: dict[bytes, RecordedCall] = {}  # request id -> the call its verdicts belong to
    listing: set[bytes] = set()  # ids of the client's tools/list requests waiting for their answer
    listings: dict[int, dict[str, Any]] = {}
    for number, record in records:
        kind = record.get("type")
        if kind == "session":
            session += 1
            pending.clear()
            judged.clear()
            listing.clear()
            continue
        if session == 0:
            raise ReplayError(f"{path}:{number}: a record before the first session header")
        if kind == "frame" and "frame" in record:
            frame = record["frame"]
            direction = record.get("dir")
            messages = frame if isinstance(frame, list) else [frame]
            for message in messages:
                if not isinstance(message, dict):
                    continue
                if direction == "c2s" and message.get("method") == "tools/list" and "id" in message:
                    listing.add(canonical_json(message["id"]))
                elif direction == "s2c" and "id" in message and canonical_json(message["id"]) in listing:
                    listing.discard(canonical_json(message["id"]))
                    _remember_listing(message, listings.setdefault(session, {}))
                if direction == "c2s" and message.get("method") == "tools/call" and "id" in message:
                    call = _call_of(message, session, len(calls) + 1, number, float(record.get("at", 0.0)))
                    calls.append(call)
                    key = canonical_json(message["id"])
                    pending[key] = call
                    judged[key] = call
                elif direction in ("s2c", "g2c") and "id" in message and "method" not in message:
                    answered = pending.pop(canonical_json(message["id"]), None)
                    if answered is not None and direction == "s2c":
                        answered.result = _answer_status(message)
        elif kind == "verdict":
            judged_call = judged.get(canonical_json(record.get("id")))
            if judged_call is not None:
                _apply_verdict(judged_call, record)
    return Recording(path, "record", calls, session, {k: list(v.values()) for k, v in listings.items()})


def _remember_listing(message: dict[str, Any], tools: dict[str, Any]) -> None:
    """The tools of one ``tools/list`` answer (a page), by name: what the schema checks read."""
    result = message.get("result")
    page = result.get("tools") if isinstance(result, dict) else None
    for tool in page if isinstance(page, list) else []:
        if isinstance(tool, dict) and isinstance(tool.get("name"), str):
            tools[tool["name"]] = tool


def _call_of(message: dict[str, Any], session: int, number: int, line: int, at: float) -> RecordedCall:
    params = message.get("params")
    params = params if isinstance(params, dict) else {}
    name = params.get("name")
    arguments = params.get("arguments")
    call = RecordedCall(
        session,
        number,
        line,
        at,
        name if isinstance(name, str) else "",
        arguments if isinstance(arguments, dict) else {},
    )
    call.ident = message.get("id")
    if not isinstance(name, str):
        call.why_not = "the call has no tool name"
    elif arguments is not None and not isinstance(arguments, dict):
        call.why_not = "the call's arguments are not an object"
    return call


def _answer_status(message: dict[str, Any]) -> str:
    if "error" in message:
        return "error"
    result = message.get("result")
    return "error" if isinstance(result, dict) and result.get("isError") is True else "ok"


def _apply_verdict(call: RecordedCall, record: dict[str, Any]) -> None:
    verdict = record.get("verdict")
    decision = record.get("decision")
    rule, reason, kind = record.get("rule"), record.get("reason"), record.get("kind")
    if verdict == "hold" and decision == "listing":
        return
    if verdict in ("hold", "reply") or decision == "approved" or (verdict == "refuse" and kind == "approval_required"):
        call.asked = True
        call.declined = call.declined or decision == "declined"
        if rule is not None and (call.recorded is None or call.recorded.decision != "approve"):
            call.recorded = Outcome("approve", rule, reason)
        return
    if call.asked:
        return  # what followed an approval question: the policy's decision was "ask a person"
    if verdict == "relay":
        if decision == "monitored" and rule is not None:
            call.recorded = Outcome("deny", rule, reason)  # monitor mode relayed what the policy refuses
        else:
            call.recorded = Outcome("allow", rule or "default", None)
    elif verdict == "refuse":
        call.recorded = Outcome("deny", rule, reason, kind)


def _from_audit(path: Path, records: list[tuple[int, dict[str, Any]]]) -> Recording:
    by_process: dict[tuple[Any, Any], list[tuple[float, int, dict[str, Any]]]] = {}
    for number, record in records:
        if "ts" not in record or "tool" not in record:
            raise ReplayError(f"{path}:{number}: not an audit log entry (no 'ts' or 'tool')")
        try:
            when = dt.datetime.fromisoformat(str(record["ts"])).timestamp()
        except ValueError:
            raise ReplayError(f"{path}:{number}: 'ts' is not a time: {record['ts']!r}") from None
        by_process.setdefault((record.get("pid"), record.get("server")), []).append((when, number, record))
    calls: list[RecordedCall] = []
    # One guard process is one session; sessions in the order they began.
    for session, entries in enumerate(sorted(by_process.values(), key=lambda e: min(e)[0]), 1):
        entries.sort()
        start = entries[0][0]
        for when, number, record in entries:
            call = RecordedCall(session, 0, number, when - start, str(record["tool"]), None)
            call.result = "error" if record.get("status") in ("error", "rpc_error") else "ok"
            _apply_audit_decision(call, record)
            calls.append(call)
    calls.sort(key=lambda c: (c.session, c.at, c.line))
    for number, call in enumerate(calls, 1):
        call.number = number
    return Recording(path, "audit", calls, len(by_process))


def _apply_audit_decision(call: RecordedCall, record: dict[str, Any]) -> None:
    decision, rule, reason, status = (
        record.get("decision"),
        record.get("rule"),
        record.get("reason"),
        record.get("status"),
    )
    if decision in ("approved", "declined") or (decision == "refused" and status == "approval_required"):
        call.asked = True
        call.declined = decision == "declined"
        call.recorded = Outcome("approve", rule, reason)
    elif decision == "allowed":
        call.recorded = Outcome("allow", rule or "default", None)
    elif decision == "monitored":
        call.recorded = Outcome("deny", rule, reason) if rule else Outcome("allow", "default", None)
    elif decision == "refused":
        call.recorded = Outcome("deny", rule, reason, status)
        if status not in _AUDIT_KINDS:
            call.why_not = f"it was refused by a check ({status}) that needs what the audit log does not keep"
    else:
        call.why_not = f"the audit log entry has an unknown decision {decision!r}"


# Replaying -------------------------------------------------------------------------------------------


class _Person:
    """The approval stage of a replay: notes that a person was asked, and answers as they did then."""

    def __init__(self, clock: SimulatedClock) -> None:
        self.clock = clock
        self.declines = False
        self.asked: Approve | None = None
        self._grants: dict[tuple[str, bytes], float] = {}

    def consider(self, call: CallIn, decision: Approve) -> Verdict | Approved:
        self.asked = decision
        key = (call.name, canonical_json(call.arguments))
        until = self._grants.get(key)
        if until is not None and self.clock.now < until:
            return Approved("an earlier approval")
        if self.declines:
            return Refuse(Deny("approval_required", decision.rule, decision.reason), "declined")
        if decision.remember_s:
            self._grants[key] = self.clock.now + decision.remember_s
        return Approved("a person (replay)")


class _Replayer:
    """One recorded session under one policy: its own counters, clock and person."""

    def __init__(self, snapshot: Snapshot) -> None:
        from mcp_guard.judge import Judge
        from mcp_guard.limits.memory import MemoryLimiter

        self.snapshot = snapshot
        self.clock = SimulatedClock()
        self.limiter = MemoryLimiter(self.clock)
        self.person = _Person(self.clock)
        self.pipeline = Pipeline(Judge(snapshot.engine, self.limiter), self.person)

    def decide(self, call: RecordedCall) -> Outcome | None:
        """The decision on ``call``; None when it would wait for the server's tool list (no lock file)."""
        from mcp_guard.commands.explaining import summary

        self.clock.now = call.at
        self.person.asked = None
        self.person.declines = call.declined
        arguments = call.arguments if call.arguments is not None else {}
        params: dict[str, Any] = {"name": call.tool, "arguments": arguments}
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": call.number, "method": "tools/call", "params": params}
        verdict = self.pipeline.judge_call(
            CallIn(call.number, call.tool, arguments, params, message, False), self.snapshot
        )
        if isinstance(verdict, Relay) and call.result == "error" and verdict.record.refund is not None:
            self.limiter.refund(verdict.record.refund)
        if isinstance(verdict, Hold) and verdict.kind == "listing":
            return None
        asked = self.person.asked
        if asked is not None:
            return Outcome("approve", asked.rule, asked.reason)
        said = summary(verdict)
        if said is None:
            return None
        return Outcome(said["decision"], said["rule"], said["reason"], said.get("kind"))


def argument_dependence(snapshot: Snapshot, tool: str) -> str | None:
    """Why this policy's decision on ``tool`` depends on argument values (None: it does not)."""
    engine = snapshot.engine
    policy = engine.policy
    if engine.is_hidden(tool):
        return None
    rule = engine.rule_for(tool)
    where = rule.path if rule is not None else "the default"
    if rule is not None and rule.action == "deny":
        return None
    if rule is not None and (rule.deny_if or rule.require or rule.approve_if):
        return f"{rule.path} has conditions on the arguments"
    limits = (*engine._global_limits, *(rule.limits if rule is not None else ()))
    counted = next((lim for lim in limits if lim.fixed is None), None)
    if counted is not None:
        return f"{counted.rule} counts an argument ({where})"
    tool_rule = policy.tools.get(rule.key) if rule is not None else None
    validates = tool_rule.validate_arguments if tool_rule is not None else None
    if validates if validates is not None else policy.validate_arguments:
        return f"{where} checks the arguments against the tool's schema (validate_arguments)"
    return None


def replay(
    recording: Recording,
    policy: Policy,
    policy_path: Path,
    against: tuple[Policy, Path] | None = None,
    lock: Path | None = None,
) -> ReplayReport:
    """Replay every call under ``policy`` and compare. ValueError when a lock file cannot be used."""
    from mcp_guard.commands.explaining import dry_run_snapshot

    def snapshot(chosen: Policy, path: Path, session: int) -> Snapshot:
        """The policy's snapshot for one session: without a lock file, the server's recorded listing
        stands in for the tool list the schema checks read."""
        snap = dry_run_snapshot(chosen, path.resolve(), lock)
        integrity = snap.integrity
        tools = recording.listings.get(session)
        if integrity is not None and integrity.settings.lock is None and tools:
            integrity.listed(tools, complete=True)
        return snap

    new = dry_run_snapshot(policy, policy_path.resolve(), lock)
    old = dry_run_snapshot(against[0], against[1].resolve(), lock) if against is not None else None
    report = ReplayReport(recording, policy_path, against[1] if against is not None else None)
    sessions: dict[int, tuple[_Replayer, _Replayer | None]] = {}
    for call in recording.calls:
        if call.session not in sessions:
            sessions[call.session] = (
                _Replayer(snapshot(policy, policy_path, call.session)),
                _Replayer(snapshot(against[0], against[1], call.session)) if against is not None else None,
            )
        replay_new, replay_old = sessions[call.session]
        why = call.why_not
        if why is None and call.arguments is None:
            for snap in (new, old):
                if snap is not None and why is None:
                    why = argument_dependence(snap, call.tool)
            if why is not None:
                why = f"{why}, and the audit log keeps no argument values"
        if why is None and replay_old is None and call.recorded is None:
            why = "the recording has no decision for it (the guard stopped before judging it?)"
        if why is not None:
            report.skipped.append(Skipped(call, why))
            continue
        after = replay_new.decide(call)
        before = replay_old.decide(call) if replay_old is not None else call.recorded
        if after is None or before is None:
            report.skipped.append(
                Skipped(
                    call,
                    "its arguments are checked against the tool's schema, and neither a lock file nor the recording "
                    "has the tool's definition: give --lock FILE",
                )
            )
            continue
        report.replayed += 1
        if after.decision != before.decision:
            report.changes.append(Change(call, before, after))
    return report
