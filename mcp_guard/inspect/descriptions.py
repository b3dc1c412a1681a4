"""``tool_descriptions``: what a server says about itself, checked before the model reads it.

A tool definition (name, description, schemas, annotations: every string in it) that carries
something a ``block`` rule names is withheld from ``tools/list``, and calls to it are refused;
the server's ``instructions`` (``initialize``, ``server/discover``) are dropped in that case.
``warn`` only reports. Reports name the detector, kind, count and path, never the value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mcp_guard.inspect.plan import ResultCheck
from mcp_guard.inspect.verdict import describe
from mcp_guard.inspect.walker import inspect_value


@dataclass(frozen=True, slots=True)
class Screened:
    """One definition's findings: ``block`` (withhold it) or ``warn``, with the line for stderr."""

    action: str  # block | warn
    what: str  # "tool 'x'" or "the server's instructions"
    summary: str  # "1 run of invisible characters (tag_characters) at description"
    findings: list[dict[str, object]]


def screen(value: object, check: ResultCheck, what: str) -> Screened | None:
    """The findings in ``value`` (a tool definition, or the instructions text) that a rule names, or None."""
    if check.scanner is None:
        return None
    inspection = inspect_value(value, check.scanner)
    actions = check.rules.actions
    findings = [f for f in inspection.findings if f.detector in actions]
    if not findings:
        return None
    action = "block" if any(actions[f.detector] == "block" for f in findings) else "warn"
    paths = sorted({f.path or "(text)" for f in findings})
    summary = f"{describe(findings, truncated=inspection.truncated)} at {', '.join(paths)}"
    from mcp_guard.inspect.verdict import audit_records

    records = audit_records(findings)
    for record in records:
        record["action"] = actions.get(str(record["detector"]), "warn")
    return Screened(action, what, summary, records)


def screen_tools(tools: Sequence[object], check: ResultCheck) -> tuple[list[object], list[tuple[str, Screened]]]:
    """The tools to list (without those a ``block`` rule withholds), and (tool name, report) for each finding."""
    kept: list[object] = []
    reports: list[tuple[str, Screened]] = []
    for tool in tools:
        name = tool.get("name") if isinstance(tool, dict) else None
        label = name if isinstance(name, str) else "?"
        found = screen(tool, check, f"tool {label!r}")
        if found is not None:
            reports.append((label, found))
            if found.action == "block":
                continue
        kept.append(tool)
    return kept, reports
