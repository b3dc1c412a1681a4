"""Reading a frame the way every real reader of it would, or refusing it.

The guard forwards a client line only when it parsed all of it, strictly, and every
reader the upstream might be built on reads the same messages from it:

* the Python SDK and Node's ``readline`` end a line at a bare ``\\r`` too (universal
  newlines), so a carriage return anywhere but in the final ``\\r\\n`` is refused;
* stream decoders (the Go SDK) read JSON values, not lines, so a line must hold exactly
  one complete value: no fragment, no second value after the first;
* Go's ``encoding/json`` matches keys case-insensitively with Unicode folding and keeps
  the last match, JavaScript and pydantic keep the last duplicate: keys that collide
  either way are refused at every level (:func:`mcp_guard.wire.jsonrpc.strict_loads`);
* ``json.loads(bytes)`` reads UTF-16 and UTF-32: only UTF-8 without a BOM is accepted.

What survives is a list of :class:`Message` whose shape is JSON-RPC 2.0 as MCP uses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, TypeGuard

from mcp_guard.wire.json_types import JSON, JSONObject, RequestId
from mcp_guard.wire.jsonrpc import INVALID_REQUEST, PARSE_ERROR, FrameError, fold, strict_loads, strict_loads_large

Kind = Literal["request", "notification", "response"]

# Members of the envelope and of params that SDKs bind to typed fields: a key that equals one of
# them only under case folding would be read as that member by Go's encoding/json.
_ENVELOPE = frozenset({"jsonrpc", "id", "method", "params", "result", "error"})
_PARAMS = frozenset(
    {
        "name",
        "arguments",
        "_meta",
        "task",
        "requestState",
        "inputResponses",
        "requestId",
        "reason",
        "uri",
        "cursor",
        "protocolVersion",
        "capabilities",
        "clientInfo",
        "progressToken",
        "ref",
        "argument",
        "level",
    }
)
_FOLDED_ENVELOPE = {fold(k): k for k in _ENVELOPE}
_FOLDED_PARAMS = {fold(k): k for k in _PARAMS}


# Frames longer than this are parsed without copying their body out of the line first.
_IN_PLACE = 1 << 16

# The Python SDK (pydantic-core) reads about 200 levels; a deeper frame would reach it and never be answered.
MAX_DEPTH = 190


def _depth(value: JSON) -> int:
    """How deeply a parsed value nests, without recursion."""
    deepest = 0
    stack: list[tuple[JSON, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item)
    return deepest


# Only a frame with such an escape can decode to a lone surrogate (raw ones are not valid UTF-8).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: JSON) -> bool:
    """Whether a string (key or value) holds a surrogate left unpaired after decoding, without recursion."""
    stack: list[JSON] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


@dataclass(slots=True)
class Message:
    """One JSON-RPC message of a frame, as parsed."""

    kind: Kind
    id: RequestId | None  # None for a notification, and for a response that answers no request
    method: str | None
    body: JSONObject

    @property
    def params(self) -> JSONObject:
        params = self.body.get("params")
        return params if isinstance(params, dict) else {}


@dataclass(slots=True)
class Frame:
    messages: list[Message]
    batch: bool


class Refused(FrameError):
    """A frame that is not forwarded. ``ids`` are the request ids it held that can be read, to answer;
    ``notification`` says it read as a lone notification or response (nobody to answer: it is dropped
    and reported on stderr); ``batch`` that it read as a batch (answered with an array)."""

    def __init__(
        self, code: int, message: str, ids: list[JSON] | None = None, notification: bool = False, batch: bool = False
    ) -> None:
        super().__init__(code, message)
        self.ids: list[JSON] = ids or []
        self.notification = notification
        self.batch = batch


def read_frame(line: bytes) -> Frame | None:
    """The messages of one client line, or :class:`Refused`. None for a blank line (nothing to forward)."""
    if len(line) > _IN_PLACE:
        read = _read_in_place(line)
        if read is None:
            return None
        value, body = read
    else:
        body = line[:-1] if line.endswith(b"\n") else line
        if body.endswith(b"\r"):
            body = body[:-1]
        if body.find(b"\r") >= 0:  # not `in`: on bytes it raises and clears a TypeError first (CPython 3.11)
            raise _carriage_return(body)
        if not body.strip(b" \t"):
            return None
        try:
            value = strict_loads(body)
        except FrameError as exc:
            ids, lone, batch = _probe(body)
            raise Refused(exc.code, exc.message, ids, lone, batch) from None
    if len(body) > MAX_DEPTH and body.count(b"[") + body.count(b"{") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        ids, lone, _ = _probe(body)
        raise Refused(
            INVALID_REQUEST,
            f"the frame is nested more than {MAX_DEPTH} levels deep, beyond what some readers (the Python SDK) read",
            ids,
            lone,
        )
    if body.find(b"\\u") >= 0 and _SURROGATE_ESCAPE.search(body) is not None and _has_lone_surrogate(value):
        ids, lone, _ = _probe(body)
        raise Refused(
            INVALID_REQUEST,
            "the frame holds an unpaired UTF-16 surrogate escape (\\ud800-\\udfff): readers disagree on it (the "
            "Python SDK drops the frame, Go reads U+FFFD, JavaScript keeps it)",
            ids,
            lone,
        )
    if isinstance(value, dict):
        return Frame([_message(value)], False)
    if isinstance(value, list):
        if not value:
            raise Refused(INVALID_REQUEST, "an empty batch is not valid JSON-RPC")
        ids = [i for e in value if isinstance(e, dict) for i in _request_ids(e)]
        messages: list[Message] = []
        for index, element in enumerate(value):
            if isinstance(element, list):
                raise Refused(INVALID_REQUEST, f"element {index} of the batch is itself a batch", ids, batch=True)
            if not isinstance(element, dict):
                raise Refused(
                    INVALID_REQUEST, f"element {index} of the batch is not a JSON-RPC message", ids, batch=True
                )
            try:
                messages.append(_message(element))
            except Refused as exc:
                raise Refused(exc.code, f"element {index} of the batch: {exc.message}", ids, batch=True) from None
        return Frame(messages, True)
    raise Refused(INVALID_REQUEST, "the frame is not a JSON-RPC message (an object) or a batch of them")


def _read_in_place(line: bytes) -> tuple[JSON, bytes] | None:
    """What read_frame reads from a large line, without copying its body out of it first (the line ending
    is JSON whitespace): the value and the bytes to check further, or None for a blank line."""
    end = len(line) - 1 if line.endswith(b"\n") else len(line)
    if line.endswith(b"\r", 0, end):
        end -= 1
    if line.find(b"\r", 0, end) >= 0:
        raise _carriage_return(line[:end])
    if not end or (line[0] in b" \t" and not line[:end].strip(b" \t")):
        return None
    try:
        return strict_loads_large(line), line
    except FrameError:
        pass
    body = line[:end]  # say what is wrong as the frame alone reads (a position at its end may move)
    try:
        return strict_loads(body), body
    except FrameError as exc:
        ids, lone, batch = _probe(body)
        raise Refused(exc.code, exc.message, ids, lone, batch) from None


def _carriage_return(body: bytes) -> Refused:
    """The refusal of a frame holding a CR that is not part of its line ending."""
    # Read as the readers that split here would: each part's requests get an answer.
    ids, lone, batch = _probe(body.replace(b"\r", b" "))  # CR as whitespace, as JSON reads it
    if not ids and not lone:  # or as two lines, as the universal-newline readers do
        ids = [i for part in body.split(b"\r") for i in _probe(part)[0]]
    return Refused(
        PARSE_ERROR,
        "the frame holds a carriage return (CR) that is not part of its line ending: readers with universal "
        "newlines (the Python SDK, Node's readline) would read it as two lines",
        ids,
        lone,
        batch=batch or len(ids) > 1,
    )


def _valid_id(ident: JSON) -> TypeGuard[RequestId]:
    # MCP: a string or an integer. Floats (1.0) read as 1 in some languages and 1.0 in others.
    return isinstance(ident, str) or (isinstance(ident, int) and not isinstance(ident, bool))


def _check_keys(obj: JSONObject, folded: dict[str, str], where: str, message: JSONObject) -> None:
    """Refuse a key that is a member's name (a value of ``folded``) in another case (``message``: whose)."""
    for key in obj:
        known = folded.get(fold(key))
        if known is not None and known != key:
            raise _refused(
                message,
                f"{where} key {key!r} is {known!r} in another case: some readers (Go's encoding/json) would read it "
                f"as {known!r}, others would not",
            )


