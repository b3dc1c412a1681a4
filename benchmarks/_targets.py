"""Issue 21's targets, judged from the results files of one run: measured, target, met or missed.

Pure functions over the JSON that ``roundtrip.py``, ``peers.py``, ``memory.py`` and ``startup.py``
write (``benchmarks/results/NAME.json``), so the verdicts can be recomputed from saved results and
tested without running anything. Every ratio compares figures measured in the same run (the floors
and peers are run in the same interleaved rounds as the guard); a target whose figures are missing
says "not measured" and why.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GUARD_ALLOW = "mcp-guard allow-all"
GUARD_LIMIT = "mcp-guard limit"
THREAD_FLOOR = "floor: threads (Python)"
GUARDS = ((GUARD_ALLOW, "allow-all"), (GUARD_LIMIT, "limit"))
LAYOUTS = (("summary", "compact"), ("summary_spaced", "spaced"))
STARTUP_GUARDS = (
    ("mcp-guard, no policy (allow-all)", "no policy (allow-all)"),
    ("mcp-guard --policy (limiter)", "--policy (limit)"),
)
MB20 = 20_000_000

# The thresholds of issue 21.
LATENCY_MAX = 2.0  # 16 B added latency <= 2x the Python thread floor's
THROUGHPUT_MIN = 0.6  # pipelined calls/s >= 0.6x the thread floor's
PEER_FACTOR = 2.0  # both at least 2x better than the fastest peer
LARGE_MAX = 1.2  # 1 MB and 20 MB round trips <= 1.2x the thread floor's
MEMORY_MAX = 2.0  # a judged 20 MB request peaks at <= 2x its size over idle
STARTUP_MAX_MS = 150.0  # start-up <= +150 ms over the server's own

MET, MISSED, NOT_MEASURED, REPORTED = "met", "missed", "not measured", "reported"


@dataclass(frozen=True)
class Target:
    """One row of the targets table."""

    goal: str
    case: str
    measured: str
    target: str
    verdict: str


def judge(value: float | None, limit: float, at_most: bool = True) -> str:
    """``met`` when ``value`` is within ``limit`` (at most, or at least), ``missed`` when not, else ``not measured``."""
    if value is None or math.isnan(value):
        return NOT_MEASURED
    return MET if (value <= limit if at_most else value >= limit) else MISSED


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not math.isnan(value) else None


def _row(summary: Mapping[str, Any] | None, section: str, key: str, name: str) -> Mapping[str, Any] | None:
    """``summary[section][key][name]`` (latency) or ``summary[section][name]`` (throughput, key "")."""
    if not summary:
        return None
    table = summary.get(section) or {}
    if key:
        table = table.get(key) or {}
    row = table.get(name)
    return row if isinstance(row, Mapping) else None


def _peers(data: Mapping[str, Any]) -> list[str]:
    return [v["name"] for v in data.get("variants", []) if v.get("kind") == "peer"]


def latency_targets(roundtrip: Mapping[str, Any] | None) -> list[Target]:
    goal = f"16 B added latency <= {LATENCY_MAX:g}x thread floor's"
    rows = []
    for key, layout in LAYOUTS:
        summary = roundtrip.get(key) if roundtrip else None
        floor = _row(summary, "latency", "16", THREAD_FLOOR)
        for name, label in GUARDS:
            guard = _row(summary, "latency", "16", name)
            ratio = _num(guard.get("added_vs_thread_floor")) if guard else None
            if guard is None or floor is None or ratio is None:
                rows.append(Target(goal, f"{label}, {layout}", "-", f"<= {LATENCY_MAX:.2f}x", NOT_MEASURED))
                continue
            measured = f"{guard['added_us']:.1f} us = {ratio:.2f}x (floor {floor['added_us']:.1f} us)"
            rows.append(
                Target(goal, f"{label}, {layout}", measured, f"<= {LATENCY_MAX:.2f}x", judge(ratio, LATENCY_MAX))
            )
    return rows


def throughput_targets(roundtrip: Mapping[str, Any] | None) -> list[Target]:
    goal = f"pipelined calls/s >= {THROUGHPUT_MIN:g}x thread floor's"
    rows = []
    for key, layout in LAYOUTS:
        summary = roundtrip.get(key) if roundtrip else None
        floor = _row(summary, "throughput", "", THREAD_FLOOR)
        for name, label in GUARDS:
            guard = _row(summary, "throughput", "", name)
            ratio = _num(guard.get("ratio_vs_thread_floor")) if guard else None
            if guard is None or floor is None or ratio is None:
                rows.append(Target(goal, f"{label}, {layout}", "-", f">= {THROUGHPUT_MIN:.2f}x", NOT_MEASURED))
                continue
            measured = f"{guard['calls_per_s']:,.0f}/s = {ratio:.2f}x (floor {floor['calls_per_s']:,.0f}/s)"
            rows.append(
                Target(
                    goal,
                    f"{label}, {layout}",
                    measured,
                    f">= {THROUGHPUT_MIN:.2f}x",
                    judge(ratio, THROUGHPUT_MIN, False),
                )
            )
    return rows


def peer_ratio(
    summary: Mapping[str, Any] | None, peers: Sequence[str], guard: str, metric: str
) -> tuple[float, str] | None:
    """The guard against the fastest peer of the same run: (ratio, description), or None without figures.

    ``latency``: guard's added µs ÷ the lowest peer's added µs (2x better is <= 0.5); ``throughput``: guard's
    calls/s ÷ the highest peer's (2x better is >= 2).
    """
    if metric == "latency":
        found = [(p, _num((_row(summary, "latency", "16", p) or {}).get("added_us"))) for p in peers]
        measured = [(p, v) for p, v in found if v is not None]
        mine = _num((_row(summary, "latency", "16", guard) or {}).get("added_us"))
        if not measured or mine is None:
            return None
        peer, value = min(measured, key=lambda pv: pv[1])
        ratio = mine / value if value > 0 else math.inf
        return ratio, f"{mine:.1f} vs {value:.1f} us ({peer}) = {ratio:.2f}x"
    found = [(p, _num((_row(summary, "throughput", "", p) or {}).get("calls_per_s"))) for p in peers]
    measured = [(p, v) for p, v in found if v is not None]
    mine = _num((_row(summary, "throughput", "", guard) or {}).get("calls_per_s"))
    if not measured or mine is None:
        return None
    peer, value = max(measured, key=lambda pv: pv[1])
    ratio = mine / value if value > 0 else math.inf
    return ratio, f"{mine:,.0f} vs {value:,.0f}/s ({peer}) = {ratio:.2f}x"


def peer_targets(sources: Mapping[str, Mapping[str, Any] | None]) -> list[Target]:
    """Each guard, layout and metric against the fastest peer of each run that measured peers; the verdict
    takes the worst of those runs (each ratio within one run)."""
    rows = []
    for metric, goal, target, limit, at_most in (
        ("latency", "16 B added latency <= 0.5x fastest peer's", "<= 0.50x", 1 / PEER_FACTOR, True),
        ("throughput", "pipelined calls/s >= 2x fastest peer's", ">= 2.00x", PEER_FACTOR, False),
    ):
        for key, layout in LAYOUTS:
            for name, label in GUARDS:
                found: list[tuple[float, str]] = []
                for source, data in sources.items():
                    if not data:
                        continue
                    got = peer_ratio(data.get(key), _peers(data), name, metric)
                    if got is not None:
                        found.append((got[0], f"{got[1]} [{source}]"))
                if not found:
                    rows.append(Target(goal, f"{label}, {layout}", "no peer measured", target, NOT_MEASURED))
                    continue
                worst = max(r for r, _ in found) if at_most else min(r for r, _ in found)
                measured = "; ".join(text for _, text in found)
                rows.append(Target(goal, f"{label}, {layout}", measured, target, judge(worst, limit, at_most)))
    return rows


def large_targets(roundtrip: Mapping[str, Any] | None) -> list[Target]:
    """1 MB and 20 MB: the guard's median round trip ÷ the thread floor's (the verdict), and the added time's."""
    goal = f"1 MB / 20 MB round trip <= {LARGE_MAX:g}x thread floor's"
    summary = roundtrip.get("summary") if roundtrip else None
    rows = []
    for size, label_size in (("1000000", "1 MB"), (str(MB20), "20 MB")):
        floor = _row(summary, "latency", size, THREAD_FLOOR)
        for name, label in GUARDS:
            guard = _row(summary, "latency", size, name)
            if guard is None or floor is None:
                rows.append(Target(goal, f"{label}, {label_size}", "-", f"<= {LARGE_MAX:.2f}x", NOT_MEASURED))
                continue
            ratio = guard["median_us"] / floor["median_us"]
            added = _num(guard.get("added_vs_thread_floor"))
            measured = (
                f"{guard['median_us'] / 1000:.2f} vs {floor['median_us'] / 1000:.2f} ms = {ratio:.2f}x"
                f" (added time {added:.2f}x)"
                if added is not None
                else f"{guard['median_us'] / 1000:.2f} vs {floor['median_us'] / 1000:.2f} ms = {ratio:.2f}x"
            )
            rows.append(
                Target(goal, f"{label}, {label_size}", measured, f"<= {LARGE_MAX:.2f}x", judge(ratio, LARGE_MAX))
            )
    return rows


