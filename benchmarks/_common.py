"""Shared pieces of the benchmarks: CPU pinning, the machine, processes, the raw-pipe client, tables.

Method (every script): all processes of a scenario (this driver, the relay under
test and the upstream) run on CPU 0 — the driver re-executes itself under
``taskset -c 0`` and children inherit the affinity — variants are interleaved
round by round, and results are medians.
"""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
BUILD_DIR = BENCH_DIR / "build"
PEERS_DIR = BENCH_DIR / ".peers"
UPSTREAM = BENCH_DIR / "upstream_server.py"
FLOORS_DIR = BENCH_DIR / "floors"
PYTHON = sys.executable

KIB = 1024
SIZE_LABELS = {16: "16 B", 64 * KIB: "64 KiB", 1_000_000: "1 MB", 20_000_000: "20 MB"}

ALLOW_ALL_POLICY: dict[str, Any] = {"version": "1", "default": "allow"}
LIMITER_POLICY: dict[str, Any] = {
    "version": "1",
    "default": "deny",
    "tools": {"echo": {"limits": [{"counter": "c", "window": "minute", "max": 1000000000, "scope": "grant"}]}},
}

# The guard as installed (audit log on, hot reload on): allow-all, and the seed policy's one sliding-window limit.
GUARD_ALLOW = "mcp-guard allow-all"
GUARD_LIMIT = "mcp-guard limit"

_PIN_ENV = "MCP_GUARD_BENCH_PINNED"
_READ_BUFFER = 1 << 16


# --- CPU pinning and the machine ------------------------------------------------------


def pin_to_cpu0(no_pin: bool = False) -> str:
    """Run this process (and so every child) on CPU 0; return how that was done.

    Re-executes the script under ``taskset -c 0`` when taskset exists (children
    inherit the affinity, so no per-spawn ``taskset`` adds to start-up times),
    else falls back to ``os.sched_setaffinity``. ``MCP_GUARD_BENCH_CPU=N`` picks
    another CPU (e.g. to keep a quick check off a CPU that a long run uses).
    """
    if no_pin:
        return "not pinned (--no-pin)"
    cpu = os.environ.get("MCP_GUARD_BENCH_CPU", "0")
    if not cpu.isdigit():
        raise SystemExit(f"MCP_GUARD_BENCH_CPU must be a CPU number, not {cpu!r}")
    if os.environ.get(_PIN_ENV) == "taskset":
        return f"taskset -c {cpu}"
    taskset = shutil.which("taskset")
    if taskset is not None:
        os.environ[_PIN_ENV] = "taskset"
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(taskset, [taskset, "-c", cpu, sys.executable, *sys.argv])  # noqa: S606 (a fixed argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(cpu)})
        return f"os.sched_setaffinity({{{cpu}}})"
    return "not pinned (no taskset, no sched_setaffinity)"


def setup_driver(no_pin: bool = False) -> str:
    """Pin to CPU 0 (see :func:`pin_to_cpu0`) and warm this driver's allocator; return how it was pinned.

    Allocating and freeing one 24 MiB block raises glibc's mmap threshold, so the
    driver's buffers for large answers come from the heap instead of a fresh
    mmap (and ~250 page faults per MB) on every call: without it a 1 MB answer
    costs the driver ~0.4 ms more, in every variant alike, until the first 20 MB
    answer happens to do the same.
    """
    pinning = pin_to_cpu0(no_pin)
    compile_guard()
    block = bytearray(24 * 1024 * 1024)
    del block
    return pinning


def compile_guard() -> None:
    """Byte-compile the measured mcp-guard package, as installing it does (pip writes the .pyc files).

    A source tree run with PYTHONDONTWRITEBYTECODE=1 (or from a fresh checkout) would otherwise compile
    every module on every start: seconds per spawn, counted in start-up and in every round's spawns. A
    no-op when the .pyc files are current.
    """
    import compileall

    package = Path(guard_source()["path"])
    if package.is_dir():
        compileall.compile_dir(str(package), quiet=2)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def guard_source() -> dict[str, Any]:
    """Which mcp-guard was measured: its version and a hash of its source files (the tree may be uncommitted)."""
    import hashlib
    import importlib.util

    digest = hashlib.sha256()
    spec = importlib.util.find_spec("mcp_guard")  # the copy the guard will run (PYTHONPATH can pick another)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    package = Path(locations[0]) if locations else ROOT / "mcp_guard"
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    version = None
    init = package / "__init__.py"
    if init.is_file():
        found = re.search(r'__version__\s*=\s*"([^"]+)"', init.read_text())
        version = found.group(1) if found else None
    return {"version": version, "path": str(package), "source_sha256": digest.hexdigest()[:16]}


