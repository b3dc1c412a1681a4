"""Transcript diffs: one scripted client session straight to a server, then through the guard.

The client (tests/scripted.py) sends one request at a time, answers the server's own requests
(sampling, elicitation, roots) from its script, and waits for every notification a step causes
before the next step, so a server writes its bytes in one order whatever the timing. The guard
must not change a byte of what the client reads.

Servers:

* ``@modelcontextprotocol/server-everything`` (npm, the TypeScript SDK's reference server; pinned
  in tests/node/package.json, installed with ``npm ci --prefix tests/node``). Version 2026.8.31 is
  built on TypeScript SDK 1.x, which knows protocol versions up to 2025-11-25: it answers
  ``server/discover`` with -32601, so it is exercised in the handshake era only (the session
  opens with that probe, as a 2026-07-28 client falling back to ``initialize`` would).
* tests/servers/everything_server.py, for what test_e2e_wire.py does not cover already: progress,
  logging, elicitation / sampling / roots (server-to-client requests in the handshake era,
  ``input_required`` retries in the 2026-07-28 era), resources, prompts, completion, paginated
  ``tools/list``, and list-changed followed by a re-fetch, in both eras; and the same session
  under a policy with ``hide``, where only the hidden tools may differ.
"""

from __future__ import annotations

import base64
import difflib
import json
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    EVERYTHING_SERVER,
    HANDSHAKE_VERSION,
    MODERN_META,
    MODERN_VERSION,
    PYTHON,
    ROOT,
    RawSession,
    user_policy_path,
    without_start_line,
    write_policy,
)
from scripted import Run, ScriptedClient, all_of, asked, notified, scripted_responder

pytestmark = pytest.mark.timeout(90)

NODE_DIR = ROOT / "tests" / "node"
NODE_PACKAGE = NODE_DIR / "node_modules" / "@modelcontextprotocol" / "server-everything"
ALLOW_ALL: dict[str, Any] = {"version": "1", "default": "allow"}
CAPABILITIES: dict[str, Any] = {"sampling": {}, "elicitation": {"form": {}}, "roots": {"listChanged": True}}
Scenario = Callable[[ScriptedClient], None]


def no_policy_line(env: Mapping[str, str]) -> str:
    return (
        "mcp-guard: no policy found: relaying every call (allow-all). Pass --policy FILE, "
        f"set $MCP_GUARD_POLICY, or create {user_policy_path(env)}\n"
    )


def run(argv: Sequence[str], scenario: Scenario, env: Mapping[str, str], meta: Mapping[str, Any] | None = None) -> Run:
    """Play ``scenario`` against ``argv``, close stdin, and collect everything up to EOF and the exit."""
    session = RawSession(argv, env)
    try:
        client = ScriptedClient(session, scripted_responder, meta)
        scenario(client)
        session.close_stdin()
        session.read_rest(15)
        code = session.wait(15)
        return Run(list(session.received), code, session.stderr_so_far())
    finally:
        session.kill()


# Direct transcripts by (server, scenario): the same whatever the guard's configuration, so each is
# recorded once per run (per pytest-xdist worker) and compared with every guarded one.
_DIRECT: dict[tuple[str, ...], Run] = {}


def run_direct(
    key: str, argv: Sequence[str], scenario: Scenario, env: Mapping[str, str], meta: Mapping[str, Any] | None = None
) -> Run:
    """:func:`run` straight against the server, once per ``key`` and ``argv``."""
    cache_key = (key, *argv)
    if cache_key not in _DIRECT:
        _DIRECT[cache_key] = run(argv, scenario, env, meta)
    return _DIRECT[cache_key]


def assert_same_lines(direct: Sequence[bytes], guarded: Sequence[bytes]) -> None:
    if list(direct) == list(guarded):
        return
    diff = difflib.unified_diff(
        [line.decode("utf-8", "replace")[:400] for line in direct],
        [line.decode("utf-8", "replace")[:400] for line in guarded],
        "direct",
        "guarded",
        lineterm="",
    )
    raise AssertionError("the guard changed the transcript:\n" + "\n".join(diff))


def guarded_argv(guard_cmd: list[str], config: str, tmp_path: Path, server: Sequence[str]) -> list[str]:
    policy_args = [] if config == "no-policy" else ["--policy", str(write_policy(tmp_path, ALLOW_ALL))]
    return [*guard_cmd, *policy_args, "--", *server]


