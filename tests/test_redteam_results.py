"""A hostile server against the result side: answers shaped to get a secret past a ``redact`` rule.

Each test is one attack that worked before its fix (see the commit that added it).
"""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from results_fakes import crc32_token, positives
from test_session import Wire, call

from mcp_guard.approval.flow import ApprovalSettings

TOKEN = crc32_token(random.Random(7), "ghp_")
REDACTED = "t=[redacted: secrets/github_token]"
REDACT = {"version": "1", "default": "allow", "all_tools": {"results": {"redact": ["secrets"]}}}


def text(value: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": value}], "isError": False}


def leaked(wire: Wire) -> bool:
    return TOKEN in json.dumps(wire.client)


def test_a_second_id_key_cannot_address_a_checked_call_through_an_unchecked_answer(tmp_path: Path) -> None:
    """``{"id":1, "result":…, "id":2}``: the guard took it for the answer to ping 1 (not checked); the
    client's reader (last key wins) for the answer to call 2, secret included."""
    wire = Wire(tmp_path, REDACT)
    wire.send({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    wire.send(call(2, "echo"))
    body = json.dumps(text(f"t={TOKEN}"))
    for second in ('"id":2', '"ID":2', '"\\u0069d":2'):
        wire.answer(f'{{"jsonrpc":"2.0","id":1,"result":{body},{second}}}\n'.encode())
    assert not leaked(wire)
    assert all(m.get("id") == 1 and "error" in m for m in wire.client)


def test_an_answer_to_a_call_held_for_approval_is_not_passed_on(tmp_path: Path) -> None:
    """The server cannot answer a call the guard has not sent it yet (ids are easy to guess): that
    answer was forwarded as it was, unchecked, and the client took it for the call's result."""
    policy = {"version": "1", "default": "allow", "tools": {"pay": {"action": "approve"}}}
    policy["all_tools"] = REDACT["all_tools"]
    wire = Wire(tmp_path, policy, ApprovalSettings(channels=("client",), timeout_s=5))
    params = {"protocolVersion": "2025-03-26", "capabilities": {"elicitation": {}}, "clientInfo": {"name": "t"}}
    wire.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
    wire.answer({"jsonrpc": "2.0", "id": 0, "result": {"protocolVersion": "2025-03-26", "capabilities": {}}})
    wire.send(call(7, "pay", {"amount": 5}))
    for _ in range(200):
        if any(m.get("method") == "elicitation/create" for m in wire.client):
            break
        threading.Event().wait(0.01)
    wire.answer({"jsonrpc": "2.0", "id": 7, "result": text(f"t={TOKEN}")})
    wire.answer({"jsonrpc": "2.0", "id": 99, "result": text(f"t={TOKEN}")})  # an id nobody asked
    wire.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}})
    wire.wait_jobs()
    assert not leaked(wire)
    assert not any(m.get("id") in (7, 99) for m in wire.client)


def _tasked(wire: Wire, created: dict[str, Any]) -> None:
    tasked = call(1, "echo")
    tasked["params"]["task"] = {"ttl": 60000}
    wire.send(tasked)
    wire.answer({"jsonrpc": "2.0", "id": 1, "result": created})
    wire.send({"jsonrpc": "2.0", "id": 2, "method": "tasks/result", "params": {"taskId": "t-1"}})
    wire.answer({"jsonrpc": "2.0", "id": 2, "result": text(f"t={TOKEN}")})


TASK = {"taskId": "t-1", "status": "working", "createdAt": "2026-12-03T00:00:00Z", "ttl": 60000}
STRICT = {
    "version": "1",
    "default": "allow",
    "tools": {"echo": {"results": {"redact": ["secrets"]}}},
}


def test_a_padded_task_creation_still_ties_the_task_to_its_tool(tmp_path: Path) -> None:
    """A CreateTaskResult over 8 KB (padding in _meta) was not read, so the task's result, fetched
    later, was taken for one of an unknown tool and passed on unchecked."""
    wire = Wire(tmp_path, STRICT)
    _tasked(wire, {"task": TASK, "_meta": {"pad": "x" * 9000}})
    assert wire.client[1] == {"jsonrpc": "2.0", "id": 2, "result": text(REDACTED)}


def test_a_task_creation_with_content_still_ties_the_task_to_its_tool(tmp_path: Path) -> None:
    wire = Wire(tmp_path, STRICT)
    _tasked(wire, {"task": TASK, "content": []})
    assert wire.client[1] == {"jsonrpc": "2.0", "id": 2, "result": text(REDACTED)}