def machine(pinning: str) -> dict[str, Any]:
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "mcp_guard": guard_source(),
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "affinity": affinity,
        "pinning": pinning,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def print_machine(info: Mapping[str, Any]) -> None:
    print(
        f"machine: {info['cpu_model']} ({info['cpus']} CPUs), {info['kernel']}, "
        f"{info['python_implementation']} {info['python']}; pinning: {info['pinning']} (affinity {info['affinity']})"
    )
    guard = info.get("mcp_guard") or {}
    print(f"mcp-guard {guard.get('version')} from {guard.get('path')} (source sha256 {guard.get('source_sha256')})")


# --- commands ---------------------------------------------------------------------------


def guard_command() -> list[str]:
    """The guard's console script next to this interpreter, else ``python -m mcp_guard``."""
    script = Path(sys.executable).parent / "mcp-guard"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [PYTHON, "-m", "mcp_guard"]


def upstream_command(sizes: Iterable[int] = (), spaced: bool = False) -> list[str]:
    """The benchmark upstream. ``-I``: it ignores PYTHON* variables (such as PYTHONPROFILEIMPORTTIME).

    ``spaced``: it writes JSON with spaces (``", "`` and ``": "``) instead of the compact layout."""
    return [PYTHON, "-I", str(UPSTREAM), "--sizes", ",".join(str(s) for s in sizes), *(["--spaced"] if spaced else [])]


def build_c_relay() -> tuple[Path | None, str]:
    """Compile floors/relay.c into build/ (when stale); the binary, or None and why not."""
    source = FLOORS_DIR / "relay.c"
    binary = BUILD_DIR / "relay"
    compiler = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
        return binary, "cached build"
    if compiler is None:
        return None, "no C compiler (gcc/cc) found: the C floor is skipped"
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [compiler, "-O2", "-pthread", "-o", str(binary), str(source)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return None, f"compiling relay.c failed, the C floor is skipped: {done.stderr.strip()[:300]}"
    return binary, f"built with {compiler}"


def write_policy(name: str, policy: Mapping[str, Any]) -> Path:
    directory = BUILD_DIR / "policies"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(policy, indent=2) + "\n", encoding="utf-8")
    return path


XDG_DIR = Path(tempfile.gettempdir()) / "mcp-guard-bench-xdg"