def memory_targets(memory: Mapping[str, Any] | None) -> list[Target]:
    goal = f"20 MB judged request: peak over idle <= {MEMORY_MAX:g}x its size"
    summary = (memory or {}).get("summary") or {}
    rows = []
    for name, label in GUARDS:
        entry = summary.get(name)
        ratio = _num(entry.get("request_peak_over_idle_x")) if isinstance(entry, Mapping) else None
        if ratio is None or not isinstance(entry, Mapping):
            rows.append(Target(goal, label, "-", f"<= {MEMORY_MAX:.2f}x", NOT_MEASURED))
            continue
        measured = (
            f"{entry['peak_20mb_request_mib'] - entry['idle_rss_mib']:.1f} MiB over idle "
            f"{entry['idle_rss_mib']:.1f} MiB = {ratio:.2f}x"
        )
        rows.append(Target(goal, label, measured, f"<= {MEMORY_MAX:.2f}x", judge(ratio, MEMORY_MAX)))
    return rows


def startup_targets(startup: Mapping[str, Any] | None) -> list[Target]:
    goal = f"start-up <= +{STARTUP_MAX_MS:g} ms over the server's own"
    summary = (startup or {}).get("summary") or {}
    rows = []
    for name, label in STARTUP_GUARDS:
        entry = summary.get(name)
        if not isinstance(entry, Mapping) or not entry:
            rows.append(Target(goal, label, "-", f"<= +{STARTUP_MAX_MS:.0f} ms", NOT_MEASURED))
            continue
        added = {message: _num(values.get("added_ms")) for message, values in entry.items()}
        worst = max((v for v in added.values() if v is not None), default=None)
        measured = ", ".join(f"{message} +{value:.1f} ms" for message, value in added.items() if value is not None)
        rows.append(Target(goal, label, measured or "-", f"<= +{STARTUP_MAX_MS:.0f} ms", judge(worst, STARTUP_MAX_MS)))
    return rows


