"""The server's ``instructions`` pinned in the lock file, and what differs from them.

A server's ``instructions`` (in its ``initialize`` result, or its ``server/discover`` result in
2026-07-28) are read by the model like a tool's description, so they are pinned the same way:
the lock keeps their SHA-256 (of the canonical JSON of the text) and the text itself, for the
diff. ``"instructions": null`` pins a server that sends none; a lock without the key (made
before instructions were pinned) does not check them at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from mcp_guard.canonical import sha256_hex

InstructionsKind = Literal["changed", "added", "removed"]
NAME = "(instructions)"
"""How the audit log and messages name the instructions where a tool name would stand."""


def instructions_digest(value: object) -> str | None:
    """SHA-256 (hex) of the canonical JSON of the instructions as sent; None when there are none."""
    return None if value is None else sha256_hex(value)


@dataclass(frozen=True)
class PinnedInstructions:
    """The pinned instructions: ``text`` None (and no digest) pins a server that sends none."""

    text: str | None
    sha256: str | None

    @classmethod
    def of(cls, text: str | None) -> PinnedInstructions:
        return cls(text, instructions_digest(text))


@dataclass(frozen=True)
class InstructionsFinding:
    """The server's instructions differ from the pinned ones: ``changed``, ``added`` (none were pinned) or
    ``removed`` (the server sends none now); ``diff`` is a unified diff of the texts."""

    kind: InstructionsKind
    summary: str
    diff: str
    pinned_sha256: str | None
    current_sha256: str | None


def _lines(value: object) -> list[str]:
    if value is None:
        return []
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return [line if line.endswith("\n") else line + "\n" for line in text.splitlines(keepends=True)]


def instructions_diff(pinned: str | None, current: object) -> str:
    """A unified diff of the pinned text and the instructions sent now (either may be absent)."""
    import difflib

    source = "instructions (pinned)" if pinned is not None else "instructions (none pinned)"
    target = "instructions (sent now)" if current is not None else "instructions (none sent)"
    lines = difflib.unified_diff(_lines(pinned), _lines(current), fromfile=source, tofile=target)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def compare_instructions(pinned: PinnedInstructions | None, current: object) -> InstructionsFinding | None:
    """What differs between the pinned instructions and ``current`` (the value sent, None when absent).

    ``pinned`` None (a lock that does not pin instructions): nothing is checked.
    """
    if pinned is None:
        return None
    digest = instructions_digest(current)
    if digest == pinned.sha256:
        return None
    if pinned.sha256 is None:
        kind: InstructionsKind = "added"
        summary = "the server sends instructions, and the lock pins none"
    elif digest is None:
        kind = "removed"
        summary = "the server no longer sends the instructions pinned"
    else:
        kind = "changed"
        summary = "the server's instructions changed since they were pinned"
    return InstructionsFinding(kind, summary, instructions_diff(pinned.text, current), pinned.sha256, digest)
