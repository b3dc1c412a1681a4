"""Start-up: spawn → first answer, direct vs the guard; and what the guard imports.

    python benchmarks/startup.py [--quick] [--runs N]

Two first messages, each on a fresh spawn: ``initialize`` (protocol up to
2025-11-25) and ``server/discover`` (the stateless 2026 era). The clock starts
just before ``Popen`` and stops when the answer's line has been read. Variants:
direct; the Python thread floor (interpreter start + a relay, no policy); the
guard with no policy found (allow-all by discovery, with its stderr notice); the
guard with a policy file (limiter active). Medians over interleaved runs.

Then one guard start with ``PYTHONPROFILEIMPORTTIME=1`` (the upstream runs with
``python -I`` so only the guard's imports are reported), parsed into the top 15
modules by cumulative import time (median of 3 starts).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import time
from collections import defaultdict
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


def variants(baseline: Path | None = None) -> list[Variant]:
    guard = guard_command()
    limiter = write_policy("limiter", LIMITER_POLICY)
    found = [
        Variant("direct", (), "direct"),
        Variant("floor: threads (Python)", (PYTHON, str(FLOORS_DIR / "thread_relay.py"), "--"), "floor"),
        Variant("mcp-guard, no policy (allow-all)", (*guard, "--"), "guard"),
        Variant("mcp-guard --policy (limiter)", (*guard, "--policy", str(limiter), "--"), "guard"),
    ]
    if baseline is not None:
        # Another checkout run from its source, in the same rounds: a change's before/after.
        old, env = (PYTHON, "-m", "mcp_guard"), {"PYTHONPATH": str(baseline.resolve())}
        found.append(Variant("baseline, no policy (allow-all)", (*old, "--"), "guard", env))
        found.append(Variant("baseline --policy (limiter)", (*old, "--policy", str(limiter), "--"), "guard", env))
    return found


def time_first_answer(variant: Variant, frame: bytes) -> float:
    """Milliseconds from spawn to the first answer's newline."""
    env = {**isolated_env(), **variant.env}
    argv = variant.argv(upstream_command())
    start = time.perf_counter_ns()
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0, env=env
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(frame)
    line = proc.stdout.readline()
    elapsed = time.perf_counter_ns() - start
    proc.stdin.close()
    proc.wait(10)
    proc.stdout.close()
    if not line.startswith(b'{"jsonrpc":"2.0","id":0,"result"'):
        raise BenchError(f"{variant.name}: unexpected first answer {line[:200]!r}")
    return elapsed / 1e6


def import_profile(starts: int) -> list[dict[str, Any]]:
    """Top 15 modules by cumulative import time in a real guard start (median over ``starts``)."""
    env = isolated_env()
    env["PYTHONPROFILEIMPORTTIME"] = "1"
    limiter = write_policy("limiter", LIMITER_POLICY)
    cumulative: dict[str, list[int]] = defaultdict(list)
    self_us: dict[str, list[int]] = defaultdict(list)
    depth: dict[str, int] = {}
    totals: list[int] = []
    for _ in range(starts):
        argv = [*guard_command(), "--policy", str(limiter), "--", *upstream_command()]
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, env=env
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
        "--baseline", type=Path, help="another mcp-guard checkout (its root) to measure side by side, e.g. main"
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
    for r in range(runs):
        for v in rotated(vs, r):
            for message, frame in FIRST_MESSAGES.items():
                samples[v.name][message].append(time_first_answer(v, frame))
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
            ],
            rows,
            title=f"spawn -> first answer ({runs} interleaved runs; medians)",
        )
    ]
    imports = import_profile(3)
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
            "imports": imports,
            "tables": tables,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
