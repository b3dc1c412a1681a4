"""A hidden tool answers exactly like a tool the server does not have, whatever SDK the server uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import EVERYTHING_SERVER, MODERN_META, PYTHON, Start, handshake, tool_call, write_policy
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
    assert answer["result"]["isError"] is True
    assert answer["result"]["_meta"]["mcp-guard/violation"]["kind"] == "default_deny"
    session.close_stdin()
    assert session.wait() == 0
    assert not record.exists() or b"tools/call" not in record.read_bytes()


@pytest.mark.parametrize("modern", [False, True])
def test_under_default_deny_a_hidden_tool_is_answered_like_one_that_does_not_exist(
    guard_cmd: list[str], start: Start, tmp_path: Path, modern: bool
) -> None:
    """Hiding a tool must not reveal that it exists: the same bytes as for a made-up name, apart from the id."""
    policy = write_policy(tmp_path, {"version": "1", "default": "deny", "hide": ["echo"], "tools": {"echo": {}}})
    session = start([*guard_cmd, "--policy", str(policy), "--", PYTHON, str(EVERYTHING_SERVER)])
    if not modern:
        handshake(session)

    def call(ident: int, name: str) -> dict[str, Any]:
        frame = tool_call(ident, name, {"message": "hi"})
        if modern:
            frame["params"]["_meta"] = MODERN_META
        return frame

    session.send(call(1, "echo"))
    hidden = session.read_until_response(1)[-1]
    session.send(call(2, "ghos"))  # as long as "echo": no length differs either
    absent = session.read_until_response(2)[-1]
    assert hidden.replace(b"echo", b"ghos").replace(b'"id":1', b'"id":2') == absent
    assert b"hidden" not in hidden


def test_unknown_tool_probe_carries_none_of_the_clients_meta(
    guard_cmd: list[str], start: Start, tmp_path: Path
) -> None:
    from conftest import RECORDER_SERVER

    record = tmp_path / "received.jsonl"
    policy = write_policy(tmp_path, HIDE)
    session = start([*guard_cmd, "--policy", str(policy), "--", PYTHON, str(RECORDER_SERVER), str(record)])
    meta = {**MODERN_META, "progressToken": "client-token-7", "com.example/trace": "abc"}
    frame = tool_call(1, "echo", {"text": "secret"})
    frame["params"].update(_meta=meta, task={"ttl": 1000}, requestState="s", inputResponses={})
    session.request(frame)
    session.close_stdin()
    assert session.wait() == 0
    [probe] = [json.loads(line) for line in record.read_bytes().splitlines()]
    params = probe["params"]
    assert params["name"].startswith("mcp-guard-unknown-tool-") and params["arguments"] == {}
    assert params["_meta"] == MODERN_META  # the protocol's own keys, nothing else
    assert sorted(params) == ["_meta", "arguments", "name"]
