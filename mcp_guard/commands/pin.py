"""``mcp-guard pins create -- COMMAND [ARGS...]`` (also ``mcp-guard pin``): pin every tool a server lists.

The server is started once (:mod:`mcp_guard.commands.listing`, as a client declaring the
usual capabilities unless ``--capabilities`` says otherwise), each whole tool definition is
pinned by its SHA-256, and the lock file is written atomically. An existing lock file is
replaced; what changed since it is printed. With ``--policy P`` the lock is P's own
``pins.file`` (the file the guard will read), else ``P.lock.json`` beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from mcp_guard import exits
from mcp_guard.commands.listing import (
    DEFAULT_CAPABILITIES,
    add_capabilities,
    add_timeout,
    describe_capabilities,
    fetch_listing,
    say,
    server_label,
)

HELP = (
    "Start an MCP stdio server once, list all its tools and pin each whole definition (SHA-256) in a lock file; "
    "an existing lock file is replaced and the changes since it are printed. `mcp-guard pin` is the older "
    "spelling of `mcp-guard pins create`."
)
USAGE = (
    "mcp-guard pins create [--lock FILE] [--policy FILE] [--capabilities LIST] [--timeout SECONDS] -- COMMAND [ARGS...]"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = USAGE
    parser.add_argument(
        "--lock",
        "-o",
        "--output",
        dest="lock",
        metavar="FILE",
        help="where to write the lock file (default: the --policy file's pins.file, else NAME.lock.json beside "
        "the --policy file NAME.json, else mcp-guard.lock.json in the current directory); -o and --output are "
        "older spellings",
    )
    parser.add_argument(
        "--policy", metavar="FILE", help="the policy the lock file goes with (its pins.file is the default lock)"
    )
    add_capabilities(parser)
    add_timeout(parser)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the server command, after `--`")


def strip_dashes(words: list[str]) -> list[str]:
    return words[1:] if words[:1] == ["--"] else words


def lock_path_for(lock: str | None, policy: str | None) -> tuple[Path, bool] | None:
    """The lock file a command works on, absolute, and whether the policy (if any) names it.

    ``--lock FILE`` first; else the ``--policy`` file's own ``pins.file`` (relative to the
    policy, as the guard reads it); else ``NAME.lock.json`` beside the policy; else
    ``mcp-guard.lock.json`` here. None, after saying why, when the policy cannot be read.
    """
    from mcp_guard.paths import default_lock_path

    given = Path(os.path.abspath(Path(lock).expanduser())) if lock else None
    if not policy:
        return given or Path(os.path.abspath(default_lock_path(None))), False
    from mcp_guard.integrity.setup import lock_file_for
    from mcp_guard.policy.load import PolicyError, load_policy

    policy_path = Path(os.path.abspath(Path(policy).expanduser()))
    try:
        loaded = load_policy(policy_path)
    except PolicyError as exc:
        say(f"cannot use the policy to find its lock file:\n{exc}")
        return None
    named, _ = lock_file_for(loaded, policy_path)
    named = Path(os.path.abspath(named)) if named is not None else None
    path = given or named or default_lock_path(policy_path)
    return path, named is not None and os.path.normcase(path) == os.path.normcase(named)


def run(args: argparse.Namespace) -> int:
    from mcp_guard.integrity.diff import compare
    from mcp_guard.integrity.instructions import PinnedInstructions, compare_instructions
    from mcp_guard.integrity.lockfile import LockFile, LockFileError

    command = strip_dashes(list(args.command))
    if not command:
        say(f"no server command given: put it after `--`, e.g.\n  {USAGE}")
        return exits.USAGE
    found = lock_path_for(args.lock, args.policy)
    if found is None:
        return exits.USAGE
    output, named = found
    if not output.parent.is_dir():
        say(f"cannot write {output}: directory {output.parent} does not exist")
        return exits.FAILED
    previous: LockFile | None = None
    if output.exists():
        try:
            previous = LockFile.load(output)
        except LockFileError as exc:
            say(f"warning: the existing lock file cannot be read, it will be replaced: {exc}")

    capabilities = DEFAULT_CAPABILITIES if args.capabilities is None else args.capabilities
    listing = fetch_listing(command, args.timeout, capabilities)
    if listing is None:
        return exits.FAILED
    lock = LockFile.from_tools(listing.tools, listing.server, PinnedInstructions.of(listing.instructions))
    try:
        lock.save(output)
    except OSError as exc:
        say(f"cannot write {output}: {exc.strerror or exc}")
        return exits.FAILED

    count = len(lock.tools)
    said = "and its instructions" if listing.instructions is not None else "(it sends no instructions)"
    say(
        f"pinned {count} tool{'s' if count != 1 else ''} of {server_label(listing.server)} {said}, as "
        f"{describe_capabilities(capabilities)} lists them, in {output}"
    )
    if previous is not None:
        changes: list[tuple[str, str]] = [(f.kind, f.summary) for f in compare(previous, listing.tools)]
        differs = compare_instructions(previous.instructions, listing.instructions)
        if differs is not None:
            changes.append((differs.kind, differs.summary))
        if not changes:
            say("no changes since the previous lock file")
        else:
            say(f"{len(changes)} change{'s' if len(changes) != 1 else ''} since the previous lock file:")
            for kind, summary in changes:
                sys.stderr.write(f"  {kind}: {summary}\n")
    if args.policy is not None and not named:
        say(
            f'the policy does not use this lock file yet: add "pins": {{"file": {json.dumps(output.name)}}} '
            f"to {os.path.abspath(args.policy)}"
            + ("" if output.parent == Path(os.path.abspath(args.policy)).parent else " (with the path to it)")
        )
    elif args.policy is None:
        say(f"check calls against it with: mcp-guard --lock {shlex.quote(str(output))} -- {shlex.join(command)}")
    return exits.OK
