"""The limiter interface shared by every counter store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Charge:
    """What one call asks of one limit.

    ``cost`` is 1 for a rate limit and the call's amount for a spend cap. ``rule`` is
    the limit's path in the policy document, carried so a refusal can name it.
    ``counter`` is the store key: the policy's counter name, prefixed by its scope.
    A keyed limit (``key`` in the policy) has one counter per key value: ``counter`` names that
    one (``per_customer["cus_1"]``), ``family`` the policy's counter they all belong to, and
    ``max_keys`` bounds how many keys the family may track at once.
    """

    counter: str
    window_s: float
    max: float
    cost: float
    rule: str
    reason: str | None = None
    scope: str = "grant"
    refund_on_error: bool = False
    family: str | None = None
    max_keys: int = 0


@dataclass(slots=True)
class LimitRefusal:
    """The first charge that did not fit, and when it would.

    ``retry_after_s`` is None when the charge can never fit (its cost alone exceeds
    ``max``). ``keys_full``: the charge is a new key of a family that already tracks
    ``max_keys`` keys (``used`` is then that number of keys); it fits once a key's window empties.
    """

    charge: Charge
    used: float
    retry_after_s: float | None
    keys_full: bool = False


@dataclass(slots=True)
class Receipt:
    """What an admitted call recorded, so it can be refunded (``refund_on_error``)."""

    charges: tuple[Charge, ...]
    at: float
    refunded: bool = field(default=False, kw_only=True, repr=False, compare=False)

    def refundable(self) -> Receipt | None:
        """The part of this receipt whose limits say ``refund_on_error``, or None if there is none.

        Stores whose receipts carry more (row ids, members) override this to keep it.
        """
        keep = tuple(c for c in self.charges if c.refund_on_error)
        if not keep:
            return None
        return self if len(keep) == len(self.charges) else Receipt(keep, self.at)


class StoreUnavailable(Exception):
    """The counter store could not be reached or did not answer in time."""


class Limiter(Protocol):
    """Check-and-record for a set of charges, all or nothing.

    ``acquire`` must check every charge before recording any, so a refused call
    consumes nothing, and must be atomic with respect to every other user of the
    same store (other threads, other guard processes, other machines). Stores that
    cannot be reached raise :class:`StoreUnavailable`. Each store keeps time with the
    clock its users share: a monotonic clock in memory, wall-clock time in a file,
    the server's clock in Redis.
    """

    def acquire(self, charges: Sequence[Charge]) -> LimitRefusal | Receipt:
        """Record all ``charges`` now and return a receipt, or record nothing and say why."""
        ...

    def refund(self, receipt: Receipt) -> None:
        """Remove what ``receipt`` recorded (the call did not count after all)."""
        ...

    def usage(self, counter: str, window_s: float) -> float:
        """Total cost recorded on ``counter`` within the last ``window_s`` seconds."""
        ...
