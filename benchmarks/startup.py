"""Start-up: spawn → first answer, direct vs the guard; and what the guard imports.

    python benchmarks/startup.py [--quick] [--runs N] [--baseline DIR ...]

Two first messages, each on a fresh spawn: ``initialize`` (protocol up to
2025-11-25) and ``server/discover`` (the stateless 2026 era). The clock starts
just before ``Popen`` and stops when the answer's line has been read. Variants:
direct; the Python thread floor (interpreter start + a relay, no policy); the
guard with no policy found (allow-all by discovery, with its stderr notice); the
guard with a policy file (limiter active). Medians over interleaved runs. On Linux,
also the CPU time the first process (the guard; the server when direct) had used by
the ``initialize`` answer: on a shared machine, where the wall clock also counts
waiting for the CPU, it is the steadier figure for a before/after.

Then one guard start with ``PYTHONPROFILEIMPORTTIME=1`` (the upstream runs with
``python -I`` so only the guard's imports are reported), parsed into the top 15
modules by cumulative import time (median of 3 starts).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import (
    DISCOVER,
    FLOORS_DIR,
    INITIALIZE,
    LIMITER_POLICY,
    PYTHON,
    BenchError,
    Variant,
    fmt,
    guard_command,
    isolated_env,
    machine,
    median,
    print_machine,
    print_table,
    progress,
    rotated,
    setup_driver,
    upstream_command,
    write_policy,
    write_results,
)

FIRST_MESSAGES = {"initialize": INITIALIZE, "server/discover": DISCOVER}
_IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S.*)$")


def variants(baselines: Sequence[Path] = ()) -> list[Variant]:
    guard = guard_command()
    limiter = write_policy("limiter", LIMITER_POLICY)
    found = [
        Variant("direct", (), "direct"),
        Variant("floor: threads (Python)", (PYTHON, str(FLOORS_DIR / "thread_relay.py"), "--"), "floor"),
        Variant("mcp-guard, no policy (allow-all)", (*guard, "--"), "guard"),
        Variant("mcp-guard --policy (limiter)", (*guard, "--policy", str(limiter), "--"), "guard"),
    ]
    for baseline in baselines:
        # Another checkout run from its source, in the same rounds: a change's before/after. Run in the
        # checkout's folder: `python -m` puts the working directory first on sys.path, so from this one it
        # would run this checkout's mcp_guard, whatever PYTHONPATH says.
        old, where = (PYTHON, "-m", "mcp_guard"), str(baseline.resolve())
        env = {"PYTHONPATH": where}
        label = _baseline_label(baseline, baselines)
        found.append(Variant(f"{label}, no policy (allow-all)", (*old, "--"), "guard", env, cwd=where))
        found.append(
            Variant(f"{label} --policy (limiter)", (*old, "--policy", str(limiter), "--"), "guard", env, cwd=where)
        )
    return found


def _baseline_label(baseline: Path, baselines: Sequence[Path]) -> str:
    return "baseline" if len(baselines) == 1 else f"baseline {baseline.name}"


def process_cpu_ms(pid: int) -> float | None:
    """CPU time process ``pid`` has used so far, its live threads summed (Linux: schedstat, in ns); None elsewhere.

    Unlike the wall clock, it does not count time spent waiting for a CPU that other work holds."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    total = 0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e6


def time_first_answer(variant: Variant, frame: bytes) -> tuple[float, float | None]:
    """Milliseconds from spawn to the first answer's newline, and the CPU milliseconds the first process
    (the guard, or the server when direct; not the server behind a guard) had used by then."""
    env = {**isolated_env(), **variant.env}
    argv = variant.argv(upstream_command())
    start = time.perf_counter_ns()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        bufsize=0,
        env=env,
        cwd=variant.cwd,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(frame)
    line = proc.stdout.readline()
    elapsed = time.perf_counter_ns() - start
    cpu = process_cpu_ms(proc.pid)
    proc.stdin.close()
    proc.wait(10)
    proc.stdout.close()
    if not line.startswith(b'{"jsonrpc":"2.0","id":0,"result"'):
        raise BenchError(f"{variant.name}: unexpected first answer {line[:200]!r}")
    return elapsed / 1e6, cpu


