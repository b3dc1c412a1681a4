"""The pure policy engine: (tool, arguments) in, :data:`Decision` out.

No clock, no I/O: limits come out as :class:`Charge` objects for a limiter to
settle, so the engine can be tested exhaustively without pipes or time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mcp_guard.limits.base import Charge
from mcp_guard.policy.decision import Allow, Decision, Deny
from mcp_guard.policy.model import Limit, Policy, window_seconds
from mcp_guard.policy.source import PathKey


@dataclass(frozen=True)
class _CompiledLimit:
    counter: str
    window_s: float
    max: float
    rule: str
    reason: str | None

    def charge(self, cost: float) -> Charge:
        return Charge(self.counter, self.window_s, self.max, cost, self.rule, self.reason)


@dataclass(frozen=True)
class _CompiledTool:
    name: str
    path: str
    deny_reason: str | None
    denied: bool
    limits: tuple[_CompiledLimit, ...]


def _compile_limits(limits: list[Limit], prefix: str) -> tuple[_CompiledLimit, ...]:
    return tuple(
        _CompiledLimit(lim.counter, window_seconds(lim.window), lim.max, f"{prefix}[{i}]", lim.reason)
        for i, lim in enumerate(limits)
    )


def _all_limits(policy: Policy) -> Iterator[tuple[PathKey, Limit]]:
    for i, lim in enumerate(policy.all_tools.limits):
        yield ("all_tools", "limits", i), lim
    for name, rule in policy.tools.items():
        for i, lim in enumerate(rule.limits):
            yield ("tools", name, "limits", i), lim


def compile_problems(policy: Policy) -> list[tuple[PathKey, str]]:
    """Problems that need the whole document to see (pydantic checks one field at a time)."""
    problems: list[tuple[PathKey, str]] = []
    first_use: dict[str, PathKey] = {}
    for path, lim in _all_limits(policy):
        first_use.setdefault(lim.counter, path)
    return problems


class Engine:
    """A compiled policy. Build once per policy version; ``decide`` is called per tool call."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.default_allow = policy.default == "allow"
        self._hide_all = "*" in policy.hide
        self._hidden = frozenset(policy.hide)
        self._global_limits = _compile_limits(policy.all_tools.limits, "all_tools.limits")
        self._tools: dict[str, _CompiledTool] = {}
        for name, rule in policy.tools.items():
            path = f"tools.{name}"
            self._tools[name] = _CompiledTool(
                name=name,
                path=path,
                denied=rule.action == "deny",
                deny_reason=rule.reason,
                limits=_compile_limits(rule.limits, f"{path}.limits"),
            )

    def is_hidden(self, tool: str) -> bool:
        return self._hide_all or tool in self._hidden

    def decide(self, tool: str, arguments: Mapping[str, Any]) -> Decision:
        if self.is_hidden(tool):
            return Deny("hidden", "hide", f"Tool {tool!r} is hidden by the policy.")
        compiled = self._tools.get(tool)
        if compiled is None:
            if not self.default_allow:
                return Deny(
                    "default_deny",
                    "default",
                    f"Tool {tool!r} is not allowed: the policy does not list it and its default is deny.",
                )
            return Allow(None, tuple(lim.charge(1.0) for lim in self._global_limits))
        if compiled.denied:
            return Deny(
                "deny",
                f"{compiled.path}.action",
                _sentence(compiled.deny_reason or f"The policy denies every call to {tool!r}."),
            )
        charges = tuple(lim.charge(1.0) for lim in (*self._global_limits, *compiled.limits))
        return Allow(compiled.path, charges)


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."
