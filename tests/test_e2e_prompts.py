"""Prompts and resources under policy, through the guard subprocess, with the MCP SDK's client in both eras.

The upstream is tests/servers/prompts_server.py: its ``fetch`` prompt performs the same "GET" as its
``fetch`` tool (as mcp-server-fetch's does), and it logs every prompt it renders and resource it reads,
so each test checks that a refused request never made the server act.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import PYTHON, ROOT, write_policy
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp.types import TextContent, TextResourceContents
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

SERVER = ROOT / "tests" / "servers" / "prompts_server.py"
VIOLATION = "mcp-guard/violation"

ISSUE_POLICY: dict[str, Any] = {
    "version": "1",
    "default": "allow",
    "tools": {"fetch": {"limits": [{"counter": "web", "window": "minute", "max": 10}]}},
    "prompts": {
        "default": "allow",
        "hide": ["debug_*"],
        "rules": {"fetch": {"action": "deny", "reason": "Use the fetch tool."}},
    },
    "resources": {
        "default": "allow",
        "hide": ["debug://*"],
        "rules": {
            "file:///etc/*": {"action": "deny"},
            "https://*": {"limits": [{"counter": "web", "window": "minute", "max": 10}]},
        },
    },
}


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def connect(argv: list[str], env: Mapping[str, str], mode: str) -> AsyncIterator[Client]:
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(env))
    async with Client(params, mode=mode) as client:
        versions = MODERN_PROTOCOL_VERSIONS if mode == "auto" else HANDSHAKE_PROTOCOL_VERSIONS
        assert client.session.protocol_version in versions
        yield client


def guarded(guard_cmd: list[str], policy: Path, log: Path) -> list[str]:
    return [*guard_cmd, "--policy", str(policy), "--", PYTHON, str(SERVER), str(log)]


def acted(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def only_text(contents: Any) -> str:
    assert len(contents) == 1
    content = contents[0]
    assert isinstance(content, (TextContent, TextResourceContents))
    return content.text


async def test_denied_prompt_and_resources_are_refused_with_their_reason(
    guard_cmd: list[str], env: dict[str, str], tmp_path: Path, mode: str
) -> None:
    log = tmp_path / "acted.log"
    policy = write_policy(tmp_path, ISSUE_POLICY)
    async with connect(guarded(guard_cmd, policy, log), env, mode) as client:
        with pytest.raises(MCPError) as info:
            await client.get_prompt("fetch", {"url": "https://example.com/"})
        assert info.value.error.message == (
            "mcp-guard refused this prompts/get of the prompt 'fetch' (policy rule prompts.rules.fetch.action): "
            "Use the fetch tool. The request was not sent to the server."
        )
        data = info.value.error.data
        assert isinstance(data, dict)
        assert data[VIOLATION] == {
            "prompt": "fetch",
            "rule": "prompts.rules.fetch.action",
            "kind": "deny",
            "reason": "Use the fetch tool.",
        }
        # The session goes on: other prompts and the tool work.
        summary = await client.get_prompt("summarise", {"text": "hello"})
        assert only_text([summary.messages[0].content]) == "Summarise: hello"
        result = await client.call_tool("fetch", {"url": "https://example.com/"})
        assert not result.is_error
        # file:///etc/* is denied, however it is spelt; other files are not.
        for uri in ("file:///etc/hostname", "file:///srv/../etc/hostname"):
            with pytest.raises(MCPError) as refused:
                await client.read_resource(uri)
            assert refused.value.error.message.startswith(
                f"mcp-guard refused this resources/read of the resource {uri!r}"
            )
        notes = await client.read_resource("file:///srv/notes.txt")
        assert only_text(notes.contents) == "notes\n"
    assert acted(log) == ["prompt summarise", "tool fetch https://example.com/", "read file:///srv/notes.txt"]


async def test_hidden_prompts_are_absent(guard_cmd: list[str], env: dict[str, str], tmp_path: Path, mode: str) -> None:
    log = tmp_path / "acted.log"
    policy = write_policy(tmp_path, ISSUE_POLICY)
    async with connect(guarded(guard_cmd, policy, log), env, mode) as client:
        listed = await client.list_prompts()
        assert sorted(p.name for p in listed.prompts) == ["fetch", "summarise"]
        with pytest.raises(MCPError) as hidden:
            await client.get_prompt("debug_dump")
        with pytest.raises(MCPError) as missing:
            await client.get_prompt("no_such_prompt")
        # A hidden prompt gets the answer the server gives for one it does not have.
        assert (hidden.value.error.code, hidden.value.error.message) == (
            missing.value.error.code,
            missing.value.error.message.replace("no_such_prompt", "debug_dump"),
        )
        resources = await client.list_resources()
        assert sorted(r.uri for r in resources.resources) == [
            "file:///etc/hostname",
            "file:///srv/notes.txt",
            "https://example.com/",
        ]
        with pytest.raises(MCPError) as hidden_resource:
            await client.read_resource("debug://state")
        with pytest.raises(MCPError) as missing_resource:
            await client.read_resource("nothing://here")
        assert (hidden_resource.value.error.code, hidden_resource.value.error.message) == (
            missing_resource.value.error.code,
            missing_resource.value.error.message.replace("nothing://here", "debug://state"),
        )
        templates = await client.list_resource_templates()
        assert [t.uri_template for t in templates.resource_templates] == ["https://example.com/page/{n}"]
        with pytest.raises(MCPError):
            await client.read_resource("debug://anything")  # through the hidden template
    assert acted(log) == []


async def test_resources_and_the_tool_share_a_counter(
    guard_cmd: list[str], env: dict[str, str], tmp_path: Path, mode: str
) -> None:
    log = tmp_path / "acted.log"
    policy = write_policy(tmp_path, ISSUE_POLICY)
    async with connect(guarded(guard_cmd, policy, log), env, mode) as client:
        for i in range(5):
            assert not (await client.call_tool("fetch", {"url": f"https://example.com/{i}"})).is_error
            page = await client.read_resource(f"https://example.com/page/{i}")
            assert only_text(page.contents) == f"<html>contents of https://example.com/page/{i}</html>"
        with pytest.raises(MCPError) as info:
            await client.read_resource("https://example.com/page/99")
        assert "Rate limit reached: at most 10 calls per minute (counter 'web')" in info.value.error.message
        data = info.value.error.data
        assert isinstance(data, dict) and data[VIOLATION]["kind"] == "limit"
        refused = await client.call_tool("fetch", {"url": "https://example.com/last"})
        assert refused.is_error and refused.meta is not None
        assert refused.meta[VIOLATION]["counter"] == "web"
    assert len(acted(log)) == 10


async def test_without_sections_prompts_and_resources_pass(
    guard_cmd: list[str], env: dict[str, str], tmp_path: Path, mode: str
) -> None:
    log = tmp_path / "acted.log"
    policy = write_policy(tmp_path, {"version": "1", "default": "allow", "hide": ["debug_*"]})
    async with connect(guarded(guard_cmd, policy, log), env, mode) as client:
        prompts = await client.list_prompts()
        assert sorted(p.name for p in prompts.prompts) == ["debug_dump", "debug_state", "fetch", "summarise"]
        fetched = await client.get_prompt("fetch", {"url": "https://example.com/"})
        assert "contents of https://example.com/" in only_text([fetched.messages[0].content])
        etc = await client.read_resource("file:///etc/hostname")
        assert only_text(etc.contents) == "guarded-host\n"
        debug = await client.read_resource("debug://state")
        assert only_text(debug.contents) == "state"
    assert acted(log) == ["prompt fetch", "read file:///etc/hostname", "read debug://state"]


async def test_a_prompt_that_needs_approval_is_asked_about_in_band(
    guard_cmd: list[str], env: dict[str, str], tmp_path: Path, mode: str
) -> None:
    from mcp import types

    log = tmp_path / "acted.log"
    policy = write_policy(
        tmp_path, {"version": "1", "default": "allow", "prompts": {"rules": {"fetch": {"action": "approve"}}}}
    )
    asked: list[str] = []
    answers = iter(["accept", "decline"])

    async def person(context: Any, request: Any) -> types.ElicitResult:
        asked.append(request.message)
        if next(answers) == "accept":
            return types.ElicitResult(action="accept", content={"approve": True})
        return types.ElicitResult(action="decline")

    argv = [*guard_cmd, "--no-audit", "--approval-store", str(tmp_path / "approvals.db")]
    argv += ["--policy", str(policy), "--", PYTHON, str(SERVER), str(log)]
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(env))
    async with Client(params, mode=mode, elicitation_callback=person) as client:
        fetched = await client.get_prompt("fetch", {"url": "https://example.com/"})
        assert "contents of https://example.com/" in only_text([fetched.messages[0].content])
        with pytest.raises(MCPError) as info:
            await client.get_prompt("fetch", {"url": "https://example.com/other"})
        assert "A person declined this call" in info.value.error.message
    assert len(asked) == 2
    assert "'prompt:fetch'" in asked[0] and 'url: "https://example.com/"' in asked[0]
    assert acted(log) == ["prompt fetch"]
