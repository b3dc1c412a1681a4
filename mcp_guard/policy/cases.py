"""Policy tests as written: the ``cases`` of a test file, or the ``tests`` section of a policy.

``mcp-guard test`` runs them (:mod:`mcp_guard.commands.testing`). They are models here, beside the
policy's, because a policy may carry its own tests: then the policy loader validates them with the
rest of the document, with the same located errors, and the policy's JSON Schema describes them.
Every model forbids unknown fields, as the policy's do: a misspelt ``expect_lst`` must not turn a
test into one that always passes.

A case is one call (``call`` and ``expect``, at the top level) or a ``sequence`` of such steps. A
step may repeat its call (``repeat``, ``every``), check the last call apart (``expect_last``), say
when it happens on a simulated clock (``at``, from the case's start) and what a person answers if
asked (``approved``) or what the server answered (``result``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from mcp_guard.policy.source import PathKey

Duration = float | str

# The policy's duration syntax (model.py imports this module, so it cannot be imported from there).
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

MAX_REPEAT = 100_000
"""A bound on ``repeat``: a typo (``repeat: 3000000000``) must fail to load, not run for an hour."""

STEP_FIELDS = ("call", "expect", "expect_last", "repeat", "every", "at", "approved", "result")


def offset_seconds(spec: Duration) -> float:
    """Seconds in an offset or interval: a number of seconds (0 allowed) or ``"90s"``, ``"500ms"``, ``"2m"``..."""
    if isinstance(spec, bool):
        raise ValueError("a time is a number of seconds or a duration such as '90s', not true/false")
    if isinstance(spec, (int, float)):
        seconds = float(spec)
    else:
        m = _DURATION.match(spec)
        if m is None:
            raise ValueError(
                f"time {spec!r} is not understood: expected a number of seconds or a duration such as "
                "'90s', '500ms', '2m', '1h'"
            )
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a time must be zero or more seconds, got {spec!r}")
    return seconds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CallSpec(_Strict):
    """The ``tools/call`` a client would send: ``{tool: create_charge, args: {amount: 50}}``; or a
    ``prompts/get`` (``{prompt: fetch, args: {url: …}}``) or ``resources/read`` (``{resource: URI}``)."""

    tool: str | None = Field(default=None, min_length=1, description="The tool's name.")
    prompt: str | None = Field(default=None, min_length=1, description="A prompt's name (a prompts/get).")
    resource: str | None = Field(default=None, min_length=1, description="A resource's URI (a resources/read).")
    args: dict[str, Any] = Field(
        default_factory=dict, description="The call's (or prompt's) arguments (a JSON object)."
    )

    @model_validator(mode="after")
    def _one_subject(self) -> CallSpec:
        named = [key for key in ("tool", "prompt", "resource") if getattr(self, key) is not None]
        if len(named) != 1:
            raise ValueError("a call names exactly one of 'tool', 'prompt' or 'resource'")
        if self.resource is not None and self.args:
            raise ValueError("a resource read has no 'args'")
        return self

    @property
    def kind(self) -> Literal["tool", "prompt", "resource"]:
        return "prompt" if self.prompt is not None else "resource" if self.resource is not None else "tool"

    @property
    def name(self) -> str:
        return self.tool or self.prompt or self.resource or ""

    @field_validator("args")
    @classmethod
    def _json_only(cls, value: dict[str, Any]) -> dict[str, Any]:
        # YAML reads 2024-01-01 as a date and .nan as a float no client can send: refuse what JSON cannot carry.
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"arguments must be JSON values (quote dates and times in YAML): {exc}") from None
        return value


Decision = Literal["allow", "deny", "approve"]


class Expectation(_Strict):
    """What the guard must decide. Written as a word (``deny``) or as this mapping."""

    decision: Decision = Field(description="allow, deny, or approve (the call waits for a person's approval).")
    rule: str | None = Field(
        default=None,
        description="The rule that decided, exactly as the guard reports it (e.g. 'tools.create_charge.deny_if[0]').",
    )
    reason: str | None = Field(default=None, description="Text the reason must contain.")


def _expect_form(value: Any) -> str:
    return "mapping" if isinstance(value, (dict, Expectation)) else "word"


# A word or a mapping, tagged so a mistake is reported against the form the author wrote.
ExpectEntry = Annotated[
    Annotated[Decision, Tag("word")] | Annotated[Expectation, Tag("mapping")],
    Discriminator(_expect_form),
]


def expectation(entry: Decision | Expectation | None) -> Expectation | None:
    """An ``expect`` as a mapping, however it was written."""
    return Expectation(decision=entry) if isinstance(entry, str) else entry


class _StepFields(_Strict):
    call: CallSpec | None = Field(default=None, description="The call to make.")
    expect: ExpectEntry | None = Field(
        default=None,
        description="What every call of this step must get (with repeat and expect_last: every call but the last).",
    )
    expect_last: ExpectEntry | None = Field(default=None, description="What the last call of a repeat must get.")
    repeat: int = Field(default=1, ge=1, le=MAX_REPEAT, strict=True, description="Make the call this many times.")
    every: Duration | None = Field(
        default=None, description="With repeat: time between the calls (default 0: all at once)."
    )
    at: Duration | None = Field(
        default=None,
        description="When the (first) call is made, from the case's start, on a simulated clock: '90s', 61, '2h'. "
        "Default: when the previous step ended.",
    )
    approved: bool | None = Field(
        default=None,
        strict=True,
        description="If the call needs approval: true, a person approves it (it goes on to the limits); false, a "
        "person declines it. Unset: it stops at 'approve'.",
    )
    result: Literal["ok", "error"] = Field(
        default="ok",
        description="How the server answers an allowed call: 'error' gives back limits that say refund_on_error.",
    )

    @field_validator("every", "at")
    @classmethod
    def _time(cls, value: Duration | None) -> Duration | None:
        if value is not None:
            offset_seconds(value)
        return value


class Step(_StepFields):
    """One step of a sequence."""


class Case(_StepFields):
    """One test: a call with its expectation, or a ``sequence`` of steps. Each case starts afresh: empty
    counters, no approvals given, the clock at 0."""

    name: str = Field(min_length=1, description="Shown on the result line; unique in the file.")
    sequence: list[Step] | None = Field(
        default=None, min_length=1, description="Steps run in order, sharing counters and the clock."
    )

    def steps(self) -> list[_StepFields]:
        return list(self.sequence) if self.sequence is not None else [self]


class PolicyTests(_Strict):
    """A test file: the policy under test and its cases."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_: str | None = Field(default=None, alias="$schema", description="JSON Schema reference for editors.")
    description: str | None = Field(default=None, description="Free text for people reading the tests.")
    policy: str = Field(min_length=1, description="The policy file; a relative path is relative to this file.")
    lock: str | None = Field(
        default=None,
        description="A lock file standing in for the server's tool list (pins and schema checks); relative to this "
        "file. Default: the policy's pins.file.",
    )
    cases: list[Case] = Field(min_length=1, description="The test cases.")


