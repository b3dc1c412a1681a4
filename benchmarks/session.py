"""The session alone, in process (no pipes, no threads of the relay): CPU µs per tools/call + answer pair.

    python benchmarks/session.py                 # every variant, interleaved rounds, medians
    python benchmarks/session.py --profile limit # a cProfile of one variant (--sort, --top)
    python benchmarks/session.py --once limit    # one fixed run of one variant (for valgrind/callgrind)
    python benchmarks/session.py --breakdown limit+audit  # where a call pair's time goes, the guard's functions

Measured with ``time.process_time`` (CPU time of the whole process, the audit writer thread
included), not wall-clock time, so other work on a shared machine moves the figures less.
The session is built as the guard builds it (``mcp_guard.cli.build_session``: integrity checks,
approvals, audit log), in the benchmarks' isolated user directories. Variants: allow-all and one
sliding-window limit on the called tool, each with the audit log on (the default) and off
(``--no-audit``); a client writing compact JSON (the SDKs' layout) and one writing JSON with spaces.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import LIMITER_POLICY, fmt, isolated_env, print_table, setup_driver, write_results

ALLOW_ALL: dict[str, Any] = {"version": "1", "default": "allow"}
VARIANTS = ("allow", "allow+audit", "limit", "limit+audit", "limit+audit spaced")


def build(variant: str, tmp: Path) -> tuple[Any, Callable[[], None]]:
    """The session exactly as ``mcp-guard --policy FILE -- server`` builds it (``cli.build_session``):
    the policy's integrity checks (own files), approvals, and the audit log unless ``--no-audit``."""
    from mcp_guard import cli
    from mcp_guard.config import resolve

    policy = LIMITER_POLICY if variant.startswith("limit") else ALLOW_ALL
    path = tmp / f"{variant.replace(' ', '_').replace('+', '_')}.json"
    path.write_text(json.dumps(policy))
    options = ["--policy", str(path)] + ([] if "audit" in variant else ["--no-audit"])
    os.environ.update(isolated_env())  # the audit log, the secret and the approval store go to scratch folders
    config = resolve(cli._run_parser().parse_args(options), ["server"])
    built = cli.build_session(config) if hasattr(cli, "build_session") else _build_as_before(config)
    if isinstance(built, int):
        raise SystemExit(f"the guard would not start with {options}")
    session, audit, _ = built
    session.from_client(
        b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
        b'"capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}\n'
    )
    session.from_upstream(
        b'{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},'
        b'"serverInfo":{"name":"upstream","version":"1"}}}\n'
    )
    return session, (audit.close if audit is not None else (lambda: None))


def _build_as_before(config: Any) -> Any:
    """What ``cli._guard`` built before ``build_session`` existed (to measure an older tree, PYTHONPATH)."""
    from mcp_guard import cli
    from mcp_guard.approval.flow import ApprovalSettings
    from mcp_guard.approval.lazy import LazyApprovalStore
    from mcp_guard.audit import AuditLog
    from mcp_guard.judge import Judge
    from mcp_guard.pipeline import Snapshot
    from mcp_guard.policy.engine import Engine
    from mcp_guard.session import Session

    limiter, store_name = cli._limiter(config.state_url, config.policy, config.server_name)
    engine = Engine(config.policy)
    judge = Judge(engine, limiter, force_monitor=config.monitor, store_name=store_name)
    audit = AuditLog(config.audit_log, print) if config.audit_log is not None else None
    approvals = ApprovalSettings(
        channels=config.approval.channels,
        timeout_s=config.approval.timeout_s,
        command=config.approval.command,
        store=LazyApprovalStore(config.approval.store),
    )
    integrity = cli._integrity(config, config.policy, approvals.store.path)
    snapshot = Snapshot(engine, integrity or None, config.monitor)
    session = Session(
        judge,
        snapshot,
        print,
        audit=audit,
        server_name=config.server_name,
        server_identity=config.server_identity,
        approvals=approvals,
    )
    return session, audit, []


def frames(variant: str, first: int, count: int) -> list[tuple[bytes, bytes]]:
    if variant.endswith("spaced"):
        call = (
            b'{"jsonrpc": "2.0", "id": %d, "method": "tools/call", '
            b'"params": {"name": "echo", "arguments": {"size": 16}}}\n'
        )
    else:
        call = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"size":16}}}\n'
    answer = (
        b'{"jsonrpc":"2.0","id":%d,"result":{"content":[{"type":"text","text":"xxxxxxxxxxxxxxxx"}],"isError":false}}\n'
    )
    return [(call % i, answer % i) for i in range(first, first + count)]


def run_pairs(session: Any, pairs: list[tuple[bytes, bytes]]) -> None:
    from_client, from_upstream = session.from_client, session.from_upstream
    for call, answer in pairs:
        from_client(call)
        from_upstream(answer)


def measure(session: Any, pairs: list[tuple[bytes, bytes]]) -> float:
    """CPU µs per pair, the audit writer's share included (it flushes every 0.2 s: wait for one flush)."""
    start = time.process_time()
    run_pairs(session, pairs)
    time.sleep(0.25)  # the audit writer's next flush lands inside the measurement
    return (time.process_time() - start) / len(pairs) * 1e6


