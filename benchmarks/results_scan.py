"""Result detectors in process: µs per result at 16 B, 64 KiB and 1 MB, and peak memory at 20 MB.

    python benchmarks/results_scan.py [--quick] [--rounds N] [--no-pin]

The result is a ``CallToolResult`` with one text item of ordinary tool output (logs, JSON, source
code, UUIDs, hashes, base64 images, lockfile integrity strings: the corpus of
``tests/results_fakes.py``), cut to size; the 16 B one says ``The answer is 42``. Rule sets:
*init* (what ``mcp-guard init`` writes: redact secrets and payment_cards, block invisible_text
and terminal_escapes) and *all* (the six built-in detectors). Variants, interleaved round by
round, medians:

* ``json.loads`` of the frame: what parsing a result costs, for reference;
* ``frame_may_match`` on the raw frame: the fast path (no parse) that rules out a frame with
  nothing to find. On this output it answers True at once (it holds look-alikes: numbers,
  ``@``, a PEM header in code), so it is also timed on output without any (hex, UUIDs, git log,
  prose), where it is one whole pass and answers False;
* ``judge_result`` on the parsed result: the walk, the scan and the decision;
* parse + ``judge_result``: the whole slow path;
* at 1 MB also: the same output with 12 planted findings (redact path: the redacted copy is
  built), and stdlib ``re`` searching the same triggers (why the scanner uses RE2).

Peak memory: a fresh interpreter per case builds a 20 MB result, warms the scanner on a small one,
then runs the case; the extra is the growth of ``VmHWM`` (Linux) over what it was before the case,
as a multiple of the 20 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from _common import ROOT, fmt, machine, median, print_machine, print_table, progress, rotated, setup_driver
from _common import write_results as write_json

sys.path.insert(0, str(ROOT / "tests"))

SIZES = {16: "16 B", 64 * 1024: "64 KiB", 1_000_000: "1 MB"}
INIT_RULES = {"redact": ["secrets", "payment_cards"], "block": ["invisible_text", "terminal_escapes"]}
ALL_RULES = {"redact": ["secrets", "payment_cards", "ibans", "emails", "invisible_text", "terminal_escapes"]}
MEMORY_SIZE = 20_000_000
TARGET_16B_US = 5.0


def ordinary(size: int) -> str:
    if size <= 16:
        return "The answer is 42"[:size]
    from results_fakes import ordinary_texts

    texts = ordinary_texts(random.Random(1))
    pieces = list(texts.values())
    random.Random(2).shuffle(pieces)
    blob = "\n".join(pieces).replace("\ufeff", "")
    while len(blob) < size:
        blob += "\n" + blob
    return blob[:size]


def quiet(size: int) -> str:
    """Ordinary output without look-alikes (hex, UUIDs, git log, prose): the fast path scans it all."""
    from results_fakes import ordinary_texts

    texts = ordinary_texts(random.Random(1))
    blob = "\n".join(texts[name] for name in ("random_hex", "uuids", "git_log", "lorem.txt"))
    while len(blob) < size:
        blob += "\n" + blob
    return blob[:size]


def planted(size: int) -> str:
    from results_fakes import positives

    items = [p.context for p in positives(random.Random(3)) if p.detector in ("secrets", "payment_cards")][:12]
    text = ordinary(size)
    step = len(text) // (len(items) + 1)
    out = []
    for i, item in enumerate(items):
        out.append(text[i * step : (i + 1) * step])
        out.append(f"\n{item}\n")
    out.append(text[len(items) * step :])
    return "".join(out)[: size + 4096]


def frame_of(text: str) -> bytes:
    result = {"content": [{"type": "text", "text": text}], "isError": False}
    return json.dumps({"jsonrpc": "2.0", "id": 1, "result": result}, separators=(",", ":")).encode()


def variants(size: int) -> list[tuple[str, Callable[[], object]]]:
    from mcp_guard.inspect import combine_rules, judge_result, scanner_for

    out: list[tuple[str, Callable[[], object]]] = []
    frame = frame_of(ordinary(size))
    parsed = json.loads(frame)["result"]
    out.append(("json.loads of the frame (reference)", lambda: json.loads(frame)))
    for label, rules_doc in (("init", INIT_RULES), ("all", ALL_RULES)):
        rules = combine_rules(rules_doc)
        scanner = scanner_for(rules)

        def fast(scanner: Any = scanner) -> object:
            return scanner.frame_may_match(frame)

        def judged(rules: Any = rules, scanner: Any = scanner) -> object:
            return judge_result(parsed, rules, scanner)

        def whole(rules: Any = rules, scanner: Any = scanner) -> object:
            return judge_result(json.loads(frame)["result"], rules, scanner)

        out.append((f"{label}: frame_may_match (fast path)", fast))
        if size > 16:
            calm = frame_of(quiet(size))
            assert not scanner.frame_may_match(calm)

            def fast_quiet(scanner: Any = scanner, calm: bytes = calm) -> object:
                return scanner.frame_may_match(calm)

            out.append((f"{label}: frame_may_match, no look-alike (whole pass)", fast_quiet))
        out.append((f"{label}: judge_result on the parsed result", judged))
        out.append((f"{label}: parse + judge_result", whole))
    if size >= 1_000_000:
        rules = combine_rules(INIT_RULES)
        scanner = scanner_for(rules)
        dirty = json.loads(frame_of(planted(size)))["result"]
        verdict = judge_result(dirty, rules, scanner)
        assert verdict.outcome == "redact" and len(verdict.findings) >= 12, verdict.summary()
        out.append(("init: judge_result, 12 findings (redact)", lambda: judge_result(dirty, rules, scanner)))
        out.append(("stdlib re, same triggers (engine choice)", stdlib_trigger(frame)))
    return out


def stdlib_trigger(frame: bytes) -> Callable[[], object]:
    """The combined trigger of the ASCII families, compiled with stdlib ``re``, searched over the frame."""
    from mcp_guard.inspect import catalog

    ascii_families = [f for f in catalog.FAMILIES if f.detector not in ("invisible_text", "terminal_escapes")]
    pattern = re.compile("|".join(f"(?:{f.trigger})" for f in ascii_families).encode())
    assert pattern.search(b"x ghp_") is None

    def step() -> object:
        return sum(1 for _ in pattern.finditer(frame))

    return step


def time_step(step: Callable[[], object], calls: int) -> float:
    """Microseconds per call over ``calls`` calls (after a warm-up)."""
    for _ in range(min(20, calls)):
        step()
    start = time.perf_counter_ns()
    for _ in range(calls):
        step()
    return (time.perf_counter_ns() - start) / calls / 1000


def calls_for(size: int, quick: bool) -> int:
    base = {16: 20_000, 64 * 1024: 400, 1_000_000: 20}[size]
    return max(3, base // 10) if quick else base


# --- memory ------------------------------------------------------------------------------------

MEMORY_CASES = {
    "json.loads of the frame alone (reference)": "loads",
    "frame_may_match on the raw frame": "fast",
    "scan of the text (no finding)": "scan",
    "parse + judge_result, no finding": "judge",
    "judge_result, 12 findings (redact copy)": "redact",
}


def hwm_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def reset_hwm() -> None:
    """Make VmHWM the current RSS (Linux 4.0+), so its growth is what the case itself adds."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")


