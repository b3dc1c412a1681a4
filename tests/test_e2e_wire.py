"""The guard on the raw wire: transparency, big frames, exits, shutdown, policy errors, stray output."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    EVERYTHING_SERVER,
    INITIALIZED,
    MODERN_META,
    PYTHON,
    RECORDER_SERVER,
    Start,
    Transcript,
    converse,
    encode_frame,
    handshake,
    initialize,
    kill_quietly,
    pid_alive,
    read_pid,
    tool_call,
    user_policy_path,
    wait_gone,
    without_start_line,
    write_policy,
)

EVERYTHING = [PYTHON, str(EVERYTHING_SERVER)]
ALLOW_ALL: dict[str, Any] = {"version": "1", "default": "allow"}
NOT_JSON_RPC = "mcp-guard: the server wrote a line that is not JSON-RPC to stdout (not forwarded): "


def no_policy_line(env: dict[str, str]) -> str:
    return (
        "mcp-guard: no policy found: relaying every call (allow-all). Pass --policy FILE, "
        f"set $MCP_GUARD_POLICY, or create {user_policy_path(env)}\n"
    )


def assert_only_json_rpc(lines: Sequence[bytes]) -> None:
    for line in lines:
        assert line.endswith(b"\n")
        message = json.loads(line)
        assert isinstance(message, dict), line[:200]
        assert message["jsonrpc"] == "2.0", line[:200]


# --- (1) transparency: byte-identical transcripts -------------------------------------------------

HANDSHAKE_SCRIPT: list[dict[str, Any]] = [
    initialize(1),
    INITIALIZED,
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    tool_call("call-3", "echo", {"text": 'héllo ☃ "quoted" \\ back'}),
    {"jsonrpc": "2.0", "id": 4, "method": "resources/list"},
    {"jsonrpc": "2.0", "id": "prompts-5", "method": "prompts/list"},
    {"jsonrpc": "2.0", "id": 6, "method": "ping"},
]

MODERN_SCRIPT: list[dict[str, Any]] = [
    {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": MODERN_META}},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": MODERN_META}},
    {
        "jsonrpc": "2.0",
        "id": "call-3",
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "héllo ☃"}, "_meta": MODERN_META},
    },
    {
        "jsonrpc": "2.0",
        "id": 4,
        "method": "tools/call",
        "params": {"name": "add", "arguments": {"a": 2, "b": 40}, "_meta": MODERN_META},
    },
]

SCRIPTS = {"handshake": HANDSHAKE_SCRIPT, "modern": MODERN_SCRIPT}


# The server's own transcript per era, the same whatever the guard's configuration: recorded once per
# run (per pytest-xdist worker) and compared with each guarded one.
_DIRECT: dict[str, Transcript] = {}


@pytest.mark.parametrize("era", sorted(SCRIPTS))
@pytest.mark.parametrize("config", ["no-policy", "allow-all"])
def test_transcript_identical_direct_and_guarded(
    guard_cmd: list[str], env: dict[str, str], tmp_path: Path, era: str, config: str
) -> None:
    script = SCRIPTS[era]
    if era not in _DIRECT:
        _DIRECT[era] = converse(EVERYTHING, script, env)
    direct = _DIRECT[era]
    assert direct.returncode == 0
    policy_args = [] if config == "no-policy" else ["--policy", str(write_policy(tmp_path, ALLOW_ALL))]
    guarded = converse([*guard_cmd, *policy_args, "--", *EVERYTHING], script, env)

    # Every answer the server gave, in the order and with the bytes it gave them.
    assert guarded.received == direct.received
    assert direct.received.count(b"\n") == sum("id" in frame for frame in script)
    assert guarded.returncode == 0
    assert without_start_line(guarded.stderr) == direct.stderr + (no_policy_line(env) if config == "no-policy" else "")


# --- (2) big frames ---------------------------------------------------------------------------------

# Above every size the guard or its peers treat specially: the 64 KiB read buffer and pipe size, the
# 1 MiB limit for parsing a result's status, the 8 M characters protect_own_files scans, the 10 MiB
# audit file, and the 1 MB results some relays fail on. (It was 50 MB: the same proof, 2.5x the time.)
BIG = 20_000_000


def big_text(size: int) -> str:
    pattern = "0123456789abcdefghijklmnopqrstuvwxyz\n"  # what everything_server's `big` repeats
    return (pattern * (size // len(pattern) + 1))[:size]


@pytest.mark.timeout(90)
def test_20mb_result_and_20mb_request(guard_cmd: list[str], start: Start, tmp_path: Path) -> None:
    # protect_own_files refuses arguments too large to scan in full (8 M characters; tests/test_protect.py):
    # a guard meant to relay 20 MB arguments turns it off.
    policy = write_policy(tmp_path, {"version": "1", "default": "allow", "protect_own_files": False})
    session = start([*guard_cmd, "--policy", str(policy), "--", *EVERYTHING])
    handshake(session)

    answer = session.request(tool_call(1, "big", {"size": BIG}), timeout=60)
    assert answer["id"] == 1
    assert answer["result"]["isError"] is False
    [content] = answer["result"]["content"]
    assert content["type"] == "text"
    assert len(content["text"]) == BIG
    assert content["text"] == big_text(BIG)
    del answer, content

    text = "".join(chr(0x61 + i % 26) for i in range(1000)) * (BIG // 1000)
    line = encode_frame(tool_call("echo-2", "echo", {"text": text}))
    assert len(line) > BIG
    answer = session.request(json.loads(line), timeout=60)
    assert answer["id"] == "echo-2"
    assert answer["result"]["content"] == [{"type": "text", "text": text}]
    assert answer["result"]["structuredContent"] == {"result": text}
    del answer, text

    code, _ = session.finish()
    assert code == 0


# --- (3) the upstream exits on its own -----------------------------------------------------------------


def test_upstream_crash_answers_pending_and_propagates_code(
    guard_cmd: list[str], start: Start, env: dict[str, str]
) -> None:
    session = start([*guard_cmd, "--", *EVERYTHING])
    handshake(session)
    session.send(tool_call("slow-1", "slow", {"seconds": 30}))
    session.send(tool_call(7, "crash", {"code": 7}))

    answers = {json.loads(line)["id"]: json.loads(line) for line in session.read_lines(2)}
    assert answers == {
        ident: {
            "jsonrpc": "2.0",
            "id": ident,
            "error": {
                "code": -32000,
                "message": "mcp-guard: the MCP server exited with code 7 before answering this request",
            },
        }
        for ident in ("slow-1", 7)
    }
    assert session.read_rest() == []
    assert session.wait(10) == 7
    _, stderr = session.finish()
    assert without_start_line(stderr) == no_policy_line(env) + "mcp-guard: the MCP server exited with code 7\n"


def test_upstream_killed_by_signal(guard_cmd: list[str], start: Start, env: dict[str, str]) -> None:
    """Death by a signal is reported by name and becomes the shell's 128 + N exit status."""
    session = start([*guard_cmd, "--", "sh", "-c", "read line; kill -KILL $$"])
    session.send({"jsonrpc": "2.0", "id": "r1", "method": "ping"})
    assert json.loads(session.read_line()) == {
        "jsonrpc": "2.0",
        "id": "r1",
        "error": {
            "code": -32000,
            "message": "mcp-guard: the MCP server was killed by SIGKILL before answering this request",
        },
    }
    assert session.wait(10) == 128 + signal.SIGKILL
    code, stderr = session.finish()
    assert code == 137
    assert without_start_line(stderr) == no_policy_line(env) + "mcp-guard: the MCP server was killed by SIGKILL\n"


