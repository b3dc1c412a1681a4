"""Run every benchmark, one after another: round trip, start-up, memory, engine, peers.

    python benchmarks/run_all.py            # the full suite (about 5-10 minutes on 2 cores)
    python benchmarks/run_all.py --quick    # a smoke run: fewer rounds and calls
    python benchmarks/run_all.py --skip peers --skip memory

Each script prints its tables and writes benchmarks/results/NAME.json. Peers are
measured only when benchmarks/install_peers.sh has installed them (else that
script notes which are missing). A failing script does not stop the others; the
exit status is non-zero if any failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["roundtrip", "startup", "memory", "engine", "peers"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script")
    parser.add_argument("--skip", action="append", default=[], choices=SCRIPTS, help="leave a script out")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to CPU 0")
    args = parser.parse_args()
    failed: list[str] = []
    timings: list[tuple[str, float]] = []
    for name in SCRIPTS:
        if name in args.skip:
            continue
        argv = [sys.executable, str(HERE / f"{name}.py")]
        if args.quick:
            argv.append("--quick")
        if args.no_pin:
            argv.append("--no-pin")
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
    print("wall time: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings))
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
