"""Conditions on a call's arguments, compiled once at load time and evaluated per call.

Evaluation never guesses: a missing path or a value of the wrong type is an
:class:`Unknowable` result, which the engine turns into a refusal that says what
was expected. A condition can make a call fail; it can never make an unexpected
value pass.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mcp_guard.policy.model import Condition

_SEGMENT = re.compile(r"\.([A-Za-z0-9_\-$@]+)|\[(\d+)\]|\[\"((?:[^\"\\]|\\.)*)\"\]")
PathPart = str | int


class ConditionError(ValueError):
    """A condition that cannot be compiled (bad path, operator/value mismatch, bad pattern).

    ``at`` is where in the condition, e.g. ``("value",)`` or ``("value", 2)`` for an item of a list.
    """

    def __init__(self, field: str, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.at: tuple[str | int, ...] = (field,) if index is None else (field, index)


class Unknowable(Exception):
    """The call does not let the condition be checked; ``message`` says what was expected."""

    def __init__(self, message: str, rule: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule


MISSING: Any = object()
_MISSING = MISSING


@dataclass(frozen=True)
class ArgPath:
    """``tool`` or ``args.a.b[0]["odd key"]``, parsed."""

    text: str
    parts: tuple[PathPart, ...]
    is_tool: bool = False

    def resolve(self, tool: str, arguments: Mapping[str, Any]) -> Any:
        if self.is_tool:
            return tool
        value: Any = arguments
        for part in self.parts:
            if isinstance(part, int):
                if not isinstance(value, list) or part >= len(value):
                    return _MISSING
                value = value[part]
            else:
                if not isinstance(value, dict) or part not in value:
                    return _MISSING
                value = value[part]
        return value


def parse_path(text: str, subject: str = "tool") -> ArgPath:
    """``subject`` names what is judged: 'tool', 'prompt' (both with arguments) or 'uri' (a resource, none)."""
    if text == subject:
        return ArgPath(text, (), is_tool=True)
    if subject == "uri":
        raise ConditionError("path", f"path {text!r} is not understood: a resource's conditions test 'uri'")
    if not text.startswith("args"):
        raise ConditionError("path", f"path {text!r} must be {subject!r} or start with 'args.' (e.g. 'args.amount')")
    rest = text[4:]
    parts: list[PathPart] = []
    pos = 0
    while pos < len(rest):
        m = _SEGMENT.match(rest, pos)
        if m is None:
            raise ConditionError(
                "path",
                f'path {text!r} is not understood at {rest[pos:]!r}: use args.key, args.list[0], args["odd.key"]',
            )
        if m.group(1) is not None:
            parts.append(m.group(1))
        elif m.group(2) is not None:
            parts.append(int(m.group(2)))
        else:
            parts.append(re.sub(r"\\(.)", r"\1", m.group(3)))
        pos = m.end()
    if not parts:
        raise ConditionError("path", f"path {text!r} names no argument: use e.g. 'args.amount'")
    return ArgPath(text, tuple(parts))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if _is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON means it: true is not 1, 1 is 1.0, objects compare by content."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return bool(a == b)


Test = Callable[[Any], bool]


def _compile_regex(pattern: Any) -> Test:
    if not isinstance(pattern, str):
        raise ConditionError("value", f"regex needs a pattern string as value, got {_kind(pattern)}")
    try:
        import re2  # linear-time matching: a policy must never be a ReDoS vector
    except ImportError as exc:  # pragma: no cover - google-re2 is a dependency
        raise ConditionError("op", "regex conditions need the google-re2 package (pip install google-re2)") from exc
    options = re2.Options()
    options.log_errors = False
    try:
        compiled = re2.compile(pattern, options)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ConditionError(
            "value", f"regex {pattern!r} is not valid RE2 syntax ({detail}); RE2 has no backreferences or lookaround"
        ) from None

    def test(actual: Any) -> bool:
        if not isinstance(actual, str):
            raise Unknowable(f"expected a string to match /{pattern}/, got {_kind(actual)}")
        return compiled.fullmatch(actual) is not None

    return test


def _compile_within(value: Any) -> Test:
    from mcp_guard.policy.within import PathProblem, directories

    try:
        roots = directories(value)
    except PathProblem as exc:
        raise ConditionError("value", exc.message, exc.index) from None

    def within(actual: Any) -> bool:
        if not isinstance(actual, (str, list)):
            raise Unknowable(f"expected a path (or a list of paths) to compare with 'within', got {_kind(actual)}")
        try:
            return roots.answer(actual)
        except PathProblem as exc:
            raise Unknowable(exc.message) from None

    return within


def _compile_test(op: str, value: Any) -> Test:
    if op == "eq":
        return lambda actual: json_equal(actual, value)
    if op == "neq":
        return lambda actual: not json_equal(actual, value)
    if op in ("in", "not_in"):
        if not isinstance(value, list):
            raise ConditionError("value", f"'{op}' needs a list as value, got {_kind(value)}")
        options = list(value)
        if op == "in":
            return lambda actual: any(json_equal(actual, o) for o in options)
        return lambda actual: not any(json_equal(actual, o) for o in options)
    if op in ("lt", "lte", "gt", "gte"):
        if not _is_number(value):
            raise ConditionError("value", f"'{op}' needs a number as value, got {_kind(value)}")
        bound = value
        compare: Callable[[Any, Any], bool] = {
            "lt": lambda a, b: a < b,
            "lte": lambda a, b: a <= b,
            "gt": lambda a, b: a > b,
            "gte": lambda a, b: a >= b,
        }[op]

        def numeric(actual: Any) -> bool:
            if not _is_number(actual):
                raise Unknowable(f"expected a number to compare with '{op} {bound}', got {_kind(actual)}")
            return compare(actual, bound)

        return numeric
    if op == "regex":
        return _compile_regex(value)
    if op == "within":
        return _compile_within(value)
    if op == "contains":

        def contains(actual: Any) -> bool:
            if isinstance(actual, str):
                if not isinstance(value, str):
                    raise Unknowable(f"expected a list to look for {value!r} in, got a string")
                return value in actual
            if isinstance(actual, list):
                return any(json_equal(item, value) for item in actual)
            raise Unknowable(f"expected a string or a list to look for {value!r} in, got {_kind(actual)}")

        return contains
    raise ConditionError("op", f"unknown operator {op!r}")  # pragma: no cover - the model restricts op


@dataclass(frozen=True)
class CompiledCondition:
    """One condition, ready to evaluate. ``rule`` is its path in the document."""

    rule: str
    path: ArgPath
    op: str
    value: Any
    negate: bool
    reason: str | None
    test: Test | None

    def matches(self, tool: str, arguments: Mapping[str, Any]) -> bool:
        """True or False, or raise :class:`Unknowable`; ``not`` applies only to a real answer."""
        actual = self.path.resolve(tool, arguments)
        if self.op == "exists":
            want = True if self.value is None else bool(self.value)
            result = (actual is not _MISSING) == want
        else:
            if actual is _MISSING:
                raise Unknowable(f"{self.path.text} is missing; this condition needs it ({self.describe()})", self.rule)
            assert self.test is not None  # noqa: S101 - compiled for every op but exists
            try:
                result = self.test(actual)
            except Unknowable as exc:
                raise Unknowable(f"{self.path.text}: {exc.message}", self.rule) from None
        return result != self.negate

    def describe(self) -> str:
        if self.op == "exists":
            exists = self.value is None or bool(self.value)
            return f"{self.path.text} {'exists' if exists != self.negate else 'is absent'}"
        words = _OP_WORDS.get(self.op, self.op)
        value = f"/{self.value}/" if self.op == "regex" else json.dumps(self.value, ensure_ascii=False)
        return f"{'not (' if self.negate else ''}{self.path.text} {words} {value}{')' if self.negate else ''}"


_OP_WORDS = {
    "eq": "==",
    "neq": "!=",
    "lt": "<",
    "lte": "<=",
    "gt": ">",
    "gte": ">=",
    "in": "in",
    "not_in": "not in",
    "regex": "matches",
    "contains": "contains",
    "within": "within",
}


def compile_condition(condition: Condition, rule: str, subject: str = "tool") -> CompiledCondition:
    path = parse_path(condition.path, subject)
    if condition.op == "exists":
        if condition.value is not None and not isinstance(condition.value, bool):
            raise ConditionError("value", "'exists' takes true, false or no value")
        test = None
    else:
        test = _compile_test(condition.op, condition.value)
    return CompiledCondition(rule, path, condition.op, condition.value, condition.not_, condition.reason, test)


@dataclass(frozen=True)
class CompiledGroup:
    """Conditions that hold together (PolicyLayer's ``{conditions, on_deny}``; a single condition is a group of one)."""

    rule: str
    conditions: tuple[CompiledCondition, ...]
    reason: str | None

    def matches(self, tool: str, arguments: Mapping[str, Any]) -> bool:
        return all(c.matches(tool, arguments) for c in self.conditions)

    def describe(self) -> str:
        if not self.conditions:
            return "always"
        return " and ".join(c.describe() for c in self.conditions)
