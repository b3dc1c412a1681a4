"""``mcp-guard wrap`` / ``mcp-guard unwrap``: put the guard in front of a client's stdio servers, or take it out.

The editing itself is :mod:`mcp_guard.clientconfig`; this module finds the files, checks
the policy, prints what happened and writes (with a backup) or, with ``--dry-run``, shows
a diff.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcp_guard.clientconfig import Outcome

HELP = (
    "Rewrite an MCP client's config so each chosen stdio server is started through mcp-guard. "
    "Idempotent; backs the file up before writing; `mcp-guard unwrap` undoes it exactly."
)
UNWRAP_HELP = "Undo `mcp-guard wrap`: give each chosen server its own command, args and env back, exactly as before."

_ACTION_WORDS = {
    "wrapped": "wrapped",
    "rewrapped": "wrapped again",
    "already-wrapped": "already wrapped, unchanged",
    "unwrapped": "unwrapped",
    "not-wrapped": "not wrapped, unchanged",
    "skipped": "skipped",
}


def _say(message: str) -> None:
    sys.stderr.write(f"mcp-guard: {message}\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_common(parser, wrap=True)


def add_unwrap_arguments(parser: argparse.ArgumentParser) -> None:
    _add_common(parser, wrap=False)


def _add_common(parser: argparse.ArgumentParser, *, wrap: bool) -> None:
    from mcp_guard.clientconfig import CLIENTS

    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--client",
        choices=list(CLIENTS),
        help="edit this client's config files: claude-desktop (claude_desktop_config.json), claude-code "
        "(~/.claude.json and ./.mcp.json), cursor (~/.cursor/mcp.json and ./.cursor/mcp.json), "
        "vscode (user mcp.json and ./.vscode/mcp.json); those that exist",
    )
    target.add_argument("--config", metavar="PATH", help="edit this config file instead")
    parser.add_argument(
        "--server",
        metavar="NAME",
        action="append",
        help="only this server (repeatable); default: every stdio server in the file",
    )
    if wrap:
        parser.add_argument(
            "--policy",
            metavar="FILE",
            help="policy the wrapped servers use, written as an absolute path; without it the guard finds one "
            "at start-up ($MCP_GUARD_POLICY, then the user config policy.json). Given, it also updates "
            "entries already wrapped with a different policy",
        )
        parser.add_argument(
            "--lock",
            action="store_true",
            help="also write the policy's SHA-256 (--policy-sha256) so the guard refuses a policy changed later, "
            "by an agent or anyone else; re-run wrap after editing the policy yourself",
        )
    parser.add_argument(
        "--project",
        metavar="DIR",
        help="project directory for project-level files (.mcp.json, .cursor/mcp.json, .vscode/mcp.json) and for "
        "Claude Code's per-project servers in ~/.claude.json (default: the current directory)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print a unified diff of the change; write nothing")


def run(args: argparse.Namespace) -> int:
    return _run(args, wrap=True)


def run_unwrap(args: argparse.Namespace) -> int:
    return _run(args, wrap=False)


def _run(args: argparse.Namespace, *, wrap: bool) -> int:
    from mcp_guard import clientconfig as cc

    project_dir = Path(os.path.abspath(args.project or os.getcwd()))
    if args.config:
        paths = [Path(args.config).expanduser()]
        if not paths[0].is_file():
            _say(f"config file not found: {paths[0]}")
            return 1
    else:
        candidates = cc.client_config_paths(args.client, project_dir=project_dir)
        paths = [p for p in candidates if p.is_file()]
        if not paths:
            looked = "\n".join(f"  {p}" for p in candidates)
            _say(f"no {cc.CLIENTS[args.client]} config file found; looked for:\n{looked}")
            return 1

    launch = None
    if wrap:
        policy: str | None = None
        if args.policy:
            from mcp_guard.policy.load import PolicyError, load_policy

            policy = os.path.abspath(os.path.expanduser(args.policy))
            try:
                load_policy(Path(policy))
            except PolicyError as exc:
                _say(f"not wrapping: the policy would stop every wrapped server from starting:\n{exc}")
                return 1
        else:
            _no_policy_note()
        digest = None
        if args.lock:
            if policy is None:
                _say("--lock needs --policy: it pins that file's SHA-256 into the config")
                return 2
            import hashlib

            digest = hashlib.sha256(Path(policy).read_bytes()).hexdigest()
        launch = cc.guard_launch(policy, policy_sha256=digest)

    servers = set(args.server) if args.server else None
    found: set[str] = set()
    failed = False
    planned: list[tuple[Path, bytes, Outcome]] = []
    for path in paths:
        try:
            data, text = cc.read_config(path)
            if launch is not None:
                outcome = cc.wrap_text(
                    text,
                    launch,
                    servers=servers,
                    project_dir=project_dir,
                    update_options=bool(args.policy),
                    file=str(path),
                )
            else:
                outcome = cc.unwrap_text(text, servers=servers, project_dir=project_dir, file=str(path))
        except cc.ConfigError as exc:
            _say(str(exc))
            failed = True
            continue
        found |= outcome.found
        _report(path, outcome)
        planned.append((path, data, outcome))

    if servers is not None and servers - found:
        missing = ", ".join(repr(name) for name in sorted(servers - found))
        _say(f"no server named {missing} in {', '.join(str(p) for p in paths)}")
        failed = True
    if failed:
        _say("nothing written")
        return 1

    if launch is not None and any(outcome.changed for _, _, outcome in planned):
        _ephemeral_note(launch.command)
    wrote = False
    for path, data, outcome in planned:
        if not outcome.changed:
            continue
        if args.dry_run:
            sys.stdout.write(cc.unified_diff(path, outcome.old_text, outcome.new_text))
            continue
        try:
            backup = cc.write_config(path, data, outcome.new_text)
        except (cc.ConfigError, OSError) as exc:
            _say(f"could not write {path}: {exc}")
            failed = True
            continue
        wrote = True
        _say(f"wrote {path} (backup: {backup.name})")

    if args.dry_run:
        _say("dry run: nothing written")
    elif wrote:
        client = cc.CLIENTS.get(args.client or "", "the client")
        _say(f"restart {client} (or reload its MCP servers) for the change to take effect")
    elif not failed:
        _say("nothing to change")
    return 1 if failed else 0


def _report(path: Path, outcome: Outcome) -> None:
    _say(f"{path}:")
    if not outcome.entries:
        _say("  no MCP servers here")
    for entry in outcome.entries:
        words = _ACTION_WORDS.get(entry.action, entry.action)
        detail = f" ({entry.detail})" if entry.detail else ""
        _say(f"  {entry.label}: {words}{detail}")
    for note in outcome.notes:
        _say(f"  note: {note}")
    if outcome.changed and path.name == ".claude.json":
        _say(
            "  note: Claude Code rewrites this file while it runs; quit its sessions first, or check the change stayed"
        )


def _no_policy_note() -> None:
    from mcp_guard.cli import POLICY_ENV, default_policy_path

    default = default_policy_path()
    if os.environ.get(POLICY_ENV) or default.is_file():
        return
    _say(
        f"note: no --policy given and none at {default}: the wrapped servers will relay every call (allow-all) "
        f"until a policy exists there or ${POLICY_ENV} is set in the client's environment for the server"
    )


def _ephemeral_note(command: str) -> None:
    """Warn when the guard runs from a throwaway environment (``uvx``, ``pipx run``, a temp dir)."""
    import tempfile

    path = os.path.normcase(os.path.abspath(command))
    parts = set(Path(path).parts)
    temp = os.path.normcase(os.path.abspath(tempfile.gettempdir()))
    if ".cache" in parts or "cache" in parts or any(p.startswith("archive-v") for p in parts) or path.startswith(temp):
        _say(
            f"note: mcp-guard is running from what looks like a temporary environment ({command}); the config "
            "will point there. Install it for good (pipx install mcp-guard, or uv tool install mcp-guard) "
            "and wrap again from that install if the servers stop starting"
        )