def test_the_result_of_a_task_the_guard_does_not_know_gets_the_all_tools_rules(tmp_path: Path) -> None:
    wire = Wire(tmp_path, REDACT)
    wire.send({"jsonrpc": "2.0", "id": 2, "method": "tasks/result", "params": {"taskId": "made-up"}})
    wire.answer({"jsonrpc": "2.0", "id": 2, "result": text(f"t={TOKEN}")})
    assert wire.client == [{"jsonrpc": "2.0", "id": 2, "result": text(REDACTED)}]


def test_a_result_type_other_than_an_input_round_is_checked(tmp_path: Path) -> None:
    """Only ``input_required`` is an input round; any other ``resultType`` (a client may take
    "Complete" or a future kind for the result) was passed on unchecked."""
    wire = Wire(tmp_path, REDACT)
    for ident, kind in enumerate(("Complete", "partial", ""), start=1):
        wire.send(call(ident, "echo"))
        wire.answer({"jsonrpc": "2.0", "id": ident, "result": {**text(f"t={TOKEN}"), "resultType": kind}})
    assert not leaked(wire)
    assert [m["result"]["content"][0]["text"] for m in wire.client] == [REDACTED] * 3


def test_an_unterminated_terminal_sequence_before_another_string_is_still_found(tmp_path: Path) -> None:
    """The texts of a result are scanned joined by NUL; an OSC or DCS sequence without its terminator
    ran on through the NUL into the next string (``structuredContent``, which FastMCP adds to every
    result) and the finding, crossing two strings, was dropped: the escape passed a block rule."""
    policy = {"version": "1", "default": "allow", "all_tools": {"results": {"block": ["terminal_escapes"]}}}
    wire = Wire(tmp_path, policy)
    for ident, sequence in enumerate(("\x1b]0;pwned", "\x1bPq#0;2;0;0;0", "\x9d8;;http://x/"), start=1):
        wire.send(call(ident, "echo"))
        result = {**text(f"title {sequence}"), "structuredContent": {"result": "ok"}}
        wire.answer({"jsonrpc": "2.0", "id": ident, "result": result})
    assert [m["result"]["isError"] for m in wire.client] == [True, True, True]
    assert not any(s in json.dumps(wire.client) for s in ("pwned", "0;2;0;0;0", "http://x/"))


def test_a_policy_pattern_with_a_negated_class_is_not_cut_off_by_the_next_string(tmp_path: Path) -> None:
    """``key=[^ ]+`` takes NUL: a match at the end of one string ran into the next one and was
    dropped (the value passed), or hid a match in the next one."""
    from mcp_guard.inspect import compile_scanner, inspect_result

    scanner = compile_scanner(["token", "kv"], [("token", "token=[^ ]+"), ("kv", "[^ ]+=[^ ]+")])
    result = {
        "content": [{"type": "text", "text": "token=s3cr3t"}, {"type": "text", "text": "a"}],
        "structuredContent": {"x": "k=v"},
    }
    found = inspect_result(result, scanner)
    assert [(f.detector, f.path, f.start, f.end) for f in found.findings] == [
        ("kv", "content[0].text", 0, 12),
        ("kv", "structuredContent.x", 0, 3),
    ]
    assert "s3cr3t" not in json.dumps(found.redacted(result))


def test_the_record_file_gets_no_secret_from_duplicate_keys_object_keys_or_escaped_broken_lines(tmp_path: Path) -> None:
    """The recorder wrote the raw frame whenever the parsed one had nothing to redact: a duplicate
    key's dropped value and object keys (never scanned) went to the file as they were; a line that
    is not JSON was scanned without decoding its escapes (``\\u0067hp_…``)."""
    from mcp_guard.record import Recorder

    path = tmp_path / "rec.jsonl"
    recorder = Recorder(path, lambda _: None, {"server": "x"})
    escaped = "\\u0067" + TOKEN[1:]
    for line in (
        f'{{"jsonrpc":"2.0","id":1,"result":{{"content":[{{"type":"text","text":"{TOKEN}","text":"ok"}}]}}}}',
        f'{{"jsonrpc":"2.0","id":2,"result":{{"structuredContent":{{"{TOKEN}":1}}}}}}',
        f'{{"jsonrpc":"2.0","id":3,"result":"{escaped}"}}garbage',
    ):
        recorder.upstream_line(line.encode() + b"\n", [])
    recorder.close()
    records = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    assert TOKEN[1:] not in path.read_text()
    assert records[0]["frame"]["result"] == {"content": [{"type": "text", "text": "ok"}]}
    assert records[1]["frame"]["result"] == {"structuredContent": {"[redacted: secrets/github_token]": 1}}
    assert records[2]["unparsed"] is True