def isolated_env() -> dict[str, str]:
    """The environment for relays: the user's own config, state and data directories are never touched.

    No policy is found by discovery unless one is passed explicitly, and a guard's
    default audit log goes to a scratch directory (rotation keeps it bounded). Bytecode
    is written and read as an installed guard's is: with ``PYTHONDONTWRITEBYTECODE`` set
    (some shells and containers set it), every start of a checkout (this one, a baseline)
    would compile all its modules again (about 40% on top of the guard's import time).
    """
    env = dict(os.environ)
    env.pop("MCP_GUARD_POLICY", None)
    env.pop(_PIN_ENV, None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        directory = XDG_DIR / name.lower()
        directory.mkdir(parents=True, exist_ok=True)
        env[name] = str(directory)
    return env


@functools.cache
def guard_help() -> str:
    done = subprocess.run(
        [*guard_command(), "--help"], capture_output=True, text=True, check=False, env=isolated_env(), timeout=60
    )
    return done.stdout + done.stderr


def guard_audit_off() -> tuple[str, ...]:
    """``--no-audit`` when this mcp-guard has an audit log that can be switched off, else nothing."""
    return ("--no-audit",) if "--no-audit" in guard_help() else ()


@dataclass(frozen=True)
class Variant:
    """One way of reaching the upstream: ``prefix`` goes before the upstream command."""

    name: str
    prefix: tuple[str, ...]
    kind: str  # "direct", "floor", "guard", "peer"
    env: Mapping[str, str] = field(default_factory=dict)
    suffix: tuple[str, ...] = ()  # for peers that take the upstream elsewhere than at the end
    cwd: str | None = None  # for peers that write files into their working directory
    sizes: tuple[int, ...] | None = None  # measure only these result sizes (None: every size of the run)
    rounds: int | None = None  # take part in the first N rounds only (None: every round)

    def argv(self, upstream: Sequence[str]) -> list[str]:
        return [*self.prefix, *upstream, *self.suffix]


def relay_variants(
    floors: bool = True, guard_policies: Sequence[Path] = (), audit: bool = True, baseline: Path | None = None
) -> tuple[list[Variant], list[str]]:
    """direct, the three relay floors, the guard allow-all (also with its audit log on, where it has one),
    limiter-active, plus one guard variant per extra policy file."""
    notes: list[str] = []
    variants = [Variant("direct", (), "direct")]
    if floors:
        variants.append(
            Variant("floor: asyncio streams", (PYTHON, str(FLOORS_DIR / "asyncio_relay.py"), "--"), "floor")
        )
        variants.append(
            Variant("floor: threads (Python)", (PYTHON, str(FLOORS_DIR / "thread_relay.py"), "--"), "floor")
        )
        binary, how = build_c_relay()
        if binary is None:
            notes.append(how)
        else:
            variants.append(Variant("floor: threads (C)", (str(binary), "--"), "floor"))
    guard = guard_command()
    allow = write_policy("allow_all", ALLOW_ALL_POLICY)
    limiter = write_policy("limiter", LIMITER_POLICY)
    off = guard_audit_off()
    # As installed: nothing switched off (the audit log on, in a scratch directory, see isolated_env; the policy
    # watched for changes). The --no-audit variant shows what the audit log costs.
    if off and audit:
        variants.append(
            Variant(f"{GUARD_ALLOW} {' '.join(off)}", (*guard, *off, "--policy", str(allow), "--"), "guard")
        )
    variants.append(Variant(GUARD_ALLOW, (*guard, "--policy", str(allow), "--"), "guard"))
    variants.append(Variant(GUARD_LIMIT, (*guard, "--policy", str(limiter), "--"), "guard"))
    for path in guard_policies:
        variants.append(Variant(f"mcp-guard {Path(path).stem}", (*guard, "--policy", str(path), "--"), "guard"))
    if baseline is not None:
        # Another checkout of mcp-guard (say, main before a change), run from its source in this interpreter,
        # side by side with this one in the same rounds: the before/after comparison of a pull request. Run in
        # the checkout's folder: `python -m` puts the working directory first on sys.path, so from this
        # repository's root it would run this tree instead.
        env = {"PYTHONPATH": str(baseline.resolve())}
        old = (PYTHON, "-m", "mcp_guard")
        where = str(baseline.resolve())
        variants.append(Variant("baseline allow-all", (*old, "--policy", str(allow), "--"), "guard", env, cwd=where))
        variants.append(Variant("baseline limit", (*old, "--policy", str(limiter), "--"), "guard", env, cwd=where))
        notes.append(f"baseline: the mcp-guard source at {baseline}, run with PYTHONPATH")
    notes.append("mcp-guard variants run as installed (audit log on, policy hot reload on) unless marked --no-audit")
    return variants, notes


POLICIES_DIR = BENCH_DIR / "policies"
# Issue 21's "no cost for features a policy does not use": each feature switched on by a policy of its own
# (everything else allow-all), measured beside allow-all (every feature off). Name -> what the policy turns on.
FEATURES = {
    "results": "result inspection (policies/results.json: all_tools.results, redact + block)",
    "flows": "flow rules (policies/flows.json: echo labelled, one flow rule, default scope)",
    "pins": "tool pins (a lock made with `mcp-guard pins create` of the upstream, enforced)",
    "validate": "argument validation (policies/validate.json: validate_arguments)",
}


def pins_policy() -> tuple[Path | None, str]:
    """A policy pinning the upstream's tools: the lock is written by the guard's own ``pins create``."""
    directory = BUILD_DIR / "policies"
    directory.mkdir(parents=True, exist_ok=True)
    lock = directory / "pins.lock.json"
    lock.unlink(missing_ok=True)
    done = subprocess.run(
        [*guard_command(), "pins", "create", "--lock", str(lock), "--", *upstream_command()],
        capture_output=True,
        text=True,
        check=False,
        env=isolated_env(),
        timeout=60,
    )
    if done.returncode != 0 or not lock.is_file():
        return None, f"`mcp-guard pins create` failed, the pins variant is skipped: {done.stderr.strip()[-300:]}"
    policy = {"version": "1", "default": "allow", "pins": {"file": lock.name, "mode": "enforce"}}
    return write_policy("pins", policy), f"pins: lock written by `mcp-guard pins create` to {lock}"


def feature_variants(sizes: tuple[int, ...], rounds: int | None) -> tuple[list[Variant], list[str]]:
    """One guard variant per feature of :data:`FEATURES` (as installed: audit log on, hot reload on)."""
    guard = guard_command()
    notes: list[str] = []
    found: list[Variant] = []
    for name in FEATURES:
        if name == "pins":
            path, note = pins_policy()
            notes.append(note)
            if path is None:
                continue
        else:
            path = POLICIES_DIR / f"{name}.json"
        found.append(
            Variant(f"mcp-guard {name}", (*guard, "--policy", str(path), "--"), "guard", sizes=sizes, rounds=rounds)
        )
    return found, notes


# --- processes and the raw-pipe client --------------------------------------------------


def call_frame(ident: int, size: int, pad: int = 0, spaced: bool = False) -> bytes:
    """A ``tools/call`` of ``echo``: compact (the SDKs' ``{"jsonrpc":"2.0",...}``) or, with ``spaced``, JSON
    with spaces after ``,`` and ``:`` (``json.dumps``' default layout: ``{"jsonrpc": "2.0", "id": 1, ...}``)."""
    if spaced:
        arguments = f'{{"size": {size}}}' if not pad else f'{{"size": {size}, "pad": "{"p" * pad}"}}'
        return (
            f'{{"jsonrpc": "2.0", "id": {ident}, "method": "tools/call", '
            f'"params": {{"name": "echo", "arguments": {arguments}}}}}\n'
        ).encode()
    arguments = f'{{"size":{size}}}' if not pad else f'{{"size":{size},"pad":"{"p" * pad}"}}'
    return (
        f'{{"jsonrpc":"2.0","id":{ident},"method":"tools/call","params":{{"name":"echo","arguments":{arguments}}}}}\n'
    ).encode()


INITIALIZE = (
    b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
    b'"capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}\n'
)
INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'
DISCOVER = b'{"jsonrpc":"2.0","id":0,"method":"server/discover","params":{}}\n'


class BenchError(RuntimeError):
    pass


_ID_PATTERN = re.compile(rb'"id"\s*:\s*(-?\d+)')


def answers(line: bytes, ident: int) -> bool:
    """Whether ``line`` is the answer to request ``ident``.

    The fast path is the compact layout the upstream writes; a relay that
    re-serializes frames (spaces after separators, other key order) is checked by
    the first ``"id"`` key in the line's head (the answer's own id comes before
    any result content in every layout seen).
    """
    if line.startswith(b'{"jsonrpc":"2.0","id":%d,' % ident):
        return True
    found = _ID_PATTERN.search(line, 0, 300)
    if found is None:
        found = _ID_PATTERN.search(line, max(0, len(line) - 300))
    return found is not None and int(found.group(1)) == ident


class Session:
    """A spawned stdio MCP server (direct or behind a relay), driven over raw pipes."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        stderr: int | IO[Any] | None = None,
        cwd: str | None = None,
        spaced: bool = False,
    ):
        full_env = isolated_env()
        if env:
            full_env.update(env)
        self.argv = list(argv)
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if stderr is None else stderr,
            bufsize=0,
            env=full_env,
            cwd=cwd,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._reader = open(self.proc.stdout.fileno(), "rb", buffering=_READ_BUFFER, closefd=False)  # noqa: SIM115
        self.readline = self._reader.readline
        self.next_id = 1
        self.spaced = spaced  # calls written as JSON with spaces (see call_frame)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_ns(self) -> int:
        """On-CPU time of the spawned process so far, all its threads (``/proc/PID/task/*/schedstat``); 0 if unknown."""
        total = 0
        try:
            for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
                try:
                    total += int((task / "schedstat").read_text().split()[0])
                except (OSError, ValueError, IndexError):
                    continue
        except OSError:
            return 0
        return total

    def ctx_switches(self) -> int:
        """Context switches of the spawned process so far, all its threads (voluntary + involuntary); 0 if unknown."""
        total = 0
        try:
            for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
                try:
                    for line in (task / "status").read_text().splitlines():
                        if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                            total += int(line.split()[1])
                except (OSError, ValueError, IndexError):
                    continue
        except OSError:
            return 0
        return total

    def send(self, frame: bytes) -> None:
        view = memoryview(frame)
        while view:
            view = view[os.write(self._in, view) :]

    def expect(self, ident: int) -> bytes:
        line = self.readline()
        if not line:
            raise BenchError(f"{self.argv[0]}: the process closed its stdout (exit {self.proc.poll()})")
        if not answers(line, ident):
            raise BenchError(f"unexpected answer (wanted id {ident}): {line[:200]!r}")
        return line

    def initialize(self) -> None:
        self.send(INITIALIZE)
        self.expect(0)
        self.send(INITIALIZED)

    def call(self, size: int) -> int:
        """One sequential tools/call round trip; nanoseconds from write to the answer's newline."""
        ident = self.next_id
        self.next_id += 1
        frame = call_frame(ident, size, spaced=self.spaced)
        start = time.perf_counter_ns()
        self.send(frame)
        line = self.readline()
        elapsed = time.perf_counter_ns() - start
        if not answers(line, ident):
            raise BenchError(f"unexpected answer to call {ident}: {line[:200]!r}")
        if len(line) < size:
            raise BenchError(f"answer to call {ident} has {len(line)} bytes, wanted at least {size}")
        return elapsed

    def check_call(self, size: int) -> None:
        """One untimed call whose answer must be the echo's success: a relay that refused the call (a policy
        that does not fit the benchmark, a pin that does not match) must not be timed as if it relayed it."""
        ident = self.next_id
        self.next_id += 1
        self.send(call_frame(ident, size, spaced=self.spaced))
        line = self.expect(ident)
        message = json.loads(line)
        result = message.get("result") if isinstance(message, dict) else None
        content = result.get("content") if isinstance(result, dict) else None
        text = (
            content[0].get("text") if isinstance(content, list) and content and isinstance(content[0], dict) else None
        )
        if result is None or result.get("isError") or text != "x" * size:
            raise BenchError(f"{self.argv[0]}: call {ident} was not relayed as the echo's success: {line[:300]!r}")

    def pipelined(self, total: int, window: int, size: int = 16) -> float:
        """``total`` calls with ``window`` in flight; calls per second."""
        frames = [call_frame(self.next_id + i, size, spaced=self.spaced) for i in range(total)]
        self.next_id += total
        sent = 0
        start = time.perf_counter_ns()
        for _ in range(min(window, total)):
            self.send(frames[sent])
            sent += 1
        for _ in range(total):
            if not self.readline():
                raise BenchError("the process closed its stdout during the pipelined run")
            if sent < total:
                self.send(frames[sent])
                sent += 1
        elapsed = time.perf_counter_ns() - start
        return total / (elapsed / 1e9)

    def close(self, timeout: float = 10.0) -> int | None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- statistics, tables, results --------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def rotated(items: Sequence[Any], round_index: int) -> list[Any]:
    """Round ``r`` starts at item ``r mod n`` and alternates direction, so no variant always goes first."""
    n = len(items)
    order = [items[(round_index + i) % n] for i in range(n)]
    return order if round_index % 2 == 0 else order[::-1]


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], title: str | None = None, left: int = 1) -> str:
    """A Markdown table; the first ``left`` columns are aligned left, the rest (figures) right."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = []
    if title:
        lines.append(title)
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        cells = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    print()
    return text


def write_results(name: str, data: Mapping[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"results written to {path.relative_to(ROOT)}")
    return path


def progress(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
