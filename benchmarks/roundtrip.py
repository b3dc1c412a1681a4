"""Per-call round trip and pipelined throughput: direct, three relay floors, the guard, and its fastest peer.

    python benchmarks/roundtrip.py [--quick] [--rounds N] [--policy-file FILE ...]

For each variant a fresh upstream (``upstream_server.py``) is spawned, directly or
behind the relay, and driven by a raw-pipe client (write a frame, ``readline`` the
answer, ``time.perf_counter_ns``):

* sequential ``tools/call`` round trips with 16 B, 64 KiB, 1 MB and 20 MB results;
* pipelined throughput: 64 requests in flight, 16 B results, calls/s;
* the same 16 B round trips and pipelined run with the client and the upstream
  writing JSON with spaces (``{"jsonrpc": "2.0", "id": 1, ...}``), on a process set
  of its own.

Variants: direct; floors with no policy — (a) asyncio streams, (b) one blocking
Python thread per direction, (c) the same in C (built at run time; skipped without
a compiler); mcp-guard allow-all (also ``--no-audit``); mcp-guard with the limiter
active for ``echo``; one more mcp-guard variant per ``--policy-file`` (e.g. a
conditions policy); the fastest peer (wardn, 16 B and pipelined, when installed);
and one mcp-guard variant per feature a policy can switch on (result inspection,
flows, pins, argument validation: 16 B, 1 MB and pipelined, in fewer rounds).

All processes run on CPU 0; variants are interleaved round by round (a fresh
process set per variant per round); each round's value is the median of its
calls, and the table shows the median over rounds. "added" is the median over
rounds of (variant - direct) in the same round; "vs thread floor" divides a
variant's added latency by the Python thread floor's. The script ends with issue
21's headline tables, the features table and the targets it can judge
(``run_all.py`` judges them all).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    FEATURES,
    GUARD_ALLOW,
    GUARD_LIMIT,
    SIZE_LABELS,
    Session,
    Variant,
    feature_variants,
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
from _peerlist import FASTEST_PEER, find_peer
from _targets import HEADERS, all_targets, paired_delta, table_rows

SIZES = [16, 64 * 1024, 1_000_000, 20_000_000]
BIG = 20_000_000
THREAD_FLOOR = "floor: threads (Python)"
COMPACT = "compact JSON"
SPACED = "JSON with spaces (client and upstream)"
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
    spaced_rounds: int = 0  # rounds that also run the JSON-with-spaces scenario (16 B + pipelined)
    feature_rounds: int = 0  # rounds the feature variants take part in


FULL = Plan(
    rounds=11,
    big_rounds=7,
    calls={16: 500, 64 * 1024: 200, 1_000_000: 40, BIG: 3},
    warmup={16: 30, 64 * 1024: 20, 1_000_000: 4, BIG: 1},
    pipelined_total=4000,
    window=64,
    spaced_rounds=7,
    feature_rounds=5,
)
QUICK = Plan(
    rounds=3,
    big_rounds=2,
    calls={16: 100, 64 * 1024: 60, 1_000_000: 12, BIG: 2},
    warmup={16: 10, 64 * 1024: 5, 1_000_000: 2, BIG: 1},
    pipelined_total=1000,
    window=64,
    spaced_rounds=3,
    feature_rounds=2,
)


def run_round(
    variant: Variant,
    round_index: int,
    plan: Plan,
    sizes: list[int],
    budget_s: float | None = None,
    spaced: bool = False,
) -> dict[str, Any]:
    """One variant, one fresh process set: every size's per-call times, then the pipelined run.

    With ``budget_s``, a size stops after that many seconds of timed calls (at
    least 3 calls, and after one warm-up call), so a very slow relay cannot stretch
    the run; the planned counts apply otherwise. ``spaced``: the client and the
    upstream write JSON with spaces (``{"jsonrpc": "2.0", "id": 1, ...}``).
    A variant with its own ``sizes`` is measured at those only (pipelined: when 16 is one).
    """
    wanted = [s for s in sizes if variant.sizes is None or s in variant.sizes]
    measured = [s for s in wanted if s != BIG or round_index < plan.big_rounds]
    out: dict[str, Any] = {
        "calls_ns": {},
        "cpu_ns_per_call": {},
        "ctx_per_call": {},
        "pipelined_cps": None,
        "pipelined_cpu_ns_per_call": None,
        "pipelined_ctx_per_call": None,
    }
    argv = variant.argv(upstream_command(measured, spaced))
    with Session(argv, env=variant.env, cwd=variant.cwd, spaced=spaced) as session:
        session.initialize()
        for size in measured:
            if size <= 1_000_000:
                session.check_call(size)  # untimed: the relay really relays it (a refusal is not a round trip)
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
        if 16 in wanted:
            warm_rate = session.pipelined(min(200, plan.pipelined_total), plan.window)  # warm-up
            total = plan.pipelined_total
            if budget_s is not None:  # a slow relay: about budget_s seconds' worth of calls (at least 4 windows)
                total = min(total, max(4 * plan.window, int(warm_rate * budget_s)))
            cpu_before, ctx_before = session.cpu_ns(), session.ctx_switches()
            out["pipelined_cps"] = session.pipelined(total, plan.window)
            out["pipelined_calls"] = total
            if cpu_before:
                out["pipelined_cpu_ns_per_call"] = (session.cpu_ns() - cpu_before) / total
            if ctx_before:
                out["pipelined_ctx_per_call"] = (session.ctx_switches() - ctx_before) / total
    return out


def summarise(variants: list[Variant], rounds: list[dict[str, dict[str, Any]]], sizes: list[int]) -> dict[str, Any]:
    """Per variant and size: per-round medians, their median, paired added latency, ratios.

    A variant is paired with direct round by round; one measured in fewer rounds or at fewer sizes
    (see ``Variant.rounds``/``sizes``) has rows only where it has values.
    """
    summary: dict[str, Any] = {"latency": {}, "throughput": {}}
    for size in sizes:
        direct_by_round = {
            i: median(r["direct"]["calls_ns"][size]) / 1000
            for i, r in enumerate(rounds)
            if "direct" in r and size in r["direct"]["calls_ns"]
        }
        rows: dict[str, Any] = {}
        for v in variants:
            values: list[float] = []
            indices: list[int] = []
            added: list[float] = []
            paired_direct: list[float] = []
            cpu: list[float] = []
            ctx: list[float] = []
            for i, r in enumerate(rounds):
                got = r.get(v.name)
                if got is None or size not in got["calls_ns"]:
                    continue
                value = median(got["calls_ns"][size]) / 1000
                values.append(value)
                indices.append(i)
                if i in direct_by_round:
                    added.append(value - direct_by_round[i])
                    paired_direct.append(direct_by_round[i])
                if got["cpu_ns_per_call"].get(size) is not None:
                    cpu.append(got["cpu_ns_per_call"][size] / 1000)
                if got.get("ctx_per_call", {}).get(size) is not None:
                    ctx.append(got["ctx_per_call"][size])
            if not values:
                continue
            rows[v.name] = {
                "median_us": median(values),
                "process_cpu_us_per_call": median(cpu) if cpu else None,
                "ctx_switches_per_call": median(ctx) if ctx else None,
                "round_medians_us": values,
                "round_indices": indices,
                "rounds": len(values),
                "added_us": median(added) if v.name != "direct" else 0.0,
                "ratio_vs_direct": median(values) / median(paired_direct) if paired_direct else None,
            }
        floor_added = rows.get(THREAD_FLOOR, {}).get("added_us")
        for name, row in rows.items():
            row["added_vs_thread_floor"] = row["added_us"] / floor_added if floor_added and name != "direct" else None
        summary["latency"][str(size)] = rows
    if 16 in sizes:
        direct_cps = [r["direct"]["pipelined_cps"] for r in rounds if r.get("direct", {}).get("pipelined_cps")]
        floor_cps = [r[THREAD_FLOOR]["pipelined_cps"] for r in rounds if r.get(THREAD_FLOOR, {}).get("pipelined_cps")]
        for v in variants:
            indices = [i for i, r in enumerate(rounds) if r.get(v.name, {}).get("pipelined_cps")]
            mine = [rounds[i][v.name] for i in indices]
            if not mine:
                continue
            cps = [m["pipelined_cps"] for m in mine]
            cpu = [m["pipelined_cpu_ns_per_call"] / 1000 for m in mine if m.get("pipelined_cpu_ns_per_call")]
            ctx = [m["pipelined_ctx_per_call"] for m in mine if m.get("pipelined_ctx_per_call")]
            summary["throughput"][v.name] = {
                "calls_per_s": median(cps),
                "process_cpu_us_per_call": median(cpu) if cpu else None,
                "ctx_switches_per_call": median(ctx) if ctx else None,
                "round_values": cps,
                "round_indices": indices,
                "rounds": len(cps),
                "ratio_vs_direct": median(cps) / median(direct_cps) if direct_cps else None,
                "ratio_vs_thread_floor": median(cps) / median(floor_cps) if floor_cps else None,
            }
    return summary


def _x(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "-"


def print_summary(
    variants: list[Variant], summary: dict[str, Any], sizes: list[int], plan: Plan, layout: str = COMPACT
) -> list[str]:
    """The per-size tables and the throughput table; with both 16 B and throughput, the headline."""
    tables = []
    for size in sizes:
        rows = []
        latency = summary["latency"][str(size)]
        for v in variants:
            row = latency.get(v.name)
            if row is None:
                continue
            rows.append(
                [
                    v.name,
                    fmt(row["median_us"]),
                    fmt(row["added_us"]) if v.name != "direct" else "-",
                    _x(row["ratio_vs_direct"]),
                    _x(row["added_vs_thread_floor"]),
                    fmt(row["process_cpu_us_per_call"]),
                    fmt(row.get("ctx_switches_per_call"), 2),
                ]
            )
        rounds = plan.big_rounds if size == BIG else plan.rounds
        title = (
            f"tools/call round trip, {SIZE_LABELS.get(size, f'{size} B')} result, {layout} "
            f"(up to {rounds} rounds x {plan.calls[size]} calls; medians)"
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
            row = summary["throughput"].get(v.name)
            if row is None:
                continue
            rows.append(
                [
                    v.name,
                    fmt(row["calls_per_s"], 0),
                    _x(row["ratio_vs_direct"]),
                    _x(row["ratio_vs_thread_floor"]),
                    fmt(row.get("process_cpu_us_per_call")),
                    fmt(row.get("ctx_switches_per_call"), 2),
                ]
            )
        title = (
            f"pipelined throughput: {plan.window} in flight, 16 B results, {layout} "
            f"(up to {plan.rounds} rounds x {plan.pipelined_total} calls; medians)"
        )
        tables.append(
            print_table(
                ["variant", "calls/s", "x direct", "x thread floor", "CPU us/call *", "ctx sw/call"], rows, title=title
            )
        )
    return tables


def headline(variants: list[Variant], summary: dict[str, Any], layout: str = COMPACT) -> str:
    """Issue 21's table: 16 B tools/call, added over direct, against the thread floor (same rounds)."""
    latency = summary["latency"]["16"]
    rows = []
    for v in variants:
        row, put = latency.get(v.name), summary["throughput"].get(v.name)
        if v.name == "direct" or row is None or put is None:
            continue
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
        title=f"Headline (issue 21), {layout}: mcp-guard as installed = audit log on, policy hot reload on",
    )


