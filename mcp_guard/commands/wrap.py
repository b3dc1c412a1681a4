"""``mcp-guard wrap`` / ``mcp-guard unwrap``: put the guard in front of a client's stdio servers, or take it out.

The editing itself is :mod:`mcp_guard.clients`; this module finds the files, checks
the policy and lock file, prints what happened and writes (with a backup) or, with
``--dry-run``, shows a diff. A policy is never put on a server its lock was not made for,
and ``--init`` makes one policy per server (:mod:`mcp_guard.commands.perserver`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mcp_guard import exits

if TYPE_CHECKING:
    from mcp_guard.clients.edit import Outcome
    from mcp_guard.clients.launch import GuardLaunch
    from mcp_guard.integrity.lockfile import LockFile

HELP = (
    "Rewrite an MCP client's config so each chosen stdio server (and, with --remote, each remote one) is started "
    "through mcp-guard, with --policy FILE or, with --init, a policy made for each server. Idempotent; backs the "
    "file up before writing; `mcp-guard unwrap` undoes it exactly."
)
UNWRAP_HELP = "Undo `mcp-guard wrap`: give each chosen server its own command, args and env back, exactly as before."

_HASH_FLAG = "\0pin-policy-hash"
"""What a bare ``--lock`` (no FILE) stands for: before ``--lock FILE`` it meant ``--pin-policy-hash``."""

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
    from mcp_guard.clients.known import CLIENTS

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
        help="only this server (repeatable); default: every stdio server in the file (and remote, with --remote)",
    )
    if wrap:
        parser.add_argument(
            "--policy",
            metavar="FILE",
            help="policy the wrapped servers use, written as an absolute path; without it the guard finds one "
            "at start-up ($MCP_GUARD_POLICY, then the user config policy.json). Given, it also updates "
            "entries already wrapped with other guard options (to exactly the options of this command)",
        )
        parser.add_argument(
            "--lock",
            metavar="FILE",
            nargs="?",
            const=_HASH_FLAG,
            help="the lock file the wrapped servers check their tools against (mcp-guard pins create), written as "
            "an absolute path (passed on as the guard's --lock FILE). Without FILE, --lock is the older "
            "spelling of --pin-policy-hash",
        )
        parser.add_argument(
            "--remote",
            action="store_true",
            help="also wrap remote servers (entries with a 'url': Streamable HTTP or SSE): each becomes "
            "`mcp-guard [options] -- npx -y mcp-remote URL` with its headers as --header arguments (needs Node.js; "
            "mcp-remote does any OAuth sign-in in the browser). `mcp-guard unwrap` restores the entry exactly",
        )
        parser.add_argument(
            "--pin-policy-hash",
            action="store_true",
            help="also write the policy's SHA-256 (--policy-sha256) so the guard refuses a policy changed later, "
            "by an agent or anyone else; re-run wrap after editing the policy yourself",
        )
        from mcp_guard.commands.listing import add_capabilities, add_timeout

        parser.add_argument(
            "--init",
            action="store_true",
            help="run `mcp-guard init` for each chosen stdio server (with its entry's env and cwd) and wrap each "
            "with its own policy and lock file, written as NAME.json and NAME.lock.json in a folder mcp-guard next "
            "to the client's config (for a config in your home directory, such as ~/.claude.json: in servers/ in "
            "the user config directory). Servers already wrapped are left as they are",
        )
        parser.add_argument("--policy-dir", metavar="DIR", help="with --init: write the policies in DIR instead")
        parser.add_argument(
            "--force",
            action="store_true",
            help="with --init: make the policies again, replacing files of the same name, and rewrap servers "
            "already wrapped",
        )
        add_capabilities(parser)
        add_timeout(parser)
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
    from mcp_guard.clients.edit import unwrap_text, wrap_text
    from mcp_guard.clients.files import ConfigError, read_config, unified_diff, write_config
    from mcp_guard.clients.known import CLIENTS, client_config_paths

    project_dir = Path(os.path.abspath(args.project or os.getcwd()))
    if args.config:
        paths = [Path(args.config).expanduser()]
        if not paths[0].is_file():
            _say(f"config file not found: {paths[0]}")
            return exits.FAILED
    else:
        candidates = client_config_paths(args.client, project_dir=project_dir)
        paths = [p for p in candidates if p.is_file()]
        if not paths:
            looked = "\n".join(f"  {p}" for p in candidates)
            _say(f"no {CLIENTS[args.client]} config file found; looked for:\n{looked}")
            return exits.FAILED

    from mcp_guard.commands.perserver import PolicyMaker

    maker: PolicyMaker | None = None
    launch: GuardLaunch | None = None
    if wrap and args.init:
        if args.policy or args.lock is not None:
            _say("--init makes a policy and lock file for each server: give it without --policy and --lock")
            return exits.USAGE
        maker = PolicyMaker(args)
    elif wrap:
        prepared = _launch(args)
        if isinstance(prepared, int):
            return prepared
        launch, pinned = prepared
        if pinned is not None:
            from mcp_guard.commands.perserver import shared_pins_refusal

            refusal = shared_pins_refusal(args, paths, project_dir, launch_policy(launch), *pinned)
            if refusal is not None:
                _say(refusal)
                _say("nothing written")
                return exits.USAGE

    servers = set(args.server) if args.server else None
    found: set[str] = set()
    failed = False
    planned: list[tuple[Path, bytes, Outcome]] = []
    for path in paths:
        try:
            data, text = read_config(path)
            if maker is not None:
                launches = maker.launches(path, text, project_dir)
                outcome = wrap_text(
                    text,
                    launches,
                    servers=servers,
                    project_dir=project_dir,
                    update_options=args.force,
                    file=str(path),
                )
                maker.annotate(outcome)
            elif launch is not None:
                outcome = wrap_text(
                    text,
                    launch,
                    servers=servers,
                    project_dir=project_dir,
                    update_options=bool(args.policy),
                    remote=args.remote,
                    file=str(path),
                )
            else:
                outcome = unwrap_text(text, servers=servers, project_dir=project_dir, file=str(path))
        except ConfigError as exc:
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
        return exits.FAILED

    if maker is not None and not args.dry_run and not maker.commit():
        _say("nothing written to the config files")
        return exits.FAILED
    changed = [outcome for _, _, outcome in planned if outcome.changed]
    if wrap and changed:
        from mcp_guard.clients.launch import find_guard_command

        _ephemeral_note(launch.command if launch is not None else find_guard_command()[0])
        if any(e.remote for outcome in changed for e in outcome.entries):
            _remote_note()
    wrote = False
    for path, data, outcome in planned:
        if not outcome.changed:
            continue
        if args.dry_run:
            sys.stdout.write(unified_diff(path, outcome.old_text, outcome.new_text))
            continue
        try:
            backup = write_config(path, data, outcome.new_text)
        except (ConfigError, OSError) as exc:
            _say(f"could not write {path}: {exc}")
            failed = True
            continue
        wrote = True
        _say(f"wrote {path} (backup: {backup.name})")

    if maker is not None and maker.failures:
        failed = True
        _say(
            "not wrapped, without a policy of their own: "
            + ", ".join(sorted(maker.failures))
            + " (the reasons are above)"
        )
    if args.dry_run:
        _say("dry run: nothing written")
    elif wrote:
        client = CLIENTS.get(args.client or "", "the client")
        _say(f"restart {client} (or reload its MCP servers) for the change to take effect")
    elif not failed:
        _say("nothing to change")
    return exits.FAILED if failed else exits.OK


def launch_policy(launch: GuardLaunch) -> str:
    """The ``--policy`` value of a launch ("" when it has none)."""
    options = list(launch.options)
    return options[options.index("--policy") + 1] if "--policy" in options else ""


def _launch(args: argparse.Namespace) -> tuple[GuardLaunch, tuple[Path, LockFile] | None] | int:
    """The guard's command line to write, after checking what it names, and the lock in force (which pins one
    server) with its path; an exit code if that fails."""
    from mcp_guard.clients.launch import guard_launch
    from mcp_guard.integrity.lockfile import LockFile, LockFileError

    policy: str | None = None
    lock_in_force: Path | None = None
    if args.policy:
        from mcp_guard.integrity.setup import lock_file_for
        from mcp_guard.policy.load import PolicyError, load_policy

        policy = os.path.abspath(os.path.expanduser(args.policy))
        try:
            loaded = load_policy(Path(policy))
        except PolicyError as exc:
            _say(f"not wrapping: the policy would stop every wrapped server from starting:\n{exc}")
            return exits.FAILED
        lock_in_force = lock_file_for(loaded, Path(policy))[0]
    else:
        _no_policy_note()
    lock: str | None = None
    pin_hash = args.pin_policy_hash
    if args.lock == _HASH_FLAG:
        pin_hash = True
    elif args.lock is not None:
        lock = os.path.abspath(os.path.expanduser(args.lock))
        lock_in_force = Path(lock)
    pinned: tuple[Path, LockFile] | None = None
    if lock_in_force is not None:
        lock_in_force = Path(os.path.abspath(lock_in_force))
        try:
            pinned = (lock_in_force, LockFile.load(lock_in_force))
        except LockFileError as exc:
            _say(f"not wrapping: the lock file would stop every wrapped server from starting: {exc}")
            return exits.FAILED
    digest = None
    if pin_hash:
        if policy is None:
            _say("--pin-policy-hash needs --policy: it pins that file's SHA-256 into the config")
            return exits.USAGE
        import hashlib

        digest = hashlib.sha256(Path(policy).read_bytes()).hexdigest()
    return guard_launch(policy, policy_sha256=digest, lock=lock), pinned


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


def _remote_note() -> None:
    """What a user of a remote server wrapped through mcp-remote needs to know before the client starts it."""
    import shutil

    from mcp_guard.clients.remote import BRIDGE

    if shutil.which(BRIDGE[0]) is None:
        _say(
            f"note: {BRIDGE[0]} is not on PATH here; the wrapped remote servers start mcp-remote with it, so install "
            "Node.js (18 or later) where the client runs"
        )
    _say(
        "note: remote servers run through mcp-remote (npm); one that asks for OAuth opens the sign-in page in your "
        "browser when the client first starts it, and mcp-remote keeps the tokens in ~/.mcp-auth "
        "(or $MCP_REMOTE_CONFIG_DIR)"
    )


def _no_policy_note() -> None:
    from mcp_guard.config import POLICY_ENV
    from mcp_guard.paths import policy_path

    default = policy_path()
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
            "will point there. Install it for good (in a checkout of mcp-guard: pipx install . or uv tool install .; "
            "once it is published: pipx install mcp-guard) and wrap again from that install if the servers stop "
            "starting"
        )
