"""``mcp-guard pins create|diff|accept`` (and ``pin``) against the everything server.

The first ``pin`` of a run and the Ctrl-C tests run the installed script as a subprocess; the other
commands run in this process (the ``cli`` fixture), each distinct server command listed once
(``listed_once``): every command still lists a real server, without paying a Python start-up and
``import mcp`` in both the guard and the server each time.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import EVERYTHING_SERVER, PYTHON, Cli, guard_command
from test_init import interrupt_while_listing

from mcp_guard.integrity.digest import tool_digest
from mcp_guard.integrity.lockfile import LockFile

pytestmark = pytest.mark.timeout(120)


def server(extra_tools: int) -> list[str]:
    # 23 + 14 tools in pages of 4: ten pages, so pagination is followed to the end.
    return [PYTHON, str(EVERYTHING_SERVER), "--tools", str(extra_tools), "--page-size", "4"]


def pins_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MCP_GUARD_POLICY"}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg-config")
    return env


Guard = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def guard(tmp_path: Path, cli: Cli, listed_once: None) -> Guard:
    """``guard(*argv)``: ``mcp-guard ARGV`` in this process, in ``tmp_path``, with the environment a subprocess had."""
    return lambda *argv: cli(*argv, env=pins_env(tmp_path))


def guard_process(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``mcp-guard ARGV`` run by the installed script, as a client would."""
    return subprocess.run(
        [*guard_command(), *argv],
        cwd=tmp_path,
        env=pins_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


def test_pin_diff_accept(tmp_path: Path, guard: Guard) -> None:
    pinned = guard_process(tmp_path, "pin", "--", *server(23))
    assert pinned.returncode == 0, pinned.stderr
    path = tmp_path / "mcp-guard.lock.json"  # the default, in the working directory
    lock = LockFile.load(path)
    names = set(lock.tools)
    # Every tool the SDK's own client sees, across all pages.
    import anyio
    from mcp import Client, StdioServerParameters

    async def sdk_listing() -> list[Any]:
        command = server(23)
        tools: list[Any] = []
        async with Client(StdioServerParameters(command=command[0], args=command[1:]), mode="auto") as client:
            cursor = None
            while True:
                page = await client.list_tools(cursor=cursor)
                tools.extend(page.tools)
                cursor = page.next_cursor
                if cursor is None:
                    return tools

    listed = anyio.run(sdk_listing)
    assert names == {tool.name for tool in listed}
    assert len(names) == len(listed) > 23 + 4
    assert {f"tool_{i}" for i in range(23)} <= names
    assert {"echo", "add", "big", "slow"} <= names
    assert "tool_23" not in names
    assert lock.server["command"] == server(23)
    assert lock.server["name"] == "everything"
    assert lock.server["version"] == "1.0.0"
    assert lock.server["protocolVersion"]
    echo = lock.tools["echo"]
    assert echo.definition["name"] == "echo"
    assert "inputSchema" in echo.definition
    assert echo.sha256 == tool_digest(echo.definition)
    assert f"pinned {len(names)} tools of everything 1.0.0" in pinned.stderr

    same = guard("pins", "diff", "--", *server(23))
    assert same.returncode == 0, same.stderr
    assert same.stdout == ""
    assert "no differences" in same.stderr

    more = guard("pins", "diff", str(path), "--", *server(24))
    assert more.returncode == 1, more.stderr
    assert "# new: tool_23: not pinned" in more.stdout
    assert "--- tool_23 (not pinned)\n+++ tool_23 (listed)\n" in more.stdout
    assert '+  "name": "tool_23",' in more.stdout
    assert "tool_22" not in more.stdout

    fewer = guard("pins", "diff", "--", *server(20))  # the server accepted below: one listing fewer
    assert fewer.returncode == 1
    assert "# removed: tool_22: pinned, but the server no longer lists it" in fewer.stdout

    unknown = guard("pins", "accept", "nosuch", "--", *server(24))
    assert unknown.returncode == 2
    assert f"nosuch: neither pinned in {path} nor listed by the server to a client declaring" in unknown.stderr
    assert LockFile.load(path).tools.keys() == names  # nothing written

    accepted = guard("pins", "accept", "tool_23", "--lock", str(path), "--", *server(24))
    assert accepted.returncode == 0, accepted.stderr
    assert "accepted new: tool_23" in accepted.stdout
    assert set(LockFile.load(path).tools) == names | {"tool_23"}
    assert guard("pins", "diff", "--", *server(24)).returncode == 0

    # Accepting everything also drops tools the server no longer lists.
    dropped = guard("pins", "accept", "--", *server(20))
    assert dropped.returncode == 0, dropped.stderr
    assert "accepted removed: tool_20" in dropped.stdout
    assert set(LockFile.load(path).tools) == names - {"tool_20", "tool_21", "tool_22"}
    nothing = guard("pins", "accept", "--", *server(20))
    assert nothing.returncode == 0
    assert "nothing to accept" in nothing.stderr


def test_pin_beside_policy_reports_changes_since_previous_lock(tmp_path: Path, guard: Guard) -> None:
    policy = tmp_path / "rules.json"
    policy.write_text('{"version": "1", "default": "allow"}\n', encoding="utf-8")
    first = guard("pin", "--policy", str(policy), "--", *server(2))
    assert first.returncode == 0, first.stderr
    path = tmp_path / "rules.lock.json"
    assert set(LockFile.load(path).tools) >= {"tool_0", "tool_1"}
    # A hand-made change to one pin: the next pin replaces the file and says what changed.
    document = json.loads(path.read_text(encoding="utf-8"))
    definition = document["tools"]["tool_0"]["definition"]
    definition["description"] = "something else"
    document["tools"]["tool_0"]["sha256"] = tool_digest(definition)
    path.write_text(json.dumps(document), encoding="utf-8")
    again = guard("pin", "--policy", str(policy), "--", *server(3))
    assert again.returncode == 0, again.stderr
    assert "2 changes since the previous lock file" in again.stderr
    assert "changed: tool_0: definition changed since it was pinned: description changed" in again.stderr
    assert "new: tool_2" in again.stderr
    assert "tool_2" in LockFile.load(path).tools
    # pins diff finds the lock beside the policy too
    assert guard("pins", "diff", "--policy", str(policy), "--", *server(3)).returncode == 0


def test_pin_and_pins_usage_errors(tmp_path: Path, guard: Guard) -> None:
    no_command = guard("pin")
    assert no_command.returncode == 2
    assert "no server command given" in no_command.stderr
    no_dashes = guard("pins", "diff", "x.lock.json")
    assert no_dashes.returncode == 2
    assert "after `--`" in no_dashes.stderr
    no_lock = guard("pins", "diff", "--", *server(0))
    assert no_lock.returncode == 2
    assert f"no lock file at {tmp_path / 'mcp-guard.lock.json'}" in no_lock.stderr
    (tmp_path / "bad.lock.json").write_text('{"version": 1,\n  "tools": [}\n', encoding="utf-8")
    bad = guard("pins", "diff", "bad.lock.json", "--", *server(0))
    assert bad.returncode == 2
    assert "bad.lock.json:2:13: invalid JSON" in bad.stderr
    missing = guard("pin", "--", "no-such-command-mcp-guard-test")
    assert missing.returncode == 1
    assert "command not found" in missing.stderr
    assert not (tmp_path / "mcp-guard.lock.json").exists()


def test_pins_create_and_diff_with_lock(tmp_path: Path, guard: Guard) -> None:
    lock = tmp_path / "srv.lock.json"
    created = guard("pins", "create", "--lock", str(lock), "--", *server(2))
    assert created.returncode == 0, created.stderr
    assert {"tool_0", "tool_1", "echo"} <= set(LockFile.load(lock).tools)
    assert not (tmp_path / "mcp-guard.lock.json").exists()
    same = guard("pins", "diff", "--lock", str(lock), "--", *server(2))
    assert same.returncode == 0, same.stderr
    assert "no differences" in same.stderr
    more = guard("pins", "diff", "--lock", str(lock), "--", *server(3))
    assert more.returncode == 1
    assert f"mcp-guard pins accept --lock {lock} -- " in more.stderr
    two = guard("pins", "diff", "--lock", str(lock), "other.lock.json", "--", *server(2))
    assert two.returncode == 2
    assert "one lock file at most" in two.stderr
    # The older spellings: pin -o FILE, and pins diff FILE.
    older = guard("pin", "-o", "older.lock.json", "--", *server(2))
    assert older.returncode == 0, older.stderr
    assert LockFile.load(tmp_path / "older.lock.json").tools == LockFile.load(lock).tools


@pytest.mark.parametrize("command", [["pins", "create"], ["pin"]])
def test_ctrl_c_while_pinning_ends_quietly_and_writes_nothing(tmp_path: Path, command: list[str]) -> None:
    result = interrupt_while_listing(tmp_path, *command)
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == "mcp-guard: interrupted"
    assert list((tmp_path / "work").iterdir()) == []
