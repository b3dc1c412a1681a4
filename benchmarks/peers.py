"""The round-trip scenarios through peer MCP guards/proxies installed from PyPI and npm.

    bash benchmarks/install_peers.sh          # once: installs into benchmarks/.peers/
    python benchmarks/peers.py [--quick] [--all] [--rounds N]

Same method and client as ``roundtrip.py`` (fresh process set per variant per
round, CPU 0, interleaved rounds, medians; 16 B, 64 KiB and 1 MB results, and
pipelined throughput), with direct, the Python thread floor and mcp-guard
allow-all as references. Each peer is configured to allow everything, with its
optional scanners and audit logging switched off where it has a switch; the exact
command line and configuration are in ``PEERS`` below (and in the README).

By default the four fastest peers that worked when this suite was written (wardn first) are
measured (``DEFAULT_PEERS``); ``--all`` measures every candidate that is installed.
A peer that is not installed is skipped with a note.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    BUILD_DIR,
    GUARD_ALLOW,
    GUARD_LIMIT,
    PEERS_DIR,
    Variant,
    machine,
    print_machine,
    progress,
    relay_variants,
    rotated,
    setup_driver,
    write_results,
)
from roundtrip import FULL, QUICK, Plan, print_summary, run_round, summarise

SIZES = [16, 64 * 1024, 1_000_000]
VENV_BIN = PEERS_DIR / "venv" / "bin"
NPM_DIR = PEERS_DIR / "npm"
PEER_WORK = BUILD_DIR / "peers"

AGENTGUARD_ALLOW_ALL = """\
# agentguard allow-all: every category check off, unclassified arguments allowed.
unclassified_arguments: allow
file_access: {enabled: false}
command_exec: {enabled: false}
network: {enabled: false}
"""

MCP_FIREWALL_ALLOW_ALL = """\
# mcp-firewall allow-all: default allow, every scanner, the rate limit, kill switch and audit off.
version: 1
defaultAction: allow
killSwitch: {enabled: false}
globalRateLimit: {enabled: false}
injection: {enabled: false}
egress: {enabled: false}
secrets: {enabled: false}
pii: {enabled: false}
audit: {enabled: false}
"""


def _pypi_version(dist: str) -> str | None:
    site = sorted((PEERS_DIR / "venv" / "lib").glob("python*/site-packages"))
    for directory in site:
        for info in directory.glob(f"{dist.replace('-', '_')}-*.dist-info"):
            return info.name[len(dist) + 1 : -len(".dist-info")]
    return None


def _npm_version(package: str) -> str | None:
    manifest = NPM_DIR / "node_modules" / package / "package.json"
    if not manifest.is_file():
        return None
    version: str = json.loads(manifest.read_text())["version"]
    return version


def _write(name: str, text: str) -> Path:
    PEER_WORK.mkdir(parents=True, exist_ok=True)
    path = PEER_WORK / name
    path.write_text(text, encoding="utf-8")
    return path


@dataclass(frozen=True)
class Peer:
    """A candidate: how to find its version and build its allow-all command line."""

    name: str
    registry: str  # "PyPI" or "npm"
    package: str
    executable: Path
    build: Callable[[], tuple[tuple[str, ...], dict[str, str]]]  # (argv prefix before the upstream, env)
    notes: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def version(self) -> str | None:
        return _pypi_version(self.package) if self.registry == "PyPI" else _npm_version(self.package)

    def variant(self) -> Variant | None:
        version = self.version()
        if version is None or not self.executable.exists():
            return None
        prefix, env = self.build()
        # Run in build/peers/: mcp-transport-firewall, for one, writes audit.log into its working directory.
        PEER_WORK.mkdir(parents=True, exist_ok=True)
        return Variant(f"{self.name} {version} ({self.registry})", prefix, "peer", env, cwd=str(PEER_WORK))


def _watchdog() -> tuple[tuple[str, ...], dict[str, str]]:
    return (str(VENV_BIN / "mcp-watchdog"), "--quiet", "--"), {}


def _agentguard() -> tuple[tuple[str, ...], dict[str, str]]:
    config = _write("agentguard-allow-all.yaml", AGENTGUARD_ALLOW_ALL)
    audit = PEER_WORK / "agentguard_audit.log"
    audit.unlink(missing_ok=True)  # it only grows: start each run empty
    return (str(VENV_BIN / "agentguard"), "run", "--config", str(config), "--audit-log", str(audit), "--"), {}


def _mcp_firewall() -> tuple[tuple[str, ...], dict[str, str]]:
    config = _write("mcp-firewall-allow-all.yaml", MCP_FIREWALL_ALLOW_ALL)
    return (str(VENV_BIN / "mcp-firewall"), "wrap", "--config", str(config), "--"), {}


WARDN_ALLOW_ALL = '{"format": "wardn-policy/1", "default": "allow", "rules": []}\n'


def _wardn() -> tuple[tuple[str, ...], dict[str, str]]:
    policy = _write("wardn-allow-all.json", WARDN_ALLOW_ALL)
    ledger = PEER_WORK / "wardn-ledger.jsonl"
    ledger.unlink(missing_ok=True)  # its ledger (the audit record) only grows: start each run empty
    return (str(VENV_BIN / "wardn"), "proxy", "--policy", str(policy), "--ledger", str(ledger), "--"), {}


def _transport_firewall() -> tuple[tuple[str, ...], dict[str, str]]:
    cache = PEER_WORK / "mcp-transport-firewall-cache"
    cache.mkdir(parents=True, exist_ok=True)
    (PEER_WORK / "audit.log").unlink(missing_ok=True)  # its audit log, written into the working directory
    env = {"MCP_CACHE_DIR": str(cache), "MCP_ADMIN_ENABLED": "false", "MCP_VERBOSE": "false"}
    return (str(NPM_DIR / "node_modules" / ".bin" / "mcp-transport-firewall"), "--"), env


PEERS = [
    Peer(
        "mcp-watchdog",
        "PyPI",
        "mcp-watchdog",
        VENV_BIN / "mcp-watchdog",
        _watchdog,
        "mcp-watchdog --quiet -- UPSTREAM (no policy file: its scanners have no off switch)",
    ),
    Peer(
        "agentguard",
        "PyPI",
        "agentguard-mcp",
        VENV_BIN / "agentguard",
        _agentguard,
        "agentguard run --config agentguard-allow-all.yaml --audit-log FILE -- UPSTREAM (audit log always on)",
    ),
    Peer(
        "mcp-firewall",
        "PyPI",
        "mcp-firewall",
        VENV_BIN / "mcp-firewall",
        _mcp_firewall,
        "mcp-firewall wrap --config mcp-firewall-allow-all.yaml -- UPSTREAM",
    ),
    Peer(
        "wardn",
        "PyPI",
        "wardn",
        VENV_BIN / "wardn",
        _wardn,
        "wardn proxy --policy wardn-allow-all.json --ledger FILE -- UPSTREAM (its ledger has no off switch)",
    ),
    Peer(
        "mcp-transport-firewall",
        "npm",
        "mcp-transport-firewall",
        NPM_DIR / "node_modules" / ".bin" / "mcp-transport-firewall",
        _transport_firewall,
        "mcp-transport-firewall -- UPSTREAM, MCP_CACHE_DIR set, no PROXY_AUTH_TOKEN (auth off)",
    ),
]
DEFAULT_PEERS = ["wardn", "agentguard", "mcp-firewall", "mcp-transport-firewall"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and calls")
    parser.add_argument("--all", action="store_true", help="every installed candidate, not only DEFAULT_PEERS")
    parser.add_argument("--rounds", type=int, help="rounds (default 7)")
    parser.add_argument(
        "--budget", type=float, default=1.5, help="seconds of timed calls per size per round per peer (default 1.5)"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin to CPU 0")
    args = parser.parse_args()
    pinning = setup_driver(args.no_pin)
    base = QUICK if args.quick else FULL
    rounds = args.rounds or (base.rounds if args.quick else 7)
    plan = Plan(rounds, 0, base.calls, base.warmup, base.pipelined_total, base.window)
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
    for r in range(plan.rounds):
        results: dict[str, dict[str, Any]] = {}
        for v in rotated(variants, r):
            results[v.name] = run_round(v, r, plan, SIZES, budget_s=args.budget)
        all_rounds.append(results)
        progress(f"peers: round {r + 1}/{plan.rounds} done")

    summary = summarise(variants, all_rounds, SIZES)
    print()
    tables = print_summary(variants, summary, SIZES, plan)
    write_results(
        "peers",
        {
            "machine": info,
            "notes": notes,
            "peers": measured_peers,
            "plan": {"rounds": plan.rounds, "calls": plan.calls, "pipelined_total": plan.pipelined_total},
            "summary": summary,
            "tables": tables,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