def import_profile(starts: int, baseline: Path | None = None) -> list[dict[str, Any]]:
    """Top 15 modules by cumulative import time in a real guard start (median over ``starts``);
    with ``baseline``, that checkout's guard run from its source."""
    env = isolated_env()
    env["PYTHONPROFILEIMPORTTIME"] = "1"
    guard = guard_command()
    where = None
    if baseline is not None:
        where = env["PYTHONPATH"] = str(baseline.resolve())
        guard = [PYTHON, "-m", "mcp_guard"]
    limiter = write_policy("limiter", LIMITER_POLICY)
    cumulative: dict[str, list[int]] = defaultdict(list)
    self_us: dict[str, list[int]] = defaultdict(list)
    depth: dict[str, int] = {}
    totals: list[int] = []
    for _ in range(starts):
        argv = [*guard, "--policy", str(limiter), "--", *upstream_command()]
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, env=env, cwd=where
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.write(INITIALIZE)
        proc.stdout.readline()
        proc.stdin.close()
        proc.wait(10)
        stderr = proc.stderr.read().decode(errors="replace")
        proc.stdout.close()
        proc.stderr.close()
        total = 0
        for line in stderr.splitlines():
            m = _IMPORT_LINE.match(line)
            if m is None:
                continue
            name = m.group(4).strip()
            self_us[name].append(int(m.group(1)))
            cumulative[name].append(int(m.group(2)))
            depth[name] = len(m.group(3)) // 2
            total += int(m.group(1))
        totals.append(total)
    top = sorted(cumulative, key=lambda n: median(cumulative[n]), reverse=True)[:15]
    rows = [
        {
            "module": name,
            "cumulative_ms": median(cumulative[name]) / 1000,
            "self_ms": median(self_us[name]) / 1000,
            "depth": depth[name],
        }
        for name in top
    ]
    rows.insert(0, {"module": "(all imports: sum of self times)", "cumulative_ms": median(totals) / 1000})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 runs instead of 15")
    parser.add_argument("--runs", type=int, help="interleaved runs per variant and first message (default 15)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to CPU 0")
    parser.add_argument(
        "--baseline",
        type=Path,
        action="append",
        default=[],
        help="another mcp-guard checkout (its root) to measure side by side, e.g. main; may be repeated",
    )
    args = parser.parse_args()
    pinning = setup_driver(args.no_pin)
    runs = args.runs or (5 if args.quick else 15)
    info = machine(pinning)
    print_machine(info)

    vs = variants(args.baseline)
    for v in vs:  # one untimed start each: page cache and .pyc files warm
        for frame in FIRST_MESSAGES.values():
            time_first_answer(v, frame)
    samples: dict[str, dict[str, list[float]]] = {v.name: {m: [] for m in FIRST_MESSAGES} for v in vs}
    cpu: dict[str, list[float]] = {v.name: [] for v in vs}  # initialize only
    for r in range(runs):
        for v in rotated(vs, r):
            for message, frame in FIRST_MESSAGES.items():
                ms, cpu_ms = time_first_answer(v, frame)
                samples[v.name][message].append(ms)
                if message == "initialize" and cpu_ms is not None:
                    cpu[v.name].append(cpu_ms)
        if (r + 1) % 5 == 0 or r + 1 == runs:
            progress(f"startup: run {r + 1}/{runs} done")

    summary: dict[str, Any] = {}
    rows = []
    for v in vs:
        entry: dict[str, Any] = {}
        cells = [v.name]
        for message in FIRST_MESSAGES:
            ms = median(samples[v.name][message])
            direct = median(samples["direct"][message])
            added = median([a - d for a, d in zip(samples[v.name][message], samples["direct"][message], strict=True)])
            entry[message] = {"median_ms": ms, "added_ms": added, "ratio_vs_direct": ms / direct}
            cells += [fmt(ms), fmt(added) if v.name != "direct" else "-", f"{ms / direct:.2f}x"]
        if cpu[v.name]:
            entry["initialize"]["process_cpu_ms"] = median(cpu[v.name])
        cells.append(fmt(median(cpu[v.name])) if cpu[v.name] else "-")
        summary[v.name] = entry
        rows.append(cells)
    print()
    tables = [
        print_table(
            [
                "variant",
                "initialize ms",
                "added ms",
                "x direct",
                "server/discover ms",
                "added ms",
                "x direct",
                "CPU ms (initialize)",
            ],
            rows,
            title=f"spawn -> first answer ({runs} interleaved runs; medians)",
        )
    ]
    imports = import_profile(3)
    if args.baseline:
        # The same sum for each baseline, so the import share of a before/after is in one run too.
        sums = [["this checkout", fmt(imports[0]["cumulative_ms"], 1)]]
        for baseline in args.baseline:
            total = import_profile(3, baseline)[0]["cumulative_ms"]
            sums.append([_baseline_label(baseline, args.baseline), fmt(total, 1)])
        tables.append(
            print_table(["guard --policy (limiter)", "all imports, sum of self ms"], sums, title="imports side by side")
        )
    tables.append(
        print_table(
            ["module (guard start, PYTHONPROFILEIMPORTTIME)", "nesting", "cumulative ms", "self ms"],
            [
                [row["module"], str(row.get("depth", "")), fmt(row["cumulative_ms"], 2), fmt(row.get("self_ms"), 2)]
                for row in imports
            ],
            title="top 15 imports by cumulative time (median of 3 guard starts)",
        )
    )
    write_results(
        "startup",
        {
            "machine": info,
            "runs": runs,
            "summary": summary,
            "samples_ms": samples,
            "process_cpu_ms": cpu,
            "imports": imports,
            "tables": tables,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