# --- @modelcontextprotocol/server-everything (TypeScript) ----------------------------------------------


def node_everything() -> list[str]:
    """How to start the npm reference server on stdio (its package.json's bin, with ``stdio``)."""
    manifest = NODE_PACKAGE / "package.json"
    problem = None
    if shutil.which("node") is None:
        problem = "node is not on PATH"
    elif not manifest.is_file():
        problem = f"{NODE_PACKAGE} is missing: run `npm ci --prefix tests/node`"
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the npm reference server must be installed: {problem}")
        pytest.skip(problem)
    package = json.loads(manifest.read_text())
    pinned = json.loads((NODE_DIR / "package.json").read_text())["dependencies"][package["name"]]
    assert package["version"] == pinned, f"installed {package['version']}, pinned {pinned}: rerun npm ci"
    return ["node", str(NODE_PACKAGE / package["bin"]["mcp-server-everything"]), "stdio"]


# Its dynamic resources embed the time they were made (`new Date().toLocaleTimeString()`), as text
# and inside base64 blobs: the only bytes that legitimately differ between two sessions.
_CREATED_AT = re.compile(rb'created at [^"\\]*')
_BLOB = re.compile(rb'"blob":"([A-Za-z0-9+/=]*)"')


def normalise_node(line: bytes) -> bytes:
    def blob(match: re.Match[bytes]) -> bytes:
        decoded = base64.b64decode(match.group(1))
        if b"created at " not in decoded:
            return match.group(0)
        return b'"blob":"' + base64.b64encode(_CREATED_AT.sub(b"created at <time>", decoded)) + b'"'

    return _CREATED_AT.sub(b"created at <time>", _BLOB.sub(blob, line))


DOC_URI = "demo://resource/static/document/features.md"
TEXT_URI = "demo://resource/dynamic/text/1"


def node_scenario(c: ScriptedClient) -> None:
    # A 2026-07-28 client's first request; this server predates that version and says so.
    discover = c.request("server/discover", {"_meta": {"io.modelcontextprotocol/protocolVersion": MODERN_VERSION}})
    assert discover["error"]["code"] == -32601, discover
    c.request(
        "initialize",
        {
            "protocolVersion": HANDSHAKE_VERSION,
            "capabilities": CAPABILITIES,
            "clientInfo": {"name": "t", "version": "1"},
        },
    )
    # After notifications/initialized it registers the tools this client's capabilities allow (one
    # tools/list_changed each), and 350 ms later asks for the client's roots, then logs their count.
    c.notify("notifications/initialized", until=all_of(asked("roots/list"), notified("notifications/message")))
    c.request("ping")
    tools = {tool["name"] for tool in c.list_all("tools/list", "tools")}
    assert {"echo", "get-sum", "trigger-sampling-request", "trigger-elicitation-request"} <= tools

    c.call_tool("echo", {"message": 'héllo ☃ "quoted" \\ back'})
    c.call_tool("get-sum", {"a": 2, "b": 40})
    progress = c.call_tool(
        "trigger-long-running-operation",
        {"duration": 0.5, "steps": 5},
        meta={"progressToken": "lro-1"},
        until=notified("notifications/progress", 5),
    )
    assert "Long running operation completed" in progress["result"]["content"][0]["text"]
    sampled = c.call_tool("trigger-sampling-request", {"prompt": "What is 6 x 7?", "maxTokens": 50})
    assert "Scripted answer: 42." in sampled["result"]["content"][0]["text"]
    elicited = c.call_tool("trigger-elicitation-request")
    assert "User provided the requested information" in elicited["result"]["content"][0]["text"]
    c.call_tool("get-resource-reference", {"resourceType": "Text", "resourceId": 1})
    c.call_tool("get-tiny-image")
    c.call_tool("get-structured-content", {"location": "New York"})
    c.call_tool("get-annotated-message", {"messageType": "success", "includeImage": True})
    c.call_tool("get-resource-links", {"count": 3})
    c.call_tool("get-sum", {"a": "two", "b": 40})  # an input validation error, answered as isError

    c.list_all("resources/list", "resources")
    c.list_all("resources/templates/list", "resourceTemplates")
    c.request("resources/read", {"uri": DOC_URI})
    c.request("resources/read", {"uri": TEXT_URI})
    c.request("resources/read", {"uri": "demo://resource/dynamic/blob/2"})
    c.request("resources/read", {"uri": "demo://resource/dynamic/text/0"})  # an error
    c.request("logging/setLevel", {"level": "debug"})
    c.request("resources/subscribe", {"uri": TEXT_URI}, until=notified("notifications/message"))
    # Starts a 5 s timer that sends resources/updated for the subscribed URI, and one at once.
    c.call_tool("toggle-subscriber-updates", until=notified("notifications/resources/updated"))
    c.call_tool("toggle-subscriber-updates")
    c.request("resources/unsubscribe", {"uri": TEXT_URI}, until=notified("notifications/message"))

    c.list_all("prompts/list", "prompts")
    c.request("prompts/get", {"name": "simple-prompt"})
    c.request("prompts/get", {"name": "args-prompt", "arguments": {"city": "Lyon", "state": "Rhône"}})
    c.request("prompts/get", {"name": "completable-prompt", "arguments": {"department": "Sales", "name": "Eve"}})
    c.request("prompts/get", {"name": "resource-prompt", "arguments": {"resourceType": "Blob", "resourceId": "3"}})
    c.request("prompts/get", {"name": "no-such-prompt"})
    prompt = {"type": "ref/prompt", "name": "completable-prompt"}
    c.request("completion/complete", {"ref": prompt, "argument": {"name": "department", "value": "S"}})
    c.request(
        "completion/complete",
        {"ref": prompt, "argument": {"name": "name", "value": ""}, "context": {"arguments": {"department": "Sales"}}},
    )
    template = {"type": "ref/resource", "uri": "demo://resource/dynamic/text/{resourceId}"}
    c.request("completion/complete", {"ref": template, "argument": {"name": "resourceId", "value": "4"}})
    c.request("logging/setLevel", {"level": "error"})
    c.request("ping")


