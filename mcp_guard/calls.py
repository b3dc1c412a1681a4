"""What a session tracks about requests in flight: shared by the relay and the approval desk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp_guard.limits.base import Receipt

# A sentinel answer: the call is being handled off the pump (held for approval, or relayed already).
HELD: dict[str, Any] = {}


@dataclass(slots=True)
class Merge:
    """Guard answers waiting to join the upstream's answer to a batch."""

    keys: frozenset[tuple[bool, Any]]
    answers: list[dict[str, Any]]


@dataclass(slots=True)
class Call:
    """A relayed tools/call whose outcome the audit log is waiting for."""

    tool: str
    rule: str | None
    reason: str | None
    decision: str
    arguments: dict[str, Any]
    when: float
    started: float
    refund: Receipt | None = None  # what to give back if the server answers with an error
    modern_approval: bool = False  # approved in a 2026-07-28 round: nest the server's own input state


@dataclass(slots=True)
class InFlight:
    method: str | None
    ident: Any
    call: Call | None = None
