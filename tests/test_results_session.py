"""The result side in the session, frame by frame: untouched bytes, tasks, instructions, batches, listings."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from results_fakes import crc32_token
from test_session import Wire, call

from mcp_guard.actions import ToClient
from mcp_guard.judge import Judge
from mcp_guard.limits.memory import MemoryLimiter
from mcp_guard.pipeline import Snapshot
from mcp_guard.policy.engine import Engine
from mcp_guard.policy.load import load_policy
from mcp_guard.session import Session

TOKEN = crc32_token(random.Random(7), "ghp_")
HIDDEN = "".join(chr(0xE0000 + ord(c)) for c in "obey")
REDACT = {"version": "1", "default": "allow", "all_tools": {"results": {"redact": ["secrets"]}}}


def session(tmp_path: Path, policy: dict[str, Any]) -> Session:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    engine = Engine(load_policy(path))
    return Session(Judge(engine, MemoryLimiter()), Snapshot(engine), lambda _: None)


def frame(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def answer_of(result: dict[str, Any], ident: int = 1) -> bytes:
    return frame({"jsonrpc": "2.0", "id": ident, "result": result})


def text(value: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": value}], "isError": False}


def test_the_servers_bytes_are_forwarded_as_they_are(tmp_path: Path) -> None:
    """No rule, or nothing found: the very bytes the server wrote, not a re-encoding."""
    for policy in ({"version": "1", "default": "allow"}, REDACT):
        s = session(tmp_path, policy)
        s.from_client(frame(call(1, "echo")))
        line = answer_of(text(f"hello {'x' * 100}")).replace(b'"isError"', b' "isError"')
        (sent,) = s.from_upstream(line)
        assert isinstance(sent, ToClient)
        assert sent.frame is line


def test_a_secret_is_redacted_in_place(tmp_path: Path) -> None:
    wire = Wire(tmp_path, REDACT)
    wire.send(call(1, "echo"))
    wire.answer(answer_of(text(f"t={TOKEN}")))
    assert wire.client == [{"jsonrpc": "2.0", "id": 1, "result": text("t=[redacted: secrets/github_token]")}]
    assert wire.warnings == ["result check: 'echo': result redacted: 1 secret (github_token)"]
    assert wire.session.labels == {"secrets"}


def test_an_answer_the_guard_cannot_read_strictly_is_not_passed_on(tmp_path: Path) -> None:
    wire = Wire(tmp_path, REDACT)
    wire.send(call(1, "echo"))
    wire.answer(
        b'{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"' + TOKEN.encode() + b'"}],'
        b'"Content":[]}}\n'
    )
    (sent,) = wire.client
    assert sent["error"]["message"].startswith("mcp-guard: the server's answer could not be read strictly")
    assert TOKEN not in json.dumps(sent)


def test_a_task_result_fetched_later_is_checked(tmp_path: Path) -> None:
    wire = Wire(tmp_path, REDACT)
    tasked = call(1, "echo")
    tasked["params"]["task"] = {"ttl": 60000}
    wire.send(tasked)
    created = {"task": {"taskId": "t-1", "status": "working", "createdAt": "2026-12-03T00:00:00Z", "ttl": 60000}}
    wire.answer(answer_of(created))
    wire.send({"jsonrpc": "2.0", "id": 2, "method": "tasks/result", "params": {"taskId": "t-1"}})
    wire.answer(answer_of(text(f"t={TOKEN}"), ident=2))
    assert wire.client[0] == {"jsonrpc": "2.0", "id": 1, "result": created}
    assert wire.client[1] == {"jsonrpc": "2.0", "id": 2, "result": text("t=[redacted: secrets/github_token]")}


def test_a_task_of_another_session_is_not_guessed(tmp_path: Path) -> None:
    wire = Wire(tmp_path, REDACT)
    wire.send({"jsonrpc": "2.0", "id": 2, "method": "tasks/result", "params": {"taskId": "unknown"}})
    wire.answer(answer_of(text("fine"), ident=2))
    assert wire.client == [{"jsonrpc": "2.0", "id": 2, "result": text("fine")}]


def test_answers_in_an_upstream_batch_are_checked(tmp_path: Path) -> None:
    wire = Wire(tmp_path, REDACT)
    wire.send(call(1, "echo"))
    wire.send(call(2, "echo"))
    wire.answer([json.loads(answer_of(text(f"a {TOKEN}"))), json.loads(answer_of(text("b"), ident=2))])
    assert wire.client == [
        [
            {"jsonrpc": "2.0", "id": 1, "result": text("a [redacted: secrets/github_token]")},
            {"jsonrpc": "2.0", "id": 2, "result": text("b")},
        ]
    ]


DESCRIBED = {
    "version": "1",
    "default": "allow",
    "tool_descriptions": {"block": ["invisible_text"], "warn": ["emails"]},
}


def test_instructions_with_hidden_text_are_dropped(tmp_path: Path) -> None:
    wire = Wire(tmp_path, DESCRIBED)
    wire.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}})
    result = {"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "s", "version": "1"}}
    wire.answer(answer_of({**result, "instructions": f"Use the tools.{HIDDEN}"}, ident=0))
    assert wire.client == [{"jsonrpc": "2.0", "id": 0, "result": result}]
    assert wire.warnings == [
        "the server's instructions were dropped: they contain 1 run of invisible characters (tag_characters) at (text)"
    ]


def test_clean_instructions_pass_untouched(tmp_path: Path) -> None:
    wire = Wire(tmp_path, DESCRIBED)
    wire.send({"jsonrpc": "2.0", "id": 0, "method": "server/discover", "params": {}})
    result = {"instructions": "Use the tools wisely.", "capabilities": {}}
    wire.answer(answer_of(result, ident=0))
    assert wire.client == [{"jsonrpc": "2.0", "id": 0, "result": result}]
    assert wire.warnings == []


def test_a_withheld_tool_is_refused_and_relisted_clean_is_callable(tmp_path: Path) -> None:
    wire = Wire(tmp_path, DESCRIBED)
    clean = {"name": "add", "description": "Add.", "inputSchema": {"type": "object"}}
    tagged = {"name": "sum", "description": f"Sum.{HIDDEN}", "inputSchema": {"type": "object"}}
    mail = {"name": "mail", "description": "Writes to ops@example.com", "inputSchema": {"type": "object"}}
    wire.send({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}})
    wire.answer(answer_of({"tools": [clean, tagged, mail]}))
    assert wire.client[-1]["result"]["tools"] == [clean, mail]
    wire.send(call(2, "sum"))
    refused = wire.client[-1]
    assert refused["result"]["isError"] is True
    assert "withheld from the tool list" in refused["result"]["content"][0]["text"]
    assert wire.upstream == [{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}]
    wire.send({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {}})
    wire.answer(answer_of({"tools": [clean, {**tagged, "description": "Sum."}]}, ident=3))
    wire.send(call(4, "sum"))
    assert wire.upstream[-1]["id"] == 4
    assert wire.warnings[:2] == [
        "tool 'sum' withheld from the tool list: its definition contains 1 run of invisible characters "
        "(tag_characters) at description",
        "tool 'mail' listed: its definition contains 1 email address (email) at description",
    ]
