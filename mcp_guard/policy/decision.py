"""What the policy engine says about one call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mcp_guard.limits.base import Charge, Receipt
from mcp_guard.wire.json_types import JSON

DenyKind = Literal[
    "deny",
    "default_deny",
    "hidden",
    "limit",
    "condition",
    "approval_required",
    "invalid",
    "store_unavailable",
    "protected",
    "pin",
    "invalid_arguments",
    "busy",
    "tool_description",
    "flow",
]


# Decisions are built per call: plain slotted dataclasses, as frozen ones cost ~0.3 µs more each.
@dataclass(slots=True)
class Allow:
    """Relay the call once ``charges`` fit the limiter. ``rule`` is the tool's entry, if any."""

    rule: str | None
    charges: tuple[Charge, ...] = ()
    receipt: Receipt | None = None  # set by the judge once the limiter recorded the call


@dataclass(slots=True)
class Deny:
    """Refuse the call. ``rule`` is the path, in the policy document, of what fired."""

    kind: DenyKind
    rule: str
    reason: str
    details: dict[str, JSON] = field(default_factory=dict)  # added to the answer's _meta as they are


@dataclass(slots=True)
class Approve:
    """Ask a person first; relay (settling ``charges``) only once approved."""

    rule: str
    reason: str
    charges: tuple[Charge, ...] = ()
    remember_s: float | None = None  # one approval covers identical calls for this long


Decision = Allow | Deny | Approve