def memory_child(case: str) -> None:
    import gc

    from mcp_guard.inspect import combine_rules, judge_result, scanner_for

    rules = combine_rules(INIT_RULES)
    scanner = scanner_for(rules)
    judge_result({"content": [{"type": "text", "text": planted(100_000)}]}, rules, scanner)  # warm every path
    text: str | None = planted(MEMORY_SIZE) if case == "redact" else ordinary(MEMORY_SIZE)
    # ASCII, so the figures are about the detectors: one emoji makes CPython store a whole str at
    # 4 bytes per character, which would multiply every copy (parsing included) by four.
    text = (text or "").encode("ascii", "ignore").decode("ascii")
    frame = frame_of(text)
    result = json.loads(frame)["result"] if case == "redact" else None
    if case != "scan":
        text = None  # the case starts from the raw frame or the parsed result
    gc.collect()
    reset_hwm()
    before = hwm_kib()
    if case == "loads":
        json.loads(frame)
    elif case == "fast":
        scanner.frame_may_match(frame)
    elif case == "scan":
        scanner.scan(text or "")
    elif case == "judge":
        judge_result(json.loads(frame)["result"], rules, scanner)
    else:
        verdict = judge_result(result, rules, scanner)
        assert verdict.outcome == "redact"
    after = hwm_kib()
    print(json.dumps({"extra_bytes": (after - before) * 1024, "size": len(frame)}))


def measure_memory() -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, case in MEMORY_CASES.items():
        progress(f"results_scan: memory, {name}")
        # A fixed mmap threshold: glibc otherwise raises it after the first big free, and later
        # big blocks then reuse heap pages already resident, hiding what a case allocates.
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
        child = subprocess.run(
            [sys.executable, __file__, "--memory-child", case], check=True, capture_output=True, text=True, env=env
        )
        data = json.loads(child.stdout.strip().splitlines()[-1])
        out[name] = {"extra_mb": data["extra_bytes"] / 1e6, "x_size": data["extra_bytes"] / MEMORY_SIZE}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds, a tenth of the calls")
    parser.add_argument("--rounds", type=int, help="rounds (default 7)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to CPU 0")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return 0
    pinning = setup_driver(args.no_pin)
    rounds = args.rounds or (3 if args.quick else 7)
    info = machine(pinning)
    print_machine(info)

    tables: list[str] = []
    summary: dict[str, dict[str, Any]] = {}
    for size, label in SIZES.items():
        cases = variants(size)
        samples: dict[str, list[float]] = {name: [] for name, _ in cases}
        calls = calls_for(size, args.quick)
        for r in range(rounds):
            for name, step in rotated(cases, r):
                samples[name].append(time_step(step, calls))
            progress(f"results_scan: {label}, round {r + 1}/{rounds} done")
        rows = []
        summary[label] = {}
        for name, _ in cases:
            us = median(samples[name])
            summary[label][name] = {"us": us, "round_values_us": samples[name]}
            rows.append([name, fmt(us, 2 if us < 100 else 0)])
        tables.append(
            print_table(
                ["variant", "us/result"],
                rows,
                title=f"{label} result ({rounds} rounds x {calls:,} results; medians)",
            )
        )
    fast16 = summary["16 B"]["init: frame_may_match (fast path)"]["us"]
    print(
        f"16 B result, built-in detectors, fast path: {fast16:.2f} us "
        f"({'meets' if fast16 <= TARGET_16B_US else 'MISSES'} the {TARGET_16B_US:g} us target)\n"
    )

    memory: dict[str, dict[str, float]] = {}
    if sys.platform.startswith("linux"):
        memory = measure_memory()
        tables.append(
            print_table(
                ["case (20 MB result, init rules)", "peak extra MB", "x result size"],
                [[name, fmt(v["extra_mb"], 1), fmt(v["x_size"], 2)] for name, v in memory.items()],
                title="peak memory over the inputs already in memory (VmHWM growth, fresh interpreter per case)",
            )
        )
    write_json(
        "results_scan",
        {"machine": info, "rounds": rounds, "summary": summary, "memory": memory, "tables": tables},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
