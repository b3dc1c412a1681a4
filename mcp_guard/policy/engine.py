"""The pure policy engine: (tool, arguments) in, :data:`Decision` out.

No clock, no I/O: limits come out as :class:`Charge` objects for a limiter to
settle, so the engine can be tested exhaustively without pipes or time. Order of
evaluation: ``hide``, then the tool's rule (exact name, else the most specific
glob, else ``default``), its ``action``, ``deny_if``, ``require``, ``approve_if``,
and last the limits.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from mcp_guard.canonical import canonical_json
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
from mcp_guard.policy.model import (
    Condition,
    ConditionGroup,
    Limit,
    Policy,
    RequestRule,
    RequestSection,
    ToolRule,
    window_seconds,
)
from mcp_guard.policy.source import PathKey

if TYPE_CHECKING:
    from mcp_guard.inspect.plan import ResultPlan

_IDENTIFIER = re.compile(r"[A-Za-z0-9_\-*?]+")
_CACHE_LIMIT = 4096


def key_path(key: str, prefix: str = "tools") -> str:
    """``tools.NAME`` as a readable document path (quoted when the name has dots or spaces)."""
    return f"{prefix}.{key}" if _IDENTIFIER.fullmatch(key) else f'{prefix}["{key}"]'


# The request kinds a policy section judges besides tools: (section, noun in messages, condition subject).
SECTIONS: dict[str, tuple[str, str, str]] = {
    "prompt": ("prompts", "Prompt", "prompt"),
    "resource": ("resources", "Resource", "uri"),
}


class PolicyCompileError(Exception):
    def __init__(self, problems: list[tuple[PathKey, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


class _CompiledLimit:
    """One limit, ready to charge. A call-count limit's charge is the same every call, so it is built once."""

    __slots__ = (
        "amount",
        "counter",
        "fixed",
        "key",
        "max",
        "max_keys",
        "reason",
        "refund_on_error",
        "rule",
        "scope",
        "window_s",
    )

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
        key: ArgPath | None = None,
        max_keys: int = 0,
    ) -> None:
        self.counter = counter
        self.window_s = window_s
        self.max = max
        self.rule = rule
        self.reason = reason
        self.amount = amount
        self.scope = scope
        self.refund_on_error = refund_on_error
        self.key = key
        self.max_keys = max_keys
        self.fixed = self._charge(1.0) if amount is None and key is None else None

    def charge(self, tool: str, arguments: Mapping[str, Any]) -> Charge | Deny:
        if self.fixed is not None:
            return self.fixed
        counter = self.counter
        if self.key is not None:
            keyed = key_value(self.key.resolve(tool, arguments))
            if keyed is None:
                value = self.key.resolve(tool, arguments)
                shown = "missing" if value is MISSING else f"{type(value).__name__ if value is not None else 'null'}"
                return Deny(
                    "invalid",
                    self.rule,
                    f"This call is under a limit counted per {self.key.text}, which must be a string, number or "
                    f"boolean; it is {shown}, so the call is refused.",
                )
            counter = f"{self.counter}[{keyed}]"
        if self.amount is None:
            return self._charge(1.0, counter)
        value = self.amount.resolve(tool, arguments)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            shown = "missing" if value is MISSING else repr(value)
            return Deny(
                "invalid",
                self.rule,
                f"This call is under a spend cap that counts {self.amount.text}, which must be a number of zero or "
                f"more; it is {shown}.",
            )
        return self._charge(float(value), counter)

    def _charge(self, cost: float, counter: str | None = None) -> Charge:
        keyed = self.key is not None
        return Charge(
            counter or self.counter,
            self.window_s,
            self.max,
            cost,
            self.rule,
            self.reason,
            self.scope,
            self.refund_on_error,
            self.counter if keyed else None,
            self.max_keys if keyed else 0,
        )


_KEY_TEXT_LIMIT = 96


