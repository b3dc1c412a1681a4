"""Exact sliding-log limiter kept in this process's memory (scope ``grant``)."""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence

from mcp_guard.limits.base import Charge, LimitRefusal, Receipt

_SLACK_S = 1e-9


class _Log:
    """Timestamps and running cost totals of one counter.

    Entries are kept in two parallel lists with a moving head instead of a deque,
    because the window sum needs binary search (deque indexing is O(n)). The
    cumulative totals make any window's sum two lookups away, so several limits
    with different windows can share one counter exactly.
    """

    __slots__ = ("cums", "head", "times")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.cums: list[float] = []
        self.head = 0

    def _base(self, index: int) -> float:
        return self.cums[index - 1] if index > 0 else 0.0

    def total(self) -> float:
        return self.cums[-1] if self.cums else 0.0

    def first_in_window(self, window_s: float, now: float) -> int:
        # An entry at t still counts at now == t + window_s: the window is closed,
        # so no interval of window length, open or closed, ever holds more than max.
        # The nanosecond of slack keeps that true when now - window_s rounds up by an ulp.
        return bisect_left(self.times, now - window_s - _SLACK_S, self.head)

    def used(self, window_s: float, now: float) -> float:
        return self.total() - self._base(self.first_in_window(window_s, now))

    def retry_after(self, window_s: float, now: float, cost: float, limit: float) -> float:
        """Seconds until enough old entries leave the window for ``cost`` to fit."""
        first = self.first_in_window(window_s, now)
        # Smallest j such that dropping entries first..j leaves room: total - cums[j] + cost <= limit.
        j = bisect_left(self.cums, self.total() + cost - limit, first)
        j = min(j, len(self.times) - 1)
        return max(0.0, self.times[j] + window_s - now)

    def record(self, now: float, cost: float) -> None:
        self.times.append(now)
        self.cums.append(self.total() + cost)

    def remove(self, at: float, cost: float) -> None:
        """Take back one entry recorded at ``at`` (a refund)."""
        i = bisect_left(self.times, at, self.head)
        if i < len(self.times) and self.times[i] == at:
            del self.times[i]
            del self.cums[i]
            for j in range(i, len(self.cums)):
                self.cums[j] -= cost

    def prune(self, longest_window_s: float, now: float) -> None:
        self.head = bisect_left(self.times, now - longest_window_s, self.head)
        # Compact once the dead prefix dominates, keeping appends amortised O(1).
        if self.head > 64 and self.head * 2 > len(self.times):
            base = self._base(self.head)
            self.times = self.times[self.head :]
            self.cums = [c - base for c in self.cums[self.head :]]
            self.head = 0


class MemoryLimiter:
    """Exact sliding-log limiter for one process.

    A call is admitted when, for every charge, the cost already recorded on the
    counter within the last ``window_s`` seconds (inclusive) plus the new cost is at
    most ``max``. Thread-safe: the relay judges calls on its pump thread while
    stats may be read from elsewhere.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._logs: dict[str, _Log] = {}
        self._longest: dict[str, float] = {}
        # Keyed limits: per family, each key counter's expiry (its newest stamp plus its longest window).
        self._keys: dict[str, dict[str, float]] = {}
        # A plain lock taken once per call (an RLock re-entered cost a measurable share of a decision).
        self._lock = threading.Lock()
        self._clock = clock

    @property
    def lock(self) -> threading.Lock:
        """Held by :class:`~mcp_guard.limits.scoped.ScopedLimiter` across ``check_locked`` and ``record_locked``."""
        return self._lock

    def now(self) -> float:
        return self._clock()

    def acquire(self, charges: Sequence[Charge]) -> LimitRefusal | Receipt:
        with self._lock:
            now = self._clock()
            refusal = self.check_locked(charges, now)
            return refusal if refusal is not None else self.record_locked(charges, now)

    def acquire_at(self, charges: Sequence[Charge], now: float) -> LimitRefusal | Receipt:
        """``acquire`` at a given time (tests and the property suite drive the clock)."""
        with self._lock:
            refusal = self.check_locked(charges, now)
            return refusal if refusal is not None else self.record_locked(charges, now)

    def check_locked(self, charges: Sequence[Charge], now: float) -> LimitRefusal | None:
        for charge in charges:
            if charge.family is not None:
                full = self._keys_full(charge, now)
                if full is not None:
                    return full
            log = self._logs.get(charge.counter)
            used = log.used(charge.window_s, now) if log is not None else 0.0
            if used + charge.cost > charge.max:
                if charge.cost > charge.max or log is None or not log.times:
                    return LimitRefusal(charge, used, None)
                return LimitRefusal(charge, used, log.retry_after(charge.window_s, now, charge.cost, charge.max))
        return None

    def record_locked(self, charges: Sequence[Charge], now: float) -> Receipt:
        # Every limit naming a counter keeps its entries alive for its window: prune to the longest.
        for charge in charges:
            if charge.window_s > self._longest.get(charge.counter, 0.0):
                self._longest[charge.counter] = charge.window_s
        recorded: set[str] = set()
        for charge in charges:
            # Limits naming the same counter share one log: the call is one event on it.
            if charge.counter in recorded:
                continue
            recorded.add(charge.counter)
            log = self._logs.get(charge.counter)
            if log is None:
                log = self._logs[charge.counter] = _Log()
            log.prune(self._longest[charge.counter], now)
            log.record(now, charge.cost)
            if charge.family is not None:
                self._keys.setdefault(charge.family, {})[charge.counter] = now + self._longest[charge.counter]
        return Receipt(tuple(charges), now)

    def _keys_full(self, charge: Charge, now: float) -> LimitRefusal | None:
        """A refusal when ``charge`` is a new key and its family tracks ``max_keys`` keys already.

        A key is tracked while its window holds a call: once that empties, forgetting it resets nothing.
        """
        keys = self._keys.get(charge.family or "")
        if keys is None:
            return None
        expires = keys.get(charge.counter)
        if (expires is not None and expires >= now) or len(keys) < charge.max_keys:
            return None
        for key in [k for k, at in keys.items() if at < now]:
            del keys[key]
            self._logs.pop(key, None)  # its window is empty: nothing of it is left to count
        if len(keys) < charge.max_keys:
            return None
        return LimitRefusal(charge, float(len(keys)), max(0.0, min(keys.values()) - now), keys_full=True)

    def refund(self, receipt: Receipt) -> None:
        """Take back what ``receipt`` recorded; a second refund of the same receipt does nothing."""
        with self._lock:
            if receipt.refunded:
                return
            receipt.refunded = True
            done: set[str] = set()
            for charge in receipt.charges:
                log = self._logs.get(charge.counter)
                if log is not None and charge.counter not in done:
                    done.add(charge.counter)
                    log.remove(receipt.at, charge.cost)

    def usage(self, counter: str, window_s: float) -> float:
        return self.usage_at(counter, window_s, self._clock())

    def usage_at(self, counter: str, window_s: float, now: float) -> float:
        with self._lock:
            log = self._logs.get(counter)
            return log.used(window_s, now) if log is not None else 0.0

    def counters(self) -> list[str]:
        with self._lock:
            return sorted(self._logs)