def feature_table(features: dict[str, str], summary: dict[str, Any]) -> str | None:
    """Each feature on (its own policy) beside allow-all (every feature off) and limit, same rounds."""
    latency16 = summary["latency"].get("16", {})
    latency1m = summary["latency"].get("1000000", {})
    put = summary["throughput"]
    base16 = latency16.get(GUARD_ALLOW)
    base1m = latency1m.get(GUARD_ALLOW)
    base_put = put.get(GUARD_ALLOW)
    if base16 is None or not features:
        return None
    named = {GUARD_ALLOW: "none (every feature off)", GUARD_LIMIT: "one sliding-window limit"}
    named.update({f"mcp-guard {name}": text for name, text in features.items()})
    rows = []
    for name, text in named.items():
        row16, row1m, cps = latency16.get(name), latency1m.get(name), put.get(name)
        if row16 is None:
            continue
        delta16, delta1m = paired_delta(row16, base16), paired_delta(row1m, base1m)
        delta_put = paired_delta(cps, base_put, "round_values")
        rows.append(
            [
                name,
                text,
                fmt(row16["added_us"]),
                f"{delta16:+.1f}" if delta16 is not None else "-",
                fmt(row16["process_cpu_us_per_call"]),
                fmt(row1m["added_us"]) if row1m else "-",
                f"{delta1m:+.1f}" if delta1m is not None else "-",
                fmt(cps["calls_per_s"], 0) if cps else "-",
                f"{delta_put / base_put['calls_per_s']:+.0%}" if delta_put is not None and base_put else "-",
                str(row16["rounds"]),
            ]
        )
    return print_table(
        [
            "variant",
            "feature on",
            "16 B added us",
            "vs allow-all",
            "CPU us/call",
            "1 MB added us",
            "vs allow-all",
            "pipelined calls/s",
            "vs allow-all",
            "rounds",
        ],
        rows,
        left=2,
        title="Features on and off (issue 21): each feature's policy against allow-all, compact, same rounds",
    )


