"""Flow rules (issue 20) in process: labels, the ledger in each store, the flow stage and the labels result stage,
and how the client's identity is found."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_keyed_limits import redis_server  # noqa: F401 - a fixture
from test_stores import Clock, RedisServer

from mcp_guard.calls import Call
from mcp_guard.flows.client import client_identity, linux_start_ticks, process_identity
from mcp_guard.flows.guard import FlowGuard, annotation_labels
from mcp_guard.flows.ledger import Held, Ledger, MemoryLedger, RedisLedger, SqliteLedger
from mcp_guard.judge import Judge
from mcp_guard.limits import MemoryLimiter, StoreUnavailable
from mcp_guard.limits.sqlite import SqliteLimiter
from mcp_guard.pipeline import CallIn, Pipeline, Refuse, Relay, Snapshot, run_settled_stages, settled_stages_wanted
from mcp_guard.policy.decision import Approve, Deny
from mcp_guard.policy.engine import Engine
from mcp_guard.policy.model import Policy

POLICY: dict[str, Any] = {
    "version": "1",
    "default": "allow",
    "tools": {
        "read_email": {"labels": ["private"]},
        "gmail_*": {"labels": ["private"]},
        "*_send": {"labels": ["external"]},
        "send_email": {"labels": ["external"]},
        "fetch_url": {"labels": ["untrusted", "external"]},
    },
    "flows": [
        {"from": ["private", "secrets"], "to": ["external"], "within": "1h", "action": "deny", "reason": "No leaks."},
        {"from": ["untrusted"], "to": ["destructive"], "action": "approve"},
    ],
}


def engine(policy: dict[str, Any] = POLICY) -> Engine:
    return Engine(Policy.model_validate(policy))


# --- the policy ----------------------------------------------------------------------------------------


def test_every_matching_tool_key_adds_its_labels() -> None:
    e = engine()
    assert e.labels_for("read_email") == {"private"}
    assert e.labels_for("gmail_send") == {"private", "external"}
    assert e.labels_for("unlisted") == frozenset()
    assert [(f.rule, f.sources, f.targets, f.within_s, f.action, f.scope) for f in e.flows] == [
        ("flows[0]", {"private", "secrets"}, {"external"}, 3600.0, "deny", "client"),
        ("flows[1]", {"untrusted"}, {"destructive"}, None, "approve", "client"),
    ]
    assert e.flow_sources == {"private", "secrets", "untrusted"}


@pytest.mark.parametrize(
    "flow",
    [
        {"to": ["x"]},
        {"from": [], "to": ["x"]},
        {"from": ["a"], "to": ["x"], "within": "soon"},
        {"from": ["a"], "to": ["x"], "action": "allow"},
        {"from": ["a"], "to": ["x"], "scope": "session"},
        {"from": ["a b"], "to": ["x"]},
        {"from": ["a"], "to": ["x"], "form": ["b"]},
    ],
)
def test_malformed_flow_rules_stop_the_policy(flow: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="flows"):
        Policy.model_validate({"version": "1", "flows": [flow]})


def test_annotation_labels_need_the_hint_stated() -> None:
    assert annotation_labels({"annotations": {"readOnlyHint": True, "openWorldHint": True}}) == {
        "read_only",
        "open_world",
    }
    assert annotation_labels({"annotations": {"destructiveHint": True, "readOnlyHint": False}}) == {"destructive"}
    assert annotation_labels({"annotations": {}}) == frozenset()
    assert annotation_labels({"annotations": {"destructiveHint": "yes"}}) == frozenset()
    assert annotation_labels({}) == frozenset()


# --- the ledger, store by store -----------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite", "redis"])
def ledgers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Clock, Any]]:
    """A clock and ``make()``, which opens another ledger on the same store."""
    clock = Clock(1_700_000_000.0)
    if request.param == "memory":
        one = MemoryLedger(clock)
        yield clock, lambda: one
    elif request.param == "sqlite":
        yield clock, lambda: SqliteLedger(SqliteLimiter(tmp_path / "flows.db", clock=clock))
    else:
        from mcp_guard.limits.redis import RedisLimiter

        server: RedisServer = request.getfixturevalue("redis_server")
        prefix = f"test-{uuid.uuid4().hex[:8]}:"
        yield clock, lambda: RedisLedger(RedisLimiter(server.url, prefix=prefix, clock=clock))


def test_ledger_keeps_the_newest_acquisition_per_holder_and_label(ledgers: tuple[Clock, Any]) -> None:
    clock, make = ledgers
    one: Ledger = make()
    one.acquire(["client:a", "global"], ["private"], "read_email", "mail")
    clock.now += 10
    one.acquire(["client:a"], ["private", "secrets"], "read_file", "files")
    other: Ledger = make()
    rows, now = other.held(["client:a"], ["private", "secrets", "untrusted"])
    assert now == clock.now
    assert sorted(rows, key=lambda h: h.label) == [
        Held("client:a", "private", clock.now, "read_file", "files"),
        Held("client:a", "secrets", clock.now, "read_file", "files"),
    ]
    assert other.held(["client:b"], ["private"])[0] == []
    assert [(h.holder, h.label, h.tool) for h in other.entries()] == [
        ("client:a", "private", "read_file"),
        ("client:a", "secrets", "read_file"),
        ("global", "private", "read_email"),
    ]
    assert other.clear("client:a") == 2
    assert [h.holder for h in one.entries()] == ["global"]
    assert other.clear(None) == 1
    assert one.entries() == []


# --- checking a call, acquiring labels -------------------------------------------------------------------


def guards(clock: Clock, client: str = "c1", server: str = "mail") -> tuple[FlowGuard, MemoryLedger]:
    shared = MemoryLedger(clock)
    return FlowGuard(server, client_id=client, shared=shared, local=MemoryLedger(clock)), shared


def test_a_held_label_refuses_a_to_call_and_says_what_and_until_when() -> None:
    clock = Clock(1_700_000_000.0)
    e = engine()
    mail, shared = guards(clock)
    web = FlowGuard("web", client_id="c1", shared=shared)
    assert web.check(e, "send_email") is None
    mail.acquire(e, "read_email")
    clock.now += 60
    refusal = web.check(e, "send_email")
    assert isinstance(refusal, Deny)
    assert (refusal.kind, refusal.rule) == ("flow", "flows[0]")
    assert refusal.reason == (
        "No leaks. This call to 'send_email' carries the label 'external', and this client session holds "
        "'private', acquired when 'read_email' (server 'mail') answered at 2023-11-14 22:13:20 UTC; it is held "
        "until 2023-11-14 23:13:20 UTC (for 1h after it was acquired), so the call is refused."
    )
    assert refusal.details == {
        "flow": "flows[0]",
        "labels": ["external"],
        "held": [
            {
                "label": "private",
                "tool": "read_email",
                "server": "mail",
                "acquired_at": "2023-11-14 22:13:20 UTC",
                "expires_at": "2023-11-14 23:13:20 UTC",
            }
        ],
    }
    # Another client's guard on the same store holds nothing.
    assert FlowGuard("web", client_id="c2", shared=shared).check(e, "send_email") is None
    # A tool without a 'to' label is not stopped.
    assert web.check(e, "read_email") is None
    clock.now += 3600 - 60
    assert isinstance(web.check(e, "send_email"), Deny)  # the window is closed: held at exactly 'within'
    clock.now += 0.01
    assert web.check(e, "send_email") is None


def test_only_labels_some_rule_watches_are_recorded() -> None:
    clock = Clock()
    e = engine()
    mail, shared = guards(clock)
    mail.acquire(e, "fetch_url")  # untrusted (watched) and external (only a 'to')
    assert [(h.holder, h.label) for h in shared.entries()] == [("client:c1", "untrusted")]
    mail.acquire(e, "unlisted", ["secrets", "payment_cards"])  # labels a result stage found
    assert {h.label for h in shared.entries()} == {"untrusted", "secrets"}


def test_annotations_label_tools_and_an_approve_rule_asks() -> None:
    clock = Clock()
    e = engine()
    web, _ = guards(clock, server="web")
    web.learn_listing([{"name": "delete_page", "annotations": {"destructiveHint": True}}, {"name": "x"}, "junk"])
    assert web.labels(e, "delete_page") == {"destructive"}
    assert web.check(e, "delete_page") is None
    web.acquire(e, "fetch_url")
    asked = web.check(e, "delete_page")
    assert isinstance(asked, Approve) and asked.rule == "flows[1]"
    assert "held for the rest of this client session, so the call needs a person's approval" in asked.reason
    # A newer listing replaces the hints.
    web.learn_listing([{"name": "delete_page", "annotations": {"destructiveHint": False}}])
    assert web.check(e, "delete_page") is None


def test_pinned_definitions_label_tools_before_a_listing() -> None:
    guard = FlowGuard(
        "web", client_id="c", shared=MemoryLedger(), pinned=lambda name: {"annotations": {"destructiveHint": True}}
    )
    assert guard.labels(engine(), "anything") == {"destructive"}


def test_deny_wins_over_approve_whatever_the_order() -> None:
    policy = {
        **POLICY,
        "flows": [
            {"from": ["private"], "to": ["external"], "action": "approve"},
            {"from": ["private"], "to": ["external"], "action": "deny"},
        ],
    }
    e = engine(policy)
    mail, _ = guards(Clock())
    mail.acquire(e, "read_email")
    verdict = mail.check(e, "send_email")
    assert isinstance(verdict, Deny) and verdict.rule == "flows[1]"


def test_scopes_name_their_holders() -> None:
    clock = Clock()
    shared = MemoryLedger(clock)
    policy = {
        **POLICY,
        "flows": [{"from": ["private"], "to": ["external"], "scope": s} for s in ("grant", "server", "global")],
    }
    e = engine(policy)
    one = FlowGuard("mail", client_id="c1", shared=shared)
    one.acquire(e, "read_email")
    assert {h.holder for h in shared.entries()} == {"server:mail", "global"}  # grant labels stay in the guard
    assert [h.holder for h in one.local.entries()] == [f"grant:{one.instance}"]
    assert isinstance(one.check(e, "send_email"), Deny)
    verdict = FlowGuard("mail", client_id="c9", shared=shared).check(e, "send_email")
    assert isinstance(verdict, Deny) and verdict.rule == "flows[1]"  # same server, another client
    verdict = FlowGuard("web", client_id="c9", shared=shared).check(e, "send_email")
    assert isinstance(verdict, Deny) and verdict.rule == "flows[2]"  # global
    assert "held until a person clears it (mcp-guard flows clear)" in verdict.reason


class DownLedger(MemoryLedger):
    def acquire(self, *args: Any) -> None:
        raise StoreUnavailable("redis://h: connection refused")

    def held(self, *args: Any) -> Any:
        raise StoreUnavailable("redis://h: connection refused")


def test_a_ledger_that_is_down_fails_closed_unless_the_policy_allows() -> None:
    e = engine()
    guard = FlowGuard("web", client_id="c", shared=DownLedger())
    refusal = guard.check(e, "send_email")
    assert isinstance(refusal, Deny) and refusal.kind == "store_unavailable" and "fail closed" in refusal.reason
    assert guard.check(e, "send_email", on_store_error="allow") is None
    assert guard.check(e, "read_email") is None  # no 'to' label: the ledger is not asked
    with pytest.raises(StoreUnavailable):
        guard.acquire(e, "read_email")


# --- the pipeline's stages -------------------------------------------------------------------------------


def call_in(name: str) -> CallIn:
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": {}}}
    return CallIn(1, name, {}, {"name": name, "arguments": {}}, message, modern=False)


def answered(ident: int, text: str, error: bool = False) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "result": {"content": [{"type": "text", "text": text}], "isError": error}}


def test_the_flows_stage_runs_after_the_rule_and_the_labels_stage_after_success() -> None:
    e = engine()
    flows, _ = guards(Clock(time.time()))
    snap = Snapshot(e, flows=flows)
    pipeline = Pipeline(Judge(e, MemoryLimiter()))
    record = Call("read_email", None, None, "allowed", {}, time.time(), 0.0)
    # An error answer acquires nothing.
    assert run_settled_stages(record, answered(1, "no", error=True), snap) is None
    assert run_settled_stages(record, {"jsonrpc": "2.0", "id": 1, "error": {"code": 1, "message": "x"}}, snap) is None
    assert isinstance(pipeline.judge_call(call_in("send_email"), snap), Relay)
    assert run_settled_stages(record, answered(1, "PIN 4242"), snap) is None
    verdict = pipeline.judge_call(call_in("send_email"), snap)
    assert isinstance(verdict, Refuse) and verdict.deny.kind == "flow"
    # A rule's own refusal comes first (the rule stage runs before the flows stage).
    denying = engine({**POLICY, "tools": {**POLICY["tools"], "send_email": {"action": "deny", "labels": ["external"]}}})
    verdict = pipeline.judge_call(call_in("send_email"), Snapshot(denying, flows=flows))
    assert isinstance(verdict, Refuse) and verdict.deny.kind == "deny"


def test_labels_a_result_stage_found_are_acquired() -> None:
    e = engine()
    flows, shared = guards(Clock(time.time()))
    record = Call("unlisted", None, None, "allowed", {}, time.time(), 0.0)
    record.labels = frozenset({"secrets"})
    run_settled_stages(record, answered(1, "AKIA..."), Snapshot(e, flows=flows))
    assert [h.label for h in shared.entries()] == ["secrets"]


def test_an_answer_is_withheld_when_its_labels_cannot_be_recorded() -> None:
    e = engine()
    snap = Snapshot(e, flows=FlowGuard("mail", client_id="c", shared=DownLedger()))
    record = Call("read_email", None, None, "allowed", {}, time.time(), 0.0)
    replaced = run_settled_stages(record, answered(7, "PIN 4242"), snap)
    assert replaced is not None and replaced["id"] == 7
    result = replaced["result"]
    assert isinstance(result, dict) and result["isError"] is True
    assert "withheld the answer of 'read_email'" in str(result["content"])
    assert "PIN" not in str(replaced)


def test_monitor_mode_reports_a_flow_refusal_and_relays() -> None:
    e = engine({**POLICY, "mode": "monitor"})
    flows, _ = guards(Clock(time.time()))
    flows.acquire(e, "read_email")
    warned: list[str] = []
    verdict = Pipeline(Judge(e, MemoryLimiter()), warn=warned.append).judge_call(
        call_in("send_email"), Snapshot(e, flows=flows)
    )
    assert isinstance(verdict, Relay) and verdict.record.decision == "monitored"
    assert warned and "would refuse 'send_email' (flows[0])" in warned[0]


# --- the client's identity ----------------------------------------------------------------------------------


def test_start_ticks_are_read_after_the_command_name(tmp_path: Path) -> None:
    (tmp_path / "42").mkdir()
    fields = ["S", *[str(n) for n in range(4, 22)], "987654", "0"]
    (tmp_path / "42" / "stat").write_text(f"42 (a) b) (c) {' '.join(fields)}\n")
    assert linux_start_ticks(42, tmp_path) == "987654"
    assert linux_start_ticks(43, tmp_path) is None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_process_identity_is_its_pid_and_start_time() -> None:
    mine, exact = process_identity(os.getpid())
    assert exact and mine.startswith(f"pid{os.getpid()}-")
    assert process_identity(os.getpid()) == (mine, True)
    parent, _ = process_identity(os.getppid())
    assert parent != mine and parent.startswith(f"pid{os.getppid()}-")


def test_explicit_client_id_then_environment_then_parent() -> None:
    assert client_identity("desk", {"MCP_GUARD_CLIENT_ID": "env"}) == ("desk", "--client-id")
    assert client_identity(None, {"MCP_GUARD_CLIENT_ID": "env"}) == ("env", "$MCP_GUARD_CLIENT_ID")
    ident, source = client_identity(None, {})
    assert ident == process_identity(os.getppid())[0] and "parent" in source


# --- the commands: explain --labels, test cases, flows list/clear, stats -----------------------------------


def test_explain_with_labels_held(cli: Any, tmp_path: Path) -> None:
    import json

    from conftest import write_policy

    path = write_policy(tmp_path, POLICY)
    out = cli("explain", str(path), "send_email", "{}", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["labels"] == ["external"]
    out = cli("explain", str(path), "send_email", "{}", "--labels", "private,other", "--json")
    assert out.returncode == 1, out.stderr
    said = json.loads(out.stdout)
    assert (said["decision"], said["rule"], said["kind"]) == ("deny", "flows[0]", "flow")
    assert (said["labels"], said["held"]) == (["external"], ["other", "private"])
    out = cli("explain", str(path), "send_email", "{}", "--labels", "private")
    assert out.returncode == 1
    assert "labels: external; held: private" in out.stdout and "flows[0]" in out.stdout
    assert "held until" in out.stdout  # the rule says when the label expires
    out = cli("explain", str(path), "delete_page", "{}", "--labels", "untrusted")
    assert out.returncode == 0  # no label 'destructive' without the server's annotations (no lock file)


def test_policy_test_cases_walk_flows_on_the_simulated_clock(cli: Any, tmp_path: Path) -> None:
    import json

    cases = [
        {
            "name": "a private read stops a send for an hour",
            "sequence": [
                {"call": {"tool": "send_email"}, "expect": "allow"},
                {"call": {"tool": "read_email"}, "result": "error", "expect": "allow"},
                {"call": {"tool": "send_email"}, "expect": "allow"},
                {"call": {"tool": "read_email"}, "expect": "allow"},
                {"at": "10m", "call": {"tool": "send_email"}, "expect": {"decision": "deny", "rule": "flows[0]"}},
                {"at": "3601s", "call": {"tool": "send_email"}, "expect": "allow"},
            ],
        },
        {"name": "each case starts afresh", "call": {"tool": "send_email"}, "expect": "allow"},
    ]
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({**POLICY, "tests": cases}))
    out = cli("test", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    broken = [
        {**cases[0], "sequence": [*cases[0]["sequence"][:4], {"call": {"tool": "send_email"}, "expect": "allow"}]}
    ]
    path.write_text(json.dumps({**POLICY, "tests": broken}))
    out = cli("test", str(path))
    assert out.returncode == 1 and "flows[0]" in out.stdout


def test_flows_list_and_clear_and_stats(cli: Any, tmp_path: Path) -> None:
    import json

    state = f"sqlite://{tmp_path / 'counters.db'}"
    e = engine()
    from mcp_guard.flows.ledger import open_ledger

    for client in ("desk", "code"):
        FlowGuard("mail", state, client, shared=open_ledger(state)).acquire(e, "read_email")
    listed = json.loads(cli("flows", "list", "--state", state, "--json").stdout)
    assert [(row["holder"], row["label"], row["tool"], row["server"]) for row in listed] == [
        ("client:code", "private", "read_email", "mail"),
        ("client:desk", "private", "read_email", "mail"),
    ]
    stats = json.loads(cli("stats", "--json", "--audit-log", str(tmp_path / "none.jsonl"), "--state", state).stdout)
    assert stats["labels"] == listed
    text = cli("stats", "--audit-log", str(tmp_path / "none.jsonl"), "--state", state).stdout
    assert "flow labels held now" in text and "client:desk" in text
    out = cli("flows", "clear", "--client", "desk", "--state", state)
    assert out.returncode == 0 and out.stdout == "forgot 1 held label of client 'desk'\n"
    assert [row["holder"] for row in json.loads(cli("flows", "list", "--state", state, "--json").stdout)] == [
        "client:code"
    ]
    assert cli("flows", "clear", "--state", state).stdout == "forgot 1 held label of every holder\n"
    assert cli("flows", "list", "--state", state).stdout == "no flow labels are held\n"


def test_the_default_ledger_is_a_protected_file_in_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    from mcp_guard import paths
    from mcp_guard.flows.ledger import FLOWS_FILE, SqliteLedger, open_ledger
    from mcp_guard.integrity.protect import guard_paths_for

    ledger = open_ledger(None)
    assert isinstance(ledger, SqliteLedger)
    ledger.acquire(["client:x"], ["private"], "read_email", "mail")
    assert (paths.state_dir() / FLOWS_FILE).is_file()
    protected = guard_paths_for(None, None, None, None, None)
    refusal = protected.refusal({"path": str(paths.state_dir() / FLOWS_FILE)})
    assert refusal is not None and refusal.kind == "protected"


def test_check_counts_flow_rules_and_warns_of_a_label_nothing_gives(cli: Any, tmp_path: Path) -> None:
    from conftest import write_policy

    path = write_policy(
        tmp_path, {**POLICY, "flows": [{"from": ["privat", "secrets"], "to": ["external", "destructive"]}]}
    )
    out = cli("check", str(path))
    assert out.returncode == 0
    assert "5 tool rules, 1 flow rule, 0 hidden" in out.stdout
    warnings = [line for line in out.stderr.splitlines() if "warning" in line]
    assert (
        len(warnings) == 1
        and "flows[0].from[0]: no tool, prompt or resource rule gives the label 'privat'" in warnings[0]
    )


def test_flows_commands_create_no_ledger(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp_guard import paths

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    from mcp_guard.flows.ledger import FLOWS_FILE

    assert cli("flows", "list").stdout == "no flow labels are held\n"
    assert cli("flows", "clear", "--client", "x").stdout == "forgot 0 held labels\n"
    assert not (paths.state_dir() / FLOWS_FILE).exists()


def test_a_settled_stage_that_fails_withholds_the_answer_in_its_era(monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp_guard import pipeline

    def broken(call: Call, message: Any, snap: Snapshot) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "SETTLED_STAGES", (("detectors", broken), *pipeline.SETTLED_STAGES))
    record = Call("read_email", None, None, "allowed", {}, time.time(), 0.0)
    modern = {"jsonrpc": "2.0", "id": 3, "result": {"content": [], "resultType": "complete"}}
    replaced = run_settled_stages(record, modern, Snapshot(engine()))
    assert replaced == {
        "jsonrpc": "2.0",
        "id": 3,
        "result": {
            "content": [
                {
                    "type": "text",
                    "text": "The guard's detectors check failed on this call (RuntimeError: boom), so it was withheld. "
                    "This is a fault in mcp-guard or its configuration, not in the call.",
                }
            ],
            "isError": True,
            "resultType": "complete",
        },
    }


def test_only_answers_that_can_give_a_watched_label_are_read() -> None:
    e = engine()
    flows, _ = guards(Clock())
    assert flows.wants_result(e, "read_email") and flows.wants_result(e, "fetch_url")
    assert not flows.wants_result(e, "send_email")  # 'external' is only ever a 'to'
    assert not flows.wants_result(e, "unlisted")
    assert not FlowGuard("x", client_id="c", shared=MemoryLedger()).wants_result(engine({"version": "1"}), "read_email")


# --- prompts and resources carry labels of their own ------------------------------------------------------

KINDS_POLICY: dict[str, Any] = {
    **POLICY,
    "tools": {**POLICY["tools"], "fetch": {"labels": ["private"]}},
    "prompts": {"rules": {"fetch": {"labels": ["external"]}}},
    "resources": {"rules": {"file:///srv/*": {"labels": ["private"]}, "https://*": {"labels": ["untrusted"]}}},
}


def request(kind: str, name: str) -> CallIn:
    from mcp_guard.commands.explaining import request_in

    return request_in(name, {}, kind)  # type: ignore[arg-type]


def settled(kind: str, name: str) -> Call:
    record = Call(name, None, None, "allowed", {}, time.time(), 0.0)
    record.kind = kind
    return record


def read_answer(ident: int, text: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "result": {"contents": [{"uri": "x:", "text": text}]}}


def test_a_resource_read_acquires_its_labels_and_a_prompt_is_judged_by_its_own() -> None:
    clock = Clock(1_700_000_000.0)
    e = engine(KINDS_POLICY)
    flows, shared = guards(clock)
    snap = Snapshot(e, flows=flows)
    pipeline = Pipeline(Judge(e, MemoryLimiter()))
    # The prompt 'fetch' has the prompts section's labels, never the tool 'fetch''s (and the reverse).
    assert flows.labels(e, "fetch", "prompt") == {"external"}
    assert flows.labels(e, "fetch") == {"private"}
    assert flows.labels(e, "file:///srv/../srv/notes.txt", "resource") == {"private"}
    assert flows.labels(e, "read_email", "prompt") == frozenset()
    assert isinstance(pipeline.judge_call(request("prompt", "fetch"), snap), Relay)
    # Only an answer that can give a watched label is read for the settled stages.
    assert settled_stages_wanted(settled("resource", "file:///srv/notes.txt"), snap)
    assert not settled_stages_wanted(settled("prompt", "fetch"), snap)  # 'external' is only ever a 'to'
    assert not settled_stages_wanted(settled("prompt", "read_email"), snap)  # a tool's labels, not the prompt's
    # A failed read acquires nothing, nor does a subscription (no data); a successful read gives 'private'.
    notes = settled("resource", "file:///srv/notes.txt")
    assert (
        run_settled_stages(notes, {"jsonrpc": "2.0", "id": 1, "error": {"code": -32002, "message": "no"}}, snap) is None
    )
    subscribed = settled("resource", "file:///srv/notes.txt")
    subscribed.subscribe = True
    assert run_settled_stages(subscribed, {"jsonrpc": "2.0", "id": 1, "result": {}}, snap) is None
    assert shared.entries() == []
    assert run_settled_stages(notes, read_answer(1, "notes"), snap) is None
    assert [(h.holder, h.label, h.tool, h.server) for h in shared.entries()] == [
        ("client:c1", "private", "resource:file:///srv/notes.txt", "mail")
    ]
    # Now the prompt that sends data out is refused, and says which request it is.
    verdict = pipeline.judge_call(request("prompt", "fetch"), snap)
    assert isinstance(verdict, Refuse) and (verdict.deny.kind, verdict.deny.rule) == ("flow", "flows[0]")
    assert verdict.deny.reason == (
        "No leaks. This request for the prompt 'fetch' carries the label 'external', and this client session holds "
        "'private', acquired when 'resource:file:///srv/notes.txt' (server 'mail') answered at 2023-11-14 22:13:20 "
        "UTC; it is held until 2023-11-14 23:13:20 UTC (for 1h after it was acquired), so the request is refused."
    )
    # So is a tool labelled 'external'; the tool 'fetch' (private) is not.
    verdict = pipeline.judge_call(call_in("send_email"), snap)
    assert isinstance(verdict, Refuse) and verdict.deny.kind == "flow"
    assert isinstance(pipeline.judge_call(call_in("fetch"), snap), Relay)


def test_an_approve_flow_asks_about_a_prompt_under_its_own_name() -> None:
    e = engine({**KINDS_POLICY, "flows": [{"from": ["untrusted"], "to": ["external"], "action": "approve"}]})
    flows, _ = guards(Clock(time.time()))
    snap = Snapshot(e, flows=flows)
    run_settled_stages(settled("resource", "https://example.com/page"), read_answer(1, "page"), snap)
    asked: list[CallIn] = []

    class Desk:
        def consider(self, call: CallIn, decision: Approve) -> Any:
            asked.append(call)
            return Refuse(Deny("approval_required", decision.rule, decision.reason))

    verdict = Pipeline(Judge(e, MemoryLimiter()), Desk()).judge_call(request("prompt", "fetch"), snap)
    assert isinstance(verdict, Refuse) and verdict.deny.rule == "flows[0]"
    assert [call.name for call in asked] == ["prompt:fetch"]
    assert "This request for the prompt 'fetch' carries the label 'external'" in verdict.deny.reason
    assert verdict.deny.reason.endswith("so the request needs a person's approval.")


def test_explain_and_test_cases_show_and_walk_prompt_and_resource_labels(cli: Any, tmp_path: Path) -> None:
    import json

    from conftest import write_policy

    path = write_policy(tmp_path, KINDS_POLICY)
    out = cli("explain", str(path), "--prompt", "fetch", "--labels", "private", "--json")
    assert out.returncode == 1, out.stdout + out.stderr
    said = json.loads(out.stdout)
    assert (said["decision"], said["rule"], said["labels"], said["held"]) == (
        "deny",
        "flows[0]",
        ["external"],
        ["private"],
    )
    out = cli("explain", str(path), "--resource", "file:///srv/notes.txt")
    assert out.returncode == 0
    assert "  labels: private; held: (none)" in out.stdout.splitlines()
    cases = [
        {
            "name": "a private resource stops the external prompt",
            "sequence": [
                {"call": {"prompt": "fetch", "args": {"url": "u"}}, "expect": "allow"},
                {"call": {"resource": "file:///srv/notes.txt"}, "result": "error", "expect": "allow"},
                {"call": {"prompt": "fetch", "args": {"url": "u"}}, "expect": "allow"},
                {"call": {"resource": "file:///srv/notes.txt"}, "expect": "allow"},
                {"call": {"prompt": "fetch"}, "expect": {"decision": "deny", "rule": "flows[0]"}},
                {"call": {"tool": "send_email"}, "expect": {"decision": "deny", "rule": "flows[0]"}},
                {"call": {"tool": "fetch"}, "expect": "allow"},
            ],
        }
    ]
    path.write_text(json.dumps({**KINDS_POLICY, "tests": cases}))
    out = cli("test", str(path))
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_read_whose_labels_cannot_be_recorded_is_withheld_with_an_error_the_client_reads() -> None:
    # A resources/read or prompts/get answer has no isError: a CallToolResult in its place would fail the client's
    # parsing instead of saying why. It is a JSON-RPC error, as for a result the detectors block.
    snap = Snapshot(engine(KINDS_POLICY), flows=FlowGuard("mail", client_id="c", shared=DownLedger()))
    replaced = run_settled_stages(settled("resource", "file:///srv/notes.txt"), read_answer(7, "PIN 4242"), snap)
    assert replaced is not None and set(replaced) == {"jsonrpc", "id", "error"} and replaced["id"] == 7
    error = replaced["error"]
    assert isinstance(error, dict) and error["code"] == -32000
    assert str(error["message"]).startswith("mcp-guard withheld the answer of 'file:///srv/notes.txt': the flow ledger")
    assert "PIN" not in str(replaced)


@pytest.mark.parametrize("error", [False, True])
def test_a_large_answer_acquires_labels_only_when_it_succeeded(error: bool) -> None:
    """Answers past 64 KiB are read by the faster parser for the settled stages: same outcome as a small one."""
    import json

    from mcp_guard.session import Session

    e = engine()
    flows, shared = guards(Clock(time.time()))
    session = Session(Judge(e, MemoryLimiter()), Snapshot(e, flows=flows), lambda _: None)
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "read_email", "arguments": {}}}
    assert session.from_client(json.dumps(call).encode() + b"\n")[0].frame.startswith(b'{"jsonrpc"')
    text = "mail " * 40_000  # 200 kB
    answer = json.dumps(answered(7, text, error=error), separators=(",", ":")).encode() + b"\n"
    assert len(answer) > 1 << 16
    assert [a.frame for a in session.from_upstream(answer)] == [answer]
    held = {(h.holder, h.label) for h in shared.entries()}
    assert held == (set() if error else {("client:c1", "private")})
