"""Hot reload: a running guard picks up a changed policy file for the next call.

Polling the file's identity (inode, size, mtime) once a second costs nothing
measurable and works the same on every OS and with every editor (most save by
writing a new file and renaming it over the old one).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import anyio

from mcp_guard.judge import Judge
from mcp_guard.policy.engine import Engine
from mcp_guard.policy.load import PolicyError, load_policy
from mcp_guard.policy.model import Policy

Stamp = tuple[int, int, int] | None


def file_stamp(path: Path) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def sha256_mismatch(path: Path, expected: str | None) -> str | None:
    """Why ``path`` is not the policy pinned by ``--policy-sha256``, or None when it is (or nothing is pinned)."""
    if not expected:
        return None
    try:
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        return f"cannot read {path} to check its SHA-256: {exc.strerror or exc}"
    if actual != expected.strip().lower():
        return (
            f"the policy file {path} has SHA-256 {actual}, not the {expected.strip().lower()} given with "
            "--policy-sha256: it was changed"
        )
    return None


Apply = Callable[[Policy], bool]


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
    mismatch = sha256_mismatch(path, expected_sha256)
    if mismatch:
        say(f"{mismatch}; the previous policy stays in force")
        return False
    try:
        policy = load_policy(path)
        engine = Engine(policy)
    except PolicyError as exc:
        say(f"the policy file changed but is invalid; the previous policy stays in force:\n{exc}")
        return False
    if apply is not None and not apply(policy):
        return False
    judge.engine = engine
    mode = " (monitor mode: nothing is refused)" if judge.monitor else ""
    say(f"policy reloaded from {path}{mode}")
    return True


async def watch_policy(
    path: Path,
    judge: Judge,
    say: Callable[[str], None],
    stamp: Stamp,
    expected_sha256: str | None = None,
    apply: Apply | None = None,
    interval_s: float = 1.0,
) -> None:
    """Reload on change. ``stamp`` is the file's identity taken *before* the policy in force was read,
    so a change made while the guard was starting is never missed."""
    while True:
        await anyio.sleep(interval_s)
        current = file_stamp(path)
        if current == stamp:
            continue
        stamp = current
        if current is None:
            say(f"the policy file {path} is gone; the previous policy stays in force")
            continue
        reload_once(path, judge, say, expected_sha256, apply)
