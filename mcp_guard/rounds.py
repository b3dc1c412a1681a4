"""2026-07-28 input rounds: a call the server answered ``input_required`` goes on in its retry.

The server asks the user something by answering ``tools/call`` with ``resultType:
"input_required"`` and an opaque ``requestState``; the client sends the same call again, under a
new JSON-RPC id, with ``inputResponses`` and that ``requestState``. For the guard that retry is
the call it admitted going on, not a new one: judging it again would ask twice and charge twice
(a server's own "Really pay 6?" under a spend cap of 10 ends in "Rate limit reached").

:class:`Rounds` remembers each ``requestState`` the server issued in answer to a call the guard
admitted, with that call's tool and canonical arguments. A retry carrying one of them for the same
tool and arguments takes the remembered call back (the ``rounds`` stage relays it as it is); any
other retry (other arguments, another tool, a state the server never issued for this call, one
already used or expired) is a new call and judged as one. The table is bounded and entries
expire, so a client that never retries costs nothing for long; calls that leave it unfinished are
handed back so the audit can still record them (status ``input_required``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mcp_guard.calls import Call
from mcp_guard.canonical import sha256_hex
from mcp_guard.wire.json_types import JSONObject

ROUNDS_KEPT = 1024
ROUND_TTL_S = 900.0  # a person answering the server's question may take a while; no client waits longer


@dataclass(slots=True)
class _Issued:
    tool: str
    digest: str
    call: Call
    expires: float


class Rounds:
    """The ``requestState`` values the server issued for admitted calls, oldest first, bounded, expiring."""

    def __init__(
        self, kept: int = ROUNDS_KEPT, ttl_s: float = ROUND_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._kept = kept
        self._ttl_s = ttl_s
        self._clock = clock
        self._issued: dict[str, _Issued] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._issued)

    def issued(self, state: str, call: Call) -> list[Call]:
        """The server answered ``call`` with ``input_required`` and ``state``. Returns the calls that
        dropped out of the table (expired or pushed out), unfinished."""
        entry = _Issued(call.tool, sha256_hex(call.arguments), call, self._clock() + self._ttl_s)
        with self._lock:
            dropped = self._expire_locked()
            old = self._issued.pop(state, None)  # a server reusing a state: the newer call owns it
            if old is not None and old.call is not call:
                dropped.append(old.call)
            self._issued[state] = entry
            while len(self._issued) > self._kept:
                dropped.append(self._issued.pop(next(iter(self._issued))).call)
        return dropped

    def resume(self, state: str, tool: str, arguments: JSONObject) -> Call | None:
        """The admitted call this retry continues, taken out of the table; None: it is a new call."""
        with self._lock:
            entry = self._issued.get(state)
            if entry is None or entry.tool != tool:
                return None
            if entry.expires < self._clock():
                return None  # dropped (and handed back) by the next expire
            if entry.digest != sha256_hex(arguments):
                return None
            del self._issued[state]
        return entry.call

    def expired(self) -> list[Call]:
        with self._lock:
            return self._expire_locked()

    def drain(self) -> list[Call]:
        """Every call still waiting for its retry (the session is ending)."""
        with self._lock:
            calls = [e.call for e in self._issued.values()]
            self._issued.clear()
        return calls

    def _expire_locked(self) -> list[Call]:
        now = self._clock()
        gone = [state for state, e in self._issued.items() if e.expires < now]
        return [self._issued.pop(state).call for state in gone]


def issued_state(message: JSONObject) -> str | None:
    """The ``requestState`` of an ``input_required`` result, else None."""
    result = message.get("result")
    if not isinstance(result, dict) or result.get("resultType") != "input_required":
        return None
    state = result.get("requestState")
    return state if isinstance(state, str) else None