def paired_delta(
    row: Mapping[str, Any] | None, base: Mapping[str, Any] | None, key: str = "round_medians_us"
) -> float | None:
    """Median over the rounds both were measured in of (row - base), from ``summarise``'s per-round values: a
    variant run in fewer rounds is compared with the reference's values from those rounds only."""
    if row is None or base is None or "round_indices" not in row or "round_indices" not in base:
        return None
    theirs = dict(zip(base["round_indices"], base[key], strict=True))
    deltas = [value - theirs[i] for i, value in zip(row["round_indices"], row[key], strict=True) if i in theirs]
    return statistics.median(deltas) if deltas else None


def feature_targets(roundtrip: Mapping[str, Any] | None) -> list[Target]:
    """Each feature on (a policy that uses it) against allow-all (every feature off), same rounds: reported.

    "No cost for features a policy does not use" is the allow-all rows above; these say what each costs on.
    """
    goal = "features a policy does not use cost nothing"
    features: Mapping[str, str] = (roundtrip or {}).get("features") or {}
    summary = roundtrip.get("summary") if roundtrip else None
    base16 = _row(summary, "latency", "16", GUARD_ALLOW)
    base1m = _row(summary, "latency", "1000000", GUARD_ALLOW)
    rows = []
    for feature in features:
        name = f"mcp-guard {feature}"
        on16 = _row(summary, "latency", "16", name)
        if on16 is None or base16 is None:
            rows.append(Target(goal, f"{feature} on", "-", "off = allow-all", NOT_MEASURED))
            continue
        delta16 = paired_delta(on16, base16)
        measured = f"16 B +{on16['added_us']:.1f} us"
        if delta16 is not None:
            measured += f" ({delta16:+.1f} vs off)"
        delta1m = paired_delta(_row(summary, "latency", "1000000", name), base1m)
        if delta1m is not None:
            measured += f"; 1 MB {delta1m:+.1f} us vs off"
        rows.append(Target(goal, f"{feature} on", measured, "off = allow-all", REPORTED))
    return rows


