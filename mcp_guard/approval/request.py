"""What a person is asked to approve, shown so they can judge it, and when two calls are the same call.

A request's id (``ap-7k3m9q``) is meant to be read on one screen and typed on another:
six characters from an alphabet without look-alikes (no ``0``/``o``, ``1``/``l``/``i``),
lower case, and accepted back in any case, with or without the ``ap-`` prefix.

Everything shown to a person goes through :func:`printable` first: control and format
characters (terminal escapes, carriage returns, right-to-left overrides) are written as
``\\uXXXX`` escapes, so a tool name or an argument chosen by the model can neither redraw
the terminal nor make ``"acct_123"`` look like something else.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mcp_guard.audit import canonical_arguments

ID_PREFIX = "ap-"
ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
"""31 characters: digits and lower-case letters minus 0, 1, i, l and o."""
ID_LENGTH = 6

MAX_VALUE_CHARS = 80
"""Longest rendering of one argument value before it is cut with an ellipsis."""
MAX_READABLE_CHARS = 600
"""Longest rendering of all the arguments; keys past it are counted, not shown."""

State = Literal["pending", "expired", "approved", "used", "denied"]

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_BARE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_PARTIAL_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{0,3})?\Z")
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """One call waiting for (or given) a person's decision.

    Times are wall-clock seconds (``time.time()``): the store is shared between processes.
    ``state`` and the fields after it describe the decision, as far as it was made:
    ``until`` is when an approval's grant lapses, or when a denial stops refusing retries;
    ``single_use`` is false for approvals given ``--for`` a while.
    """

    id: str
    server: str
    tool: str
    arguments: dict[str, Any]
    args_sha256: str
    rule: str
    reason: str
    created: float
    expires: float
    state: State = "pending"
    decided_at: float | None = None
    decided_by: str | None = None
    until: float | None = None
    single_use: bool = True

    @property
    def readable_arguments(self) -> str:
        return readable_arguments(self.arguments)

    def describe(self) -> str:
        """``create_charge(amount: 1500, currency: "USD") on payments``, safe to print."""
        return f"{printable(self.tool)}({self.readable_arguments}) on {printable(self.server)}"

    def to_json(self) -> dict[str, Any]:
        """The request as a command channel's program receives it on stdin."""
        return {
            "id": self.id,
            "server": self.server,
            "tool": self.tool,
            "arguments": self.arguments,
            "readable_arguments": self.readable_arguments,
            "rule": self.rule,
            "reason": self.reason,
            "expires": iso_time(self.expires),
        }


def new_request_id() -> str:
    return ID_PREFIX + "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def normalize_id(text: str) -> str:
    """What a person typed (``AP-7K3M9Q``, `` 7k3m9q``) as a request id; other text is returned stripped."""
    word = text.strip().lower()
    if len(word) == ID_LENGTH and not word.startswith(ID_PREFIX):
        word = ID_PREFIX + word
    return word


def call_fingerprint(server: str, tool: str, arguments: Mapping[str, Any]) -> str:
    """SHA-256 over the server, the tool and the canonical arguments: equal exactly for identical calls."""
    digest = hashlib.sha256()
    for part in (server.encode(), tool.encode()):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    digest.update(canonical_arguments(arguments))
    return digest.hexdigest()


def printable(text: str) -> str:
    """``text`` with control, format and unassigned characters written as ``\\uXXXX``."""
    if text.isprintable():  # the common case; isprintable is also false for spaces other than ' '
        return text
    out = []
    for ch in text:
        if unicodedata.category(ch) in _UNSAFE_CATEGORIES:
            code = ord(ch)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…"


def _render_value(value: Any, limit: int) -> str:
    if isinstance(value, str):
        inner = _ENCODE(value)[1:-1]  # JSON escapes for quotes, backslashes and controls
        if len(inner) > limit - 2:
            inner = _PARTIAL_ESCAPE.sub("", inner[: max(limit - 3, 0)]) + "…"
        return printable(f'"{inner}"')
    try:
        text = _ENCODE(value)
    except (TypeError, ValueError):
        text = repr(value)
    return printable(_cut(text, limit))


def _render_key(key: Any) -> str:
    name = str(key)
    if _BARE_KEY.match(name):
        return _cut(name, 40)
    return _render_value(name, 40)


def readable_arguments(
    arguments: Mapping[str, Any], max_value: int = MAX_VALUE_CHARS, max_total: int = MAX_READABLE_CHARS
) -> str:
    """The arguments as a person reads them: ``amount: 1500, currency: "USD", to: "acct_123"``.

    Keys in the call's order; strings quoted and escaped as in JSON; numbers, booleans, null,
    lists and objects as compact JSON. Each value is cut at ``max_value`` characters (so one long
    text cannot push the amount and the recipient out of sight), and once the whole passes
    ``max_total`` the remaining keys are counted: ``… (+3 more)``.
    """
    if not isinstance(arguments, Mapping):
        return _render_value(arguments, max_total)
    parts: list[str] = []
    used = 0
    items = list(arguments.items())
    for n, (key, value) in enumerate(items):
        part = f"{_render_key(key)}: {_render_value(value, max_value)}"
        if parts and used + len(part) + 2 > max_total:
            parts.append(f"… (+{len(items) - n} more)")
            break
        parts.append(part)
        used += len(part) + 2
    return ", ".join(parts)


def iso_time(when: float) -> str:
    """``2025-01-31T14:02:07+00:00``: a wall time in UTC, as the audit log writes it."""
    return dt.datetime.fromtimestamp(when, dt.timezone.utc).isoformat(timespec="seconds")


def duration_words(seconds: float) -> str:
    """``10 minutes``, ``1 hour 30 minutes``, ``45 seconds``: a duration as a person says it."""
    total = max(round(seconds), 0)
    if total < 60:
        return _plural(total, "second")
    if total < 3600:
        minutes, secs = divmod(total, 60)
        if secs and minutes < 10:
            return f"{_plural(minutes, 'minute')} {_plural(secs, 'second')}"
        return _plural(round(total / 60), "minute")
    if total < 86400 * 2:
        hours, rest = divmod(round(total / 60), 60)
        return f"{_plural(hours, 'hour')} {_plural(rest, 'minute')}" if rest else _plural(hours, "hour")
    return _plural(round(total / 86400), "day")


def short_duration(seconds: float) -> str:
    """``12s``, ``9m48s``, ``1h05m``, ``2d03h``: a duration for a table column."""
    total = max(int(seconds), 0)
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}s"
    if total < 86400:
        return f"{total // 3600}h{total % 3600 // 60:02d}m"
    return f"{total // 86400}d{total % 86400 // 3600:02d}h"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