def _where(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    if "/mcp_guard/" in filename:
        module = filename.split("/mcp_guard/", 1)[1].removesuffix(".py").replace("/", ".")
        return f"{module}.{name}:{line}"
    if filename == "~":
        return name  # a built-in: {method 'write' of ...}
    return f"{Path(filename).stem}.{name}"


def breakdown(variant: str, tmp: Path, calls: int, top: int) -> tuple[str, float]:
    """Where a tools/call + answer pair's time goes: CPU µs per pair unprofiled, then a cProfile of the same
    pairs reduced to the guard's own functions by cumulative time, and the costliest functions outside the
    guard by own time.

    cProfile's own cost per function call inflates what it measures (more so for small functions), and on a
    shared CPU its clock also counts other processes' turns: its figures are shown as shares of the profiled
    total, and as those shares of the unprofiled CPU µs per pair (an estimate). It sees the calling thread only,
    so the audit writer thread's share is in the unprofiled figure alone.
    """
    import cProfile
    import pstats

    session, close = build(variant, tmp)
    run_pairs(session, frames(variant, 1, 1000))  # warm up
    plain = statistics.median(measure(session, frames(variant, 1001 + i * calls, calls)) for i in range(3))
    pairs = frames(variant, 1001 + 3 * calls, calls)
    profiler = cProfile.Profile()
    profiler.runcall(run_pairs, session, pairs)
    close()
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, object]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(value[2] for value in stats.values()) or 1.0

    def row(label: str, nc: int, tt: float, ct: float) -> list[str]:
        return [
            label,
            f"{ct / total:.0%}",
            fmt(ct / total * plain, 1),
            f"{tt / total:.0%}",
            fmt(tt / total * plain, 1),
            fmt(nc / calls, 1),
        ]

    own = sorted(
        ((key, value) for key, value in stats.items() if "/mcp_guard/" in key[0]), key=lambda kv: kv[1][3], reverse=True
    )
    rows = [row(_where(key), nc, tt, ct) for key, (_, nc, tt, ct, _) in own[:top]]
    outside = sorted(
        ((key, value) for key, value in stats.items() if "/mcp_guard/" not in key[0] and "session.py" not in key[0]),
        key=lambda kv: kv[1][2],
        reverse=True,
    )
    rows += [row(f"(outside) {_where(key)}", nc, tt, ct) for key, (_, nc, tt, ct, _) in outside[: max(3, top // 3)]]
    table = print_table(
        ["function (mcp_guard module.function:line)", "cum", "~cum us", "own", "~own us", "calls/pair"],
        rows,
        title=f"session {variant!r} in process: {plain:.1f} CPU us per tools/call + answer pair (unprofiled, "
        f"{calls} pairs); cProfile shares of a pair, and those shares of {plain:.1f} us: the guard's functions "
        "by cumulative time, then the costliest outside it by own time",
    )
    return table, plain


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20000, help="pairs per round and variant")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--profile", choices=VARIANTS)
    parser.add_argument("--once", choices=VARIANTS)
    parser.add_argument(
        "--breakdown",
        action="append",
        choices=VARIANTS,
        help="where a pair's time goes: the guard's functions by cumulative time, µs per pair (repeatable)",
    )
    parser.add_argument("--sort", default="tottime", help="--profile's order: tottime (own time) or cumulative")
    parser.add_argument("--top", type=int, default=25, help="--profile's number of rows")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.calls = 3, 5000
    tmp = Path(tempfile.mkdtemp(prefix="mcp-guard-bench-session-"))
    if args.breakdown:
        pinning = setup_driver(args.no_pin)
        print(f"pinning: {pinning}")
        plain: dict[str, float] = {}
        tables = []
        for variant in args.breakdown:
            table, plain[variant] = breakdown(variant, tmp, min(args.calls, 5000), args.top if args.top != 25 else 15)
            tables.append(table)
        write_results("session_breakdown", {"cpu_us_per_pair": plain, "tables": tables, "pinning": pinning})
        return 0
    if args.once or args.profile:
        variant = args.once or args.profile
        session, close = build(variant, tmp)
        run_pairs(session, frames(variant, 1, 1000))  # warm up
        pairs = frames(variant, 1001, args.calls)
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.runcall(run_pairs, session, pairs)
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
        else:
            run_pairs(session, pairs)
        close()
        return 0
    pinning = setup_driver(args.no_pin)
    sessions = {v: build(v, tmp) for v in VARIANTS}
    next_id = dict.fromkeys(VARIANTS, 1)
    values: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for round_index in range(args.rounds + 1):
        order = list(VARIANTS)[round_index % len(VARIANTS) :] + list(VARIANTS)[: round_index % len(VARIANTS)]
        for variant in order:
            pairs = frames(variant, next_id[variant], args.calls)
            next_id[variant] += args.calls
            value = measure(sessions[variant][0], pairs)
            if round_index:  # round 0 warms up
                values[variant].append(value)
    for _, close in sessions.values():
        close()
    rows = [[v, fmt(statistics.median(values[v]), 2), fmt(min(values[v]), 2)] for v in VARIANTS]
    table = print_table(
        ["variant", "CPU µs per pair (median)", "min"],
        rows,
        title=f"session in process, {args.calls} tools/call + answer pairs per round, {args.rounds} rounds ({pinning})",
    )
    write_results("session", {"rounds": values, "table": table, "calls": args.calls})
    return 0


if __name__ == "__main__":
    sys.exit(main())
