"""Prompts and resources in the sans-IO session: what is judged, what passes untouched, and at what cost."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from test_session import Wire

from mcp_guard.actions import ToUpstream
from mcp_guard.approval.flow import ApprovalSettings
from mcp_guard.audit import AuditLog
from mcp_guard.pipeline import Pipeline

Json = dict[str, Any]
SECTIONS: Json = {
    "version": "1",
    "default": "allow",
    "prompts": {"hide": ["debug_*"], "rules": {"fetch": {"action": "deny", "reason": "Use the fetch tool."}}},
    "resources": {"hide": ["secret://*"], "rules": {"file:///etc/*": {"action": "deny"}}},
}


def request(ident: int, method: str, params: Json) -> Json:
    return {"jsonrpc": "2.0", "id": ident, "method": method, "params": params}


def line(message: Any) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def upstream_soon(wire: Wire, count: int) -> list[Any]:
    """What the session sent upstream, once it is ``count`` messages (a probe is sent by a job)."""
    for _ in range(500):
        if len(wire.upstream) >= count:
            break
        threading.Event().wait(0.01)
    return list(wire.upstream)


def test_without_sections_nothing_is_judged_and_frames_pass_as_they_came(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wire = Wire(tmp_path, {"version": "1", "default": "deny", "hide": ["debug_*"], "tools": {}})

    def judged(*_: Any) -> Any:
        raise AssertionError("a prompt or resource request was judged")

    monkeypatch.setattr(Pipeline, "judge_call", judged)
    session = wire.session
    for ident, (method, params) in enumerate(
        [
            ("prompts/get", {"name": "debug_dump"}),
            ("resources/read", {"uri": "file:///etc/passwd"}),
            ("resources/subscribe", {"uri": "file:///etc/passwd"}),
            ("prompts/list", {}),
            ("resources/list", {}),
            ("resources/templates/list", {}),
        ]
    ):
        frame = line(request(ident, method, params))
        assert session.from_client(frame) == [ToUpstream(frame)]
        assert session.from_client(frame)[0].frame is not frame  # the second is refused: the id is in flight
    listing = line({"jsonrpc": "2.0", "id": 3, "result": {"prompts": [{"name": "debug_dump"}]}})
    [answer] = session.from_upstream(listing)
    assert answer.frame is listing
    batch = line([request(10, "prompts/get", {"name": "debug_dump"}), request(11, "resources/read", {"uri": "x:y"})])
    assert session.from_client(batch) == [ToUpstream(batch)]


def test_refusals_and_hidden_requests(tmp_path: Path) -> None:
    wire = Wire(tmp_path, SECTIONS)
    wire.send(request(1, "prompts/get", {"name": "fetch", "arguments": {"url": "https://x"}}))
    wire.send(request(2, "resources/read", {"uri": "file:///etc/passwd"}))
    wire.send(request(3, "resources/subscribe", {"uri": "file:///etc/shadow"}))
    wire.send(request(4, "prompts/get", {"name": "summarise"}))
    wire.send(request(5, "resources/unsubscribe", {"uri": "file:///etc/shadow"}))  # ending one is harmless
    wire.send({"jsonrpc": "2.0", "method": "prompts/get", "params": {"name": "fetch"}})  # judged, never answered
    assert [m["id"] for m in wire.upstream] == [4, 5]
    assert [(m["id"], m["error"]["code"]) for m in wire.client] == [(1, -32003), (2, -32003), (3, -32003)]
    assert wire.client[2]["error"]["message"] == (
        "mcp-guard refused this resources/subscribe of the resource 'file:///etc/shadow' (policy rule "
        "resources.rules[\"file:///etc/*\"].action): The policy denies the resource 'file:///etc/shadow'. The "
        "request was not sent to the server."
    )


def test_malformed_requests_are_refused_not_forwarded(tmp_path: Path) -> None:
    wire = Wire(tmp_path, SECTIONS)
    wire.send(request(1, "prompts/get", {"name": 3}))
    wire.send(request(2, "resources/read", {"url": "file:///etc/passwd"}))
    wire.send(request(3, "prompts/get", {"name": "x", "arguments": ["a"]}))
    assert wire.upstream == []
    assert [m["error"]["message"] for m in wire.client] == [
        "mcp-guard: prompts/get params.name must be a string",
        "mcp-guard: resources/read params.uri must be a string",
        "mcp-guard: prompts/get params.arguments must be an object",
    ]


def test_a_batch_is_judged_element_by_element(tmp_path: Path) -> None:
    wire = Wire(tmp_path, SECTIONS)
    wire.send(
        [
            request(1, "prompts/get", {"name": "fetch"}),
            request(2, "prompts/get", {"name": "summarise"}),
            request(3, "resources/read", {"uri": "file:///etc/passwd"}),
        ]
    )
    assert wire.upstream == [[request(2, "prompts/get", {"name": "summarise"})]]
    [answers] = wire.client
    assert [(a["id"], a["error"]["code"]) for a in answers] == [(1, -32003), (3, -32003)]


def test_hidden_ones_are_answered_as_the_server_answers_unknown_ones(tmp_path: Path) -> None:
    wire = Wire(tmp_path, SECTIONS)
    wire.send(request(1, "prompts/get", {"name": "debug_dump"}))
    [probe] = upstream_soon(wire, 1)
    assert probe["method"] == "prompts/get" and probe["params"]["name"].startswith("mcp-guard-unknown-tool-")
    made_up = probe["params"]["name"]
    wire.answer(
        {"jsonrpc": "2.0", "id": probe["id"], "error": {"code": -32602, "message": f"Prompt {made_up} not found"}}
    )
    wire.wait_jobs()
    assert wire.client == [
        {"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "Prompt debug_dump not found"}}
    ]
    wire.send(request(2, "prompts/get", {"name": "debug_state"}))  # learnt once
    assert wire.client[-1] == {
        "jsonrpc": "2.0",
        "id": 2,
        "error": {"code": -32602, "message": "Prompt debug_state not found"},
    }
    wire.send(request(3, "resources/read", {"uri": "secret://key"}))
    probe = upstream_soon(wire, 2)[-1]
    assert probe["method"] == "resources/read" and probe["params"]["uri"].startswith("mcp-guard-unknown-resource://")
    wire.answer({"jsonrpc": "2.0", "id": probe["id"], "error": {"code": -32002, "message": "Resource not found"}})
    wire.wait_jobs()
    assert wire.client[-1] == {"jsonrpc": "2.0", "id": 3, "error": {"code": -32002, "message": "Resource not found"}}
    assert len(wire.upstream) == 2  # the hidden names never reached the server


@pytest.mark.parametrize(
    ("method", "field", "key", "entries", "kept"),
    [
        ("prompts/list", "prompts", "name", ["fetch", "debug_dump", "summarise"], ["fetch", "summarise"]),
        ("resources/list", "resources", "uri", ["file:///a", "secret://x", "https://b"], ["file:///a", "https://b"]),
        (
            "resources/templates/list",
            "resourceTemplates",
            "uriTemplate",
            ["secret://{k}", "https://{p}"],
            ["https://{p}"],
        ),
    ],
)
def test_listings_lose_what_is_hidden_and_keep_everything_else(
    tmp_path: Path, method: str, field: str, key: str, entries: list[str], kept: list[str]
) -> None:
    wire = Wire(tmp_path, SECTIONS)
    for page, cursor in ((1, "next"), (2, None)):
        wire.send(request(page, method, {"cursor": "next"} if cursor is None else {}))
        result: Json = {
            field: [{key: e, "description": "d"} for e in entries],
            "resultType": "complete",
            "_meta": {"m": 1},
        }
        if cursor is not None:
            result["nextCursor"] = cursor
        wire.answer({"jsonrpc": "2.0", "id": page, "result": result})
        answer = wire.client[-1]["result"]
        assert [e[key] for e in answer[field]] == kept
        assert {k: v for k, v in answer.items() if k != field} == {k: v for k, v in result.items() if k != field}


def test_the_audit_says_what_kind(tmp_path: Path) -> None:
    wire = Wire(tmp_path, SECTIONS)
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path, warn=lambda m: None)
    wire.session._audit = audit
    wire.send(request(1, "prompts/get", {"name": "fetch", "arguments": {"url": "u"}}))
    wire.send(request(2, "resources/read", {"uri": "https://example.com/"}))
    wire.answer({"jsonrpc": "2.0", "id": 2, "result": {"contents": []}})
    audit.close()
    records = [json.loads(x) for x in path.read_text().splitlines()]
    assert [(r["kind"], r["tool"], r["decision"], r["status"]) for r in records] == [
        ("prompt", "fetch", "refused", "deny"),
        ("resource", "https://example.com/", "allowed", "ok"),
    ]
    assert records[0]["arg_keys"] == ["url"]


def test_an_approved_prompt_is_asked_for_under_its_kind(tmp_path: Path) -> None:
    policy = {"version": "1", "default": "allow", "prompts": {"rules": {"fetch": {"action": "approve"}}}}
    wire = Wire(tmp_path, policy, ApprovalSettings(channels=("client",), timeout_s=5))
    init = {
        "protocolVersion": "2025-06-18",
        "capabilities": {"elicitation": {}},
        "clientInfo": {"name": "t", "version": "1"},
    }
    wire.send(request(0, "initialize", init))
    wire.answer({"jsonrpc": "2.0", "id": 0, "result": {"protocolVersion": "2025-06-18", "capabilities": {}}})
    wire.send(request(7, "prompts/get", {"name": "fetch", "arguments": {"url": "https://x"}}))
    question = None
    for _ in range(300):
        question = next((m for m in wire.client if m.get("method") == "elicitation/create"), None)
        if question is not None:
            break
        threading.Event().wait(0.01)
    assert question is not None and "prompt:fetch" in question["params"]["message"]
    assert [m["id"] for m in wire.upstream] == [0]
    wire.send({"jsonrpc": "2.0", "id": question["id"], "result": {"action": "accept", "content": {"approve": True}}})
    wire.wait_jobs()
    assert wire.upstream[-1] == request(7, "prompts/get", {"name": "fetch", "arguments": {"url": "https://x"}})


def test_an_approved_prompts_own_input_round_is_bound_to_the_prompt(tmp_path: Path) -> None:
    """A server asking for input after a 2026-07-28 approval: the guard's state names what was approved."""
    from mcp_guard.approval.desk import ApprovalDesk
    from mcp_guard.calls import Call

    desk = ApprovalDesk(Wire(tmp_path, SECTIONS).session, ApprovalSettings(channels=("client",)))
    call = Call("fetch", "prompts.rules.fetch.action", None, "approved", {"url": "u"}, 0.0, 0.0, kind="prompt")
    message: Json = {"jsonrpc": "2.0", "id": 1, "result": {"resultType": "input_required", "requestState": "s"}}
    wrapped = json.loads(desk.wrap_upstream_state(message, call) or b"null")
    state = wrapped["result"]["requestState"]
    body, _ = desk.settings.signer.redeem(state, "prompt:fetch", {"url": "u"})
    assert body is not None and body["i"] == "s"
    again = desk.settings.signer.issue("prompt:fetch", {"url": "u"}, approved=True)
    assert desk.settings.signer.redeem(again, "fetch", {"url": "u"})[0] is None  # never the tool 'fetch'


