"""``mcp-guard test FILE``: run a policy's test cases and report like pytest (text, ``--json``, ``--junit``)."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_guard import exits

if TYPE_CHECKING:
    from mcp_guard.commands.testing import CaseResult, Failure, Report

HELP = (
    "Run policy tests: each case's calls go through the guard's own checks (limits on a simulated clock, "
    "conditions, approvals, hidden tools, pins and schemas with a lock file). "
    "Exit 0 if all pass, 1 if any fails, 2 for an invalid test file or policy."
)

FORMAT = """\
a test file (YAML or JSON; "policy" is relative to it):
  policy: payments.json
  cases:
    - name: small charge passes
      call: {tool: create_charge, args: {amount: 50, currency: EUR, customer_id: cus_0001}}
      expect: allow
    - name: the 31st event in a minute is refused
      repeat: 31
      call: {tool: track_behavior_event}
      expect: allow
      expect_last: {decision: deny, rule: "tools.track_behavior_event.limits[0]"}
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = FORMAT  # the examples to run come after it, from mcp_guard.helptext
    parser.add_argument("file", type=Path, help="a test file (YAML or JSON), or a policy with a 'tests' section")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of text")
    parser.add_argument("--junit", metavar="FILE", type=Path, help="also write the results as JUnit XML (for CI)")
    parser.add_argument(
        "--lock",
        "--pins",
        dest="lock",
        metavar="FILE",
        type=Path,
        help="the lock file standing in for the server's tool list (default: the test file's 'lock', else the "
        "policy's pins.file)",
    )


def run(args: argparse.Namespace) -> int:
    from mcp_guard.commands.testing import load_suite, run_suite
    from mcp_guard.policy.load import PolicyError

    try:
        suite = load_suite(args.file, args.lock)
        report = run_suite(suite)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return exits.USAGE
    except ValueError as exc:  # a lock file that cannot be used
        print(f"mcp-guard test: {exc}", file=sys.stderr)
        return exits.USAGE
    if args.junit is not None:
        from mcp_guard import atomic

        try:
            atomic.write(args.junit, junit_xml(report))
        except OSError as exc:
            print(f"mcp-guard test: cannot write {args.junit}: {exc.strerror or exc}", file=sys.stderr)
            return exits.FAILED
    if args.json:
        print(json.dumps(report_json(report), indent=2, ensure_ascii=False))
    else:
        print(report_text(report), end="")
    return exits.OK if report.ok else exits.FAILED


# Text ---------------------------------------------------------------------------------------------------


def report_text(report: Report) -> str:
    suite = report.suite
    lines = [
        f"{suite.file}: {len(suite.cases)} case{'s' if len(suite.cases) != 1 else ''} (policy {suite.policy_path})"
    ]
    if suite.policy.mode == "monitor":
        lines.append("note: the policy is in monitor mode; these are the decisions the guard would report")
    for result in report.results:
        where = f"  ({suite.file}:{result.line})" if result.line is not None and result.status != "pass" else ""
        lines.append(f"{result.status.upper():<5} {result.name}{where}")
        if result.failure is not None:
            lines.extend(failure_lines(result.failure))
        if result.error is not None:
            lines.append(f"      {result.error}")
    lines.append(summary_line(report))
    return "\n".join(lines) + "\n"


def summary_line(report: Report) -> str:
    parts = [
        f"{n} {word}"
        for n, word in (
            (report.count("fail"), "failed"),
            (report.count("pass"), "passed"),
            (report.count("error"), "error" if report.count("error") == 1 else "errors"),
        )
        if n
    ]
    return f"{', '.join(parts) or 'no cases'} in {report.seconds:.2f}s"


