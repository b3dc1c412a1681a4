"""Memory: the relay process's resident set idle, and its peak while relaying 20 MB frames.

    python benchmarks/memory.py [--quick] [--runs N]

For each relay (the guard allow-all, the guard with the limiter active, and the
three no-policy floors), a fresh process set is spawned and, reading the relay's
``/proc/PID/status``:

1. idle: after ``initialize`` and one 16 B call, ``VmRSS`` (after a short pause);
2. a 20 MB *result* (upstream -> client, forwarded unparsed): ``VmHWM`` after it;
3. a 20 MB *request* (a ``tools/call`` whose arguments carry a 20 MB string, client
   -> upstream: the guard parses and judges it): ``VmHWM`` after it, read before
   stdin is closed.

``VmHWM`` is the peak resident set since the process started, so step 3's value is
the peak over both directions; step 2's is the result direction alone. Medians over
interleaved runs (memory is nearly deterministic; 3 runs by default).

The last columns are sampled: ``VmRSS`` read every 2 ms during each step (step 3 until
1.5 s after the answer, so the audit writer's fingerprint of the 20 MB arguments is in
it), over idle, and step 3's as a multiple of the request's size. ``VmHWM`` under-reports
on some kernels, and it cannot show step 3's own peak when step 2's was higher.
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


class Sampler:
    """The highest ``VmRSS`` of a process, read every few milliseconds on a thread while in the ``with``.

    ``VmHWM`` alone under-reports on some kernels (6.x here showed peaks 30 MiB above it), and it cannot
    show a step's own peak after an earlier, higher one.
    """

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
        with Sampler(session.pid) as result_step:
            session.call(BIG)
            after_result = status_kib(session.pid)
        ident = session.next_id
        session.next_id += 1
        with Sampler(session.pid) as request_step:
            session.send(call_frame(ident, 16, pad=BIG))
            session.expect(ident)
            after_request = status_kib(session.pid)
            time.sleep(AUDIT_FLUSH_S)  # the audit writer's turn (it fingerprints the 20 MB arguments)
    return {
        "idle_rss_mib": idle["VmRSS"] / 1024,
        "peak_after_20mb_result_mib": after_result["VmHWM"] / 1024,
        "peak_after_20mb_request_mib": after_request["VmHWM"] / 1024,
        "rss_after_mib": after_request["VmRSS"] / 1024,
        "sampled_result_peak_mib": result_step.peak_kib / 1024,
        "sampled_request_peak_mib": request_step.peak_kib / 1024,
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
        "peak_after_20mb_result_mib",
        "peak_after_20mb_request_mib",
        "rss_after_mib",
        "sampled_result_peak_mib",
        "sampled_request_peak_mib",
    ]
    summary: dict[str, Any] = {}
    rows = []
    for v in relays:
        entry = {k: median([s[k] for s in samples[v.name]]) for k in keys}
        entry["peak_minus_idle_mib"] = entry["peak_after_20mb_request_mib"] - entry["idle_rss_mib"]
        entry["sampled_result_over_idle_mib"] = entry["sampled_result_peak_mib"] - entry["idle_rss_mib"]
        entry["sampled_request_over_idle_mib"] = entry["sampled_request_peak_mib"] - entry["idle_rss_mib"]
        summary[v.name] = entry
        rows.append(
            [
                v.name,
                fmt(entry["idle_rss_mib"]),
                fmt(entry["peak_after_20mb_result_mib"]),
                fmt(entry["peak_after_20mb_request_mib"]),
                fmt(entry["peak_minus_idle_mib"]),
                fmt(entry["rss_after_mib"]),
                fmt(entry["sampled_result_over_idle_mib"]),
                fmt(entry["sampled_request_over_idle_mib"]),
                f"{entry['sampled_request_over_idle_mib'] * 2**20 / BIG:.2f}x",
            ]
        )
    print()
    table = print_table(
        [
            "relay process",
            "idle RSS MiB",
            "peak after 20 MB result",
            "peak after 20 MB request",
            "peak - idle",
            "RSS at end",
            "sampled: result step - idle",
            "request step - idle",
            "x request size",
        ],
        rows,
        title=f"relay memory, MiB (VmRSS / VmHWM from /proc; {runs} run(s); medians)",
    )
    write_results(
        "memory",
        {"machine": info, "notes": notes, "runs": runs, "summary": summary, "samples": samples, "tables": [table]},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
