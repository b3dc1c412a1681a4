"""``mcp-guard deny ID``: refuse a call waiting for a person; the agent is told a person denied it."""

from __future__ import annotations

import argparse

from mcp_guard.commands.approvals import add_store_argument, fail, open_store

HELP = (
    "Deny a call waiting for a person (its id is in `mcp-guard approvals`). The agent is told a person "
    "denied it, and retries of the identical call are refused until the request would have expired."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="the approval id, such as ap-7k3m9q")
    add_store_argument(parser)


def run(args: argparse.Namespace) -> int:
    from mcp_guard.approval.request import duration_words
    from mcp_guard.approval.store import ApprovalError
    from mcp_guard.commands.approve import decider

    store = open_store(args)
    try:
        request = store.decide(args.id, False, by=decider())
    except ApprovalError as exc:
        return fail(str(exc))
    finally:
        store.close()
    refused_for = duration_words((request.until or 0.0) - (request.decided_at or 0.0))
    print(
        f"denied {request.id}: {request.describe()}; the agent is told a person denied it, "
        f"and identical calls are refused for the next {refused_for}"
    )
    return 0
