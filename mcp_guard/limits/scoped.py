"""Routing charges by scope: ``grant`` counters in this process, ``server``/``global`` ones in a shared store.

One call's charges may span both. The process-local part is checked first and
recorded last, under its lock, with the shared store's atomic check-and-record in
between: either everything is recorded or nothing is, and a refusal from either
side leaves both untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from mcp_guard.limits.base import Charge, Limiter, LimitRefusal, Receipt
from mcp_guard.limits.memory import MemoryLimiter


def store_key(scope: str, counter: str, server_name: str) -> str:
    """The key a shared counter has in a store: ``server:NAME:COUNTER`` or ``global:COUNTER``."""
    return f"server:{server_name}:{counter}" if scope == "server" else f"global:{counter}"


@dataclass(slots=True)
class ScopedReceipt(Receipt):
    local: Receipt | None = None
    shared: Receipt | None = None

    def refundable(self) -> Receipt | None:
        local = self.local.refundable() if self.local is not None else None
        shared = self.shared.refundable() if self.shared is not None else None
        if local is None and shared is None:
            return None
        charges = tuple(c for c in self.charges if c.refund_on_error)
        return ScopedReceipt(charges, self.at, local, shared)


class ScopedLimiter:
    """A :class:`Limiter` over a local memory limiter and an optional shared store."""

    def __init__(self, local: MemoryLimiter, shared: Limiter | None, server_name: str) -> None:
        self.local = local
        self.shared = shared
        self.server_name = server_name

    def _key(self, charge: Charge) -> Charge:
        family = charge.family
        if family is not None:
            family = store_key(charge.scope, family, self.server_name)
        return replace(charge, counter=store_key(charge.scope, charge.counter, self.server_name), family=family)

    def split(self, charges: Sequence[Charge]) -> tuple[list[Charge], list[Charge]]:
        if self.shared is None:
            return list(charges), []
        local = [c for c in charges if c.scope == "grant"]
        shared = [self._key(c) for c in charges if c.scope != "grant"]
        return local, shared

    def acquire(self, charges: Sequence[Charge]) -> LimitRefusal | Receipt:
        local, shared = self.split(charges)
        if not shared:
            return self.local.acquire(local)
        with self.local.lock:
            now = self.local.now()
            refusal = self.local.check_locked(local, now)
            if refusal is not None:
                return refusal
            assert self.shared is not None  # noqa: S101 - shared charges exist only with a store
            outcome = self.shared.acquire(shared)  # may raise StoreUnavailable: nothing recorded yet
            if isinstance(outcome, LimitRefusal):
                original = next(c for c in charges if c.rule == outcome.charge.rule)
                return replace(outcome, charge=original)
            local_receipt = self.local.record_locked(local, now) if local else None
            return ScopedReceipt(tuple(charges), outcome.at, local_receipt, outcome)

    def refund(self, receipt: Receipt) -> None:
        if isinstance(receipt, ScopedReceipt):
            if receipt.local is not None:
                self.local.refund(receipt.local)
            if receipt.shared is not None and self.shared is not None:
                self.shared.refund(receipt.shared)
            return
        self.local.refund(receipt)

    def usage(self, counter: str, window_s: float) -> float:
        return self.local.usage(counter, window_s)
