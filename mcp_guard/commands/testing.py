"""Policy tests: run each case's calls through the live guard's pipeline and compare the decisions.

Every call goes through :class:`mcp_guard.pipeline.Pipeline` with the guard's own stages (hidden, own
files, pins, schema, rule), approval and limits, judged against the snapshot ``explain`` builds (the
lock file standing in for the server's tool list). What a test cannot have, it simulates:

- **time**: a :class:`SimulatedClock` drives the case's :class:`~mcp_guard.limits.memory.MemoryLimiter`,
  so ``at: 61s`` moves past a window at once; nothing waits;
- **a person**: :class:`_Person` is the approval stage; a call that needs approval stops at ``approve``
  unless the step says ``approved: true`` (then it goes on to the limits) or ``false`` (declined);
  ``remember`` grants last on the simulated clock;
- **the server's answer**: ``result: error`` gives back what ``refund_on_error`` limits recorded.

Each case is a session of its own: fresh counters, no approvals, the clock at 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mcp_guard.canonical import canonical_json
from mcp_guard.pipeline import Approved, CallIn, Hold, Kind, Pipeline, Refuse, Relay, Snapshot, Verdict
from mcp_guard.policy.cases import Case, Expectation, PolicyTests, case_problems, expectation, offset_seconds
from mcp_guard.policy.decision import Approve, Deny
from mcp_guard.policy.load import PolicyError, Problem, load_policy, parse_source, problems_from, read_file
from mcp_guard.policy.model import Policy
from mcp_guard.policy.source import SourceDocument


class SimulatedClock:
    """Monotonic time for one case, in seconds from its start: set by the runner, read by the limiter."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Outcome:
    """What the guard decided about one call, as ``explain`` reports it."""

    decision: str
    rule: str | None
    reason: str | None
    kind: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "rule": self.rule, "reason": self.reason, "kind": self.kind}


@dataclass(frozen=True)
class Failure:
    """The first call of a case that did not get what it expected."""

    step: int  # from 1; 1 for a case without a sequence
    call: int  # from 1, within the step's repeats
    calls: int  # the step's repeat count
    at_s: float
    tool: str
    arguments: dict[str, Any]
    expected: Expectation
    actual: Outcome
    mismatched: tuple[str, ...]  # of decision, rule, reason


@dataclass
class CaseResult:
    name: str
    line: int | None
    status: Literal["pass", "fail", "error"]
    calls: int = 0
    seconds: float = 0.0
    failure: Failure | None = None
    error: str | None = None  # why the case could not be judged (status "error")


@dataclass
class Suite:
    """A loaded test file: the policy, where its lock file is, and the cases with their lines."""

    file: Path
    policy: Policy
    policy_path: Path
    lock: Path | None
    cases: list[Case]
    lines: list[int | None] = field(default_factory=list)


@dataclass
class Report:
    suite: Suite
    results: list[CaseResult]
    seconds: float

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def ok(self) -> bool:
        return all(r.status == "pass" for r in self.results)


# Loading --------------------------------------------------------------------------------------------


def load_suite(path: Path, lock: Path | None = None) -> Suite:
    """A test file (``policy:`` and ``cases:``), or a policy with a ``tests:`` section.

    ``lock`` (``--lock``) overrides the test file's ``lock:`` and the policy's ``pins.file``. Raises
    :class:`PolicyError`, naming the file, line and field, for a file that cannot be used.
    """
    doc = parse_source(read_file(path), path)
    if isinstance(doc.data, dict) and "version" in doc.data:
        # A policy carrying its own tests: the policy loader validates them with the rest.
        from mcp_guard.policy.load import policy_tests, validate_document

        policy = validate_document(doc, str(path))
        cases = policy_tests(doc, str(path))
        if not cases:
            raise PolicyError(
                str(path),
                [Problem((), "is a policy without a 'tests' section: add one, or write a test file naming it", None)],
            )
        return Suite(path, policy, path, lock, cases, _lines(doc, "tests", len(cases)))
    if not isinstance(doc.data, dict):
        raise PolicyError(
            str(path), [Problem((), "a policy test file is an object with 'policy' and 'cases' fields", None)]
        )
    from pydantic import ValidationError

    try:
        tests = PolicyTests.model_validate(doc.data)
    except ValidationError as exc:
        raise PolicyError(str(path), problems_from(exc, doc, PolicyTests)) from None
    problems = [Problem(p, m, doc.position_of(p)) for p, m in case_problems(tests.cases, ("cases",))]
    if problems:
        raise PolicyError(str(path), problems)
    policy_path = _beside(path, tests.policy)
    policy = load_policy(policy_path)
    if lock is None and tests.lock is not None:
        lock = _beside(path, tests.lock)
    return Suite(path, policy, policy_path, lock, tests.cases, _lines(doc, "cases", len(tests.cases)))


def _beside(test_file: Path, name: str) -> Path:
    named = Path(name).expanduser()
    return named if named.is_absolute() else test_file.parent / named


def _lines(doc: SourceDocument, key: str, count: int) -> list[int | None]:
    out: list[int | None] = []
    for i in range(count):
        pos = doc.positions.get((key, i))
        out.append(pos.line if pos is not None else None)
    return out


# Running ----------------------------------------------------------------------------------------------


def run_suite(suite: Suite) -> Report:
    """Run every case. ValueError when the lock file cannot be used."""
    from mcp_guard.commands.explaining import dry_run_snapshot

    started = time.perf_counter()
    snapshot = dry_run_snapshot(suite.policy, suite.policy_path.resolve(), suite.lock)
    results = [
        run_case(case, snapshot, suite.lines[i] if i < len(suite.lines) else None) for i, case in enumerate(suite.cases)
    ]
    return Report(suite, results, time.perf_counter() - started)