# --- (4, 5) shutdown ----------------------------------------------------------------------------------


def wrapped_server(pidfile: Path, grandchild_pidfile: Path | None = None) -> list[str]:
    """The everything server behind `sh`, which records the server's pid (exec keeps it)."""
    script = ""
    if grandchild_pidfile is not None:
        # A helper the server "started": same process group, holding the server's stdout open too.
        script += f"sleep 300 & echo $! > '{grandchild_pidfile}'; "
    script += f"echo $$ > '{pidfile}'; exec '{PYTHON}' '{EVERYTHING_SERVER}'"
    return ["sh", "-c", script]


@pytest.mark.parametrize("grandchild", [False, True], ids=["server", "server+grandchild"])
def test_stdin_eof_shuts_down_the_process_group(
    guard_cmd: list[str], start: Start, tmp_path: Path, grandchild: bool
) -> None:
    pidfile, sleepfile = tmp_path / "server.pid", tmp_path / "sleep.pid"
    session = start([*guard_cmd, "--", *wrapped_server(pidfile, sleepfile if grandchild else None)])
    handshake(session)
    pids = [read_pid(pidfile)] + ([read_pid(sleepfile)] if grandchild else [])
    try:
        assert all(pid_alive(pid) for pid in pids)
        began = time.monotonic()
        session.close_stdin()
        assert session.wait(5) == 0
        assert time.monotonic() - began < 5
        assert [pid for pid in pids if not wait_gone(pid, 1)] == []
        assert session.read_rest() == []
    finally:
        for pid in pids:
            kill_quietly(pid)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_guard_and_upstream(guard_cmd: list[str], start: Start, tmp_path: Path, signum: int) -> None:
    pidfile, sleepfile = tmp_path / "server.pid", tmp_path / "sleep.pid"
    session = start([*guard_cmd, "--", *wrapped_server(pidfile, sleepfile)])
    handshake(session)
    pids = [read_pid(pidfile), read_pid(sleepfile)]
    try:
        began = time.monotonic()
        os.kill(session.proc.pid, signum)
        assert session.wait(5) == 0
        assert time.monotonic() - began < 5
        assert [pid for pid in pids if not wait_gone(pid, 1)] == []
    finally:
        for pid in pids:
            kill_quietly(pid)


