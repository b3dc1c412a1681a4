"""What a person is asked to approve, shown so they can judge it, and when two calls are the same call.

A request's id (``ap-7k3m9q``) is meant to be read on one screen and typed on another:
six characters from an alphabet without look-alikes (no ``0``/``o``, ``1``/``l``/``i``),
lower case, and accepted back in any case, with or without the ``ap-`` prefix.

Everything shown to a person goes through :func:`printable` first: control characters
(C0, DEL, C1: terminal escapes, carriage returns), format characters (bidi overrides and
isolates, zero-width characters, Unicode tags) and other invisible ones are written as
escapes (``\\x1b``, ``\\u202e``, ``\\U000e0041``), so a tool name or an argument chosen by the
model can neither redraw the terminal, nor make ``"acct_123"`` look like something else, nor
carry text the person cannot see.

What a person approves is what they see: :func:`readable_arguments` shows every argument in
full, or says that something was cut and how to see all of it (``mcp-guard approvals show
ID``). Amounts, recipients, commands and the like (:data:`NEVER_CUT`) are never cut, nor is a
value that holds one of them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
import shlex
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mcp_guard.canonical import canonical_json, compact_json

ID_PREFIX = "ap-"
ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
"""31 characters: digits and lower-case letters minus 0, 1, i, l and o."""
ID_LENGTH = 6

MAX_VALUE_CHARS = 80
"""Longest rendering of one argument value before it is cut with an ellipsis (see :data:`NEVER_CUT`)."""
MAX_READABLE_CHARS = 600
"""Longest rendering of all the arguments; keys past it are counted, not shown (see :data:`NEVER_CUT`)."""
MAX_KEY_CHARS = 40

NEVER_CUT = frozenset(
    {
        *("amount", "amounts", "price", "prices", "total", "totals", "sum", "currency", "value"),
        *("to", "recipient", "recipients", "email", "emails", "mail", "cc", "bcc", "phone", "address"),
        *("account", "accounts", "iban", "bic", "swift", "wallet", "payee", "beneficiary", "dest", "destination"),
        *("command", "commands", "cmd", "script", "args", "argv", "shell", "sql", "query"),
        *("url", "urls", "uri", "href", "host", "path", "paths"),
    }
)
"""Words of an argument's key (``amount``, ``recipientEmail``, ``shell_cmd``) whose value is never cut."""

State = Literal["pending", "expired", "approved", "used", "denied"]

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Printable by Unicode's rules, yet invisible: variation selectors can carry hidden bytes ("emoji
# smuggling"), Hangul fillers look like nothing at all.
_INVISIBLE = re.compile("[\u115f\u1160\u3164\uffa0\ufe00-\ufe0f\U000e0100-\U000e01ef]")
_PLAIN_RUN = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")  # printable ASCII but for " and \\
_QUOTED = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_BARE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_KEY_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_SCALAR = json.JSONEncoder(ensure_ascii=False).encode
_MAX_DEPTH = 100
_LOOK_AT_MOST = 10_000


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """One call waiting for (or given) a person's decision.

    Times are wall-clock seconds (``time.time()``): the store is shared between processes.
    ``state`` and the fields after it describe the decision, as far as it was made:
    ``until`` is when an approval's grant lapses, or when a denial stops refusing retries;
    ``single_use`` is false for approvals given ``--for`` a while. ``server`` is the name shown
    to people; ``server_identity`` (:func:`mcp_guard.audit.server_identity`) is what the approval
    is bound to, empty when only the name is known.
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
    server_identity: str = ""

    @property
    def readable_arguments(self) -> str:
        """The arguments on one line; anything cut is said, with ``mcp-guard approvals show ID`` to see all."""
        return readable_arguments(self.arguments, approval_id=self.id)

    def argument_lines(self) -> list[str]:
        """Each argument in full, one per line: ``amount: 1500``."""
        if not isinstance(self.arguments, Mapping):
            return [_full(self.arguments)]
        return [f"{_key_text(key)}: {_full(value)}" for key, value in self.arguments.items()]

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
    """SHA-256 over the server's identity, the tool and the canonical arguments: equal exactly for identical calls."""
    digest = hashlib.sha256()
    for part in (canonical_json(server), canonical_json(tool)):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    digest.update(canonical_json(arguments))
    return digest.hexdigest()


