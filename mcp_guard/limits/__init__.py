"""Sliding-window limiting: the strategy (exact sliding log) behind one small interface.

The policy engine only produces :class:`Charge` objects; a :class:`Limiter` decides
whether all of them fit and records them atomically. Stores that share counters
between processes implement the same interface.
"""

from mcp_guard.limits.base import Charge, Limiter, LimitRefusal, Receipt, StoreUnavailable
from mcp_guard.limits.memory import MemoryLimiter

__all__ = ["Charge", "LimitRefusal", "Limiter", "MemoryLimiter", "Receipt", "StoreUnavailable"]