def key_value(value: Any) -> str | None:
    """The canonical text of a limit's key value, or None when it cannot be a key (missing, null, a list or
    an object, a number that is not finite). ``1`` and ``1.0`` are one key; a long value is its digest, so
    store keys stay short.

    One value, one key, however the agent spells it to a server that coerces: a server reading its
    arguments leniently (every Python SDK tool: pydantic's lax mode; zod's ``coerce``) takes ``"1"``,
    ``" 01 "``, ``"+1.0"`` and ``true`` for the number 1, so each would otherwise be a fresh counter for
    the same customer. A string that reads as a number is keyed as that number, ``true``/``false`` as 1/0.
    Distinct ids that are only numbers apart in spelling are counted together: the safe side."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, str):
        value = _numeric(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer():
            value = int(value)
    if not isinstance(value, (str, int, float)):
        return None
    text = canonical_json(value).decode()
    return text if len(text) <= _KEY_TEXT_LIMIT else f"sha256:{hashlib.sha256(text.encode()).hexdigest()}"


_NUMBER = re.compile(r"[+-]?(?:\d[\d_]*)?(?:\.\d[\d_]*|\.)?(?:[eE][+-]?\d+)?")


def _numeric(text: str) -> str | int | float:
    """``text`` as the number a lenient reader takes it for (exactly, for long digit strings), else as is."""
    stripped = text.strip()
    if not stripped or len(stripped) > _KEY_TEXT_LIMIT or not _NUMBER.fullmatch(stripped):
        return text
    try:
        number = Decimal(stripped.replace("_", ""))
    except InvalidOperation:
        return text
    if not number.is_finite() or abs(number.adjusted()) > _KEY_TEXT_LIMIT:
        return text  # no int() of 1e999999: a string that large is no id a server coerces anyway
    return int(number) if number == number.to_integral_value() else float(number)


@dataclass(frozen=True, slots=True)
class CompiledFlow:
    """A flow rule, ready to check: ``rule`` is its path in the document (``flows[0]``)."""

    rule: str
    sources: frozenset[str]
    targets: frozenset[str]
    within_s: float | None
    action: str
    scope: str
    reason: str | None


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
    def __init__(self, subject: str = "tool") -> None:
        self.problems: list[tuple[PathKey, str]] = []
        self.subject = subject  # what a condition's name path is called: tool, prompt or uri

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
            return compile_condition(cond, rule, self.subject)
        except ConditionError as exc:
            self.problems.append(((*where, *exc.at), exc.message))
            return None

    def limits(self, limits: list[Limit], where: PathKey, rule: str) -> tuple[_CompiledLimit, ...]:
        out = []
        for i, lim in enumerate(limits):
            amount = None
            if lim.increment_from is not None:
                try:
                    amount = parse_path(lim.increment_from, self.subject)
                except ConditionError as exc:
                    self.problems.append(((*where, i, "increment_from"), exc.message))
                    continue
                if amount.is_tool:
                    self.problems.append(((*where, i, "increment_from"), "increment_from must name an argument"))
                    continue
            key = None
            if lim.key is not None:
                try:
                    key = parse_path(lim.key)
                except ConditionError as exc:
                    self.problems.append(((*where, i, "key"), exc.message))
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
                    key,
                    lim.max_keys,
                )
            )
        return tuple(out)

    def tool(self, key: str, rule: ToolRule | RequestRule, section: PathKey = ("tools",)) -> _CompiledTool:
        path = key_path(key, ".".join(str(p) for p in section))
        where: PathKey = (*section, key)
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
    for section, _, _ in SECTIONS.values():
        rules = getattr(policy, section)
        if rules is None:
            continue
        for name, request_rule in rules.rules.items():
            for i, lim in enumerate(request_rule.limits):
                yield (section, "rules", name, "limits", i), lim


def _document_problems(policy: Policy) -> list[tuple[PathKey, str]]:
    problems: list[tuple[PathKey, str]] = []
    counting: dict[str, tuple[PathKey, str | None]] = {}
    shape: dict[str, tuple[PathKey, str, bool]] = {}
    keys: dict[str, tuple[PathKey, str | None, int]] = {}
    for path, lim in all_limits(policy):
        first_key = keys.setdefault(lim.counter, (path, lim.key, lim.max_keys))
        if first_key[1:] != (lim.key, lim.max_keys):
            problems.append(
                (
                    (*path, "key"),
                    f"counter {lim.counter!r} is keyed by {lim.key or 'nothing'} (max_keys {lim.max_keys}) here but by "
                    f"{first_key[1] or 'nothing'} (max_keys {first_key[2]}) at {_dotted(first_key[0])}: limits "
                    "sharing a counter must count per the same key",
                )
            )
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
    problems.extend(_glob_ties(list(policy.tools), ("tools",), "tool"))
    for kind, (section, _, _) in SECTIONS.items():
        rules = getattr(policy, section)
        if rules is not None:
            problems.extend(_glob_ties(list(rules.rules), (section, "rules"), kind))
    return problems


def _glob_ties(keys: list[str], where: PathKey, noun: str) -> list[tuple[PathKey, str]]:
    problems: list[tuple[PathKey, str]] = []
    globs = [key for key in keys if is_glob(key)]
    for i, a in enumerate(globs):
        for b in globs[i + 1 :]:
            if literal_length(a) == literal_length(b) and globs_overlap(a, b):
                problems.append(
                    (
                        (*where, b),
                        f"globs {a!r} and {b!r} can match the same {noun} and are equally specific "
                        f"({literal_length(a)} literal characters each), so neither would clearly win: "
                        f"make one more specific or list the {noun} by its exact name",
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
    problems = compiler.problems
    for kind, (section, _, subject) in SECTIONS.items():
        rules = getattr(policy, section)
        if rules is not None:
            problems.extend(Section(kind, rules, _Compiler(subject)).problems)
    return problems + _document_problems(policy) + _results_problems(policy)


def _results_problems(policy: Policy) -> list[tuple[PathKey, str]]:
    # Imported only for a policy with results rules: the detectors' module loads RE2.
    if not has_results(policy):
        return []
    from mcp_guard.inspect.plan import plan_problems

    return plan_problems(policy)


def has_results(policy: Policy) -> bool:
    """Whether the policy says anything about what comes back (results, tool descriptions)."""
    return (
        policy.all_tools.results is not None
        or policy.tool_descriptions is not None
        or any(rule.results is not None for rule in policy.tools.values())
    )


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
    warnings += _flow_warnings(policy)
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


AUTOMATIC_LABELS = ("read_only", "destructive", "open_world")
"""Labels the guard adds from a server's tool annotations (mcp_guard.flows.guard)."""


