"""The tests and the demo never write into the user's real mcp-guard folders (issue 18, trap 11).

tests/conftest.py gives the whole session a HOME and XDG folders of its own before anything runs, and
at the end fails the run if the user's own folders or client config files changed. These tests check
the pieces: the session's environment, a guard started the way the MCP SDK's client starts servers
(keeping only HOME, PATH and a few others), and the demo.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import anyio
import pytest
from conftest import EVERYTHING_SERVER, ROOT, changes, guard_command, snapshot, write_policy


def session_root() -> Path:
    return Path(os.environ["MCP_GUARD_TEST_SESSION_ROOT"])


def test_the_session_runs_in_a_home_of_its_own() -> None:
    root = session_root()
    assert Path(os.environ["HOME"]) == root / "home"
    assert Path.home() == root / "home"
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        assert Path(os.environ[var]).parent == root, var
    from mcp_guard import paths

    for folder in (paths.config_dir(), paths.state_dir(), paths.audit_log_path(), paths.secret_path()):
        assert root in folder.parents, folder
    assert "MCP_GUARD_POLICY" not in os.environ


def test_snapshot_sees_files_written_under_a_folder(tmp_path: Path) -> None:
    watched = [tmp_path / "state", tmp_path / "client.json"]
    before = snapshot(watched)
    (tmp_path / "state" / "log").mkdir(parents=True)
    (tmp_path / "state" / "log" / "audit.jsonl").write_text("{}\n")
    after = snapshot(watched)
    assert changes(before, after) == [
        f"created: {tmp_path / 'state'}",
        f"created: {tmp_path / 'state' / 'log'}",
        f"created: {tmp_path / 'state' / 'log' / 'audit.jsonl'}",
    ]


def _audit_lines_under(folder: Path, server: str) -> list[dict[str, object]]:
    found = []
    for log in folder.rglob("audit.jsonl"):
        found += [json.loads(line) for line in log.read_text().splitlines() if f'"server":"{server}"' in line]
    return found


@pytest.mark.anyio
async def test_a_guard_started_by_the_sdk_client_writes_its_audit_log_inside_the_session(tmp_path: Path) -> None:
    from mcp import Client, StdioServerParameters

    server = f"isolation-{uuid.uuid4().hex[:8]}"
    policy = write_policy(tmp_path, {"version": "1", "default": "allow"})
    guard = guard_command()
    # No env: the SDK passes only its safe variables (HOME, PATH, ...), so no XDG folder reaches the guard.
    params = StdioServerParameters(
        command=guard[0],
        args=[*guard[1:], "--policy", str(policy), "--name", server, "--", sys.executable, str(EVERYTHING_SERVER)],
    )
    async with Client(params, mode="legacy", read_timeout_seconds=30) as client:
        result = await client.call_tool("echo", {"text": "hi"})
        assert not result.is_error
    with anyio.fail_after(10):
        while not _audit_lines_under(session_root() / "home", server):
            await anyio.sleep(0.05)
    [entry] = _audit_lines_under(session_root() / "home", server)
    assert (entry["tool"], entry["decision"]) == ("echo", "allowed")


def test_the_demo_writes_nothing_into_the_home_it_runs_in(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        env.pop(var, None)
    before = snapshot([home])
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert changes(before, snapshot([home])) == []
