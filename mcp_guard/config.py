"""One typed configuration for a running guard, resolved from argv, the environment and the policy.

Everything the guard decides at start-up lives in :class:`GuardConfig`; the rest of the start-up
(limiter, audit log, session, relay) is built from it and nothing else, so the order in which
options, ``$MCP_GUARD_POLICY`` and the policy's own settings win is written down once, here.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mcp_guard import exits

if TYPE_CHECKING:
    from mcp_guard.approval.flow import Channel
    from mcp_guard.policy.model import Policy

POLICY_ENV = "MCP_GUARD_POLICY"


class ConfigError(Exception):
    """The guard cannot start: ``message`` says why, ``code`` is the exit status."""

    def __init__(self, message: str, code: int = exits.USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True, slots=True)
class ApprovalConfig:
    channels: tuple[Channel, ...]
    timeout_s: float
    command: str | None
    store: Path | None  # None: the default store in the user state directory


@dataclass(frozen=True, slots=True)
class GuardConfig:
    command: tuple[str, ...]
    policy: Policy
    policy_path: Path | None  # None: no policy found, allow-all
    policy_source: str  # --policy, $MCP_GUARD_POLICY or user config
    policy_stamp: tuple[int, int, int] | None  # the file's identity before it was read (hot reload)
    policy_sha256: str | None  # --policy-sha256: what the file must hash to
    policy_digest: str | None  # the SHA-256 of the bytes loaded (the start line shows it)
    monitor: bool  # --monitor (the policy's own mode is in the snapshot)
    reload: bool
    server_name: str  # for people: the audit log, messages
    server_identity: str  # what approvals and server-scoped counters bind to
    state_url: str | None
    client_id: str | None  # --client-id or $MCP_GUARD_CLIENT_ID; None: found from the parent process when needed
    audit_log: Path | None  # None: no audit log
    lock: Path | None  # --lock: overrides the policy's pins.file
    approval: ApprovalConfig
    notes: tuple[str, ...] = field(default=())  # to say on stderr at start
    record: Path | None = None  # --record, else the policy's record (relative to it): the session's frames
    otel: bool = False  # --otel, or an OTLP endpoint in the environment: spans and metrics


def find_policy(explicit: str | None, environ: Mapping[str, str]) -> tuple[Path | None, str]:
    """``--policy``, then ``$MCP_GUARD_POLICY``, then policy.json in the user config directory."""
    if explicit:
        return Path(explicit), "--policy"
    env = environ.get(POLICY_ENV)
    if env:
        return Path(env), f"${POLICY_ENV}"
    from mcp_guard import paths

    path = paths.policy_path()
    if path.is_file():
        return path, "user config"
    return None, ""


def resolve(args: argparse.Namespace, command: Sequence[str], environ: Mapping[str, str] = os.environ) -> GuardConfig:
    """The configuration for ``args`` (the run parser's) and the server ``command``, or :class:`ConfigError`."""
    from mcp_guard.policy.plugins import without_pydantic_plugins

    # The policy models are built (imported) and the policy validated here, at every start: without the cost of
    # pydantic looking for plugins (see mcp_guard.policy.plugins).
    with without_pydantic_plugins():
        return _resolve(args, command, environ)


def _resolve(args: argparse.Namespace, command: Sequence[str], environ: Mapping[str, str]) -> GuardConfig:
    from mcp_guard.policy.load import PolicyError, PolicyHashMismatch, load_policy_and_digest
    from mcp_guard.policy.model import ALLOW_ALL, window_seconds

    notes: list[str] = []
    policy_path, source = find_policy(args.policy, environ)
    stamp = None
    digest = None
    if policy_path is None:
        from mcp_guard import paths

        policy = ALLOW_ALL
        notes.append(
            f"no policy found: relaying every call (allow-all). Pass --policy FILE, set ${POLICY_ENV}, "
            f"or create {paths.policy_path()}"
        )
    else:
        from mcp_guard.reload import file_stamp

        stamp = file_stamp(policy_path)
        try:
            # One read: the bytes checked against --policy-sha256 are the bytes loaded.
            policy, digest = load_policy_and_digest(policy_path, args.policy_sha256 or None)
        except PolicyHashMismatch as exc:
            raise ConfigError(f"{exc}; not starting the server") from None
        except PolicyError as exc:
            raise ConfigError(f"invalid policy (from {source}), not starting the server:\n{exc}") from None
    if args.monitor or policy.mode == "monitor":
        notes.append("monitor mode: every call is judged and reported on stderr, but nothing is refused")

    from mcp_guard.approval.flow import parse_channels

    try:
        channels = parse_channels(args.approval)
    except ValueError as exc:
        raise ConfigError(f"--approval: {exc}") from None
    if "command" in channels and not args.approval_command:
        notes.append("--approval lists 'command' but no --approval-command was given; that channel will be skipped")
    from mcp_guard.audit import server_identity, server_name_from

    audit_log = None
    if not args.no_audit:
        from mcp_guard import paths

        audit_log = Path(args.audit_log) if args.audit_log else paths.audit_log_path()
    record = None
    if args.record:
        record = Path(args.record).expanduser()
    elif policy.record and policy_path is not None:
        record = policy_path.parent / Path(policy.record).expanduser()
    return GuardConfig(
        command=tuple(command),
        policy=policy,
        policy_path=policy_path,
        policy_source=source,
        policy_stamp=stamp,
        policy_sha256=args.policy_sha256 or None,
        policy_digest=digest,
        monitor=bool(args.monitor),
        reload=policy_path is not None and not args.no_reload,
        server_name=args.name or server_name_from(list(command)),
        server_identity=server_identity(list(command), args.name),
        state_url=args.state or policy.state,
        client_id=args.client_id or environ.get("MCP_GUARD_CLIENT_ID") or None,
        audit_log=audit_log,
        lock=Path(args.pins) if args.pins else None,
        approval=ApprovalConfig(
            channels=channels,
            timeout_s=args.approval_timeout or window_seconds(policy.approval_timeout),
            command=args.approval_command,
            store=Path(args.approval_store) if args.approval_store else None,
        ),
        notes=tuple(notes),
        record=record,
        otel=bool(args.otel) or otel_from_env(environ),
    )


OTEL_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def otel_from_env(environ: Mapping[str, str]) -> bool:
    """The standard OTLP variables turn telemetry on, as they do for any OpenTelemetry program."""
    return any(environ.get(name) for name in OTEL_ENDPOINT_VARIABLES)