def describe_identity(identity: str) -> str:
    """A server identity as a person reads it: the command line, or ``--name NAME``."""
    if identity.startswith("name:"):
        return printable(f"--name {identity[5:]}")
    try:
        words = json.loads(identity)
    except ValueError:
        return printable(identity)
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        return printable(identity)
    return printable(shlex.join(words))


# --- showing text to a person -------------------------------------------------------------------


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES or _INVISIBLE.match(ch) is not None


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _looks_plain(text: str) -> bool:
    return text.isprintable() and (text.isascii() or _INVISIBLE.search(text) is None)


def printable(text: str, limit: int | None = None) -> str:
    """``text`` with control, format, invisible and unassigned characters escaped: ``\\x1b``, ``\\u202e``.

    With ``limit``, cut to that many characters with an ellipsis, never inside an escape.
    """
    if _looks_plain(text):  # the common case; isprintable is also false for spaces other than ' '
        if limit is None or len(text) <= limit:
            return text
        return _take((text,), limit)[0]
    pieces = (_escape(ch) if _unsafe(ch) else ch for ch in text)
    return "".join(pieces) if limit is None else _take(pieces, limit)[0]


def _json_escape(match: re.Match[str]) -> str:
    ch = match.group()
    if not _unsafe(ch):
        return ch
    code = ord(ch)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


# The same set as [\x7f-\U0010ffff], written as its complement: compiling the range costs every guard start ~5 ms.
_NOT_ASCII_OR_DEL = re.compile("[^\x00-\x7e]")


def json_for_people(value: Any, indent: int | None = None) -> str:
    """JSON text for a terminal or another program: the same value, but control, format, invisible
    characters and lone surrogates written as JSON escapes (``\\u202e``), so printing it is safe."""
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    if text.isascii() and "\x7f" not in text:
        return text
    return _NOT_ASCII_OR_DEL.sub(_json_escape, text)


def _string_pieces(text: str) -> Iterator[str]:
    """``text`` quoted for a person, as pieces: runs of plain text, and escapes that must not be split."""
    yield '"'
    yield from _inner_pieces(text)
    yield '"'


def _inner_pieces(text: str) -> Iterator[str]:
    at = 0
    for run in _PLAIN_RUN.finditer(text):
        yield from _odd_pieces(text[at : run.start()])
        yield run.group()
        at = run.end()
    yield from _odd_pieces(text[at:])


def _odd_pieces(text: str) -> Iterator[str]:
    for ch in text:
        quoted = _QUOTED.get(ch)
        if quoted is not None:
            yield quoted
        elif _unsafe(ch):
            yield _escape(ch)
        else:
            yield ch


def _pieces(value: Any, depth: int = 0) -> Iterator[str]:
    """``value`` as compact JSON with strings escaped for a person, in pieces (see :func:`_string_pieces`)."""
    if isinstance(value, str):
        yield from _string_pieces(value)
    elif depth >= _MAX_DEPTH and isinstance(value, (Mapping, list, tuple)):
        yield printable(compact_json(value))  # deeper than anyone reads; JSON's own escapes there
    elif isinstance(value, Mapping):
        yield "{"
        for n, (key, item) in enumerate(value.items()):
            if n:
                yield ","
            yield from _string_pieces(str(key))
            yield ":"
            yield from _pieces(item, depth + 1)
        yield "}"
    elif isinstance(value, (list, tuple)):
        yield "["
        for n, item in enumerate(value):
            if n:
                yield ","
            yield from _pieces(item, depth + 1)
        yield "]"
    else:
        try:
            yield _SCALAR(value)
        except (TypeError, ValueError):
            yield printable(repr(value))


