"""Cheap classification of frames the guard only forwards.

Most frames need no judging: the guard only has to know whether a frame is a
request, a notification or a response, its id and its method, to keep its table
of in-flight requests. Parsing a 20 MB result for that would dominate the relay's
cost, so the two layouts the SDKs write (``{"jsonrpc":"2.0","id":…,`` first, as
the Python SDK does, or ``…,"jsonrpc":"2.0","id":…}`` last, as the TypeScript SDK
does) are read from the frame's head and tail, and anything else is parsed.

Nothing here decides security: frames that could be a ``tools/call`` never come
this way (see :func:`mcp_guard.session.needs_judging`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

from mcp_guard.wire.json_types import JSON

Kind = Literal["request", "notification", "response", "batch", "invalid"]

_ID = rb'(-?\d+|"[^"\\]*")'
# A method is only read here when it is a plain string (no escapes); anything else is parsed.
_PAYLOAD = rb'(?:"(method)":"([^"\\]*)"[,}]|"(result|error)":)'
_HEAD = re.compile(rb'\s*\{"jsonrpc":"2\.0",(?:"id":' + _ID + rb",)?" + _PAYLOAD)
_FIRST_KEY = re.compile(rb"\s*\{" + _PAYLOAD)
_TAIL = re.compile(rb',"jsonrpc":"2\.0"(?:,"id":' + _ID + rb")?\}\s*$")


@dataclass(slots=True)
class Peek:
    kind: Kind
    id: JSON = None
    method: str | None = None
    message: JSON = None  # the parsed frame, when it had to be parsed


def _id(token: bytes | None) -> str | int | None:
    if token is None:
        return None
    if token.startswith(b'"'):
        return token[1:-1].decode("utf-8", "replace")
    return int(token)


def _from_layout(first: bytes, ident: bytes | None, method: bytes | None) -> Peek:
    if first == b"method":
        name = method.decode("utf-8", "replace") if method is not None else None
        if ident is None:
            return Peek("notification", None, name)
        return Peek("request", _id(ident), name)
    if ident is None:
        return Peek("invalid")
    return Peek("response", _id(ident))


def classify(message: JSON) -> Peek:
    """Classify an already-parsed frame."""
    if isinstance(message, list):
        return Peek("batch", message=message)
    if not isinstance(message, dict):
        return Peek("invalid", message=message)
    method = message.get("method")
    ident = message.get("id")
    if isinstance(method, str):
        if "id" in message:
            return Peek("request", ident, method, message)
        return Peek("notification", None, method, message)
    if "id" in message and ("result" in message or "error" in message):
        return Peek("response", ident, None, message)
    return Peek("invalid", message=message)


def peek(line: bytes) -> Peek:
    """Kind, id and method of a frame, without parsing it when its layout is a known one."""
    # Only a layout that shows an id is trusted: "no id seen" may just mean "id elsewhere".
    head = _HEAD.match(line, 0, 200)
    if head is not None and head.group(1) is not None:
        return _from_layout(head.group(2) or head.group(4), head.group(1), head.group(3))
    first = _FIRST_KEY.match(line, 0, 200)
    if first is not None:
        tail = _TAIL.search(line, max(0, len(line) - 120))
        if tail is not None and tail.group(1) is not None:
            return _from_layout(first.group(1) or first.group(3), tail.group(1), first.group(2))
    try:
        message: JSON = json.loads(line)
    except (ValueError, RecursionError):
        return Peek("invalid")
    return classify(message)
