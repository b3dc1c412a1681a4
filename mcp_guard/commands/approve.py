"""``mcp-guard approve ID [--for 10m]``: approve a call waiting for a person, so the agent may retry it."""

from __future__ import annotations

import argparse

from mcp_guard.commands.approvals import add_store_argument, fail, open_store

HELP = (
    "Approve a call waiting for a person (its id is in `mcp-guard approvals` and in the refusal the agent saw). "
    "The agent may then retry the identical call once, or any number of times for a while with --for."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="the approval id, such as ap-7k3m9q")
    parser.add_argument(
        "--for",
        dest="duration",
        metavar="DURATION",
        help="let identical calls pass without asking for this long (e.g. 10m, 2h, 1d) instead of once",
    )
    add_store_argument(parser)


def decider() -> str:
    """Who is deciding, as the audit log records it."""
    import getpass

    try:
        user = getpass.getuser()
    except Exception:  # no user name in the environment or the password database
        user = "unknown user"
    return f"{user} via mcp-guard"


def run(args: argparse.Namespace) -> int:
    from mcp_guard.approval.request import duration_words
    from mcp_guard.approval.store import ApprovalError

    seconds: float | None = None
    if args.duration is not None:
        from mcp_guard.policy.model import window_seconds

        try:
            seconds = window_seconds(args.duration)
        except ValueError:
            return fail(f"--for {args.duration!r}: expected a duration such as 90s, 10m, 2h or 1d", 2)
    store = open_store(args)
    try:
        request = store.decide(args.id, True, seconds, by=decider())
    except ApprovalError as exc:
        return fail(str(exc))
    finally:
        store.close()
    if seconds is None:
        then = f"the agent may retry the identical call once (within {duration_words(store.grant_ttl_s)})"
    else:
        then = f"identical calls pass without asking for the next {duration_words(seconds)}"
    print(f"approved {request.id}: {request.describe()}; {then}")
    return 0
