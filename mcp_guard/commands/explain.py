"""``mcp-guard explain POLICY TOOL [ARGS_JSON]``: dry-run one call against a policy.

``--prompt NAME [ARGS_JSON]`` and ``--resource URI`` dry-run a ``prompts/get`` or ``resources/read`` instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mcp_guard import exits

if TYPE_CHECKING:
    from mcp_guard.pipeline import Kind

HELP = (
    "Dry-run one tool call (or, with --prompt or --resource, one prompts/get or resources/read) against a policy "
    "and say what would happen and why. "
    "Exit 0 if allowed, 1 if refused, 3 if a person would be asked to approve it (2 for usage or policy errors)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("policy", type=Path, help="the policy file")
    parser.add_argument("tool", nargs="?", help="the tool name (left out with --prompt or --resource)")
    parser.add_argument("arguments", nargs="?", default="{}", help="the call's arguments as a JSON object")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--prompt",
        nargs="+",
        metavar=("NAME", "ARGS_JSON"),
        help="explain a prompts/get of this prompt, with these arguments (a JSON object)",
    )
    which.add_argument("--resource", metavar="URI", help="explain a resources/read of this URI")
    parser.add_argument("--json", action="store_true", help="print the decision as JSON")
    parser.add_argument(
        "--labels",
        metavar="LABEL,...",
        default="",
        help="judge the call as if the session held these flow labels (e.g. private,untrusted); default: none",
    )
    parser.add_argument(
        "--lock",
        "--pins",
        dest="lock",
        metavar="FILE",
        help="check against this lock file (default: the policy's pins.file, as the running guard does)",
    )
    parser.add_argument(
        "--result",
        type=Path,
        metavar="FILE",
        help="also show what the policy's results rules would do with this sample result (a CallToolResult as JSON)",
    )


def run(args: argparse.Namespace) -> int:
    from mcp_guard.commands.explaining import explain_call
    from mcp_guard.policy.load import PolicyError, load_policy

    kind: Kind = "tool"
    name = args.tool
    if args.prompt is not None or args.resource is not None:
        if args.tool is not None:
            print("mcp-guard explain: give a tool name or --prompt/--resource, not both", file=sys.stderr)
            return exits.USAGE
        if args.prompt is not None and len(args.prompt) > 2:
            print("mcp-guard explain: --prompt takes a NAME and at most one ARGS_JSON", file=sys.stderr)
            return exits.USAGE
        kind = "prompt" if args.prompt is not None else "resource"
        name = args.prompt[0] if args.prompt is not None else args.resource
        args.arguments = args.prompt[1] if args.prompt is not None and len(args.prompt) == 2 else "{}"
    elif name is None:
        print("mcp-guard explain: name the tool (or give --prompt NAME or --resource URI)", file=sys.stderr)
        return exits.USAGE
    try:
        arguments = json.loads(args.arguments)
    except ValueError as exc:
        print(f"mcp-guard explain: ARGS_JSON is not valid JSON: {exc}", file=sys.stderr)
        return exits.USAGE
    if not isinstance(arguments, dict):
        print("mcp-guard explain: ARGS_JSON must be a JSON object, e.g. '{\"amount\": 12}'", file=sys.stderr)
        return exits.USAGE
    try:
        policy = load_policy(args.policy)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return exits.USAGE
    try:
        held = [label.strip() for label in args.labels.split(",") if label.strip()]
        out = explain_call(policy, args.policy.resolve(), name, arguments, args.lock, held, kind)
        if args.result is not None:
            from mcp_guard.commands.result_check import check_result, load_result

            out["result_check"] = check_result(policy, name, load_result(args.result))
    except ValueError as exc:
        print(f"mcp-guard explain: {exc}", file=sys.stderr)
        return exits.USAGE
    code = {"allow": exits.OK, "deny": exits.REFUSED, "approve": exits.NEEDS_APPROVAL}[out["decision"]]
    if args.json:
        print(json.dumps(out, indent=2))
        return code
    words = {"allow": "ALLOW", "deny": "DENY", "approve": "APPROVE (ask a person first)"}[out["decision"]]
    print(f"{words}  {name}" if kind == "tool" else f"{words}  {kind} {name}")
    print(f"  rule:   {out['rule']}")
    if out["reason"]:
        print(f"  reason: {out['reason']}")
    if out.get("stage"):
        print(f"  stage:  {out['stage']}")
    for c in out["limits"]:
        unit = "calls" if c["cost"] == 1 else "in total"
        print(
            f"  limit:  {c['rule']}: counter {c['counter']!r}, at most {c['max']:g} {unit} per {c['window_s']:g} s"
            f"; this call counts {c['cost']:g}"
        )
    if "labels" in out:
        print(f"  labels: {', '.join(out['labels']) or '(none)'}; held: {', '.join(out['held']) or '(none)'}")
    if out.get("mode") == "monitor":
        print("  note:   the policy is in monitor mode: the guard would only report this decision")
    if "result_check" in out:
        from mcp_guard.commands.result_check import print_result

        print_result(out["result_check"])
    return code
