"""Task-augmented calls (2025-11-25 ``params.task``) the guard refuses, with the TypeScript SDK's own client.

A client that asks for a task expects a ``CreateTaskResult`` and rejects a plain ``CallToolResult``
in its place (the TypeScript SDK: "Invalid task creation result"), so the refusal would reach the
model as a schema error. A JSON-RPC error is an answer every client accepts for any request, task or
not, and it carries the guard's reason (and the violation facts in ``data``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, guard_command, isolated_env, write_policy
from test_transcripts import node_everything

TASK_CLIENT = ROOT / "tests" / "node" / "task_client.mjs"


def stream(tmp_path: Path, policy: dict[str, Any], tool: str, arguments: dict[str, Any]) -> list[dict[str, Any]]:
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH")
    argv = [*guard_command(), "--no-audit", "--policy", str(write_policy(tmp_path, policy)), "--", *node_everything()]
    done = subprocess.run(
        ["node", str(TASK_CLIENT), json.dumps(argv), tool, json.dumps(arguments)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=isolated_env(tmp_path),
        cwd=TASK_CLIENT.parent,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.parametrize(
    ("policy", "kind"),
    [
        ({"version": "1", "default": "allow", "tools": {"echo": {"action": "deny", "reason": "No echoes."}}}, "deny"),
        ({"version": "1", "default": "deny"}, "default_deny"),
        ({"version": "1", "default": "deny", "hide": ["echo"]}, "default_deny"),
    ],
)
def test_refused_task_call_is_an_error_the_client_reads(tmp_path: Path, policy: dict[str, Any], kind: str) -> None:
    [message] = stream(tmp_path, policy, "echo", {"message": "hi"})
    assert message["type"] == "error"
    error = message["error"]
    assert error["message"].startswith("MCP error -32000: mcp-guard refused this call to 'echo'"), error
    assert error["data"]["mcp-guard/violation"]["kind"] == kind
