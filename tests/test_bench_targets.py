"""Issue 21's targets table (benchmarks/_targets.py): each target judged from results files as the scripts write
them, met or missed at the thresholds of the issue, and "not measured" (never "met") when figures are missing."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import _targets
from _targets import MET, MISSED, NOT_MEASURED, REPORTED, all_targets, judge, paired_delta

FLOOR = "floor: threads (Python)"
ALLOW = "mcp-guard allow-all"
LIMIT = "mcp-guard limit"
WARDN = "wardn 0.3.0 (PyPI)"


def latency(added: float, median: float | None = None, rounds: int = 3) -> dict[str, Any]:
    return {
        "added_us": added,
        "median_us": median if median is not None else added + 20.0,
        "round_medians_us": [median if median is not None else added + 20.0] * rounds,
        "round_indices": list(range(rounds)),
    }


def summary(allow: float, limit: float, floor: float, peer: float | None, cps: dict[str, float]) -> dict[str, Any]:
    rows = {"direct": latency(0.0), FLOOR: latency(floor), ALLOW: latency(allow), LIMIT: latency(limit)}
    if peer is not None:
        rows[WARDN] = latency(peer)
    for name, row in rows.items():
        row["added_vs_thread_floor"] = row["added_us"] / floor if name != "direct" else None
    throughput = {
        name: {"calls_per_s": value, "ratio_vs_thread_floor": value / cps[FLOOR]} for name, value in cps.items()
    }
    return {"latency": {"16": rows}, "throughput": throughput}


def roundtrip(peer: float | None = 80.0) -> dict[str, Any]:
    cps = {FLOOR: 30_000.0, ALLOW: 20_000.0, LIMIT: 17_000.0}
    if peer is not None:
        cps[WARDN] = 9_000.0
    compact = summary(allow=35.0, limit=36.0, floor=17.7, peer=peer, cps=cps)
    compact["latency"]["1000000"] = {FLOOR: latency(900.0, 1000.0), ALLOW: latency(1150.0, 1250.0)}
    compact["latency"]["1000000"][LIMIT] = latency(1100.0, 1190.0)
    compact["latency"]["1000000"][LIMIT]["added_vs_thread_floor"] = 1100.0 / 900.0
    compact["latency"]["1000000"][ALLOW]["added_vs_thread_floor"] = 1150.0 / 900.0
    compact["latency"]["16"]["mcp-guard results"] = latency(40.0)
    spaced = summary(allow=50.0, limit=52.0, floor=20.0, peer=peer, cps=cps)
    variants = [{"name": name, "kind": "guard"} for name in (ALLOW, LIMIT)]
    if peer is not None:
        variants.append({"name": WARDN, "kind": "peer"})
    return {
        "variants": variants,
        "summary": compact,
        "summary_spaced": spaced,
        "features": {"results": "result inspection"},
    }


def by_case(rows: list[_targets.Target], goal_start: str) -> dict[str, _targets.Target]:
    return {row.case: row for row in rows if row.goal.startswith(goal_start)}


def test_judge_at_most_at_least_and_missing() -> None:
    assert judge(2.0, 2.0) == MET
    assert judge(2.01, 2.0) == MISSED
    assert judge(0.6, 0.6, at_most=False) == MET
    assert judge(0.59, 0.6, at_most=False) == MISSED
    assert judge(None, 2.0) == NOT_MEASURED
    assert judge(float("nan"), 2.0) == NOT_MEASURED


def test_latency_and_throughput_against_the_thread_floor() -> None:
    rows = all_targets({"roundtrip": roundtrip()})
    added = by_case(rows, "16 B added latency <= 2x")
    assert added["allow-all, compact"].verdict == MET  # 35.0 / 17.7 = 1.98
    assert added["limit, compact"].verdict == MISSED  # 36.0 / 17.7 = 2.03
    assert added["allow-all, spaced"].verdict == MISSED  # 50 / 20 = 2.5
    assert added["allow-all, compact"].measured == "35.0 us = 1.98x (floor 17.7 us)"
    put = by_case(rows, "pipelined calls/s >= 0.6x")
    assert put["allow-all, compact"].verdict == MET  # 0.67
    assert put["limit, compact"].verdict == MISSED  # 0.57


def test_peer_target_compares_with_the_fastest_peer_of_the_same_run() -> None:
    rows = all_targets({"roundtrip": roundtrip(peer=80.0)})
    lat = by_case(rows, "16 B added latency <= 0.5x fastest peer")
    assert lat["allow-all, compact"].verdict == MET  # 35 / 80 = 0.44
    assert lat["allow-all, spaced"].verdict == MISSED  # 50 / 80 = 0.63
    assert "(wardn 0.3.0 (PyPI)) = 0.44x [roundtrip]" in lat["allow-all, compact"].measured
    put = by_case(rows, "pipelined calls/s >= 2x fastest peer")
    assert put["allow-all, compact"].verdict == MET  # 20000 / 9000
    assert put["limit, compact"].verdict == MISSED  # 17000 / 9000 = 1.89


def test_peer_target_takes_the_worst_run_and_says_when_no_peer_was_measured() -> None:
    faster = roundtrip(peer=60.0)  # in the peers run, the fastest peer added 60 us: 35 / 60 = 0.58
    rows = all_targets({"roundtrip": roundtrip(peer=80.0), "peers": faster})
    lat = by_case(rows, "16 B added latency <= 0.5x fastest peer")
    assert lat["allow-all, compact"].verdict == MISSED
    assert "[roundtrip]" in lat["allow-all, compact"].measured and "[peers]" in lat["allow-all, compact"].measured
    alone = all_targets({"roundtrip": roundtrip(peer=None)})
    lat = by_case(alone, "16 B added latency <= 0.5x fastest peer")
    assert {row.verdict for row in lat.values()} == {NOT_MEASURED}


def test_large_results_judge_the_ratio_of_round_trips_and_show_the_added_ratio() -> None:
    rows = by_case(all_targets({"roundtrip": roundtrip()}), "1 MB / 20 MB")
    assert rows["allow-all, 1 MB"].verdict == MISSED  # 1250 / 1000 = 1.25 (added 1.28)
    assert rows["limit, 1 MB"].verdict == MET  # 1190 / 1000 = 1.19
    assert "= 1.25x (added time 1.28x)" in rows["allow-all, 1 MB"].measured
    assert rows["allow-all, 20 MB"].verdict == NOT_MEASURED


def test_memory_startup_and_features() -> None:
    memory = {
        "summary": {
            ALLOW: {"idle_rss_mib": 40.0, "peak_20mb_request_mib": 75.0, "request_peak_over_idle_x": 1.83},
            LIMIT: {"idle_rss_mib": 40.0, "peak_20mb_request_mib": 125.0, "request_peak_over_idle_x": 4.46},
        }
    }
    startup = {
        "summary": {
            "mcp-guard, no policy (allow-all)": {
                "initialize": {"added_ms": 120.0},
                "server/discover": {"added_ms": 151.0},
            },
            "mcp-guard --policy (limiter)": {"initialize": {"added_ms": 140.0}, "server/discover": {"added_ms": 149.0}},
        }
    }
    rows = all_targets({"roundtrip": roundtrip(), "memory": memory, "startup": startup})
    mem = by_case(rows, "20 MB judged request")
    assert (mem["allow-all"].verdict, mem["limit"].verdict) == (MET, MISSED)
    start = by_case(rows, "start-up")
    assert start["no policy (allow-all)"].verdict == MISSED  # the worse of its two first messages
    assert start["--policy (limit)"].verdict == MET
    features = by_case(rows, "features")
    assert features["results on"].verdict == REPORTED
    assert features["results on"].measured == "16 B +40.0 us (+5.0 vs off)"


@pytest.mark.parametrize(("missing", "goal"), [("roundtrip", ""), ("memory", "20 MB judged"), ("startup", "start-up")])
def test_a_script_not_run_is_not_measured_never_met(missing: str, goal: str) -> None:
    results: dict[str, Any] = {"roundtrip": roundtrip(), "memory": {"summary": {}}, "startup": {"summary": {}}}
    results[missing] = None
    rows = [row for row in all_targets(results) if row.goal.startswith(goal)]
    assert rows
    assert {row.verdict for row in rows} == {NOT_MEASURED}


def test_paired_delta_uses_the_rounds_both_ran() -> None:
    base = {"round_indices": [0, 1, 2, 3], "round_medians_us": [10.0, 50.0, 10.0, 10.0]}
    row = {"round_indices": [0, 2], "round_medians_us": [12.0, 13.0]}
    assert paired_delta(row, base) == 2.5
    assert paired_delta(None, base) is None


def test_cpu_split_subtracts_the_session_from_the_guard_process() -> None:
    data = roundtrip()
    for name, cpu, ctx in ((ALLOW, 60.0, 2.6), (LIMIT, 70.0, 2.7), (FLOOR, 12.0, 2.1)):
        data["summary"]["latency"]["16"][name].update(process_cpu_us_per_call=cpu, ctx_switches_per_call=ctx)
    rows = _targets.cpu_split(data, {"allow+audit": 25.0, "limit+audit": 31.5})
    assert rows == [
        ["allow-all, compact", "60.0", "12.0", "25.0", "35.0", "2.60 / 2.10"],
        ["limit, compact", "70.0", "12.0", "31.5", "38.5", "2.70 / 2.10"],
    ]
