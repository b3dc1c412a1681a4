"""Command line: ``mcp-guard [options] -- COMMAND [ARGS...]`` and the subcommands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_guard import __version__, exits
from mcp_guard.paths import policy_path as default_policy_path

if TYPE_CHECKING:
    import threading

    from mcp_guard.audit import AuditLog
    from mcp_guard.config import GuardConfig
    from mcp_guard.flows.guard import FlowGuard
    from mcp_guard.limits.base import Limiter
    from mcp_guard.pipeline import Snapshot
    from mcp_guard.policy.model import Policy
    from mcp_guard.relay import Background
    from mcp_guard.session import Session

EXIT_USAGE = exits.USAGE

_RUN_DESCRIPTION = """\
Run an MCP stdio server behind a policy guard. Put `mcp-guard [options] --` in front
of the server command wherever your MCP client launches it.

policy discovery (first found wins):
  --policy FILE, then $MCP_GUARD_POLICY, then policy.json in the user config
  directory (shown below). With none found, every call is relayed (allow-all) and
  one line on stderr says so.
"""


def _run_parser() -> argparse.ArgumentParser:
    from mcp_guard.helptext import SUMMARIES, HelpFormatter, examples_epilog
    from mcp_guard.paths import audit_log_path

    older = ", ".join(f"{alias} = {name}" for alias, name in ALIASES.items())
    width = max(len(name) for name in SUMMARIES)
    commands = "\n".join(f"  {name:{width}}  {SUMMARIES[name]}" for name in SUBCOMMANDS if name not in ALIASES)
    parser = argparse.ArgumentParser(
        prog="mcp-guard",
        usage="mcp-guard [options] -- COMMAND [ARGS...]\n       mcp-guard SUBCOMMAND [options]",
        description=_RUN_DESCRIPTION,
        epilog=f"subcommands (mcp-guard SUBCOMMAND --help for each):\n{commands}\n"
        f"older spellings, still accepted: {older}\n\n"
        f"user config policy: {default_policy_path()}\naudit log: {audit_log_path()}\n\n{examples_epilog('')}",
        formatter_class=HelpFormatter,
    )
    _add_run_options(parser)
    return parser


def _add_run_options(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument(
        "--client-id",
        metavar="ID",
        help="who the MCP client is, for 'client'-scoped flow rules: guards with the same id share the labels "
        "their calls acquired (default: $MCP_GUARD_CLIENT_ID, else the parent process and its start time)",
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
    parser.add_argument(
        "--store",
        "--approval-store",
        dest="approval_store",
        metavar="PATH",
        help="the approvals database, as in mcp-guard approvals --store (default: approvals.db in the user state "
        "directory); --approval-store is its older spelling",
    )
    parser.add_argument(
        "--lock",
        "--pins",
        dest="pins",
        metavar="FILE",
        help="compare tools with this lock file (mcp-guard pins create), in enforce mode; --pins is its older spelling",
    )
    parser.add_argument(
        "--policy-sha256",
        metavar="HEX",
        help="refuse to start with (or reload into) a policy file whose SHA-256 differs "
        "(see: mcp-guard check --sha256 FILE)",
    )
    parser.add_argument("--no-audit", action="store_true", help="write no audit log")
    parser.add_argument(
        "--record",
        metavar="FILE",
        help="append every frame of the session, both directions, to FILE as JSON lines (secrets redacted, "
        "mode 0600), for mcp-guard replay (default: the policy's 'record')",
    )
    parser.add_argument(
        "--otel",
        action="store_true",
        help="emit OpenTelemetry spans and metrics over OTLP (needs mcp-guard[otel]; on by itself when "
        "OTEL_EXPORTER_OTLP_ENDPOINT is set)",
    )
    parser.add_argument(
        "--remote-entry",
        metavar="JSON",
        help="written by `mcp-guard wrap --remote`: the client's original entry for a remote server, kept for "
        "`mcp-guard unwrap`; ignored when the guard runs",
    )


def _takes_value(parser: argparse.ArgumentParser) -> dict[str, bool]:
    """Each option string of ``parser`` and whether it takes a value: read from argparse, never kept by hand."""
    return {option: action.nargs != 0 for action in parser._actions for option in action.option_strings}


@lru_cache(maxsize=1)
def _guard_options() -> dict[str, bool]:
    parser = argparse.ArgumentParser(prog="mcp-guard")
    _add_run_options(parser)
    return _takes_value(parser)


def _option_takes_value(word: str, table: dict[str, bool]) -> bool:
    """Whether ``word`` is an option that consumes the next word, resolving abbreviations as argparse does.

    An unknown or ambiguous option counts as taking none; argparse then reports it.
    """
    if "=" in word:  # --opt=value carries its value
        return False
    if word in table:
        return table[word]
    if word.startswith("--"):
        matches = [option for option in table if option.startswith(word)]
        if len(matches) == 1:
            return table[matches[0]]
    return False


def split_command(argv: Sequence[str], parser: argparse.ArgumentParser | None = None) -> tuple[list[str], list[str]]:
    """The guard's options and the server's command in the guard's argv.

    Options run up to ``--`` or up to the first word that is neither an option nor an
    option's value, so ``mcp-guard --lock L.json npx srv`` runs ``npx srv``. A ``--`` later
    on belongs to the server's command. ``wrap`` and ``unwrap`` read wrapped entries with
    this same function. ``parser``: the guard's parser, when the caller has built it already.
    """
    table = _takes_value(parser) if parser is not None else _guard_options()
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return list(argv[:i]), list(argv[i + 1 :])
        if not word.startswith("-") or word == "-":
            break
        i += 1
        if _option_takes_value(word, table) and i < len(argv) and argv[i] != "--":
            i += 1
    return list(argv[:i]), list(argv[i:])


def _err(message: str) -> None:
    sys.stderr.write(f"mcp-guard: {message}\n")
    sys.stderr.flush()


def run(argv: list[str]) -> int:
    import gc

    # A guard's start creates tens of thousands of objects that live as long as it does (pydantic's schemas and
    # validators, the policy, the modules); the cycle collector scanned them some 60 times on the way, about a
    # twentieth of the start. It is off until the relay starts, and those objects are then left out of every
    # later collection (frozen, see _guard). An error before that turns it back on here.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(argv)
    finally:
        if enabled:
            gc.enable()


def _run(argv: list[str]) -> int:
    parser = _run_parser()
    options, command = split_command(argv, parser)
    args = parser.parse_args(options)
    if not command:
        parser.print_usage(sys.stderr)
        _err("no server command given: put it after `--`, e.g. mcp-guard --policy policy.json -- npx some-server")
        return EXIT_USAGE

    from mcp_guard.config import ConfigError, resolve

    try:
        config = resolve(args, command)
    except ConfigError as exc:
        _err(exc.message)
        return exc.code
    for note in config.notes:
        _err(note)
    return _guard(config)


def _guard(config: GuardConfig) -> int:
    """Start the server and relay until the session ends, all from ``config``."""
    from mcp_guard.upstream import CommandNotFound, resolve_command

    try:
        resolved = resolve_command(config.command)
    except CommandNotFound as exc:
        _err(f"command not found: {exc.command!r} (PATH={os.environ.get('PATH', '')})")
        return exits.NOT_FOUND
    except PermissionError as exc:
        _err(f"command is not executable: {exc}")
        return exits.CANNOT_RUN

    from mcp_guard.relay import relay, stderr_line
    from mcp_guard.upstream import Upstream

    built = build_session(config)
    if isinstance(built, int):
        return built
    session, audit, background = built
    watchers = None
    if config.record is not None or config.otel:
        from mcp_guard.watching import WatchError, watch

        try:
            watchers = watch(config, session, stderr_line)
        except WatchError as exc:
            _err(str(exc))
            if audit is not None:
                audit.close()
            return EXIT_USAGE
    # Said before the server starts, so it comes before anything the server writes to the same stderr.
    _err(_start_line(config, session.judge.store_name))
    flows = session.snapshot.flows
    if config.policy.flows and flows is not None:
        _err(f"flow rules: this guard's client is {flows.client_id} (from {flows.client_source}); {flows.where()}")
    # Started last: a configuration error above must not leave a server running.
    try:
        upstream = Upstream(resolved)
    except OSError as exc:
        _err(f"could not start {config.command[0]!r}: {exc.strerror or exc}")
        if audit is not None:
            audit.close()
        if watchers is not None:
            watchers.close()
        return exits.CANNOT_RUN
    import gc

    gc.freeze()  # what the start created lives until the guard exits: later collections skip it
    gc.enable()
    try:
        return relay(upstream, session, 0, background, watchers.tap if watchers is not None else None)
    except KeyboardInterrupt:
        # Ctrl-C before the relay watches signals: the server must not outlive the guard (no parent-death
        # signal outside Linux).
        upstream.kill_now()
        _err("interrupted")
        return exits.INTERRUPTED
    finally:
        if audit is not None:
            audit.close()
        if watchers is not None:
            watchers.close()


def build_session(config: GuardConfig) -> tuple[Session, AuditLog | None, list[Background]] | int:
    """The session the guard relays with, its audit log and its background tasks (the policy watcher),
    exactly as configured; an exit status after a configuration error (said on stderr).
    ``benchmarks/session.py`` measures the session built here."""
    from mcp_guard.approval.flow import ApprovalSettings
    from mcp_guard.approval.lazy import LazyApprovalStore
    from mcp_guard.judge import Judge
    from mcp_guard.pipeline import Snapshot
    from mcp_guard.policy.engine import Engine
    from mcp_guard.relay import stderr_line
    from mcp_guard.session import Session

    limiter, store_name = _limiter(config.state_url, config.policy, config.server_name)
    if limiter is None:
        return EXIT_USAGE
    engine = Engine(config.policy)
    judge = Judge(engine, limiter, force_monitor=config.monitor, warn=stderr_line, store_name=store_name)
    approvals = ApprovalSettings(
        channels=config.approval.channels,
        timeout_s=config.approval.timeout_s,
        command=config.approval.command,
        store=LazyApprovalStore(config.approval.store, warn=stderr_line),
    )
    integrity = _integrity(config, config.policy, approvals.store.path)
    if integrity is False:
        return EXIT_USAGE
    audit = None
    if config.audit_log is not None:
        from mcp_guard.audit import AuditLog

        audit = AuditLog(config.audit_log, stderr_line)
    # Built only for a policy with flow rules (its modules cost start-up time); a reload that adds some builds it.
    flows = _flow_guard(config, lambda: session.snapshot) if config.policy.flows else None
    session = Session(
        judge,
        Snapshot(engine, integrity or None, config.monitor, flows),
        stderr_line,
        audit=audit,
        server_name=config.server_name,
        server_identity=config.server_identity,
        approvals=approvals,
    )
    background: list[Background] = []
    if config.reload and config.policy_path is not None:
        from mcp_guard.reload import watch_policy

        def apply(new_policy: Policy, new_engine: Engine) -> bool:
            """Pins, validation and self-protection follow the reloaded policy, in the same snapshot."""
            nonlocal flows
            if new_policy.flows and flows is None:
                flows = _flow_guard(config, lambda: session.snapshot)
            rebuilt = _integrity(config, new_policy, approvals.store.path, reloading=True)
            if rebuilt is False:
                return False
            before = session.snapshot.engine.results
            if new_engine.results is not None and before is not None:
                new_engine.results.adopt(before)  # tools withheld stay withheld; listed schemas stay known
            session.install(Snapshot(new_engine, rebuilt or None, config.monitor, flows))
            return True

        policy_path = config.policy_path

        def watch(stop: threading.Event) -> None:
            watch_policy(policy_path, judge, stderr_line, config.policy_stamp, config.policy_sha256, apply, stop=stop)

        background.append(watch)
    return session, audit, background


def _flow_guard(config: GuardConfig, snapshot: Callable[[], Snapshot]) -> FlowGuard:
    """The guard's flow checks; annotations of pinned tools count before the server's list is read."""
    from mcp_guard.flows.guard import FlowGuard

    def pinned(tool: str) -> Mapping[str, Any] | None:
        integrity = snapshot().integrity
        lock = integrity.settings.lock if integrity is not None else None
        entry = lock.tools.get(tool) if lock is not None else None
        return entry.definition if entry is not None else None

    return FlowGuard(config.server_name, config.state_url, config.client_id, pinned=pinned)


def _start_line(config: GuardConfig, store_name: str) -> str:
    from mcp_guard.startline import start_line

    return start_line(
        policy_path=os.path.abspath(config.policy_path) if config.policy_path is not None else None,
        policy_sha256=config.policy_digest,
        policy_source=config.policy_source,
        mode="monitor" if config.monitor or config.policy.mode == "monitor" else "enforce",
        mode_source="--monitor" if config.monitor else "policy",
        counters=store_name,
        command=config.command,
    )


# Subcommands live in their own modules, imported only when used, so the relay's
# start-up never pays for them. Each module has ``HELP``, ``add_arguments(parser)``
# and ``run(args) -> int``.
SUBCOMMANDS: dict[str, str] = {
    "check": "mcp_guard.commands.check",
    "explain": "mcp_guard.commands.explain",
    "test": "mcp_guard.commands.test",
    "replay": "mcp_guard.commands.replay",
    "schema": "mcp_guard.commands.schema",
    "logs": "mcp_guard.commands.logs",
    "stats": "mcp_guard.commands.stats",
    "init": "mcp_guard.commands.init",
    "wrap": "mcp_guard.commands.wrap",
    "unwrap": "mcp_guard.commands.unwrap",
    "pins": "mcp_guard.commands.pins",
    "approvals": "mcp_guard.commands.approvals",
    "pin": "mcp_guard.commands.pin",
    "approve": "mcp_guard.commands.approve",
    "deny": "mcp_guard.commands.deny",
    "flows": "mcp_guard.commands.flows",
}
ALIASES: dict[str, str] = {
    "pin": "pins create",
    "approve": "approvals approve",
    "deny": "approvals deny",
}
"""Older spellings that stay, and the command each is the same as."""


def subcommand_parser(name: str) -> tuple[argparse.ArgumentParser, Any]:
    """The parser of subcommand ``name``, with its examples, and the module that runs it."""
    import importlib

    from mcp_guard.helptext import decorate

    module = importlib.import_module(SUBCOMMANDS[name])
    parser = argparse.ArgumentParser(prog=f"mcp-guard {name}", description=module.HELP)
    module.add_arguments(parser)
    decorate(parser, name)
    return parser, module


def run_subcommand(name: str, argv: list[str]) -> int:
    try:
        parser, module = subcommand_parser(name)
        args = parser.parse_args(argv)
        code: int = module.run(args)
    except KeyboardInterrupt:
        # Commands write their files through a temporary file and a rename, so nothing half-written stays.
        _err("interrupted")
        return exits.INTERRUPTED
    except BrokenPipeError:
        # The reader left (`mcp-guard logs | head`): not an error worth a traceback. Point stdout at
        # /dev/null so the interpreter's final flush does not fail a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return exits.OUTPUT_CLOSED
    return code


def _integrity(config: GuardConfig, policy: Policy, store_path: Path, reloading: bool = False) -> Any:
    """The session's tool-integrity checks from the policy (None when none is on; False after an error)."""
    from mcp_guard.integrity.setup import IntegrityError, build_integrity
    from mcp_guard.relay import stderr_line

    try:
        return build_integrity(
            policy,
            config.policy_path,
            lock=config.lock,
            audit_path=config.audit_log,
            store_path=store_path,
            state_url=config.state_url,
            record_path=config.record,
            warn=stderr_line,
        )
    except IntegrityError as exc:
        consequence = "the previous policy stays in force" if reloading else "not starting the server"
        _err(f"{exc}; {consequence} (write one with mcp-guard pins create)")
        return False


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


