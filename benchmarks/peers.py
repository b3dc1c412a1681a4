"""The round-trip scenarios through peer MCP guards/proxies installed from PyPI and npm.

    bash benchmarks/install_peers.sh          # once: installs into benchmarks/.peers/
    python benchmarks/peers.py [--quick] [--all] [--rounds N]

Same method and client as ``roundtrip.py`` (fresh process set per variant per
round, CPU 0, interleaved rounds, medians; 16 B, 64 KiB and 1 MB results, and
pipelined throughput; then 16 B and pipelined again with the client and the upstream
writing JSON with spaces), with direct, the Python thread floor and mcp-guard as
installed (allow-all and limit) as references. Each peer is configured to allow
everything, with its optional scanners and audit logging switched off where it has a
switch; the exact command line and configuration are in ``_peerlist.PEERS`` (and in
the README).

By default the four fastest peers that worked when this suite was written (wardn first) are
measured (``DEFAULT_PEERS``); ``--all`` measures every candidate that is installed.
A peer that is not installed is skipped with a note.
"""

from __future__ import annotations

import argparse
from typing import Any

from _common import (
    GUARD_ALLOW,
    GUARD_LIMIT,
    Variant,
    machine,
    print_machine,
    progress,
    relay_variants,
    rotated,
    setup_driver,
    write_results,
)
from _peerlist import DEFAULT_PEERS, PEERS
from roundtrip import FULL, QUICK, SPACED, Plan, headline, print_summary, run_round, summarise

SIZES = [16, 64 * 1024, 1_000_000]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and calls")
    parser.add_argument("--all", action="store_true", help="every installed candidate, not only DEFAULT_PEERS")
    parser.add_argument("--rounds", type=int, help="rounds (default 5)")
    parser.add_argument(
        "--budget",
        type=float,
        default=1.5,
        help="seconds of timed calls per size (and of pipelined calls) per round per variant (default 1.5)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin to CPU 0")
    args = parser.parse_args()
    pinning = setup_driver(args.no_pin)
    base = QUICK if args.quick else FULL
    rounds = args.rounds or (base.rounds if args.quick else 5)
    plan = Plan(rounds, 0, base.calls, base.warmup, base.pipelined_total, base.window, spaced_rounds=rounds)
    info = machine(pinning)
    print_machine(info)

    references, _ = relay_variants(floors=False, audit=False)
    # The guard as installed (audit log on, hot reload on), allow-all and with one limit, as the issue compares.
    references = [v for v in references if v.name in ("direct", GUARD_ALLOW, GUARD_LIMIT)]
    floor = [v for v in relay_variants(audit=False)[0] if v.name == "floor: threads (Python)"]
    variants: list[Variant] = [references[0], *floor, *references[1:]]
    notes: list[str] = []
    measured_peers: list[dict[str, Any]] = []
    for peer in PEERS:
        if not args.all and peer.name not in DEFAULT_PEERS:
            continue
        variant = peer.variant()
        if variant is None:
            notes.append(f"{peer.name} ({peer.registry} {peer.package}): not installed, skipped (run install_peers.sh)")
            continue
        variants.append(variant)
        measured_peers.append({"name": variant.name, "command": peer.notes, "argv_prefix": list(variant.prefix)})
    for note in notes:
        print(f"note: {note}")
    for peer_info in measured_peers:
        print(f"peer: {peer_info['name']}: {peer_info['command']}")

    all_rounds: list[dict[str, dict[str, Any]]] = []
    spaced_rounds: list[dict[str, dict[str, Any]]] = []
    for r in range(plan.rounds):
        results: dict[str, dict[str, Any]] = {}
        spaced: dict[str, dict[str, Any]] = {}
        for v, with_spaces in rotated([(v, False) for v in variants] + [(v, True) for v in variants], r):
            if with_spaces:
                spaced[v.name] = run_round(v, r, plan, [16], budget_s=args.budget, spaced=True)
            else:
                results[v.name] = run_round(v, r, plan, SIZES, budget_s=args.budget)
        all_rounds.append(results)
        spaced_rounds.append(spaced)
        progress(f"peers: round {r + 1}/{plan.rounds} done")

    summary = summarise(variants, all_rounds, SIZES)
    summary_spaced = summarise(variants, spaced_rounds, [16])
    print()
    tables = print_summary(variants, summary, SIZES, plan)
    tables += print_summary(variants, summary_spaced, [16], plan, SPACED)
    tables.append(headline(variants, summary))
    tables.append(headline(variants, summary_spaced, SPACED))
    write_results(
        "peers",
        {
            "machine": info,
            "notes": notes,
            "peers": measured_peers,
            "variants": [{"name": v.name, "argv_prefix": list(v.prefix), "kind": v.kind} for v in variants],
            "plan": {"rounds": plan.rounds, "calls": plan.calls, "pipelined_total": plan.pipelined_total},
            "summary": summary,
            "summary_spaced": summary_spaced,
            "tables": tables,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