@pytest.mark.parametrize("config", ["no-policy", "allow-all"])
def test_npm_reference_server_transcript(
    guard_cmd: list[str], env: dict[str, str], tmp_path: Path, config: str
) -> None:
    server = node_everything()
    direct = run_direct("node", server, node_scenario, env)
    guarded = run(guarded_argv(guard_cmd, config, tmp_path, server), node_scenario, env)

    assert direct.returncode == 0
    assert guarded.returncode == 0
    assert len(direct.lines) > 50
    assert_same_lines([normalise_node(x) for x in direct.lines], [normalise_node(x) for x in guarded.lines])
    # The guard says its piece before it starts the server, which then logs what it logs directly.
    assert without_start_line(guarded.stderr) == (no_policy_line(env) if config == "no-policy" else "") + direct.stderr


# --- tests/servers/everything_server.py ------------------------------------------------------------------

STATIC_URI = "everything://static/hello"
# 2026-07-28 input_required results carry requestState: a token the server seals with a fresh
# random key and nonce each time, so it differs between any two sessions. It is opaque to the
# guard, which relays it either way; the client sends back whichever it received.
_REQUEST_STATE = re.compile(rb'"requestState":"[^"]*"')


def normalise_py(line: bytes) -> bytes:
    return _REQUEST_STATE.sub(b'"requestState":"<sealed>"', line)


def everything(*args: str) -> list[str]:
    return [PYTHON, str(EVERYTHING_SERVER), "--tools", "6", "--page-size", "4", *args]