def all_targets(results: Mapping[str, Mapping[str, Any] | None]) -> list[Target]:
    """Every target of issue 21 from the results of one run (``results[script]``, None when not run)."""
    roundtrip = results.get("roundtrip")
    return [
        *latency_targets(roundtrip),
        *throughput_targets(roundtrip),
        *peer_targets({"roundtrip": roundtrip, "peers": results.get("peers")}),
        *large_targets(roundtrip),
        *memory_targets(results.get("memory")),
        *startup_targets(results.get("startup")),
        *feature_targets(roundtrip),
    ]


# session.py --breakdown variant -> (roundtrip summary key, guard variant): the same configuration through pipes.
SPLIT = (
    ("allow+audit", "summary", GUARD_ALLOW, "allow-all, compact"),
    ("limit+audit", "summary", GUARD_LIMIT, "limit, compact"),
    ("limit+audit spaced", "summary_spaced", GUARD_LIMIT, "limit, spaced"),
)
SPLIT_HEADERS = [
    "16 B call, guard as installed",
    "guard process CPU us/call",
    "thread floor's",
    "session in process us/pair",
    "rest (relay threads, pipes, caches)",
    "ctx sw/call guard / floor",
]


def cpu_split(roundtrip: Mapping[str, Any] | None, session_us: Mapping[str, float]) -> list[list[str]]:
    """Where the guard process's CPU per 16 B call goes: the session's share (measured in process, no pipes, by
    ``session.py --breakdown``) and the rest (the relay's threads and pipes, and the caches the client and the
    upstream evict between calls), beside the thread floor's CPU and both processes' context switches per call."""
    rows = []
    for variant, key, name, label in SPLIT:
        summary = roundtrip.get(key) if roundtrip else None
        guard = _row(summary, "latency", "16", name)
        floor = _row(summary, "latency", "16", THREAD_FLOOR)
        cpu = _num(guard.get("process_cpu_us_per_call")) if guard else None
        session = session_us.get(variant)
        if cpu is None or session is None:
            continue
        floor_cpu = _num(floor.get("process_cpu_us_per_call")) if floor else None
        ctx = _num(guard.get("ctx_switches_per_call")) if guard else None
        floor_ctx = _num(floor.get("ctx_switches_per_call")) if floor else None
        rows.append(
            [
                label,
                f"{cpu:.1f}",
                f"{floor_cpu:.1f}" if floor_cpu is not None else "-",
                f"{session:.1f}",
                f"{cpu - session:.1f}",
                f"{ctx:.2f} / {floor_ctx:.2f}" if ctx is not None and floor_ctx is not None else "-",
            ]
        )
    return rows


def table_rows(rows: Sequence[Target]) -> list[list[str]]:
    return [[row.goal, row.case, row.measured, row.target, row.verdict] for row in rows]


HEADERS = ["target (issue 21)", "case", "measured", "target", "verdict"]


def missed(rows: Sequence[Target]) -> list[Target]:
    return [row for row in rows if row.verdict == MISSED]