def _flow_warnings(policy: Policy) -> list[tuple[PathKey, str]]:
    """Flow rules naming a label nothing can give (a typo): no tool, prompt or resource rule has it, and the guard
    never adds it."""
    from mcp_guard.inspect.catalog import DETECTORS

    known = {label for rule in policy.tools.values() for label in rule.labels} | set(AUTOMATIC_LABELS)
    for section, _, _ in SECTIONS.values():
        rules = getattr(policy, section)
        if rules is not None:
            known |= {label for rule in rules.rules.values() for label in rule.labels}
    known |= set(DETECTORS)
    # A named pattern's findings label the session with its name, like a built-in detector's.
    sections = [policy.all_tools.results, *(rule.results for rule in policy.tools.values())]
    known |= {name for results in sections if results is not None for name in results.patterns}
    warnings: list[tuple[PathKey, str]] = []
    for i, flow in enumerate(policy.flows):
        for side, labels in (("from", flow.from_), ("to", flow.to)):
            for j, label in enumerate(labels):
                if label not in known:
                    warnings.append(
                        (
                            ("flows", i, side, j),
                            f"no tool, prompt or resource rule gives the label {label!r} and the guard never "
                            f"adds it (it adds {', '.join(AUTOMATIC_LABELS)} from tool annotations and the result "
                            "detectors' names)",
                        )
                    )
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
        self.results = _results_plan(policy)
        self.flows = tuple(
            CompiledFlow(
                f"flows[{i}]",
                frozenset(flow.from_),
                frozenset(flow.to),
                window_seconds(flow.within) if flow.within is not None else None,
                flow.action,
                flow.scope,
                flow.reason,
            )
            for i, flow in enumerate(policy.flows)
        )
        self.flow_sources = frozenset(label for flow in self.flows for label in flow.sources)
        # Every tool key (name or glob) that matches adds its labels: a label is a fact about the tool, and
        # more labels can only stop more calls.
        self._labelled = tuple((key, frozenset(rule.labels)) for key, rule in policy.tools.items() if rule.labels)
        self._label_cache: dict[str, frozenset[str]] = {}

        # Only the sections the policy has: without one, its requests are relayed untouched.
        self.sections: dict[str, Section] = {}
        for kind, (section, _, _) in SECTIONS.items():
            rules = getattr(policy, section)
            if rules is not None:
                self.sections[kind] = Section(kind, rules)

    def labels_for(self, tool: str) -> frozenset[str]:
        """The labels the policy gives ``tool`` (the server's annotations add more; see mcp_guard.flows)."""
        labels = self._label_cache.get(tool)
        if labels is None:
            found: set[str] = set()
            for key, given in self._labelled:
                if key == tool or (is_glob(key) and glob_matches(key, tool)):
                    found |= given
            labels = frozenset(found)
            if len(self._label_cache) >= _CACHE_LIMIT:
                self._label_cache.clear()
            self._label_cache[tool] = labels
        return labels

    @property
    def hides_any(self) -> bool:
        """Whether the policy hides any tool."""
        return bool(self._hide_exact or self._hide_globs)

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
            return _settle(None, tool, arguments, self._global_limits)
        return _decide_rule(rule, tool, arguments, self._global_limits)

    def section(self, kind: str) -> Section | None:
        """The compiled ``prompts`` or ``resources`` section, None when the policy has none."""
        return self.sections.get(kind)


