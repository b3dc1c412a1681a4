"""Memory: the relay process's resident set idle, and its peak while relaying 20 MB frames.

    python benchmarks/memory.py [--quick] [--runs N]

For each relay (the guard allow-all, the guard with the limiter active, and the
three no-policy floors), a fresh process set is spawned and, reading the relay's
``/proc/PID/status``:

1. idle: after ``initialize`` and one 16 B call, ``VmRSS`` (after a short pause);
2. a 20 MB *request* (a ``tools/call`` whose arguments carry a 20 MB string, client
   -> upstream: the guard parses and judges it): ``VmHWM`` after it, the peak of the
   request alone (nothing large came before it). Issue 21's target: this peak minus
   idle, divided by the request's size (20,000,000 bytes), at most 2;
3. the peak is reset (``echo 5 > /proc/PID/clear_refs``), then a 20 MB *result*
   (upstream -> client, forwarded unparsed): ``VmHWM`` after it, read before stdin is
   closed: the result direction alone (over both directions where the reset is not
   allowed, which the results record).

Each step is also sampled: ``VmRSS`` read every 2 ms on a thread (the request step until 1.5 s
after the answer, so the audit writer's fingerprint of the 20 MB arguments is in it). ``VmHWM``
under-reports on some kernels (6.x here showed peaks 30 MiB above it) and misses what happens after
the answer; the request's "x request size" takes the higher of the two.

Medians over interleaved runs (memory is nearly deterministic; 3 runs by default).
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

from _common import (
    Session,
    Variant,
    call_frame,
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

BIG = 20_000_000
SAMPLE_EVERY_S = 0.002
AUDIT_FLUSH_S = 1.5  # the audit writer flushes every 0.2 s (later on a loaded machine)


def status_kib(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def reset_peak(pid: int) -> bool:
    """Reset the process's ``VmHWM`` to its current resident set (Linux >= 4.0, same user); whether it worked."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Sampler:
    """The highest ``VmRSS`` of a process, read every few milliseconds on a thread while in the ``with``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.peak_kib = max(self.peak_kib, status_kib(self.pid)["VmRSS"])
            if self._stop.wait(SAMPLE_EVERY_S):
                return

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, status_kib(self.pid)["VmRSS"])


def measure(variant: Variant) -> dict[str, float]:
    with Session(variant.argv(upstream_command([16, BIG])), env=variant.env, cwd=variant.cwd) as session:
        session.initialize()
        session.call(16)
        time.sleep(0.3)
        idle = status_kib(session.pid)
        ident = session.next_id
        session.next_id += 1
        with Sampler(session.pid) as request_step:
            session.send(call_frame(ident, 16, pad=BIG))
            session.expect(ident)
            time.sleep(AUDIT_FLUSH_S)  # the audit writer's turn (it fingerprints the 20 MB arguments)
            after_request = status_kib(session.pid)
        reset = reset_peak(session.pid)
        with Sampler(session.pid) as result_step:
            session.call(BIG)
            after_result = status_kib(session.pid)
    idle_mib = idle["VmRSS"] / 1024
    peak_request = max(after_request["VmHWM"], request_step.peak_kib) / 1024
    return {
        "idle_rss_mib": idle_mib,
        "peak_20mb_request_mib": peak_request,
        "request_peak_over_idle_x": (peak_request - idle_mib) * 1024 * 1024 / BIG,
        "rss_after_request_mib": after_request["VmRSS"] / 1024,
        "sampled_request_peak_mib": request_step.peak_kib / 1024,
        "peak_20mb_result_mib": max(after_result["VmHWM"], result_step.peak_kib) / 1024,
        "sampled_result_peak_mib": result_step.peak_kib / 1024,
        "result_peak_alone": float(reset),
        "rss_after_mib": after_result["VmRSS"] / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 run instead of 3")
    parser.add_argument("--runs", type=int, help="interleaved runs per relay (default 3)")
    parser.add_argument("--policy-file", action="append", default=[], type=Path, help="an extra guard variant")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to CPU 0")
    parser.add_argument(
        "--baseline", type=Path, help="another mcp-guard checkout (its root) to measure side by side, e.g. main"
    )
    args = parser.parse_args()
    pinning = setup_driver(args.no_pin)
    runs = args.runs or (1 if args.quick else 3)
    info = machine(pinning)
    print_machine(info)

    all_variants, notes = relay_variants(guard_policies=args.policy_file, baseline=args.baseline)
    relays = [v for v in all_variants if v.kind != "direct"]
    for note in notes:
        print(f"note: {note}")
    samples: dict[str, list[dict[str, float]]] = {v.name: [] for v in relays}
    for r in range(runs):
        for v in rotated(relays, r):
            samples[v.name].append(measure(v))
        progress(f"memory: run {r + 1}/{runs} done")

    keys = [
        "idle_rss_mib",
        "peak_20mb_request_mib",
        "request_peak_over_idle_x",
        "rss_after_request_mib",
        "sampled_request_peak_mib",
        "peak_20mb_result_mib",
        "sampled_result_peak_mib",
        "result_peak_alone",
        "rss_after_mib",
    ]
    summary: dict[str, Any] = {}
    rows = []
    for v in relays:
        entry = {k: median([s[k] for s in samples[v.name]]) for k in keys}
        entry["request_peak_minus_idle_mib"] = entry["peak_20mb_request_mib"] - entry["idle_rss_mib"]
        summary[v.name] = entry
        rows.append(
            [
                v.name,
                fmt(entry["idle_rss_mib"]),
                fmt(entry["peak_20mb_request_mib"]),
                fmt(entry["request_peak_minus_idle_mib"]),
                f"{entry['request_peak_over_idle_x']:.2f}x",
                fmt(entry["peak_20mb_result_mib"]) + ("" if entry["result_peak_alone"] else " (both)"),
                fmt(entry["rss_after_mib"]),
            ]
        )
    print()
    table = print_table(
        [
            "relay process",
            "idle RSS MiB",
            "peak, 20 MB request",
            "request peak - idle",
            "x request size",
            "peak, 20 MB result",
            "RSS at end",
        ],
        rows,
        title=f"relay memory, MiB (the higher of VmHWM and VmRSS sampled every 2 ms; request first, then the peak "
        f"reset and a result; {runs} run(s); medians)",
    )
    write_results(
        "memory",
        {"machine": info, "notes": notes, "runs": runs, "summary": summary, "samples": samples, "tables": [table]},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