# --- (6) invalid policies ------------------------------------------------------------------------------

LIMTS = '{\n  "version": "1",\n  "tools": {\n    "echo": {\n      "limts": []\n    }\n  }\n}\n'
BAD_WINDOW = (
    '{\n  "version": "1",\n  "tools": {\n    "echo": {\n'
    '      "limits": [{"counter": "c", "window": "fortnight", "max": 3}]\n    }\n  }\n}\n'
)
TRAILING_COMMA = '{\n  "version": "1",\n  "default": "allow",\n}\n'

INVALID = {
    "unknown-field": (LIMTS, "5:7: tools.echo.limts: unknown field 'limts'; did you mean 'limits'?"),
    "bad-window": (
        BAD_WINDOW,
        "5:35: tools.echo.limits[0].window: window 'fortnight' is not understood: expected 'second', 'minute', "
        "'hour', 'day', a number of seconds, or a duration such as '90s', '15m', '2h', '1d'; got 'fortnight'",
    ),
    "trailing-comma": (TRAILING_COMMA, "4:1: expected a key in double quotes (is there a trailing comma?)"),
}


def run_guard_expecting_exit(start: Start, argv: list[str], env: dict[str, str]) -> tuple[int, str, list[bytes]]:
    session = start(argv, env)
    session.close_stdin()
    out = session.read_rest()
    code = session.wait()
    return code, session.finish()[1], out


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_policy_exits_2_before_spawning(
    guard_cmd: list[str], start: Start, env: dict[str, str], tmp_path: Path, case: str
) -> None:
    text, problem = INVALID[case]
    policy = write_policy(tmp_path, text)
    marker = tmp_path / "spawned"
    argv = [*guard_cmd, "--policy", str(policy), "--", "sh", "-c", f"touch '{marker}'"]
    code, stderr, out = run_guard_expecting_exit(start, argv, env)
    assert code == 2
    assert out == []
    assert stderr == f"mcp-guard: invalid policy (from --policy), not starting the server:\n{policy}:{problem}\n"
    assert not marker.exists()


@pytest.mark.parametrize("source", ["$MCP_GUARD_POLICY", "user config"])
def test_invalid_policy_from_discovery(
    guard_cmd: list[str], start: Start, env: dict[str, str], tmp_path: Path, source: str
) -> None:
    if source == "user config":
        policy = user_policy_path(env)
        policy.parent.mkdir(parents=True)
        policy.write_text(LIMTS)
    else:
        policy = write_policy(tmp_path, LIMTS)
        env = {**env, "MCP_GUARD_POLICY": str(policy)}
    marker = tmp_path / "spawned"
    code, stderr, out = run_guard_expecting_exit(start, [*guard_cmd, "--", "sh", "-c", f"touch '{marker}'"], env)
    assert (code, out) == (2, [])
    assert stderr == (
        f"mcp-guard: invalid policy (from {source}), not starting the server:\n"
        f"{policy}:5:7: tools.echo.limts: unknown field 'limts'; did you mean 'limits'?\n"
    )
    assert not marker.exists()


# --- (7, 8) what reaches the client's stdout and the guard's stderr --------------------------------------


