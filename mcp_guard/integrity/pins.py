"""Tool pins: the SHA-256 of each whole tool definition, kept in a lock file.

A tool's behaviour is promised by everything the server says about it: its description
(which the model reads as instructions), its input and output schemas, its annotations,
icons, ``_meta`` and any field a later protocol revision adds. :func:`tool_digest` hashes all
of it, exactly as sent, so any change to any of it, down to one character, shows.

The lock file (JSON, ``version`` 1) keeps each tool's digest and its definition (the
definition serves the human-readable diff; the digest is what is compared)::

    {
      "version": 1,
      "server": {"command": ["npx", "some-server"], "name": "some-server", "version": "1.2.0"},
      "created": "2026-01-31T12:00:00+00:00",
      "tools": {"send_money": {"sha256": "…", "definition": {"name": "send_money", …}}}
    }

:class:`PinChecker` is the relay's part: it filters ``tools/list`` results against the lock
(``enforce``: tools that differ from their pin, or have none, are dropped; ``warn``: all are
kept and reported) and remembers what it last saw of each tool, so :meth:`PinChecker.allowed`
can refuse a call to a tool whose listed definition was refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

LOCK_VERSION = 1
FindingKind = Literal["changed", "new", "removed", "unseen"]
PinMode = Literal["enforce", "warn"]

MAX_CHANGES = 20
"""At most this many changed keys are named in a finding; the rest are counted."""
MAX_DEPTH = 64
"""Nesting below this depth is compared as a whole (reported as one change at that depth)."""
MAX_DIFF_CHARS = 200_000
"""Definitions whose pretty-printed text is longer than this are not diffed line by line."""
_SHORT_VALUE = 60
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*\Z")
NO_NAME = "<no name>"


# --- digests --------------------------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8 (lone surrogates kept via ``surrogatepass``): one text per value."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass")


def tool_digest(tool: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the whole tool definition, every field included, as the server sent it."""
    return hashlib.sha256(canonical_json(tool)).hexdigest()


def tool_name(tool: object) -> str | None:
    """The tool's ``name`` if it is a JSON object with a string name, else None."""
    if isinstance(tool, Mapping):
        name = tool.get("name")
        if isinstance(name, str):
            return name
    return None


def json_path(parts: Iterable[str | int], root: str = "") -> str:
    """``root.key[0]["odd key"]``: a readable path into a JSON value."""
    out = root
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


# --- findings -------------------------------------------------------------------------------------


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


# --- the lock file --------------------------------------------------------------------------------


class LockFileError(ValueError):
    """A lock file that cannot be read or does not have the expected shape; the message says where."""


@dataclass(frozen=True)
class PinnedTool:
    sha256: str
    definition: dict[str, Any]

    @classmethod
    def of(cls, definition: Mapping[str, Any]) -> PinnedTool:
        return cls(tool_digest(definition), dict(definition))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


_TOP_KEYS = frozenset({"version", "server", "created", "tools"})


