"""``mcp-guard check POLICY``: validate a policy without running anything.

A policy with ``pins`` is only usable with its lock file (the guard will not start without
it), so the lock file is read and checked too; a missing or unreadable one fails the check,
named by its absolute path.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mcp_guard import exits

if TYPE_CHECKING:
    from mcp_guard.policy.model import Policy
    from mcp_guard.policy.source import SourceDocument

HELP = (
    "Validate a policy file (and the lock file its pins name): exit 0 if it is valid, 2 with located errors if "
    "not; warn about rules that never fire."
)


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
    pins = _check_lock(args.policy, policy, doc)
    if pins is None:
        return exits.USAGE
    digest = hashlib.sha256(raw or b"").hexdigest()
    if args.sha256:
        print(digest)
        return exits.OK
    if not args.quiet:
        tools = len(policy.tools)
        flows = len(policy.flows)
        flow_rules = f", {flows} flow rule{'s' if flows != 1 else ''}" if flows else ""
        print(
            f"{args.policy}: valid ({policy.mode} mode, default {policy.default}, {tools} tool rule"
            f"{'s' if tools != 1 else ''}{flow_rules}, {len(policy.hide)} hidden{_sections(policy)}{pins}); "
            f"sha256 {digest}"
        )
    return exits.OK


def _sections(policy: Policy) -> str:
    """``, prompts: 2 rules, 1 hidden`` for each of the prompts and resources sections the policy has."""
    out = ""
    for name in ("prompts", "resources"):
        section = getattr(policy, name)
        if section is not None:
            count = len(section.rules)
            out += f", {name}: {count} rule{'s' if count != 1 else ''}, {len(section.hide)} hidden"
    return out


def _check_lock(path: Path, policy: Policy, doc: SourceDocument) -> str | None:
    """``, pins N tools in LOCK`` for a usable lock file ("" when there is none); None after saying why not."""
    from mcp_guard.integrity.lockfile import LockFile, LockFileError
    from mcp_guard.integrity.setup import lock_file_for

    absolute = Path(os.path.abspath(path))
    lock_path, mode = lock_file_for(policy, absolute)
    if lock_path is None:
        return ""
    lock_path = Path(os.path.abspath(lock_path))
    try:
        lock = LockFile.load(lock_path)
    except LockFileError as exc:
        pos = doc.position_of(("pins", "file"))
        where = f"{path}:{pos.line}:{pos.column}" if pos else str(path)
        hint = ""
        if not lock_path.exists():
            hint = (
                f"\n  create it with: mcp-guard pins create --policy {shlex.quote(str(absolute))} -- COMMAND [ARGS...]"
            )
        print(f"{where}: pins.file: the guard cannot start with this lock file: {exc}{hint}", file=sys.stderr)
        return None
    count = len(lock.tools)
    return f", pins {count} tool{'s' if count != 1 else ''} in {lock_path} ({mode})"
