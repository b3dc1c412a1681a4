"""``mcp-guard replay``: a real recorded session (and its audit log) replayed under changed policies."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO_SERVER, PYTHON, Cli, write_policy
from mcp import Client, StdioServerParameters

pytestmark = [pytest.mark.timeout(90)]

OLD: dict[str, Any] = {
    "version": "1",
    "default": "deny",
    "tools": {
        "track_behavior_event": {
            "limits": [{"counter": "events", "window": "minute", "max": 3, "scope": "grant"}],
        },
        "get_order_status": {},
    },
}


def new_policy() -> dict[str, Any]:
    """Tighter events (2 a minute), charges allowed, order status behind an approval."""
    policy = copy.deepcopy(OLD)
    policy["tools"]["track_behavior_event"]["limits"][0]["max"] = 2
    policy["tools"]["create_charge"] = {}
    policy["tools"]["get_order_status"] = {"action": "approve", "reason": "Order lookups need a person now."}
    return policy


async def record_session(guard_cmd: list[str], env: dict[str, str], tmp_path: Path) -> tuple[Path, Path, Path]:
    """4 events (the 4th over OLD's limit), an order lookup, a charge (refused by default): record and audit."""
    policy = write_policy(tmp_path, OLD, "old.json")
    record, audit = tmp_path / "session.jsonl", tmp_path / "audit.jsonl"
    argv = [
        *guard_cmd,
        *("--policy", str(policy), "--record", str(record), "--audit-log", str(audit)),
        *("--", PYTHON, str(DEMO_SERVER)),
    ]
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(env))
    async with Client(params, mode="legacy") as client:
        for i in range(4):
            result = await client.call_tool("track_behavior_event", {"user_id": "u1", "event": f"e{i}"})
            assert result.is_error == (i == 3)
        assert not (await client.call_tool("get_order_status", {"order_id": "o1"})).is_error
        charge = {"amount": 5, "currency": "EUR", "customer_id": "c1"}
        assert (await client.call_tool("create_charge", charge)).is_error
    return policy, record, audit


@pytest.mark.anyio
async def test_replay_of_a_recorded_session_shows_what_a_new_policy_changes(
    guard_cmd: list[str], env: dict[str, str], tmp_path: Path, cli: Cli
) -> None:
    old, record, _ = await record_session(guard_cmd, env, tmp_path)
    new = write_policy(tmp_path, new_policy(), "new.json")

    same = cli("replay", str(record), "--policy", str(old))
    assert same.returncode == 0, same.stderr
    assert same.stdout.splitlines()[-1] == "6 call(s) replayed: 0 changed (0 newly refused, 0 newly allowed, " + (
        "0 newly needing approval), 6 unchanged"
    )

    changed = cli("replay", str(record), "--policy", str(new))
    assert changed.returncode == 1, changed.stderr
    lines = changed.stdout.splitlines()
    assert lines[0].startswith(f"replay of {record} (recording: 1 session(s), 6 call(s)) under {new}")
    assert lines[0].endswith("against the decisions recorded")
    body = "\n".join(lines[1:])
    assert "newly refused (1):\n  #3 track_behavior_event at " in body
    assert (
        ": allow (tools.track_behavior_event) -> deny (tools.track_behavior_event.limits[0])\n"
        "      Rate limit reached: at most 2 calls per minute (counter 'events')." in body
    )
    assert "newly allowed (1):\n  #6 create_charge at " in body
    assert ": deny (default) -> allow (tools.create_charge)" in body
    assert "newly needing approval (1):\n  #5 get_order_status at " in body
    assert ": allow (tools.get_order_status) -> approve (tools.get_order_status.action)\n" in body
    assert "      Order lookups need a person now." in body
    # The 4th event was refused then (3 a minute) and is refused now (2 a minute): no change.
    assert "#4 " not in body
    assert lines[-1] == (
        "6 call(s) replayed: 3 changed (1 newly refused, 1 newly allowed, 1 newly needing approval), 3 unchanged"
    )

    as_json = cli("replay", str(record), "--policy", str(new), "--json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["summary"] == {
        "newly refused": 1,
        "newly allowed": 1,
        "newly needing approval": 1,
        "changed": 3,
        "unchanged": 3,
    }
    assert [
        (c["number"], c["tool"], c["change"], c["before"]["decision"], c["after"]["decision"])
        for c in report["changes"]
    ] == [
        (3, "track_behavior_event", "newly refused", "allow", "deny"),
        (5, "get_order_status", "newly needing approval", "allow", "approve"),
        (6, "create_charge", "newly allowed", "deny", "allow"),
    ]
    assert report["against"] == "recorded"
    assert report["not_replayed"] == []

    # --against the policy it was recorded under: the same changes, from a second replay.
    against = cli("replay", str(record), "--policy", str(new), "--against", str(old), "--json")
    assert against.returncode == 1
    assert json.loads(against.stdout)["changes"] == report["changes"]
    assert cli("replay", str(record), "--policy", str(old), "--against", str(old)).returncode == 0

    # Schema checks without a lock file read the tools the server listed in the recording.
    validating = write_policy(tmp_path, {**OLD, "validate_arguments": True}, "validating.json")
    checked = cli("replay", str(record), "--policy", str(validating), "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (json.loads(checked.stdout)["replayed"], json.loads(checked.stdout)["not_replayed"]) == (6, [])


@pytest.mark.anyio
async def test_replay_of_the_audit_log_says_what_it_could_not_replay(
    guard_cmd: list[str], env: dict[str, str], tmp_path: Path, cli: Cli
) -> None:
    _, _, audit = await record_session(guard_cmd, env, tmp_path)
    policy = new_policy()
    # A condition on the arguments: the audit log keeps none of their values.
    policy["tools"]["create_charge"] = {"deny_if": [{"path": "args.amount", "op": "gt", "value": 100}]}
    new = write_policy(tmp_path, policy, "new.json")

    done = cli("replay", str(audit), "--policy", str(new))
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"replay of {audit} (audit log: 1 session(s), 6 call(s))")
    body = "\n".join(lines)
    assert "newly refused (1):\n  #3 track_behavior_event at " in body
    assert "newly needing approval (1):\n  #5 get_order_status at " in body
    assert "could not replay (1):\n  #6 create_charge at " in body
    assert ": tools.create_charge has conditions on the arguments, and the audit log keeps no argument values" in body
    assert lines[-1] == (
        "5 call(s) replayed: 2 changed (1 newly refused, 0 newly allowed, 1 newly needing approval), 3 unchanged; "
        "1 could not be replayed"
    )


