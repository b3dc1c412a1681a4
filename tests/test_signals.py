"""Signals and shutdown, end to end: the guard ends the whole server group in time and never dies first.

MCP clients (the Python SDK, FastMCP, the TypeScript SDK) close the server's stdin, wait 2 s, then
SIGTERM it. The guard runs the server in a process group of its own, out of the client's reach, so the
guard must have ended that whole group before the client's signal, and a signal that reaches the guard
while it is shutting down must hurry the shutdown, never end the guard with the server still running.
The upstream here (``tests/servers/stubborn.py``) ignores stdin EOF, keeps a call unanswered, and has
a helper process in its group holding its stdout open.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
from conftest import (
    INITIALIZED,
    PYTHON,
    ROOT,
    RawSession,
    Start,
    handshake,
    initialize,
    kill_quietly,
    pid_alive,
    read_pid,
    tool_call,
    wait_gone,
    write_policy,
)
from test_transcripts import node_everything

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and process groups")

STUBBORN = ROOT / "tests" / "servers" / "stubborn.py"
CALL_ID = 7
# The clients' grace between closing the server's stdin and signalling it.
CLIENT_GRACE_S = 2.0


@dataclass
class Guarded:
    session: RawSession
    server: int
    helper: int
    events: Path

    @property
    def pids(self) -> list[int]:
        return [self.server, self.helper]

    def events_seen(self) -> list[str]:
        return self.events.read_text().split() if self.events.exists() else []


class GuardedFactory(Protocol):
    def __call__(self, *, ignore_term: bool) -> Guarded: ...


@pytest.fixture
def spawned() -> Iterator[list[int]]:
    """Pids of servers and helpers the test started, killed afterwards if still there."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        kill_quietly(pid)


@pytest.fixture
def guarded(guard_cmd: list[str], start: Start, tmp_path: Path, spawned: list[int]) -> GuardedFactory:
    def _start(*, ignore_term: bool) -> Guarded:
        server_pid, helper_pid, events = tmp_path / "server.pid", tmp_path / "helper.pid", tmp_path / "events"
        argv = [PYTHON, str(STUBBORN), str(server_pid), "--grandchild", str(helper_pid), "--events", str(events)]
        session = start([*guard_cmd, "--", *argv, *(["--ignore-term"] if ignore_term else [])])
        handshake(session)
        run = Guarded(session, read_pid(server_pid), read_pid(helper_pid), events)
        spawned.extend(run.pids)
        assert all(pid_alive(pid) for pid in run.pids)
        session.send(tool_call(CALL_ID, "work"))
        # The server reads in order: once the ping is answered, the call is in its hands.
        assert session.request({"jsonrpc": "2.0", "id": 8, "method": "ping"}) == {
            "jsonrpc": "2.0",
            "id": 8,
            "result": {},
        }
        return run

    return _start


def alive_at(pids: list[int], deadline: float) -> list[int]:
    """The pids still running at ``deadline`` (a ``time.monotonic()`` value)."""
    return [pid for pid in pids if not wait_gone(pid, max(0.0, deadline - time.monotonic()))]


