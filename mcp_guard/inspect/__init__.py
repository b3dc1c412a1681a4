"""Detectors for what comes back from a server: secrets, card numbers, IBANs, addresses, hidden text.

A pure library (no I/O). The pipeline's result side uses it like this::

    rules = combine_rules(all_tools_results, tool_results)   # policy load; falsy: nothing to do
    scanner = scanner_for(rules)                              # policy load (compiled once, cached)
    if rules and scanner.frame_may_match(raw_line):           # per result; False: forward the bytes
        verdict = judge_result(message["result"], rules, scanner, complete=era_2026)
        # verdict.outcome: forward | warn | redact | block; verdict.result: what to send instead

Modules: :mod:`.catalog` (the built-in detectors as data), :mod:`.checks` (checksums),
:mod:`.scanner` (one RE2 trigger pass, then checks), :mod:`.findings` (``Finding``, ``redact``),
:mod:`.walker` (which strings of a result, with JSON paths; the redacted copy), :mod:`.rules`
(strictest action per detector), :mod:`.verdict` (forward/warn/redact/block, block result, audit
records).
"""

from mcp_guard.inspect.catalog import DETECTORS
from mcp_guard.inspect.findings import Finding, redact
from mcp_guard.inspect.rules import Action, ResultRules, RulesError, combine_rules, strictest
from mcp_guard.inspect.scanner import DetectorError, Scanner, compile_scanner, pattern_problem
from mcp_guard.inspect.verdict import (
    ResultVerdict,
    audit_records,
    block_message,
    block_result,
    describe,
    judge,
    judge_result,
    scanner_for,
)
from mcp_guard.inspect.walker import Inspection, format_path, inspect_result, inspect_value, text_slots

__all__ = [
    "DETECTORS",
    "Action",
    "DetectorError",
    "Finding",
    "Inspection",
    "ResultRules",
    "ResultVerdict",
    "RulesError",
    "Scanner",
    "audit_records",
    "block_message",
    "block_result",
    "combine_rules",
    "compile_scanner",
    "describe",
    "format_path",
    "inspect_result",
    "inspect_value",
    "judge",
    "judge_result",
    "pattern_problem",
    "redact",
    "scan",
    "scanner_for",
    "strictest",
    "text_slots",
]


def scan(text: str, detectors: Scanner | list[str] | tuple[str, ...] | frozenset[str]) -> list[Finding]:
    """The findings in ``text`` for ``detectors`` (a compiled scanner, or built-in detector names)."""
    scanner = detectors if isinstance(detectors, Scanner) else compile_scanner(detectors)
    return scanner.scan(text)
