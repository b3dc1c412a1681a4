"""``mcp-guard flows list|clear``: the flow labels guards hold, and resetting them.

* ``mcp-guard flows list [--state URL] [--json]``: every holder (a client session, a guard, a server,
  ``global``) and the labels it holds: which tool of which server gave each, and when.
* ``mcp-guard flows clear [--client ID] [--state URL]``: forget the labels of one client (its id as
  ``list`` shows it, without ``client:``), or of every holder.

For a person, never for the agent: the ledger is one of the guard's own files, and calls that name it are
refused. ``--state`` is the store the guards use (default: ``flows.db`` in the user state directory).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from mcp_guard import exits

HELP = "List the flow labels the guards' client sessions hold (list), or forget them (clear)."


def _state(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        metavar="URL",
        help="the store the guards use (their --state: sqlite:..., redis://...); default: flows.db in the user "
        "state directory",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="{list,clear}")
    listing = sub.add_parser("list", help="the labels each holder holds", description="The labels each holder holds.")
    _state(listing)
    listing.add_argument("--json", action="store_true", help="print a JSON list of {holder, label, tool, server, at}")
    clearing = sub.add_parser(
        "clear", help="forget held labels", description="Forget the labels of one client, or of every holder."
    )
    _state(clearing)
    clearing.add_argument("--client", metavar="ID", help="only this client's labels (its id, as `flows list` shows)")


def ledger_absent(state: str | None) -> bool:
    """Whether the ledger is a SQLite file that does not exist (yet)."""
    from mcp_guard.flows.ledger import FLOWS_FILE

    if not state or state.strip().lower().startswith("memory:"):
        from mcp_guard import paths

        return not (paths.state_dir() / FLOWS_FILE).exists()
    if state.strip().lower().startswith("sqlite:"):
        from mcp_guard.limits.store import sqlite_path

        try:
            return not sqlite_path(state.strip()).exists()
        except ValueError:
            return False  # open_ledger says what is wrong with it
    return False


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def run(args: argparse.Namespace) -> int:
    from mcp_guard.flows.ledger import open_ledger
    from mcp_guard.limits.base import StoreUnavailable

    if ledger_absent(args.state):  # nothing was ever recorded: say so without creating the file
        print("no flow labels are held" if args.action == "list" else "forgot 0 held labels")
        return exits.OK
    try:
        ledger = open_ledger(args.state)
        if args.action == "clear":
            holder = f"client:{args.client}" if args.client else None
            gone = ledger.clear(holder)
            whose = f"client {args.client!r}" if args.client else "every holder"
            print(f"forgot {gone} held label{'s' if gone != 1 else ''} of {whose}")
            return exits.OK
        rows = ledger.entries()
    except (StoreUnavailable, ValueError) as exc:
        print(f"mcp-guard flows: the flow ledger cannot be read: {exc}", file=sys.stderr)
        return exits.USAGE
    if args.json:
        out = [{"holder": h.holder, "label": h.label, "tool": h.tool, "server": h.server, "at": h.at} for h in rows]
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return exits.OK
    if not rows:
        print("no flow labels are held")
        return exits.OK
    for h in rows:
        print(f"{h.holder}  {h.label}  from {h.tool!r} (server {h.server!r}) at {_when(h.at)}")
    return exits.OK