def assert_quiet(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "KeyboardInterrupt" not in stderr, stderr


def stopping_error(line: bytes, why: str) -> None:
    """``line`` is the guard's answer to the waiting call, saying it is stopping and ``why``."""
    answer = json.loads(line)
    assert answer["id"] == CALL_ID and "result" not in answer, answer
    assert answer["error"] == {
        "code": -32000,
        "message": f"mcp-guard: the guard is stopping ({why}); this request was not answered",
    }


# --- the client closes stdin -------------------------------------------------------------------------


@pytest.mark.parametrize("ignore_term", [False, True], ids=["ignores-eof", "ignores-eof-and-sigterm"])
def test_stdin_eof_ends_the_server_group_within_the_clients_grace(guarded: GuardedFactory, ignore_term: bool) -> None:
    run = guarded(ignore_term=ignore_term)
    began = time.monotonic()
    run.session.close_stdin()
    assert alive_at(run.pids, began + CLIENT_GRACE_S - 0.1) == []
    assert run.session.wait(5) == 0
    # The order: stdin closed first, SIGTERM after (a server that honours it records it).
    assert run.events_seen() == (["eof"] if ignore_term else ["eof", "sigterm"])
    # Whatever the server left unanswered is answered by the guard, not left hanging.
    rest = run.session.read_rest()
    assert len(rest) == 1, rest
    stopping_error(rest[0], "the client closed its input")
    assert_quiet(run.session.stderr_so_far())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_during_the_eof_shutdown_escalates(guarded: GuardedFactory, signum: int) -> None:
    """What the clients do 2 s after closing stdin; sent sooner here, while the guard is still waiting."""
    run = guarded(ignore_term=True)
    run.session.close_stdin()
    time.sleep(0.2)
    signalled = time.monotonic()
    os.kill(run.session.proc.pid, signum)
    # Escalation is SIGKILL now, well before the 0.5 s + 1 s that the ordinary order takes.
    assert alive_at(run.pids, signalled + 0.6) == []
    assert run.session.wait(5) == 0
    assert time.monotonic() - signalled < 1.5
    assert_quiet(run.session.stderr_so_far())


# --- signals to the guard -------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_first_signal_answers_waiting_requests_then_stops_the_server_in_order(
    guarded: GuardedFactory, signum: int
) -> None:
    run = guarded(ignore_term=False)
    signalled = time.monotonic()
    os.kill(run.session.proc.pid, signum)
    # Answered at once, before the server is even signalled.
    stopping_error(run.session.read_line(timeout=1.0), f"it received {signal.Signals(signum).name}")
    assert alive_at(run.pids, signalled + 1.5) == []
    assert run.session.wait(5) == 0
    assert run.events_seen() == ["eof", "sigterm"]
    assert run.session.read_rest() == []
    assert_quiet(run.session.stderr_so_far())


@pytest.mark.parametrize(
    "signums",
    [
        (signal.SIGINT, signal.SIGINT),
        (signal.SIGTERM, signal.SIGTERM),
        (signal.SIGINT, signal.SIGTERM),
        (signal.SIGINT, signal.SIGINT, signal.SIGINT),
    ],
    ids=["INT-INT", "TERM-TERM", "INT-TERM", "INT-INT-INT"],
)
def test_another_signal_kills_the_server_group_at_once(guarded: GuardedFactory, signums: tuple[int, ...]) -> None:
    run = guarded(ignore_term=True)
    pid = run.session.proc.pid
    os.kill(pid, signums[0])
    stopping_error(run.session.read_line(), f"it received {signal.Signals(signums[0]).name}")
    time.sleep(0.1)
    hurried = time.monotonic()
    for signum in signums[1:]:
        os.kill(pid, signum)
        time.sleep(0.05)
    assert alive_at(run.pids, hurried + 0.6) == []
    assert run.session.wait(5) == 0
    assert time.monotonic() - hurried < 1.5
    assert run.session.read_rest() == []
    assert_quiet(run.session.stderr_so_far())


