"""Tool integrity from a policy: the one place the live guard, its reloads and ``explain`` build it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcp_guard.integrity.guard import ToolIntegrity
    from mcp_guard.policy.model import Policy


class IntegrityError(Exception):
    """The lock file the policy names cannot be used."""


def lock_file_for(policy: Policy, policy_path: Path | None, lock: Path | None = None) -> tuple[Path | None, str]:
    """The lock file in force and its mode: ``lock`` (``--lock``, enforce) first, then the policy's ``pins``."""
    if lock is not None:
        return lock, "enforce"
    pins = policy.pins
    if pins is None:
        return None, "enforce"
    path = Path(pins.file)
    if not path.is_absolute() and policy_path is not None:
        path = policy_path.parent / path
    return path, pins.mode


def build_integrity(
    policy: Policy,
    policy_path: Path | None,
    *,
    lock: Path | None = None,
    audit_path: Path | None = None,
    store_path: Path | None = None,
    state_url: str | None = None,
    record_path: Path | None = None,
    warn: Callable[[str], None] = lambda _: None,
) -> ToolIntegrity | None:
    """Pins, argument validation and self-protection as the policy sets them; None when all are off.

    ``audit_path`` and ``store_path`` default to the guard's own default locations, so a dry run
    protects what a guard started with defaults protects. Raises :class:`IntegrityError`.
    """
    lock_file, mode = lock_file_for(policy, policy_path, lock)
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

    loaded = None
    if lock_file is not None:
        from mcp_guard.integrity.pins import LockFile, LockFileError

        try:
            loaded = LockFile.load(lock_file)
        except (LockFileError, OSError) as exc:
            raise IntegrityError(f"the lock file cannot be used ({exc})") from None
    protected = None
    if policy.protect_own_files:
        from mcp_guard import paths
        from mcp_guard.integrity.protect import guard_paths_for

        protected = guard_paths_for(
            policy_path,
            lock_file,
            audit_path or paths.audit_log_path(),
            store_path or paths.approval_store_path(),
            state_url if state_url is not None else policy.state,
            record=record_path or _policy_record(policy, policy_path),
        )
    settings = IntegritySettings(loaded, lock_file, mode, policy.validate_arguments, validate_tools, protected)
    return ToolIntegrity(settings, warn)


def _policy_record(policy: Policy, policy_path: Path | None) -> Path | None:
    """The policy's ``record`` file (relative to it), which a session's frames are written to."""
    if not policy.record:
        return None
    path = Path(policy.record).expanduser()
    return path if path.is_absolute() or policy_path is None else policy_path.parent / path
