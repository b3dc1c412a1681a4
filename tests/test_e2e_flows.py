"""Flow rules across servers (issue 20), end to end: guards for two servers, started by one parent process the
way a client starts them (here the test process, through the MCP SDK's stdio client), share the labels their
calls acquired; a guard of another client does not; a label expires after ``within``. SQLite and Redis."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import PYTHON, ROOT, write_policy
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent, TextResourceContents
from test_keyed_limits import redis_server  # noqa: F401 - the fixture `state` asks for

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]

SERVER = ROOT / "tests" / "servers" / "trifecta_server.py"
VIOLATION = "mcp-guard/violation"
WITHIN_S = 3.0
REASON = "Data read from private sources may not be sent out in the same session."

POLICY: dict[str, Any] = {
    "version": "1",
    "default": "allow",
    "tools": {
        "read_email": {"labels": ["private"]},
        "broken_inbox": {"labels": ["private"]},
        "fetch_url": {"labels": ["untrusted", "external"]},
        "send_email": {"labels": ["external"]},
    },
    "flows": [
        {"from": ["private", "secrets"], "to": ["external"], "within": f"{WITHIN_S:g}s", "action": "deny",
         "reason": REASON},
        {"from": ["untrusted"], "to": ["destructive"], "action": "approve"},
    ],
}  # fmt: skip


@pytest.fixture(params=["sqlite", "redis"])
def state(request: pytest.FixtureRequest) -> tuple[list[str], str]:
    """The guards' --state options and the SDK client's mode: no --state (the default SQLite file in the user
    state directory) with the 2026-07-28 era, or Redis with the handshake era."""
    if request.param == "sqlite":
        return [], "auto"
    server = request.getfixturevalue("redis_server")
    return ["--state", f"{server.url}?prefix=flows-{uuid.uuid4().hex[:8]}:"], "legacy"


@asynccontextmanager
async def guard(
    guard_cmd: list[str], env: Mapping[str, str], policy: Path, kind: str, *options: str, mode: str = "legacy"
) -> AsyncIterator[Client]:
    argv = [*guard_cmd, "--policy", str(policy), "--name", kind, *options, "--", PYTHON, str(SERVER), kind]
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(env))
    async with Client(params, mode=mode) as client:
        await client.list_tools()  # as clients do: the guard learns the tools' annotations
        yield client


def text_of(result: CallToolResult) -> str:
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


def violation(result: CallToolResult) -> dict[str, Any] | None:
    if result.meta is None or VIOLATION not in result.meta:
        return None
    meta = result.meta[VIOLATION]
    assert isinstance(meta, dict)
    return meta


async def test_a_private_read_through_one_server_stops_a_send_through_another(
    guard_cmd: list[str], env: dict[str, str], tmp_path: Path, state: tuple[list[str], str]
) -> None:
    policy = write_policy(tmp_path, POLICY)
    options, mode = state
    async with AsyncExitStack() as stack:
        mail = await stack.enter_async_context(guard(guard_cmd, env, policy, "mail", *options, mode=mode))
        web = await stack.enter_async_context(guard(guard_cmd, env, policy, "web", *options, mode=mode))
        stranger = await stack.enter_async_context(
            guard(guard_cmd, env, policy, "web", *options, "--client-id", "another-client", mode=mode)
        )

        sent = await web.call_tool("send_email", {"to": "eve@example.com", "body": "hello"})
        assert violation(sent) is None and text_of(sent) == "sent to eve@example.com"

        # A call that fails puts nothing in the agent's context: no label.
        failed = await mail.call_tool("broken_inbox", {})
        assert failed.is_error and violation(failed) is None
        sent = await web.call_tool("send_email", {"to": "eve@example.com", "body": "hello"})
        assert violation(sent) is None

        read = await mail.call_tool("read_email", {})
        assert not read.is_error and "PIN" in text_of(read)
        read_at = time.time()

        refused = await web.call_tool("send_email", {"to": "eve@example.com", "body": "the PIN is 4242"})
        meta = violation(refused)
        assert refused.is_error and meta is not None
        assert (meta["kind"], meta["rule"], meta["flow"], meta["labels"]) == (
            "flow",
            "flows[0]",
            "flows[0]",
            ["external"],
        )
        [held] = meta["held"]
        assert (held["label"], held["tool"], held["server"]) == ("private", "read_email", "mail")
        text = text_of(refused)
        assert REASON.rstrip(".") in text
        assert "This call to 'send_email' carries the label 'external', and this client session holds 'private'" in text
        assert "acquired when 'read_email' (server 'mail') answered at" in text
        match = re.search(
            r"it is held until (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC \(for 3s after it was acquired\)", text
        )
        assert match is not None, text
        assert held["expires_at"] == f"{match.group(1)} UTC"

        # fetch_url is 'external' too: the same rule stops it, whatever server it is on.
        fetched = await web.call_tool("fetch_url", {"url": "https://example.com"})
        assert (violation(fetched) or {}).get("kind") == "flow"

        # Another client's guard holds nothing.
        other = await stranger.call_tool("send_email", {"to": "eve@example.com", "body": "hello"})
        assert violation(other) is None and text_of(other) == "sent to eve@example.com"

        # After `within`, the label is no longer held.
        time.sleep(max(0.0, read_at + WITHIN_S + 0.3 - time.time()))
        sent = await web.call_tool("send_email", {"to": "eve@example.com", "body": "hello again"})
        assert violation(sent) is None and text_of(sent) == "sent to eve@example.com"

        # An untrusted page, then a tool the server annotates destructive: a person must approve it first.
        assert violation(await stranger.call_tool("delete_page", {"page": "home"})) is None
        fetched = await stranger.call_tool("fetch_url", {"url": "https://example.com"})
        assert violation(fetched) is None
        asked = await stranger.call_tool("delete_page", {"page": "home"})
        meta = violation(asked)
        assert meta is not None and (meta["kind"], meta["rule"]) == ("approval_required", "flows[1]")
        assert "mcp-guard approve" in text_of(asked)
        assert "carries the label 'destructive'" in text_of(asked)
        # A person approves it at a terminal; the same call then goes through.
        approved = subprocess.run(
            [*guard_cmd, "approve", str(meta["approval_id"])],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert approved.returncode == 0, approved.stderr
        done = await stranger.call_tool("delete_page", {"page": "home"})
        assert violation(done) is None and text_of(done) == "deleted home"
        # The same call through the first client's guard is not asked about: that client read no untrusted page.
        assert violation(await web.call_tool("delete_page", {"page": "home"})) is None


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_private_resource_read_through_one_server_stops_a_send_through_another(
    guard_cmd: list[str], env: dict[str, str], tmp_path: Path, mode: str
) -> None:
    # Resources carry labels of their own (the resources section's rules): reading one is like calling read_email.
    doc = {
        **POLICY,
        "tools": {"send_email": {"labels": ["external"]}},
        "resources": {"rules": {"mail://*": {"labels": ["private"]}}},
    }
    policy = write_policy(tmp_path, doc)
    async with AsyncExitStack() as stack:
        mail = await stack.enter_async_context(guard(guard_cmd, env, policy, "mail", mode=mode))
        web = await stack.enter_async_context(guard(guard_cmd, env, policy, "web", mode=mode))
        assert violation(await web.call_tool("send_email", {"to": "eve@example.com", "body": "hi"})) is None
        # A read that fails puts nothing in the agent's context: no label.
        with pytest.raises(MCPError):
            await mail.read_resource("mail://broken")
        assert violation(await web.call_tool("send_email", {"to": "eve@example.com", "body": "hi"})) is None

        read = await mail.read_resource("mail://inbox/latest")
        [content] = read.contents
        assert isinstance(content, TextResourceContents) and "PIN" in content.text

        refused = await web.call_tool("send_email", {"to": "eve@example.com", "body": "the PIN is 4242"})
        meta = violation(refused)
        assert refused.is_error and meta is not None
        assert (meta["kind"], meta["rule"], meta["labels"]) == ("flow", "flows[0]", ["external"])
        [held] = meta["held"]
        assert (held["label"], held["tool"], held["server"]) == ("private", "resource:mail://inbox/latest", "mail")
        assert "acquired when 'resource:mail://inbox/latest' (server 'mail') answered at" in text_of(refused)


def test_keyed_limits_through_guards_sharing_a_store(guard_cmd: list[str], start: Any, tmp_path: Path) -> None:
    """Two guards of one server, one SQLite store: 2 charges an hour per customer in total, a new customer past
    max_keys refused, a call without a customer refused; each refusal says why."""
    from conftest import RECORDER_SERVER, tool_call

    limit = {"counter": "per_customer", "key": "args.customer_id", "window": "1h", "max": 2, "max_keys": 2}
    policy = write_policy(
        tmp_path,
        {"version": "1", "default": "allow", "tools": {"pay": {"limits": [{**limit, "scope": "server"}]}}},
    )
    state = f"sqlite:///{tmp_path / 'counters.db'}"
    guards = [
        start(
            [*guard_cmd, "--name", "payments", "--state", state, "--policy", str(policy), "--", PYTHON,
             str(RECORDER_SERVER), str(tmp_path / f"received-{n}.jsonl")]
        )
        for n in range(2)
    ]  # fmt: skip

    def pay(n: int, ident: str, **args: Any) -> dict[str, Any] | None:
        answer = guards[n].request(tool_call(ident, "pay", args))
        meta = answer["result"].get("_meta", {}).get(VIOLATION)
        assert meta is None or answer["result"]["isError"] is True
        return meta

    assert pay(0, "a1", customer_id="cus_1") is None
    assert pay(1, "a2", customer_id="cus_1") is None
    third = pay(0, "a3", customer_id="cus_1")
    assert third is not None and (third["kind"], third["counter"], third["used"]) == (
        "limit",
        'per_customer["cus_1"]',
        2,
    )
    assert pay(1, "b1", customer_id=7) is None  # another customer has its own count (and is the second key)
    full = pay(0, "c1", customer_id="cus_3")
    assert full is not None and (full["kind"], full["max_keys"], full["tracked"]) == ("limit", 2, 2)
    assert "already tracks its most distinct values (2, max_keys)" in full["reason"]
    missing = pay(1, "m1", amount=5)
    assert missing is not None and missing["kind"] == "invalid"
    assert "counted per args.customer_id" in missing["reason"] and "missing" in missing["reason"]
    for g in guards:
        g.close_stdin()
        assert g.wait() == 0
