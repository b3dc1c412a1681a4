"""The policy language through the installed guard: conditions, spend caps, monitor mode, hot reload."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from conftest import PYTHON, RECORDER_SERVER, Start, tool_call, without_start_line, write_policy

VIOLATION = "mcp-guard/violation"


def recorded_calls(record: Path) -> list[tuple[str, dict[str, Any]]]:
    if not record.exists():
        return []
    calls = []
    for line in record.read_bytes().splitlines():
        message = json.loads(line)
        if message.get("method") == "tools/call":
            calls.append((message["params"]["name"], message["params"].get("arguments", {})))
    return calls


def violation(answer: dict[str, Any]) -> dict[str, Any]:
    result = answer["result"]
    assert result["isError"] is True
    meta: dict[str, Any] = result["_meta"][VIOLATION]
    return meta


PAYMENTS: dict[str, Any] = {
    "version": "1",
    "default": "deny",
    "tools": {
        "create_charge": {
            "deny_if": [{"path": "args.amount", "op": "gt", "value": 10000}],
            "require": [{"path": "args.currency", "op": "in", "value": ["EUR", "USD"]}],
            "approve_if": [{"path": "args.amount", "op": "gt", "value": 1000}],
            "limits": [{"counter": "spent", "window": "1h", "max": 1500, "increment_from": "args.amount"}],
        }
    },
}


def test_conditions_and_spend_cap_through_the_guard(guard_cmd: list[str], start: Start, tmp_path: Path) -> None:
    record = tmp_path / "received.jsonl"
    policy = write_policy(tmp_path, PAYMENTS)
    session = start([*guard_cmd, "--policy", str(policy), "--", PYTHON, str(RECORDER_SERVER), str(record)])
    calls = [
        (1, {"amount": 900, "currency": "EUR"}, None),
        (2, {"amount": 20000, "currency": "EUR"}, ("condition", "tools.create_charge.deny_if[0]")),
        (3, {"amount": 10, "currency": "JPY"}, ("condition", "tools.create_charge.require[0]")),
        (4, {"amount": 5000, "currency": "USD"}, ("approval_required", "tools.create_charge.approve_if[0]")),
        (5, {"amount": 700, "currency": "USD"}, ("limit", "tools.create_charge.limits[0]")),  # 900 + 700 > 1500
        (6, {"amount": 600, "currency": "USD"}, None),  # 900 + 600 = 1500 fits exactly
        (7, {"currency": "USD"}, ("condition", "tools.create_charge.deny_if[0]")),  # amount missing: fail closed
        (8, {"amount": "12", "currency": "USD"}, ("condition", "tools.create_charge.deny_if[0]")),
    ]
    for ident, args, refused in calls:
        answer = session.request(tool_call(ident, "create_charge", args))
        if refused is None:
            assert answer["result"] == {"content": [], "isError": False}
        else:
            meta = violation(answer)
            assert (meta["kind"], meta["rule"]) == refused, meta
    assert violation(session.request(tool_call(9, "send_mail", {})))["kind"] == "default_deny"
    session.close_stdin()
    assert session.wait() == 0
    assert recorded_calls(record) == [
        ("create_charge", {"amount": 900, "currency": "EUR"}),
        ("create_charge", {"amount": 600, "currency": "USD"}),
    ]


def test_monitor_mode_refuses_nothing_but_reports(guard_cmd: list[str], start: Start, tmp_path: Path) -> None:
    record = tmp_path / "received.jsonl"
    policy = write_policy(tmp_path, {"version": "1", "default": "deny", "tools": {}})
    session = start([*guard_cmd, "--monitor", "--policy", str(policy), "--", PYTHON, str(RECORDER_SERVER), str(record)])
    assert session.request(tool_call(1, "anything", {"a": 1}))["result"] == {"content": [], "isError": False}
    session.close_stdin()
    code, stderr = session.finish()
    assert code == 0
    assert without_start_line(stderr).splitlines() == [
        "mcp-guard: monitor mode: every call is judged and reported on stderr, but nothing is refused",
        "mcp-guard: monitor: would refuse 'anything' (default): Tool 'anything' is not allowed: the policy does not "
        "list it and its default is deny.",
    ]
    assert recorded_calls(record) == [("anything", {"a": 1})]


def _rewrite(path: Path, policy: dict[str, Any] | str) -> None:
    """Replace the file the way editors do (write aside, rename over), with a fresh mtime."""
    aside = path.with_suffix(".tmp")
    aside.write_text(policy if isinstance(policy, str) else json.dumps(policy), encoding="utf-8")
    os.replace(aside, path)


def _wait_for_stderr(session: Any, words: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text: str = session.stderr_so_far()
        if words in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"stderr never said {words!r}: {session.stderr_so_far()!r}")


def test_hot_reload_applies_valid_policies_and_keeps_counters(
    guard_cmd: list[str], start: Start, tmp_path: Path
) -> None:
    record = tmp_path / "received.jsonl"
    limit = {"counter": "pings", "window": "hour", "max": 3}
    first = {"version": "1", "default": "deny", "tools": {"ping_tool": {"limits": [limit]}}}
    policy = write_policy(tmp_path, first)
    session = start([*guard_cmd, "--policy", str(policy), "--", PYTHON, str(RECORDER_SERVER), str(record)])
    for ident in (1, 2):
        assert "isError" in session.request(tool_call(ident, "ping_tool"))["result"]
    assert violation(session.request(tool_call(3, "other_tool")))["kind"] == "default_deny"

    # A new version allows other_tool; the ping_tool limit is unchanged, so its two calls still count.
    _rewrite(policy, {**first, "tools": {**first["tools"], "other_tool": {}}})
    _wait_for_stderr(session, f"policy reloaded from {policy}")
    assert session.request(tool_call(4, "other_tool"))["result"] == {"content": [], "isError": False}
    assert session.request(tool_call(5, "ping_tool"))["result"] == {"content": [], "isError": False}
    assert violation(session.request(tool_call(6, "ping_tool")))["used"] == 3

    # An invalid version is refused with located errors and the policy in force stays.
    _rewrite(policy, '{"version": "1", "default": "allow", "toolz": {}}')
    stderr = _wait_for_stderr(session, "the previous policy stays in force")
    assert f"{policy}:1:38: toolz: unknown field 'toolz'; did you mean 'tools'?" in stderr
    assert violation(session.request(tool_call(7, "third_tool")))["kind"] == "default_deny"
    session.close_stdin()
    assert session.wait() == 0
    assert [name for name, _ in recorded_calls(record)] == ["ping_tool", "ping_tool", "other_tool", "ping_tool"]


def test_policy_sha256_pins_the_file_at_start_and_at_reload(guard_cmd: list[str], start: Start, tmp_path: Path) -> None:
    import hashlib
    import subprocess

    policy = write_policy(tmp_path, {"version": "1", "default": "allow"})
    digest = hashlib.sha256(policy.read_bytes()).hexdigest()
    printed = subprocess.run(
        [*guard_cmd, "check", "--sha256", str(policy)], capture_output=True, text=True, check=False
    )
    assert printed.stdout.strip() == digest

    wrong = start(
        [
            *guard_cmd,
            "--policy-sha256",
            "0" * 64,
            "--policy",
            str(policy),
            "--",
            PYTHON,
            str(RECORDER_SERVER),
            str(tmp_path / "never.jsonl"),
        ]
    )
    code, stderr = wrong.finish()
    assert code == 2 and f"has SHA-256 {digest}, not the {'0' * 64}" in stderr
    assert not (tmp_path / "never.jsonl").exists()

    record = tmp_path / "received.jsonl"
    session = start(
        [
            *guard_cmd,
            "--policy-sha256",
            digest,
            "--policy",
            str(policy),
            "--",
            PYTHON,
            str(RECORDER_SERVER),
            str(record),
        ]
    )
    assert session.request(tool_call(1, "anything"))["result"] == {"content": [], "isError": False}
    _rewrite(policy, {"version": "1", "default": "deny"})  # any edit, tightening included, is refused
    _wait_for_stderr(session, "it was changed; the previous policy stays in force")
    assert session.request(tool_call(2, "anything"))["result"] == {"content": [], "isError": False}
    session.close_stdin()
    assert session.wait() == 0


def test_hot_reload_turns_on_argument_validation(guard_cmd: list[str], start: Start, tmp_path: Path) -> None:
    from conftest import EVERYTHING_SERVER, handshake

    policy = write_policy(tmp_path, {"version": "1", "default": "allow"})
    session = start([*guard_cmd, "--policy", str(policy), "--", PYTHON, str(EVERYTHING_SERVER)])
    handshake(session)
    relayed = session.request(tool_call(1, "add", {"a": "one", "b": 2}))
    assert VIOLATION not in relayed["result"].get("_meta", {})  # the server itself rejected it
    _rewrite(policy, {"version": "1", "default": "allow", "validate_arguments": True})
    _wait_for_stderr(session, f"policy reloaded from {policy}")
    refused = violation(session.request(tool_call(2, "add", {"a": "one", "b": 2})))
    assert refused["kind"] == "invalid_arguments" and "arguments.a" in refused["reason"]
    _rewrite(policy, {"version": "1", "default": "allow", "pins": {"file": "missing.lock.json"}})
    _wait_for_stderr(session, "the lock file cannot be used")
    assert "the previous policy stays in force" in session.stderr_so_far()
    assert violation(session.request(tool_call(3, "add", {"a": "one", "b": 2})))["kind"] == "invalid_arguments"
    session.close_stdin()
    assert session.wait() == 0


def test_hot_reload_that_adds_flow_rules_enforces_them(guard_cmd: list[str], start: Start, tmp_path: Path) -> None:
    # A guard started without flow rules builds no flow checks; the reload that adds some must build them.
    record = tmp_path / "received.jsonl"
    first = {"version": "1", "default": "allow"}
    policy = write_policy(tmp_path, first)
    session = start([*guard_cmd, "--policy", str(policy), "--", PYTHON, str(RECORDER_SERVER), str(record)])
    assert session.request(tool_call(1, "read_email"))["result"] == {"content": [], "isError": False}
    with_flows = {
        **first,
        "tools": {"read_email": {"labels": ["private"]}, "send_email": {"labels": ["external"]}},
        "flows": [{"from": ["private"], "to": ["external"], "scope": "grant"}],
    }
    _rewrite(policy, with_flows)
    _wait_for_stderr(session, f"policy reloaded from {policy}")
    assert session.request(tool_call(2, "send_email"))["result"] == {"content": [], "isError": False}
    assert session.request(tool_call(3, "read_email"))["result"] == {"content": [], "isError": False}
    refused = violation(session.request(tool_call(4, "send_email")))
    assert (refused["kind"], refused["rule"]) == ("flow", "flows[0]")
    assert [name for name, _ in recorded_calls(record)] == ["read_email", "send_email", "read_email"]
    session.close_stdin()
