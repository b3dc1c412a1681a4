"""The result side in the session, in process: ``Session.from_upstream`` for one answer, with and without
``results`` in the policy.

    python benchmarks/results_session.py [--rounds N] [--no-pin]

The answer to a judged ``tools/call`` (the call is sent first, so the answer is matched to it), at
16 B and 1 MB: prose and ``x`` repeated (nothing looks like a finding: the raw-frame check alone;
one long run of word characters is the trigger pass's slowest input), ordinary log output
(``tests/results_corpus/app.log`` repeated: many triggers, so the answer is parsed and scanned,
nothing found), and the same with one GitHub token (redacted). Policies: allow-all, and
allow-all with the ``results`` rules ``init`` writes; rounds interleaved. Median CPU µs per answer
over rounds (each round the median of its answers), and the difference of the best rounds (on a
loaded machine the closer to a quiet one). Not part of ``run_all.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from _common import ROOT, machine, print_machine, print_table, setup_driver, write_results

from mcp_guard.judge import Judge
from mcp_guard.limits.memory import MemoryLimiter
from mcp_guard.pipeline import Snapshot
from mcp_guard.policy.engine import Engine
from mcp_guard.policy.model import Policy
from mcp_guard.session import Session

RESULTS = {
    "all_tools": {"results": {"redact": ["secrets", "payment_cards"], "block": ["invisible_text", "terminal_escapes"]}}
}
POLICIES: dict[str, dict[str, Any]] = {"no results": {}, "results (init rules)": RESULTS}
TOKEN = "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"  # noqa: S105 - made up, with a valid checksum


def session(doc: dict[str, Any]) -> Session:
    engine = Engine(Policy.model_validate({"version": "1", "default": "allow", **doc}))
    return Session(Judge(engine, MemoryLimiter()), Snapshot(engine), lambda _: None)


def answer(ident: int, text: str) -> bytes:
    result = {"content": [{"type": "text", "text": text}], "isError": False}
    return (json.dumps({"jsonrpc": "2.0", "id": ident, "result": result}, separators=(",", ":")) + "\n").encode()


def call(ident: int) -> bytes:
    message = {"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}
    return (json.dumps(message) + "\n").encode()


def one_round(doc: dict[str, Any], text: str, calls: int) -> float:
    s = session(doc)
    frames = [answer(i, text) for i in range(calls)]
    times = []
    for i in range(calls):
        s.from_client(call(i))
        start = time.thread_time_ns()  # CPU time: what the relay spends, whatever else the machine runs
        s.from_upstream(frames[i])
        times.append(time.thread_time_ns() - start)
    return statistics.median(times) / 1000


def texts() -> list[tuple[str, str, int]]:
    log = (ROOT / "tests" / "results_corpus" / "app.log").read_text(encoding="utf-8")
    big_log = (log * (1_000_000 // len(log) + 1))[:1_000_000]
    half = len(big_log) // 2
    return [
        ("16 B, 'x' repeated", "x" * 16, 2000),
        ("16 B, start of a token", TOKEN[:16], 2000),
        ("1 MB, lorem ipsum", ("lorem ipsum dolor sit amet, " * 40_000)[:1_000_000], 20),
        ("1 MB, 'x' repeated", "x" * 1_000_000, 20),
        ("1 MB, log output", big_log, 10),
        ("1 MB, log output + a token", big_log[:half] + f" {TOKEN} " + big_log[half + len(TOKEN) + 2 :], 10),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args()
    info = machine(setup_driver(args.no_pin))
    print_machine(info)
    rows = []
    summary: dict[str, dict[str, float]] = {}
    for label, text, calls in texts():
        values: dict[str, list[float]] = {name: [] for name in POLICIES}
        for _ in range(args.rounds):  # interleaved, so drift in the machine's load hits both alike
            for name, doc in POLICIES.items():
                values[name].append(one_round(doc, text, calls))
        medians = {name: statistics.median(v) for name, v in values.items()}
        lows = {name: min(v) for name, v in values.items()}
        summary[label] = {**{f"{k} median": v for k, v in medians.items()}, **{f"{k} min": v for k, v in lows.items()}}
        with_rules = "results (init rules)"
        rows.append(
            [
                label,
                f"{medians['no results']:,.1f}",
                f"{medians[with_rules]:,.1f}",
                f"{medians[with_rules] - medians['no results']:+,.1f}",
                f"{lows[with_rules] - lows['no results']:+,.1f}",
            ]
        )
    print_table(
        ["answer", "no results", "results (init rules)", "difference", "difference of the best rounds"],
        rows,
        title=f"Session.from_upstream, one answer ({args.rounds} rounds; medians, us)",
    )
    write_results("results_session", {"machine": info, "rounds": args.rounds, "summary": summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
