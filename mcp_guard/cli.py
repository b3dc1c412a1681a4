"""Command line: ``mcp-guard [options] -- COMMAND [ARGS...]`` and the subcommands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_guard import __version__

if TYPE_CHECKING:
    from mcp_guard.limits.base import Limiter
    from mcp_guard.policy.model import Policy

POLICY_ENV = "MCP_GUARD_POLICY"
EXIT_USAGE = 2

_RUN_DESCRIPTION = """\
Run an MCP stdio server behind a policy guard. Put `mcp-guard [options] --` in front
of the server command wherever your MCP client launches it.

policy discovery (first found wins):
  --policy FILE, then $MCP_GUARD_POLICY, then policy.json in the user config
  directory (shown below). With none found, every call is relayed (allow-all) and
  one line on stderr says so.
"""


def default_policy_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("mcp-guard", appauthor=False)) / "policy.json"


def _default_audit_path() -> Path:
    from mcp_guard.audit import default_audit_path

    return default_audit_path()


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcp-guard",
        usage="mcp-guard [options] -- COMMAND [ARGS...]",
        description=_RUN_DESCRIPTION,
        epilog=f"user config policy: {default_policy_path()}\naudit log: {_default_audit_path()}\n\n"
        "other commands: " + ", ".join(f"mcp-guard {name}" for name in SUBCOMMANDS) + " (each has --help)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mcp-guard {__version__}")
    parser.add_argument("--policy", metavar="FILE", help="policy file (JSON, or YAML with .yaml/.yml)")
    parser.add_argument(
        "--monitor",
        action="store_true",
        help="decide and report every call but refuse nothing (overrides the policy's mode)",
    )
    parser.add_argument(
        "--no-reload", action="store_true", help="do not watch the policy file for changes (default: reload on change)"
    )
    parser.add_argument(
        "--name", help="server name for the audit log and 'server'-scoped counters (default: derived from the command)"
    )
    parser.add_argument(
        "--state",
        metavar="URL",
        help="where 'server'/'global' counters live: memory: (default), sqlite:///path/counters.db, "
        "redis://host:6379/0, rediss://...",
    )
    parser.add_argument("--audit-log", metavar="PATH", help="where to write the audit log (default: shown below)")
    parser.add_argument(
        "--approval",
        metavar="CHANNELS",
        default="client,async",
        help="how to ask a person for calls that need approval, tried in order: client (an in-band question, "
        "where the client can show one), command, tty, async (refuse with an id to approve from a terminal). "
        "Default: client,async",
    )
    parser.add_argument(
        "--approval-command", metavar="CMD", help="program asked by the 'command' channel (request as JSON on stdin)"
    )
    parser.add_argument(
        "--approval-timeout",
        metavar="SECONDS",
        type=float,
        help="how long one channel may wait for an answer (default: the policy's approval_timeout, 45 s)",
    )
    parser.add_argument("--approval-store", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument(
        "--pins", metavar="LOCKFILE", help="compare tools with this lock file (mcp-guard pin), in enforce mode"
    )
    parser.add_argument(
        "--policy-sha256",
        metavar="HEX",
        help="refuse to start with (or reload into) a policy file whose SHA-256 differs "
        "(see: mcp-guard check --sha256 FILE)",
    )
    parser.add_argument("--no-audit", action="store_true", help="write no audit log")
    return parser


def _split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """Options before ``--`` (or before the first non-option word) and the upstream command after it."""
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    options: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if not word.startswith("-"):
            return options, argv[i:]
        options.append(word)
        if word in _OPTIONS_WITH_VALUE and i + 1 < len(argv):
            options.append(argv[i + 1])
            i += 1
        i += 1
    return options, []


_OPTIONS_WITH_VALUE = frozenset(
    {
        "--policy",
        "--name",
        "--audit-log",
        "--state",
        "--approval",
        "--approval-command",
        "--approval-timeout",
        "--approval-store",
    }
)


def _find_policy(explicit: str | None) -> tuple[Path | None, str]:
    if explicit:
        return Path(explicit), "--policy"
    env = os.environ.get(POLICY_ENV)
    if env:
        return Path(env), f"${POLICY_ENV}"
    path = default_policy_path()
    if path.is_file():
        return path, "user config"
    return None, ""


def _err(message: str) -> None:
    sys.stderr.write(f"mcp-guard: {message}\n")
    sys.stderr.flush()


def run(argv: list[str]) -> int:
    parser = _run_parser()
    options, command = _split_command(argv)
    args = parser.parse_args(options)
    if not command:
        parser.print_usage(sys.stderr)
        _err("no server command given: put it after `--`, e.g. mcp-guard --policy policy.json -- npx some-server")
        return EXIT_USAGE

    from mcp_guard.policy.engine import Engine
    from mcp_guard.policy.load import PolicyError, load_policy
    from mcp_guard.policy.model import ALLOW_ALL

    policy_path, source = _find_policy(args.policy)
    if policy_path is None:
        policy = ALLOW_ALL
        _err(
            f"no policy found: relaying every call (allow-all). Pass --policy FILE, set ${POLICY_ENV}, "
            f"or create {default_policy_path()}"
        )
    else:
        from mcp_guard.reload import file_stamp, sha256_mismatch

        stamp = file_stamp(policy_path)
        mismatch = sha256_mismatch(policy_path, args.policy_sha256)
        if mismatch:
            _err(f"{mismatch}; not starting the server")
            return EXIT_USAGE
        try:
            policy = load_policy(policy_path)
        except PolicyError as exc:
            _err(f"invalid policy (from {source}), not starting the server:\n{exc}")
            return EXIT_USAGE
    if args.monitor or policy.mode == "monitor":
        _err("monitor mode: every call is judged and reported on stderr, but nothing is refused")

    from mcp_guard.upstream import CommandNotFound, resolve_command

    try:
        resolved = resolve_command(command)
    except CommandNotFound as exc:
        _err(f"command not found: {exc.command!r} (PATH={os.environ.get('PATH', '')})")
        return 127
    except PermissionError as exc:
        _err(f"command is not executable: {exc}")
        return 126

    import anyio

    from mcp_guard.audit import server_name_from
    from mcp_guard.judge import Judge
    from mcp_guard.relay import FrameWriter, relay, stderr_line
    from mcp_guard.session import Session
    from mcp_guard.upstream import Upstream

    server_name = args.name or server_name_from(command)
    limiter, store_name = _limiter(args.state or policy.state, policy, server_name)
    if limiter is None:
        return EXIT_USAGE
    judge = Judge(Engine(policy), limiter, force_monitor=args.monitor, warn=stderr_line, store_name=store_name)
    try:
        upstream = Upstream(resolved)
    except OSError as exc:
        _err(f"could not start {command[0]!r}: {exc.strerror or exc}")
        return 126
    audit = None
    if not args.no_audit:
        from mcp_guard.audit import AuditLog, default_audit_path

        audit = AuditLog(Path(args.audit_log) if args.audit_log else default_audit_path(), stderr_line)
    from mcp_guard.approval.flow import ApprovalSettings, parse_channels
    from mcp_guard.approval.lazy import LazyApprovalStore
    from mcp_guard.policy.model import window_seconds

    try:
        channels = parse_channels(args.approval)
    except ValueError as exc:
        _err(f"--approval: {exc}")
        return EXIT_USAGE
    if "command" in channels and not args.approval_command:
        _err("--approval lists 'command' but no --approval-command was given; that channel will be skipped")
    approvals = ApprovalSettings(
        channels=channels,
        timeout_s=args.approval_timeout or window_seconds(policy.approval_timeout),
        command=args.approval_command,
        store=LazyApprovalStore(Path(args.approval_store) if args.approval_store else None),
    )
    integrity = _integrity(args, policy, policy_path, audit, approvals)
    if integrity is False:
        return EXIT_USAGE
    session = Session(
        judge,
        FrameWriter(1),
        FrameWriter(upstream.stdin_fd),
        stderr_line,
        audit=audit,
        server_name=server_name,
        approvals=approvals,
        integrity=integrity or None,
    )
    background = []
    if policy_path is not None and not args.no_reload:
        from functools import partial

        from mcp_guard.reload import watch_policy

        def apply(new_policy: Policy) -> bool:
            """Pins, validation and self-protection follow the reloaded policy too."""
            rebuilt = _integrity(args, new_policy, policy_path, audit, approvals, reloading=True)
            if rebuilt is False:
                return False
            session.integrity = rebuilt or None
            return True

        background.append(partial(watch_policy, policy_path, judge, stderr_line, stamp, args.policy_sha256, apply))
    try:
        return anyio.run(relay, upstream, session, 0, background)
    finally:
        if audit is not None:
            audit.close()


# Subcommands live in their own modules, imported only when used, so the relay's
# start-up never pays for them. Each module has ``HELP``, ``add_arguments(parser)``
# and ``run(args) -> int``.
SUBCOMMANDS: dict[str, str] = {
    "check": "mcp_guard.commands.check",
    "explain": "mcp_guard.commands.explain",
    "schema": "mcp_guard.commands.schema",
    "logs": "mcp_guard.commands.logs",
    "stats": "mcp_guard.commands.stats",
    "init": "mcp_guard.commands.init",
    "wrap": "mcp_guard.commands.wrap",
    "unwrap": "mcp_guard.commands.unwrap",
    "approvals": "mcp_guard.commands.approvals",
    "approve": "mcp_guard.commands.approve",
    "deny": "mcp_guard.commands.deny",
    "pin": "mcp_guard.commands.pin",
    "pins": "mcp_guard.commands.pins",
}


def run_subcommand(name: str, argv: list[str]) -> int:
    import importlib

    module = importlib.import_module(SUBCOMMANDS[name])
    parser = argparse.ArgumentParser(prog=f"mcp-guard {name}", description=module.HELP)
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    code: int = module.run(args)
    return code


def _integrity(
    args: argparse.Namespace,
    policy: Policy,
    policy_path: Path | None,
    audit: Any,
    approvals: Any,
    reloading: bool = False,
) -> Any:
    """The session's tool-integrity checks from the policy (None when none is on; False after an error)."""
    pins = policy.pins
    lock_file: Path | None = None
    mode = "enforce"
    if args.pins:
        lock_file = Path(args.pins)
    elif pins is not None:
        lock_file = Path(pins.file)
        if not lock_file.is_absolute() and policy_path is not None:
            lock_file = policy_path.parent / lock_file
        mode = pins.mode
    validate_tools = {
        name: rule.validate_arguments for name, rule in policy.tools.items() if rule.validate_arguments is not None
    }
    if (
        lock_file is None
        and not policy.validate_arguments
        and not any(validate_tools.values())
        and not policy.protect_own_files
    ):
        return None
    from mcp_guard.integrity.guard import IntegritySettings, ToolIntegrity

    lock = None
    if lock_file is not None:
        from mcp_guard.integrity.pins import LockFile, LockFileError

        try:
            lock = LockFile.load(lock_file)
        except (LockFileError, OSError) as exc:
            consequence = "the previous policy stays in force" if reloading else "not starting the server"
            _err(f"the lock file cannot be used ({exc}); {consequence} (write one with mcp-guard pin)")
            return False
    protected = None
    if policy.protect_own_files:
        from mcp_guard.integrity.fingerprint import default_secret_path
        from mcp_guard.integrity.protect import ProtectedPaths
        from mcp_guard.limits.store import state_dir

        own = [p for p in (policy_path, lock_file, getattr(audit, "path", None), default_secret_path()) if p]
        store = getattr(getattr(approvals, "store", None), "path", None)
        if store is not None:
            own.append(store)
        protected = ProtectedPaths(own, os.getcwd(), directories=[state_dir()])
    from mcp_guard.relay import stderr_line

    return ToolIntegrity(
        IntegritySettings(lock, lock_file, mode, policy.validate_arguments, validate_tools, protected), stderr_line
    )


def _limiter(state: str | None, policy: Policy, server_name: str) -> tuple[Limiter | None, str]:
    """The limiter for this guard: grant counters in memory, shared ones in the ``state`` store."""
    from mcp_guard.limits.memory import MemoryLimiter
    from mcp_guard.limits.scoped import ScopedLimiter
    from mcp_guard.policy.engine import all_limits

    shared_scopes = sorted({lim.scope for _, lim in all_limits(policy)} - {"grant"})
    if not state or state == "memory:":
        if shared_scopes:
            _err(
                f"limits with scope {' and '.join(repr(s) for s in shared_scopes)} are counted in this process only: "
                "pass --state sqlite:///path/counters.db or --state redis://host:6379/0 to share them"
            )
        return MemoryLimiter(), "memory:"
    from mcp_guard.limits.store import describe_store, open_store

    try:
        shared = open_store(state)
    except ValueError as exc:
        _err(f"--state: {exc}")
        return None, ""
    return ScopedLimiter(MemoryLimiter(), shared, server_name), describe_store(state)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        return run_subcommand(args[0], args[1:])
    code = run(args)
    if argv is None:
        # Pump threads may still be blocked reading the client's stdin; leave without waiting for them.
        sys.stderr.flush()
        os._exit(code)
    return code
