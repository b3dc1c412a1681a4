"""Hooks for watching a running guard (the recorder, OpenTelemetry), built only when one is on.

Two places see everything worth watching:

- the relay's pumps (:class:`Tap`): every line read from either side, with the actions the session
  answered it with, and every action a worker job emits (a held call's forward or refusal);
- the pipeline (:class:`ObservedPipeline`): every verdict on a ``tools/call``, with its request id.

A guard with nothing watching builds neither: the pumps run the same lambdas as before and the
session keeps its plain :class:`~mcp_guard.pipeline.Pipeline`, so watching costs nothing when off.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from mcp_guard.actions import Action
from mcp_guard.pipeline import Approved, CallIn, Pipeline, ResultIn, ResultOutcome, Snapshot, Verdict
from mcp_guard.policy.decision import Approve


class Tap(Protocol):
    """Sees the relay's traffic. Called on the pump threads (and worker threads): must not block."""

    def client_line(self, line: bytes) -> None:
        """A line read from the client, before the session judges it (verdicts come after it)."""

    def client_actions(self, line: bytes, actions: Sequence[Action]) -> None:
        """What the session made of a client's line (before it is carried out)."""

    def upstream_line(self, line: bytes, actions: Sequence[Action]) -> None:
        """A line read from the server and what the session made of it."""

    def emitted(self, actions: Sequence[Action]) -> None:
        """Actions a worker job emitted (a held call's outcome, the guard's own questions)."""


class VerdictObserver(Protocol):
    def verdict(self, call: CallIn, verdict: Verdict, after_approval: bool) -> None:
        """The pipeline's verdict on ``call``; ``after_approval``: the verdict once a person was asked."""

    def result(self, answer: ResultIn, outcome: ResultOutcome) -> None:
        """What the result stages made of one answer (only answers the policy has ``results`` rules for)."""


class Taps:
    """Several taps as one."""

    def __init__(self, taps: Sequence[Tap]) -> None:
        self._taps = tuple(taps)

    def client_line(self, line: bytes) -> None:
        for tap in self._taps:
            tap.client_line(line)

    def client_actions(self, line: bytes, actions: Sequence[Action]) -> None:
        for tap in self._taps:
            tap.client_actions(line, actions)

    def upstream_line(self, line: bytes, actions: Sequence[Action]) -> None:
        for tap in self._taps:
            tap.upstream_line(line, actions)

    def emitted(self, actions: Sequence[Action]) -> None:
        for tap in self._taps:
            tap.emitted(actions)


class ObservedPipeline(Pipeline):
    """The session's pipeline, telling observers each verdict (same stages, same order)."""

    def __init__(self, base: Pipeline, observers: Sequence[VerdictObserver]) -> None:
        super().__init__(base.judge, base.approvals, base._warn, base._stages)
        self._observers = tuple(observers)

    def judge_call(self, call: CallIn, snap: Snapshot, skip: int = 0) -> Verdict:
        verdict = super().judge_call(call, snap, skip)
        for observer in self._observers:
            observer.verdict(call, verdict, False)
        return verdict

    def after_approval(self, call: CallIn, snap: Snapshot, decision: Approve, outcome: Verdict | Approved) -> Verdict:
        verdict = super().after_approval(call, snap, decision, outcome)
        for observer in self._observers:
            observer.verdict(call, verdict, True)
        return verdict

    def judge_result(self, answer: ResultIn, snap: Snapshot) -> ResultOutcome:
        outcome = super().judge_result(answer, snap)
        for observer in self._observers:
            observer.result(answer, outcome)
        return outcome
