"""``mcp-guard approvals [list | show ID | approve ID | deny ID]``: the calls waiting for a person's approval.

``list`` (the default) prints them as a table or JSON, with long arguments cut; ``show ID``
prints one request with every argument in full. ``approve`` and ``deny`` are the same as
``mcp-guard approve`` and ``mcp-guard deny``.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp_guard.approval.request import ApprovalRequest
    from mcp_guard.approval.store import ApprovalStore

HELP = (
    "List the calls waiting for a person's approval (`approvals show ID` prints one with every argument in "
    "full); answer with `mcp-guard approve ID` or `mcp-guard deny ID`."
)

_MAX_REASON = 60


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    # No default here: given before or after a sub-command, neither overwrites the other.
    parser.add_argument(
        "--store",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="the approvals database (default: approvals.db in the user state directory)",
    )


def _add_json_argument(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mcp_guard.commands import approve, deny

    add_store_argument(parser)
    _add_json_argument(parser, "print JSON (one object per line) for scripts")
    actions = parser.add_subparsers(dest="action", metavar="{list,show,approve,deny}")
    listing = actions.add_parser("list", help="list the pending calls (the default)")
    add_store_argument(listing)
    _add_json_argument(listing, "print JSON (one object per line) for scripts")
    show = actions.add_parser("show", help="print one request with every argument in full")
    show.add_argument("id", help="the approval id, such as ap-7k3m9q")
    add_store_argument(show)
    _add_json_argument(show, "print the request as one JSON object")
    approve.add_arguments(
        actions.add_parser("approve", help="approve a pending call (as `mcp-guard approve`)", description=approve.HELP)
    )
    deny.add_arguments(
        actions.add_parser("deny", help="deny a pending call (as `mcp-guard deny`)", description=deny.HELP)
    )


def open_store(args: argparse.Namespace) -> ApprovalStore:
    from pathlib import Path

    from mcp_guard.approval.store import ApprovalStore

    store = getattr(args, "store", None)
    return ApprovalStore(Path(store) if store else None)


def fail(message: str, code: int = 1) -> int:
    sys.stderr.write(f"mcp-guard: {message}\n")
    return code


def _as_json(request: ApprovalRequest, now: float) -> dict[str, Any]:
    from mcp_guard.approval.request import iso_time

    return {
        "id": request.id,
        "server": request.server,
        "server_identity": request.server_identity,
        "tool": request.tool,
        "arguments": request.arguments,
        "readable_arguments": request.readable_arguments,
        "args_sha256": request.args_sha256,
        "rule": request.rule,
        "reason": request.reason,
        "created": iso_time(request.created),
        "expires": iso_time(request.expires),
        "age_s": round(now - request.created, 3),
        "expires_in_s": round(request.expires - now, 3),
    }


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "action", None)
    if action == "show":
        return _show(args)
    if action == "approve":
        from mcp_guard.commands import approve

        return approve.run(args)
    if action == "deny":
        from mcp_guard.commands import deny

        return deny.run(args)
    return _list(args)


def _list(args: argparse.Namespace) -> int:
    from mcp_guard.approval.request import json_for_people, printable, short_duration
    from mcp_guard.approval.store import ApprovalError

    store = open_store(args)
    try:
        pending = store.list_pending()
    except ApprovalError as exc:
        return fail(str(exc))
    finally:
        store.close()
    now = time.time()
    if getattr(args, "json", False):
        for request in pending:
            print(json_for_people(_as_json(request, now)))
        return 0
    if not pending:
        print("no pending approvals")
        return 0
    header = ("id", "server", "tool", "arguments", "rule", "reason", "age", "expires in")
    rows = [header]
    for r in pending:
        reason = printable(r.reason, _MAX_REASON)
        rows.append(
            (
                r.id,
                printable(r.server),
                printable(r.tool),
                r.readable_arguments,
                printable(r.rule),
                reason,
                short_duration(now - r.created),
                short_duration(r.expires - now),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print()
    print(
        "approve with `mcp-guard approve ID` (add --for 10m to allow identical calls for a while), "
        "or refuse with `mcp-guard deny ID`"
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    from mcp_guard.approval.request import json_for_people
    from mcp_guard.approval.store import ApprovalError

    store = open_store(args)
    try:
        request = store.status(args.id)
    except ApprovalError as exc:
        return fail(str(exc))
    finally:
        store.close()
    now = time.time()
    if getattr(args, "json", False):
        record = _as_json(request, now)
        record.update(
            state=request.state,
            decided_by=request.decided_by,
            until=None if request.until is None else _iso(request.until),
        )
        print(json_for_people(record))
        return 0
    for line in _describe(request, now):
        print(line)
    return 0


def _iso(when: float) -> str:
    from mcp_guard.approval.request import iso_time

    return iso_time(when)


def _describe(request: ApprovalRequest, now: float) -> list[str]:
    from mcp_guard.approval.request import describe_identity, duration_words, printable

    lines = [
        f"approval {request.id} ({request.state})",
        f"  server:    {printable(request.server)}",
    ]
    if request.server_identity.startswith("name:"):
        lines.append(f"  command:   (any server started with {describe_identity(request.server_identity)})")
    elif request.server_identity:
        lines.append(f"  command:   {describe_identity(request.server_identity)}")
    lines += [
        f"  tool:      {printable(request.tool)}",
        f"  rule:      {printable(request.rule)}",
        f"  reason:    {printable(request.reason)}",
        f"  asked:     {_iso(request.created)} ({duration_words(now - request.created)} ago)",
    ]
    if request.state == "pending":
        lines.append(f"  expires:   {_iso(request.expires)} (in {duration_words(request.expires - now)})")
    elif request.decided_at is not None:
        lines.append(
            f"  decided:   {request.state} by {printable(request.decided_by or '?')}, "
            f"{duration_words(now - request.decided_at)} ago"
        )
    arguments = request.argument_lines()
    lines.append(f"  arguments ({len(arguments)}, every one in full):" if arguments else "  arguments: (none)")
    lines += [f"    {line}" for line in arguments]
    if request.state == "pending":
        lines += [
            "",
            f"approve with `mcp-guard approve {request.id}`, or refuse with `mcp-guard deny {request.id}`",
        ]
    return lines
