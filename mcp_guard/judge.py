"""Settle an engine decision against the limiter: the one stateful step of judging a call."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from mcp_guard.limits.base import Limiter
from mcp_guard.policy.decision import Allow, Approve, Decision, Deny
from mcp_guard.policy.engine import Engine


def _window_words(seconds: float) -> str:
    for name, length in (("day", 86400.0), ("hour", 3600.0), ("minute", 60.0), ("second", 1.0)):
        if seconds == length:
            return name
    return f"{seconds:g} seconds"


def _number(value: float) -> float | int:
    return int(value) if value == int(value) else value


class Judge:
    """Decides calls: the engine's verdict, then the limiter for allowed calls.

    Holds the current engine so a policy reload swaps one reference; the limiter
    (and so counter state) outlives engines.
    """

    def __init__(
        self,
        engine: Engine,
        limiter: Limiter,
        clock: Callable[[], float] = time.monotonic,
        force_monitor: bool = False,
    ) -> None:
        self.engine = engine
        self.limiter = limiter
        self.clock = clock
        self.force_monitor = force_monitor

    @property
    def monitor(self) -> bool:
        """Decide and record, but refuse nothing (``mode: monitor`` or ``--monitor``)."""
        return self.force_monitor or self.engine.monitor

    def judge(self, tool: str, arguments: Mapping[str, Any]) -> Decision:
        decision = self.engine.decide(tool, arguments)
        if isinstance(decision, Approve):
            # No approval channel is wired in yet: say plainly that a person's approval is what is missing.
            return Deny(
                "approval_required",
                decision.rule,
                f"{decision.reason} This call needs a person's approval, and no approval channel is "
                "available to ask for it, so it was refused.",
            )
        if not isinstance(decision, Allow) or not decision.charges:
            return decision
        refusal = self.limiter.acquire(decision.charges, self.clock())
        if refusal is None:
            return decision
        charge = refusal.charge
        window = _window_words(charge.window_s)
        limit_words = (
            f"at most {charge.max:g} calls per {window}"
            if charge.cost == 1.0
            else f"a total of at most {charge.max:g} per {window}"
        )
        if refusal.retry_after_s is None:
            when = "This call can never fit this limit."
            retry: float | None = None
        else:
            retry = math.ceil(refusal.retry_after_s * 10) / 10
            when = f"A slot frees in {retry:g} s; retry after that."
        reason = charge.reason or f"Rate limit reached: {limit_words} (counter {charge.counter!r})"
        return Deny(
            "limit",
            charge.rule,
            f"{reason.rstrip('.')}. {when}",
            {
                "counter": charge.counter,
                "max": _number(charge.max),
                "window_s": _number(charge.window_s),
                "used": _number(refusal.used),
                "retry_after_s": retry,
            },
        )
