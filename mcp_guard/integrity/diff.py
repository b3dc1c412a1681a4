"""What differs between pinned tool definitions and listed ones: findings, readable changes and diffs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mcp_guard.canonical import canonical_json
from mcp_guard.integrity.digest import json_path, tool_digest, tool_name

if TYPE_CHECKING:
    from mcp_guard.integrity.lockfile import LockFile, PinnedTool

FindingKind = Literal["changed", "new", "removed", "unseen"]

MAX_CHANGES = 20
"""At most this many changed keys are named in a finding; the rest are counted."""
MAX_DEPTH = 64
"""Nesting below this depth is compared as a whole (reported as one change at that depth)."""
MAX_DIFF_CHARS = 200_000
"""Definitions whose pretty-printed text is longer than this are not diffed line by line."""
_SHORT_VALUE = 60
NO_NAME = "<no name>"


@dataclass(frozen=True)
class Finding:
    """One tool whose listed definition does not match the lock (or cannot be checked yet).

    ``kind``: ``changed`` (pinned, listed with another definition), ``new`` (listed, not
    pinned), ``removed`` (pinned, not listed; only from a complete listing) or ``unseen``
    (from :meth:`PinChecker.allowed`: no ``tools/list`` in this session has shown the tool yet).
    ``changes`` names what changed (``"description changed"``,
    ``"inputSchema.properties.amount.maximum changed: 5000 -> 50000"``); ``diff`` is a unified
    diff of the pretty-printed definitions (empty for ``unseen``).
    """

    tool: str
    kind: FindingKind
    summary: str
    changes: tuple[str, ...] = ()
    diff: str = ""
    pinned_sha256: str | None = None
    current_sha256: str | None = None


def _short(value: Any) -> str | None:
    if isinstance(value, (dict, list)):
        return None
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _SHORT_VALUE else None


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, (dict, list)):
        return canonical_json(a) == canonical_json(b)
    return bool(a == b) or canonical_json(a) == canonical_json(b)


def _differences(old: Any, new: Any, path: list[str | int], depth: int = 0) -> Iterator[str]:
    """``path changed/added/removed[: values]`` for every leaf where ``old`` and ``new`` differ."""
    if isinstance(old, dict) and isinstance(new, dict) and depth < MAX_DEPTH:
        for key in sorted(old.keys() | new.keys()):
            here = [*path, key]
            if key not in new:
                was = _short(old[key])
                yield f"{json_path(here)} removed" + (f" (was {was})" if was is not None else "")
            elif key not in old:
                now = _short(new[key])
                yield f"{json_path(here)} added" + (f": {now}" if now is not None else "")
            elif not _same(old[key], new[key]):
                yield from _differences(old[key], new[key], here, depth + 1)
        return
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and depth < MAX_DEPTH:
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            if not _same(a, b):
                yield from _differences(a, b, [*path, index], depth + 1)
        return
    where = json_path(path) or "definition"
    before, after = _short(old), _short(new)
    if before is not None and after is not None:
        yield f"{where} changed: {before} -> {after}"
    elif isinstance(old, list) and isinstance(new, list):
        yield f"{where} changed ({len(old)} -> {len(new)} items)"
    else:
        yield f"{where} changed"


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    """What differs between two definitions, one short line per changed key (at most :data:`MAX_CHANGES`)."""
    changes: list[str] = []
    extra = 0
    for change in _differences(dict(old), dict(new), []):
        if len(changes) < MAX_CHANGES:
            changes.append(change)
        else:
            extra += 1
    if extra:
        changes.append(f"... and {extra} more change{'s' if extra != 1 else ''}")
    return tuple(changes)


def _pretty(definition: Mapping[str, Any] | None) -> list[str]:
    if definition is None:
        return []
    text = json.dumps(definition, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return text.splitlines(keepends=True)


def definition_diff(name: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> str:
    """A unified diff of the pretty-printed definitions (``None``: absent on that side)."""
    import difflib

    before, after = _pretty(old), _pretty(new)
    size = sum(map(len, before)) + sum(map(len, after))
    if size > MAX_DIFF_CHARS:
        return f"--- {name} (pinned)\n+++ {name} (listed)\n(definitions too large to diff: {size:,} characters)\n"
    source = f"{name} (pinned)" if old is not None else f"{name} (not pinned)"
    target = f"{name} (listed)" if new is not None else f"{name} (not listed)"
    lines = difflib.unified_diff(before, after, fromfile=source, tofile=target)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _join(changes: Sequence[str], limit: int = 5) -> str:
    shown = "; ".join(changes[:limit])
    if len(changes) > limit:
        shown += f"; ... ({len(changes) - limit} more)"
    return shown


def changed_finding(name: str, pinned: PinnedTool, definition: Mapping[str, Any], digest: str) -> Finding:
    changes = describe_changes(pinned.definition, definition)
    return Finding(
        tool=name,
        kind="changed",
        summary=f"{name}: definition changed since it was pinned: {_join(changes) or 'field order or encoding only'}",
        changes=changes,
        diff=definition_diff(name, pinned.definition, definition),
        pinned_sha256=pinned.sha256,
        current_sha256=digest,
    )


def new_finding(name: str, definition: Mapping[str, Any] | None, digest: str | None) -> Finding:
    if definition is None:
        return Finding(tool=name, kind="new", summary=f"{name}: a tools/list entry without a string name; not pinnable")
    return Finding(
        tool=name,
        kind="new",
        summary=f"{name}: not pinned (listed by the server, absent from the lock file)",
        changes=("tool added",),
        diff=definition_diff(name, None, definition),
        current_sha256=digest,
    )


def removed_finding(name: str, pinned: PinnedTool) -> Finding:
    return Finding(
        tool=name,
        kind="removed",
        summary=f"{name}: pinned, but the server no longer lists it",
        changes=("tool removed",),
        diff=definition_diff(name, pinned.definition, None),
        pinned_sha256=pinned.sha256,
    )


def unseen_finding(name: str) -> Finding:
    return Finding(
        tool=name,
        kind="unseen",
        summary=f"{name}: no tools/list in this session has shown this tool yet; read tools/list to check its pin",
    )


def compare(lock: LockFile, tools: Iterable[Any]) -> list[Finding]:
    """Every difference between the lock and a complete listing.

    Listed tools in the server's order (``changed``, ``new``; each listed definition is
    checked, duplicates included), then pinned tools the listing lacks (``removed``) by name.
    """
    findings: list[Finding] = []
    listed: set[str] = set()
    for tool in tools:
        name = tool_name(tool)
        if name is None:
            findings.append(new_finding(NO_NAME, None, None))
            continue
        listed.add(name)
        digest = tool_digest(tool)
        pinned = lock.tools.get(name)
        if pinned is None:
            findings.append(new_finding(name, tool, digest))
        elif pinned.sha256 != digest:
            findings.append(changed_finding(name, pinned, tool, digest))
    for name in sorted(set(lock.tools) - listed):
        findings.append(removed_finding(name, lock.tools[name]))
    return findings