def test_replay_refuses_input_it_cannot_use(tmp_path: Path, cli: Cli) -> None:
    policy = write_policy(tmp_path, OLD)
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n")
    done = cli("replay", str(junk), "--policy", str(policy))
    assert done.returncode == 2
    assert done.stderr == f"mcp-guard replay: {junk}:1: not a JSON line; expected a record file or an audit log\n"
    other = tmp_path / "other.jsonl"
    other.write_text('{"a": 1}\n')
    done = cli("replay", str(other), "--policy", str(policy))
    assert done.returncode == 2
    assert "neither a record file (mcp-guard --record) nor an audit log" in done.stderr
    assert cli("replay", str(tmp_path / "missing.jsonl"), "--policy", str(policy)).returncode == 2
    bad_policy = write_policy(tmp_path, {"version": "1", "tools": {"x": {"nope": 1}}}, "bad.json")
    session = tmp_path / "s.jsonl"
    session.write_text('{"type": "session", "v": 1}\n')
    assert cli("replay", str(session), "--policy", str(bad_policy)).returncode == 2
    assert cli("replay", str(session), "--policy", str(policy)).returncode == 0


@pytest.mark.anyio
async def test_a_call_a_person_was_asked_about_is_recorded_as_approve(
    guard_cmd: list[str], env: dict[str, str], tmp_path: Path, cli: Cli
) -> None:
    asking = write_policy(tmp_path, {"version": "1", "tools": {"get_order_status": {"action": "approve"}}}, "ask.json")
    record = tmp_path / "asked.jsonl"
    argv = [*guard_cmd, "--policy", str(asking), "--approval", "async", "--record", str(record)]
    argv += ["--", PYTHON, str(DEMO_SERVER)]
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(env))
    async with Client(params, mode="legacy") as client:
        assert (await client.call_tool("get_order_status", {"order_id": "o1"})).is_error  # waits for a person
    verdicts = [json.loads(line) for line in record.read_text().splitlines() if '"type":"verdict"' in line]
    assert [(v["verdict"], v["kind"]) for v in verdicts] == [("refuse", "approval_required")]

    assert cli("replay", str(record), "--policy", str(asking)).returncode == 0
    allowing = write_policy(tmp_path, {"version": "1", "tools": {"get_order_status": {}}}, "allow.json")
    done = cli("replay", str(record), "--policy", str(allowing), "--json")
    assert done.returncode == 1
    (change,) = json.loads(done.stdout)["changes"]
    assert (change["change"], change["before"]["decision"], change["before"]["rule"]) == (
        "newly allowed",
        "approve",
        "tools.get_order_status.action",
    )