class Section:
    """A compiled ``prompts`` or ``resources`` section: the same rules as tools, keyed by prompt name or URI.

    Resource URIs are matched in every reading that a server might take them in (``file:`` URLs
    percent-decoded and with ``..`` resolved): a request whose readings fall under different rules
    is refused, so ``file:///tmp/../etc/passwd`` cannot step around a rule for ``file:///etc/*``.
    """

    def __init__(self, kind: str, section: RequestSection, compiler: _Compiler | None = None) -> None:
        name, noun, subject = SECTIONS[kind]
        compiler = compiler if compiler is not None else _Compiler(subject)
        self.kind = kind
        self.noun = noun
        self.default_allow = section.default == "allow"
        self.hides = bool(section.hide)
        self._hide_exact = frozenset(h for h in section.hide if not is_glob(h))
        self._hide_globs = tuple(h for h in section.hide if is_glob(h))
        self._exact: dict[str, _CompiledTool] = {}
        globs: list[_CompiledTool] = []
        for key, rule in section.rules.items():
            compiled = compiler.tool(key, rule, (name, "rules"))
            if is_glob(key):
                globs.append(compiled)
            else:
                self._exact[key] = compiled
        if kind == "resource":
            from mcp_guard.policy.uris import whatwg

            # A URI is also read as a URL parser serialises it (https://a.example is https://a.example/):
            # an exact key stands for that form too, so its own requests do not read as under two rules.
            for key, compiled in list(self._exact.items()):
                self._exact.setdefault(whatwg(key) or key, compiled)
        self._globs = tuple(sorted(globs, key=lambda t: -literal_length(t.key)))
        self.problems = compiler.problems
        # Flow labels, as for tools: every key (name, URI or glob) that matches any reading adds its labels.
        labelled = [(key, frozenset(rule.labels)) for key, rule in section.rules.items() if rule.labels]
        if kind == "resource":
            from mcp_guard.policy.uris import whatwg

            labelled += [(whatwg(key) or key, given) for key, given in labelled if not is_glob(key)]
        self._labelled = tuple(labelled)
        self._label_cache: dict[str, frozenset[str]] = {}

    def labels_for(self, name: str) -> frozenset[str]:
        """The labels the policy gives the prompt or resource ``name``, for flow rules (a tool of the same name
        is another thing: its labels are the tools section's)."""
        labels = self._label_cache.get(name)
        if labels is None:
            found: set[str] = set()
            if self._labelled:
                for reading in self._readings(name):
                    for key, given in self._labelled:
                        if key == reading or (is_glob(key) and glob_matches(key, reading)):
                            found |= given
            labels = frozenset(found)
            if len(self._label_cache) >= _CACHE_LIMIT:
                self._label_cache.clear()
            self._label_cache[name] = labels
        return labels

    def _readings(self, name: str) -> list[str]:
        if self.kind != "resource":
            return [name]
        from mcp_guard.policy.uris import readings

        return readings(name)

    def is_hidden(self, name: str) -> bool:
        return any(
            n in self._hide_exact or any(glob_matches(h, n) for h in self._hide_globs) for n in self._readings(name)
        )

    def _rule_for(self, name: str) -> _CompiledTool | None:
        rule = self._exact.get(name)
        return rule if rule is not None else next((g for g in self._globs if glob_matches(g.key, name)), None)

    def decide(self, name: str, arguments: Mapping[str, Any]) -> Decision:
        what = f"{self.noun} {name!r}"
        if self.is_hidden(name):
            return Deny("hidden", f"{SECTIONS[self.kind][0]}.hide", f"{what} is hidden by the policy.")
        readings = self._readings(name)
        if not readings:
            return Deny("invalid", SECTIONS[self.kind][0], f"{what} cannot be read as one URI, so it was refused.")
        rules = {id(r): r for r in (self._rule_for(n) for n in readings)}
        if len(rules) > 1:
            return Deny(
                "invalid",
                SECTIONS[self.kind][0],
                f"{what} reads as {' or '.join(map(repr, readings))}, which fall under different rules, so it was "
                "refused: request it in its plain form.",
            )
        rule = next(iter(rules.values()))
        if rule is None:
            if not self.default_allow:
                return Deny(
                    "default_deny",
                    f"{SECTIONS[self.kind][0]}.default",
                    f"{what} is not allowed: the policy does not list it and its default is deny.",
                )
            return Allow(None)
        for other in readings[1:]:
            # Conditions on 'uri' hold for every reading too: a server reads https://a/ad<TAB>min as https://a/admin.
            refused = _decide_rule(rule, other, arguments, (), self.noun.lower())
            if isinstance(refused, Deny):
                return refused
        return _decide_rule(rule, name, arguments, (), self.noun.lower())