def test_no_policy_one_stderr_line_and_clean_stdout(guard_cmd: list[str], start: Start, env: dict[str, str]) -> None:
    session = start([*guard_cmd, "--", *EVERYTHING])
    handshake(session)
    assert session.request(tool_call(1, "echo", {"text": "x"}))["result"]["content"] == [{"type": "text", "text": "x"}]
    code, stderr = session.finish()
    assert code == 0
    assert without_start_line(stderr) == no_policy_line(env)
    assert len(session.received) == 2
    assert_only_json_rpc(session.received)


def test_stray_stdout_lines_are_dropped_with_a_warning(guard_cmd: list[str], start: Start, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, ALLOW_ALL)
    session = start([*guard_cmd, "--policy", str(policy), "--", *EVERYTHING, "--banner"])
    handshake(session)
    printed = session.request(tool_call(1, "print_to_stdout", {"text": "stray line, not JSON"}))
    assert printed["result"]["content"] == [{"type": "text", "text": "printed"}]
    echoed = session.request(tool_call(2, "echo", {"text": "after"}))
    assert echoed["result"]["content"] == [{"type": "text", "text": "after"}]
    code, stderr = session.finish()
    assert code == 0
    assert len(session.received) == 3
    assert_only_json_rpc(session.received)
    assert without_start_line(stderr) == (
        f"{NOT_JSON_RPC}everything-server v1.0.0 starting (this banner is not JSON-RPC)\n"
        f"{NOT_JSON_RPC}stray line, not JSON\n"
    )


# --- (9, 10) refused calls and their cancellations never reach the upstream --------------------------------

RECORDER_POLICY: dict[str, Any] = {
    "version": "1",
    "default": "deny",
    "tools": {"allowed_tool": {}, "denied_tool": {"action": "deny"}},
}


def cancelled(request_id: int | str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}}


def refusal(ident: int | str, tool: str, rule: str, kind: str, reason: str, *, modern: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {
        "content": [
            {
                "type": "text",
                "text": f"mcp-guard refused this call to {tool!r} (policy rule {rule}): {reason} "
                "The call was not sent to the server.",
            }
        ],
        "isError": True,
        "_meta": {"mcp-guard/violation": {"tool": tool, "rule": rule, "kind": kind, "reason": reason}},
    }
    if modern:
        result["resultType"] = "complete"
    return {"jsonrpc": "2.0", "id": ident, "result": result}


def recorder_ok(ident: int | str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "result": {"content": [], "isError": False}}


def test_refused_calls_and_their_cancellations_stay_in_the_guard(
    guard_cmd: list[str], start: Start, tmp_path: Path
) -> None:
    record = tmp_path / "received.jsonl"
    policy = write_policy(tmp_path, RECORDER_POLICY)
    session = start([*guard_cmd, "--policy", str(policy), "--", PYTHON, str(RECORDER_SERVER), str(record)])

    denied_reason = "The policy denies every call to 'denied_tool'."
    default_reason = "Tool 'unlisted_tool' is not allowed: the policy does not list it and its default is deny."
    # Frames whose bytes must reach the upstream unchanged; the odd spacing and key order are on purpose.
    allowed_calls = [
        b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"allowed_tool","arguments":{"n":1}}}\n',
        b'{ "params" : {"arguments": {"s": "caf\\u00e9"}, "name": "allowed_tool"}, "method": "tools/call",'
        b' "id": "s-5", "jsonrpc": "2.0" }\n',
    ]
    forwarded: list[bytes] = []

    def forward(frame: dict[str, Any] | bytes) -> None:
        line = encode_frame(frame)
        forwarded.append(line)
        session.send(line)

    forward(initialize(1))
    assert json.loads(session.read_line()) == recorder_ok(1)
    forward(INITIALIZED)

    forward(allowed_calls[0])
    assert json.loads(session.read_line()) == recorder_ok(2)

    # Refused: an explicit deny (string id), the default deny (int id), a 2026-era deny.
    session.send(tool_call("s-3", "denied_tool", {"n": 3}))
    assert json.loads(session.read_line()) == refusal(
        "s-3", "denied_tool", "tools.denied_tool.action", "deny", denied_reason
    )
    session.send(tool_call(4, "unlisted_tool"))
    assert json.loads(session.read_line()) == refusal(4, "unlisted_tool", "default", "default_deny", default_reason)
    modern_call = tool_call("m-6", "denied_tool")
    modern_call["params"]["_meta"] = MODERN_META
    session.send(modern_call)
    assert json.loads(session.read_line()) == refusal(
        "m-6", "denied_tool", "tools.denied_tool.action", "deny", denied_reason, modern=True
    )

    # Cancelling a refused call stays in the guard; cancelling anything else goes through.
    session.send(cancelled("s-3"))
    session.send(cancelled(4))
    session.send(cancelled("m-6"))
    forward(cancelled("4"))  # the string "4" is not the refused request 4
    forward(cancelled(2))
    forward(allowed_calls[1])
    assert json.loads(session.read_line()) == recorder_ok("s-5")
    forward(cancelled("s-5"))
    forward({"jsonrpc": "2.0", "id": 7, "method": "ping"})
    assert json.loads(session.read_line()) == recorder_ok(7)

    code, stderr = session.finish()
    assert code == 0
    assert without_start_line(stderr) == ""
    recording = record.read_bytes()
    assert recording == b"".join(forwarded)
    assert b"denied_tool" not in recording
    assert b"unlisted_tool" not in recording
    assert recording.count(b"allowed_tool") == 2


