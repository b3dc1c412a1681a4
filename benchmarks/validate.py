"""Tool integrity checks in process: argument validation (µs per check) and its neighbours.

    python benchmarks/validate.py [--quick] [--rounds N] [--calls N]

The schema is a typical 12-field ``inputSchema`` (strings with bounds and patterns, enums,
numbers with bounds, an array of strings, a nested object, ``format``, ``required``,
``additionalProperties: false``). Variants (each timed over N calls, interleaved round by
round, medians):

* ``ArgumentValidator.check``, valid arguments: the compiled shortcut answers (the target:
  at most 20 µs);
* the same through ``CompiledSchema.check`` (no cache lookup);
* ``ArgumentValidator.check``, valid arguments, a schema outside the shortcut's subset (one
  ``uniqueItems`` added): ``jsonschema`` decides alone;
* ``jsonschema`` ``is_valid`` alone (the library's floor for the same schema);
* ``ArgumentValidator.check``, invalid arguments (three errors): ``jsonschema`` finds and
  ranks the errors and the message is built;
* compiling a new schema (``check`` on a schema not seen before: digest, ``check_schema``,
  validator, shortcut);
* the other integrity checks a call may meet: ``tool_digest`` of a tool with that schema,
  ``ProtectedPaths.find_reference`` on the same arguments and on a shell command, and
  ``keyed_fingerprint`` of the arguments.

Also measured, in fresh interpreters with bytecode cached: the import cost of ``jsonschema``
(on top of what the relay already imports) and of the ``mcp_guard.integrity`` modules.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import fmt, machine, median, print_machine, print_table, progress, rotated, setup_driver, write_results

TARGET_US = 20.0

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "to": {"type": "string", "minLength": 1, "maxLength": 200, "description": "account id"},
        "amount": {"type": "number", "minimum": 0, "maximum": 100000},
        "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]},
        "memo": {"type": "string", "maxLength": 500},
        "count": {"type": "integer", "minimum": 1},
        "dry_run": {"type": "boolean", "default": False},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
        "path": {"type": "string", "pattern": "^/"},
        "timeout": {"anyOf": [{"type": "number"}, {"type": "null"}], "default": None},
        "mode": {"type": "string", "enum": ["fast", "safe"]},
        "options": {
            "type": "object",
            "properties": {"retries": {"type": "integer", "maximum": 5}, "verbose": {"type": "boolean"}},
            "additionalProperties": False,
        },
        "email": {"type": "string", "format": "email"},
    },
    "required": ["to", "amount", "currency"],
    "additionalProperties": False,
}
VALID: dict[str, Any] = {
    "to": "acct_123",
    "amount": 25.5,
    "currency": "EUR",
    "memo": "lunch",
    "count": 2,
    "dry_run": False,
    "tags": ["food", "team"],
    "path": "/tmp/receipt.pdf",
    "timeout": 3.0,
    "mode": "fast",
    "options": {"retries": 3, "verbose": True},
    "email": "a@example.com",
}
INVALID: dict[str, Any] = {**VALID, "amount": -5, "currency": "XBT", "extra": 1}
COMMAND = {"command": "cat /var/log/syslog | grep -i error | tail -n 50 > /tmp/errors.txt"}
OUTSIDE_SUBSET = copy.deepcopy(SCHEMA)
OUTSIDE_SUBSET["properties"]["tags"]["uniqueItems"] = True


def variants(workdir: Path) -> list[tuple[str, Callable[[int], object]]]:
    """(name, step) pairs; a step does one operation (its argument is the call index)."""
    from jsonschema.validators import Draft202012Validator  # type: ignore[import-untyped, unused-ignore]

    from mcp_guard.integrity.fingerprint import keyed_fingerprint
    from mcp_guard.integrity.pins import tool_digest
    from mcp_guard.integrity.protect import ProtectedPaths
    from mcp_guard.integrity.validate import ArgumentValidator, compile_schema

    validator = ArgumentValidator()
    assert validator.check(SCHEMA, VALID) is None
    assert validator.check(SCHEMA, INVALID) is not None
    assert validator.check(OUTSIDE_SUBSET, VALID) is None
    compiled = compile_schema(SCHEMA)
    assert compiled.shortcut is not None
    assert compile_schema(OUTSIDE_SUBSET).shortcut is None
    floor = Draft202012Validator(SCHEMA)
    fresh_schemas = ({**SCHEMA, "title": f"s{i}"} for i in itertools.count())
    cold = ArgumentValidator(max_schemas=1)
    tool = {"name": "send_money", "description": "Send money to an account.", "inputSchema": SCHEMA}
    config = workdir / "config" / "mcp-guard"
    config.mkdir(parents=True, exist_ok=True)
    (config / "policy.json").write_text("{}", encoding="utf-8")
    protected = ProtectedPaths([config / "policy.json"], workdir, directories=[workdir / "state" / "mcp-guard"])
    key = bytes(32)
    return [
        ("ArgumentValidator.check, valid (shortcut)", lambda i: validator.check(SCHEMA, VALID)),
        ("CompiledSchema.check, valid (shortcut)", lambda i: compiled.check(VALID)),
        ("ArgumentValidator.check, valid, outside the subset", lambda i: validator.check(OUTSIDE_SUBSET, VALID)),
        ("jsonschema is_valid alone, valid", lambda i: floor.is_valid(VALID)),
        ("ArgumentValidator.check, invalid (3 errors + message)", lambda i: validator.check(SCHEMA, INVALID)),
        ("compile a new schema (first check)", lambda i: cold.check(next(fresh_schemas), VALID)),
        ("tool_digest (this schema's tool)", lambda i: tool_digest(tool)),
        ("ProtectedPaths.find_reference, these arguments", lambda i: protected.find_reference(VALID)),
        ("ProtectedPaths.find_reference, a shell command", lambda i: protected.find_reference(COMMAND)),
        ("keyed_fingerprint, these arguments", lambda i: keyed_fingerprint(VALID, key)),
    ]


def time_step(step: Callable[[int], object], calls: int) -> float:
    """Nanoseconds per call over ``calls`` calls (after a short warm-up)."""
    for i in range(min(200, calls)):
        step(i)
    start = time.perf_counter_ns()
    for i in range(calls):
        step(i)
    return (time.perf_counter_ns() - start) / calls


def import_cost(runs: int) -> dict[str, float]:
    """Median ms to import, in a fresh interpreter, on top of ``mcp_guard.session`` (what the relay has loaded)."""
    base = "import mcp_guard.session, mcp_guard.relay, mcp_guard.judge"
    programs = {
        "relay modules (baseline)": base,
        "+ jsonschema.validators": base + "; import jsonschema.validators",
        "+ mcp_guard.integrity.validate (jsonschema not yet)": base + "; import mcp_guard.integrity.validate",
        "+ mcp_guard.integrity (all four modules)": base + "; import mcp_guard.integrity.pins, mcp_guard.integrity."
        "validate, mcp_guard.integrity.protect, mcp_guard.integrity.fingerprint",
    }
    samples: dict[str, list[float]] = {name: [] for name in programs}
    # Bytecode as an installed copy has it: written once (to a scratch prefix, whatever
    # PYTHONDONTWRITEBYTECODE says here), then every timed run reads it.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory(prefix="mcp-guard-pyc-") as prefix:
        env["PYTHONPYCACHEPREFIX"] = prefix
        for program in programs.values():
            subprocess.run([sys.executable, "-c", program], check=True, env=env)
        for r in range(runs):
            for name, program in rotated(list(programs.items()), r):
                start = time.perf_counter()
                subprocess.run([sys.executable, "-c", program], check=True, env=env)
                samples[name].append((time.perf_counter() - start) * 1000)
    return {name: median(values) for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 2 000 calls")
    parser.add_argument("--rounds", type=int, help="rounds (default 7)")
    parser.add_argument("--calls", type=int, help="timed calls per variant per round (default 20 000)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to CPU 0")
    args = parser.parse_args()
    pinning = setup_driver(args.no_pin)
    rounds = args.rounds or (3 if args.quick else 7)
    calls = args.calls or (2_000 if args.quick else 20_000)
    info = machine(pinning)
    print_machine(info)

    with tempfile.TemporaryDirectory(prefix="mcp-guard-bench-") as scratch:
        cases = variants(Path(scratch))
        samples: dict[str, list[float]] = {name: [] for name, _ in cases}
        for r in range(rounds):
            for name, step in rotated(cases, r):
                samples[name].append(time_step(step, calls if not name.startswith("compile") else calls // 20))
            progress(f"validate: round {r + 1}/{rounds} done")

    summary: dict[str, Any] = {}
    rows = []
    for name, _ in cases:
        ns = median(samples[name])
        summary[name] = {"us_per_call": ns / 1000, "calls_per_s": 1e9 / ns, "round_values_ns": samples[name]}
        rows.append([name, fmt(ns / 1000, 2), fmt(1e9 / ns, 0)])
    print()
    tables = [
        print_table(
            ["variant", "us/call", "calls/s"],
            rows,
            title=f"tool integrity checks in process ({rounds} rounds x {calls:,} calls; medians; 12-field schema)",
        )
    ]
    headline = summary["ArgumentValidator.check, valid (shortcut)"]["us_per_call"]
    verdict = "meets" if headline <= TARGET_US else "MISSES"
    print(f"valid-argument check: {headline:.2f} us, {verdict} the {TARGET_US:g} us target\n")

    progress("validate: import costs (fresh interpreters)")
    imports = import_cost(5 if args.quick else 11)
    baseline = imports["relay modules (baseline)"]
    import_rows = [
        [name, fmt(ms, 1), "-" if name.startswith("relay") else fmt(ms - baseline, 1)] for name, ms in imports.items()
    ]
    tables.append(
        print_table(
            ["python -c 'import ...'", "ms (median)", "added ms"], import_rows, title="import cost, fresh interpreter"
        )
    )
    write_results(
        "validate",
        {
            "machine": info,
            "rounds": rounds,
            "calls": calls,
            "target_us": TARGET_US,
            "meets_target": headline <= TARGET_US,
            "summary": summary,
            "imports_ms": imports,
            "tables": tables,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
