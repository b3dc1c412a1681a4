"""``mcp-guard test``: the runner (every case form, the simulated clock, approvals, pins) and its reports."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, guard_command, isolated_env, write_policy

from mcp_guard.commands.test import junit_xml, report_json, report_text
from mcp_guard.commands.testing import CaseResult, Outcome, Report, load_suite, run_suite
from mcp_guard.policy.load import PolicyError

RATE = {
    "version": "1",
    "default": "deny",
    "hide": ["delete_*"],
    "tools": {
        "track": {"limits": [{"counter": "track_rate", "window": "minute", "max": 30}]},
        "pay": {
            "deny_if": [{"path": "args.amount", "op": "gt", "value": 100, "reason": "Too much."}],
            "approve_if": [{"path": "args.amount", "op": "gt", "value": 10, "reason": "Big payment."}],
            "limits": [{"counter": "paid", "window": "1h", "max": 50, "increment_from": "args.amount"}],
            "remember": "10m",
        },
        "flaky": {"limits": [{"counter": "flaky_rate", "window": "minute", "max": 2, "refund_on_error": True}]},
    },
}


def run_cases(tmp_path: Path, cases: list[dict[str, Any]], policy: dict[str, Any] | None = None) -> Report:
    write_policy(tmp_path, policy or RATE)
    tests = tmp_path / "policy.tests.yaml"
    tests.write_text(yaml.safe_dump({"policy": "policy.json", "cases": cases}, sort_keys=False), encoding="utf-8")
    return run_suite(load_suite(tests))


def statuses(report: Report) -> list[tuple[str, str]]:
    return [(r.name, r.status) for r in report.results]


def only(report: Report) -> CaseResult:
    assert len(report.results) == 1
    return report.results[0]


# Case forms ------------------------------------------------------------------------------------------


def test_a_call_with_an_expected_word_or_mapping(tmp_path: Path) -> None:
    report = run_cases(
        tmp_path,
        [
            {"name": "allowed", "call": {"tool": "track"}, "expect": "allow"},
            {
                "name": "listed rule",
                "call": {"tool": "track", "args": {}},
                "expect": {"decision": "allow", "rule": "tools.track"},
            },
            {
                "name": "condition",
                "call": {"tool": "pay", "args": {"amount": 500}},
                "expect": {"decision": "deny", "rule": "tools.pay.deny_if[0]", "reason": "Too"},
            },
            {"name": "approval", "call": {"tool": "pay", "args": {"amount": 20}}, "expect": "approve"},
            {"name": "hidden", "call": {"tool": "delete_all"}, "expect": {"decision": "deny", "rule": "hide"}},
            {"name": "unlisted", "call": {"tool": "other"}, "expect": {"decision": "deny", "rule": "default"}},
        ],
    )
    assert statuses(report) == [
        ("allowed", "pass"),
        ("listed rule", "pass"),
        ("condition", "pass"),
        ("approval", "pass"),
        ("hidden", "pass"),
        ("unlisted", "pass"),
    ]
    assert report.ok


def test_a_failing_case_reports_expected_against_actual(tmp_path: Path) -> None:
    report = run_cases(
        tmp_path,
        [
            {
                "name": "wrong rule and reason",
                "call": {"tool": "pay", "args": {"amount": 500}},
                "expect": {"decision": "deny", "rule": "tools.pay.require[0]", "reason": "Too little"},
            },
            {"name": "wrong decision", "call": {"tool": "track"}, "expect": "deny"},
        ],
    )
    assert not report.ok
    first, second = report.results
    assert first.status == "fail" and first.failure is not None
    assert first.failure.mismatched == ("rule", "reason")
    assert first.failure.actual == Outcome("deny", "tools.pay.deny_if[0]", "Too much.", "condition")
    assert (first.failure.step, first.failure.call, first.failure.calls, first.failure.at_s) == (1, 1, 1, 0.0)
    assert second.failure is not None and second.failure.mismatched == ("decision",)
    assert second.failure.actual == Outcome("allow", "tools.track", None, None)


def test_repeat_with_expect_last(tmp_path: Path) -> None:
    report = run_cases(
        tmp_path,
        [
            {
                "name": "31st refused",
                "repeat": 31,
                "call": {"tool": "track"},
                "expect": "allow",
                "expect_last": {
                    "decision": "deny",
                    "rule": "tools.track.limits[0]",
                    "reason": "at most 30 calls per minute",
                },
            },
            # Only the last call is checked when there is no expect.
            {"name": "last only", "repeat": 31, "call": {"tool": "track"}, "expect_last": "deny"},
            # expect without expect_last: every call, so the 31st fails.
            {"name": "every call allowed", "repeat": 31, "call": {"tool": "track"}, "expect": "allow"},
        ],
    )
    assert statuses(report) == [("31st refused", "pass"), ("last only", "pass"), ("every call allowed", "fail")]
    failure = report.results[2].failure
    assert failure is not None
    assert (failure.call, failure.calls) == (31, 31)
    assert failure.actual.decision == "deny" and failure.actual.rule == "tools.track.limits[0]"
    assert failure.actual.reason is not None and failure.actual.reason.startswith(
        "Rate limit reached: at most 30 calls per minute (counter 'track_rate'). A slot frees in 60 s"
    )


def test_a_sequence_stops_at_its_first_failing_step(tmp_path: Path) -> None:
    report = run_cases(
        tmp_path,
        [
            {
                "name": "seq",
                "sequence": [
                    {"call": {"tool": "track"}, "expect": "allow"},
                    {"call": {"tool": "other"}, "expect": "allow"},
                    {"call": {"tool": "track"}, "expect": "deny"},
                ],
            }
        ],
    )
    result = only(report)
    assert result.status == "fail" and result.calls == 2
    assert result.failure is not None and result.failure.step == 2 and result.failure.tool == "other"


def test_each_case_starts_with_fresh_counters(tmp_path: Path) -> None:
    case = {"repeat": 30, "call": {"tool": "track"}, "expect": "allow"}
    report = run_cases(tmp_path, [{"name": "first", **case}, {"name": "second", **case}])
    assert statuses(report) == [("first", "pass"), ("second", "pass")]


# The simulated clock ---------------------------------------------------------------------------------


def test_the_simulated_clock_admits_the_31st_call_after_the_window(tmp_path: Path) -> None:
    started = time.monotonic()
    report = run_cases(
        tmp_path,
        [
            {
                "name": "window",
                "sequence": [
                    {"repeat": 30, "call": {"tool": "track"}, "expect": "allow"},
                    # The window is closed: a call made at 0 s still counts at exactly 60 s.
                    {"at": "60s", "call": {"tool": "track"}, "expect": {"decision": "deny", "reason": "frees in 0 s"}},
                    {"at": "61s", "call": {"tool": "track"}, "expect": "allow"},
                    # The 30 made at 0 s have left the window: 29 more fit beside the one made at 61 s.
                    {"repeat": 30, "call": {"tool": "track"}, "expect": "allow", "expect_last": "deny"},
                ],
            },
            # Spaced calls: the 31st, at 60 s, still meets the first; spaced a little wider, it does not.
            {"name": "every 2s", "repeat": 31, "every": "2s", "call": {"tool": "track"}, "expect_last": "deny"},
            {"name": "every 2.1s", "repeat": 31, "every": 2.1, "call": {"tool": "track"}, "expect": "allow"},
            # An hour's spend cap: the clock moves an hour without waiting one.
            {
                "name": "hour",
                "sequence": [
                    {"call": {"tool": "pay", "args": {"amount": 10}}, "repeat": 5, "expect": "allow"},
                    {"at": "59m", "call": {"tool": "pay", "args": {"amount": 10}}, "expect": "deny"},
                    {"at": "1h", "call": {"tool": "pay", "args": {"amount": 10}}, "expect": "deny"},
                    {"at": 3600.5, "call": {"tool": "pay", "args": {"amount": 10}}, "expect": "allow"},
                ],
            },
        ],
    )
    assert statuses(report) == [("window", "pass"), ("every 2s", "pass"), ("every 2.1s", "pass"), ("hour", "pass")]
    assert time.monotonic() - started < 10  # nothing waited for real


def test_a_failure_says_when_on_the_simulated_clock(tmp_path: Path) -> None:
    report = run_cases(
        tmp_path,
        [
            {
                "name": "late",
                "sequence": [
                    {"repeat": 30, "call": {"tool": "track"}, "expect": "allow"},
                    {"at": "90s", "repeat": 3, "every": "1s", "call": {"tool": "track"}, "expect": "deny"},
                ],
            }
        ],
    )
    failure = only(report).failure
    assert failure is not None
    assert (failure.step, failure.call, failure.calls, failure.at_s) == (2, 1, 3, 90.0)


# Approvals and results -------------------------------------------------------------------------------


def test_approvals_stop_at_approve_or_go_on_as_the_person_answers(tmp_path: Path) -> None:
    big = {"tool": "pay", "args": {"amount": 20}}
    report = run_cases(
        tmp_path,
        [
            {
                "name": "asks",
                "call": big,
                "expect": {"decision": "approve", "rule": "tools.pay.approve_if[0]", "reason": "Big"},
            },
            {
                "name": "approved calls count",
                "sequence": [
                    {"call": big, "approved": True, "expect": {"decision": "allow", "rule": "tools.pay.approve_if[0]"}},
                    {
                        "call": {"tool": "pay", "args": {"amount": 40}},
                        "approved": True,
                        "expect": {"decision": "deny", "rule": "tools.pay.limits[0]"},
                    },
                ],
            },
            {
                "name": "declined",
                "call": big,
                "approved": False,
                "expect": {"decision": "deny", "rule": "tools.pay.approve_if[0]", "reason": "A person declined"},
            },
            {
                "name": "remember",
                "sequence": [
                    {"call": big, "approved": True, "expect": "allow"},
                    # The same call within 10 minutes passes without asking; another amount asks.
                    {"at": "9m", "call": big, "expect": "allow"},
                    {"at": "9m", "call": {"tool": "pay", "args": {"amount": 11}}, "expect": "approve"},
                    {"at": "10m", "call": big, "expect": "approve"},
                ],
            },
        ],
    )
    assert statuses(report) == [
        ("asks", "pass"),
        ("approved calls count", "pass"),
        ("declined", "pass"),
        ("remember", "pass"),
    ]


def test_a_server_error_gives_back_refund_on_error_limits(tmp_path: Path) -> None:
    report = run_cases(
        tmp_path,
        [
            {
                "name": "refunds",
                "sequence": [
                    {"call": {"tool": "flaky"}, "result": "error", "repeat": 5, "expect": "allow"},
                    {"call": {"tool": "flaky"}, "repeat": 2, "expect": "allow"},
                    {"call": {"tool": "flaky"}, "expect": {"decision": "deny", "rule": "tools.flaky.limits[0]"}},
                ],
            }
        ],
    )
    assert statuses(report) == [("refunds", "pass")]


def test_a_monitor_mode_policy_is_tested_for_what_it_would_enforce(tmp_path: Path) -> None:
    report = run_cases(
        tmp_path, [{"name": "n", "call": {"tool": "other"}, "expect": "deny"}], {**RATE, "mode": "monitor"}
    )
    assert report.ok
    assert report_json(report)["mode"] == "monitor"


# Pins and schemas --------------------------------------------------------------------------------------


def write_lock(path: Path) -> None:
    from mcp_guard.integrity.lockfile import LockFile

    schema = {"type": "object", "properties": {"amount": {"type": "number", "minimum": 0}}, "required": ["amount"]}
    LockFile.from_tools([{"name": "pay", "description": "Pay.", "inputSchema": schema}]).save(path)


PIN_CASES = [
    {
        "name": "valid",
        "call": {"tool": "pay", "args": {"amount": 1}},
        "expect": {"decision": "allow", "rule": "default"},
    },
    {
        "name": "schema",
        "call": {"tool": "pay", "args": {"amount": -5}},
        "expect": {"decision": "deny", "rule": "validate_arguments", "reason": "less than the minimum of 0"},
    },
    {"name": "unpinned", "call": {"tool": "other"}, "expect": {"decision": "deny", "rule": "pins"}},
]


def test_pins_and_schemas_from_the_test_files_lock(tmp_path: Path) -> None:
    write_lock(tmp_path / "tools.lock.json")
    write_policy(tmp_path, {"version": "1", "default": "allow", "validate_arguments": True})
    tests = tmp_path / "t.json"
    own_files = {
        "name": "own files",
        "call": {"tool": "pay", "args": {"amount": 1, "note": str(tmp_path / "policy.json")}},
        "expect": {"decision": "deny", "rule": "protect_own_files"},
    }
    tests.write_text(json.dumps({"policy": "policy.json", "lock": "tools.lock.json", "cases": [*PIN_CASES, own_files]}))
    report = run_suite(load_suite(tests))
    assert statuses(report) == [("valid", "pass"), ("schema", "pass"), ("unpinned", "pass"), ("own files", "pass")]
    # Without the lock, nothing stands in for the server's list: the schema cannot be checked.
    tests.write_text(json.dumps({"policy": "policy.json", "cases": PIN_CASES[:1]}))
    result = only(run_suite(load_suite(tests)))
    assert result.status == "error"
    assert result.error is not None and "give the test a lock file" in result.error


def test_pins_from_the_policys_pins_file_and_from_lock_option(tmp_path: Path) -> None:
    (tmp_path / "locks").mkdir()
    write_lock(tmp_path / "locks" / "p.lock.json")
    write_policy(
        tmp_path,
        {"version": "1", "default": "allow", "validate_arguments": True, "pins": {"file": "locks/p.lock.json"}},
    )
    tests = tmp_path / "t.json"
    tests.write_text(json.dumps({"policy": "policy.json", "cases": PIN_CASES}))
    assert run_suite(load_suite(tests)).ok
    write_policy(tmp_path, {"version": "1", "default": "allow", "validate_arguments": True})
    assert run_suite(load_suite(tests, lock=tmp_path / "locks" / "p.lock.json")).ok


# Where tests live, and invalid files ------------------------------------------------------------------


def test_tests_inside_the_policy(tmp_path: Path) -> None:
    policy = write_policy(
        tmp_path,
        {**RATE, "tests": [{"name": "t", "repeat": 31, "call": {"tool": "track"}, "expect_last": "deny"}]},
    )
    report = run_suite(load_suite(policy))
    assert statuses(report) == [("t", "pass")]
    lines = policy.read_text().splitlines()
    assert report.results[0].line == lines.index('  "tests": [') + 2  # the case's opening brace, below it


def test_a_malformed_test_stops_the_policy_from_loading(tmp_path: Path) -> None:
    """As any unknown field does: the guard's loader checks the section it otherwise ignores."""
    from mcp_guard.policy.load import load_policy

    policy = write_policy(
        tmp_path, 'version: "1"\ntests:\n  - name: a\n    call: {tool: x}\n    expct: deny\n', "p.yaml"
    )
    with pytest.raises(PolicyError) as caught:
        load_policy(policy)
    assert str(caught.value) == f"{policy}:5:5: tests[0].expct: unknown field 'expct'; did you mean 'expect'?"