def _close_subcommand(word: str) -> str | None:
    """The subcommand ``word`` looks like a typo of (``chekc`` -> ``check``), if any.

    Only plain words count: paths, versioned names (``python3``) and options never look like one.
    """
    import re

    if not re.fullmatch(r"[A-Za-z][A-Za-z-]*", word):
        return None
    import difflib  # only for a plain word: not for every guard started as `mcp-guard --policy ...`

    close = difflib.get_close_matches(word.lower(), list(SUBCOMMANDS), n=1, cutoff=0.6)
    return close[0] if close else None


def _mistyped_subcommand(word: str) -> bool:
    """Refuse a first word that is a typo of a subcommand (exit 2), so it never starts as an allow-all server.

    A program of that name on PATH still runs, as it always has (``deno`` is close to ``deny``), with a
    note; ``mcp-guard -- WORD`` runs it without one.
    """
    meant = _close_subcommand(word)
    if meant is None:
        return False
    import shutil

    if shutil.which(word) is not None:
        _err(
            f"note: {word!r} is a program on PATH, so it runs as the server (not `mcp-guard {meant}`); "
            f"write `mcp-guard [options] -- {word} ...` to say so"
        )
        return False
    _err(
        f"unknown command {word!r}: did you mean {meant}? "
        f"(to run a program named {word!r} as the server: mcp-guard [options] -- {word} ...)"
    )
    return True


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        return run_subcommand(args[0], args[1:])
    if args and _mistyped_subcommand(args[0]):
        return EXIT_USAGE
    try:
        code = run(args)
    except KeyboardInterrupt:  # Ctrl-C while the guard was still starting: no traceback, nothing started
        _err("interrupted")
        code = exits.INTERRUPTED
    if argv is None:
        # Pump threads may still be blocked reading the client's stdin; leave without waiting for them.
        sys.stderr.flush()
        os._exit(code)
    return code
