"""Approvals through the installed guard, with the real SDK client in both protocol eras.

In-band questions (handshake-era elicitation requests, 2026-07-28 input rounds), the
asynchronous path (refuse with an id, approve from a second process, retry), and
what the person and the model are shown.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import DEMO_SERVER, guard_command, isolated_env, write_policy
from mcp import Client, StdioServerParameters, types

POLICY = {
    "version": "1",
    "default": "deny",
    "tools": {
        "create_charge": {
            "approve_if": [{"path": "args.amount", "op": "gt", "value": 1000}],
            "limits": [{"counter": "charges", "window": "hour", "max": 100}],
        },
        "list_customers": {},
    },
}
BIG = {"amount": 5000, "currency": "EUR", "customer_id": "cus_001"}
SMALL = {"amount": 50, "currency": "EUR", "customer_id": "cus_001"}
VIOLATION = "mcp-guard/violation"


def params(tmp_path: Path, *extra: str) -> StdioServerParameters:
    policy = write_policy(tmp_path, POLICY)
    guard = guard_command()
    args = [
        *guard[1:],
        "--no-audit",
        "--approval-store",
        str(tmp_path / "approvals.db"),
        *extra,
        "--policy",
        str(policy),
        "--",
        sys.executable,
        str(DEMO_SERVER),
    ]
    return StdioServerParameters(command=guard[0], args=args, env=isolated_env(tmp_path))


def answering(action: str, asked: list[str]) -> Any:
    async def callback(context: Any, request: Any) -> types.ElicitResult:
        asked.append(request.message)
        if action == "slow":
            await anyio.sleep(30)
        if action == "accept":
            return types.ElicitResult(action="accept", content={"approve": True})
        if action == "accept_unticked":
            return types.ElicitResult(action="accept", content={"approve": False})
        return types.ElicitResult(action="decline" if action == "decline" else "cancel")

    return callback


async def call(
    p: StdioServerParameters, mode: str, callback: Any, *calls: dict[str, Any]
) -> list[types.CallToolResult]:
    results = []
    async with Client(p, mode=mode, elicitation_callback=callback) as client:
        for arguments in calls:
            results.append(await client.call_tool("create_charge", arguments))
    return results


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_person_approves_in_band(tmp_path: Path, mode: str) -> None:
    asked: list[str] = []
    [big, small] = anyio.run(call, params(tmp_path), mode, answering("accept", asked), BIG, SMALL)
    assert big.is_error is False and "ch_" in text(big)  # the charge reached the server
    assert small.is_error is False
    assert len(asked) == 1  # only the call above the threshold was asked about
    assert asked[0] == (
        "mcp-guard: the agent wants to call 'create_charge' on 'demo_server'.\n"
        'Arguments: amount: 5000, currency: "EUR", customer_id: "cus_001"\n'
        "Why you are asked: A person must approve calls where args.amount > 1000. "
        "(policy rule tools.create_charge.approve_if[0])\n"
        "Approve this call?"
    )


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize(
    ("action", "words"),
    [
        ("decline", "A person declined this call"),
        ("cancel", "dismissed the question without answering"),
        ("accept_unticked", "A person declined this call"),
    ],
)
def test_person_declines_in_band(tmp_path: Path, mode: str, action: str, words: str) -> None:
    asked: list[str] = []
    [big] = anyio.run(call, params(tmp_path), mode, answering(action, asked), BIG)
    assert big.is_error is True and len(asked) == 1
    assert words in text(big) and "The call was not sent to the server." in text(big)
    meta = (big.meta or {})[VIOLATION]
    assert (meta["kind"], meta["rule"]) == ("approval_required", "tools.create_charge.approve_if[0]")


def approve(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*guard_command(), *args, "--store", str(store)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=isolated_env(store.parent),  # the same installation secret as the guard's, which seals the store
    )


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_client_without_elicitation_gets_async_approval(tmp_path: Path, mode: str) -> None:
    p = params(tmp_path)
    [first] = anyio.run(call, p, mode, None, BIG)
    assert first.is_error is True
    meta = (first.meta or {})[VIOLATION]
    approval_id = meta["approval_id"]
    assert meta["approval"] == "pending" and meta["approve_command"] == f"mcp-guard approve {approval_id}"
    assert f"mcp-guard approve {approval_id}" in text(first) and "retry exactly the same call" in text(first)

    listed = approve(tmp_path / "approvals.db", "approvals", "--json")
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [approval_id]
    done = approve(tmp_path / "approvals.db", "approve", approval_id)
    assert done.returncode == 0, done.stderr

    # The identical retry passes once; the next identical call needs a new approval.
    [retry, again, other] = anyio.run(call, p, mode, None, BIG, BIG, {**BIG, "amount": 5001})
    assert retry.is_error is False and "ch_" in text(retry)
    assert again.is_error is True and (again.meta or {})[VIOLATION]["approval"] == "pending"
    # A call with other arguments was never approved.
    assert other.is_error is True


def test_denied_approval_is_reported(tmp_path: Path) -> None:
    p = params(tmp_path)
    [first] = anyio.run(call, p, "legacy", None, BIG)
    approval_id = (first.meta or {})[VIOLATION]["approval_id"]
    assert approve(tmp_path / "approvals.db", "deny", approval_id).returncode == 0
    [retry] = anyio.run(call, p, "legacy", None, BIG)
    assert retry.is_error is True
    meta = (retry.meta or {})[VIOLATION]
    assert meta["approval"] == "denied" and meta["approval_id"] == approval_id
    assert "denied" in text(retry)
    unknown = approve(tmp_path / "approvals.db", "approve", "ap-zzzzzz")
    assert unknown.returncode == 1 and "ap-zzzzzz" in unknown.stderr


@pytest.mark.timeout(60)
def test_unanswered_question_falls_through_to_async(tmp_path: Path) -> None:
    asked: list[str] = []
    [big] = anyio.run(call, params(tmp_path, "--approval-timeout", "1"), "legacy", answering("slow", asked), BIG)
    assert len(asked) == 1
    assert big.is_error is True and (big.meta or {})[VIOLATION]["approval"] == "pending"


def test_no_channel_refuses_at_once_and_says_how_to_enable_one(tmp_path: Path) -> None:
    [big] = anyio.run(call, params(tmp_path, "--approval", "client"), "legacy", None, BIG)
    assert big.is_error is True
    assert "none could be asked (client (this client cannot show questions))" in text(big)
    assert "--approval" in text(big)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize(("code", "approved"), [(0, True), (1, False)])
def test_command_channel_through_the_guard(tmp_path: Path, code: int, approved: bool, mode: str) -> None:
    seen = tmp_path / "request.json"
    script = tmp_path / "dialog.sh"
    script.write_text(f"#!/bin/sh\ncat > {seen}\nexit {code}\n")
    script.chmod(0o755)
    p = params(tmp_path, "--approval", "command", "--approval-command", str(script))
    [big] = anyio.run(call, p, mode, None, BIG)
    request = json.loads(seen.read_text())
    assert (request["tool"], request["arguments"], request["rule"]) == (
        "create_charge",
        BIG,
        "tools.create_charge.approve_if[0]",
    )
    if approved:
        assert big.is_error is False and "ch_" in text(big)
    else:
        assert big.is_error is True and "A person declined this call (asked through the command channel)" in text(big)
        # The "no" is recorded: the identical retry is refused without asking again.
        seen.unlink()
        [retry] = anyio.run(call, p, mode, None, BIG)
        assert retry.is_error is True and not seen.exists()


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_server_asking_for_input_after_approval_asks_each_question_once(tmp_path: Path, mode: str) -> None:
    """The guard's approval round and the server's own input round nest: neither loses its state."""
    from conftest import EVERYTHING_SERVER

    policy = write_policy(tmp_path, {"version": "1", "default": "allow", "tools": {"elicit": {"action": "approve"}}})
    guard = guard_command()
    p = StdioServerParameters(
        command=guard[0],
        args=[
            *guard[1:],
            "--no-audit",
            "--approval-store",
            str(tmp_path / "a.db"),
            "--policy",
            str(policy),
            "--",
            sys.executable,
            str(EVERYTHING_SERVER),
        ],
        env=isolated_env(tmp_path),
    )
    asked: list[str] = []

    async def callback(context: Any, request: Any) -> types.ElicitResult:
        asked.append(request.message)
        if "approve" in request.requested_schema.get("properties", {}):
            return types.ElicitResult(action="accept", content={"approve": True})
        return types.ElicitResult(action="accept", content={"confirm": True, "note": "ok"})

    async def run() -> types.CallToolResult:
        async with Client(p, mode=mode, elicitation_callback=callback) as client:
            return await client.call_tool("elicit", {"question": "Ship it?"})

    result = anyio.run(run)
    assert result.is_error is False and text(result) == "accepted: confirm=True note='ok'"
    assert len(asked) == 2 and asked[0].startswith("mcp-guard: the agent wants to call 'elicit'")
    assert not asked[1].startswith("mcp-guard")
