"""``mcp-guard explain POLICY TOOL [ARGS_JSON]``: dry-run one call against a policy."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HELP = (
    "Dry-run one tool call against a policy and say what would happen and why. "
    "Exit 0 if allowed, 1 if refused, 3 if a person would be asked to approve it (2 for usage or policy errors)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("policy", type=Path, help="the policy file")
    parser.add_argument("tool", help="the tool name")
    parser.add_argument("arguments", nargs="?", default="{}", help="the call's arguments as a JSON object")
    parser.add_argument("--json", action="store_true", help="print the decision as JSON")


def run(args: argparse.Namespace) -> int:
    from mcp_guard.policy.decision import Allow, Approve
    from mcp_guard.policy.engine import Engine
    from mcp_guard.policy.load import PolicyError, load_policy

    try:
        arguments = json.loads(args.arguments)
    except ValueError as exc:
        print(f"mcp-guard explain: ARGS_JSON is not valid JSON: {exc}", file=sys.stderr)
        return 2
    if not isinstance(arguments, dict):
        print("mcp-guard explain: ARGS_JSON must be a JSON object, e.g. '{\"amount\": 12}'", file=sys.stderr)
        return 2
    try:
        engine = Engine(load_policy(args.policy))
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 2
    decision = engine.decide(args.tool, arguments)
    out: dict[str, Any]
    if isinstance(decision, Allow):
        out = {"decision": "allow", "rule": decision.rule or "default", "reason": None}
        code = 0
    elif isinstance(decision, Approve):
        out = {"decision": "approve", "rule": decision.rule, "reason": decision.reason}
        code = 3
    else:
        out = {"decision": "deny", "rule": decision.rule, "reason": decision.reason, "kind": decision.kind}
        code = 1
    charges = [] if not isinstance(decision, (Allow, Approve)) else decision.charges
    out["limits"] = [
        {"rule": c.rule, "counter": c.counter, "window_s": c.window_s, "max": c.max, "cost": c.cost} for c in charges
    ]
    if engine.monitor:
        out["mode"] = "monitor"
    if args.json:
        print(json.dumps(out, indent=2))
        return code
    words = {"allow": "ALLOW", "deny": "DENY", "approve": "APPROVE (ask a person first)"}[out["decision"]]
    print(f"{words}  {args.tool}")
    print(f"  rule:   {out['rule']}")
    if out["reason"]:
        print(f"  reason: {out['reason']}")
    for c in out["limits"]:
        unit = "calls" if c["cost"] == 1 else "in total"
        print(
            f"  limit:  {c['rule']}: counter {c['counter']!r}, at most {c['max']:g} {unit} per {c['window_s']:g} s"
            f"; this call counts {c['cost']:g}"
        )
    if engine.monitor:
        print("  note:   the policy is in monitor mode: the guard would only report this decision")
    return code
