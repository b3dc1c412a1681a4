"""The exact sliding-log limiter: unit cases and the property that no window ever admits more than max."""

from __future__ import annotations

from bisect import bisect_left

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_guard.limits import Charge, LimitRefusal, MemoryLimiter, Receipt


def ok(result: LimitRefusal | Receipt) -> bool:
    return isinstance(result, Receipt)


def charge(counter: str = "c", window: float = 60.0, max_: float = 3, cost: float = 1.0) -> Charge:
    return Charge(counter, window, max_, cost, f"rule.{counter}")


def test_admits_max_then_refuses_with_retry_after() -> None:
    lim = MemoryLimiter()
    for t in (0.0, 1.0, 2.0):
        assert ok(lim.acquire_at([charge()], t))
    refusal = lim.acquire_at([charge()], 10.0)
    assert isinstance(refusal, LimitRefusal)
    assert refusal.used == 3
    assert refusal.retry_after_s == pytest.approx(50.0)  # the entry at t=0 leaves the window at t=60


def test_window_is_closed_at_its_far_end() -> None:
    lim = MemoryLimiter()
    assert ok(lim.acquire_at([charge(max_=1)], 0.0))
    assert not ok(lim.acquire_at([charge(max_=1)], 60.0))  # [0, 60] still holds the first call
    assert ok(lim.acquire_at([charge(max_=1)], 60.000001))


def test_refused_call_consumes_nothing_on_any_limit() -> None:
    lim = MemoryLimiter()
    tight = charge("tight", max_=1)
    loose = charge("loose", max_=100)
    assert ok(lim.acquire_at([loose, tight], 0.0))
    refusal = lim.acquire_at([loose, tight], 1.0)
    assert isinstance(refusal, LimitRefusal) and refusal.charge.counter == "tight"
    assert lim.usage_at("loose", 60.0, 1.0) == 1  # the refused call did not touch the loose counter


def test_limits_naming_one_counter_share_it_and_record_once() -> None:
    lim = MemoryLimiter()
    per_minute = charge("shared", window=60.0, max_=5)
    per_second = charge("shared", window=1.0, max_=2)
    assert ok(lim.acquire_at([per_minute, per_second], 0.0))
    assert ok(lim.acquire_at([per_minute, per_second], 0.1))
    refused = lim.acquire_at([per_minute, per_second], 0.2)
    assert isinstance(refused, LimitRefusal) and refused.charge.window_s == 1.0
    assert lim.usage_at("shared", 60.0, 0.2) == 2


def test_spend_cap_sums_costs_and_refuses_whole_call() -> None:
    lim = MemoryLimiter()
    cap = 500.0
    assert ok(lim.acquire_at([charge("spend", window=3600, max_=cap, cost=300)], 0.0))
    refusal = lim.acquire_at([charge("spend", window=3600, max_=cap, cost=250)], 1.0)
    assert isinstance(refusal, LimitRefusal) and refusal.used == 300
    assert refusal.retry_after_s == pytest.approx(3599.0)
    assert ok(lim.acquire_at([charge("spend", window=3600, max_=cap, cost=200)], 2.0))
    assert lim.usage_at("spend", 3600, 2.0) == 500


def test_cost_above_max_can_never_fit() -> None:
    lim = MemoryLimiter()
    refusal = lim.acquire_at([charge(max_=10, cost=11)], 0.0)
    assert isinstance(refusal, LimitRefusal) and refusal.retry_after_s is None


def test_retry_after_is_exact_for_spend_caps() -> None:
    lim = MemoryLimiter()
    for t, cost in ((0.0, 4.0), (10.0, 3.0), (20.0, 3.0)):
        assert ok(lim.acquire_at([charge(window=100, max_=10, cost=cost)], t))
    # Needs 5 free: dropping the t=0 entry frees 4 (not enough), dropping t=10 too frees 7.
    refusal = lim.acquire_at([charge(window=100, max_=10, cost=5)], 30.0)
    assert isinstance(refusal, LimitRefusal) and refusal.retry_after_s == pytest.approx(80.0)
    assert not ok(lim.acquire_at([charge(window=100, max_=10, cost=5)], 110.0))
    assert ok(lim.acquire_at([charge(window=100, max_=10, cost=5)], 110.01))


def test_long_runs_stay_exact_after_compaction() -> None:
    lim = MemoryLimiter()
    admitted = [t / 10 for t in range(20000) if ok(lim.acquire_at([charge(window=1.0, max_=5)], t / 10))]
    # One call per 0.1 s, window 1 s inclusive, max 5: a steady state of 5 admitted per 11 ticks.
    for i, t in enumerate(admitted):
        later = bisect_left(admitted, t + 1.0 + 1e-9)
        assert later - i <= 5


@settings(max_examples=300, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=5.0, allow_nan=False), min_size=1, max_size=300),
    costs=st.lists(st.integers(min_value=1, max_value=4), min_size=300, max_size=300),
    window=st.sampled_from([1.0, 2.5, 10.0]),
    max_=st.integers(min_value=1, max_value=12),
)
def test_no_window_ever_exceeds_max_and_matches_reference(
    gaps: list[float], costs: list[int], window: float, max_: int
) -> None:
    lim = MemoryLimiter()
    now = 0.0
    admitted: list[tuple[float, int]] = []
    for gap, cost in zip(gaps, costs[: len(gaps)], strict=True):
        now += gap
        admitted_now = ok(lim.acquire_at([charge(window=window, max_=max_, cost=float(cost))], now))
        reference_used = sum(c for t, c in admitted if t >= now - window - 1e-9)
        assert admitted_now == (reference_used + cost <= max_)
        if admitted_now:
            admitted.append((now, cost))
    # No closed interval [t, t + window] holds more than max_.
    for t, _ in admitted:
        assert sum(c for u, c in admitted if t <= u <= t + window) <= max_


def test_refund_takes_back_exactly_one_call() -> None:
    lim = MemoryLimiter()
    first = lim.acquire_at([charge("spend", window=60, max_=10, cost=4)], 0.0)
    second = lim.acquire_at([charge("spend", window=60, max_=10, cost=5)], 1.0)
    assert isinstance(first, Receipt) and isinstance(second, Receipt)
    assert not ok(lim.acquire_at([charge("spend", window=60, max_=10, cost=3)], 2.0))
    lim.refund(first)
    assert lim.usage_at("spend", 60, 2.0) == 5
    assert ok(lim.acquire_at([charge("spend", window=60, max_=10, cost=3)], 2.0))
    assert lim.usage_at("spend", 60, 2.0) == 8


def test_limits_sharing_a_counter_keep_entries_for_the_longest_window() -> None:
    lim = MemoryLimiter()
    short = charge("c", window=1.0, max_=100)
    long = charge("c", window=60.0, max_=5)
    for t in (0.0, 1.0, 2.0, 3.0, 4.0):
        assert ok(lim.acquire_at([short, long], t))
    assert not ok(lim.acquire_at([short, long], 10.0))  # five in the last minute already
    assert lim.usage_at("c", 60.0, 10.0) == 5


def test_refunding_twice_takes_back_one_call() -> None:
    lim = MemoryLimiter()
    first = lim.acquire_at([charge(max_=5)], 0.0)
    assert ok(lim.acquire_at([charge(max_=5)], 0.0))
    assert isinstance(first, Receipt)
    lim.refund(first)
    lim.refund(first)
    assert lim.usage_at("c", 60.0, 1.0) == 1
