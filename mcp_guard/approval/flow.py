"""Getting a person's decision on a call, through whichever channel can reach one.

Channels are tried in the user's order (default ``client,async``):

* ``client``: ask in-band. In the handshake era the guard sends the client an
  ``elicitation/create`` request (ids of its own, which can never collide with
  either side's) and holds the call; in the 2026-07-28 era it answers the call
  with an ``input_required`` result carrying a signed ``requestState`` and lets
  the client retry with the person's answer.
* ``command``: run a program (a desktop dialog) with the request on stdin.
* ``tty``: ask on the controlling terminal.
* ``async``: refuse now with an approval id; ``mcp-guard approve ID`` in any
  terminal lets the identical call through on retry. Works in every client.

Nothing waits longer than ``timeout_s`` (default 45 s, under the ~60 s after which
clients cancel a tool call); a channel that times out falls through to the next.
Holding a call never blocks a pump: each held call waits on a thread of its own,
owned by the flow and bounded by the timeout.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard

from mcp_guard.approval.request import readable_arguments
from mcp_guard.audit import arguments_sha256
from mcp_guard.policy.decision import Approve
from mcp_guard.wire.json_types import JSONObject

Channel = Literal["client", "command", "tty", "async"]
CHANNELS: tuple[Channel, ...] = ("client", "command", "tty", "async")
DEFAULT_CHANNELS: tuple[Channel, ...] = ("client", "async")
DEFAULT_TIMEOUT_S = 45.0
INPUT_KEY = "mcp-guard/approval"
STATE_PREFIX = "mcp-guard.v1."
_STATE_TTL_S = 600.0

Outcome = Literal["approved", "declined", "cancelled", "timeout", "unavailable"]


def approval_message(server: str, tool: str, arguments: Mapping[str, Any], decision: Approve) -> str:
    return (
        f"mcp-guard: the agent wants to call {tool!r} on {server!r}.\n"
        f"Arguments: {readable_arguments(arguments) or '(no arguments)'}\n"
        f"Why you are asked: {decision.reason} (policy rule {decision.rule})\n"
        "Approve this call?"
    )


APPROVAL_SCHEMA: JSONObject = {
    "type": "object",
    "properties": {
        "approve": {
            "type": "boolean",
            "title": "Approve this call",
            "description": "Tick to let this one call through; leave it unticked or decline to refuse it.",
            "default": False,
        }
    },
    "required": ["approve"],
}


def elicit_outcome(result: Any) -> Outcome:
    """What an elicitation answer (``ElicitResult``) means for the call."""
    if not isinstance(result, Mapping):
        return "declined"
    action = result.get("action")
    if action == "accept":
        content = result.get("content")
        return "approved" if isinstance(content, Mapping) and content.get("approve") is True else "declined"
    if action == "cancel":
        return "cancelled"
    return "declined"


class StateSigner:
    """Signed, expiring, single-use ``requestState`` tokens for 2026-07-28 approval rounds.

    The key is per process: a token is only good for the guard that issued it, so a
    client cannot forge an approval or replay one into another session.
    """

    def __init__(self, key: bytes | None = None, clock: Callable[[], float] = time.time) -> None:
        self._key = key or secrets.token_bytes(32)
        self._clock = clock
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self, tool: str, arguments: Mapping[str, Any], approved: bool, inner: str | None = None) -> str:
        body = {
            "t": tool,
            "h": arguments_sha256(arguments),
            "a": approved,
            "n": secrets.token_hex(8),
            "e": round(self._clock() + _STATE_TTL_S, 3),
        }
        if inner is not None:
            body["i"] = inner
        payload = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{STATE_PREFIX}{payload}.{self._mac(payload)}"

    def _mac(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()[:32]

    def redeem(self, token: str, tool: str, arguments: Mapping[str, Any]) -> tuple[JSONObject | None, str]:
        """The token's body if it is genuine, unexpired, unused and bound to this call; else None and why."""
        if not token.startswith(STATE_PREFIX):
            return None, "not issued by mcp-guard"
        payload, _, mac = token[len(STATE_PREFIX) :].rpartition(".")
        if not payload or not hmac.compare_digest(mac, self._mac(payload)):
            return None, "its signature does not match (forged, altered, or from another guard process)"
        try:
            body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except ValueError:
            return None, "it cannot be read"
        if not isinstance(body, dict):
            return None, "it cannot be read"
        if body.get("e", 0) < self._clock():
            return None, "it has expired"
        if body.get("t") != tool or body.get("h") != arguments_sha256(arguments):
            return None, "it was issued for a different call"
        with self._lock:
            now = self._clock()
            for nonce in [n for n, exp in self._used.items() if exp < now]:
                del self._used[nonce]
            if body.get("n") in self._used:
                return None, "it was already used"
            self._used[str(body.get("n"))] = float(body.get("e", now))
        return body, ""


@dataclass
class Held:
    """A call waiting for an in-band answer."""

    guard_id: str
    event: threading.Event = field(default_factory=threading.Event)
    answer: Any = None
    cancelled: bool = False


class GuardIds:
    """Request ids for requests the guard itself sends to one side: a random per-process prefix, so
    they can never collide with ids either side chose, and one space per side (``side`` is a tag in
    the prefix), so an answer is only taken from the side the request went to."""

    def __init__(self, side: str = "") -> None:
        self._prefix = f"mcp-guard-{side}{os.getpid():x}-{secrets.token_hex(4)}-"
        self._next = 0
        self._lock = threading.Lock()

    def new(self) -> str:
        with self._lock:
            self._next += 1
            return f"{self._prefix}{self._next}"

    def owns(self, ident: object) -> TypeGuard[str]:
        return isinstance(ident, str) and ident.startswith(self._prefix)


@dataclass
class ApprovalSettings:
    """How this guard reaches a person. ``store`` is the shared approval store (``async`` and grants)."""

    channels: tuple[Channel, ...] = DEFAULT_CHANNELS
    timeout_s: float = DEFAULT_TIMEOUT_S
    command: str | None = None
    store: Any = None  # an ApprovalStore or a LazyApprovalStore; the desk reads it as its StorePort
    tty_path: str = "/dev/tty"
    signer: StateSigner = field(default_factory=StateSigner)


def parse_channels(text: str) -> tuple[Channel, ...]:
    """``client,async`` → channels, or ValueError naming what is not a channel."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in CHANNELS]
    if unknown or not names:
        raise ValueError(
            f"unknown approval channel(s) {', '.join(map(repr, unknown)) or '(none given)'}: "
            f"choose from {', '.join(CHANNELS)}, comma-separated, in the order to try them"
        )
    return tuple(_as_channel(n) for n in names)


def _as_channel(name: str) -> Channel:
    for channel in CHANNELS:
        if channel == name:
            return channel
    raise ValueError(name)
