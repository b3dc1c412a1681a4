"""A 2026-07-28 call that asks for input is one call: judged and charged once across its rounds.

The server's ``pay`` tool answers ``input_required`` ("Really pay 6?"); the client retries the
same call under a new JSON-RPC id with ``inputResponses`` and the server's ``requestState``.
The guard admitted the first round, so the retry is the same call going on: relayed without a
second decision or charge, and audited once with its rounds. A retry that changes the tool or
the arguments, or carries a state the server never issued for this call, is a new call.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import MODERN_META, ROOT, RawSession, Start, guard_command, isolated_env, write_policy
from mcp import Client, StdioServerParameters, types

from mcp_guard.calls import Call
from mcp_guard.rounds import Rounds

CONFIRMING_SERVER = ROOT / "tests" / "servers" / "confirming_server.py"
SPEND_CAP = {
    "version": "1",
    "default": "allow",
    "tools": {"pay": {"limits": [{"counter": "spend", "window": "hour", "max": 10, "increment_from": "args.amount"}]}},
}
ONE_AN_HOUR = {
    "version": "1",
    "default": "allow",
    "tools": {"pay": {"limits": [{"counter": "pays", "window": "hour", "max": 1}]}},
}


def guard_argv(tmp_path: Path, policy: dict[str, Any]) -> list[str]:
    return [
        *guard_command(),
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
        "--policy",
        str(write_policy(tmp_path, policy)),
        "--",
        sys.executable,
        str(CONFIRMING_SERVER),
        "--ledger",
        str(tmp_path / "ledger.txt"),
    ]


def params(tmp_path: Path, policy: dict[str, Any]) -> StdioServerParameters:
    argv = guard_argv(tmp_path, policy)
    return StdioServerParameters(command=argv[0], args=argv[1:], env=isolated_env(tmp_path))


async def confirm(context: Any, request: Any) -> types.ElicitResult:
    assert request.message.startswith("Really pay ")
    return types.ElicitResult(action="accept", content={"confirm": True})


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def paid(tmp_path: Path) -> list[int]:
    ledger = tmp_path / "ledger.txt"
    return [int(x) for x in ledger.read_text().split()] if ledger.exists() else []


def audit_lines(tmp_path: Path, tool: str = "pay") -> list[dict[str, Any]]:
    path = tmp_path / "audit.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [line for line in lines if line["tool"] == tool]


def sdk_calls(p: StdioServerParameters, mode: str, *amounts: int) -> list[types.CallToolResult]:
    async def run() -> list[types.CallToolResult]:
        async with Client(p, mode=mode, elicitation_callback=confirm) as client:
            assert mode != "auto" or client.protocol_version == "2026-07-28"
            return [await client.call_tool("pay", {"amount": a}) for a in amounts]

    return anyio.run(run)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_confirmed_payment_is_charged_once(tmp_path: Path, mode: str) -> None:
    """Spend cap 10 an hour: 6 then 4 both go through (10 in all), the third payment does not."""
    six, four, one = sdk_calls(params(tmp_path, SPEND_CAP), mode, 6, 4, 1)
    assert (six.is_error, text(six)) == (False, "paid 6")
    assert (four.is_error, text(four)) == (False, "paid 4")
    assert one.is_error is True and "Rate limit" in text(one) and "spend" in text(one)
    assert paid(tmp_path) == [6, 4]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_count_limit_counts_a_call_with_rounds_once(tmp_path: Path, mode: str) -> None:
    first, second = sdk_calls(params(tmp_path, ONE_AN_HOUR), mode, 3, 3)
    assert (first.is_error, text(first)) == (False, "paid 3")
    assert second.is_error is True and "Rate limit" in text(second)
    assert paid(tmp_path) == [3]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_fastmcp_client_confirmed_payment_is_charged_once(tmp_path: Path, mode: str) -> None:
    """FastMCP's client drives the same rounds (through the SDK's driver, with its own handler shape).

    Runs where fastmcp is installed (4.2.3 passes). It is not in the test extras: it brings ``rich``, with
    which the SDK's servers log through a timestamped RichHandler, and test_transcripts compares their
    stderr byte for byte.
    """
    fastmcp = pytest.importorskip("fastmcp")
    from fastmcp.client.transports import StdioTransport

    argv = guard_argv(tmp_path, SPEND_CAP)
    asked: list[str] = []

    async def handler(message: str, response_type: Any, params: Any, context: Any) -> dict[str, bool]:
        asked.append(message)
        return {"confirm": True}

    async def run() -> list[Any]:
        transport = StdioTransport(argv[0], argv[1:], env=isolated_env(tmp_path))
        async with fastmcp.Client(transport, elicitation_handler=handler, mode=mode) as client:
            return [await client.call_tool("pay", {"amount": a}, raise_on_error=False) for a in (6, 4, 1)]

    six, four, one = anyio.run(run)
    assert (six.is_error, six.content[0].text) == (False, "paid 6")
    assert (four.is_error, four.content[0].text) == (False, "paid 4")
    assert one.is_error is True and "Rate limit" in one.content[0].text
    assert asked == ["Really pay 6?", "Really pay 4?"]
    assert paid(tmp_path) == [6, 4]


def test_audit_records_one_call_with_its_rounds(tmp_path: Path) -> None:
    [six] = sdk_calls(params(tmp_path, SPEND_CAP), "auto", 6)
    assert text(six) == "paid 6"
    [entry] = audit_lines(tmp_path)
    assert (entry["decision"], entry["status"], entry["rounds"]) == ("allowed", "ok", 2)


# --- the raw wire: what a retry must carry to be the same call ------------------------------------------------


META = {**MODERN_META, "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}}}


def call_frame(ident: int, arguments: dict[str, Any], **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"name": "pay", "arguments": arguments, "_meta": META, **extra}
    return {"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": params}


KEY = "__main__:_ask"  # the SDK names an input request after the resolver that asks it
YES = {KEY: {"action": "accept", "content": {"confirm": True}}}


def first_round(session: RawSession, amount: int) -> str:
    answer = session.request(call_frame(1, {"amount": amount}))
    result = answer["result"]
    assert result["resultType"] == "input_required", answer
    assert list(result["inputRequests"]) == [KEY]
    state = result["requestState"]
    assert isinstance(state, str)
    return state


def test_retry_with_changed_arguments_is_judged_anew(tmp_path: Path, start: Start) -> None:
    session = start(guard_argv(tmp_path, SPEND_CAP))
    state = first_round(session, 6)  # 6 of 10 charged
    changed = session.request(call_frame(2, {"amount": 7}, inputResponses=YES, requestState=state))
    result = changed["result"]
    assert result["isError"] is True and "Rate limit" in result["content"][0]["text"]  # 6 + 7 > 10
    assert paid(tmp_path) == []
    # The unchanged retry is still the same call: relayed without a second charge.
    same = session.request(call_frame(3, {"amount": 6}, inputResponses=YES, requestState=state))
    assert same["result"]["content"][0]["text"] == "paid 6"
    assert paid(tmp_path) == [6]


def test_state_not_issued_for_this_call_is_a_new_call(tmp_path: Path, start: Start) -> None:
    session = start(guard_argv(tmp_path, ONE_AN_HOUR))
    state = first_round(session, 2)  # the one call of the hour
    for ident, made_up in ((2, "not-a-state-the-server-issued"), (3, state + "x")):
        answer = session.request(call_frame(ident, {"amount": 2}, inputResponses=YES, requestState=made_up))
        assert answer["result"]["isError"] is True and "Rate limit" in answer["result"]["content"][0]["text"]
    # A state is good for one retry: once the call has gone on with it, a replay is a new call.
    done = session.request(call_frame(4, {"amount": 2}, inputResponses=YES, requestState=state))
    assert done["result"]["content"][0]["text"] == "paid 2"
    replay = session.request(call_frame(5, {"amount": 2}, inputResponses=YES, requestState=state))
    assert replay["result"]["isError"] is True and "Rate limit" in replay["result"]["content"][0]["text"]
    assert paid(tmp_path) == [2]


# --- the table of issued states ----------------------------------------------------------------------------


def _call(tool: str = "pay", amount: int = 6) -> Call:
    return Call(tool, None, None, "allowed", {"amount": amount}, 0.0, 0.0)


def test_rounds_table_binds_state_to_tool_and_arguments() -> None:
    rounds = Rounds()
    call = _call()
    assert rounds.issued("s1", call) == []
    assert rounds.resume("s1", "pay", {"amount": 7}) is None  # other arguments: a new call
    assert rounds.resume("s1", "refund", {"amount": 6}) is None  # another tool
    assert rounds.resume("s2", "pay", {"amount": 6}) is None  # a state never issued
    assert rounds.resume("s1", "pay", {"amount": 6}) is call
    assert rounds.resume("s1", "pay", {"amount": 6}) is None  # good for one retry


def test_rounds_table_is_bounded_and_expires() -> None:
    now = [0.0]
    rounds = Rounds(kept=2, ttl_s=10.0, clock=lambda: now[0])
    a, b, c = _call(amount=1), _call(amount=2), _call(amount=3)
    rounds.issued("a", a)
    rounds.issued("b", b)
    assert rounds.issued("c", c) == [a]  # the oldest is pushed out, handed back unfinished
    now[0] = 11.0
    assert rounds.resume("b", "pay", {"amount": 2}) is None  # expired
    assert rounds.expired() == [b, c] and len(rounds) == 0
    rounds.issued("d", a)
    assert rounds.drain() == [a] and len(rounds) == 0