@dataclass
class LockFile:
    """Pinned tool definitions by name, with where they came from.

    ``server`` holds ``command`` (the argv that was pinned) and, when the server said,
    ``name``, ``version`` (its ``serverInfo``) and ``protocolVersion`` (the protocol revision
    the listing was read under).
    """

    tools: dict[str, PinnedTool]
    server: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=_now)
    version: int = LOCK_VERSION

    @classmethod
    def from_tools(cls, tools: Iterable[Any], server: Mapping[str, Any] | None = None) -> LockFile:
        """Pin every named tool of a listing (the first definition of a duplicated name wins)."""
        pinned: dict[str, PinnedTool] = {}
        for tool in tools:
            name = tool_name(tool)
            if name is not None and name not in pinned:
                pinned[name] = PinnedTool.of(tool)
        return cls(tools=pinned, server=dict(server or {}))

    # reading ---------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LockFile:
        """Read and check a lock file; :class:`LockFileError` says what is wrong and where (``file:line:col``)."""
        where = os.fspath(path)
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise LockFileError(f"{where}: no such lock file") from None
        except OSError as exc:
            raise LockFileError(f"{where}: cannot read: {exc.strerror or exc}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LockFileError(f"{where}: not UTF-8 text (byte {exc.start})") from None
        try:
            document = json.loads(text, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as exc:
            raise LockFileError(f"{where}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
        except _DuplicateKey as exc:
            raise LockFileError(f"{where}: duplicate key {exc.args[0]!r} in a JSON object") from None
        except RecursionError:
            raise LockFileError(f"{where}: JSON nested too deeply") from None
        return cls.from_document(document, where)

    @classmethod
    def from_document(cls, document: Any, where: str = "lock file") -> LockFile:
        def fail(path: str, message: str) -> LockFileError:
            return LockFileError(f"{where}: {path}: {message}" if path else f"{where}: {message}")

        if not isinstance(document, dict):
            raise fail("", "expected a JSON object at the top level")
        unknown = sorted(set(document) - _TOP_KEYS)
        if unknown:
            raise fail("", f"unknown key(s) {', '.join(map(repr, unknown))}; expected {sorted(_TOP_KEYS)}")
        version = document.get("version")
        if version is None:
            raise fail("version", "missing (expected 1)")
        if type(version) is not int:
            raise fail("version", f"expected the integer 1, not {json.dumps(version)}")
        if version != LOCK_VERSION:
            hint = "; this mcp-guard is older than the file, upgrade it" if version > LOCK_VERSION else ""
            raise fail("version", f"unsupported lock file version {version} (this mcp-guard reads 1){hint}")
        server = document.get("server", {})
        if not isinstance(server, dict):
            raise fail("server", "expected an object")
        created = document.get("created", "")
        if not isinstance(created, str):
            raise fail("created", "expected a string (ISO 8601 time)")
        tools = document.get("tools")
        if not isinstance(tools, dict):
            raise fail("tools", "missing or not an object (tool name -> {sha256, definition})")
        pinned: dict[str, PinnedTool] = {}
        for name, entry in tools.items():
            here = json_path([name], "tools")
            if not isinstance(entry, dict):
                raise fail(here, "expected an object with sha256 and definition")
            extra = sorted(set(entry) - {"sha256", "definition"})
            if extra:
                raise fail(here, f"unknown key(s) {', '.join(map(repr, extra))}; expected sha256 and definition")
            sha = entry.get("sha256")
            definition = entry.get("definition")
            if not isinstance(sha, str) or not _HEX64.match(sha):
                raise fail(f"{here}.sha256", "expected 64 lowercase hexadecimal digits")
            if not isinstance(definition, dict):
                raise fail(f"{here}.definition", "expected the tool definition (a JSON object)")
            if definition.get("name") != name:
                raise fail(f"{here}.definition.name", f"is {json.dumps(definition.get('name'))}, not {name!r}")
            if tool_digest(definition) != sha:
                raise fail(
                    f"{here}.sha256",
                    "does not match its definition (edited by hand?); run `mcp-guard pin` or `mcp-guard pins accept`",
                )
            pinned[name] = PinnedTool(sha, definition)
        return cls(tools=pinned, server=server, created=created, version=version)

    # writing ---------------------------------------------------------------------------

    def to_document(self) -> dict[str, Any]:
        """The JSON document: fixed top-level order, every nested object's keys sorted."""
        return {
            "version": self.version,
            "server": _sorted(self.server),
            "created": self.created,
            "tools": {
                name: {"sha256": self.tools[name].sha256, "definition": _sorted(self.tools[name].definition)}
                for name in sorted(self.tools)
            },
        }

    def dumps(self) -> str:
        document = self.to_document()
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate somewhere: escape everything, still valid JSON
            text = json.dumps(document, indent=2, ensure_ascii=True) + "\n"
        return text

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (a temporary file beside ``path``, then a rename); permissions as the umask allows."""
        target = Path(path)
        data = self.dumps().encode("utf-8")
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        if hasattr(os, "O_DIRECTORY"):
            try:
                dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                return
            try:
                os.fsync(dir_fd)
            except OSError:
                pass
            finally:
                os.close(dir_fd)


# --- comparing ------------------------------------------------------------------------------------


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


DEFAULT_LOCK_NAME = "mcp-guard.lock.json"


def default_lock_path(policy: str | os.PathLike[str] | None = None) -> Path:
    """Beside the policy as ``NAME.lock.json`` (``policy.json``: ``policy.lock.json``), else ``mcp-guard.lock.json``."""
    if policy is None or not os.fspath(policy):
        return Path(DEFAULT_LOCK_NAME)
    policy_path = Path(policy).expanduser()
    return policy_path.with_name(f"{policy_path.stem}.lock.json")
