"""A hidden tool answers exactly like a tool the server does not have, whatever SDK the server uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import EVERYTHING_SERVER, PYTHON, Start, handshake, tool_call, write_policy
from test_transcripts import node_everything

HIDE = {"version": "1", "default": "allow", "hide": ["echo"]}


def answers(session: Any, name: str, count: int = 2) -> list[bytes]:
    lines = []
    for ident in range(1, count + 1):
        session.send(tool_call(ident, name, {"text": "hi", "message": "hi"}))
        lines.append(session.read_until_response(ident)[-1])
    return lines


@pytest.mark.parametrize("server", ["python-sdk", "typescript-sdk"])
def test_hidden_tool_answer_is_the_servers_own_unknown_tool_answer(
    guard_cmd: list[str], start: Start, tmp_path: Path, server: str
) -> None:
    command = [PYTHON, str(EVERYTHING_SERVER)] if server == "python-sdk" else node_everything()
    direct = start(command)
    handshake(direct)
    expected = [line.replace(b"no_such_tool", b"echo") for line in answers(direct, "no_such_tool")]
    direct.close_stdin()
    direct.wait()

    policy = write_policy(tmp_path, HIDE)
    guarded = start([*guard_cmd, "--policy", str(policy), "--", *command])
    handshake(guarded)
    assert answers(guarded, "echo") == expected  # byte for byte, asked twice (the second from the template)
    guarded.close_stdin()
    assert guarded.wait() == 0
    assert json.loads(expected[0])["id"] == 1


def test_under_default_deny_no_made_up_call_reaches_the_server(
    guard_cmd: list[str], start: Start, tmp_path: Path
) -> None:
    from conftest import RECORDER_SERVER

    record = tmp_path / "received.jsonl"
    policy = write_policy(tmp_path, {"version": "1", "default": "deny", "hide": ["echo"]})
    session = start([*guard_cmd, "--policy", str(policy), "--", PYTHON, str(RECORDER_SERVER), str(record)])
    answer = session.request(tool_call(1, "echo"))
    assert answer["result"] == {"content": [{"type": "text", "text": "Unknown tool: echo"}], "isError": True}
    session.close_stdin()
    assert session.wait() == 0
    assert not record.exists() or b"tools/call" not in record.read_bytes()
