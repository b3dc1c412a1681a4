"""The guard seen through the MCP Python SDK's client, in both protocol eras, against the demo server."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO_SERVER, PYTHON, SEED_POLICY, write_policy
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult, TextContent
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

MODES = ["auto", "legacy"]
VIOLATION = "mcp-guard/violation"


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def connect(argv: list[str], env: Mapping[str, str], mode: str) -> AsyncIterator[Client]:
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(env))
    async with Client(params, mode=mode) as client:
        # Both eras really are exercised: "auto" settles on 2026-07-28 with this SDK's servers.
        if mode == "auto":
            assert client.session.protocol_version in MODERN_PROTOCOL_VERSIONS
        else:
            assert client.session.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS
        yield client


def direct() -> list[str]:
    return [PYTHON, str(DEMO_SERVER)]


CHARGE = {"amount": 10.0, "currency": "USD", "customer_id": "cus_001"}
# The demo server's own answers, by era: it lists the same tools and refuses an unknown tool the same way
# in every test, so each era's direct session runs once per process (per pytest-xdist worker).
_DIRECT: dict[str, tuple[dict[str, Any], CallToolResult]] = {}


async def direct_answers(env: Mapping[str, str], mode: str) -> tuple[dict[str, Any], CallToolResult]:
    """The demo server's ``tools/list`` result (dumped) and its answer to ``no_such_tool``, straight, in ``mode``."""
    if mode not in _DIRECT:
        async with connect(direct(), env, mode) as client:
            tools = (await client.list_tools()).model_dump()
            unknown = await client.call_tool("no_such_tool", CHARGE)
        _DIRECT[mode] = (tools, unknown)
    tools, unknown = _DIRECT[mode]
    return copy.deepcopy(tools), unknown.model_copy(deep=True)


def guarded(guard_cmd: list[str], policy: Path) -> list[str]:
    return [*guard_cmd, "--policy", str(policy), "--", PYTHON, str(DEMO_SERVER)]


def text_of(result: CallToolResult) -> str:
    assert len(result.content) == 1
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


def violation(result: CallToolResult) -> dict[str, Any]:
    assert result.meta is not None
    meta = result.meta[VIOLATION]
    assert isinstance(meta, dict)
    return meta


def refusal_text(tool: str, rule: str, reason: str) -> str:
    return (
        f"mcp-guard refused this call to {tool!r} (policy rule {rule}): {reason} The call was not sent to the server."
    )


def check_era(result: CallToolResult) -> None:
    """The SDK accepted the refusal as a finished result (2026-07-28 clients need resultType on the wire)."""
    assert result.result_type == "complete"


async def test_list_tools_equals_direct(guard_cmd: list[str], env: dict[str, str], mode: str) -> None:
    expected, _ = await direct_answers(env, mode)
    async with connect(guarded(guard_cmd, SEED_POLICY), env, mode) as client:
        got = (await client.list_tools()).model_dump()
    assert got == expected
    assert {t["name"] for t in got["tools"]} == {
        "track_behavior_event",
        "send_order_for_analysis",
        "get_order_status",
        "list_customers",
        "create_charge",
        "refund",
    }


async def test_seed_policy_limit_and_default_deny(guard_cmd: list[str], env: dict[str, str], mode: str) -> None:
    async with connect(guarded(guard_cmd, SEED_POLICY), env, mode) as client:
        results = [
            await client.call_tool("track_behavior_event", {"user_id": "u1", "event": f"page_view_{i}"})
            for i in range(31)
        ]
        for i, result in enumerate(results[:30], start=1):
            assert result.is_error is False, result
            assert result.structured_content is not None
            assert result.structured_content["user_event_count"] == i

        refused = results[30]
        assert refused.is_error is True
        meta = violation(refused)
        retry = meta["retry_after_s"]
        assert isinstance(retry, (int, float))
        assert 0 < retry <= 60
        reason = (
            "Rate limit reached: at most 30 calls per minute (counter 'track_behavior_event_rate'). "
            f"A slot frees in {retry:g} s; retry after that."
        )
        assert meta == {
            "tool": "track_behavior_event",
            "rule": "tools.track_behavior_event.limits[0]",
            "kind": "limit",
            "reason": reason,
            "counter": "track_behavior_event_rate",
            "max": 30,
            "window_s": 60,
            "used": 30,
            "retry_after_s": retry,
        }
        assert text_of(refused) == refusal_text("track_behavior_event", "tools.track_behavior_event.limits[0]", reason)
        check_era(refused)

        charge = await client.call_tool(
            "create_charge", {"amount": 10.0, "currency": "USD", "customer_id": "cus_001", "description": "x"}
        )
        assert charge.is_error is True
        reason = "Tool 'create_charge' is not allowed: the policy does not list it and its default is deny."
        assert violation(charge) == {
            "tool": "create_charge",
            "rule": "default",
            "kind": "default_deny",
            "reason": reason,
        }
        assert text_of(charge) == refusal_text("create_charge", "default", reason)
        check_era(charge)

        # A refused call does not use up a slot: the window still holds exactly the 30 relayed calls.
        again = await client.call_tool("track_behavior_event", {"user_id": "u1", "event": "late"})
        assert again.is_error is True
        assert violation(again)["used"] == 30


async def test_deny_with_reason(guard_cmd: list[str], env: dict[str, str], mode: str, tmp_path: Path) -> None:
    policy = write_policy(
        tmp_path,
        {
            "version": "1",
            "default": "allow",
            "tools": {"refund": {"action": "deny", "reason": "Refunds need a human approver"}},
        },
    )
    async with connect(guarded(guard_cmd, policy), env, mode) as client:
        refused = await client.call_tool("refund", {"charge_id": "ch_000001", "amount": 1.0})
        allowed = await client.call_tool("list_customers", {})
    assert refused.is_error is True
    reason = "Refunds need a human approver."
    assert violation(refused) == {"tool": "refund", "rule": "tools.refund.action", "kind": "deny", "reason": reason}
    assert text_of(refused) == refusal_text("refund", "tools.refund.action", reason)
    check_era(refused)
    assert allowed.is_error is False
    assert allowed.structured_content is not None
    assert len(allowed.structured_content["customers"]) == 3


async def test_hidden_tool_looks_absent(guard_cmd: list[str], env: dict[str, str], mode: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, {"version": "1", "default": "allow", "hide": ["create_charge"]})
    direct_tools, direct_unknown = await direct_answers(env, mode)
    async with connect(guarded(guard_cmd, policy), env, mode) as client:
        guarded_tools = (await client.list_tools()).model_dump()
        hidden_call = await client.call_tool("create_charge", CHARGE)

    expected_tools = [t for t in direct_tools["tools"] if t["name"] != "create_charge"]
    assert len(expected_tools) == len(direct_tools["tools"]) - 1
    assert guarded_tools == {**direct_tools, "tools": expected_tools}

    assert direct_unknown.is_error is True
    assert text_of(direct_unknown) == "Unknown tool: no_such_tool"
    assert hidden_call.is_error is direct_unknown.is_error
    assert text_of(hidden_call) == text_of(direct_unknown).replace("no_such_tool", "create_charge")
    assert hidden_call.structured_content is None
    assert hidden_call.result_type == direct_unknown.result_type
    # No trace of the guard: no violation metadata on a hidden tool's answer.
    assert VIOLATION not in (hidden_call.meta or {})