class TestsSection(_Strict):
    """A policy's ``tests``, validated apart from the policy (see :mod:`mcp_guard.policy.model`)."""

    tests: list[Case]


def case_problems(cases: list[Case], where: PathKey) -> list[tuple[PathKey, str]]:
    """What one field at a time cannot check: a case's shape, the order of its times, unique names."""
    problems: list[tuple[PathKey, str]] = []
    names: dict[str, int] = {}
    for i, case in enumerate(cases):
        here: PathKey = (*where, i)
        if case.name in names:
            problems.append(
                ((*here, "name"), f"case name {case.name!r} is used twice (also {_index(where, names[case.name])})")
            )
        names.setdefault(case.name, i)
        if case.sequence is not None:
            for key in STEP_FIELDS:
                if key in case.model_fields_set:
                    problems.append(((*here, key), f"{key!r} belongs in each step of the 'sequence', not beside it"))
            steps: list[tuple[PathKey, _StepFields]] = [
                ((*here, "sequence", j), s) for j, s in enumerate(case.sequence)
            ]
        elif case.call is None:
            problems.append((here, "a case needs a 'call' (with 'expect') or a 'sequence' of steps"))
            continue
        else:
            steps = [(here, case)]
        previous = 0.0
        for path, step in steps:
            problems.extend(_step_problems(path, step, previous))
            start = offset_seconds(step.at) if step.at is not None else previous
            previous = max(previous, start + (step.repeat - 1) * offset_seconds(step.every or 0))
    return problems


def _step_problems(path: PathKey, step: _StepFields, previous: float) -> list[tuple[PathKey, str]]:
    problems: list[tuple[PathKey, str]] = []
    if step.call is None:
        problems.append((path, "a step needs a 'call'"))
    if step.expect is None and step.expect_last is None:
        problems.append((path, "say what the call must get: 'expect' (or 'expect_last' with 'repeat')"))
    if step.every is not None and step.repeat == 1:
        problems.append(((*path, "every"), "'every' spaces repeated calls: it needs 'repeat' of 2 or more"))
    if step.at is not None and offset_seconds(step.at) < previous:
        problems.append(
            (
                (*path, "at"),
                f"at {offset_seconds(step.at):g} s is before the previous step ended ({previous:g} s): "
                "times count from the case's start and never go back",
            )
        )
    return problems


def _index(where: PathKey, i: int) -> str:
    return ".".join(str(p) for p in where) + f"[{i}]"
