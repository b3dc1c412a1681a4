"""The pure policy engine: (tool, arguments) in, :data:`Decision` out.

No clock, no I/O: limits come out as :class:`Charge` objects for a limiter to
settle, so the engine can be tested exhaustively without pipes or time. Order of
evaluation: ``hide``, then the tool's rule (exact name, else the most specific
glob, else ``default``), its ``action``, ``deny_if``, ``require``, ``approve_if``,
and last the limits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mcp_guard.limits.base import Charge
from mcp_guard.policy.conditions import (
    MISSING,
    ArgPath,
    CompiledGroup,
    ConditionError,
    Unknowable,
    compile_condition,
    parse_path,
)
from mcp_guard.policy.decision import Allow, Approve, Decision, Deny
from mcp_guard.policy.globs import glob_matches, globs_overlap, is_glob, literal_length
from mcp_guard.policy.model import Condition, ConditionGroup, Limit, Policy, ToolRule, window_seconds
from mcp_guard.policy.source import PathKey

_IDENTIFIER = re.compile(r"[A-Za-z0-9_\-*?]+")
_CACHE_LIMIT = 4096


def key_path(key: str) -> str:
    """``tools.NAME`` as a readable document path (quoted when the name has dots or spaces)."""
    return f"tools.{key}" if _IDENTIFIER.fullmatch(key) else f'tools["{key}"]'


class PolicyCompileError(Exception):
    def __init__(self, problems: list[tuple[PathKey, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


class _CompiledLimit:
    """One limit, ready to charge. A call-count limit's charge is the same every call, so it is built once."""

    __slots__ = ("amount", "counter", "fixed", "max", "reason", "refund_on_error", "rule", "scope", "window_s")

    def __init__(
        self,
        counter: str,
        window_s: float,
        max: float,
        rule: str,
        reason: str | None,
        amount: ArgPath | None,
        scope: str,
        refund_on_error: bool,
    ) -> None:
        self.counter = counter
        self.window_s = window_s
        self.max = max
        self.rule = rule
        self.reason = reason
        self.amount = amount
        self.scope = scope
        self.refund_on_error = refund_on_error
        self.fixed = self._charge(1.0) if amount is None else None

    def charge(self, tool: str, arguments: Mapping[str, Any]) -> Charge | Deny:
        if self.fixed is not None:
            return self.fixed
        assert self.amount is not None  # noqa: S101 - fixed is None only for spend caps
        value = self.amount.resolve(tool, arguments)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            shown = "missing" if value is MISSING else repr(value)
            return Deny(
                "invalid",
                self.rule,
                f"This call is under a spend cap that counts {self.amount.text}, which must be a number of zero or "
                f"more; it is {shown}.",
            )
        return self._charge(float(value))

    def _charge(self, cost: float) -> Charge:
        return Charge(
            self.counter, self.window_s, self.max, cost, self.rule, self.reason, self.scope, self.refund_on_error
        )


@dataclass(frozen=True)
class _CompiledTool:
    key: str
    path: str
    action: str
    reason: str | None
    deny_if: tuple[CompiledGroup, ...]
    require: tuple[CompiledGroup, ...]
    approve_if: tuple[CompiledGroup, ...]
    limits: tuple[_CompiledLimit, ...]
    remember_s: float | None = None


class _Compiler:
    def __init__(self) -> None:
        self.problems: list[tuple[PathKey, str]] = []

    def groups(self, entries: list[Condition | ConditionGroup], where: PathKey, rule: str) -> tuple[CompiledGroup, ...]:
        out: list[CompiledGroup] = []
        for i, entry in enumerate(entries):
            entry_rule = f"{rule}[{i}]"
            if isinstance(entry, ConditionGroup):
                conditions = []
                for j, cond in enumerate(entry.conditions):
                    compiled = self.condition(cond, (*where, i, "conditions", j), f"{entry_rule}.conditions[{j}]")
                    if compiled is not None:
                        conditions.append(compiled)
                out.append(CompiledGroup(entry_rule, tuple(conditions), entry.on_deny))
            else:
                compiled = self.condition(entry, (*where, i), entry_rule)
                if compiled is not None:
                    out.append(CompiledGroup(entry_rule, (compiled,), entry.reason))
        return tuple(out)

    def condition(self, cond: Condition, where: PathKey, rule: str) -> Any:
        try:
            return compile_condition(cond, rule)
        except ConditionError as exc:
            self.problems.append(((*where, *exc.at), exc.message))
            return None

    def limits(self, limits: list[Limit], where: PathKey, rule: str) -> tuple[_CompiledLimit, ...]:
        out = []
        for i, lim in enumerate(limits):
            amount = None
            if lim.increment_from is not None:
                try:
                    amount = parse_path(lim.increment_from)
                except ConditionError as exc:
                    self.problems.append(((*where, i, "increment_from"), exc.message))
                    continue
                if amount.is_tool:
                    self.problems.append(((*where, i, "increment_from"), "increment_from must name an argument"))
                    continue
            out.append(
                _CompiledLimit(
                    lim.counter,
                    window_seconds(lim.window),
                    lim.max,
                    f"{rule}[{i}]",
                    lim.reason,
                    amount,
                    lim.scope,
                    lim.refund_on_error,
                )
            )
        return tuple(out)

    def tool(self, key: str, rule: ToolRule) -> _CompiledTool:
        path = key_path(key)
        where: PathKey = ("tools", key)
        return _CompiledTool(
            key=key,
            path=path,
            action=rule.action,
            reason=rule.reason,
            deny_if=self.groups(rule.deny_if, (*where, "deny_if"), f"{path}.deny_if"),
            require=self.groups(rule.require, (*where, "require"), f"{path}.require"),
            approve_if=self.groups(rule.approve_if, (*where, "approve_if"), f"{path}.approve_if"),
            limits=self.limits(rule.limits, (*where, "limits"), f"{path}.limits"),
            remember_s=window_seconds(rule.remember) if rule.remember is not None else None,
        )


