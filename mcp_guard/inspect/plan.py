"""The policy's ``results`` and ``tool_descriptions`` sections, compiled once per policy version.

The engine builds none for a policy without them (``Engine.results`` is None), so a guard whose
policy says nothing about results never looks at one (the bytes are forwarded as before).
Otherwise a :class:`ResultPlan` holds, per tool rule, the combined rules (``all_tools.results`` then the
tool's own; strictest action per detector) and their scanner, compiled here so that no call pays
for it. :func:`plan_problems` reports names that are neither built in nor defined, with their
place in the document, for the loader's messages.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcp_guard.inspect.catalog import DETECTORS
from mcp_guard.inspect.rules import ResultRules, combine_rules
from mcp_guard.inspect.scanner import Scanner
from mcp_guard.inspect.verdict import scanner_for

if TYPE_CHECKING:
    from mcp_guard.policy.model import DescriptionRules, Policy
    from mcp_guard.policy.model import ResultRules as ResultsSection
    from mcp_guard.policy.source import PathKey

NO_RULES = ResultRules({})


@dataclass(frozen=True, slots=True)
class ResultCheck:
    """What to do with one tool's (or method's) results: the rules, their scanner, ``validate_output``."""

    rules: ResultRules
    scanner: Scanner | None
    validate_output: bool = False

    def __bool__(self) -> bool:
        return bool(self.rules) or self.validate_output

    def may_match(self, frame: bytes) -> bool:
        """Whether this raw answer must be parsed: False only when nothing in it can be a finding and
        there is no output schema to check."""
        if self.validate_output:
            return True
        return self.scanner is not None and self.scanner.frame_may_match(frame)


def _section(section: ResultsSection | DescriptionRules | None) -> dict[str, object] | None:
    if section is None:
        return None
    out: dict[str, object] = {"block": list(section.block), "warn": list(section.warn)}
    out["patterns"] = dict(section.patterns)
    redact = getattr(section, "redact", None)
    if redact:
        out["redact"] = list(redact)
    return out


def _check(*sections: ResultsSection | None) -> ResultCheck | None:
    rules = combine_rules(*(_section(s) for s in sections))
    validate = any(s is not None and s.validate_output for s in sections)
    check = ResultCheck(rules, scanner_for(rules) if rules else None, validate)
    return check if check else None


class ResultPlan:
    """The compiled ``results`` rules of one policy version, and what one session learnt of tools.

    ``for_rule(key)`` takes the key of the tool rule the engine chose (``Engine.rule_for``; None
    when no rule names the tool), so globs resolve exactly as for the call itself.
    """

    def __init__(self, policy: Policy) -> None:
        base = policy.all_tools.results
        self._base = _check(base)
        self._per_rule: dict[str, ResultCheck | None] = {
            key: _check(base, rule.results) if rule.results is not None else self._base
            for key, rule in policy.tools.items()
        }
        # resources/read and prompts/get name no tool: all_tools.results applies (no outputSchema).
        self.other = ResultCheck(self._base.rules, self._base.scanner) if self._base and self._base.rules else None
        self.descriptions: ResultCheck | None = None
        described = policy.tool_descriptions
        if described is not None:
            rules = combine_rules(_section(described))
            self.descriptions = ResultCheck(rules, scanner_for(rules)) if rules else None
        validates = any(c is not None and c.validate_output for c in self.checks())
        self.wants_listing = self.descriptions is not None or validates
        self._lock = threading.Lock()
        self._tools: dict[str, dict[str, object]] = {}  # name -> the definition last listed
        self.withheld: dict[str, str] = {}  # tool -> why its definition was withheld from the listing

    def checks(self) -> Iterator[ResultCheck | None]:
        yield self._base
        yield from self._per_rule.values()

    def for_rule(self, key: str | None) -> ResultCheck | None:
        if key is None:
            return self._base
        return self._per_rule.get(key, self._base)

    # what the session learnt from tools/list ---------------------------------------------------

    def remember_tools(self, tools: Sequence[object]) -> None:
        with self._lock:
            for tool in tools:
                if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                    self._tools[tool["name"]] = tool

    def listed_output_schema(self, tool: str) -> tuple[bool, object]:
        """(listed, outputSchema) from the last listing this session saw."""
        with self._lock:
            definition = self._tools.get(tool)
        if definition is None:
            return False, None
        return True, definition.get("outputSchema")

    def adopt(self, before: ResultPlan) -> None:
        """Take over what the session learnt under the previous policy version (a reload): the listed
        definitions, screened again under this version's ``tool_descriptions``."""
        from mcp_guard.inspect.descriptions import screen

        with before._lock:
            tools = dict(before._tools)
        withheld: dict[str, str] = {}
        if self.descriptions is not None:
            for name, tool in tools.items():
                found = screen(tool, self.descriptions, f"tool {name!r}")
                if found is not None and found.action == "block":
                    withheld[name] = found.summary
        with self._lock:
            self._tools.update(tools)
            self.withheld.update(withheld)

    def withhold(self, tool: str, why: str | None) -> None:
        """Refuse calls to ``tool`` (its definition was withheld from the listing), or no longer (None)."""
        with self._lock:
            if why is None:
                self.withheld.pop(tool, None)
            else:
                self.withheld[tool] = why

    def withheld_reason(self, tool: str) -> str | None:
        if not self.withheld:
            return None
        with self._lock:
            return self.withheld.get(tool)


_ACTIONS = ("block", "redact", "warn")


def _unknown(
    section: ResultsSection | DescriptionRules, where: PathKey, defined: Mapping[str, str]
) -> list[tuple[PathKey, str]]:
    problems: list[tuple[PathKey, str]] = []
    for action in _ACTIONS:
        names: list[str] = getattr(section, action, [])
        for i, name in enumerate(names):
            if name in DETECTORS or name in defined:
                continue
            mine = f", or one defined in patterns ({', '.join(sorted(defined))})" if defined else ""
            close = difflib.get_close_matches(name, [*DETECTORS, *defined], n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(
                (
                    (*where, action, i),
                    f"unknown detector {name!r}: {hint}the built-in detectors are {', '.join(DETECTORS)}{mine}; "
                    "define your own under patterns (name: RE2 pattern)",
                )
            )
    return problems


def plan_problems(policy: Policy) -> list[tuple[PathKey, str]]:
    """Detector names that are neither built in nor defined in ``patterns`` (a tool's own or
    ``all_tools.results.patterns``), with their place in the document."""
    problems: list[tuple[PathKey, str]] = []
    base = policy.all_tools.results
    base_patterns: Mapping[str, str] = base.patterns if base is not None else {}
    if base is not None:
        problems += _unknown(base, ("all_tools", "results"), base_patterns)
    for key, rule in policy.tools.items():
        if rule.results is not None:
            problems += _unknown(rule.results, ("tools", key, "results"), {**base_patterns, **rule.results.patterns})
    if policy.tool_descriptions is not None:
        problems += _unknown(policy.tool_descriptions, ("tool_descriptions",), policy.tool_descriptions.patterns)
    return problems
