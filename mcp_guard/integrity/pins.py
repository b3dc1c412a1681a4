"""Tool pins: :class:`PinChecker`, the relay's part, checks listings and calls against a lock file.

It filters ``tools/list`` results against the lock (``enforce``: tools that differ from
their pin, or have none, are dropped; ``warn``: all are kept and reported) and remembers
what it last saw of each tool, so :meth:`PinChecker.allowed` can refuse a call to a tool
whose listed definition was refused.

The other parts of pinning live beside it: :mod:`~mcp_guard.integrity.digest` (the SHA-256
of a whole tool definition), :mod:`~mcp_guard.integrity.lockfile` (the lock file) and
:mod:`~mcp_guard.integrity.diff` (findings and diffs). Their names used from here before the
split are still importable from this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from mcp_guard.canonical import canonical_json
from mcp_guard.integrity.diff import (
    NO_NAME,
    Finding,
    changed_finding,
    compare,
    new_finding,
    removed_finding,
    unseen_finding,
)
from mcp_guard.integrity.digest import json_path, tool_digest, tool_name
from mcp_guard.integrity.lockfile import LockFile, LockFileError, PinnedTool
from mcp_guard.paths import default_lock_path

__all__ = [
    "Finding",
    "LockFile",
    "LockFileError",
    "PinChecker",
    "PinMode",
    "PinnedTool",
    "canonical_json",
    "compare",
    "default_lock_path",
    "json_path",
    "tool_digest",
]

PinMode = Literal["enforce", "warn"]


class PinChecker:
    """Checks ``tools/list`` results against a lock, and calls against what was listed.

    ``enforce``: tools that differ from their pin or have none are removed from listings
    and calls to them are refused; ``warn``: everything is kept and the findings reported.
    Not thread-safe; one per session.
    """

    def __init__(self, lock: LockFile, mode: PinMode = "enforce") -> None:
        if mode not in ("enforce", "warn"):
            raise ValueError(f"pin mode must be 'enforce' or 'warn', not {mode!r}")
        self.lock = lock
        self.mode: PinMode = mode
        self._seen: dict[str, Finding | None] = {}  # name -> why its last listed definition was refused, or None

    def filter_tools(self, tools: Sequence[Any], *, complete: bool = False) -> tuple[list[Any], list[Finding]]:
        """The tools to pass on and the findings, for one ``tools/list`` page (or a whole listing).

        ``complete=True`` (the listing is the server's whole tool set) also reports pinned tools
        it lacks as ``removed``. Each tool's outcome is remembered for :meth:`allowed`; a name
        listed twice in one call is refused if any of its definitions is.
        """
        kept: list[Any] = []
        findings: list[Finding] = []
        refused_now: dict[str, Finding] = {}
        accepted_now: set[str] = set()
        for tool in tools:
            name = tool_name(tool)
            finding: Finding | None
            if name is None:
                finding = new_finding(NO_NAME, None, None)
            else:
                digest = tool_digest(tool)
                pinned = self.lock.tools.get(name)
                if pinned is None:
                    finding = new_finding(name, tool, digest)
                elif pinned.sha256 != digest:
                    finding = changed_finding(name, pinned, tool, digest)
                else:
                    finding = None
                if finding is None:
                    accepted_now.add(name)
                else:
                    refused_now.setdefault(name, finding)
            if finding is not None:
                findings.append(finding)
            if finding is None or self.mode == "warn":
                kept.append(tool)
        for name in accepted_now:
            self._seen[name] = None
        for name, finding in refused_now.items():
            self._seen[name] = finding if self.mode == "enforce" else None
        if complete:
            listed = accepted_now | set(refused_now)
            missing = sorted(set(self.lock.tools) - listed)
            findings.extend(removed_finding(name, self.lock.tools[name]) for name in missing)
        return kept, findings

    def allowed(self, tool_name: str) -> Finding | None:
        """None if a call to ``tool_name`` may go on; else why not.

        A ``changed``/``new`` finding: the tool's last listed definition was refused (enforce
        mode only). An ``unseen`` finding (both modes): no listing in this session has shown
        the tool (or :meth:`invalidate` was called since), so the relay must read
        ``tools/list`` before the call can be judged.
        """
        if tool_name not in self._seen:
            return unseen_finding(tool_name)
        return self._seen[tool_name]

    def invalidate(self) -> None:
        """Forget every listed definition (e.g. on ``notifications/tools/list_changed``)."""
        self._seen.clear()

    def seen(self) -> frozenset[str]:
        """The names listed in this session (since the last :meth:`invalidate`)."""
        return frozenset(self._seen)
