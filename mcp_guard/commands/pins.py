"""``mcp-guard pins create|diff|accept``: pin a server's tools, compare them with the pins, accept changes.

* ``mcp-guard pins create [--lock FILE] -- COMMAND [ARGS...]``: pin every tool the server
  lists (:mod:`mcp_guard.commands.pin`; ``mcp-guard pin`` is its older spelling).
* ``mcp-guard pins diff [--lock FILE] -- COMMAND [ARGS...]``: list the server's tools and
  print a unified diff of every definition that differs from its pin (and of tools added or
  removed); exit 0 if there is none, 1 if there are differences, 2 if the comparison could
  not be made. The lock file may also be given as a word before ``--`` (the older spelling).
* ``mcp-guard pins accept [TOOL...] [--instructions] [--lock FILE] -- COMMAND [ARGS...]``: list
  the server's tools and update the lock for the named tools (all when none is named): changed
  and new tools are pinned as listed now, removed ones are dropped from the lock.
  ``--instructions`` (or naming nothing) also pins the server's instructions as sent now.

The server's ``instructions`` are pinned beside the tools (a lock made before they were does
not pin them: ``diff`` says so, and ``accept`` with nothing named pins them).

``--policy P`` means P's own ``pins.file``. Like ``create``, ``diff`` and ``accept`` list the
server as a client declaring roots, sampling and elicitation (``--capabilities`` to choose),
so a tool offered to such a client and missing from a lock made as a barer one shows up as new
and can be accepted; a lock made as another client is pointed out.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mcp_guard import exits
from mcp_guard.commands import pin
from mcp_guard.commands.listing import (
    DEFAULT_CAPABILITIES,
    add_capabilities,
    add_timeout,
    describe_capabilities,
    fetch_listing,
    say,
    server_label,
)

if TYPE_CHECKING:
    from mcp_guard.commands.listing import Listing
    from mcp_guard.integrity.lockfile import LockFile

HELP = (
    "Pin a server's tools in a lock file (create), compare what it lists now with the pins (diff), "
    "or pin what it lists now (accept)."
)
DIFF_USAGE = (
    "mcp-guard pins diff [--lock FILE] [--policy FILE] [--capabilities LIST] [--timeout SECONDS] -- COMMAND [ARGS...]"
)
ACCEPT_USAGE = (
    "mcp-guard pins accept [TOOL...] [--instructions] [--lock FILE] [--policy FILE] [--capabilities LIST] "
    "[--timeout SECONDS] -- COMMAND [ARGS...]"
)


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lock",
        metavar="FILE",
        help="the lock file (default: the --policy file's pins.file, else NAME.lock.json beside the --policy file "
        "NAME.json, else mcp-guard.lock.json)",
    )
    parser.add_argument(
        "--policy", metavar="FILE", help="the policy the lock file goes with (its pins.file is the default lock)"
    )
    add_capabilities(parser)
    add_timeout(parser)


def _accept_options(parser: argparse.ArgumentParser) -> None:
    _options(parser)
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="pin the server's instructions as it sends them now (with no TOOL named, they are pinned anyway)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = f"\n  {pin.USAGE}\n  {DIFF_USAGE}\n  {ACCEPT_USAGE}"
    actions = parser.add_subparsers(dest="action", required=True, metavar="{create,diff,accept}")
    create = actions.add_parser(
        "create",
        help="pin every tool the server lists in a lock file (also: mcp-guard pin)",
        description=pin.HELP,
    )
    pin.add_arguments(create)
    diff = actions.add_parser(
        "diff",
        usage=DIFF_USAGE,
        help="print a unified diff of the tools that differ from their pins; exit 1 if any does",
        description="List the server's tools and diff them against the lock file: exit 0 if all match their pins, "
        "1 if any differs (or was added or removed), 2 if the comparison could not be made. The lock file may "
        "also be named before `--` without --lock (the older spelling).",
    )
    _options(diff)
    diff.add_argument("words", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")
    accept = actions.add_parser(
        "accept",
        usage=ACCEPT_USAGE,
        help="pin what the server lists now, for the named tools or all",
        description="List the server's tools and update the lock file for the named tools (all when none is "
        "named): changed and new tools are pinned as listed now, removed ones are dropped. The server's "
        "instructions are pinned as sent now with --instructions, or when no tool is named.",
    )
    _accept_options(accept)
    accept.add_argument("words", nargs=argparse.REMAINDER, metavar="[TOOL...] -- COMMAND [ARGS...]")


def _split_words(
    args: argparse.Namespace, prog: str, usage: str, options: Callable[[argparse.ArgumentParser], None]
) -> tuple[list[str], list[str]] | None:
    """The positional words before ``--`` and the command after it; options found before ``--`` are applied."""
    words = list(args.words)
    if "--" not in words:
        say(f"put the server command after `--`:\n  {usage}")
        return None
    cut = words.index("--")
    before, command = words[:cut], words[cut + 1 :]
    # argparse stops at the first positional word, so options after it land here: parse them now.
    again = argparse.ArgumentParser(prog=prog, usage=usage, add_help=False)
    options(again)
    again.add_argument("names", nargs="*")
    extra = again.parse_args(before)
    for key, value in vars(extra).items():
        if key != "names" and value != again.get_default(key):
            setattr(args, key, value)
    if not command:
        say(f"no server command given after `--`:\n  {usage}")
        return None
    return list(extra.names), command


def run(args: argparse.Namespace) -> int:
    if args.action == "create":
        return pin.run(args)
    if args.action == "diff":
        return _diff(args)
    return _accept(args)


def _lock_path(args: argparse.Namespace) -> Path | None:
    found = pin.lock_path_for(args.lock, args.policy)
    return found[0] if found is not None else None


def _diff(args: argparse.Namespace) -> int:
    from mcp_guard.integrity.diff import compare
    from mcp_guard.integrity.instructions import compare_instructions

    split = _split_words(args, "mcp-guard pins diff", DIFF_USAGE, _options)
    if split is None:
        return exits.USAGE
    names, command = split
    if len(names) > 1 or (names and args.lock and names[0] != args.lock):
        say(f"one lock file at most, got {' '.join([*([args.lock] if args.lock else []), *names])}\n  {DIFF_USAGE}")
        return exits.USAGE
    if names:
        args.lock = names[0]
    path = _lock_path(args)
    if path is None:
        return exits.USAGE
    loaded = _lock_and_listing(path, command, args)
    if loaded is None:
        return exits.USAGE
    lock, listing = loaded
    findings: list[tuple[str, str, str]] = [(f.kind, f.summary, f.diff) for f in compare(lock, listing.tools)]
    differs = compare_instructions(lock.instructions, listing.instructions)
    if differs is not None:
        findings.append((differs.kind, differs.summary, differs.diff))
    if lock.instructions is None:
        say(
            f"note: {path} does not pin the server's instructions (made before they were pinned), so they are not "
            "checked; `pins accept --instructions` pins them"
        )
    if not findings:
        count = len(lock.tools)
        also = " and the pinned instructions" if lock.instructions is not None else ""
        say(
            f"no differences: the {count} pinned tool{'s' if count != 1 else ''}{also} of {path} match what the "
            f"server lists to {describe_capabilities(listing.capabilities)}"
        )
        return exits.OK
    out = sys.stdout
    for kind, summary, diff in findings:
        out.write(f"# {kind}: {summary}\n")
        out.write(diff)
    out.flush()
    say(
        f"{len(findings)} difference{'s' if len(findings) != 1 else ''} from {path}; "
        f"accept {'them' if len(findings) != 1 else 'it'} with: "
        f"mcp-guard pins accept --lock {shlex.quote(str(path))}{_capabilities_option(args)} -- {shlex.join(command)}"
    )
    return exits.DIFFERS


def _capabilities_option(args: argparse.Namespace) -> str:
    """`` --capabilities LIST`` when the user chose them, for commands printed to run next."""
    chosen = args.capabilities
    return "" if chosen is None else f" --capabilities {','.join(chosen) or 'none'}"


def _lock_and_listing(path: Path, command: list[str], args: argparse.Namespace) -> tuple[LockFile, Listing] | None:
    """The lock at ``path`` and the server's current listing, or None after saying what went wrong.

    The server is listed as a client declaring ``--capabilities``, else the usual client's
    capabilities; a lock made as another client is pointed out.
    """
    from mcp_guard.integrity.lockfile import LockFile, LockFileError

    if not path.exists():
        say(
            f"no lock file at {path}: create one with "
            f"mcp-guard pins create --lock {shlex.quote(str(path))} -- {shlex.join(command)}"
        )
        return None
    try:
        lock = LockFile.load(path)
    except LockFileError as exc:
        say(str(exc))
        return None
    capabilities = DEFAULT_CAPABILITIES if args.capabilities is None else args.capabilities
    recorded = lock.client_capabilities
    if recorded is not None and set(recorded) != set(capabilities):
        say(
            f"note: {path} was made listing tools as {describe_capabilities(recorded)}; listing now as "
            f"{describe_capabilities(capabilities)} (--capabilities {','.join(recorded) or 'none'} compares as then)"
        )
    listing = fetch_listing(command, args.timeout, capabilities)
    if listing is None:
        return None
    return lock, listing


def _accept(args: argparse.Namespace) -> int:
    from mcp_guard.integrity.diff import NO_NAME, compare
    from mcp_guard.integrity.instructions import PinnedInstructions, compare_instructions
    from mcp_guard.integrity.lockfile import PinnedTool

    split = _split_words(args, "mcp-guard pins accept", ACCEPT_USAGE, _accept_options)
    if split is None:
        return exits.USAGE
    names, command = split
    path = _lock_path(args)
    if path is None:
        return exits.USAGE
    loaded = _lock_and_listing(path, command, args)
    if loaded is None:
        return exits.USAGE
    lock, listing = loaded

    listed: dict[str, dict[str, object]] = {}
    for tool in listing.tools:
        name = tool.get("name") if isinstance(tool, dict) else None
        if isinstance(name, str):
            listed.setdefault(name, tool)
    unknown = [name for name in names if name not in listed and name not in lock.tools]
    if unknown:
        say(
            f"{', '.join(unknown)}: neither pinned in {path} nor listed by the server to "
            f"{describe_capabilities(listing.capabilities)}; nothing written. A server may offer a tool only to "
            f"clients that declare a capability: list it as your client does with --capabilities LIST "
            f"(roots, sampling, elicitation, or none)"
        )
        return exits.USAGE
    findings = [f for f in compare(lock, listing.tools) if f.tool != NO_NAME]
    wanted = set(names) if names else {f.tool for f in findings}
    accepted: list[str] = []
    for finding in findings:
        if finding.tool not in wanted or finding.tool in accepted:
            continue
        if finding.kind == "removed":
            del lock.tools[finding.tool]
        else:
            lock.tools[finding.tool] = PinnedTool.of(listed[finding.tool])
        accepted.append(finding.tool)
        sys.stdout.write(f"accepted {finding.kind}: {finding.summary}\n")
    for name in names:
        if name not in accepted:
            sys.stdout.write(f"unchanged: {name} already matches its pin\n")
    if args.instructions or not names:
        # Named, or everything accepted: the instructions as sent now (a lock that did not pin them starts to).
        differs = compare_instructions(lock.instructions, listing.instructions)
        if lock.instructions is None:
            sys.stdout.write("accepted instructions: pinned for the first time\n")
            accepted.append("(instructions)")
        elif differs is not None:
            sys.stdout.write(f"accepted instructions {differs.kind}: {differs.summary}\n")
            accepted.append("(instructions)")
        elif args.instructions:
            sys.stdout.write("unchanged: the server's instructions already match their pin\n")
        lock.instructions = PinnedInstructions.of(listing.instructions)
    sys.stdout.flush()
    if not accepted:
        say(f"nothing to accept: {path} is up to date")
        return exits.OK
    lock.server = {**lock.server, **listing.server}
    try:
        lock.save(path)
    except OSError as exc:
        say(f"cannot write {path}: {exc.strerror or exc}")
        return exits.USAGE
    tools = [name for name in accepted if name != "(instructions)"]
    what = f"{len(tools)} tool{'s' if len(tools) != 1 else ''}"
    if len(tools) != len(accepted):
        what = "the server's instructions" if not tools else f"{what} and the server's instructions"
    say(f"updated {path}: {what} of {server_label(lock.server)}")
    return exits.OK
