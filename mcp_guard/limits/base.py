"""The limiter interface shared by every counter store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Charge:
    """What one call asks of one limit.

    ``cost`` is 1 for a rate limit and the call's amount for a spend cap. ``rule`` is
    the limit's path in the policy document, carried so a refusal can name it.
    """

    counter: str
    window_s: float
    max: float
    cost: float
    rule: str
    reason: str | None = None


@dataclass(frozen=True)
class LimitRefusal:
    """The first charge that did not fit, and when it would.

    ``retry_after_s`` is None when the charge can never fit (its cost alone exceeds
    ``max``).
    """

    charge: Charge
    used: float
    retry_after_s: float | None


class Limiter(Protocol):
    """Check-and-record for a set of charges, all or nothing.

    ``acquire`` must check every charge before recording any, so a refused call
    consumes nothing, and must be atomic with respect to other callers of the same
    store.
    """

    def acquire(self, charges: Sequence[Charge], now: float) -> LimitRefusal | None:
        """Record all ``charges`` at time ``now`` and return None, or record nothing and say why."""
        ...

    def usage(self, counter: str, window_s: float, now: float) -> float:
        """Total cost recorded on ``counter`` within ``window_s`` before ``now`` (for stats and tests)."""
        ...