def test_monitor_mode_reports_and_relays(tmp_path: Path) -> None:
    wire = Wire(tmp_path, {**SECTIONS, "mode": "monitor"})
    wire.send(request(1, "prompts/get", {"name": "fetch"}))
    wire.send(request(2, "prompts/get", {"name": "debug_dump"}))
    wire.send(request(3, "prompts/list", {}))
    wire.answer({"jsonrpc": "2.0", "id": 3, "result": {"prompts": [{"name": "debug_dump"}]}})
    assert [m["id"] for m in wire.upstream] == [1, 2, 3]
    assert wire.client == [{"jsonrpc": "2.0", "id": 3, "result": {"prompts": [{"name": "debug_dump"}]}}]
    assert wire.warnings == [
        "monitor: would refuse 'fetch' (prompts.rules.fetch.action): Use the fetch tool.",
        "monitor: would refuse 'debug_dump' (prompts.hide): Prompt 'debug_dump' is hidden by the policy.",
    ]


def test_each_method_learns_its_own_unknown_answer(tmp_path: Path) -> None:
    wire = Wire(tmp_path, SECTIONS)
    wire.send(request(1, "resources/subscribe", {"uri": "secret://a"}))
    probe = upstream_soon(wire, 1)[-1]
    assert probe["method"] == "resources/subscribe"
    wire.answer({"jsonrpc": "2.0", "id": probe["id"], "result": {}})
    wire.wait_jobs()
    wire.send(request(2, "resources/read", {"uri": "secret://a"}))
    probe = upstream_soon(wire, 2)[-1]
    assert probe["method"] == "resources/read"
    wire.answer(
        {"jsonrpc": "2.0", "id": probe["id"], "error": {"code": -32002, "message": f"{probe['params']['uri']}?"}}
    )
    wire.wait_jobs()
    assert wire.client == [
        {"jsonrpc": "2.0", "id": 1, "result": {}},
        {"jsonrpc": "2.0", "id": 2, "error": {"code": -32002, "message": "secret://a?"}},
    ]


