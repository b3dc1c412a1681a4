"""Settle an engine decision against the limiter: the one stateful step of judging a call."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from mcp_guard.limits.base import Charge, Limiter, Receipt, StoreUnavailable
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
        force_monitor: bool = False,
        warn: Callable[[str], None] | None = None,
        store_name: str = "memory:",
    ) -> None:
        self.engine = engine
        self.limiter = limiter
        self.force_monitor = force_monitor
        self.store_name = store_name
        self._warn = warn
        self._store_down_since: float | None = None

    @property
    def monitor(self) -> bool:
        """Decide and record, but refuse nothing (``mode: monitor`` or ``--monitor``)."""
        return self.force_monitor or self.engine.monitor

    def judge(self, tool: str, arguments: Mapping[str, Any]) -> Decision:
        """The engine's decision, with limits settled for an allowed call.

        An :class:`Approve` comes back unsettled: its limits count only once a person
        approved the call (see :meth:`settle`).
        """
        decision = self.engine.decide(tool, arguments)
        if not isinstance(decision, Allow) or not decision.charges:
            return decision
        return self.settle(decision)

    def settle(self, decision: Allow | Approve, on_store_error: str | None = None) -> Allow | Deny:
        """Record the call's charges with the limiter, or say which limit refuses it.

        ``on_store_error`` is the policy's setting, from the snapshot the call is judged against
        (default: the engine's)."""
        if isinstance(decision, Approve):
            decision = Allow(decision.rule, decision.charges)
        if not decision.charges:
            return decision
        try:
            refusal = self.limiter.acquire(decision.charges)
        except StoreUnavailable as exc:
            return self._store_unavailable(decision, exc, on_store_error or self.engine.policy.on_store_error)
        if self._store_down_since is not None:
            self._store_down_since = None
            self._say(f"the limit store {self.store_name} is reachable again")
        if isinstance(refusal, Receipt):
            # Not dataclasses.replace: it costs microseconds on every admitted call.
            return Allow(decision.rule, decision.charges, refusal)
        charge = refusal.charge
        if refusal.keys_full:
            return self._keys_full(charge, refusal.used, refusal.retry_after_s)
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

    @staticmethod
    def _keys_full(charge: Charge, tracked: float, retry_after_s: float | None) -> Deny:
        family = charge.family or charge.counter
        retry = math.ceil(retry_after_s * 10) / 10 if retry_after_s is not None else None
        when = f" The first tracked value frees in {retry:g} s." if retry is not None else ""
        return Deny(
            "limit",
            charge.rule,
            f"The limit counter {family!r} already tracks its most distinct values ({charge.max_keys}, max_keys), "
            "so a call with a value it does not track yet is refused rather than dropping another value's count."
            f"{when}",
            {"counter": family, "max_keys": charge.max_keys, "tracked": _number(tracked), "retry_after_s": retry},
        )

    def _say(self, message: str) -> None:
        if self._warn is not None:
            self._warn(message)

    def _store_unavailable(self, decision: Allow, exc: StoreUnavailable, on_store_error: str) -> Allow | Deny:
        now = time.monotonic()
        if self._store_down_since is None:
            self._store_down_since = now
            self._say(f"the limit store {self.store_name} is unavailable: {exc}")
        if on_store_error == "allow":
            return decision
        rule = next(c.rule for c in decision.charges if c.scope != "grant") if decision.charges else "limits"
        return Deny(
            "store_unavailable",
            rule,
            f"The limit store ({self.store_name}) that counts this call's shared limits is unavailable ({exc}), "
            "so the call is refused (fail closed). Try again shortly.",
        )
