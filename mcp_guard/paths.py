"""Where the guard keeps its files by default, per user, in the platform's usual places.

Each function asks :mod:`platformdirs` when called (it is imported then, not with this
module), so tests that point HOME or the XDG variables elsewhere see their own directories.
On Linux:

========================  ==================================================
``config_dir()``          ``~/.config/mcp-guard``
``policy_path()``         ``~/.config/mcp-guard/policy.json``
``state_dir()``           ``~/.local/state/mcp-guard`` (shared counters, approvals)
``approval_store_path()`` ``~/.local/state/mcp-guard/approvals.db``
``audit_log_path()``      ``~/.local/state/mcp-guard/log/audit.jsonl``
``secret_path()``         ``~/.local/share/mcp-guard/secret.key``
========================  ==================================================

A relative ``sqlite:`` counter store (``--state sqlite:counters.db``) lives in ``state_dir()``.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "mcp-guard"
POLICY_FILE = "policy.json"
AUDIT_FILE = "audit.jsonl"
SECRET_FILE = "secret.key"  # noqa: S105 (a file name)
APPROVAL_STORE_FILE = "approvals.db"


def config_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir(APP, appauthor=False))


def policy_path() -> Path:
    """The policy the guard uses when neither ``--policy`` nor ``$MCP_GUARD_POLICY`` names one."""
    return config_dir() / POLICY_FILE


def state_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_state_dir(APP, appauthor=False))


def approval_store_path() -> Path:
    return state_dir() / APPROVAL_STORE_FILE


def audit_log_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_log_dir(APP, appauthor=False)) / AUDIT_FILE


def secret_path() -> Path:
    """The installation's secret key (audit fingerprints, the approval store's seals)."""
    import platformdirs

    return Path(platformdirs.user_data_dir(APP, appauthor=False)) / SECRET_FILE


# Here, not in integrity.lockfile: the guard protects the default lock at every start, and importing the lock
# file format for its name alone would cost start-up time.
DEFAULT_LOCK_NAME = "mcp-guard.lock.json"


def default_lock_path(policy: str | os.PathLike[str] | None = None) -> Path:
    """Beside the policy as ``NAME.lock.json`` (``policy.json``: ``policy.lock.json``), else ``mcp-guard.lock.json``."""
    if policy is None or not os.fspath(policy):
        return Path(DEFAULT_LOCK_NAME)
    policy_path = Path(policy).expanduser()
    return policy_path.with_name(f"{policy_path.stem}.lock.json")
