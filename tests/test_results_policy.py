"""The ``results`` and ``tool_descriptions`` policy sections: validation, combination, and the result stages."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from results_fakes import card_number, crc32_token

from mcp_guard.judge import Judge
from mcp_guard.limits.memory import MemoryLimiter
from mcp_guard.pipeline import Pipeline, ResultIn, Snapshot
from mcp_guard.policy.engine import Engine
from mcp_guard.policy.load import PolicyError, load_policy
from mcp_guard.policy.model import Policy

RNG = random.Random(1919)
TOKEN = crc32_token(RNG, "ghp_")
CARD = card_number(RNG, "5", 16)


def load(tmp_path: Path, doc: dict[str, Any]) -> Policy:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"version": "1", "default": "allow", **doc}, indent=2), encoding="utf-8")
    return load_policy(path)


def errors_of(tmp_path: Path, doc: dict[str, Any]) -> str:
    with pytest.raises(PolicyError) as info:
        load(tmp_path, doc)
    return str(info.value)


def test_unknown_detector_names_the_field_and_the_valid_names(tmp_path: Path) -> None:
    message = errors_of(tmp_path, {"all_tools": {"results": {"redact": ["secrets", "credit_cards"]}}})
    assert (
        "all_tools.results.redact[1]: unknown detector 'credit_cards': did you mean 'payment_cards'? "
        "the built-in detectors are secrets, "
        "payment_cards, ibans, emails, invisible_text, terminal_escapes; define your own under patterns "
        "(name: RE2 pattern)"
    ) in message


def test_a_tool_may_use_a_pattern_defined_for_all_tools(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        {
            "all_tools": {"results": {"patterns": {"employee_id": "EMP-[0-9]{6}"}}},
            "tools": {"read_file": {"results": {"redact": ["employee_id"]}}},
        },
    )
    assert policy.tools["read_file"].results is not None


def test_unknown_name_in_tool_descriptions(tmp_path: Path) -> None:
    message = errors_of(tmp_path, {"tool_descriptions": {"block": ["hidden_text"]}})
    assert "tool_descriptions.block[0]: unknown detector 'hidden_text'" in message


def test_bad_re2_pattern_is_reported_with_the_pattern(tmp_path: Path) -> None:
    message = errors_of(tmp_path, {"all_tools": {"results": {"patterns": {"ref": "(a)\\1"}, "block": ["ref"]}}})
    assert "all_tools.results.patterns" in message
    assert "pattern 'ref' ('(a)\\\\1') not valid RE2 syntax" in message


def test_pattern_may_not_take_a_builtin_name(tmp_path: Path) -> None:
    message = errors_of(tmp_path, {"all_tools": {"results": {"patterns": {"secrets": "x+"}}}})
    assert "pattern name 'secrets' is a built-in detector" in message


def test_unknown_field_in_results(tmp_path: Path) -> None:
    message = errors_of(tmp_path, {"all_tools": {"results": {"redcat": ["secrets"]}}})
    assert "all_tools.results.redcat: unknown field 'redcat'" in message


def test_no_results_section_means_no_plan(tmp_path: Path) -> None:
    assert Engine(load(tmp_path, {})).results is None
    assert Engine(load(tmp_path, {"all_tools": {"results": {}}})).results is not None


def run(policy: Policy, tool: str | None, result: dict[str, Any], method: str = "tools/call", **kw: Any) -> Any:
    engine = Engine(policy)
    plan = engine.results
    assert plan is not None
    if tool is not None:
        rule = engine.rule_for(tool)
        check = plan.for_rule(rule.key if rule is not None else None)
    else:
        check = plan.other
    assert check is not None
    warnings: list[str] = []
    pipeline = Pipeline(Judge(engine, MemoryLimiter()), warn=warnings.append)
    answer = ResultIn(method, tool, result, check, kw.get("complete", False))
    outcome = pipeline.judge_result(answer, Snapshot(engine, None, kw.get("monitor", False)))
    return outcome, warnings


def text_result(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": False}


def test_strictest_action_wins_across_all_tools_and_the_tool(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        {
            "all_tools": {"results": {"redact": ["secrets"]}},
            "tools": {"read_*": {"results": {"block": ["secrets"]}}},
        },
    )
    redacted, _ = run(policy, "query", text_result(f"k={TOKEN}"))
    assert redacted.outcome == "redact"
    assert redacted.result["content"][0]["text"] == "k=[redacted: secrets/github_token]"
    blocked, _ = run(policy, "read_file", text_result(f"k={TOKEN}"), complete=True)
    assert blocked.outcome == "block"
    assert blocked.result["isError"] is True
    assert blocked.result["resultType"] == "complete"
    assert TOKEN not in json.dumps(blocked.result)
    assert blocked.labels == frozenset({"secrets"})
    assert blocked.findings == [
        {"detector": "secrets", "kind": "github_token", "count": 1, "paths": ["content[0].text"], "action": "block"}
    ]


def test_nothing_found_forwards(tmp_path: Path) -> None:
    policy = load(tmp_path, {"all_tools": {"results": {"block": ["secrets", "payment_cards"]}}})
    outcome, warnings = run(policy, "x", text_result("commit 3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39, uuid ok"))
    assert (outcome.outcome, outcome.result, warnings) == ("forward", None, [])


def test_monitor_mode_only_reports(tmp_path: Path) -> None:
    policy = load(tmp_path, {"all_tools": {"results": {"block": ["payment_cards"]}}})
    outcome, warnings = run(policy, "x", text_result(f"card {CARD}"), monitor=True)
    assert outcome.outcome == "warn"
    assert outcome.result is None
    assert warnings == []  # the session reports the summary, once
    assert outcome.summary == "'x': monitor mode, would be blocked: 1 payment card number (mastercard)"


def test_blocked_resource_read_is_a_message_not_a_result(tmp_path: Path) -> None:
    policy = load(tmp_path, {"all_tools": {"results": {"block": ["secrets"]}}})
    result = {"contents": [{"uri": "file:///x", "text": f"token={TOKEN}"}]}
    outcome, _ = run(policy, None, result, method="resources/read")
    assert outcome.outcome == "block"
    assert outcome.result is None
    assert outcome.message == (
        "mcp-guard withheld the result of this resource read: the server did run it, but the result contained "
        "1 secret (github_token), which the policy does not let through. The values are not shown."
    )


def test_output_schema_without_a_listing_is_not_checked(tmp_path: Path) -> None:
    policy = load(tmp_path, {"tools": {"row": {"results": {"validate_output": True}}}})
    result = {"content": [], "structuredContent": {"count": "many"}}
    outcome, _ = run(policy, "row", result)
    assert outcome.outcome == "forward"


def test_output_schema_mismatch_names_the_path(tmp_path: Path) -> None:
    policy = load(tmp_path, {"tools": {"row": {"results": {"validate_output": True}}}})
    engine = Engine(policy)
    assert engine.results is not None
    schema = {"type": "object", "properties": {"rows": {"type": "array", "items": {"type": "integer"}}}}
    engine.results.remember_tools([{"name": "row", "inputSchema": {"type": "object"}, "outputSchema": schema}])
    check = engine.results.for_rule("row")
    assert check is not None
    pipeline = Pipeline(Judge(engine, MemoryLimiter()))
    snap = Snapshot(engine)
    bad = {"content": [], "structuredContent": {"rows": [1, "two"]}}
    outcome = pipeline.judge_result(ResultIn("tools/call", "row", bad, check, False), snap)
    assert outcome.outcome == "block"
    assert outcome.result is not None
    assert outcome.result["content"] == [
        {
            "type": "text",
            "text": "mcp-guard withheld the result of this call: the server did run it, but its structuredContent "
            "does not match the tool's outputSchema: structuredContent.rows[1]: 'two' is not of type 'integer'.",
        }
    ]
    good = {"content": [], "structuredContent": {"rows": [1, 2]}}
    assert pipeline.judge_result(ResultIn("tools/call", "row", good, check, False), snap).outcome == "forward"
    missing = {"content": [{"type": "text", "text": "x"}]}
    assert pipeline.judge_result(ResultIn("tools/call", "row", missing, check, False), snap).outcome == "block"


def test_explain_shows_what_a_result_would_become(tmp_path: Path, cli: Any) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "version": "1",
                "default": "allow",
                "all_tools": {"results": {"redact": ["secrets", "payment_cards"], "warn": ["emails"]}},
            }
        ),
        encoding="utf-8",
    )
    sample = tmp_path / "result.json"
    sample.write_text(
        json.dumps({"jsonrpc": "2.0", "id": 1, "result": text_result(f"key {TOKEN} for ada@example.org")}),
        encoding="utf-8",
    )
    done = cli("explain", str(policy), "echo", "--result", str(sample))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "ALLOW  echo",
        "  rule:   default",
        "result: REDACT",
        "  emails: warn; 1 found",
        "  payment_cards: redact; none found",
        "  secrets: redact; 1 found",
        "  found:  secrets/github_token x1 at content[0].text",
        "  found:  emails/email x1 at content[0].text",
        '  sends:  {"content": [{"type": "text", "text": "key [redacted: secrets/github_token] for ada@example.org"}]'
        ', "isError": false}',
    ]
    assert TOKEN not in done.stdout
    as_json = json.loads(cli("explain", str(policy), "echo", "--result", str(sample), "--json").stdout)
    assert as_json["result_check"]["outcome"] == "redact"


def test_a_reload_keeps_what_the_session_learnt(tmp_path: Path) -> None:
    hidden = "".join(chr(0xE0000 + ord(c)) for c in "obey")
    before = Engine(load(tmp_path, {"tool_descriptions": {"warn": ["invisible_text"]}})).results
    assert before is not None
    schema = {"type": "object"}
    before.remember_tools([{"name": "t", "description": f"T.{hidden}", "outputSchema": schema}])
    assert before.withheld_reason("t") is None
    after = Engine(
        load(tmp_path, {"tool_descriptions": {"block": ["invisible_text"]}, "all_tools": {"results": {}}})
    ).results
    assert after is not None
    after.adopt(before)
    assert after.withheld_reason("t") == "1 run of invisible characters (tag_characters) at description"
    assert after.listed_output_schema("t") == (True, schema)
