# ruff: noqa: E501 (hostile frames are easiest to read on one line each)
"""The session without I/O: frames in, actions out, in process (milliseconds per test).

Each test feeds the session client and upstream frames and checks exactly what it asks the relay
to send where. Jobs (held calls) run on a real thread here, as on the relay's pool.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from mcp_guard.actions import Action, Start, ToClient, ToUpstream
from mcp_guard.approval.flow import ApprovalSettings
from mcp_guard.judge import Judge
from mcp_guard.limits.memory import MemoryLimiter
from mcp_guard.pipeline import Snapshot
from mcp_guard.policy.engine import Engine
from mcp_guard.policy.load import load_policy
from mcp_guard.session import Session

Json = dict[str, Any]


class Wire:
    """A session and everything it asked to send, per side; jobs run on threads like the relay's."""

    def __init__(self, tmp_path: Path, policy: Json, approvals: ApprovalSettings | None = None) -> None:
        path = tmp_path / "policy.json"
        path.write_text(json.dumps(policy))
        engine = Engine(load_policy(path))
        self.limiter = MemoryLimiter()
        self.warnings: list[str] = []
        self.session = Session(Judge(engine, self.limiter), Snapshot(engine), self.warnings.append, approvals=approvals)
        self.client: list[Any] = []
        self.upstream: list[Any] = []
        self.raw_upstream: list[bytes] = []
        self._lock = threading.Lock()
        self.jobs: list[threading.Thread] = []

    def carry(self, actions: Sequence[Action]) -> None:
        for action in actions:
            if isinstance(action, ToClient):
                with self._lock:
                    self.client.append(json.loads(action.frame))
            elif isinstance(action, ToUpstream):
                with self._lock:
                    self.upstream.append(json.loads(action.frame))
                    self.raw_upstream.append(action.frame)
            elif isinstance(action, Start):
                thread = threading.Thread(target=action.job.run, args=(self.carry,), daemon=True)
                self.jobs.append(thread)
                thread.start()

    def send(self, frame: Json | list[Any] | bytes) -> None:
        line = frame if isinstance(frame, bytes) else json.dumps(frame).encode() + b"\n"
        self.carry(self.session.from_client(line))

    def answer(self, frame: Json | list[Any] | bytes) -> None:
        line = frame if isinstance(frame, bytes) else json.dumps(frame, separators=(",", ":")).encode() + b"\n"
        self.carry(self.session.from_upstream(line))

    def wait_jobs(self) -> None:
        for thread in self.jobs:
            thread.join(5)
            assert not thread.is_alive()


def call(ident: Any, name: str, arguments: Json | None = None) -> Json:
    return {
        "jsonrpc": "2.0",
        "id": ident,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments or {}},
    }


def ok(ident: Any, text: str = "done", is_error: bool = False) -> Json:
    return {"jsonrpc": "2.0", "id": ident, "result": {"content": [{"type": "text", "text": text}], "isError": is_error}}


LIMITED = {
    "version": "1",
    "default": "deny",
    "tools": {
        "pay": {"limits": [{"counter": "pay", "window": "hour", "max": 1, "refund_on_error": True}]},
        "safe": {},
        "evil": {"action": "deny", "reason": "never"},
    },
}


def test_a_request_id_already_in_flight_is_refused_and_not_forwarded(tmp_path: Path) -> None:
    wire = Wire(tmp_path, LIMITED)
    wire.send(call(1, "safe"))
    wire.send(call(1, "evil"))
    assert [m["params"]["name"] for m in wire.upstream] == ["safe"]
    [error] = wire.client
    assert error["id"] == 1 and error["error"]["code"] == -32600
    assert "already in use" in error["error"]["message"]


def test_the_first_calls_error_does_not_refund_a_duplicate_ids_charge(tmp_path: Path) -> None:
    # Today's bug: the duplicate overwrote the first's record, and the first's error refunded it.
    wire = Wire(tmp_path, LIMITED)
    wire.send(call(1, "pay"))
    wire.send(call(1, "pay"))
    wire.answer(ok(1, is_error=True))  # refunds the first call: the slot is free again
    wire.send(call(2, "pay"))
    wire.send(call(3, "pay"))
    assert [m["id"] for m in wire.upstream] == [1, 2]
    assert wire.client[-1]["id"] == 3 and wire.client[-1]["result"]["isError"] is True