def _answers_to(ident: JSON) -> bool:
    """An id an error can be addressed to: a string or an integer, also written ``7.0`` or ``7e0``."""
    return _valid_id(ident) or (isinstance(ident, float) and ident.is_integer() and abs(ident) <= 2**53)


def _looks_like_response(obj: JSONObject) -> bool:
    """No method in any spelling: the client answering the server (a response, well-formed or not)."""
    if "method" in obj:
        return False
    return not any(fold(key) == "method" for key in obj)


def _request_ids(obj: JSONObject) -> list[JSON]:
    """The id to answer when this message is refused: a request's (anything with an id that is not a
    response, whatever its method looks like), never a response's, whose id names the client's own request."""
    ident = obj.get("id")
    if "id" in obj and not _looks_like_response(obj) and _answers_to(ident):
        return [ident]
    return []


def _lone(obj: JSONObject) -> bool:
    """A notification (a method, no id) or a response (an id and a result or error): nobody waits for an answer."""
    if "id" not in obj:
        return any(fold(key) == "method" for key in obj)
    return _looks_like_response(obj)


def _refused(obj: JSONObject, message: str) -> Refused:
    """The refusal of message ``obj``, addressed as :func:`_request_ids` and :func:`_lone` read it."""
    return Refused(INVALID_REQUEST, message, _request_ids(obj), _lone(obj))


