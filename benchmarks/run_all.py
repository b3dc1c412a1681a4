"""Run every benchmark, one after another: round trip, start-up, memory, engine, peers.

    python benchmarks/run_all.py            # the full suite (about 5-10 minutes on 2 cores)
    python benchmarks/run_all.py --quick    # a smoke run: fewer rounds and calls
    python benchmarks/run_all.py --skip peers --skip memory

Each script prints its tables and writes benchmarks/results/NAME.json. Peers are
measured only when benchmarks/install_peers.sh has installed them (else that
script notes which are missing). A failing script does not stop the others; the
exit status is non-zero if any failed.

At the end: issue 21's targets, one table judged from the results files this run
wrote (measured, target, met or missed; see _targets.py), saved as
results/targets.json; when a target is missed, where a 16 B call pair's time goes
in the session (``session.py --breakdown``, the guard as installed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCRIPTS = ["roundtrip", "startup", "memory", "engine", "peers"]
JUDGED = ["roundtrip", "peers", "memory", "startup"]  # the scripts whose results the targets read
BREAKDOWN = ["allow+audit", "limit+audit", "limit+audit spaced"]  # session.py variants: the guard as installed

PLAN = {
    "roundtrip": "11 rounds (20 MB in 7): direct, 3 floors, mcp-guard allow-all/--no-audit/limit/conditions, wardn "
    "(16 B + pipelined); JSON with spaces (16 B + pipelined) in 7; 4 feature variants in 5",
    "startup": "15 interleaved spawns per variant and first message, then 3 import profiles",
    "memory": "3 runs per relay",
    "engine": "in process, no pipes: 7 rounds x 20 000 decisions per variant (engine.py alone: 50 000)",
    "peers": "5 rounds, 4 default peers, at most ~1 s of timed calls per size (--budget 1.0), compact and spaced",
}

QUICK_PLAN = {
    "roundtrip": "3 rounds (20 MB in 2), fewer calls; JSON with spaces in 3; feature variants in 2",
    "startup": "5 interleaved spawns per variant and first message, then 3 import profiles",
    "memory": "1 run per relay",
    "engine": "3 rounds x 10 000 decisions per variant",
    "peers": "3 rounds, 4 default peers, fewer calls, compact and spaced",
}


def load_results(names: list[str], since: float) -> tuple[dict[str, Any], list[str]]:
    """The results files of this run (written after ``since``); older files are left out, saying so."""
    from _common import RESULTS_DIR

    found: dict[str, Any] = {}
    notes = []
    for name in names:
        path = RESULTS_DIR / f"{name}.json"
        if not path.is_file():
            notes.append(f"{name}: no results file")
        elif path.stat().st_mtime < since:
            notes.append(f"{name}: not run this time (its results file is older), its targets are not judged")
        else:
            found[name] = json.loads(path.read_text())
    return found, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script")
    parser.add_argument("--skip", action="append", default=[], choices=SCRIPTS, help="leave a script out")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to CPU 0")
    parser.add_argument("--no-breakdown", action="store_true", help="no session breakdown for missed targets")
    args = parser.parse_args()
    failed: list[str] = []
    timings: list[tuple[str, float]] = []
    since = time.time()
    kind = "--quick: a smoke run" if args.quick else "full, about 10 minutes on a quiet 2-CPU machine"
    print(f"plan ({kind}):")
    for name in SCRIPTS:
        print(f"  {name}: {'skipped' if name in args.skip else (QUICK_PLAN if args.quick else PLAN)[name]}")
    print("  then: issue 21's targets table from this run's results, and a session breakdown if one is missed")
    print(flush=True)
    for name in SCRIPTS:
        if name in args.skip:
            continue
        argv = [sys.executable, str(HERE / f"{name}.py")]
        if args.quick:
            argv.append("--quick")
        if args.no_pin:
            argv.append("--no-pin")
        if name == "peers" and not args.quick:
            argv += ["--budget", "1.0"]  # slow peers: a second of timed calls per size is enough to rank them
        if name == "engine" and not args.quick:
            argv += ["--calls", "20000"]  # in process and steady: 7 rounds of 20 000 decisions are plenty here
        if name == "roundtrip":
            # The guard with argument conditions active on the measured tool, interleaved with the rest.
            argv += ["--policy-file", str(HERE / "policies" / "conditions.json")]
        print(f"===== {name} =====", flush=True)
        start = time.monotonic()
        code = subprocess.run(argv, check=False).returncode
        timings.append((name, time.monotonic() - start))
        if code != 0:
            failed.append(name)
            print(f"===== {name} FAILED (exit {code}) =====", flush=True)
        print(flush=True)
    code = targets(since, args)
    print("wall time: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings))
    if code:
        failed.append("targets")
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


def targets(since: float, args: argparse.Namespace) -> int:
    """Print issue 21's targets table from this run's results; the session breakdown when one is missed."""
    sys.path.insert(0, str(HERE))
    from _common import print_table, write_results
    from _targets import HEADERS, SPLIT_HEADERS, all_targets, cpu_split, missed, table_rows

    results, notes = load_results(JUDGED, since)
    rows = all_targets(results)
    print("===== targets (issue 21) =====", flush=True)
    for note in notes:
        print(f"note: {note}")
    roundtrip = results.get("roundtrip") or {}
    for note in roundtrip.get("notes", []):
        if "peer" in note or "pins" in note:
            print(f"note (roundtrip): {note}")
    table = print_table(
        HEADERS,
        table_rows(rows),
        title="Issue 21 targets: the guard as installed (audit log on, hot reload on), figures of this run; "
        "ratios within one run",
        left=3,
    )
    write_results("targets", {"rows": [row.__dict__ for row in rows], "notes": notes, "table": table})
    if missed(rows) and not args.no_breakdown:
        print("Missed targets: where a 16 B tools/call + answer pair's time goes in the session (in process, no")
        print("pipes; the relay's threads and pipes cost the rest, see CPU us/call and ctx sw/call above):", flush=True)
        argv = [sys.executable, str(HERE / "session.py")]
        for variant in BREAKDOWN:
            argv += ["--breakdown", variant]
        if args.no_pin:
            argv.append("--no-pin")
        if subprocess.run(argv, check=False).returncode != 0:
            print("session.py --breakdown failed")
            return 1
        split, _ = load_results(["session_breakdown"], since)
        rows = cpu_split(roundtrip, (split.get("session_breakdown") or {}).get("cpu_us_per_pair", {}))
        if rows:
            print_table(
                SPLIT_HEADERS,
                rows,
                title="Where the guard process's CPU per 16 B call goes: the session (in process, above) and the rest",
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