def _take(pieces: Iterable[str], limit: int) -> tuple[str, bool]:
    """The pieces joined, or, past ``limit`` characters, cut to fit with an ellipsis (never inside an escape)."""
    seen: list[str] = []
    used = 0
    for piece in pieces:
        seen.append(piece)
        used += len(piece)
        if used > limit:
            break
    else:
        return "".join(seen), False
    room = max(limit - 1, 0)
    kept: list[str] = []
    for piece in seen:
        if len(piece) <= room:
            kept.append(piece)
            room -= len(piece)
            continue
        if not piece.startswith("\\"):
            kept.append(piece[:room])
        break
    return "".join(kept) + "…", True


def _full(value: Any) -> str:
    return "".join(_pieces(value))


def _cut(value: Any, limit: int) -> tuple[str, bool]:
    """``value`` in at most ``limit`` characters; a cut string keeps its closing quote: ``"abc…"``."""
    if isinstance(value, str):
        inner, cut = _take(_inner_pieces(value), max(limit - 2, 1))
        return f'"{inner}"', cut
    return _take(_pieces(value), limit)


def _key_pieces(key: Any) -> Iterable[str]:
    name = str(key)
    return (name,) if _BARE_KEY.match(name) else _string_pieces(name)


def _key_text(key: Any) -> str:
    return "".join(_key_pieces(key))


def _never_cut(key: Any) -> bool:
    return any(word.lower() in NEVER_CUT for word in _KEY_WORDS.findall(str(key)))


def _holds_never_cut(value: Any) -> bool:
    """Whether ``value`` holds a key of :data:`NEVER_CUT` at any depth (true too if it is too big to tell)."""
    stack = [value]
    looked = 0
    while stack:
        looked += 1
        if looked > _LOOK_AT_MOST:
            return True
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, inner in item.items():
                if _never_cut(key):
                    return True
                stack.append(inner)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def readable_arguments(
    arguments: Mapping[str, Any],
    max_value: int = MAX_VALUE_CHARS,
    max_total: int = MAX_READABLE_CHARS,
    *,
    approval_id: str | None = None,
) -> str:
    """The arguments as a person reads them: ``amount: 1500, currency: "USD", to: "acct_123"``.

    Keys in the call's order; strings quoted, with ``\\"``, ``\\\\``, ``\\n`` and the escapes of
    :func:`printable`; numbers, booleans, null, lists and objects as compact JSON.

    Without ``approval_id`` nothing is cut: there would be no way to see what was left out. With
    it, each value is cut at ``max_value`` characters (so one long text cannot push the amount and
    the recipient out of sight), once the whole passes ``max_total`` the remaining keys are
    counted (``(+3 more)``), and the text ends with ``… (cut; mcp-guard approvals show ID shows
    all)``. Values under a key of :data:`NEVER_CUT`, or holding one, are always shown in full.
    """
    if not isinstance(arguments, Mapping):
        if approval_id is None:
            return _full(arguments)
        text, cut = _cut(arguments, max_total)
        return f"{text} … {_see_all(approval_id)}" if cut else text
    if approval_id is None:
        return ", ".join(f"{_key_text(key)}: {_full(value)}" for key, value in arguments.items())
    parts: list[str] = []
    used = 0
    cut = False
    more = 0
    for key, value in arguments.items():
        if _never_cut(key) or _holds_never_cut(value):
            part = f"{_key_text(key)}: {_full(value)}"
        elif more:
            more += 1  # once one key is left out, every later one is, so what is shown keeps the call's order
            continue
        else:
            key_text, key_cut = _take(_key_pieces(key), MAX_KEY_CHARS)
            value_text, value_cut = _cut(value, max_value)
            part = f"{key_text}: {value_text}"
            if parts and used + len(part) + 2 > max_total:
                more = 1
                continue
            cut = cut or key_cut or value_cut
        parts.append(part)
        used += len(part) + 2
    if more:
        parts.append(f"(+{more} more)")
    text = ", ".join(parts)
    if cut or more:
        text += f" … {_see_all(approval_id)}"
    return text


def _see_all(approval_id: str) -> str:
    return f"(cut; mcp-guard approvals show {printable(approval_id)} shows all)"


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
