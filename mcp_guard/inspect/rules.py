"""Which action each detector gets: a tool's ``results`` combined with ``all_tools.results``.

Plain data in, plain data out, so the policy model can call it however it stores the rules:
each rule set is a mapping with optional ``block``, ``redact`` and ``warn`` lists of detector
names and an optional ``patterns`` mapping (name -> RE2 regex). For one detector the strictest
action named anywhere wins: block > redact > warn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from mcp_guard.inspect.catalog import DETECTORS

Action = Literal["warn", "redact", "block"]
ACTIONS: tuple[Action, ...] = ("warn", "redact", "block")
RANK: dict[Action, int] = {"warn": 1, "redact": 2, "block": 3}

RuleSet = Mapping[str, object]


class RulesError(ValueError):
    """A ``results`` section that names an unknown detector or redefines a built-in one."""


def strictest(a: Action, b: Action) -> Action:
    return a if RANK[a] >= RANK[b] else b


@dataclass(frozen=True, slots=True)
class ResultRules:
    """The combined rules for one tool: ``actions`` per detector, ``patterns`` for user detectors."""

    actions: Mapping[str, Action]
    patterns: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.actions)


def _names(value: object, where: str) -> Iterable[str]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RulesError(f"{where} must be a list of detector names")
    return [v for v in value if isinstance(v, str)]


def combine_rules(*rule_sets: RuleSet | None) -> ResultRules:
    """Combine ``results`` sections (e.g. ``all_tools.results`` then the tool's own).

    A pattern defined in a later set replaces one of the same name in an earlier set. Every name
    in an action list must be a built-in detector or a pattern defined in one of the sets.
    """
    actions: dict[str, Action] = {}
    patterns: dict[str, str] = {}
    for rules in rule_sets:
        if rules is None:
            continue
        defined = rules.get("patterns")
        if defined is not None:
            if not isinstance(defined, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in defined.items()
            ):
                raise RulesError("patterns must map names to RE2 patterns")
            for name, regex in defined.items():
                if name in DETECTORS:
                    raise RulesError(f"pattern {name!r} has the name of a built-in detector")
                patterns[str(name)] = str(regex)
        for action in ACTIONS:
            for name in _names(rules.get(action), action):
                actions[name] = strictest(actions[name], action) if name in actions else action
    unknown = [name for name in actions if name not in DETECTORS and name not in patterns]
    if unknown:
        raise RulesError(
            f"unknown detector {unknown[0]!r} (built in: {', '.join(DETECTORS)}; or define it in patterns)"
        )
    used = tuple(sorted((name, regex) for name, regex in patterns.items() if name in actions))
    return ResultRules(actions, used)