def run_case(case: Case, snapshot: Snapshot, line: int | None = None) -> CaseResult:
    started = time.perf_counter()
    session = _Session(snapshot)
    result = CaseResult(case.name, line, "pass")
    previous = 0.0
    for step_no, step in enumerate(case.steps(), 1):
        assert step.call is not None  # noqa: S101 - case_problems refused steps without one
        start = offset_seconds(step.at) if step.at is not None else previous
        every = offset_seconds(step.every) if step.every is not None else 0.0
        for k in range(step.repeat):
            session.clock.now = start + k * every
            result.calls += 1
            outcome = session.call(step.call.name, step.call.args, step.approved, step.result, step.call.kind)
            if outcome is None:
                result.status = "error"
                result.error = (
                    f"step {step_no}: {step.call.name!r}'s arguments are checked against its inputSchema "
                    "(validate_arguments), which the guard reads from the server's tool list; give the test a lock "
                    "file to stand in for it (lock: FILE, --lock FILE, or the policy's pins.file)"
                )
                result.seconds = time.perf_counter() - started
                return result
            last = k == step.repeat - 1
            expected = expectation(step.expect_last if last and step.expect_last is not None else step.expect)
            if expected is None:
                continue
            mismatched = _compare(expected, outcome)
            if mismatched:
                result.status = "fail"
                result.failure = Failure(
                    step_no,
                    k + 1,
                    step.repeat,
                    session.clock.now,
                    step.call.name,
                    step.call.args,
                    expected,
                    outcome,
                    mismatched,
                )
                result.seconds = time.perf_counter() - started
                return result
        previous = session.clock.now
    result.seconds = time.perf_counter() - started
    return result


def _compare(expected: Expectation, actual: Outcome) -> tuple[str, ...]:
    wrong = []
    if expected.decision != actual.decision:
        wrong.append("decision")
    if expected.rule is not None and expected.rule != actual.rule:
        wrong.append("rule")
    if expected.reason is not None and (actual.reason is None or expected.reason not in actual.reason):
        wrong.append("reason")
    return tuple(wrong)


class _Session:
    """One case's calls, as one client's session with one guard: a limiter, a flow ledger, a clock and a person.

    Each call the guard let through gets the step's result (``ok`` or ``error``) through the result stages,
    so a successful call acquires its flow labels as in the guard.
    """

    def __init__(self, snapshot: Snapshot) -> None:
        from dataclasses import replace

        from mcp_guard.commands.explaining import dry_run_flows
        from mcp_guard.judge import Judge
        from mcp_guard.limits.memory import MemoryLimiter

        self.clock = SimulatedClock()
        # Every scope's labels in memory, on the case's clock: a case is one client's session.
        snapshot = replace(snapshot, flows=dry_run_flows(snapshot.engine, snapshot.integrity, (), self.clock))
        self.snapshot = snapshot
        # Every scope counts in this one limiter, as in a guard without --state: a case is one session.
        self.limiter = MemoryLimiter(self.clock)
        self.person = _Person(self.clock)
        self.pipeline = Pipeline(Judge(snapshot.engine, self.limiter), self.person)
        self._ids = 0

    def call(
        self, tool: str, arguments: dict[str, Any], approved: bool | None, result: str, kind: Kind = "tool"
    ) -> Outcome | None:
        """The guard's decision on this call, or None when it would wait for the server's tool list."""
        from mcp_guard.commands.explaining import request_in, summary

        self._ids += 1
        self.person.answer = approved
        verdict = self.pipeline.judge_call(request_in(tool, arguments, kind, self._ids), self.snapshot)
        if isinstance(verdict, Relay):
            self._relayed(verdict, result)
        said = summary(verdict)
        if said is None:
            return None
        return Outcome(said["decision"], said["rule"], said["reason"], said.get("kind"))

    def _relayed(self, verdict: Relay, result: str) -> None:
        # What the session does once the server answers: an error gives back refund_on_error limits; the
        # settled stages see the answer (a success acquires flow labels).
        from mcp_guard.pipeline import run_settled_stages

        receipt = verdict.record.refund
        if result == "error" and receipt is not None:
            self.limiter.refund(receipt)
        answer: dict[str, Any] = {"jsonrpc": "2.0", "id": self._ids}
        kind = verdict.record.kind
        if kind == "tool":
            answer["result"] = {"content": [], "isError": result == "error"}
        elif result == "error":  # a prompts/get or resources/read fails with a JSON-RPC error
            answer["error"] = {"code": -32603, "message": "the server failed (a test case's result: error)"}
        else:
            answer["result"] = {"contents": []} if kind == "resource" else {"messages": []}
        run_settled_stages(verdict.record, answer, self.snapshot)


class _Person:
    """The approval stage of a test: the step says what a person answers when asked.

    A standing grant (``remember``) covers identical calls (same tool, same arguments) for its time on the
    case's clock, as the approval desk's store does.
    """

    def __init__(self, clock: SimulatedClock) -> None:
        self.clock = clock
        self.answer: bool | None = None
        self._grants: dict[tuple[str, bytes], float] = {}

    def consider(self, call: CallIn, decision: Approve) -> Verdict | Approved:
        key = (call.name, canonical_json(call.arguments))
        until = self._grants.get(key)
        if until is not None and self.clock.now < until:
            return Approved("an earlier approval")
        if self.answer is None:
            return Hold("approval", decision)
        if not self.answer:
            return Refuse(
                Deny(
                    "approval_required",
                    decision.rule,
                    f"{decision.reason} A person declined this call, so it was refused. Do not retry it unchanged.",
                ),
                "declined",
            )
        if decision.remember_s:
            self._grants[key] = self.clock.now + decision.remember_s
        return Approved("a person (test)")