def common_steps(c: ScriptedClient, *, modern: bool) -> None:
    """What both eras share: progress, sampling/elicitation/roots, resources, prompts, completion."""
    tools = c.list_all("tools/list", "tools")
    assert len(tools) == 20  # 14 tools + 6 extra, over 5 pages
    c.call_tool("progress", {"steps": 3}, meta={"progressToken": "p-1"}, until=notified("notifications/progress", 3))
    c.call_tool("progress", {"steps": 2})  # no token, no notifications
    elicited = c.call_tool("elicit", {"question": "Proceed?"})
    assert elicited["result"]["content"][0]["text"] == "accepted: confirm=True note=''"
    sampled = c.call_tool("sample", {"prompt": "What is 6 x 7?"})
    assert sampled["result"]["content"][0]["text"] == "scripted-model-1: Scripted answer: 42."
    rooted = c.call_tool("roots")
    assert rooted["result"]["structuredContent"] == {"result": ["file:///tmp/mcp-guard-transcripts"]}
    c.call_tool("image")
    c.call_tool("fail", {"message": "on purpose"})

    c.list_all("resources/list", "resources")
    c.list_all("resources/templates/list", "resourceTemplates")
    c.request("resources/read", {"uri": STATIC_URI})
    c.request("resources/read", {"uri": "everything://static/blob"})
    c.request("resources/read", {"uri": "everything://items/beta"})
    c.request("resources/read", {"uri": "everything://items/omega"})  # an error
    c.list_all("prompts/list", "prompts")
    c.request("prompts/get", {"name": "greet", "arguments": {"name": "Ada"}})
    c.request("prompts/get", {"name": "review", "arguments": {"code": "print('hi')\n", "language": "python"}})
    greet = {"type": "ref/prompt", "name": "greet"}
    c.request("completion/complete", {"ref": greet, "argument": {"name": "name", "value": "A"}})
    template = {"type": "ref/resource", "uri": "everything://items/{item_id}"}
    c.request("completion/complete", {"ref": template, "argument": {"name": "item_id", "value": "g"}})
    if not modern:
        c.request("ping")


def handshake_scenario(c: ScriptedClient) -> None:
    c.request(
        "initialize",
        {
            "protocolVersion": HANDSHAKE_VERSION,
            "capabilities": CAPABILITIES,
            "clientInfo": {"name": "t", "version": "1"},
        },
    )
    c.notify("notifications/initialized")
    c.request("logging/setLevel", {"level": "debug"})
    c.call_tool("log", {"message": "hello", "level": "warning"}, until=notified("notifications/message"))
    c.request("logging/setLevel", {"level": "error"})
    c.call_tool("log", {"message": "filtered", "level": "info"})
    common_steps(c, modern=False)
    c.request("resources/subscribe", {"uri": STATIC_URI})
    changed = all_of(notified("notifications/tools/list_changed"), notified("notifications/resources/updated"))
    c.call_tool("notify_changes", until=changed)
    assert "dynamic_0" in {tool["name"] for tool in c.list_all("tools/list", "tools")}
    c.request("resources/unsubscribe", {"uri": STATIC_URI})
    c.call_tool("notify_changes", until=notified("notifications/tools/list_changed"))
    c.list_all("tools/list", "tools")


MODERN_CLIENT_META: dict[str, Any] = {**MODERN_META, "io.modelcontextprotocol/clientCapabilities": CAPABILITIES}


def modern_scenario(c: ScriptedClient) -> None:
    c.request("server/discover")
    c.call_tool(
        "log",
        {"message": "hello", "level": "warning"},
        meta={"io.modelcontextprotocol/logLevel": "info"},
        until=notified("notifications/message"),
    )
    c.call_tool("log", {"message": "not opted in", "level": "warning"})
    common_steps(c, modern=True)
    # Change notifications travel on a subscriptions/listen stream, open until the session ends.
    listen = {
        "jsonrpc": "2.0",
        "id": "listen-1",
        "method": "subscriptions/listen",
        "params": {
            "_meta": MODERN_CLIENT_META,
            "notifications": {"toolsListChanged": True, "resourceSubscriptions": [STATIC_URI]},
        },
    }
    since = len(c.messages)
    c.send(listen)
    c.pump(notified("notifications/subscriptions/acknowledged"), since, 15)
    changed = all_of(notified("notifications/tools/list_changed"), notified("notifications/resources/updated"))
    c.call_tool("notify_changes", until=changed)
    assert "dynamic_0" in {tool["name"] for tool in c.list_all("tools/list", "tools")}


SCENARIOS: dict[str, tuple[Scenario, dict[str, Any] | None]] = {
    "handshake": (handshake_scenario, None),
    "modern": (modern_scenario, MODERN_CLIENT_META),
}


