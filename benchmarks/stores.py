"""The counter stores alone, in process: µs per ``acquire`` (one check-and-record).

    python benchmarks/stores.py [--quick] [--rounds N] [--calls N] [--redis-url URL] [--disk-dir DIR]

Stores: ``MemoryLimiter`` (the reference), ``SqliteLimiter`` on tmpfs (``/dev/shm``)
and on disk (``--disk-dir``, default ``/var/tmp``), and ``RedisLimiter`` against a
local ``redis-server`` that this script starts on a free port (without persistence;
all of it pinned to CPU 0 like the driver), or ``--redis-url``. Redis is skipped
with a note when neither is available.

Each call charges one counter, cycling through 1 or 100 distinct counters:

* ``admit``: max 10⁹ per minute, so every call is admitted and recorded, and the
  window holds every call of the round (the cost of a check must not grow with it);
* ``refuse``: max 10 per minute, filled before timing, so every call is refused
  (the check, the ``retry_after`` search, and a rollback; nothing is written).

Variants are interleaved round by round (order rotating); each round opens a fresh
store (a new file, a new Redis key prefix), touches every counter untimed, then
times each call alone with ``perf_counter_ns``. A round's value is the median call;
the table shows the median over rounds.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import fmt, machine, median, print_machine, print_table, progress, rotated, setup_driver, write_results

from mcp_guard.limits import Charge, MemoryLimiter
from mcp_guard.limits.sqlite import SqliteLimiter

COUNTS = [1, 100]
MODES = {"admit": 1_000_000_000.0, "refuse": 10.0}


def filesystem(path: Path) -> str:
    """The file-system type ``path`` lives on (from /proc/mounts), for the record."""
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and str(path.resolve()).startswith(fields[1]) and len(fields[1]) > len(best):
                best, kind = fields[1], fields[2]
    except OSError:
        pass
    return kind


class LocalRedis:
    """A redis-server on 127.0.0.1 for the duration of the benchmark (stopped by its pid)."""

    def __init__(self, binary: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="bench-redis-")
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--dir", self.dir, "--daemonize", "no"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not answer PING")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Store:
    name: str
    open: Callable[[], Any]  # a fresh, empty store
    note: str = ""


def make_stores(args: argparse.Namespace, cleanup: list[Callable[[], None]]) -> tuple[list[Store], list[str]]:
    notes: list[str] = []
    stores = [Store("memory", MemoryLimiter)]
    for label, base in (("sqlite (tmpfs)", Path("/dev/shm")), ("sqlite (disk)", Path(args.disk_dir))):
        if not base.is_dir():
            notes.append(f"{label}: {base} does not exist, skipped")
            continue
        root = Path(tempfile.mkdtemp(prefix="mcp-guard-bench-", dir=base))
        cleanup.append(lambda root=root: shutil.rmtree(root, ignore_errors=True))

        def open_sqlite(root: Path = root) -> SqliteLimiter:
            return SqliteLimiter(root / f"{uuid.uuid4().hex}.db")

        stores.append(Store(label, open_sqlite, f"{base} ({filesystem(base)})"))
    url = args.redis_url
    if url is None:
        binary = shutil.which("redis-server")
        if binary is None:
            notes.append("redis: no redis-server on PATH and no --redis-url, skipped")
        else:
            server = LocalRedis(binary)
            cleanup.append(server.stop)
            url = server.url
    if url is not None:
        try:
            from mcp_guard.limits.redis import RedisLimiter

            def open_redis(url: str = url) -> Any:
                return RedisLimiter(url, prefix=f"bench-{uuid.uuid4().hex[:12]}:")

            open_redis().usage("probe", 1.0)
            stores.append(Store("redis (local)" if args.redis_url is None else "redis", open_redis, url))
        except Exception as exc:
            notes.append(f"redis: {exc}, skipped")
    return stores, notes


def measure(store: Store, counters: int, mode: str, calls: int) -> tuple[float, float]:
    """Median and 99th-percentile µs of one ``acquire`` over ``calls`` calls cycling through ``counters`` counters."""
    lim = store.open()
    charges = [[Charge(f"c{i}", 60.0, MODES[mode], 1.0, f"limits[{i}]")] for i in range(counters)]
    fill = int(MODES[mode]) if mode == "refuse" else 1
    for one in charges:
        for _ in range(fill):
            lim.acquire(one)
    samples: list[int] = []
    clock = time.perf_counter_ns
    for i in range(calls):
        one = charges[i % counters]
        start = clock()
        lim.acquire(one)
        samples.append(clock() - start)
    if hasattr(lim, "close"):
        lim.close()
    samples.sort()
    return samples[len(samples) // 2] / 1000.0, samples[min(len(samples) - 1, len(samples) * 99 // 100)] / 1000.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 500 calls")
    parser.add_argument("--rounds", type=int, help="rounds (default 7)")
    parser.add_argument("--calls", type=int, help="timed calls per variant per round (default 3000)")
    parser.add_argument("--redis-url", help="measure this Redis instead of starting a local redis-server")
    parser.add_argument("--disk-dir", default="/var/tmp", help="directory on disk for the SQLite file")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to CPU 0")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)
    calls = args.calls or (500 if args.quick else 3000)

    pinning = setup_driver(args.no_pin)
    info = machine(pinning)
    print_machine(info)
    cleanup: list[Callable[[], None]] = []
    try:
        stores, notes = make_stores(args, cleanup)
        variants = [(s, n, m) for s in stores for m in MODES for n in COUNTS]
        per_round: dict[str, list[float]] = {f"{s.name}|{n}|{m}": [] for s, n, m in variants}
        p99_round: dict[str, list[float]] = {key: [] for key in per_round}
        for r in range(rounds):
            progress(f"round {r + 1}/{rounds}")
            for store, n, mode in rotated(variants, r):
                mid, p99 = measure(store, n, mode, calls)
                per_round[f"{store.name}|{n}|{mode}"].append(mid)
                p99_round[f"{store.name}|{n}|{mode}"].append(p99)
    finally:
        for step in reversed(cleanup):
            step()

    headers = ["store", *(f"{m}, {n} counter{'s' if n > 1 else ''}" for m in MODES for n in COUNTS)]
    tables: dict[str, dict[str, dict[str, float]]] = {}
    texts = []
    for label, values in (("median", per_round), ("p99", p99_round)):
        rows = []
        for store in stores:
            row = [store.name]
            for mode in MODES:
                for n in COUNTS:
                    value = median(values[f"{store.name}|{n}|{mode}"])
                    tables.setdefault(label, {}).setdefault(store.name, {})[f"{mode}/{n}"] = value
                    row.append(fmt(value))
            rows.append(row)
        title = f"µs per acquire, {label} of {calls} calls (median of {rounds} rounds), pinned: {pinning}"
        texts.append(print_table(headers, rows, title))
    for store in stores:
        if store.note:
            print(f"{store.name}: {store.note}")
    for note in notes:
        print(note)
    write_results(
        "stores",
        {
            "machine": info,
            "plan": {"rounds": rounds, "calls": calls, "counters": COUNTS, "modes": MODES},
            "stores": {s.name: s.note for s in stores},
            "notes": notes,
            "per_round_median_us": per_round,
            "per_round_p99_us": p99_round,
            "us": tables,
            "tables": texts,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
