"""Shared helpers for the end-to-end tests: where things are, policies, and raw JSON-RPC sessions.

Every read from a child process has a deadline: a reader thread per pipe feeds a queue, and
the test side only ever waits on that queue with a timeout, so a guard that hangs fails the
test instead of hanging the suite.
"""

from __future__ import annotations

import copy
import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import pytest
from hypothesis import settings

# No per-example deadline: the property tests are CPU-bound and run beside other workers
# (pytest-xdist) and servers starting up; a slow example there is load, not a bug, and hypothesis
# would report it as a flaky failure. Example counts stay as each test sets them.
settings.register_profile("mcp-guard", deadline=None)
settings.load_profile("mcp-guard")

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
EVERYTHING_SERVER = ROOT / "tests" / "servers" / "everything_server.py"
RECORDER_SERVER = ROOT / "tests" / "servers" / "recorder.py"
DEMO_SERVER = ROOT / "examples" / "demo_server.py"
SEED_POLICY = ROOT / "examples" / "policies" / "seed.json"

READ_TIMEOUT_S = 15.0

# A shell starts background jobs with SIGINT ignored, and children inherit that: the Ctrl-C tests
# would then test nothing. The suite behaves the same however it was launched.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

Frame = Mapping[str, Any] | bytes


def guard_command() -> list[str]:
    """The guard's console script next to this interpreter, else ``python -m mcp_guard``."""
    script = Path(sys.executable).parent / "mcp-guard"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "mcp_guard"]


@pytest.fixture(scope="session")
def guard_cmd() -> list[str]:
    return guard_command()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def write_policy(tmp_path: Path, policy: Mapping[str, Any] | str, name: str = "policy.json") -> Path:
    """Write ``policy`` (a dict, dumped as indented JSON, or literal text) to ``tmp_path/name``."""
    path = tmp_path / name
    text = policy if isinstance(policy, str) else json.dumps(policy, indent=2) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


_XDG = (
    ("XDG_CONFIG_HOME", "xdg-config"),
    ("XDG_STATE_HOME", "xdg-state"),
    ("XDG_DATA_HOME", "xdg-data"),
    ("XDG_CACHE_HOME", "xdg-cache"),
)


def isolated_env(tmp_path: Path) -> dict[str, str]:
    """This process's environment with a home and XDG folders of the test's own, and no user policy.

    HOME matters as much as the XDG variables: the MCP SDK's stdio client passes only HOME, PATH and a
    few others to the servers it starts, so a guard started through it finds its folders from HOME.
    """
    env = {k: v for k, v in os.environ.items() if k != "MCP_GUARD_POLICY"}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env["HOME"] = str(home)
    if os.name == "nt":
        env["USERPROFILE"] = str(home)
    for var, name in _XDG:
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        env[var] = str(folder)
    return env


# --- the whole session runs in a home of its own, and must leave the real one alone ----------------------------
#
# Set before collection, so every process a test starts (through the SDK's client, which keeps HOME, or
# with the environment inherited) sees the session's folders, not the user's. At the end, the user's own
# mcp-guard folders and the client config files `wrap` edits are compared with what they were before.

_REAL_WATCHED: list[Path] = []
_REAL_BEFORE: dict[str, tuple[int, int] | None] = {}
_SESSION_ROOT: Path | None = None


def real_user_paths() -> list[Path]:
    """The user's own mcp-guard folders and client config files, under the environment the session began with."""
    import platformdirs

    home = Path.home()
    folders = [
        Path(platformdirs.user_config_dir("mcp-guard", appauthor=False)),
        Path(platformdirs.user_state_dir("mcp-guard", appauthor=False)),
        Path(platformdirs.user_data_dir("mcp-guard", appauthor=False)),
        Path(platformdirs.user_log_dir("mcp-guard", appauthor=False)),
        Path(platformdirs.user_cache_dir("mcp-guard", appauthor=False)),
    ]
    clients = [
        home / ".claude.json",
        home / ".cursor" / "mcp.json",
        Path(platformdirs.user_config_dir("Claude", appauthor=False)) / "claude_desktop_config.json",
        Path(platformdirs.user_config_dir("Code", appauthor=False)) / "User" / "mcp.json",
    ]
    return [*folders, *clients]