def failure_lines(failure: Failure) -> list[str]:
    """Where the case failed and, field by field, what was expected (``-``) against what the guard said (``+``)."""
    call = json.dumps(failure.arguments, ensure_ascii=False)
    repeat = f", call {failure.call} of {failure.calls}" if failure.calls > 1 else ""
    lines = [f"      step {failure.step}{repeat}, at {failure.at_s:g}s: {failure.tool} {call}"]
    expected = failure.expected
    actual = failure.actual
    wanted = {
        "decision": expected.decision,
        "rule": expected.rule,
        "reason": f"(contains) {expected.reason}" if expected.reason is not None else None,
    }
    got = {"decision": actual.decision, "rule": actual.rule, "reason": actual.reason}
    for name in ("decision", "rule", "reason"):
        label = f"        {name + ':':<9} "
        if name in failure.mismatched:
            lines.append(f"{label}- {wanted[name]}")
            lines.append(f"{' ' * len(label)}+ {got[name] if got[name] is not None else '(none)'}")
        elif got[name] is not None:
            lines.append(f"{label}  {got[name]}")
    return lines


# JSON ---------------------------------------------------------------------------------------------------


def report_json(report: Report) -> dict[str, Any]:
    suite = report.suite
    out: dict[str, Any] = {
        "file": str(suite.file),
        "policy": str(suite.policy_path),
        "lock": str(suite.lock) if suite.lock is not None else None,
        "passed": report.count("pass"),
        "failed": report.count("fail"),
        "errors": report.count("error"),
        "seconds": round(report.seconds, 6),
        "cases": [_case_json(r) for r in report.results],
    }
    if suite.policy.mode == "monitor":
        out["mode"] = "monitor"
    return out


def _case_json(result: CaseResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": result.name,
        "line": result.line,
        "status": result.status,
        "calls": result.calls,
        "seconds": round(result.seconds, 6),
    }
    failure = result.failure
    if failure is not None:
        out["failure"] = {
            "step": failure.step,
            "call": failure.call,
            "calls": failure.calls,
            "at_s": failure.at_s,
            "tool": failure.tool,
            "arguments": failure.arguments,
            "expected": failure.expected.model_dump(),
            "actual": failure.actual.as_dict(),
            "mismatched": list(failure.mismatched),
        }
    if result.error is not None:
        out["error"] = result.error
    return out


# JUnit XML ----------------------------------------------------------------------------------------------


def junit_xml(report: Report) -> bytes:
    """The results in the JUnit XML layout CI systems read: one testsuite, one testcase per case."""
    import xml.etree.ElementTree as ET  # writing XML only, never parsing it

    suite = report.suite
    counts = {
        "tests": str(len(report.results)),
        "failures": str(report.count("fail")),
        "errors": str(report.count("error")),
        "skipped": "0",
        "time": f"{report.seconds:.6f}",
    }
    root = ET.Element("testsuites", {"name": "mcp-guard test", **counts})
    element = ET.SubElement(root, "testsuite", {"name": str(suite.file), **counts})
    properties = ET.SubElement(element, "properties")
    ET.SubElement(properties, "property", {"name": "policy", "value": str(suite.policy_path)})
    classname = suite.file.name.removesuffix(suite.file.suffix)
    for result in report.results:
        attributes = {
            "classname": classname,
            "name": result.name,
            "file": str(suite.file),
            "time": f"{result.seconds:.6f}",
        }
        if result.line is not None:
            attributes["line"] = str(result.line)
        case = ET.SubElement(element, "testcase", attributes)
        if result.failure is not None:
            failure = result.failure
            message = "; ".join(
                f"{name}: expected {_expected_word(failure, name)}, got {_actual_word(failure, name)}"
                for name in failure.mismatched
            )
            node = ET.SubElement(case, "failure", {"message": message, "type": "PolicyTestFailure"})
            node.text = textwrap.dedent("\n".join(failure_lines(failure)))
        if result.error is not None:
            ET.SubElement(case, "error", {"message": result.error, "type": "PolicyTestError"}).text = result.error
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def _expected_word(failure: Failure, name: str) -> str:
    if name == "reason":
        return f"a reason containing {failure.expected.reason!r}"
    return str(getattr(failure.expected, name))


def _actual_word(failure: Failure, name: str) -> str:
    value = getattr(failure.actual, name)
    return repr(value) if name == "reason" else str(value)