def test_a_policy_without_tests_is_a_usage_error(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, RATE)
    with pytest.raises(PolicyError) as caught:
        load_suite(policy)
    assert str(caught.value) == (
        f"{policy}: is a policy without a 'tests' section: add one, or write a test file naming it"
    )


def test_invalid_test_files_are_reported_with_positions(tmp_path: Path) -> None:
    write_policy(tmp_path, RATE)
    tests = tmp_path / "t.yaml"
    tests.write_text(
        "policy: policy.json\n"
        "cases:\n"
        "  - name: a\n"
        "    call: {tool: track}\n"
        "    expect: alow\n"
        "  - name: b\n"
        "    sequence:\n"
        "      - {call: {tool: track}, expect_lst: deny}\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError) as caught:
        load_suite(tests)
    assert str(caught.value) == (
        f"{tests}:5:5: cases[0].expect: expected one of 'allow', 'deny' or 'approve'; got 'alow'\n"
        f"{tests}:8:31: cases[1].sequence[0].expect_lst: unknown field 'expect_lst'; did you mean 'expect_last'?"
    )
    tests.write_text(
        "policy: policy.json\n"
        "cases:\n"
        "  - name: a\n"
        "    sequence:\n"
        "      - {at: 90s, call: {tool: track}, expect: allow}\n"
        "      - {at: 30s, call: {tool: track}}\n"
        "  - name: a\n"
        "    call: {tool: track}\n"
        "    every: 1s\n"
        "    expect: allow\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError) as caught:
        load_suite(tests)
    assert str(caught.value) == (
        f"{tests}:6:9: cases[0].sequence[1]: say what the call must get: 'expect' (or 'expect_last' with 'repeat')\n"
        f"{tests}:6:10: cases[0].sequence[1].at: at 30 s is before the previous step ended (90 s): times count from "
        "the case's start and never go back\n"
        f"{tests}:7:5: cases[1].name: case name 'a' is used twice (also cases[0])\n"
        f"{tests}:9:5: cases[1].every: 'every' spaces repeated calls: it needs 'repeat' of 2 or more"
    )


def test_a_json_test_file_and_a_missing_policy(tmp_path: Path) -> None:
    tests = tmp_path / "t.json"
    tests.write_text(
        '{\n  "policy": "nowhere.json",\n  "cases": [{"name": "a", "call": {"tool": "x"}, "expect": "deny"}]\n}\n'
    )
    with pytest.raises(PolicyError) as caught:
        load_suite(tests)
    assert str(caught.value) == f"{tmp_path / 'nowhere.json'}: file not found"
    tests.write_text('{\n  "policy": "p.json",\n  "cases": [{"name": "a", "call": {"tool": "x", "args": []}}]\n}\n')
    with pytest.raises(PolicyError) as caught:
        load_suite(tests)
    assert str(caught.value) == f"{tests}:3:49: cases[0].call.args: Input should be a valid dictionary"


# Reports -------------------------------------------------------------------------------------------------


def failing_report(tmp_path: Path) -> Report:
    return run_cases(
        tmp_path,
        [
            {"name": "passes", "call": {"tool": "track"}, "expect": "allow"},
            {
                "name": "limit",
                "repeat": 31,
                "call": {"tool": "track"},
                "expect_last": {"decision": "deny", "rule": "tools.track.limit[0]", "reason": "per hour"},
            },
        ],
    )


def test_text_report_shows_a_diff_of_what_differs(tmp_path: Path) -> None:
    report = failing_report(tmp_path)
    text = report_text(report)
    tests = tmp_path / "policy.tests.yaml"
    lines = text.splitlines()
    assert lines[:-1] == [
        f"{tests}: 2 cases (policy {tmp_path / 'policy.json'})",
        "PASS  passes",
        f"FAIL  limit  ({tests}:7)",
        "      step 1, call 31 of 31, at 0s: track {}",
        "        decision:   deny",
        "        rule:     - tools.track.limit[0]",
        "                  + tools.track.limits[0]",
        "        reason:   - (contains) per hour",
        "                  + Rate limit reached: at most 30 calls per minute (counter 'track_rate'). "
        "A slot frees in 60 s; retry after that.",
    ]
    assert lines[-1].startswith("1 failed, 1 passed in ")


def test_json_and_junit_reports(tmp_path: Path) -> None:
    report = failing_report(tmp_path)
    out = report_json(report)
    assert (out["passed"], out["failed"], out["errors"]) == (1, 1, 0)
    failure = out["cases"][1]["failure"]
    assert failure["expected"] == {"decision": "deny", "rule": "tools.track.limit[0]", "reason": "per hour"}
    assert failure["actual"]["rule"] == "tools.track.limits[0]" and failure["actual"]["kind"] == "limit"
    assert failure["mismatched"] == ["rule", "reason"]
    assert json.loads(json.dumps(out)) == out

    root = ET.fromstring(junit_xml(report))  # noqa: S314 - our own output
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "0")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["passes", "limit"]
    assert cases[0].find("failure") is None
    failed = cases[1].find("failure")
    assert failed is not None
    assert failed.get("message") == (
        "rule: expected tools.track.limit[0], got tools.track.limits[0]; reason: expected a reason containing "
        "'per hour', got \"Rate limit reached: at most 30 calls per minute (counter 'track_rate'). A slot frees in "
        '60 s; retry after that."'
    )
    assert failed.text is not None and failed.text.startswith("step 1, call 31 of 31, at 0s: track {}\n")


# End to end: the command as a user runs it -----------------------------------------------------------------

EXAMPLE = ROOT / "examples" / "payments.tests.yaml"


def mcp_guard_test(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*guard_command(), "test", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=isolated_env(tmp_path),
    )


def test_the_example_test_file_passes(tmp_path: Path) -> None:
    result = mcp_guard_test(tmp_path, str(EXAMPLE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == f"{EXAMPLE}: 10 cases (policy {EXAMPLE.parent / 'policies' / 'payments.json'})"
    assert lines[1:-1] == [
        "PASS  a small charge passes",
        "PASS  charges above 10 000 are never made",
        "PASS  only euros and dollars",
        "PASS  a person approves charges above 1 000",
        "PASS  a declined charge is refused",
        "PASS  approved charges count toward 5 000 an hour",
        "PASS  the 31st event in a minute is refused",
        "PASS  a slot frees once the window has passed",
        "PASS  hidden tools are refused as unknown",
        "PASS  tools the policy does not list are refused",
    ]
    assert lines[-1].startswith("10 passed in ")


def test_a_changed_policy_fails_its_tests_with_exit_1_json_and_junit(tmp_path: Path) -> None:
    # The same tests against a policy someone loosened: 60 events a minute instead of 30.
    (tmp_path / "policies").mkdir()
    policy = json.loads((ROOT / "examples" / "policies" / "payments.json").read_text())
    policy["tools"]["track_behavior_event"]["limits"][0]["max"] = 60
    (tmp_path / "policies" / "payments.json").write_text(json.dumps(policy, indent=2))
    tests = tmp_path / "payments.tests.yaml"
    tests.write_text(EXAMPLE.read_text())
    junit = tmp_path / "out" / "junit.xml"
    junit.parent.mkdir()

    result = mcp_guard_test(tmp_path, str(tests), "--junit", str(junit))
    assert result.returncode == 1, result.stderr
    assert "FAIL  the 31st event in a minute is refused  (" in result.stdout
    assert (
        "      step 1, call 31 of 31, at 0s: track_behavior_event {}\n"
        "        decision: - deny\n"
        "                  + allow\n"
        "        rule:     - tools.track_behavior_event.limits[0]\n"
        "                  + tools.track_behavior_event\n"
        "        reason:   - (contains) at most 30 calls per minute\n"
        "                  + (none)\n"
    ) in result.stdout
    assert "FAIL  a slot frees once the window has passed" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("2 failed, 8 passed in ")
    root = ET.fromstring(junit.read_bytes())  # noqa: S314 - our own output
    assert root.get("failures") == "2" and root.get("tests") == "10"

    result = mcp_guard_test(tmp_path, str(tests), "--json")
    assert result.returncode == 1
    out = json.loads(result.stdout)
    assert [c["name"] for c in out["cases"] if c["status"] == "fail"] == [
        "the 31st event in a minute is refused",
        "a slot frees once the window has passed",
    ]


def test_an_invalid_test_file_exits_2_with_its_position(tmp_path: Path) -> None:
    tests = tmp_path / "bad.tests.yaml"
    tests.write_text(
        f"policy: {ROOT / 'examples' / 'policies' / 'payments.json'}\ncases:\n  - name: x\n    cal: {{}}\n"
    )
    result = mcp_guard_test(tmp_path, str(tests))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"{tests}:4:5: cases[0].cal: unknown field 'cal'; did you mean 'call'?\n"


def test_help_shows_examples(tmp_path: Path) -> None:
    result = mcp_guard_test(tmp_path, "--help")
    assert result.returncode == 0
    assert "mcp-guard test examples/payments.tests.yaml" in result.stdout
    assert 'expect_last: {decision: deny, rule: "tools.track_behavior_event.limits[0]"}' in result.stdout


def test_the_guard_does_not_pay_for_tests_it_ignores(tmp_path: Path) -> None:
    """Loading a policy without tests (the guard's start) never builds the case models."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from mcp_guard.policy.load import load_policy\n"
        f"load_policy(Path({str(ROOT / 'examples' / 'policies' / 'payments.json')!r}))\n"
        "print('mcp_guard.policy.cases' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=isolated_env(tmp_path),
    )
    assert (result.returncode, result.stdout) == (0, "False\n"), result.stderr


def test_the_policy_schema_describes_the_tests_section() -> None:
    import jsonschema

    schema = json.loads((ROOT / "examples" / "policies" / "policy.schema.json").read_text())
    cases = yaml.safe_load(EXAMPLE.read_text())["cases"]
    jsonschema.validate({"version": "1", "tests": cases}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": "1", "tests": [{"name": "a", "call": {"tool": "x"}, "expect": "alow"}]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": "1", "tests": [{"name": "a", "cal": {"tool": "x"}}]}, schema)
