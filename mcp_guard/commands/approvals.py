"""``mcp-guard approvals``: the calls waiting for a person's approval, as a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp_guard.approval.request import ApprovalRequest
    from mcp_guard.approval.store import ApprovalStore

HELP = "List the calls waiting for a person's approval; answer with `mcp-guard approve ID` or `mcp-guard deny ID`."

_MAX_REASON = 60


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", metavar="PATH", help="the approvals database (default: approvals.db in the user state directory)"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_store_argument(parser)
    parser.add_argument("--json", action="store_true", help="print JSON (one object per line) for scripts")


def open_store(args: argparse.Namespace) -> ApprovalStore:
    from pathlib import Path

    from mcp_guard.approval.store import ApprovalStore

    return ApprovalStore(Path(args.store) if args.store else None)


def fail(message: str, code: int = 1) -> int:
    sys.stderr.write(f"mcp-guard: {message}\n")
    return code


def _as_json(request: ApprovalRequest, now: float) -> dict[str, Any]:
    from mcp_guard.approval.request import iso_time

    return {
        "id": request.id,
        "server": request.server,
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
    from mcp_guard.approval.request import printable, short_duration
    from mcp_guard.approval.store import ApprovalError

    store = open_store(args)
    try:
        pending = store.list_pending()
    except ApprovalError as exc:
        return fail(str(exc))
    finally:
        store.close()
    now = time.time()
    if args.json:
        for request in pending:
            print(json.dumps(_as_json(request, now), ensure_ascii=False))
        return 0
    if not pending:
        print("no pending approvals")
        return 0
    header = ("id", "server", "tool", "arguments", "rule", "reason", "age", "expires in")
    rows = [header]
    for r in pending:
        reason = printable(r.reason)
        if len(reason) > _MAX_REASON:
            reason = reason[: _MAX_REASON - 1] + "…"
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
