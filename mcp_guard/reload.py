"""Hot reload: a running guard picks up a changed policy file for the next call.

Polling the file's identity (inode, size, mtime) once a second costs nothing
measurable and works the same on every OS and with every editor (most save by
writing a new file and renaming it over the old one).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from mcp_guard.judge import Judge
from mcp_guard.policy.engine import Engine
from mcp_guard.policy.load import PolicyError, PolicyHashMismatch, load_policy
from mcp_guard.policy.model import Policy

Stamp = tuple[int, int, int] | None


def file_stamp(path: Path) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


# Installs the new version (one snapshot, one assignment), or says why it cannot (False).
Apply = Callable[[Policy, Engine], bool]


def reload_once(
    path: Path,
    judge: Judge,
    say: Callable[[str], None],
    expected_sha256: str | None = None,
    apply: Apply | None = None,
) -> bool:
    """Load ``path`` and swap it in; on any error keep the policy in force and say why.

    ``apply`` sets up what else the policy decides (tool pins, argument validation); when
    it fails (a lock file that cannot be read) the whole new version is rejected.
    """
    try:
        # One read: the bytes checked against --policy-sha256 are the bytes loaded.
        policy = load_policy(path, expected_sha256 or None)
        engine = Engine(policy)
    except PolicyHashMismatch as exc:
        say(f"{exc}; the previous policy stays in force")
        return False
    except PolicyError as exc:
        say(f"the policy file changed but is invalid; the previous policy stays in force:\n{exc}")
        return False
    if apply is not None and not apply(policy, engine):
        return False
    judge.engine = engine
    mode = " (monitor mode: nothing is refused)" if judge.monitor else ""
    say(f"policy reloaded from {path}{mode}")
    return True


def watch_policy(
    path: Path,
    judge: Judge,
    say: Callable[[str], None],
    stamp: Stamp,
    expected_sha256: str | None = None,
    apply: Apply | None = None,
    interval_s: float = 1.0,
    *,
    stop: threading.Event,
) -> None:
    """Reload on change until ``stop`` is set (on a thread of its own). ``stamp`` is the file's identity
    taken *before* the policy in force was read, so a change made while the guard was starting is never
    missed."""
    while not stop.wait(interval_s):
        current = file_stamp(path)
        if current == stamp:
            continue
        stamp = current
        if current is None:
            say(f"the policy file {path} is gone; the previous policy stays in force")
            continue
        reload_once(path, judge, say, expected_sha256, apply)