# --- frames the policy does not touch, whatever JSON they hold ------------------------------------------


def test_frames_the_guard_cannot_read_strictly_are_never_forwarded(
    guard_cmd: list[str], start: Start, tmp_path: Path
) -> None:
    """Every client line is parsed; what is forwarded is exactly what was read, by every reader.

    These frames hold JSON that readers disagree on (an integer beyond 2^53, a duplicate key, a float
    overflow). Issue 17 replaced the rule that forwarded such frames when they were not a tools/call in
    the guard's own reading: a request gets an error addressed to its id, a response (the client's answer
    to the server) is dropped with a line on stderr, and the upstream sees none of them.
    """
    record = tmp_path / "received.jsonl"
    policy = write_policy(tmp_path, RECORDER_POLICY)
    session = start([*guard_cmd, "--policy", str(policy), "--", PYTHON, str(RECORDER_SERVER), str(record)])
    frames = [
        b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"n":18446744073709551616}}}\n',
        b'{"jsonrpc":"2.0","id":2,"method":"ping","params":{"_meta":{"n":18446744073709551616,"s":"a\\"b"}}}\n',
        b'{"jsonrpc":"2.0","id":3,"method":"ping","params":{"_meta":{"s":"a\\"b","s":"c"}}}\n',
        b'{"jsonrpc":"2.0","id":4,"method":"ping","params":{"_meta":{"note":"tools/call","n":-18446744073709551616}}}\n',
    ]
    for ident, frame in enumerate(frames, start=1):
        session.send(frame)
        answer_ = json.loads(session.read_line())
        assert (answer_["id"], answer_["error"]["code"]) == (ident, -32600)
    answer = b'{"jsonrpc":"2.0","id":"srv-1","result":{"content":{"type":"text","text":"a\\nb"},"n":1e400}}\n'
    session.send(answer)
    ping = encode_frame({"jsonrpc": "2.0", "id": 5, "method": "ping"})
    session.send(ping)
    assert json.loads(session.read_line()) == recorder_ok(5)

    # The same oddities in a frame that is, or might be read as, a tools/call are refused, not relayed.
    session.send(
        b'{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"allowed_tool",'
        b'"arguments":{"n":18446744073709551616}}}\n'
    )
    assert json.loads(session.read_line()) == {
        "jsonrpc": "2.0",
        "id": 6,
        "error": {
            "code": -32600,
            "message": "mcp-guard: the number 18446744073709551616 is outside ±2^53, where JSON parsers disagree "
            "on its value; send it as a string",
        },
    }
    session.send(b'{"jsonrpc":"2.0","id":7,"method":"ping","method":"tools/call","params":{"name":"allowed_tool"}}\n')
    assert json.loads(session.read_line()) == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {
            "code": -32600,
            "message": "mcp-guard: duplicate key 'method' in the frame: JSON parsers disagree on which value wins, "
            "so the guard refuses it",
        },
    }

    code, stderr = session.finish()
    assert code == 0
    # One line besides the start line: the dropped response, reported.
    assert "could not" not in stderr and without_start_line(stderr).count("mcp-guard:") == 1
    assert record.read_bytes() == ping