def test_completion_does_not_reveal_a_hidden_prompt(tmp_path: Path) -> None:
    wire = Wire(tmp_path, SECTIONS)
    argument = {"name": "a", "value": "x"}
    wire.send(
        request(1, "completion/complete", {"ref": {"type": "ref/prompt", "name": "summarise"}, "argument": argument})
    )
    wire.send(
        request(2, "completion/complete", {"ref": {"type": "ref/prompt", "name": "debug_dump"}, "argument": argument})
    )
    sent = upstream_soon(wire, 2)
    assert sent[0]["id"] == 1  # not hidden: relayed as it came
    probe = sent[1]
    assert probe["method"] == "completion/complete" and probe["params"]["argument"] == argument
    made_up = probe["params"]["ref"]["name"]
    assert made_up.startswith("mcp-guard-unknown-tool-") and probe["params"]["ref"]["type"] == "ref/prompt"
    wire.answer(
        {"jsonrpc": "2.0", "id": probe["id"], "error": {"code": -32602, "message": f"Prompt {made_up} not found"}}
    )
    wire.wait_jobs()
    assert wire.client == [
        {"jsonrpc": "2.0", "id": 2, "error": {"code": -32602, "message": "Prompt debug_dump not found"}}
    ]
    ref = {"type": "ref/resource", "uri": "secret://{k}"}
    wire.send(request(3, "completion/complete", {"ref": ref, "argument": argument}))
    probe = upstream_soon(wire, 3)[-1]
    assert probe["params"]["ref"]["uri"].startswith("mcp-guard-unknown-resource://")
    wire.answer({"jsonrpc": "2.0", "id": probe["id"], "result": {"completion": {"values": []}}})
    wire.wait_jobs()
    assert wire.client[-1] == {"jsonrpc": "2.0", "id": 3, "result": {"completion": {"values": []}}}