@pytest.mark.parametrize(
    "error_frame",
    [
        b'{"jsonrpc": "2.0", "id": 1, "result": {"content": [], "isError": true}}\n',
        b'{ "result" : { "isError" : true , "content" : [ ] } , "id" : 1 , "jsonrpc" : "2.0" }\n',
        b'{"id":1,"jsonrpc":"2.0","error":{"code":-32000,"message":"boom"}}\n',
        b'{"jsonrpc":"2.0","id":1,\n"error": {"message": "boom", "code": -1}}\n'.replace(b"\n", b" ", 1),
    ],
)
def test_errors_in_any_json_layout_are_refunded(tmp_path: Path, error_frame: bytes) -> None:
    wire = Wire(tmp_path, LIMITED)
    wire.send(call(1, "pay"))
    wire.answer(error_frame)
    wire.send(call(2, "pay"))
    assert [m["id"] for m in wire.upstream] == [1, 2]


def test_an_answer_that_only_mentions_iserror_is_not_a_refund(tmp_path: Path) -> None:
    wire = Wire(tmp_path, LIMITED)
    wire.send(call(1, "pay"))
    wire.answer(ok(1, text='"isError":true'))
    wire.send(call(2, "pay"))
    assert [m["id"] for m in wire.upstream] == [1]


def test_a_cancelled_call_is_never_refunded(tmp_path: Path) -> None:
    wire = Wire(tmp_path, LIMITED)
    wire.send(call(1, "pay"))
    wire.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}})
    wire.answer(ok(1, is_error=True))
    wire.send(call(2, "pay"))
    assert [m.get("id") for m in wire.upstream] == [1, None]  # the cancel went on; call 2 did not
    assert wire.client[-1]["id"] == 2 and wire.client[-1]["result"]["isError"] is True


def test_the_client_cannot_answer_the_guards_request_to_the_server(tmp_path: Path) -> None:
    policy = {"version": "1", "default": "allow", "hide": ["secret_tool"]}
    wire = Wire(tmp_path, policy)
    wire.send(call(1, "secret_tool"))  # the guard asks the server for its unknown-tool answer
    for _ in range(100):
        if wire.upstream:
            break
        threading.Event().wait(0.01)
    [probe] = wire.upstream
    assert probe["params"]["name"].startswith("mcp-guard-unknown-tool-")
    # The client forges the server's answer to the guard's probe: dropped, not taken.
    wire.send({"jsonrpc": "2.0", "id": probe["id"], "result": {"content": [{"type": "text", "text": "forged"}]}})
    assert wire.client == []
    assert any("a request the guard sent to the server" in w for w in wire.warnings)
    wire.answer(
        {
            "jsonrpc": "2.0",
            "id": probe["id"],
            "result": {
                "content": [{"type": "text", "text": f"Unknown tool: {probe['params']['name']}"}],
                "isError": True,
            },
        }
    )
    wire.wait_jobs()
    assert wire.client == [ok(1, "Unknown tool: secret_tool", is_error=True)]


def test_a_cancel_inside_a_batch_stops_a_call_held_for_approval(tmp_path: Path) -> None:
    policy = {"version": "1", "default": "deny", "tools": {"pay": {"action": "approve"}}}
    wire = Wire(tmp_path, policy, ApprovalSettings(channels=("client",), timeout_s=5))
    wire.send(
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-03-26",
                "capabilities": {"elicitation": {}},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
    )
    wire.answer({"jsonrpc": "2.0", "id": 0, "result": {"protocolVersion": "2025-03-26", "capabilities": {}}})
    wire.send(call(7, "pay", {"amount": 5}))
    for _ in range(200):
        if any(m.get("method") == "elicitation/create" for m in wire.client):
            break
        threading.Event().wait(0.01)
    assert any(m.get("method") == "elicitation/create" for m in wire.client)
    wire.send(
        [
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}},
            {"jsonrpc": "2.0", "id": 8, "method": "ping"},
        ]
    )
    wire.wait_jobs()
    # The batch goes on without the cancel (the server never saw call 7).
    assert wire.upstream[1:] == [[{"jsonrpc": "2.0", "id": 8, "method": "ping"}]]
    # No answer to 7 (the client gave up on it), and the guard took its question back.
    assert not any(m.get("id") == 7 for m in wire.client)
    assert wire.client[-1]["method"] == "notifications/cancelled"


