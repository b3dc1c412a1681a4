"""The peer MCP guards/proxies (PyPI and npm): how each is found and run allowing everything.

Used by ``peers.py`` (every default peer) and ``roundtrip.py`` (the fastest, :data:`FASTEST_PEER`, so the
headline run compares the guard with it in the same rounds).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from _common import BUILD_DIR, PEERS_DIR, Variant

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


# The fastest peer measured so far (2026-11): issue 21's targets compare the guard with it.
FASTEST_PEER = "wardn"


def find_peer(name: str) -> tuple[Variant | None, str]:
    """The named peer's variant when installed, else None and a note saying it is not."""
    peer = next(p for p in PEERS if p.name == name)
    variant = peer.variant()
    if variant is None:
        return None, f"{peer.name} ({peer.registry} {peer.package}): not installed, skipped (run install_peers.sh)"
    return variant, f"peer: {variant.name}: {peer.notes}"