def print_targets(results: dict[str, Any], title: str) -> str:
    """The targets table (see _targets.py) from the results at hand."""
    return print_table(HEADERS, table_rows(all_targets(results)), title=title, left=3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and calls (a smoke run)")
    parser.add_argument("--rounds", type=int, help="rounds for 16 B / 64 KiB / 1 MB and throughput (default 11)")
    parser.add_argument("--big-rounds", type=int, help="rounds that include the 20 MB size (default 7)")
    parser.add_argument("--spaced-rounds", type=int, help="rounds of the JSON-with-spaces scenario (default 7)")
    parser.add_argument("--feature-rounds", type=int, help="rounds of the feature variants (default 5)")
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
    parser.add_argument("--no-peer", action="store_true", help=f"leave out the fastest peer ({FASTEST_PEER})")
    parser.add_argument("--no-features", action="store_true", help="leave out the feature variants")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to CPU 0")
    args = parser.parse_args()
    pinning = setup_driver(args.no_pin)

    base = QUICK if args.quick else FULL
    rounds = args.rounds or base.rounds
    plan = Plan(
        rounds=rounds,
        big_rounds=min(args.big_rounds or base.big_rounds, rounds),
        calls=dict(base.calls),
        warmup=dict(base.warmup),
        pipelined_total=base.pipelined_total,
        window=base.window,
        spaced_rounds=min(args.spaced_rounds or base.spaced_rounds, rounds),
        feature_rounds=min(args.feature_rounds or base.feature_rounds, rounds),
    )
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else SIZES
    for size in sizes:
        plan.calls.setdefault(size, 50)
        plan.warmup.setdefault(size, 5)
    variants, notes = relay_variants(guard_policies=args.policy_file, baseline=args.baseline)
    compact_only = {f"mcp-guard {Path(path).stem}" for path in args.policy_file}
    missing_peer = f"the fastest peer ({FASTEST_PEER}) left out (--no-peer)" if args.no_peer else None
    if not args.no_peer:
        # The fastest peer, in the same rounds as the guard (16 B and pipelined, both layouts): issue 21's
        # "2x better than the fastest other guard measured in the same run".
        peer, note = find_peer(FASTEST_PEER)
        if peer is None:
            note = f"{note}: the headline has no peer and the peer targets are judged without it in this run"
            missing_peer = note
        notes.append(note)
        if peer is not None:
            variants.append(dataclasses.replace(peer, sizes=(16,)))
    features: dict[str, str] = {}
    if not args.no_features:
        found, feature_notes = feature_variants(sizes=(16, 1_000_000), rounds=plan.feature_rounds)
        notes += feature_notes
        variants += found
        compact_only |= {v.name for v in found}
        features = {v.name.removeprefix("mcp-guard "): FEATURES[v.name.removeprefix("mcp-guard ")] for v in found}
    # With spaces: the guard as installed, the floors it is judged against (Python and C threads), the peer.
    compact_only |= {"floor: asyncio streams", *(v.name for v in variants if "--no-audit" in v.prefix)}
    spaced_variants = [v for v in variants if v.name not in compact_only]
    info = machine(pinning)
    print_machine(info)
    print(
        f"plan: {plan.rounds} rounds (20 MB in {plan.big_rounds}); JSON with spaces: 16 B + pipelined in "
        f"{plan.spaced_rounds} rounds; feature variants: 16 B, 1 MB + pipelined in {plan.feature_rounds} rounds; "
        "every variant on a fresh process set per round, interleaved"
    )
    for note in notes:
        print(f"note: {note}")

    compact_rounds: list[dict[str, dict[str, Any]]] = []
    spaced_rounds: list[dict[str, dict[str, Any]]] = []
    for r in range(plan.rounds):
        jobs = [(v, False) for v in variants if v.rounds is None or r < v.rounds]
        if r < plan.spaced_rounds:
            jobs += [(v, True) for v in spaced_variants]
        compact: dict[str, dict[str, Any]] = {}
        spaced: dict[str, dict[str, Any]] = {}
        for v, with_spaces in rotated(jobs, r):
            if with_spaces:
                spaced[v.name] = run_round(v, r, plan, [16], spaced=True)
            else:
                compact[v.name] = run_round(v, r, plan, sizes)
        compact_rounds.append(compact)
        if spaced:
            spaced_rounds.append(spaced)
        progress(f"roundtrip: round {r + 1}/{plan.rounds} done")

    summary = summarise(variants, compact_rounds, sizes)
    summary_spaced = summarise(spaced_variants, spaced_rounds, [16]) if spaced_rounds else None
    print()
    tables = print_summary(variants, summary, sizes, plan)
    if summary_spaced is not None:
        tables += print_summary(spaced_variants, summary_spaced, [16], plan, SPACED)
    if "16" in summary["latency"] and summary["throughput"]:
        tables.append(headline(variants, summary))
        if summary_spaced is not None:
            tables.append(headline(spaced_variants, summary_spaced, SPACED))
        if missing_peer:
            print(f"note: {missing_peer}\n")
    table = feature_table(features, summary)
    if table is not None:
        tables.append(table)
    data: dict[str, Any] = {
        "machine": info,
        "notes": notes,
        "plan": dataclasses.asdict(plan),
        "variants": [
            {"name": v.name, "argv_prefix": list(v.prefix), "kind": v.kind, "sizes": v.sizes, "rounds": v.rounds}
            for v in variants
        ],
        "features": features,
        "summary": summary,
        "summary_spaced": summary_spaced,
    }
    tables.append(
        print_targets({"roundtrip": data}, "Targets (issue 21) this script measures; run_all.py adds the rest")
    )
    data["tables"] = tables
    write_results("roundtrip", data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