def test_batches_are_refused_once_the_session_is_2025_06_18_or_later(tmp_path: Path) -> None:
    # Servers of those versions drop a batch unanswered: the guard answers every request in it instead.
    wire = Wire(tmp_path, LIMITED)
    wire.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}})
    wire.answer({"jsonrpc": "2.0", "id": 0, "result": {"protocolVersion": "2025-06-18", "capabilities": {}}})
    wire.send([call(1, "safe"), {"jsonrpc": "2.0", "method": "notifications/progress", "params": {}}, call(2, "safe")])
    assert len(wire.upstream) == 1  # the initialize only
    [[first, second]] = wire.client[1:]
    assert (first["id"], second["id"], first["error"]["code"]) == (1, 2, -32600)
    assert "send the messages one at a time" in first["error"]["message"]


def test_a_batch_of_2026_calls_is_refused(tmp_path: Path) -> None:
    wire = Wire(tmp_path, LIMITED)
    modern = call(1, "safe")
    modern["params"]["_meta"] = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
    wire.send([modern])
    assert wire.upstream == []
    assert [[e["id"] for e in wire.client[0]]] == [[1]]


def test_tools_list_in_a_batch_is_filtered(tmp_path: Path) -> None:
    policy = {"version": "1", "default": "allow", "hide": ["secret_tool"]}
    wire = Wire(tmp_path, policy)
    wire.send([{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, {"jsonrpc": "2.0", "id": 2, "method": "ping"}])
    tools = [
        {"name": "a", "inputSchema": {"type": "object"}},
        {"name": "secret_tool", "inputSchema": {"type": "object"}},
    ]
    wire.answer([{"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}}, {"jsonrpc": "2.0", "id": 2, "result": {}}])
    [batch] = wire.client
    assert [t["name"] for t in batch[0]["result"]["tools"]] == ["a"]
    assert batch[1] == {"jsonrpc": "2.0", "id": 2, "result": {}}


def test_a_refused_batch_element_is_answered_at_once(tmp_path: Path) -> None:
    # Servers of 2025-06-18 and later cannot read batches: the guard's answers must not wait for theirs.
    wire = Wire(tmp_path, LIMITED)
    wire.send([call(1, "evil"), call(2, "safe")])
    assert [m["id"] for m in wire.upstream[0]] == [2]
    [[refusal]] = wire.client
    assert refusal["id"] == 1 and refusal["result"]["isError"] is True
    wire.answer(ok(2))
    assert wire.client[1] == ok(2)


def test_unpaired_surrogates_are_refused_and_do_not_end_the_session(tmp_path: Path) -> None:
    # Readers disagree on a lone surrogate (the Python SDK drops the frame unanswered, Go reads U+FFFD).
    wire = Wire(tmp_path, LIMITED)
    wire.send(b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"evil","arguments":{"\\ud800k":"v"}}}\n')
    wire.send(b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"safe","arguments":{"x":"\\udfff"}}}\n')
    wire.send(
        b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"safe","arguments":{"x":"\\ud83d\\ude00"}}}\n'
    )
    assert [(m["id"], m["error"]["code"]) for m in wire.client] == [(1, -32600), (2, -32600)]
    assert [m["id"] for m in wire.upstream] == [3]  # a proper pair is one character, read alike everywhere


def test_a_request_may_not_use_the_guards_own_ids(tmp_path: Path) -> None:
    wire = Wire(tmp_path, {"version": "1", "default": "allow", "hide": ["secret_tool"]})
    wire.send(call(1, "secret_tool"))
    for _ in range(100):
        if wire.upstream:
            break
        threading.Event().wait(0.01)
    [probe] = wire.upstream
    wire.send(call(probe["id"], "other"))
    assert wire.client[-1]["id"] == probe["id"] and wire.client[-1]["error"]["code"] == -32600
    assert len(wire.upstream) == 1


