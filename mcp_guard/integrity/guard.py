"""What the relay checks about a call before the policy judges it: pins, schemas, the guard's own files.

Built once per session from the policy; the session feeds it every ``tools/list``
result it relays (:meth:`ToolIntegrity.listed`) and asks it about every call
(:meth:`ToolIntegrity.check_call`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_guard.policy.decision import Deny
from mcp_guard.wire.json_types import JSON

if TYPE_CHECKING:
    # Imported when a feature is on, not at every start (the default guard only protects its files).
    from mcp_guard.integrity.instructions import InstructionsFinding
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
    def checks_pins(self) -> bool:
        return self._pins is not None

    @property
    def checks_arguments(self) -> bool:
        return self._validator is not None

    @property
    def watches_listings(self) -> bool:
        return self._pins is not None or self._validator is not None

    def wants_validation(self, tool: str) -> bool:
        overrides = self.settings.validate_tools or {}
        return overrides.get(tool, self.settings.validate_all) if self._validator is not None else False

    def listed(self, tools: Sequence[JSON], complete: bool = False) -> tuple[list[JSON], list[Finding]]:
        """Filter one ``tools/list`` page (enforce mode drops tools that break their pins); remember schemas."""
        with self._lock:
            kept, findings = self._pins.filter_tools(tools, complete=complete) if self._pins else (list(tools), [])
            if complete:
                self._complete = True
            for tool in tools:
                if isinstance(tool, dict):
                    name = tool.get("name")
                    if isinstance(name, str):
                        self._definitions[name] = tool
            fresh = []
            for finding in findings:
                key = (finding.tool, finding.kind, finding.current_sha256)
                if key not in self._reported:
                    self._reported.add(key)
                    fresh.append(finding)
        for finding in fresh:
            self._warn(self._describe(finding))
        return kept, fresh

    def _describe(self, finding: Finding) -> str:
        """The stderr line for one finding: what is wrong, where the lock is, the command that pins it."""
        import os
        import shlex

        from mcp_guard.integrity.diff import NO_NAME

        action = (
            "hidden and refused" if self.settings.pin_mode == "enforce" and finding.kind != "removed" else "reported"
        )
        detail = f"\n{finding.diff}" if finding.diff else ""
        lock, path = self.settings.lock, self.settings.lock_path
        if lock is None or path is None or finding.tool == NO_NAME:
            return f"tool pin: {finding.summary} ({action}; `mcp-guard pins accept` after review){detail}"
        where = os.path.abspath(path)
        command = lock.server_command
        accept = f"mcp-guard pins accept {shlex.quote(finding.tool)} --lock {shlex.quote(where)} -- " + (
            shlex.join(command) if command else "COMMAND [ARGS...]"
        )
        if finding.kind == "new":
            # Most often the lock was made by a client that was offered fewer tools than this one.
            declared = lock.client_capabilities or ()
            made_as = ", ".join(declared) if declared else "no capabilities"
            return (
                f"tool pin: {finding.tool}: offered to this client but not in the lock file {where}, which was made "
                f"listing tools as a client declaring {made_as} ({action}); after review, pin it with: {accept}{detail}"
            )
        verb = "drop it from the lock" if finding.kind == "removed" else "pin it as listed now"
        return f"tool pin: {finding.summary} ({action}); after review, {verb} with: {accept}{detail}"

    @property
    def pins_instructions(self) -> bool:
        """The lock pins the server's instructions (a lock made before they were pinned does not)."""
        lock = self.settings.lock
        return lock is not None and lock.instructions is not None

    def check_instructions(self, value: JSON, monitor: bool) -> tuple[InstructionsFinding, bool] | None:
        """The server's ``instructions`` as sent (None: it sent none) against the pinned ones.

        None when they match (or the lock does not pin them); else the finding and whether the
        instructions are to be dropped (enforce mode, not monitoring, and there are some). Each
        difference is said on stderr once per session.
        """
        from mcp_guard.integrity.instructions import compare_instructions

        lock = self.settings.lock
        finding = compare_instructions(lock.instructions if lock is not None else None, value)
        if finding is None:
            return None
        enforce = self.settings.pin_mode == "enforce"
        withhold = enforce and not monitor and finding.kind != "removed"
        key = ("(instructions)", finding.kind, finding.current_sha256)
        with self._lock:
            fresh = key not in self._reported
            self._reported.add(key)
        if fresh:
            self._warn(self._describe_instructions(finding, enforce, withhold))
        return finding, withhold

    def _describe_instructions(self, finding: InstructionsFinding, enforce: bool, withhold: bool) -> str:
        """The stderr line for instructions that differ from their pin, with the commands to review and pin them."""
        import os
        import shlex

        if withhold:
            action = "dropped: the client does not see them"
        elif finding.kind == "removed":
            action = "reported"
        elif enforce:
            action = "passed on: monitor mode; they would be dropped"
        else:
            action = "reported"
        path = self.settings.lock_path
        where = f" in {os.path.abspath(path)}" if path is not None else ""
        lock_option = f" --lock {shlex.quote(os.path.abspath(path))}" if path is not None else ""
        command = self.settings.lock.server_command if self.settings.lock is not None else None
        server = shlex.join(command) if command else "COMMAND [ARGS...]"
        review = f"mcp-guard pins diff{lock_option} -- {server}"
        accept = f"mcp-guard pins accept --instructions{lock_option} -- {server}"
        verb = "pin that it sends none" if finding.kind == "removed" else "pin them as sent now"
        return (
            f"instructions pin: {finding.summary}{where} ({action}); review with: {review}; "
            f"after review, {verb} with: {accept}\n{finding.diff}"
        )

    def forget_listing(self) -> None:
        """The server said its tools changed: calls wait for a fresh listing."""
        with self._lock:
            self._complete = False
            if self._pins is not None:
                self._pins.invalidate()

    @property
    def enforces_pins(self) -> bool:
        return self._pins is not None and self.settings.pin_mode == "enforce"

    def check_call(self, tool: str, arguments: Mapping[str, Any]) -> Deny | str | None:
        """All three checks in pipeline order: a refusal, :data:`NEEDS_LISTING`, or None."""
        return self.check_own_files(arguments) or self.check_pin(tool) or self.check_arguments(tool, arguments)

    def check_own_files(self, arguments: Mapping[str, Any]) -> Deny | None:
        """A refusal when the arguments name the guard's own files or folders (``protect_own_files``)."""
        protected = self.settings.protected
        return protected.refusal(arguments) if protected is not None else None

    def check_pin(self, tool: str) -> Deny | str | None:
        """A refusal when the tool breaks its pin, :data:`NEEDS_LISTING` when it was not listed yet, or None."""
        if self._pins is None:
            return None
        with self._lock:
            finding = self._pins.allowed(tool)
            complete = self._complete
        if finding is None:
            return None
        enforce = self.settings.pin_mode == "enforce"
        if finding.kind == "unseen":
            if not complete:
                return NEEDS_LISTING
            if enforce:
                return Deny(
                    "pin",
                    "pins",
                    f"Tool {tool!r} is not in the server's tool list, so it has no pin to check it against; it was "
                    "refused.",
                )
        if not enforce:
            return None
        return Deny(
            "pin",
            "pins",
            f"Tool {tool!r} does not match its pinned definition: {finding.summary}. It stays blocked until a "
            "person reviews the change (mcp-guard pins diff / pins accept).",
            {"changes": list(finding.changes)},
        )

    def check_arguments(self, tool: str, arguments: Mapping[str, Any]) -> Deny | str | None:
        """A refusal when the arguments break the tool's ``inputSchema`` (``validate_arguments``)."""
        if not self.wants_validation(tool):
            return None
        with self._lock:
            definition = self._schema_source(tool)
            complete = self._complete
        if definition is None:
            return None if complete else NEEDS_LISTING
        schema = definition.get("inputSchema")
        assert self._validator is not None  # noqa: S101 - wants_validation checked it
        problem = self._validator.check(schema, dict(arguments)) if isinstance(schema, dict) else None
        if problem is None:
            return None
        return Deny(
            "invalid_arguments",
            "validate_arguments",
            f"The arguments do not match the tool's input schema: {problem}. Correct them and call again.",
        )

    def _schema_source(self, tool: str) -> Mapping[str, Any] | None:
        if self.settings.lock is not None:
            pinned = self.settings.lock.tools.get(tool)
            if pinned is not None:
                return pinned.definition
        return self._definitions.get(tool)
