"""``mcp-guard init -- COMMAND [ARGS...]``: write a starter policy from a server's own tool list.

The server is started once with the MCP SDK's client, every page of ``tools/list`` is
read, and each tool gets a rule from its annotations:

* ``readOnlyHint: true``: allowed, no limit;
* ``destructiveHint: true``: denied, with a reason saying how to change that;
* anything else: allowed, at most 30 calls a minute.

``default`` is ``deny``, so tools the server adds later are refused until listed. JSON
has no comments and the policy loader rejects unknown keys, so each rule's ``reason``
carries its explanation. The document is loaded with the guard's own policy loader before
it is put in place: init never writes a policy the guard would refuse. The policy and its
lock file are put in place together (:mod:`mcp_guard.atomic`): Ctrl-C or an error leaves
both or neither.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mcp_guard import exits
from mcp_guard.commands.listing import add_timeout

HELP = (
    "Start an MCP stdio server once, list all its tools and write a starter policy from their annotations: "
    "read-only tools allowed, destructive ones denied, the rest allowed at 30 calls a minute; default deny."
)
USAGE = "mcp-guard init [-o FILE] [--force] [--timeout SECONDS] -- COMMAND [ARGS...]"
DEFAULT_OUTPUT = "mcp-guard-policy.json"
RATE_MAX = 30
DESTRUCTIVE_REASON = 'destructive (destructiveHint); change to "approve" to ask a person, or "allow"'
READ_ONLY_REASON = 'read-only (readOnlyHint): allowed without a limit; add "limits" to cap it'
RATE_REASON = (
    f"neither read-only nor destructive by its annotations: allowed, at most {RATE_MAX} calls a minute; "
    'change "max", or set "action" to "deny"'
)
CONTRADICTORY_REASON = (
    'destructive (destructiveHint, although also marked readOnlyHint); change to "approve" to ask a person, or "allow"'
)


def _say(message: str) -> None:
    sys.stderr.write(f"mcp-guard: {message}\n")
    sys.stderr.flush()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = USAGE
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default=DEFAULT_OUTPUT,
        help=f"where to write the policy (default: {DEFAULT_OUTPUT} in the current directory)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    add_timeout(parser)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the server command, after `--`")


def rule_for(tool: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A short label for the table and the policy rule for one tool (as the server listed it)."""
    annotations = tool.get("annotations")
    annotations = annotations if isinstance(annotations, Mapping) else {}
    read_only = annotations.get("readOnlyHint") is True
    destructive = annotations.get("destructiveHint") is True
    if destructive:
        return "deny (destructive)", {
            "action": "deny",
            "reason": CONTRADICTORY_REASON if read_only else DESTRUCTIVE_REASON,
        }
    if read_only:
        return "allow (read-only)", {"reason": READ_ONLY_REASON}
    limit = {"counter": f"{tool['name']}_rate", "window": "minute", "max": RATE_MAX, "scope": "grant"}
    return f"allow, {RATE_MAX}/minute", {"reason": RATE_REASON, "limits": [limit]}


def build_policy(tools: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The policy document and a (tool, decision) row per tool, in the server's order."""
    rules: dict[str, dict[str, Any]] = {}
    rows: list[tuple[str, str]] = []
    for tool in tools:
        name = tool.get("name")
        if not isinstance(name, str) or name in rules:
            continue
        label, rule = rule_for(tool)
        rules[name] = rule
        rows.append((name, label))
    return {"version": "1", "default": "deny", "tools": rules}, rows


def _write_both(output: Path, text: str, lock_path: Path, lock_text: str, force: bool) -> None:
    """Check ``text`` with the guard's policy loader, then put the policy and its lock file in place together."""
    from mcp_guard import atomic
    from mcp_guard.policy.load import load_policy

    staged: list[Path] = []
    try:
        staged.append(atomic.stage(lock_path, lock_text.encode("utf-8")))
        staged.append(atomic.stage(output, text.encode("utf-8")))
        load_policy(staged[-1])
        if not force and output.exists():
            raise FileExistsError(str(output))
    except BaseException:
        atomic.discard(staged)
        raise
    atomic.commit([(staged[0], lock_path), (staged[1], output)])


def run(args: argparse.Namespace) -> int:
    command: list[str] = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        _say(f"no server command given: put it after `--`, e.g.\n  {USAGE}")
        return exits.USAGE
    output = Path(args.output).expanduser()
    if output.exists() and not args.force:
        _say(f"{output} already exists; not overwriting it (pass --force to replace it, or -o another file)")
        return exits.REFUSED
    if not output.parent.is_dir():
        _say(f"cannot write {output}: directory {output.parent} does not exist")
        return exits.FAILED

    # One listing, as raw JSON: the rules come from its annotations and the pins from its definitions
    # (the SDK's models would drop fields a pin must cover).
    from mcp_guard.commands.listing import fetch_listing, server_label
    from mcp_guard.integrity.lockfile import LockFile, default_lock_path

    listing = fetch_listing(command, args.timeout)
    if listing is None:
        return exits.FAILED
    server = server_label(listing.server)
    policy, rows = build_policy([t for t in listing.tools if isinstance(t, Mapping)])
    lock_path = default_lock_path(output)
    # Check arguments against the pinned schemas: a starter policy should notice the server changing.
    policy["pins"] = {"file": lock_path.name, "mode": "enforce"}
    policy["validate_arguments"] = True
    text = json.dumps(policy, indent=2, ensure_ascii=False) + "\n"
    lock_text = LockFile.from_tools(listing.tools, server=listing.server).dumps()

    from mcp_guard.policy.load import PolicyError

    try:
        _write_both(output, text, lock_path, lock_text, args.force)
    except FileExistsError:
        _say(f"{output} appeared while the server was starting; not overwriting it (pass --force)")
        return exits.REFUSED
    except PolicyError as exc:  # a bug in this module, never the user's doing
        _say(f"internal error: the generated policy does not load, nothing written:\n{exc}")
        return exits.FAILED
    except OSError as exc:
        _say(f"cannot write {output} and {lock_path}: {exc}")
        return exits.FAILED

    _print_table(server, rows)
    if not rows:
        _say("the server lists no tools: with default deny, any tool it adds later is refused until listed")
    _say(
        f'wrote {output} (default "deny": tools not listed there are refused) and the tool pins {lock_path}. '
        "Review them, then run the server as\n"
        f"  mcp-guard --policy {os.path.abspath(output)} -- {' '.join(command)}\n"
        f"or put it in front of a client's servers with: mcp-guard wrap --client NAME --policy {output}"
    )
    return exits.OK


def _print_table(server: str, rows: list[tuple[str, str]]) -> None:
    _say(f"{server}: {len(rows)} tool(s)")
    if not rows:
        return
    width = max(len("TOOL"), *(len(name) for name, _ in rows))
    lines = [f"  {'TOOL':<{width}}  DECISION"]
    lines += [f"  {name:<{width}}  {label}" for name, label in rows]
    sys.stderr.write("\n".join(lines) + "\n")
