"""``mcp-guard stats``: calls allowed and refused per server and tool, and which rules refused them."""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from typing import Any

from mcp_guard.commands.logs import add_common, log_path, matches, read_records, since_cutoff

HELP = "Summarise the audit log: per server and tool, calls allowed and refused (by rule) over a period."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.set_defaults(since="1d")


def run(args: argparse.Namespace) -> int:
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
    if args.json:
        out: list[dict[str, Any]] = [
            {"server": s, "tool": t, "counts": dict(table[(s, t)]), "refused_by_rule": dict(rules[(s, t)])}
            for s, t in sorted(table)
        ]
        print(json.dumps(out, indent=2))
        return 0
    if not table:
        print(f"no decisions in the audit log since {args.since}")
        return 0
    print(f"decisions since {args.since} (from {log_path(args)})")
    print(f"{'server':20}  {'tool':28}  {'allowed':>7}  {'refused':>7}  {'monitored':>9}  refused by rule")
    for server, tool in sorted(table):
        counts = table[(server, tool)]
        by_rule = ", ".join(f"{rule} ×{n}" for rule, n in rules[(server, tool)].most_common())
        print(
            f"{server[:20]:20}  {tool[:28]:28}  {counts['allowed'] + counts['approved']:>7}  "
            f"{counts['refused'] + counts['declined']:>7}  {counts['monitored']:>9}  {by_rule}"
        )
    return 0
