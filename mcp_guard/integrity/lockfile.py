"""The lock file: each pinned tool's digest and definition, in JSON (``version`` 1).

The definition serves the human-readable diff; the digest is what is compared. ``server``
says which server the lock was made for (its argv) and as which client (the capabilities the
listing client declared: servers offer some tools only to clients that declare one). ``instructions``
pins the server's instructions (``null``: it sent none); a lock without the key does not pin them
(:mod:`~mcp_guard.integrity.instructions`)::

    {
      "version": 1,
      "server": {"command": ["npx", "some-server"], "clientCapabilities": ["roots", "sampling", "elicitation"],
                 "name": "some-server", "version": "1.2.0", "protocolVersion": "2025-11-25"},
      "created": "2026-01-31T12:00:00+00:00",
      "instructions": {"sha256": "…", "text": "Use send_money only when asked."},
      "tools": {"send_money": {"sha256": "…", "definition": {"name": "send_money", …}}}
    }
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mcp_guard.integrity.digest import json_path, tool_digest, tool_name
from mcp_guard.integrity.instructions import PinnedInstructions, instructions_digest

LOCK_VERSION = 1
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")


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


_TOP_KEYS = frozenset({"version", "server", "created", "instructions", "tools"})


@dataclass
class LockFile:
    """Pinned tool definitions by name, with where they came from.

    ``server`` holds ``command`` (the argv that was pinned), ``clientCapabilities`` (what the
    listing client declared) and, when the server said, ``name``, ``version`` (its
    ``serverInfo``) and ``protocolVersion`` (the protocol revision the listing was read under).
    Locks written before ``clientCapabilities`` was recorded were listed as a client declaring none.
    ``instructions`` None: the server's instructions are not pinned (a lock made before they were).
    """

    tools: dict[str, PinnedTool]
    server: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=_now)
    version: int = LOCK_VERSION
    instructions: PinnedInstructions | None = None

    @classmethod
    def from_tools(
        cls,
        tools: Iterable[Any],
        server: Mapping[str, Any] | None = None,
        instructions: PinnedInstructions | None = None,
    ) -> LockFile:
        """Pin every named tool of a listing (the first definition of a duplicated name wins), and the
        server's instructions when given."""
        pinned: dict[str, PinnedTool] = {}
        for tool in tools:
            name = tool_name(tool)
            if name is not None and name not in pinned:
                pinned[name] = PinnedTool.of(tool)
        return cls(tools=pinned, server=dict(server or {}), instructions=instructions)

    @property
    def server_command(self) -> list[str] | None:
        """The argv of the server this lock was made for, when it says."""
        command = self.server.get("command")
        if isinstance(command, list) and command and all(isinstance(word, str) for word in command):
            return list(command)
        return None

    @property
    def client_capabilities(self) -> tuple[str, ...] | None:
        """The capabilities the listing client declared, when the lock records them."""
        declared = self.server.get("clientCapabilities")
        if isinstance(declared, list) and all(isinstance(name, str) for name in declared):
            return tuple(declared)
        return None

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
                    "does not match its definition (edited by hand?); "
                    "run `mcp-guard pins create` or `mcp-guard pins accept`",
                )
            pinned[name] = PinnedTool(sha, definition)
        instructions = _instructions(document, fail) if "instructions" in document else None
        return cls(tools=pinned, server=server, created=created, version=version, instructions=instructions)

    # writing ---------------------------------------------------------------------------

    def to_document(self) -> dict[str, Any]:
        """The JSON document: fixed top-level order, every nested object's keys sorted."""
        document: dict[str, Any] = {"version": self.version, "server": _sorted(self.server), "created": self.created}
        if self.instructions is not None:
            pinned = self.instructions
            document["instructions"] = None if pinned.text is None else {"sha256": pinned.sha256, "text": pinned.text}
        document["tools"] = {
            name: {"sha256": self.tools[name].sha256, "definition": _sorted(self.tools[name].definition)}
            for name in sorted(self.tools)
        }
        return document

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
        from mcp_guard import atomic

        atomic.write(Path(path), self.dumps().encode("utf-8"))


def _instructions(document: dict[str, Any], fail: Any) -> PinnedInstructions:
    """The lock's ``instructions``: null (the server sent none) or ``{sha256, text}``."""
    entry = document["instructions"]
    if entry is None:
        return PinnedInstructions(None, None)
    if not isinstance(entry, dict):
        raise fail("instructions", "expected null or an object with sha256 and text")
    extra = sorted(set(entry) - {"sha256", "text"})
    if extra:
        raise fail("instructions", f"unknown key(s) {', '.join(map(repr, extra))}; expected sha256 and text")
    sha, text = entry.get("sha256"), entry.get("text")
    if not isinstance(sha, str) or not _HEX64.match(sha):
        raise fail("instructions.sha256", "expected 64 lowercase hexadecimal digits")
    if not isinstance(text, str):
        raise fail("instructions.text", "expected a string (the server's instructions)")
    if instructions_digest(text) != sha:
        raise fail(
            "instructions.sha256",
            "does not match its text (edited by hand?); run `mcp-guard pins create` or `mcp-guard pins accept`",
        )
    return PinnedInstructions(text, sha)