def _message(obj: JSONObject) -> Message:
    ident = obj.get("id")
    method = obj.get("method")
    if not obj.keys() <= _ENVELOPE:  # only the members' own spellings: nothing to check (decided in C)
        _check_keys(obj, _FOLDED_ENVELOPE, "the message's", obj)
    if obj.get("jsonrpc") != "2.0":
        raise _refused(obj, 'the message lacks "jsonrpc": "2.0"')
    if "method" in obj:
        if not isinstance(method, str):
            raise _refused(obj, "the message's method is not a string")
        if "result" in obj or "error" in obj:
            raise _refused(obj, "the message is both a request (method) and a response (result/error)")
        if "params" in obj:
            params = obj["params"]
            if not isinstance(params, dict):
                raise _refused(obj, "the message's params is not an object (MCP params are objects)")
            if not params.keys() <= _PARAMS:
                _check_keys(params, _FOLDED_PARAMS, "a params", obj)
        if "id" not in obj:
            return Message("notification", None, method, obj)
        if not _valid_id(ident):
            raise Refused(INVALID_REQUEST, "the request id must be a string or an integer", _request_ids(obj) or [None])
        return Message("request", ident, method, obj)
    if "id" not in obj or ("result" in obj) == ("error" in obj):
        raise _refused(obj, "the message is neither a request, a notification nor a response")
    if not (_valid_id(ident) or (ident is None and "error" in obj)):
        raise Refused(INVALID_REQUEST, "the response id must be a string or an integer", [], True)
    return Message("response", ident, None, obj)


def _probe(body: bytes) -> tuple[list[JSON], bool, bool]:
    """Best-effort ids of the requests in a frame that failed strict parsing (to address the errors),
    whether it reads as a lone notification or response (nobody to answer), and whether it is a batch."""
    from mcp_guard.wire.jsonrpc import lenient_loads

    try:
        value = lenient_loads(body)
    except (ValueError, RecursionError):
        return [], False, False
    if isinstance(value, dict) and _lone(value):
        return [], True, False
    elements = value if isinstance(value, list) else [value]
    ids = [i for e in elements if isinstance(e, dict) for i in _request_ids(e)]
    return ids, False, isinstance(value, list)
