"""Per-call round trip and pipelined throughput: direct, three relay floors, and the guard.

    python benchmarks/roundtrip.py [--quick] [--rounds N] [--policy-file FILE ...]

For each variant a fresh upstream (``upstream_server.py``) is spawned, directly or
behind the relay, and driven by a raw-pipe client (write a frame, ``readline`` the
answer, ``time.perf_counter_ns``):

* sequential ``tools/call`` round trips with 16 B, 64 KiB, 1 MB and 20 MB results;
* pipelined throughput: 64 requests in flight, 16 B results, calls/s.

Variants: direct; floors with no policy — (a) asyncio streams, (b) one blocking
Python thread per direction, (c) the same in C (built at run time; skipped without
a compiler); mcp-guard allow-all; mcp-guard with the limiter active for ``echo``;
and one more mcp-guard variant per ``--policy-file`` (e.g. a conditions policy).

All processes run on CPU 0; variants are interleaved round by round (a fresh
process set per variant per round); each round's value is the median of its
calls, and the table shows the median over rounds. "added" is the median over
rounds of (variant - direct) in the same round; "vs thread floor" divides a
variant's added latency by the Python thread floor's.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    SIZE_LABELS,
    Session,
    Variant,
    fmt,
    machine,
    median,
    print_machine,
    print_table,
    progress,
    relay_variants,
    rotated,
    setup_driver,
    upstream_command,
    write_results,
)

SIZES = [16, 64 * 1024, 1_000_000, 20_000_000]
BIG = 20_000_000
THREAD_FLOOR = "floor: threads (Python)"
CPU_NOTE = (
    "* CPU us/call: on-CPU time of the spawned process per timed call, all its threads "
    "(/proc/PID/task/*/schedstat): the relay's own work; for direct, the upstream's."
)


@dataclass(frozen=True)
class Plan:
    rounds: int
    big_rounds: int
    calls: dict[int, int]
    warmup: dict[int, int]
    pipelined_total: int
    window: int


FULL = Plan(
    rounds=11,
    big_rounds=7,
    calls={16: 500, 64 * 1024: 200, 1_000_000: 40, BIG: 3},
    warmup={16: 30, 64 * 1024: 20, 1_000_000: 4, BIG: 1},
    pipelined_total=4000,
    window=64,
)
QUICK = Plan(
    rounds=3,
    big_rounds=2,
    calls={16: 100, 64 * 1024: 60, 1_000_000: 12, BIG: 2},
    warmup={16: 10, 64 * 1024: 5, 1_000_000: 2, BIG: 1},
    pipelined_total=1000,
    window=64,
)


def run_round(
    variant: Variant, round_index: int, plan: Plan, sizes: list[int], budget_s: float | None = None
) -> dict[str, Any]:
    """One variant, one fresh process set: every size's per-call times, then the pipelined run.

    With ``budget_s``, a size stops after that many seconds of timed calls (at
    least 3 calls, and after one warm-up call), so a very slow relay cannot stretch
    the run; the planned counts apply otherwise.
    """
    measured = [s for s in sizes if s != BIG or round_index < plan.big_rounds]
    out: dict[str, Any] = {
        "calls_ns": {},
        "cpu_ns_per_call": {},
        "ctx_per_call": {},
        "pipelined_cps": None,
        "pipelined_cpu_ns_per_call": None,
        "pipelined_ctx_per_call": None,
    }
    with Session(variant.argv(upstream_command(measured)), env=variant.env, cwd=variant.cwd) as session:
        session.initialize()
        for size in measured:
            times: list[int] = []
            cpu_before = 0
            if budget_s is None:
                for _ in range(plan.warmup[size]):
                    session.call(size)
                cpu_before, ctx_before = session.cpu_ns(), session.ctx_switches()
                times = [session.call(size) for _ in range(plan.calls[size])]
            else:
                budget_ns = int(budget_s * 1e9)
                warm = [session.call(size)]
                while len(warm) < plan.warmup[size] and sum(warm) < budget_ns / 4:
                    warm.append(session.call(size))
                cpu_before, ctx_before = session.cpu_ns(), session.ctx_switches()
                while len(times) < plan.calls[size] and (len(times) < 3 or sum(times) < budget_ns):
                    times.append(session.call(size))
            out["calls_ns"][size] = times
            out["cpu_ns_per_call"][size] = (session.cpu_ns() - cpu_before) / len(times) if cpu_before else None
            out["ctx_per_call"][size] = (session.ctx_switches() - ctx_before) / len(times) if ctx_before else None
        if 16 in sizes:
            session.pipelined(min(200, plan.pipelined_total), plan.window)  # warm-up
            cpu_before, ctx_before = session.cpu_ns(), session.ctx_switches()
            out["pipelined_cps"] = session.pipelined(plan.pipelined_total, plan.window)
            if cpu_before:
                out["pipelined_cpu_ns_per_call"] = (session.cpu_ns() - cpu_before) / plan.pipelined_total
            if ctx_before:
                out["pipelined_ctx_per_call"] = (session.ctx_switches() - ctx_before) / plan.pipelined_total
    return out


def summarise(variants: list[Variant], rounds: list[dict[str, dict[str, Any]]], sizes: list[int]) -> dict[str, Any]:
    """Per variant and size: per-round medians, their median, paired added latency, ratios."""
    summary: dict[str, Any] = {"latency": {}, "throughput": {}}
    for size in sizes:
        per_variant: dict[str, list[float]] = {}
        for v in variants:
            per_variant[v.name] = [
                median(r[v.name]["calls_ns"][size]) / 1000 for r in rounds if size in r[v.name]["calls_ns"]
            ]
        direct = per_variant["direct"]
        rows: dict[str, Any] = {}
        for v in variants:
            values = per_variant[v.name]
            added = [a - d for a, d in zip(values, direct, strict=True)]
            cpu = [
                r[v.name]["cpu_ns_per_call"][size] / 1000
                for r in rounds
                if r[v.name]["cpu_ns_per_call"].get(size) is not None
            ]
            ctx = [
                r[v.name]["ctx_per_call"][size]
                for r in rounds
                if r[v.name].get("ctx_per_call", {}).get(size) is not None
            ]
            rows[v.name] = {
                "median_us": median(values),
                "process_cpu_us_per_call": median(cpu) if cpu else None,
                "ctx_switches_per_call": median(ctx) if ctx else None,
                "round_medians_us": values,
                "added_us": median(added) if v.name != "direct" else 0.0,
                "ratio_vs_direct": median(values) / median(direct),
            }
        floor_added = rows.get(THREAD_FLOOR, {}).get("added_us")
        for v in variants:
            added_us = rows[v.name]["added_us"]
            rows[v.name]["added_vs_thread_floor"] = (
                added_us / floor_added if floor_added and v.name != "direct" else None
            )
        summary["latency"][str(size)] = rows
    if 16 in sizes:
        direct_cps = [r["direct"]["pipelined_cps"] for r in rounds]
        floor_cps = [r[THREAD_FLOOR]["pipelined_cps"] for r in rounds] if THREAD_FLOOR in rounds[0] else None
        for v in variants:
            cps = [r[v.name]["pipelined_cps"] for r in rounds]
            cpu = [
                r[v.name]["pipelined_cpu_ns_per_call"] / 1000
                for r in rounds
                if r[v.name].get("pipelined_cpu_ns_per_call")
            ]
            ctx = [r[v.name]["pipelined_ctx_per_call"] for r in rounds if r[v.name].get("pipelined_ctx_per_call")]
            summary["throughput"][v.name] = {
                "calls_per_s": median(cps),
                "process_cpu_us_per_call": median(cpu) if cpu else None,
                "ctx_switches_per_call": median(ctx) if ctx else None,
                "round_values": cps,
                "ratio_vs_direct": median(cps) / median(direct_cps),
                "ratio_vs_thread_floor": median(cps) / median(floor_cps) if floor_cps else None,
            }
    return summary


def print_summary(variants: list[Variant], summary: dict[str, Any], sizes: list[int], plan: Plan) -> list[str]:
    tables = []
    for size in sizes:
        rows = []
        for v in variants:
            row = summary["latency"][str(size)][v.name]
            rows.append(
                [
                    v.name,
                    fmt(row["median_us"]),
                    fmt(row["added_us"]) if v.name != "direct" else "-",
                    f"{row['ratio_vs_direct']:.2f}x",
                    f"{row['added_vs_thread_floor']:.2f}x" if row["added_vs_thread_floor"] is not None else "-",
                    fmt(row["process_cpu_us_per_call"]),
                    fmt(row.get("ctx_switches_per_call"), 2),
                ]
            )
        rounds = plan.big_rounds if size == BIG else plan.rounds
        title = (
            f"tools/call round trip, {SIZE_LABELS.get(size, f'{size} B')} result "
            f"({rounds} rounds x {plan.calls[size]} calls; medians)"
        )
        tables.append(
            print_table(
                [
                    "variant",
                    "median us/call",
                    "added us",
                    "x direct",
                    "added vs thread floor",
                    "CPU us/call *",
                    "ctx sw/call",
                ],
                rows,
                title=title,
            )
        )
    print(CPU_NOTE)
    print()
    if summary["throughput"]:
        rows = []
        for v in variants:
            row = summary["throughput"][v.name]
            vs_floor = row["ratio_vs_thread_floor"]
            rows.append(
                [
                    v.name,
                    fmt(row["calls_per_s"], 0),
                    f"{row['ratio_vs_direct']:.2f}x",
                    f"{vs_floor:.2f}x" if vs_floor is not None else "-",
                    fmt(row.get("process_cpu_us_per_call")),
                    fmt(row.get("ctx_switches_per_call"), 2),
                ]
            )
        title = (
            f"pipelined throughput: {plan.window} in flight, 16 B results "
            f"({plan.rounds} rounds x {plan.pipelined_total} calls; medians)"
        )
        tables.append(
            print_table(
                ["variant", "calls/s", "x direct", "x thread floor", "CPU us/call *", "ctx sw/call"], rows, title=title
            )
        )
    if "16" in summary["latency"] and summary["throughput"]:
        tables.append(headline(variants, summary))
    return tables


def headline(variants: list[Variant], summary: dict[str, Any]) -> str:
    """Issue 21's table: 16 B tools/call, added over direct, against the thread floor (same rounds)."""
    latency = summary["latency"]["16"]
    rows = []
    for v in variants:
        if v.name == "direct":
            continue
        row, put = latency[v.name], summary["throughput"][v.name]
        rows.append(
            [
                v.name,
                fmt(row["added_us"]),
                f"{row['added_vs_thread_floor']:.2f}" if row["added_vs_thread_floor"] is not None else "-",
                fmt(row["process_cpu_us_per_call"]),
                fmt(row.get("ctx_switches_per_call"), 2),
                fmt(put["calls_per_s"], 0),
                f"{put['ratio_vs_thread_floor']:.2f}" if put.get("ratio_vs_thread_floor") is not None else "-",
            ]
        )
    return print_table(
        [
            "16 B tools/call, added over direct",
            "added us",
            "x thread floor",
            "CPU us/call",
            "ctx sw/call",
            "pipelined calls/s",
            "x thread floor",
        ],
        rows,
        title="Headline (issue 21): mcp-guard as installed = audit log on, policy hot reload on",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and calls (a smoke run)")
    parser.add_argument("--rounds", type=int, help="rounds for 16 B / 64 KiB / 1 MB and throughput (default 11)")
    parser.add_argument("--big-rounds", type=int, help="rounds that include the 20 MB size (default 7)")
    parser.add_argument("--sizes", help="comma-separated result sizes in bytes (default 16,65536,1000000,20000000)")
    parser.add_argument(
        "--policy-file",
        action="append",
        default=[],
        type=Path,
        help="an extra mcp-guard variant with this policy (repeatable), e.g. a conditions policy",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of another mcp-guard version (e.g. `git worktree add /tmp/before main`) to measure in "
        "the same rounds",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin to CPU 0")
    args = parser.parse_args()
    pinning = setup_driver(args.no_pin)

    plan = QUICK if args.quick else FULL
    if args.rounds or args.big_rounds:
        plan = Plan(
            rounds=args.rounds or plan.rounds,
            big_rounds=min(args.big_rounds or plan.big_rounds, args.rounds or plan.rounds),
            calls=plan.calls,
            warmup=plan.warmup,
            pipelined_total=plan.pipelined_total,
            window=plan.window,
        )
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else SIZES
    for size in sizes:
        plan.calls.setdefault(size, 50)
        plan.warmup.setdefault(size, 5)
    variants, notes = relay_variants(guard_policies=args.policy_file, baseline=args.baseline)
    info = machine(pinning)
    print_machine(info)
    for note in notes:
        print(f"note: {note}")

    rounds: list[dict[str, dict[str, Any]]] = []
    for r in range(plan.rounds):
        results: dict[str, dict[str, Any]] = {}
        for v in rotated(variants, r):
            results[v.name] = run_round(v, r, plan, sizes)
        rounds.append(results)
        progress(f"roundtrip: round {r + 1}/{plan.rounds} done")

    summary = summarise(variants, rounds, sizes)
    print()
    tables = print_summary(variants, summary, sizes, plan)
    write_results(
        "roundtrip",
        {
            "machine": info,
            "notes": notes,
            "plan": {
                "rounds": plan.rounds,
                "big_rounds": plan.big_rounds,
                "calls": plan.calls,
                "warmup": plan.warmup,
                "pipelined_total": plan.pipelined_total,
                "window": plan.window,
            },
            "variants": [{"name": v.name, "argv_prefix": list(v.prefix), "kind": v.kind} for v in variants],
            "summary": summary,
            "tables": tables,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