@pytest.mark.parametrize(
    ("kind", "method", "params"),
    [
        ("prompt", "prompts/get", {"name": "fetch", "arguments": {"url": "u"}}),
        ("resource", "resources/read", {"uri": "file:///srv/notes.txt"}),
    ],
)
def test_a_call_approved_earlier_is_recorded_as_its_own_kind(
    tmp_path: Path, kind: str, method: str, params: Json
) -> None:
    """The retry after a 2026-07-28 approval, answering the server's own questions, is relayed as the prompt's or
    resource's call (its flow labels and audit line), never as a tool named 'prompt:fetch'."""
    from mcp_guard.pipeline import CallIn, Relay
    from mcp_guard.policy.decision import Approve

    wire = Wire(tmp_path, SECTIONS, ApprovalSettings(channels=("client",)))
    desk = wire.session.desk
    assert desk is not None
    name = params.get("name", params.get("uri"))
    arguments = params.get("arguments", {})
    state = desk.settings.signer.issue(f"{kind}:{name}", arguments, approved=True)
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
    sent = {**params, "requestState": state, "_meta": meta}
    message = {"jsonrpc": "2.0", "id": 5, "method": method, "params": sent}
    call = CallIn(5, name, arguments, sent, message, modern=True, kind=kind).for_approval()  # type: ignore[arg-type]
    verdict = desk._approval_retry(call, Approve("rule", "Ask."), state)
    assert isinstance(verdict, Relay)
    assert (verdict.record.kind, verdict.record.tool, verdict.record.decision) == (kind, name, "approved")
    assert verdict.forward is not None and "requestState" not in verdict.forward["params"]
