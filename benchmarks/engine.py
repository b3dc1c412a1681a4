"""The policy engine and the limiter alone, in process: decisions per second, µs per decision.

    python benchmarks/engine.py [--quick] [--rounds N] [--calls N]

Each variant is timed over N decisions that rotate through 1, 100 or 10 000
distinct tools/counters (so 10 000 means every decision touches a different
counter). Variants are interleaved round by round; each round starts from a fresh
limiter and first touches every counter once, untimed.

Variants (add one by appending to ``VARIANTS``; a policy variant is just a function
from the number of tools to a policy dict, plus the arguments of the judged call):

* ``MemoryLimiter.acquire``: one ``Charge`` per call on counter ``c{i}``;
* ``Judge.judge`` allow-all: ``default: allow``, no limits (engine only, nothing charged);
* ``Engine.decide`` with one limit per tool: the engine's part of the next one;
* ``Judge.judge`` with one limit per tool (``tools.tool{i}.limits``: counter ``c{i}``);
* ``Judge.judge`` with conditions (``deny_if`` and ``require``) and one limit per tool. A
  variant whose policy the installed mcp-guard rejects (e.g. before conditions
  exist) is skipped with a note.
"""

from __future__ import annotations

import argparse
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from _common import fmt, machine, median, print_machine, print_table, progress, rotated, setup_driver, write_results

COUNTS = [1, 100, 10_000]
MAX = 1_000_000_000


def limits_policy(n: int) -> dict[str, Any]:
    tools = {f"tool{i}": {"limits": [{"counter": f"c{i}", "window": "minute", "max": MAX}]} for i in range(n)}
    return {"version": "1", "default": "deny", "tools": tools}


def conditions_policy(n: int) -> dict[str, Any]:
    rule = {
        "deny_if": [
            {"path": "args.amount", "op": "gt", "value": 10_000},
            {"path": "args.currency", "op": "not_in", "value": ["EUR", "USD", "GBP"]},
        ],
        "require": [{"path": "args.to", "op": "exists"}],
    }
    tools = {f"tool{i}": {**rule, "limits": [{"counter": f"c{i}", "window": "minute", "max": MAX}]} for i in range(n)}
    return {"version": "1", "default": "deny", "tools": tools}


@dataclass(frozen=True)
class EngineVariant:
    name: str
    kind: str  # "limiter", "judge" or "decide"
    policy: Callable[[int], dict[str, Any]] | None = None
    arguments: dict[str, Any] = field(default_factory=dict)


VARIANTS = [
    EngineVariant("MemoryLimiter.acquire", "limiter"),
    EngineVariant("Judge.judge, allow-all (no limits)", "judge", lambda n: {"version": "1", "default": "allow"}),
    EngineVariant("Engine.decide, 1 limit per tool", "decide", limits_policy, {"size": 16}),
    EngineVariant("Judge.judge, 1 limit per tool", "judge", limits_policy, {"size": 16}),
    EngineVariant(
        "Judge.judge, conditions + 1 limit per tool",
        "judge",
        conditions_policy,
        {"amount": 25, "currency": "EUR", "to": "acct_123"},
    ),
]


Step = Callable[[int], object]


def make_step(variant: EngineVariant, n: int, prepared: Any) -> Step:
    """A function of the call index that makes one decision; fresh limiter state each time it is built."""
    from mcp_guard.judge import Judge
    from mcp_guard.limits import Charge, MemoryLimiter

    names = [f"tool{i}" for i in range(n)]
    arguments = variant.arguments
    if variant.kind == "limiter":
        limiter = MemoryLimiter()
        charges = [(Charge(f"c{i}", 60.0, float(MAX), 1.0, f"tools.tool{i}.limits[0]"),) for i in range(n)]
        acquire: Callable[..., object] = limiter.acquire
        if "now" in inspect.signature(acquire).parameters:  # acquire(charges, now): the caller's clock
            clock = time.monotonic
            return lambda i: acquire(charges[i % n], clock())
        return lambda i: acquire(charges[i % n])  # acquire(charges): the limiter reads its own clock
    if variant.kind == "decide":
        decide = prepared.decide
        return lambda i: decide(names[i % n], arguments)
    judge = Judge(prepared, MemoryLimiter()).judge
    return lambda i: judge(names[i % n], arguments)


def prepare(variant: EngineVariant, n: int) -> tuple[Any, str | None]:
    """The compiled engine for a policy variant, or None and why it is skipped."""
    if variant.policy is None:
        return None, None
    from mcp_guard.policy.engine import Engine
    from mcp_guard.policy.model import Policy

    try:
        policy = Policy.model_validate(variant.policy(n))
        return Engine(policy), None
    except Exception as exc:  # an older mcp-guard without this feature: skip, say why
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"{variant.name}: skipped, the policy is not accepted by this mcp-guard ({first[:160]})"


def time_steps(step: Step, n: int, calls: int) -> float:
    """Nanoseconds per decision over ``calls`` decisions, after touching every counter once."""
    for i in range(n):
        step(i)
    start = time.perf_counter_ns()
    for i in range(calls):
        step(i)
    return (time.perf_counter_ns() - start) / calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 10 000 decisions")
    parser.add_argument("--rounds", type=int, help="rounds (default 7)")
    parser.add_argument("--calls", type=int, help="timed decisions per variant per round (default 50 000)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to CPU 0")
    args = parser.parse_args()
    pinning = setup_driver(args.no_pin)
    rounds = args.rounds or (3 if args.quick else 7)
    calls = args.calls or (10_000 if args.quick else 50_000)
    info = machine(pinning)
    print_machine(info)

    notes: list[str] = []
    cases: list[tuple[EngineVariant, int, Any]] = []
    for variant in VARIANTS:
        for n in COUNTS:
            prepared, skipped = prepare(variant, n)
            if skipped is not None:
                if skipped not in notes:
                    notes.append(skipped)
                continue
            cases.append((variant, n, prepared))
    for note in notes:
        print(f"note: {note}")

    samples: dict[tuple[str, int], list[float]] = {(v.name, n): [] for v, n, _ in cases}
    for r in range(rounds):
        for variant, n, prepared in rotated(cases, r):
            samples[(variant.name, n)].append(time_steps(make_step(variant, n, prepared), n, calls))
        progress(f"engine: round {r + 1}/{rounds} done")

    summary: dict[str, Any] = {}
    rows = []
    for variant, n, _ in cases:
        ns = median(samples[(variant.name, n)])
        summary.setdefault(variant.name, {})[str(n)] = {
            "us_per_decision": ns / 1000,
            "decisions_per_s": 1e9 / ns,
            "round_values_ns": samples[(variant.name, n)],
        }
        rows.append([variant.name, f"{n:,}", fmt(ns / 1000, 2), fmt(1e9 / ns, 0)])
    print()
    table = print_table(
        ["variant", "tools/counters", "us/decision", "decisions/s"],
        rows,
        title=f"policy engine and limiter in process ({rounds} rounds x {calls:,} decisions; medians)",
    )
    write_results(
        "engine",
        {"machine": info, "rounds": rounds, "calls": calls, "notes": notes, "summary": summary, "tables": [table]},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