def snapshot(paths: Sequence[Path]) -> dict[str, tuple[int, int] | None]:
    """Every file and folder under ``paths``: (size, mtime in ns), or None for a path that does not exist."""
    seen: dict[str, tuple[int, int] | None] = {}
    for root in paths:
        if not root.exists():
            seen[str(root)] = None
            continue
        for path in [root, *(root.rglob("*") if root.is_dir() else ())]:
            try:
                info = path.lstat()
            except OSError:
                continue
            seen[str(path)] = (info.st_size if path.is_file() else 0, info.st_mtime_ns)
    return seen


def changes(before: Mapping[str, object], after: Mapping[str, object]) -> list[str]:
    return sorted(
        f"{'created' if before.get(path) is None else 'removed' if after.get(path) is None else 'changed'}: {path}"
        for path in set(before) | set(after)
        if before.get(path) != after.get(path)
    )


def pytest_configure(config: pytest.Config) -> None:
    global _SESSION_ROOT
    import tempfile

    _REAL_WATCHED[:] = real_user_paths()
    _REAL_BEFORE.update(snapshot(_REAL_WATCHED))
    _SESSION_ROOT = Path(tempfile.mkdtemp(prefix="mcp-guard-tests-"))
    os.environ.update(isolated_env(_SESSION_ROOT))
    os.environ.pop("MCP_GUARD_POLICY", None)
    os.environ["MCP_GUARD_TEST_SESSION_ROOT"] = str(_SESSION_ROOT)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import shutil

    written = changes(_REAL_BEFORE, snapshot(_REAL_WATCHED))
    if written:
        message = "the tests wrote outside their isolated HOME/XDG folders:\n  " + "\n  ".join(written)
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(message, red=True)
        else:
            sys.stderr.write(message + "\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if _SESSION_ROOT is not None:
        shutil.rmtree(_SESSION_ROOT, ignore_errors=True)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return isolated_env(tmp_path)


START_LINE = re.compile(r"^mcp-guard: started [^\n]*\n", re.MULTILINE)


def without_start_line(stderr: str) -> str:
    """The guard's stderr minus its one start line (tests/test_start_line.py checks that line itself)."""
    assert len(START_LINE.findall(stderr)) == 1, stderr
    return START_LINE.sub("", stderr, count=1)


def user_policy_path(env: Mapping[str, str]) -> Path:
    """Where the guard looks for the user's policy under ``env`` (platformdirs' rule on Linux)."""
    return Path(env["XDG_CONFIG_HOME"]) / "mcp-guard" / "policy.json"


def encode_frame(frame: Frame) -> bytes:
    if isinstance(frame, bytes):
        return frame if frame.endswith(b"\n") else frame + b"\n"
    return json.dumps(frame, separators=(",", ":")).encode() + b"\n"


def _pump_lines(stream: BinaryIO, out: queue.Queue[bytes | None]) -> None:
    try:
        for line in iter(stream.readline, b""):
            out.put(line)
    except (OSError, ValueError):
        pass
    finally:
        out.put(None)


class RawSession:
    """A child process driven over raw newline-delimited JSON-RPC, with a deadline on every read."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None and self.proc.stderr is not None
        self._stdin = self.proc.stdin
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._errs: queue.Queue[bytes | None] = queue.Queue()
        self._stdout_eof = False
        self.received: list[bytes] = []
        self._readers = [
            threading.Thread(target=_pump_lines, args=(self.proc.stdout, self._lines), daemon=True),
            threading.Thread(target=_pump_lines, args=(self.proc.stderr, self._errs), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self._stderr_chunks: list[bytes] = []

    # writing ---------------------------------------------------------------------------

    def send(self, frame: Frame) -> None:
        self._stdin.write(encode_frame(frame))
        self._stdin.flush()

    def close_stdin(self) -> None:
        try:
            self._stdin.close()
        except OSError:
            pass

    # reading ---------------------------------------------------------------------------

    def read_line(self, timeout: float = READ_TIMEOUT_S) -> bytes:
        """The next stdout line (newline included); fails the test at the deadline or at EOF."""
        if self._stdout_eof:
            raise AssertionError(f"stdout already closed; stderr:\n{self.stderr_so_far()}")
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line within {timeout} s; stderr:\n{self.stderr_so_far()}") from None
        if line is None:
            self._stdout_eof = True
            raise AssertionError(f"stdout closed while a line was expected; stderr:\n{self.stderr_so_far()}")
        self.received.append(line)
        return line

    def read_lines(self, count: int, timeout: float = READ_TIMEOUT_S) -> list[bytes]:
        deadline = time.monotonic() + timeout
        return [self.read_line(max(0.0, deadline - time.monotonic())) for _ in range(count)]

    def read_until_response(self, ident: Any, timeout: float = READ_TIMEOUT_S) -> list[bytes]:
        """Lines up to and including the response with ``ident`` (notifications before it too)."""
        deadline = time.monotonic() + timeout
        lines: list[bytes] = []
        while True:
            line = self.read_line(max(0.0, deadline - time.monotonic()))
            lines.append(line)
            message = json.loads(line)
            if isinstance(message, dict) and "method" not in message and message.get("id") == ident:
                return lines

    def request(self, frame: Mapping[str, Any], timeout: float = READ_TIMEOUT_S) -> dict[str, Any]:
        """Send a request and return its parsed response (the last line read)."""
        self.send(frame)
        answer = json.loads(self.read_until_response(frame["id"], timeout)[-1])
        assert isinstance(answer, dict)
        return answer

    def read_rest(self, timeout: float = READ_TIMEOUT_S) -> list[bytes]:
        """Every stdout line until EOF."""
        deadline = time.monotonic() + timeout
        rest: list[bytes] = []
        while not self._stdout_eof:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"stdout still open after {timeout} s; stderr:\n{self.stderr_so_far()}") from None
            if line is None:
                self._stdout_eof = True
            else:
                self.received.append(line)
                rest.append(line)
        return rest

    def stderr_so_far(self) -> str:
        while True:
            try:
                chunk = self._errs.get_nowait()
            except queue.Empty:
                break
            if chunk is not None:
                self._stderr_chunks.append(chunk)
        return b"".join(self._stderr_chunks).decode("utf-8", "replace")

    # ending ----------------------------------------------------------------------------

    def wait(self, timeout: float = READ_TIMEOUT_S) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.argv[0]} still running after {timeout} s") from None

    def finish(self, timeout: float = READ_TIMEOUT_S) -> tuple[int, str]:
        """Close stdin, drain stdout to EOF, wait for exit; the exit code and the whole stderr."""
        self.close_stdin()
        self.read_rest(timeout)
        code = self.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return code, self.stderr_so_far()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.close_stdin()


@pytest.fixture
def raw_sessions() -> Iterator[list[RawSession]]:
    """Sessions appended here are killed after the test if still running."""
    sessions: list[RawSession] = []
    yield sessions
    for session in sessions:
        session.kill()


class Start(Protocol):
    def __call__(self, argv: Sequence[str], env_: Mapping[str, str] | None = None) -> RawSession: ...


@pytest.fixture
def start(raw_sessions: list[RawSession], env: dict[str, str]) -> Start:
    """``start(argv, env_=None) -> RawSession`` (default env: the isolated one), killed after the test."""

    def _start(argv: Sequence[str], env_: Mapping[str, str] | None = None) -> RawSession:
        session = RawSession(argv, env if env_ is None else env_)
        raw_sessions.append(session)
        return session

    return _start


@dataclass(frozen=True)
class Transcript:
    received: bytes
    returncode: int
    stderr: str


def converse(
    argv: Sequence[str], frames: Sequence[Frame], env: Mapping[str, str], timeout: float = READ_TIMEOUT_S
) -> Transcript:
    """Send ``frames`` one by one (waiting for each request's answer), close stdin, and collect all.

    Waiting for each answer keeps the order of the server's output deterministic.
    """
    session = RawSession(argv, env)
    try:
        for frame in frames:
            session.send(frame)
            message = json.loads(frame) if isinstance(frame, bytes) else frame
            if "method" in message and "id" in message:
                session.read_until_response(message["id"], timeout)
        code, stderr = session.finish(timeout)
        return Transcript(b"".join(session.received), code, stderr)
    finally:
        session.kill()


# --- the CLI in this process ------------------------------------------------------------------------


class Cli(Protocol):
    def __call__(
        self, *argv: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]: ...


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``cli(*argv, cwd=tmp_path, env=None)``: ``mcp-guard ARGV`` run by ``mcp_guard.cli.main`` in this process.

    What a subprocess would give (exit code, stdout, stderr), without starting a Python and importing
    the ``mcp`` SDK again for each command (about a second each). ``env``, when given, replaces the
    whole environment for the call, as ``subprocess.run(env=...)`` does. Subcommands that start a
    server still start it for real. Keep at least one subprocess run per command where the process
    boundary matters (signals, the installed script, exit through ``os._exit``).
    """
    from mcp_guard import cli as guard_cli

    def run(
        *argv: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        out, err = io.StringIO(), io.StringIO()
        with monkeypatch.context() as patch:
            patch.chdir(cwd or tmp_path)
            if env is not None:
                for name in set(os.environ) - set(env):
                    patch.delenv(name)
                for name, value in env.items():
                    patch.setenv(name, value)
            patch.setattr(sys, "stdout", out)
            patch.setattr(sys, "stderr", err)
            try:
                code = guard_cli.main(list(argv))
            except SystemExit as exc:  # argparse's usage errors
                code = exc.code if isinstance(exc.code, int) else 1
                if isinstance(exc.code, str):
                    err.write(exc.code + "\n")
        return subprocess.CompletedProcess(["mcp-guard", *argv], code, out.getvalue(), err.getvalue())

    return run


# Server command -> its tool listing, read once per process (per pytest-xdist worker) from the real
# server by the real SDK client.
_LISTINGS: dict[tuple[tuple[str, ...], str, str], Any] = {}


@pytest.fixture
def listed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process ``init`` / ``pins`` commands list each distinct server command once per process.

    The servers used (``everything_server.py --tools N``...) list the same tools every time, so a
    second listing of the same command only repeats a server start (about a second of ``import mcp``).
    The first listing of each command is real: the server is started and read through
    :func:`mcp_guard.commands.listing.list_raw_tools`; later ones get a copy of what it returned, and
    every step after the listing (resolving the command, messages, lock and policy files) runs as usual.
    """
    # The SDK binds sys.stderr (the server's stderr) when mcp.client.stdio is first imported: import it
    # now, while sys.stderr is a real file, not the in-memory one the ``cli`` fixture puts in its place.
    import mcp.client.stdio  # noqa: F401

    from mcp_guard.commands import listing

    real = listing.list_raw_tools

    async def once(command: Sequence[str], timeout: float, *args: Any, **kwargs: Any) -> Any:
        # What is listed depends on the capabilities declared, the environment and the folder too.
        key = (tuple(command), repr(args), repr(sorted(kwargs.items())))
        if key not in _LISTINGS:
            _LISTINGS[key] = await real(command, timeout, *args, **kwargs)
        return copy.deepcopy(_LISTINGS[key])

    monkeypatch.setattr(listing, "list_raw_tools", once)


# --- processes ------------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            text = stat.read_text()
        except (FileNotFoundError, ProcessLookupError):
            return False
        state = text.rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def read_pid(path: Path, timeout: float = READ_TIMEOUT_S) -> int:
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        if text.endswith("\n"):
            return int(text)
        if time.monotonic() >= deadline:
            raise AssertionError(f"{path} was not written within {timeout} s")
        time.sleep(0.02)


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --- canned frames ----------------------------------------------------------------------------------

HANDSHAKE_VERSION = "2025-06-18"
MODERN_VERSION = "2026-07-28"
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
    "io.modelcontextprotocol/clientInfo": {"name": "mcp-guard-tests", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


def initialize(ident: int | str = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": ident,
        "method": "initialize",
        "params": {
            "protocolVersion": HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "mcp-guard-tests", "version": "1"},
        },
    }


INITIALIZED: dict[str, Any] = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def tool_call(ident: int | str, name: str, arguments: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": ident,
        "method": "tools/call",
        "params": {"name": name, "arguments": dict(arguments or {})},
    }


def handshake(session: RawSession) -> None:
    """The handshake-era opening: initialize, its answer, notifications/initialized."""
    answer = session.request(initialize(0))
    assert "result" in answer, answer
    session.send(INITIALIZED)