@pytest.mark.parametrize("signums", [(signal.SIGINT,), (signal.SIGTERM, signal.SIGTERM)], ids=["INT", "TERM-TERM"])
def test_signal_while_a_call_waits_for_approval(
    guard_cmd: list[str], start: Start, tmp_path: Path, spawned: list[int], signums: tuple[int, ...]
) -> None:
    """A call held for a person's approval is answered at once too, and its question taken back."""
    rule = {"approve_if": [{"path": "args.n", "op": "gt", "value": 1}]}
    policy = write_policy(tmp_path, {"version": "1", "default": "allow", "tools": {"work": rule}})
    pidfile = tmp_path / "server.pid"
    guard = [*guard_cmd, "--approval-store", str(tmp_path / "approvals.db"), "--policy", str(policy)]
    session = start([*guard, "--", PYTHON, str(STUBBORN), str(pidfile), "--ignore-term"])
    spawned.append(read_pid(pidfile))
    opening = initialize(0)
    opening["params"]["capabilities"] = {"elicitation": {}}
    assert "result" in session.request(opening)
    session.send(INITIALIZED)
    session.send(tool_call(CALL_ID, "work", {"n": 5}))
    question = json.loads(session.read_line())
    assert question["method"] == "elicitation/create", question
    signalled = time.monotonic()
    for signum in signums:
        os.kill(session.proc.pid, signum)
        time.sleep(0.05)
    # At once, in either order (the question is taken back by the worker that asked it).
    lines = [session.read_line(timeout=1.0), *session.read_rest()]
    answers = [line for line in lines if b'"method"' not in line]
    assert len(answers) == 1, lines
    stopping_error(answers[0], f"it received {signal.Signals(signums[0]).name}")
    cancelled = {"requestId": question["id"], "reason": "mcp-guard stopped waiting for an answer"}
    assert [json.loads(line) for line in lines if line not in answers] == [
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": cancelled}
    ]
    assert session.wait(5) == 0
    assert time.monotonic() - signalled < (2.0 if len(signums) == 1 else 1.0)
    assert alive_at(spawned, time.monotonic()) == []
    assert_quiet(session.stderr_so_far())


def test_reference_server_with_a_call_in_flight_is_gone_before_the_clients_sigterm(
    guard_cmd: list[str], start: Start, tmp_path: Path, spawned: list[int]
) -> None:
    """The issue's case: the TypeScript reference server, busy with a call, and a client ending as SDKs do."""
    pidfile = tmp_path / "server.pid"
    server = " ".join(f"'{arg}'" for arg in node_everything())
    session = start([*guard_cmd, "--", "sh", "-c", f"echo $$ > '{pidfile}'; exec {server}"])
    spawned.append(read_pid(pidfile))
    handshake(session)
    call = tool_call(CALL_ID, "trigger-long-running-operation", {"duration": 60, "steps": 600})
    call["params"]["_meta"] = {"progressToken": "p"}
    session.send(call)
    # Its first progress notification (after whatever it announces at start): the call is under way.
    while json.loads(session.read_line()).get("method") != "notifications/progress":
        pass
    closed = time.monotonic()
    session.close_stdin()
    assert session.wait(CLIENT_GRACE_S) == 0
    assert alive_at(spawned, closed + CLIENT_GRACE_S) == []
    assert_quiet(session.stderr_so_far())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a parent-death signal is Linux's")
def test_server_dies_with_a_killed_guard(guarded: GuardedFactory) -> None:
    """Nothing of the guard runs after SIGKILL: the kernel ends the server (its own helpers are beyond reach)."""
    run = guarded(ignore_term=True)
    killed = time.monotonic()
    os.kill(run.session.proc.pid, signal.SIGKILL)
    assert run.session.wait(5) == -signal.SIGKILL
    assert alive_at([run.server], killed + 2.0) == []


@pytest.mark.timeout(30)
def test_stdin_eof_escalates_to_sigkill(guard_cmd: list[str], start: Start, tmp_path: Path) -> None:
    """An upstream that ignores both stdin EOF and SIGTERM is killed after the 0.5 s + 1 s grace."""
    pidfile = tmp_path / "stubborn.pid"
    stubborn = ["sh", "-c", f"trap '' TERM; echo $$ > '{pidfile}'; while :; do sleep 1; done"]
    session = start([*guard_cmd, "--", *stubborn])
    pid = read_pid(pidfile)
    try:
        began = time.monotonic()
        session.close_stdin()
        assert session.wait(10) == 0
        assert 1.4 < time.monotonic() - began < 3.0
        assert wait_gone(pid, 1)
    finally:
        kill_quietly(pid)
