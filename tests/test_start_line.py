"""The one line the guard writes on stderr when it starts, so a client's MCP log shows it is active."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from conftest import EVERYTHING_SERVER, PYTHON, Start, handshake, tool_call, write_policy

from mcp_guard import __version__
from mcp_guard.startline import shown_command

POLICY = {"version": "1", "default": "allow", "tools": {"echo": {}}}


def start_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("mcp-guard: started ")]


def assert_only_json_rpc(received: list[bytes]) -> None:
    for line in received:
        message = json.loads(line)
        assert message["jsonrpc"] == "2.0", line


def test_start_line_names_version_policy_hash_mode_store_and_server(
    guard_cmd: list[str], start: Start, tmp_path: Path
) -> None:
    path = write_policy(tmp_path, POLICY)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    relative = os.path.relpath(path)
    session = start([*guard_cmd, "--policy", relative, "--", PYTHON, str(EVERYTHING_SERVER)])
    handshake(session)
    answer = session.request(tool_call(5, "echo", {"text": "hi"}))
    assert answer["result"]["content"][0]["text"] == "hi"
    code, stderr = session.finish()
    assert code == 0, stderr
    assert start_lines(stderr) == [
        f"mcp-guard: started {__version__}; policy {path} (sha256 {digest[:12]}, from --policy); mode enforce; "
        f"counters memory:; server: {PYTHON} {EVERYTHING_SERVER}"
    ]
    assert_only_json_rpc(session.received)


def test_start_line_without_a_policy_and_in_monitor_mode_with_a_store(
    guard_cmd: list[str], start: Start, tmp_path: Path
) -> None:
    db = tmp_path / "counters.db"
    session = start([*guard_cmd, "--monitor", "--state", f"sqlite:///{db}", PYTHON, str(EVERYTHING_SERVER)])
    handshake(session)
    code, stderr = session.finish()
    assert code == 0, stderr
    assert start_lines(stderr) == [
        f"mcp-guard: started {__version__}; policy none (allow-all); mode monitor (--monitor); "
        f"counters sqlite://{db}; server: {PYTHON} {EVERYTHING_SERVER}"
    ]
    assert_only_json_rpc(session.received)


def test_policy_in_monitor_mode_says_so(guard_cmd: list[str], start: Start, tmp_path: Path) -> None:
    path = write_policy(tmp_path, {**POLICY, "mode": "monitor"}, "p.json")
    session = start([*guard_cmd, "--policy", str(path), "--", PYTHON, str(EVERYTHING_SERVER)])
    handshake(session)
    _, stderr = session.finish()
    (line,) = start_lines(stderr)
    assert "; mode monitor (policy); " in line


def test_secrets_in_the_server_command_are_not_written() -> None:
    argv = [
        "npx",
        "-y",
        "mcp-remote",
        "https://user:hunter2@mcp.example.com/mcp?token=abc",
        "--header",
        "Authorization: Bearer sk-secret",
        "--header=X-Api-Key:k123",
        "--api-key",
        "sk-live-1",
        "--token=t0k",
        "two words",
    ]
    shown = shown_command(argv)
    for secret in ("hunter2", "sk-secret", "k123", "sk-live-1", "t0k", "token=abc"):
        assert secret not in shown, shown
    assert shown == (
        "npx -y mcp-remote 'https://user:***@mcp.example.com/mcp?token=***' --header 'Authorization: ***' "
        "'--header=X-Api-Key: ***' --api-key '***' '--token=***' 'two words'"
    )
