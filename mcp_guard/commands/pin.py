"""``mcp-guard pins create -- COMMAND [ARGS...]`` (also ``mcp-guard pin``): pin every tool a server lists.

The server is started once (:mod:`mcp_guard.commands.listing`), each whole tool definition
is pinned by its SHA-256, and the lock file is written atomically. An existing lock file is
replaced; what changed since it is printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mcp_guard import exits
from mcp_guard.commands.listing import add_timeout, fetch_listing, say, server_label

HELP = (
    "Start an MCP stdio server once, list all its tools and pin each whole definition (SHA-256) in a lock file; "
    "an existing lock file is replaced and the changes since it are printed. `mcp-guard pin` is the older "
    "spelling of `mcp-guard pins create`."
)
USAGE = "mcp-guard pins create [--lock FILE] [--policy FILE] [--timeout SECONDS] -- COMMAND [ARGS...]"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = USAGE
    parser.add_argument(
        "--lock",
        "-o",
        "--output",
        dest="lock",
        metavar="FILE",
        help="where to write the lock file (default: NAME.lock.json beside the --policy file NAME.json, "
        "else mcp-guard.lock.json in the current directory); -o and --output are older spellings",
    )
    parser.add_argument("--policy", metavar="FILE", help="the policy the lock file goes with (sets the default path)")
    add_timeout(parser)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the server command, after `--`")


def strip_dashes(words: list[str]) -> list[str]:
    return words[1:] if words[:1] == ["--"] else words


def run(args: argparse.Namespace) -> int:
    from mcp_guard.integrity.diff import compare
    from mcp_guard.integrity.lockfile import LockFile, LockFileError, default_lock_path

    command = strip_dashes(list(args.command))
    if not command:
        say(f"no server command given: put it after `--`, e.g.\n  {USAGE}")
        return exits.USAGE
    output = Path(args.lock).expanduser() if args.lock else default_lock_path(args.policy)
    if not output.parent.is_dir():
        say(f"cannot write {output}: directory {output.parent} does not exist")
        return exits.FAILED
    previous: LockFile | None = None
    if output.exists():
        try:
            previous = LockFile.load(output)
        except LockFileError as exc:
            say(f"warning: the existing lock file cannot be read, it will be replaced: {exc}")

    listing = fetch_listing(command, args.timeout)
    if listing is None:
        return exits.FAILED
    lock = LockFile.from_tools(listing.tools, server=listing.server)
    try:
        lock.save(output)
    except OSError as exc:
        say(f"cannot write {output}: {exc.strerror or exc}")
        return exits.FAILED

    count = len(lock.tools)
    say(f"pinned {count} tool{'s' if count != 1 else ''} of {server_label(listing.server)} in {output}")
    if previous is not None:
        findings = compare(previous, listing.tools)
        if not findings:
            say("no changes since the previous lock file")
        else:
            say(f"{len(findings)} change{'s' if len(findings) != 1 else ''} since the previous lock file:")
            for finding in findings:
                sys.stderr.write(f"  {finding.kind}: {finding.summary}\n")
    if args.policy is None and args.lock is None:
        say(f"check calls against it with: mcp-guard --lock {output} -- {' '.join(command)}")
    return exits.OK