@pytest.mark.parametrize("era", sorted(SCENARIOS))
@pytest.mark.parametrize("config", ["no-policy", "allow-all"])
def test_everything_server_transcript(
    guard_cmd: list[str], env: dict[str, str], tmp_path: Path, era: str, config: str
) -> None:
    scenario, meta = SCENARIOS[era]
    direct = run_direct(era, everything(), scenario, env, meta)
    guarded = run(guarded_argv(guard_cmd, config, tmp_path, everything()), scenario, env, meta)

    assert direct.returncode == 0
    assert guarded.returncode == 0
    assert_same_lines([normalise_py(x) for x in direct.lines], [normalise_py(x) for x in guarded.lines])
    # The guard says its piece before it starts the server, which then logs what it logs directly.
    assert without_start_line(guarded.stderr) == (no_policy_line(env) if config == "no-policy" else "") + direct.stderr


# --- the same, under a policy that hides tools -----------------------------------------------------------

HIDE_POLICY: dict[str, Any] = {"version": "1", "default": "allow", "hide": ["tool_3", "dynamic_*"]}
HIDDEN = {"tool_3", "dynamic_0", "dynamic_1"}
ABSENT = "tool_9"  # a tool the server does not have: what the direct session calls where the guarded one calls tool_3


def encode(message: Any) -> bytes:
    """The guard's encoding of a frame it rewrites (and the Python SDK's: compact, UTF-8 as is)."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def hide_scenario(unknown: str, modern: bool) -> Scenario:
    def scenario(c: ScriptedClient) -> None:
        if modern:
            c.request("server/discover")
        else:
            c.request(
                "initialize",
                {"protocolVersion": HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
            )
            c.notify("notifications/initialized")
        c.list_all("tools/list", "tools")
        c.call_tool(unknown, {})
        c.call_tool("tool_2", {})
        if modern:
            since = len(c.messages)
            c.send(
                {
                    "jsonrpc": "2.0",
                    "id": "listen-1",
                    "method": "subscriptions/listen",
                    "params": {"_meta": MODERN_CLIENT_META, "notifications": {"toolsListChanged": True}},
                }
            )
            c.pump(notified("notifications/subscriptions/acknowledged"), since, 15)
        for _ in range(2):  # each call adds dynamic_N, announced by list_changed; then the client re-fetches
            c.call_tool("notify_changes", until=notified("notifications/tools/list_changed"))
            c.list_all("tools/list", "tools")

    return scenario


@pytest.mark.parametrize("era", ["handshake", "modern"])
def test_hidden_tools_stay_hidden_on_every_page_and_after_list_changed(
    guard_cmd: list[str], env: dict[str, str], tmp_path: Path, era: str
) -> None:
    modern = era == "modern"
    meta = MODERN_CLIENT_META if modern else None
    direct = run(everything(), hide_scenario(ABSENT, modern), env, meta)
    policy = write_policy(tmp_path, HIDE_POLICY)
    guard = [*guard_cmd, "--policy", str(policy), "--", *everything()]
    guarded = run(guard, hide_scenario("tool_3", modern), env, meta)
    assert (direct.returncode, guarded.returncode) == (0, 0)
    assert len(direct.lines) == len(guarded.lines)

    seen_hidden: set[str] = set()
    pages = 0
    for direct_line, guarded_line in zip(direct.lines, guarded.lines, strict=True):
        message = json.loads(direct_line)
        result = message.get("result") if isinstance(message, dict) else None
        if isinstance(result, dict) and "tools" in result:
            pages += 1
            # The server's bytes are in the same canonical form the guard writes, so "identical
            # apart from the hidden tools" can be checked byte for byte.
            assert encode(message) == direct_line
            names = {tool["name"] for tool in result["tools"]}
            seen_hidden |= names & HIDDEN
            kept = [tool for tool in result["tools"] if tool["name"] not in HIDDEN]
            expected = (
                direct_line
                if len(kept) == len(result["tools"])
                else encode({**message, "result": {**result, "tools": kept}})
            )
            assert guarded_line == expected, f"page {pages}: {guarded_line[:300]!r}"
        elif ABSENT.encode() in direct_line and b"Unknown tool" in direct_line:
            # For a hidden tool the guard answers what this server answers for a tool it lacks; the
            # same JSON, though not the same bytes (the SDK writes "text" before "type").
            assert json.loads(guarded_line) == json.loads(direct_line.replace(ABSENT.encode(), b"tool_3"))
        else:
            assert guarded_line == direct_line
    assert seen_hidden == HIDDEN  # every hidden tool was really on some page, and removed there
    assert pages == 5 + 6 + 6  # 20, 21 and 22 tools, 4 a page
