"""``mcp-guard stats``: calls allowed and refused per server and tool, and which rules refused them."""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from typing import Any

from mcp_guard.commands.logs import (
    add_common,
    aligned,
    log_path,
    matches,
    read_records,
    shown,
    since_cutoff,
    widths_of,
)

HELP = "Summarise the audit log: per server and tool, calls allowed and refused (by rule) over a period."
DECISIONS = ("allowed", "approved", "refused", "declined", "monitored")
JSON_HELP = (
    'print one JSON object for scripts: {"since", "audit_log", "decisions": [{"server", "tool", "counts": '
    '{"allowed", "approved", "refused", "declined", "monitored"}, "refused_by_rule": {RULE: N}}], "counters": '
    '[{"rule", "counter", "scope", "used", "max", "window_s"}] (with --policy and --state, else []), '
    '"labels": [{"holder", "label", "tool", "server", "at"}] (the flow labels held now)}'
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, JSON_HELP)
    parser.set_defaults(since="1d")
    parser.add_argument(
        "--policy", metavar="FILE", help="with --state: also show how full each shared counter of this policy is now"
    )
    parser.add_argument("--state", metavar="URL", help="the shared counter store the guards use (sqlite:, redis:)")
    parser.add_argument("--name", help="server name of the guards (for 'server'-scoped counters)")


def counter_levels(policy_path: str, state: str, server_name: str | None) -> list[dict[str, Any]]:
    """Usage right now of every shared (server/global) limit in the policy, read from the store."""
    from pathlib import Path

    from mcp_guard.limits.scoped import store_key
    from mcp_guard.limits.store import open_store
    from mcp_guard.policy.engine import all_limits
    from mcp_guard.policy.load import dotted_path, load_policy
    from mcp_guard.policy.model import window_seconds

    policy = load_policy(Path(policy_path))
    store = open_store(state)
    rows = []
    for path, limit in all_limits(policy):
        if limit.scope == "grant" or (limit.scope == "server" and not server_name) or limit.key is not None:
            continue  # a keyed limit has one count per value, not one number to show
        window = window_seconds(limit.window)
        used = store.usage(store_key(limit.scope, limit.counter, server_name or ""), window)
        rows.append(
            {
                "rule": dotted_path(path),
                "counter": limit.counter,
                "scope": limit.scope,
                "used": used,
                "max": limit.max,
                "window_s": window,
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    from mcp_guard.approval.request import json_for_people
    from mcp_guard.audit import log_files

    cutoff = since_cutoff(args.since)
    table: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    rules: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for record in read_records(log_files(log_path(args))):
        if not matches(record, args, cutoff):
            continue
        key = (str(record.get("server")), str(record.get("tool")))
        decision = str(record.get("decision"))
        table[key][decision] += 1
        if decision in ("refused", "monitored", "declined"):
            rules[key][str(record.get("rule"))] += 1
    from mcp_guard.limits.base import StoreUnavailable

    levels: list[dict[str, Any]] = []
    if args.policy and args.state:
        from mcp_guard.policy.load import PolicyError

        try:
            levels = counter_levels(args.policy, args.state, args.server or args.name)
        except (PolicyError, StoreUnavailable, ValueError) as exc:
            print(f"mcp-guard stats: cannot read the counters: {exc}", file=sys.stderr)
            return 2
    try:
        labels = held_labels(args.state)
    except (StoreUnavailable, ValueError) as exc:
        print(f"mcp-guard stats: cannot read the flow ledger: {exc}", file=sys.stderr)
        return 2
    if args.json:
        out = [
            {
                "server": server,
                "tool": tool,
                "counts": {decision: table[(server, tool)][decision] for decision in DECISIONS},
                "refused_by_rule": dict(rules[(server, tool)]),
            }
            for server, tool in sorted(table)
        ]
        document = {
            "since": args.since,
            "audit_log": str(log_path(args)),
            "decisions": out,
            "counters": levels,
            "labels": labels,
        }
        print(json_for_people(document, indent=2))
        return 0
    _print_levels(levels)
    _print_labels(labels)
    if not table:
        print(f"no decisions in the audit log since {shown(args.since)}")
        return 0
    print(f"decisions since {shown(args.since)} (from {shown(log_path(args))})")
    rows = [["server", "tool", "allowed", "refused", "monitored", "refused by rule"]]
    for server, tool in sorted(table):
        counts = table[(server, tool)]
        by_rule = ", ".join(f"{shown(rule)} ×{n}" for rule, n in rules[(server, tool)].most_common())
        rows.append(
            [
                shown(server),
                shown(tool),
                str(counts["allowed"] + counts["approved"]),
                str(counts["refused"] + counts["declined"]),
                str(counts["monitored"]),
                by_rule,
            ]
        )
    # Names are never cut: two servers that differ only at the end must not look the same.
    for line in aligned(rows, widths_of(rows), frozenset({2, 3, 4})):
        print(line)
    return 0


def held_labels(state: str | None) -> list[dict[str, Any]]:
    """The flow labels held now, per holder, from the guards' store (the default ledger file, if it exists)."""
    from mcp_guard.commands.flows import ledger_absent
    from mcp_guard.flows.ledger import open_ledger

    if ledger_absent(state):
        return []
    return [
        {"holder": h.holder, "label": h.label, "tool": h.tool, "server": h.server, "at": h.at}
        for h in open_ledger(state).entries()
    ]


def _print_labels(labels: list[dict[str, Any]]) -> None:
    if not labels:
        return
    import time

    print("flow labels held now")
    rows = [["holder", "label", "from tool", "server", "acquired"]]
    rows += [
        [
            shown(row["holder"]),
            shown(row["label"]),
            shown(row["tool"]),
            shown(row["server"]),
            time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(row["at"])),
        ]
        for row in labels
    ]
    for line in aligned(rows, widths_of(rows), frozenset()):
        print(line)
    print()


def _print_levels(levels: list[dict[str, Any]]) -> None:
    if not levels:
        return
    print("shared counters now")
    rows = [["rule", "counter", "scope", "used", "max", "window"]]
    rows += [
        [
            shown(row["rule"]),
            shown(row["counter"]),
            shown(row["scope"]),
            f"{row['used']:g}",
            f"{row['max']:g}",
            f"{row['window_s']:g} s",
        ]
        for row in levels
    ]
    for line in aligned(rows, widths_of(rows), frozenset({3, 4})):
        print(line)
    print()