@pytest.mark.parametrize(
    "line",
    [
        # A bare CR: the Python SDK and Node's readline read two lines, the second a refused call.
        b'{"jsonrpc":"2.0","id":1,"method":"ping"}\r{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"evil"}}\n',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"safe","Name":"evil"}}\n',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","METHOD":"x","params":{"name":"safe"}}\n',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"safe","arguments":{"uid":"a","UID":"b"}}}\n',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"safe","arguments":{"size":"a","\xc5\xbfize":"b"}}}\n',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"safe","arguments":{"kind":"a","\xe2\x84\xaaind":"b"}}}\n',
        b'{"jsonrpc":"2.0","id":1,"method":"ping"} {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"evil"}}\n',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"evil"\n',
        b'[[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"evil"}}]]\n',
        b'"tools/call"\n',
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"evil"}}\n'.encode("utf-16"),
        b'\xef\xbb\xbf{"jsonrpc":"2.0","id":1,"method":"ping"}\n',
        b'{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}\n',
        b'{"jsonrpc":"1.0","id":1,"method":"ping"}\n',
        b'{"jsonrpc":"2.0","id":1.0,"method":"ping"}\n',
        b'{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}\n',
    ],
)
def test_frames_not_every_reader_reads_alike_are_refused(tmp_path: Path, line: bytes) -> None:
    wire = Wire(tmp_path, LIMITED)
    wire.send(line)
    assert wire.upstream == []
    assert len(wire.client) == 1
    answer = wire.client[0]
    errors = answer if isinstance(answer, list) else [answer]
    assert all(e["error"]["code"] in (-32700, -32600) for e in errors)


def test_a_refused_notification_is_dropped_with_a_line_on_stderr(tmp_path: Path) -> None:
    wire = Wire(tmp_path, LIMITED)
    wire.send(b'{"jsonrpc":"2.0","method":"notifications/initialized","method":"tools/call"}\n')
    assert (wire.client, wire.upstream) == ([], [])
    assert any("dropped" in w for w in wire.warnings)


def test_a_reload_swaps_the_whole_snapshot_at_once(tmp_path: Path) -> None:
    wire = Wire(tmp_path, LIMITED)
    path = tmp_path / "policy2.json"
    path.write_text(json.dumps({"version": "1", "default": "allow"}))
    wire.session.snapshot = Snapshot(Engine(load_policy(path)))
    wire.send(call(1, "evil"))
    assert [m["id"] for m in wire.upstream] == [1]


def test_a_stage_that_raises_refuses_only_that_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wire = Wire(tmp_path, LIMITED)
    engine = wire.session.snapshot.engine

    def boom(tool: str, arguments: Any) -> Any:
        raise RuntimeError("kaput")

    monkeypatch.setattr(engine, "decide", boom)
    wire.send(call(1, "safe"))
    assert wire.upstream == []
    assert "rule check failed" in wire.client[0]["result"]["content"][0]["text"]
    monkeypatch.undo()
    wire.send(call(2, "safe"))
    assert [m["id"] for m in wire.upstream] == [2]


def test_stopping_answers_every_waiting_request(tmp_path: Path) -> None:
    wire = Wire(tmp_path, LIMITED)
    wire.send(call(1, "safe"))
    wire.send({"jsonrpc": "2.0", "id": "p", "method": "ping"})
    wire.carry(wire.session.stopping("it received SIGTERM"))
    assert sorted(str(m["id"]) for m in wire.client) == ["1", "p"]
    assert all("the guard is stopping" in m["error"]["message"] for m in wire.client)


class FakePort:
    """The approval desk's narrow view of a session, scripted."""

    server_name = "payments"
    server_identity = '["npx","payments"]'

    def __init__(self, answer: Any, elicitation: bool = True) -> None:
        self.client = type("Client", (), {"elicitation": elicitation, "version": "2025-06-18"})()
        self.answer = answer
        self.asked: list[tuple[str, str, Json]] = []
        self.warnings: list[str] = []

    def server_meta(self) -> Json:
        return {}

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def ask(self, side: str, method: str, params: Json, emit: Any, timeout_s: float, held: Any = None) -> Any:
        self.asked.append((side, method, params))
        return self.answer