def _decide_rule(
    rule: _CompiledTool,
    tool: str,
    arguments: Mapping[str, Any],
    global_limits: tuple[_CompiledLimit, ...],
    noun: str | None = None,
) -> Decision:
    """A rule's verdict on one request (``noun`` None: a tool call, else 'prompt' or 'resource')."""
    if rule.action == "deny":
        whole = f"every call to {tool!r}" if noun is None else f"the {noun} {tool!r}"
        return Deny("deny", f"{rule.path}.action", _sentence(rule.reason or f"The policy denies {whole}."))
    this = "This tool" if noun is None else f"This {noun}"
    calls = "calls" if noun is None else "requests"
    try:
        for group in rule.deny_if:
            if group.matches(tool, arguments):
                reason = group.reason or rule.reason or f"Refused because {group.describe()}."
                return Deny("condition", group.rule, _sentence(reason))
        for group in rule.require:
            failing = next((c for c in group.conditions if not c.matches(tool, arguments)), None)
            if failing is not None:
                reason = failing.reason or group.reason or rule.reason or f"{this} requires {group.describe()}."
                return Deny("condition", failing.rule if len(group.conditions) > 1 else group.rule, _sentence(reason))
        approval: Approve | None = None
        for group in rule.approve_if:
            if group.matches(tool, arguments):
                reason = group.reason or rule.reason or f"A person must approve {calls} where {group.describe()}."
                approval = Approve(group.rule, _sentence(reason))
                break
    except Unknowable as exc:
        what = "call" if noun is None else "request"
        return Deny("condition", exc.rule or rule.path, f"Cannot check this {what} against the policy: {exc.message}.")
    if approval is None and rule.action == "approve":
        whole = f"calls to {tool!r}" if noun is None else f"requests for the {noun} {tool!r}"
        approval = Approve(f"{rule.path}.action", _sentence(rule.reason or f"A person must approve {whole}."))
    settled = _settle(rule.path, tool, arguments, (*global_limits, *rule.limits))
    if approval is not None and isinstance(settled, Allow):
        return Approve(approval.rule, approval.reason, settled.charges, rule.remember_s)
    return settled


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


def _results_plan(policy: Policy) -> ResultPlan | None:
    """What the result side checks (None: nothing, and the detectors are never imported)."""
    if not has_results(policy):
        return None
    from mcp_guard.inspect.plan import ResultPlan

    return ResultPlan(policy)


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."
