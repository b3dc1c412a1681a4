"""What the policy engine says about one call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mcp_guard.limits.base import Charge

DenyKind = Literal["deny", "default_deny", "hidden", "limit", "condition", "approval_required", "invalid"]


@dataclass(frozen=True)
class Allow:
    """Relay the call once ``charges`` fit the limiter. ``rule`` is the tool's entry, if any."""

    rule: str | None
    charges: tuple[Charge, ...] = ()


@dataclass(frozen=True)
class Deny:
    """Refuse the call. ``rule`` is the path, in the policy document, of what fired."""

    kind: DenyKind
    rule: str
    reason: str
    details: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Approve:
    """Ask a person first; relay (settling ``charges``) only once approved."""

    rule: str
    reason: str
    charges: tuple[Charge, ...] = ()


Decision = Allow | Deny | Approve
