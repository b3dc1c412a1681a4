"""What the relay checks about a call before the policy judges it: pins, schemas, the guard's own files.

Built once per session from the policy; the session feeds it every ``tools/list``
result it relays (:meth:`ToolIntegrity.listed`) and asks it about every call
(:meth:`ToolIntegrity.check_call`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_guard.policy.decision import Deny

if TYPE_CHECKING:
    # Imported when a feature is on, not at every start (the default guard only protects its files).
    from mcp_guard.integrity.pins import Finding, LockFile
    from mcp_guard.integrity.protect import ProtectedPaths

NEEDS_LISTING = "needs-listing"


@dataclass
class IntegritySettings:
    lock: LockFile | None = None
    lock_path: Path | None = None
    pin_mode: str = "enforce"
    validate_all: bool = False
    validate_tools: Mapping[str, bool] | None = None  # per-tool overrides (exact names)
    protected: ProtectedPaths | None = None


class ToolIntegrity:
    """Pins, argument validation and self-protection for one session. Thread-safe."""

    def __init__(self, settings: IntegritySettings, warn: Callable[[str], None]) -> None:
        self.settings = settings
        self._warn = warn
        self._lock = threading.Lock()
        self._pins: Any = None
        if settings.lock is not None:
            from mcp_guard.integrity.pins import PinChecker

            self._pins = PinChecker(settings.lock, "warn" if settings.pin_mode == "warn" else "enforce")
        self._validator: Any = None
        if settings.validate_all or any((settings.validate_tools or {}).values()):
            from mcp_guard.integrity.validate import ArgumentValidator

            self._validator = ArgumentValidator()
        self._definitions: dict[str, Mapping[str, Any]] = {}
        # The guard read the server's whole list since the last list_changed: a name still unseen is not
        # the server's, and is refused without reading the list again for every such call.
        self._complete = False
        self._reported: set[tuple[str, str, str | None]] = set()

    @property
    def watches_listings(self) -> bool:
        return self._pins is not None or self._validator is not None

    def wants_validation(self, tool: str) -> bool:
        overrides = self.settings.validate_tools or {}
        return overrides.get(tool, self.settings.validate_all) if self._validator is not None else False

    def listed(self, tools: list[Any], complete: bool = False) -> tuple[list[Any], list[Finding]]:
        """Filter one ``tools/list`` page (enforce mode drops tools that break their pins); remember schemas."""
        with self._lock:
            kept, findings = self._pins.filter_tools(tools, complete=complete) if self._pins else (list(tools), [])
            if complete:
                self._complete = True
            for tool in tools:
                if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                    self._definitions[tool["name"]] = tool
            fresh = []
            for finding in findings:
                key = (finding.tool, finding.kind, finding.current_sha256)
                if key not in self._reported:
                    self._reported.add(key)
                    fresh.append(finding)
        for finding in fresh:
            action = (
                "hidden and refused"
                if self.settings.pin_mode == "enforce" and finding.kind != "removed"
                else "reported"
            )
            detail = f"\n{finding.diff}" if finding.diff else ""
            self._warn(f"tool pin: {finding.summary} ({action}; `mcp-guard pins accept` after review){detail}")
        return kept, fresh

    def forget_listing(self) -> None:
        """The server said its tools changed: calls wait for a fresh listing."""
        with self._lock:
            self._complete = False
            if self._pins is not None:
                self._pins.invalidate()

    def check_call(self, tool: str, arguments: Mapping[str, Any]) -> Deny | str | None:
        """A refusal, :data:`NEEDS_LISTING` (the guard must read ``tools/list`` first), or None."""
        protected = self.settings.protected
        if protected is not None:
            found = protected.find_reference(arguments)
            if found is not None:
                token, path = found
                return Deny(
                    "protected",
                    "protect_own_files",
                    f"This call's arguments name the guard's own file {path} ({token!r}); a tool may not read "
                    "or change the guard's policy, lock file, stores or audit log.",
                )
        with self._lock:
            if self._pins is not None:
                finding = self._pins.allowed(tool)
                if finding is not None:
                    if finding.kind == "unseen":
                        if not self._complete:
                            return NEEDS_LISTING
                        if self.settings.pin_mode == "enforce":
                            return Deny(
                                "pin",
                                "pins",
                                f"Tool {tool!r} is not in the server's tool list, so it has no pin to check it "
                                "against; it was refused.",
                            )
                    if self.settings.pin_mode == "enforce":
                        return Deny(
                            "pin",
                            "pins",
                            f"Tool {tool!r} does not match its pinned definition: {finding.summary}. It stays "
                            "blocked until a person reviews the change (mcp-guard pins diff / pins accept).",
                            {"changes": list(finding.changes)},
                        )
            if not self.wants_validation(tool):
                return None
            definition = self._schema_source(tool)
            if definition is None:
                return None if self._complete else NEEDS_LISTING
            schema = definition.get("inputSchema")
            assert self._validator is not None  # noqa: S101 - wants_validation checked it
            problem = self._validator.check(schema, dict(arguments)) if isinstance(schema, dict) else None
        if problem is not None:
            return Deny(
                "invalid_arguments",
                "validate_arguments",
                f"The arguments do not match the tool's input schema: {problem}. Correct them and call again.",
            )
        return None

    def _schema_source(self, tool: str) -> Mapping[str, Any] | None:
        if self.settings.lock is not None:
            pinned = self.settings.lock.tools.get(tool)
            if pinned is not None:
                return pinned.definition
        return self._definitions.get(tool)