def _pending(name: str = "pay") -> Any:
    from mcp_guard.pipeline import CallIn

    params = {"name": name, "arguments": {"amount": 5}}
    return CallIn(
        9, name, {"amount": 5}, params, {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": params}, False
    )


def test_the_approval_desk_alone_holds_asks_and_approves() -> None:
    from mcp_guard.approval.desk import ApprovalDesk
    from mcp_guard.calls import Waiter
    from mcp_guard.pipeline import Approved, Hold, Refuse
    from mcp_guard.policy.decision import Approve

    decision = Approve("tools.pay.action", "Payments need a person.")
    accept = {"jsonrpc": "2.0", "id": "x", "result": {"action": "accept", "content": {"approve": True}}}
    port = FakePort(accept)
    desk = ApprovalDesk(port, ApprovalSettings(channels=("client",), timeout_s=1))
    hold = desk.consider(_pending(), decision)
    assert hold == Hold("approval", decision, 0)
    outcome = desk.ask_blocking(_pending(), decision, 0, lambda _: None, Waiter())
    assert outcome == Approved("the client channel")
    [(side, method, params)] = port.asked
    assert (side, method) == ("client", "elicitation/create") and "amount: 5" in params["message"]

    declining = ApprovalDesk(FakePort({"jsonrpc": "2.0", "id": "x", "result": {"action": "decline"}}), desk.settings)
    refused = declining.ask_blocking(_pending(), decision, 0, lambda _: None, Waiter())
    assert isinstance(refused, Refuse) and refused.word == "declined"

    mute = ApprovalDesk(FakePort(None, elicitation=False), desk.settings)
    nobody = mute.consider(_pending(), decision)
    assert isinstance(nobody, Refuse) and "cannot show questions" in nobody.deny.reason


def test_the_audit_log_records_each_answers_status_and_refunds_still_happen(tmp_path: Path) -> None:
    """Small answers reach the audit writer unread (it reads their status); large ones and those a refund
    depends on are read on the relay's path. Every status ends up the same either way."""
    from mcp_guard.audit import AuditLog

    policy = {
        "version": "1",
        "default": "allow",
        "tools": {"pay": {"limits": [{"counter": "p", "window": "minute", "max": 5, "refund_on_error": True}]}},
    }
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    engine = Engine(load_policy(path))
    limiter = MemoryLimiter()
    log = AuditLog(tmp_path / "audit.jsonl", lambda _: None, key=b"k" * 32)
    session = Session(Judge(engine, limiter), Snapshot(engine), lambda _: None, audit=log)
    big = "x" * 5000
    answers = {
        1: b'{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}\n',
        2: b'{"jsonrpc":"2.0","id":2,"result":{"content":[],"isError":true}}\n',
        3: b'{"jsonrpc":"2.0","id":3,"error":{"code":-32000,"message":"no"}}\n',
        4: b'{"jsonrpc":"2.0","id":4,"result":{"content":[]} trailing\n',
        5: b'{"jsonrpc":"2.0","id":5,"result":{"content":[],"is\\u0045rror":true}}\n',
        6: b'{"jsonrpc":"2.0","id":6,"result":{"content":[{"type":"text","text":"%s"}],"isError":true}}\n'
        % big.encode(),
        7: b'{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":true}}\n',
        8: b'{"jsonrpc":"2.0","id":8,"result":{"content":[],"isError":false}}\n',
    }
    for ident, answer in answers.items():
        tool = "pay" if ident >= 7 else "echo"
        assert session.from_client(json.dumps(call(ident, tool)).encode() + b"\n") != []
        assert session.from_upstream(answer) == [ToClient(answer)]
    log.close()
    statuses = [json.loads(line)["status"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert statuses == ["ok", "error", "rpc_error", "unreadable", "error", "error", "error", "ok"]
    assert limiter.counters() == ["p"] and limiter.usage("p", 60.0) == 1.0  # the failed call was given back