def all_limits(policy: Policy) -> Iterator[tuple[PathKey, Limit]]:
    for i, lim in enumerate(policy.all_tools.limits):
        yield ("all_tools", "limits", i), lim
    for name, rule in policy.tools.items():
        for i, lim in enumerate(rule.limits):
            yield ("tools", name, "limits", i), lim


def _document_problems(policy: Policy) -> list[tuple[PathKey, str]]:
    problems: list[tuple[PathKey, str]] = []
    counting: dict[str, tuple[PathKey, str | None]] = {}
    shape: dict[str, tuple[PathKey, str, bool]] = {}
    for path, lim in all_limits(policy):
        first_shape = shape.setdefault(lim.counter, (path, lim.scope, lim.refund_on_error))
        if first_shape[1:] != (lim.scope, lim.refund_on_error):
            problems.append(
                (
                    (*path, "counter"),
                    f"counter {lim.counter!r} has scope {lim.scope!r} and refund_on_error "
                    f"{str(lim.refund_on_error).lower()} here but scope {first_shape[1]!r} and refund_on_error "
                    f"{str(first_shape[2]).lower()} at {_dotted(first_shape[0])}: limits sharing a counter must agree",
                )
            )
        first = counting.setdefault(lim.counter, (path, lim.increment_from))
        if first[1] != lim.increment_from:
            problems.append(
                (
                    (*path, "counter"),
                    f"counter {lim.counter!r} is {_counts(lim.increment_from)} here but {_counts(first[1])} at "
                    f"{_dotted(first[0])}: limits sharing a counter must count the same thing",
                )
            )
    globs = [key for key in policy.tools if is_glob(key)]
    for i, a in enumerate(globs):
        for b in globs[i + 1 :]:
            if literal_length(a) == literal_length(b) and globs_overlap(a, b):
                problems.append(
                    (
                        ("tools", b),
                        f"globs {a!r} and {b!r} can match the same tool and are equally specific "
                        f"({literal_length(a)} literal characters each), so neither would clearly win: "
                        "make one more specific or list the tool by its exact name",
                    )
                )
    return problems


def _counts(increment_from: str | None) -> str:
    return f"a spend cap on {increment_from}" if increment_from else "a call count"


def _dotted(path: PathKey) -> str:
    from mcp_guard.policy.load import dotted_path

    return dotted_path(path)


def compile_problems(policy: Policy) -> list[tuple[PathKey, str]]:
    """Problems that need the whole document to see (pydantic checks one field at a time)."""
    compiler = _Compiler()
    for key, rule in policy.tools.items():
        compiler.tool(key, rule)
    compiler.limits(policy.all_tools.limits, ("all_tools", "limits"), "all_tools.limits")
    return compiler.problems + _document_problems(policy)


def policy_warnings(policy: Policy) -> list[tuple[PathKey, str]]:
    """Rules that are valid but can never fire, for ``mcp-guard check``."""
    warnings: list[tuple[PathKey, str]] = []
    for key, rule in policy.tools.items():
        hidden_by = next((h for h in policy.hide if h == key or (is_glob(h) and glob_matches(h, key))), None)
        if hidden_by is not None and not is_glob(key):
            warnings.append((("tools", key), f"never applies: {key!r} is hidden by hide entry {hidden_by!r}"))
        if rule.action == "deny":
            for field in ("deny_if", "require", "approve_if", "limits"):
                if getattr(rule, field):
                    warnings.append(
                        (("tools", key, field), "never fires: the tool's action is 'deny', so every call is refused")
                    )
        if policy.default == "allow" and rule == ToolRule():
            warnings.append((("tools", key), "has no effect: the default is already 'allow'"))
    globs = [key for key in policy.tools if is_glob(key)]
    for key in policy.tools:
        if not is_glob(key):
            continue
        for other in globs:
            if other != key and literal_length(other) > literal_length(key) and _covers(other, key):
                warnings.append(
                    (("tools", key), f"never applies: every tool it matches is taken by the more specific {other!r}")
                )
                break
    return warnings


