"""``mcp-guard explain POLICY TOOL --result FILE``: what the result checks would do with a sample result.

Runs the pipeline's result stages (the same the live guard runs) on the result in FILE: a
``CallToolResult`` object, or a whole JSON-RPC answer carrying one under ``result``. Nothing is
shown of the values found, only detector, kind, count and where.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mcp_guard.policy.model import Policy


def load_result(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"--result {path}: {exc}") from None
    if isinstance(value, dict) and "jsonrpc" in value and isinstance(value.get("result"), dict):
        value = value["result"]
    if not isinstance(value, dict):
        raise ValueError(f"--result {path}: expected a JSON object (a CallToolResult, or an answer with a result)")
    return value


def check_result(policy: Policy, tool: str, result: dict[str, Any]) -> dict[str, Any]:
    """What would happen to ``result`` as the answer to a call of ``tool``, as JSON for ``explain``."""
    from mcp_guard.judge import Judge
    from mcp_guard.limits.memory import MemoryLimiter
    from mcp_guard.pipeline import Pipeline, ResultIn, Snapshot
    from mcp_guard.policy.engine import Engine

    engine = Engine(policy)
    plan = engine.results
    rule = engine.rule_for(tool)
    check = plan.for_rule(rule.key if rule is not None else None) if plan is not None else None
    if check is None:
        return {"outcome": "forward", "rules": {}, "findings": [], "note": "no results rules apply to this tool"}
    warnings: list[str] = []
    pipeline = Pipeline(Judge(engine, MemoryLimiter()), warn=warnings.append)
    snap = Snapshot(engine)
    outcome = pipeline.judge_result(ResultIn("tools/call", tool, result, check, "resultType" in result), snap)
    out: dict[str, Any] = {
        "outcome": outcome.outcome,
        "rules": dict(check.rules.actions),
        "validate_output": check.validate_output,
        "findings": outcome.findings,
        "labels": sorted(outcome.labels),
    }
    if outcome.result is not None:
        out["sent"] = outcome.result
    if outcome.message is not None:
        out["message"] = outcome.message
    return out


def print_result(out: dict[str, Any]) -> None:
    words = {
        "forward": "FORWARD (the server's bytes, unchanged)",
        "warn": "WARN (passed on, reported)",
        "redact": "REDACT",
        "block": "BLOCK (replaced by an error)",
    }
    print(f"result: {words[out['outcome']]}")
    if out.get("note"):
        print(f"  note:   {out['note']}")
        return
    found: dict[str, int] = {}
    for record in out["findings"]:
        found[record["detector"]] = found.get(record["detector"], 0) + int(record["count"])
    for detector, action in sorted(out["rules"].items()):
        count = found.get(detector, 0)
        print(f"  {detector}: {action}; {count} found" if count else f"  {detector}: {action}; none found")
    for record in out["findings"]:
        print(f"  found:  {record['detector']}/{record['kind']} x{record['count']} at {', '.join(record['paths'])}")
    if out.get("message"):
        print(f"  says:   {out['message']}")
    if out["outcome"] == "redact" and "sent" in out:
        print(f"  sends:  {json.dumps(out['sent'], ensure_ascii=False)[:2000]}")
