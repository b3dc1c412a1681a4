"""What happens to one result given its findings and the actions: forward, warn, redact or block.

Everything said about a finding (block message, stderr line, audit record) names the detector,
the kind, how many and where (the JSON path in the result), never the value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from mcp_guard.inspect.findings import Finding
from mcp_guard.inspect.rules import RANK, Action, ResultRules
from mcp_guard.inspect.scanner import Scanner, compile_scanner
from mcp_guard.inspect.walker import Inspection, inspect_result

BLOCK_META_KEY = "mcp-guard/result-blocked"

Outcome = Literal["forward", "warn", "redact", "block"]

_NOUNS = {
    "secrets": ("secret", "secrets"),
    "payment_cards": ("payment card number", "payment card numbers"),
    "ibans": ("IBAN", "IBANs"),
    "emails": ("email address", "email addresses"),
    "invisible_text": ("run of invisible characters", "runs of invisible characters"),
    "terminal_escapes": ("terminal control sequence", "terminal control sequences"),
}


def _noun(detector: str, count: int) -> str:
    one, many = _NOUNS.get(detector, (f"match of pattern {detector!r}", f"matches of pattern {detector!r}"))
    return f"{count} {one if count == 1 else many}"


def describe(findings: Iterable[Finding], *, truncated: bool = False) -> str:
    """``2 secrets (github_token, jwt) and 1 payment card number (visa)``: kinds and counts only."""
    per_detector: dict[str, Counter[str]] = {}
    for f in findings:
        per_detector.setdefault(f.detector, Counter())[f.kind] += 1
    parts = [
        f"{_noun(detector, sum(kinds.values()))} ({', '.join(sorted(kinds))})"
        for detector, kinds in per_detector.items()
    ]
    text = "".join(parts) if len(parts) <= 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"at least {text} (the scan stopped there)" if truncated else text


def audit_records(findings: Iterable[Finding]) -> list[dict[str, object]]:
    """One record per (detector, kind): how many and at which paths. For the audit log."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for f in findings:
        grouped.setdefault((f.detector, f.kind), []).append(f.path)
    return [
        {"detector": detector, "kind": kind, "count": len(paths), "paths": sorted(set(paths))}
        for (detector, kind), paths in grouped.items()
    ]


def block_message(findings: Iterable[Finding], *, what: str = "call", truncated: bool = False) -> str:
    return (
        f"mcp-guard withheld the result of this {what}: the server did run it, but the result contained "
        f"{describe(findings, truncated=truncated)}, which the policy does not let through. The values are not shown."
    )


def block_result(findings: Iterable[Finding], *, complete: bool = False, truncated: bool = False) -> dict[str, object]:
    """The ``CallToolResult`` (``isError: true``) sent instead of a blocked one.

    ``complete``: add ``"resultType": "complete"`` (a 2026-07-28 request; its clients reject
    results without it).
    """
    items = list(findings)
    result: dict[str, object] = {
        "content": [{"type": "text", "text": block_message(items, truncated=truncated)}],
        "isError": True,
        "_meta": {BLOCK_META_KEY: {"findings": audit_records(items)}},
    }
    if complete:
        result["resultType"] = "complete"
    return result


@dataclass(frozen=True, slots=True)
class ResultVerdict:
    """``outcome`` and, for redact and block, the ``result`` to send instead (None: send the original).

    ``findings`` are those of detectors with a rule, each reported with its ``actions`` entry;
    ``labels`` are the detector names found (session labels for flow rules).
    """

    outcome: Outcome
    findings: tuple[Finding, ...] = ()
    actions: Mapping[str, Action] | None = None
    result: object = None
    truncated: bool = False

    @property
    def labels(self) -> frozenset[str]:
        return frozenset(f.detector for f in self.findings)

    def with_action(self, action: Action) -> tuple[Finding, ...]:
        actions = self.actions or {}
        return tuple(f for f in self.findings if actions.get(f.detector) == action)

    def audit(self) -> list[dict[str, object]]:
        actions = self.actions or {}
        records = audit_records(self.findings)
        for record in records:
            record["action"] = actions.get(str(record["detector"]), "warn")
        return records

    def summary(self) -> str:
        """One line for stderr: what was found and what was done, never the values."""
        if not self.findings:
            return "no findings"
        done = {"warn": "passed on", "redact": "redacted", "block": "blocked", "forward": "passed on"}[self.outcome]
        return f"result {done}: {describe(self.findings, truncated=self.truncated)}"


FORWARD = ResultVerdict("forward")


def judge(
    result: object,
    inspection: Inspection,
    actions: Mapping[str, Action],
    *,
    complete: bool = False,
    method: str = "tools/call",
) -> ResultVerdict:
    """Decide from findings already made (see :func:`judge_result`)."""
    if not inspection.findings:
        return FORWARD
    findings = tuple(f for f in inspection.findings if f.detector in actions)
    if not findings:
        return FORWARD
    truncated = inspection.truncated
    strictest = max((actions[f.detector] for f in findings), key=RANK.__getitem__)
    # Past MAX_FINDINGS not every value is known, so a redaction could leave some: block instead.
    if strictest == "block" or (strictest == "redact" and truncated):
        # A resources/read or prompts/get result has no isError: the caller answers with an
        # error carrying block_message(); the verdict's result stays None.
        replacement = block_result(findings, complete=complete, truncated=truncated) if method == "tools/call" else None
        return ResultVerdict("block", findings, actions, replacement, truncated)
    if strictest == "redact":
        chosen = [f for f in findings if actions[f.detector] == "redact"]
        return ResultVerdict("redact", findings, actions, inspection.redacted(result, chosen))
    return ResultVerdict("warn", findings, actions, None, truncated)


def judge_result(
    result: object,
    rules: ResultRules,
    scanner: Scanner | None = None,
    *,
    complete: bool = False,
    method: str = "tools/call",
) -> ResultVerdict:
    """Scan ``result`` (the JSON-RPC ``result`` object) and decide what to send.

    ``method``: ``tools/call`` (also for a task's result fetched later), ``resources/read`` or
    ``prompts/get``. ``scanner`` defaults to the cached one for ``rules``.
    """
    if not rules:
        return FORWARD
    if scanner is None:
        scanner = scanner_for(rules)
    return judge(result, inspect_result(result, scanner), rules.actions, complete=complete, method=method)


def scanner_for(rules: ResultRules) -> Scanner:
    """The (cached) scanner for the detectors ``rules`` name. Build it at policy load to keep it off calls."""
    return compile_scanner(rules.actions.keys(), rules.patterns)
