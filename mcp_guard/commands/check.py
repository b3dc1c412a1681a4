"""``mcp-guard check POLICY``: validate a policy without running anything."""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from mcp_guard import exits

HELP = "Validate a policy file: exit 0 if it is valid, 2 with located errors if not; warn about rules that never fire."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("policy", type=Path, help="the policy file (JSON, or YAML with .yaml/.yml)")
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing when the policy is valid")
    parser.add_argument(
        "--sha256", action="store_true", help="print only the file's SHA-256 (for --policy-sha256) once it is valid"
    )


def run(args: argparse.Namespace) -> int:
    from mcp_guard.policy.engine import policy_warnings
    from mcp_guard.policy.load import PolicyError, dotted_path, load_bytes, load_document

    try:
        raw = args.policy.read_bytes()
    except OSError:
        raw = None  # load_document says what is wrong with the file
    try:
        # The hash printed is of the very bytes validated, never of a second read.
        policy, doc = load_bytes(raw, args.policy) if raw is not None else load_document(args.policy)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return exits.USAGE
    for path, message in policy_warnings(policy):
        pos = doc.position_of(path)
        where = f"{args.policy}:{pos.line}:{pos.column}" if pos else str(args.policy)
        print(f"{where}: warning: {dotted_path(path)}: {message}", file=sys.stderr)
    digest = hashlib.sha256(raw or b"").hexdigest()
    if args.sha256:
        print(digest)
        return exits.OK
    if not args.quiet:
        tools = len(policy.tools)
        print(
            f"{args.policy}: valid ({policy.mode} mode, default {policy.default}, {tools} tool rule"
            f"{'s' if tools != 1 else ''}, {len(policy.hide)} hidden); sha256 {digest}"
        )
    return exits.OK