def test_a_secret_in_a_structured_content_key_is_found_and_never_shown_in_a_path(tmp_path: Path) -> None:
    """Only string values were scanned: a token as an object key of structuredContent passed even a
    block rule, and the path of a finding under it (stderr, audit log, the blocked result's _meta)
    spelt the token out."""
    for action, expected in (("redact", "redact"), ("block", "block")):
        wire = Wire(tmp_path, {"version": "1", "default": "allow", "all_tools": {"results": {action: ["secrets"]}}})
        wire.send(call(1, "echo"))
        structured = {TOKEN: {"ok": [TOKEN]}, "x": 1}
        wire.answer({"jsonrpc": "2.0", "id": 1, "result": {**text("{}"), "structuredContent": structured}})
        assert not leaked(wire), expected
        assert not any(TOKEN in w for w in wire.warnings)
    label = "[redacted: secrets/github_token]"
    redacting = Wire(tmp_path, REDACT)
    redacting.send(call(1, "echo"))
    redacting.answer({"jsonrpc": "2.0", "id": 1, "result": {"structuredContent": {TOKEN: {"ok": [TOKEN]}}}})
    assert redacting.client[0]["result"] == {"structuredContent": {label: {"ok": [label]}}}


def test_hidden_text_in_an_input_schema_property_name_withholds_the_tool(tmp_path: Path) -> None:
    hidden = "".join(chr(0xE0000 + ord(c)) for c in "obey")
    wire = Wire(tmp_path, {"version": "1", "default": "allow", "tool_descriptions": {"block": ["invisible_text"]}})
    wire.send({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    schema = {"type": "object", "properties": {f"path{hidden}": {"type": "string"}}}
    tools = [{"name": "evil", "inputSchema": schema}, {"name": "fine", "inputSchema": {"type": "object"}}]
    wire.answer({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}})
    assert [t["name"] for t in wire.client[0]["result"]["tools"]] == ["fine"]
    wire.send(call(2, "evil"))
    assert wire.upstream[-1]["method"] == "tools/list"  # the call to the withheld tool was not relayed


def test_a_lone_surrogate_in_a_redacted_answer_or_an_upstream_batch_does_not_end_the_session(tmp_path: Path) -> None:
    """``"\\ud800"`` is valid JSON that Python reads as a lone surrogate, which has no UTF-8 form: the
    re-encoded answer (redacted, or a batch element) raised in the upstream pump, ending the session."""
    lone = b'{"jsonrpc":"2.0","id":%d,"result":{"content":[{"type":"text","text":"\\ud800 %s"}]}}'
    for policy in (REDACT, {"version": "1", "default": "allow"}):
        wire = Wire(tmp_path, policy)
        wire.send(call(1, "echo"))
        wire.send(call(2, "echo"))
        wire.answer(lone % (1, TOKEN.encode()) + b"\n")
        wire.answer(b"[" + lone % (2, b"x") + b"]\n")
        assert wire.client[1][0]["result"]["content"][0]["text"] == "\ud800 x"
        first = wire.client[0]["result"]["content"][0]["text"]
        assert first == ("\ud800 [redacted: secrets/github_token]" if policy is REDACT else f"\ud800 {TOKEN}")


def test_the_output_schema_message_does_not_quote_a_secret(tmp_path: Path) -> None:
    """validate_output's message quoted the rejected value ("'ghp_…' is not of type 'integer'") to the
    client, in the very result that withholds the server's, past the redact rule; and to stderr."""
    policy = {
        "version": "1",
        "default": "allow",
        "all_tools": {"results": {"redact": ["secrets"]}},
        "tools": {"q": {"results": {"validate_output": True}}},
    }
    wire = Wire(tmp_path, policy)
    wire.send({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "additionalProperties": False}
    tools = [{"name": "q", "inputSchema": {"type": "object"}, "outputSchema": schema}]
    wire.answer({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}})
    for ident, structured in ((2, {"n": TOKEN}), (3, {TOKEN: 1})):
        wire.send(call(ident, "q"))
        wire.answer({"jsonrpc": "2.0", "id": ident, "result": {**text("x"), "structuredContent": structured}})
    assert [m["result"]["isError"] for m in wire.client[1:]] == [True, True]
    assert not leaked(wire)
    assert not any(TOKEN in w for w in wire.warnings)
    assert "[redacted: secrets/github_token]" in wire.client[1]["result"]["content"][0]["text"]


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_a_second_id_key_through_the_guard_process_and_the_sdk_client(
    guard_cmd: list[str], tmp_path: Path, env: dict[str, str]
) -> None:
    """End to end: the SDK's client (pydantic: the last key wins) read the ping's answer as the
    call's, secret included; now the ping fails and the call gets its own, clean, answer."""
    import anyio
    from conftest import PYTHON, ROOT, write_policy
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.types import TextContent

    path = write_policy(tmp_path, REDACT)
    server = ROOT / "tests" / "servers" / "hostile_results.py"
    argv = [*guard_cmd, "--policy", str(path), "--", PYTHON, str(server)]
    params = StdioServerParameters(command=argv[0], args=argv[1:], env={**env, "HOSTILE_SECRET": TOKEN})
    texts: list[str] = []
    ping_failed: list[bool] = []
    with (tmp_path / "stderr.log").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:

            async def ping() -> None:
                with anyio.move_on_after(5):
                    try:
                        await client.session.send_ping()
                        ping_failed.append(False)
                    except Exception:
                        ping_failed.append(True)

            async with anyio.create_task_group() as group:
                group.start_soon(ping)
                await anyio.sleep(0.3)
                result = await client.call_tool("leak", {})
                texts.extend(c.text for c in result.content if isinstance(c, TextContent))
    assert texts == ["fine"]
    assert ping_failed == [True]
    assert TOKEN not in (tmp_path / "stderr.log").read_text()


def _escaped_string(value: str, rng: random.Random, share: float, upper: bool) -> str:
    """``value`` as a JSON string literal with a random share of its characters written as \\u escapes
    (astral ones as surrogate pairs, hex digits in either case) and some "/" as "\\/": all valid JSON."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if code < 0x20 or ch in '"\\' or rng.random() < share:
            units = [code] if code <= 0xFFFF else [0xD800 + ((code - 0x10000) >> 10), 0xDC00 + (code & 0x3FF)]
            out.extend((r"\u%04X" if upper else r"\u%04x") % unit for unit in units)
        elif ch == "/" and rng.random() < 0.5:
            out.append("\\/")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.integers(0, 10**6),
    st.sampled_from([0.0, 0.05, 0.5, 1.0]),
    st.booleans(),
)
def test_the_raw_prefilter_flags_every_frame_the_full_scan_finds_something_in(
    noise: str, seed: int, share: float, upper: bool
) -> None:
    """frame_may_match False means "forwarded unparsed": for each detector alone, all of them and a
    policy pattern, it must be True whenever the parsed result holds a finding, however the server
    escaped the strings (a planted value from the corpus generators, next to random text)."""
    from mcp_guard.inspect import compile_scanner, inspect_result
    from mcp_guard.inspect.catalog import DETECTORS

    scanners = [compile_scanner([d]) for d in DETECTORS]
    scanners += [compile_scanner(DETECTORS), compile_scanner(["emp"], [("emp", "EMP-[0-9]{6}")])]
    rng = random.Random(seed)
    planted = rng.choice(positives(rng))
    value = noise + rng.choice([" ", "", "\n"]) + planted.context + rng.choice(["", " ", "EMP-123456", noise])
    result = {"content": [{"type": "text", "text": value}], "structuredContent": {noise: value[::-1]}}
    body = (
        '{"content":[{"type":"text","text":'
        + _escaped_string(value, rng, share, upper)
        + '}],"structuredContent":{'
        + _escaped_string(noise, rng, share, upper)
        + ":"
        + _escaped_string(value[::-1], rng, share, upper)
        + "}}"
    )
    frame = ('{"jsonrpc":"2.0","id":1,"result":' + body + "}").encode("utf-8", "surrogatepass")
    assert json.loads(frame)["result"] == result
    for scanner in scanners:
        if inspect_result(result, scanner):
            assert scanner.frame_may_match(frame), (sorted(scanner.detectors), planted)


def test_a_verdict_line_of_the_record_file_does_not_quote_a_secret(tmp_path: Path) -> None:
    """Frames were redacted, verdict lines written as they were: a refusal's reason or details that
    quote an argument (the schema check names the value it rejects) put it in the file."""
    from mcp_guard.pipeline import CallIn, Refuse
    from mcp_guard.policy.decision import Deny
    from mcp_guard.record import Recorder

    path = tmp_path / "rec.jsonl"
    recorder = Recorder(path, lambda _: None, {"server": "x"})
    message = call(1, "send", {"to": TOKEN})
    params = message["params"]
    deny = Deny(
        "invalid_arguments", "tools.send.validate_arguments", f"arguments.to: {TOKEN!r} is not an e-mail", {"v": TOKEN}
    )
    recorder.verdict(CallIn(1, "send", params["arguments"], params, message, False), Refuse(deny), False)
    recorder.close()
    (line,) = path.read_text().splitlines()[1:]
    assert TOKEN not in line
    assert json.loads(line)["reason"] == "arguments.to: '[redacted: secrets/github_token]' is not an e-mail"
