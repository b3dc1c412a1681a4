"""A hot reload that changes what is hidden tells the client to list the tools again.

The spec makes ``listChanged`` a capability the *server* declares (``capabilities.tools.listChanged``
in its ``initialize`` result): a client that saw it expects ``notifications/tools/list_changed`` and
re-lists on one; a client that did not may not listen. The guard speaks for the server, so it sends
the notification when the server declared the capability (handshake era), never otherwise.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from conftest import EVERYTHING_SERVER, ROOT, RawSession, Start, guard_command, handshake, write_policy

LIST_CHANGED = "notifications/tools/list_changed"
CONFIRMING_SERVER = ROOT / "tests" / "servers" / "confirming_server.py"


def rewrite(path: Path, policy: dict[str, Any]) -> None:
    aside = path.with_suffix(".tmp")
    aside.write_text(json.dumps(policy), encoding="utf-8")
    os.replace(aside, path)


def reloaded(session: RawSession, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while session.stderr_so_far().count("policy reloaded from") < count:
        assert time.monotonic() < deadline, session.stderr_so_far()
        time.sleep(0.05)


def methods_until_answer(session: RawSession, ident: int) -> list[str]:
    """The notifications the client got before the answer to a tools/list sent now."""
    session.send({"jsonrpc": "2.0", "id": ident, "method": "tools/list"})
    lines = [json.loads(line) for line in session.read_until_response(ident)]
    return [m["method"] for m in lines if "method" in m]


def listed(session: RawSession, ident: int) -> list[str]:
    answer = session.request({"jsonrpc": "2.0", "id": ident, "method": "tools/list"})
    return [t["name"] for t in answer["result"]["tools"]]


def test_reload_that_changes_what_is_hidden_notifies_the_client(tmp_path: Path, start: Start) -> None:
    policy = write_policy(tmp_path, {"version": "1", "default": "allow"})
    session = start([*guard_command(), "--policy", str(policy), "--", sys.executable, str(EVERYTHING_SERVER)])
    handshake(session)  # the server declares tools.listChanged
    assert "echo" in listed(session, 1)

    rewrite(policy, {"version": "1", "default": "allow", "tools": {"echo": {"limits": []}}})  # nothing hidden
    reloaded(session, 1)
    assert methods_until_answer(session, 2) == []

    rewrite(policy, {"version": "1", "default": "allow", "hide": ["echo"]})
    reloaded(session, 2)
    assert methods_until_answer(session, 3) == [LIST_CHANGED]
    assert "echo" not in listed(session, 4)

    rewrite(policy, {"version": "1", "default": "allow", "mode": "monitor", "hide": ["echo"]})  # shows all again
    reloaded(session, 3)
    assert methods_until_answer(session, 5) == [LIST_CHANGED]


def test_no_notification_when_the_server_did_not_declare_list_changed(tmp_path: Path, start: Start) -> None:
    policy = write_policy(tmp_path, {"version": "1", "default": "allow"})
    argv = [*guard_command(), "--policy", str(policy), "--", sys.executable, str(CONFIRMING_SERVER)]
    session = start([*argv, "--ledger", str(tmp_path / "ledger.txt")])
    handshake(session)  # tools.listChanged: false
    rewrite(policy, {"version": "1", "default": "allow", "hide": ["balance"]})
    reloaded(session, 1)
    assert methods_until_answer(session, 1) == []
    assert listed(session, 2) == ["pay"]


def test_reload_tells_a_2026_listen_stream_that_asked_for_tool_changes(tmp_path: Path) -> None:
    """2026-07-28: list changes go to the client's ``subscriptions/listen`` stream, tagged with its id."""
    import anyio
    from conftest import isolated_env
    from mcp import Client, StdioServerParameters
    from mcp.shared.subscriptions import ToolsListChanged

    policy = write_policy(tmp_path, {"version": "1", "default": "allow"})
    argv = [*guard_command(), "--policy", str(policy), "--", sys.executable, str(EVERYTHING_SERVER)]
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=isolated_env(tmp_path))

    async def run() -> tuple[list[str], object, list[str]]:
        async with Client(params, mode="auto") as client:
            assert client.protocol_version == "2026-07-28"
            before = [t.name for t in (await client.list_tools()).tools]
            async with client.listen(tools_list_changed=True) as sub:
                rewrite(policy, {"version": "1", "default": "allow", "hide": ["echo"]})
                with anyio.fail_after(15):
                    event = await sub.__anext__()
            after = [t.name for t in (await client.list_tools()).tools]
            return before, event, after

    before, event, after = anyio.run(run)
    assert "echo" in before and "echo" not in after
    assert isinstance(event, ToolsListChanged)