def _covers(general: str, specific: str) -> bool:
    """Whether every name matching ``specific`` matches ``general`` (checked on the glob's own text)."""
    probe = specific.replace("*", "").replace("?", "x")
    return glob_matches(general, probe) and not is_glob(specific.replace("*", "").replace("?", ""))


class Engine:
    """A compiled policy. Build once per policy version; ``decide`` is called per tool call."""

    def __init__(self, policy: Policy) -> None:
        problems = compile_problems(policy)
        if problems:
            raise PolicyCompileError(problems)
        compiler = _Compiler()
        self.policy = policy
        self.monitor = policy.mode == "monitor"
        self.default_allow = policy.default == "allow"
        self._hide_exact = frozenset(h for h in policy.hide if not is_glob(h))
        self._hide_globs = tuple(h for h in policy.hide if is_glob(h))
        self._global_limits = compiler.limits(policy.all_tools.limits, ("all_tools", "limits"), "all_tools.limits")
        self._exact: dict[str, _CompiledTool] = {}
        globs: list[_CompiledTool] = []
        for key, rule in policy.tools.items():
            compiled = compiler.tool(key, rule)
            if is_glob(key):
                globs.append(compiled)
            else:
                self._exact[key] = compiled
        # Most specific first; load-time checks guarantee no overlapping ties.
        self._globs = tuple(sorted(globs, key=lambda t: -literal_length(t.key)))
        self._rule_cache: dict[str, _CompiledTool | None] = {}
        self._hidden_cache: dict[str, bool] = {}

    def is_hidden(self, tool: str) -> bool:
        hidden = self._hidden_cache.get(tool)
        if hidden is None:
            hidden = tool in self._hide_exact or any(glob_matches(h, tool) for h in self._hide_globs)
            if len(self._hidden_cache) >= _CACHE_LIMIT:
                self._hidden_cache.clear()
            self._hidden_cache[tool] = hidden
        return hidden

    def rule_for(self, tool: str) -> _CompiledTool | None:
        if tool in self._rule_cache:
            return self._rule_cache[tool]
        rule = self._exact.get(tool)
        if rule is None:
            rule = next((g for g in self._globs if glob_matches(g.key, tool)), None)
        if len(self._rule_cache) >= _CACHE_LIMIT:
            self._rule_cache.clear()
        self._rule_cache[tool] = rule
        return rule

    @staticmethod
    def default_deny(tool: str) -> Deny:
        """The refusal under ``default: deny`` of a tool the policy does not name (also a hidden tool's answer)."""
        return Deny(
            "default_deny",
            "default",
            f"Tool {tool!r} is not allowed: the policy does not list it and its default is deny.",
        )

    def decide(self, tool: str, arguments: Mapping[str, Any]) -> Decision:
        if self.is_hidden(tool):
            return Deny("hidden", "hide", f"Tool {tool!r} is hidden by the policy.")
        rule = self.rule_for(tool)
        if rule is None:
            if not self.default_allow:
                return self.default_deny(tool)
            return self._settle(None, tool, arguments, self._global_limits)
        if rule.action == "deny":
            return Deny(
                "deny", f"{rule.path}.action", _sentence(rule.reason or f"The policy denies every call to {tool!r}.")
            )
        try:
            for group in rule.deny_if:
                if group.matches(tool, arguments):
                    reason = group.reason or rule.reason or f"Refused because {group.describe()}."
                    return Deny("condition", group.rule, _sentence(reason))
            for group in rule.require:
                failing = next((c for c in group.conditions if not c.matches(tool, arguments)), None)
                if failing is not None:
                    reason = failing.reason or group.reason or rule.reason or f"This tool requires {group.describe()}."
                    return Deny(
                        "condition", failing.rule if len(group.conditions) > 1 else group.rule, _sentence(reason)
                    )
            approval: Approve | None = None
            for group in rule.approve_if:
                if group.matches(tool, arguments):
                    reason = group.reason or rule.reason or f"A person must approve calls where {group.describe()}."
                    approval = Approve(group.rule, _sentence(reason))
                    break
        except Unknowable as exc:
            return Deny(
                "condition", exc.rule or rule.path, f"Cannot check this call against the policy: {exc.message}."
            )
        if approval is None and rule.action == "approve":
            approval = Approve(
                f"{rule.path}.action", _sentence(rule.reason or f"A person must approve calls to {tool!r}.")
            )
        settled = self._settle(rule.path, tool, arguments, (*self._global_limits, *rule.limits))
        if approval is not None and isinstance(settled, Allow):
            return Approve(approval.rule, approval.reason, settled.charges, rule.remember_s)
        return settled

    @staticmethod
    def _settle(
        rule: str | None, tool: str, arguments: Mapping[str, Any], limits: tuple[_CompiledLimit, ...]
    ) -> Allow | Deny:
        charges: list[Charge] = []
        for lim in limits:
            charge = lim.charge(tool, arguments)
            if isinstance(charge, Deny):
                return charge
            charges.append(charge)
        return Allow(rule, tuple(charges))


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."
