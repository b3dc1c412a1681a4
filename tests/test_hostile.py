"""Hostile input on the client side of the guard: a hypothesis property suite, then one example per kind.

One guard runs for the whole module (spawning one costs ~0.3 s), in front of
``tests/servers/batch_recorder.py``: ``recorder.py`` plus answers to JSON-RPC batches and lenient
reading, so that every request the guard relays gets its answer. Each example sends its frames
with fresh ids, then a plain ``ping`` sentinel; everything the client reads before the sentinel's
answer, and everything the recorder wrote before the sentinel's line, belongs to that example.

The rule under test (issue 17): the guard forwards a client line only when it parsed all of it
strictly (UTF-8 without a BOM, no duplicate keys or keys that collide under case folding, no NaN,
no number beyond ±2^53 or a double, no bare CR, one JSON object or a flat non-empty array of them,
each a valid JSON-RPC 2.0 message). A line that fails is never forwarded: each request id a lenient
reading finds gets an error (-32700 / -32600, in one array if several); a lone notification or a
lone response (no method, an id) is dropped with a line on stderr; anything else gets one error
with id null. Blank lines are dropped silently.

The generator knows what each frame it builds is (a call to which tool, with which defect), so it
also knows what the guard must do with it; the checks compare the guard against that and against
three invariants that need no model at all:

(a) the upstream never receives a ``tools/call`` whose name the policy refuses, under a first-wins
    or a last-wins reading of duplicate keys, at the top level or as an element of a batch; and
    every line it receives is one JSON-RPC message (or a flat batch) that parses strictly;
(b) every request gets exactly one answer, from the guard or the upstream;
(c) the guard never crashes: it is alive after every example, writes no "internal error" or
    traceback, and exits 0 when its stdin closes.

``OPEN_GUARD_BUGS`` names guard defects this suite found that are not fixed yet: while a name is
in it, the generator leaves out the inputs that trigger the defect (each open one has a strict
xfail example test below). Remove the name once the guard is fixed.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from conftest import (
    MODERN_META,
    PYTHON,
    ROOT,
    RawSession,
    guard_command,
    isolated_env,
    without_start_line,
    write_policy,
)
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

BATCH_RECORDER = ROOT / "tests" / "servers" / "batch_recorder.py"
ALLOWED, DENIED, HIDDEN = "allowed_tool", "denied_tool", "hidden_tool"
POLICY: dict[str, Any] = {
    "version": "1",
    "default": "deny",
    "hide": [HIDDEN],
    "tools": {ALLOWED: {}, DENIED: {"action": "deny"}},
}
PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS = -32700, -32600, -32602
BOM = b"\xef\xbb\xbf"
MAX_EXACT = 2**53
DEEP = 100_000  # beyond any Python json parser's depth (3.10's 1000 frames up to 3.14's stack checks)
DROPPED = "a message from the client was dropped (not forwarded)"

# "params-case-null": a lone request whose params hold a member in another case ({"NAME": ...}
#   without "name") gets its error with id null, so the request itself is never answered.
# "response-id": a lone client response with an envelope member in another case ("Result") gets an
#   error addressed to the response's id, which the client may take for the answer to its own
#   request with that id (instead of being dropped).
# "lone-shape-answered": a lone notification or response that parses but is not valid JSON-RPC
#   (no "jsonrpc", a member in another case) gets an error with id null instead of being dropped.
# Fixed, kept so a regression can be fenced off while it is being fixed:
# "batch-leak": a batch whose refused elements are only notifications (a tools/call without id, a
#   notifications/cancelled for a refused id) is forwarded whole, refused call included.
# "unhashable-id": a request whose id is an object or array kills the guard.
OPEN_GUARD_BUGS: frozenset[str] = frozenset()
# --- a JSON syntax tree that can say what json.dumps cannot -------------------------------------------


@dataclass
class Obj:
    """A JSON object as ordered pairs: duplicate keys allowed. Keys are ``str`` or :class:`Str`."""

    pairs: list[tuple[Any, Any]]


@dataclass(frozen=True)
class Str:
    """A string and how each character is spelled: 0 as is, 1 ``\\uxxxx``, 2 ``\\uXXXX``, 3 ``\\/`` (for ``/``)."""

    value: str
    spelling: tuple[int, ...] = ()


@dataclass(frozen=True)
class Raw:
    """Bytes written as they are: NaN, out-of-range numbers, invalid UTF-8, junk."""

    text: bytes


@dataclass(frozen=True)
class Deep:
    """``depth`` nested arrays (kept symbolic so hypothesis's reports stay short)."""

    depth: int


@dataclass(frozen=True)
class Id:
    """A request id, filled in with a fresh value when the example runs (ids are unique module-wide)."""

    slot: int
    kind: Literal["int", "str", "object"] = "int"


IdValues = Callable[[Id], Any]


def _spell(text: Str) -> bytes:
    out: list[str] = []
    for index, char in enumerate(text.value):
        mode = text.spelling[index] if index < len(text.spelling) else 0
        if mode == 0:
            out.append(json.dumps(char, ensure_ascii=False)[1:-1])
        elif mode == 3 and char == "/":
            out.append("\\/")
        else:
            units = char.encode("utf-16-be")
            for i in range(0, len(units), 2):
                hex4 = units[i : i + 2].hex()
                out.append("\\u" + (hex4.upper() if mode == 2 else hex4))
    return ('"' + "".join(out) + '"').encode()


def render(value: Any, ids: IdValues, spaced: bool = False) -> bytes:
    comma, colon = (b", ", b": ") if spaced else (b",", b":")
    if value is None:
        return b"null"
    if value is True:
        return b"true"
    if value is False:
        return b"false"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return repr(value).encode()
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).encode()
    if isinstance(value, Str):
        return _spell(value)
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Deep):
        return b"[" * value.depth + b"]" * value.depth
    if isinstance(value, Id):
        return json.dumps(ids(value), separators=(",", ":")).encode()
    if isinstance(value, dict):
        return render(Obj(list(value.items())), ids, spaced)
    if isinstance(value, Obj):
        inner = comma.join(render(k, ids, spaced) + colon + render(v, ids, spaced) for k, v in value.pairs)
        return b"{" + inner + b"}"
    if isinstance(value, list):
        return b"[" + comma.join(render(v, ids, spaced) for v in value) + b"]"
    raise TypeError(f"cannot render {value!r}")


# --- what a frame must lead to -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """The answer a request must get: from the upstream, or the guard's error / refusal."""

    kind: Literal["upstream", "error", "violation", "unknown"]
    code: int = 0
    text: str | None = None  # an error's message holds this
    tool: str | None = None
    rule_kind: str | None = None
    modern: bool = False
    task: bool = False  # a task-augmented call: its refusal is a JSON-RPC error


UPSTREAM = Outcome("upstream")


@dataclass
class Frame:
    """One line the client sends, and what must follow from it."""

    parts: list[Any]
    ending: bytes = b"\n"
    spaced: bool = False
    answers: list[tuple[Id, Outcome]] = field(default_factory=list)  # an id twice: two requests share it
    null_errors: list[int] = field(default_factory=list)  # codes of id-null errors the guard must write
    dropped: bool = False  # refused without an answer, and reported on stderr
    relay: Literal["verbatim", "none", "subset"] = "verbatim"
    kept: list[Any] = field(default_factory=list)  # for "subset": the batch elements the upstream gets
    batch: bool = False
    array: bool = False  # the answers come in one array
    label: str = ""

    def line(self, ids: IdValues) -> bytes:
        return b"".join(render(part, ids, self.spaced) for part in self.parts) + self.ending


ElementKind = Literal["request", "notification", "response", "junk"]

# Why a message that parses is still not valid JSON-RPC, in the order the guard checks, and what its
# error message says then.
DEFECTS = {
    "junk-batch": "is itself a batch",
    "junk-value": "is not a JSON-RPC message",
    "envelope-case": "in another case",
    "no-jsonrpc": 'lacks "jsonrpc": "2.0"',
    "bad-params": "params is not an object",
    "params-case": "in another case",
    "object-id": "the request id must be a string or an integer",
}


@dataclass
class Element:
    """One generated JSON-RPC message, before it becomes a frame or a batch element."""

    ast: Any
    kind: ElementKind
    ident: Id | None = None  # set for requests
    outcome: Outcome | None = None  # the answer a request must get when judged cleanly
    forwarded: bool = True  # relayed when judged cleanly
    is_call: bool = False  # method is tools/call
    label: str = ""
    defects: set[str] = field(default_factory=set)  # keys of DEFECTS
    # mutable parts, for hostile edits
    envelope: list[tuple[Any, Any]] | None = None
    params: list[tuple[Any, Any]] | None = None
    arguments: list[tuple[Any, Any]] | None = None
    has_name: bool = False


def first_defect(el: Element) -> str:
    return next(text for name, text in DEFECTS.items() if name in el.defects)


@dataclass(frozen=True)
class Defect:
    """Why a frame fails the strict parse: the error code and what the message says."""

    name: str
    code: int
    text: str


@dataclass
class Ctx:
    """What the frames drawn so far did, for the ones drawn next (cancellations need it)."""

    slots: int = 0
    requests: list[Id] = field(default_factory=list)
    refused: set[int] = field(default_factory=set)  # slots the policy refused (the guard remembers them)
    cancelled: set[int] = field(default_factory=set)
    # Drawing a batch's elements: 2026-07-28 calls have no batches (the guard refuses a batch carrying
    # that version whole, tested in test_session.py), so none is drawn into one.
    in_batch: bool = False

    def new_id(self, kind: Literal["int", "str", "object"]) -> Id:
        ident = Id(self.slots, kind)
        self.slots += 1
        self.requests.append(ident)
        return ident


# --- strategies ------------------------------------------------------------------------------------------

TRICKY_STRINGS = ["tools/call", "tools\\/call", "\\", '"', "\u2028", "é☃", "\r\n", "\x00", "\ud7ff\ue000", "𝄞"]
UNLISTED_NAMES = [
    "Allowed_tool",
    "allowed_tool ",
    " allowed_tool",
    "allowed_tool\x00",
    "allowed-tool",
    "allowed_tool/x",
    "allowed_tooł",
    "denied_tool\u200b",
    "ALLOWED_TOOL",
    "",
    "*",
]
NON_CALL_METHODS = [
    "ping",
    "tools/list",
    "resources/list",
    "resources/read",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "initialize",
    "server/discover",
    "tasks/get",
    "tools/calls",
    "Tools/call",
    "tools/call/",
    " tools/call",
]
NOTIFICATION_METHODS = [
    "notifications/initialized",
    "notifications/progress",
    "notifications/roots/list_changed",
    "notifications/message",
]
# Members that SDKs bind to typed fields (the envelope, and params as MCP defines them): Go's
# encoding/json matches them in any case. Random keys keep clear of them; "case-alone" spells one in
# another case on purpose.
MEMBERS = [
    *("jsonrpc", "id", "method", "params", "result", "error"),
    *("name", "arguments", "_meta", "task", "requestState", "inputResponses", "requestId", "reason", "uri"),
    *("cursor", "protocolVersion", "capabilities", "clientInfo", "progressToken", "ref", "argument", "level"),
]
MEMBER_FOLDS = frozenset(member.casefold() for member in MEMBERS)
CASE_ALONE = {
    "name": ["Name", "NAME"],
    "arguments": ["Arguments", "argument\u017f"],  # LONG S folds to s
    "task": ["Task", "tas\u212a"],  # KELVIN SIGN folds to k
    "_meta": ["_Meta"],
    "result": ["Result"],
    "error": ["ERROR"],
}
DUPLICATES = ["dup-envelope", "dup-method", "dup-params", "dup-name", "dup-arguments"]
VALUES = ["nan", "huge", "float-overflow", "bad-utf8", "deep", "cr"]
SHAPES = ["case-alone", "no-jsonrpc"]
MUTATIONS = [*DUPLICATES, *VALUES, "bom", "case-dup", *SHAPES]
VALUE_DEFECTS = {
    "nan": (PARSE_ERROR, "is not valid JSON"),
    "huge": (INVALID_REQUEST, "is outside ±2^53"),
    "float-overflow": (INVALID_REQUEST, "is too large for a double-precision float"),
    "bad-utf8": (PARSE_ERROR, "is not valid UTF-8"),
    "deep": (INVALID_REQUEST, "is nested too deeply"),
    "cr": (PARSE_ERROR, "carriage return (CR)"),
}
BOM_DEFECT = Defect("bom", PARSE_ERROR, "byte-order mark")
NEEDS_OBJECT = "tools/call params.arguments must be an object"
NEEDS_NAME = "tools/call params.name must be a string"
NEEDS_PARAMS = "tools/call needs a params object"
SHAPE_ERRORS = {
    "no-params": NEEDS_PARAMS,
    "no-name": NEEDS_NAME,
    "bad-name": NEEDS_NAME,
    "bad-arguments": NEEDS_OBJECT,
}

NOT_SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
CHARACTERS = st.characters(exclude_categories=NOT_SURROGATES)
keys = st.text(CHARACTERS, max_size=6).filter(lambda key: key.casefold() not in MEMBER_FOLDS)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-MAX_EXACT, MAX_EXACT)
    | st.sampled_from([MAX_EXACT, -MAX_EXACT, 5e-324, 1.7976931348623157e308])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(CHARACTERS, max_size=8)
    | st.sampled_from(TRICKY_STRINGS)
)


def distinct_folds(obj: dict[str, Any]) -> bool:
    """No two keys the same under case folding (those are a defect, added on purpose by "case-dup")."""
    return len({key.casefold() for key in obj}) == len(obj)


def objects_of(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Obj]:
    return st.dictionaries(keys, children, max_size=3).filter(distinct_folds).map(lambda d: Obj(list(d.items())))


values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=3) | objects_of(kids), max_leaves=6)
objects = objects_of(values)
non_objects = st.sampled_from([[], [1], "x", 7, True, None])
hostile_values = {
    "nan": st.sampled_from([b"NaN", b"Infinity", b"-Infinity"]).map(Raw),
    "huge": st.one_of(
        st.sampled_from([MAX_EXACT + 1, -(MAX_EXACT + 1), 2**64, -(2**63) * 3]),
        st.integers(17, 300).map(lambda n: int("9" * n)),
    ).map(lambda n: Raw(str(n).encode())),
    "float-overflow": st.sampled_from([b"1e400", b"-1E309", b"1.8e308", b"2.5e+999"]).map(Raw),
    "bad-utf8": st.sampled_from(
        [b'"\xff"', b'"a\xc3("', b'"\xed\xa0\x80"', b'"\xc0\xaf"', b'"\xf8\x88\x80\x80\x80"']
    ).map(Raw),
    "deep": st.just(Deep(DEEP)),
    # Python's and Node's readers end a line there: in a string, or as whitespace between tokens.
    "cr": st.sampled_from([b'"a\rb"', b'"\r"', b"\r0", b"[\r]", b"0\r"]).map(Raw),
}


def spelled(draw: st.DrawFn, text: str, rate: int = 3) -> Str:
    """``text`` with some characters escaped (roughly one frame in ``rate`` gets escapes at all)."""
    if draw(st.integers(0, rate - 1)) != 0:
        return Str(text)
    modes = draw(st.lists(st.sampled_from([0, 0, 1, 2, 3]), min_size=len(text), max_size=len(text)))
    return Str(text, tuple(modes))


def shuffled(draw: st.DrawFn, pairs: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    return list(draw(st.permutations(pairs))) if pairs else []


def request_id(draw: st.DrawFn, ctx: Ctx) -> Id:
    # An object id refuses the whole frame (a batch too): rare enough that most batches are judged.
    kinds: list[Literal["int", "str", "object"]] = ["int"] * 3 + ["str"] * 3
    if "unhashable-id" not in OPEN_GUARD_BUGS:
        kinds.append("object")
    return ctx.new_id(draw(st.sampled_from(kinds)))


def call_element(draw: st.DrawFn, ctx: Ctx) -> Element:
    name = draw(st.sampled_from([ALLOWED, DENIED, HIDDEN, "unlisted"]))
    if name == "unlisted":
        name = draw(
            st.sampled_from(UNLISTED_NAMES)
            | st.text(CHARACTERS, max_size=12).filter(lambda s: s not in (ALLOWED, DENIED, HIDDEN))
        )
    shape = draw(
        st.sampled_from(
            ["ok"] * 8 + ["no-params", "bad-params", "no-name", "bad-name", "bad-arguments", "null-arguments"]
        )
    )
    meta = draw(st.sampled_from([None, None, "progress"] + ([] if ctx.in_batch else ["modern"])))
    is_request = draw(st.integers(0, 7)) != 0
    ident = request_id(draw, ctx) if is_request else None

    params: list[tuple[Any, Any]] | None = None
    arguments: list[tuple[Any, Any]] | None = None
    has_name = False
    task = False
    if shape not in ("no-params", "bad-params"):
        params = []
        if shape == "bad-name":
            params.append((spelled(draw, "name"), draw(st.sampled_from([[], ["x"], 7, 1.5, True, None]) | objects)))
            has_name = True
        elif shape != "no-name":
            params.append((spelled(draw, "name"), spelled(draw, name, rate=2)))
            has_name = True
        if shape == "bad-arguments":
            params.append(("arguments", draw(st.sampled_from([[], [1], "x", 7, True]))))
        elif shape == "null-arguments":
            params.append(("arguments", None))
        elif draw(st.booleans()):
            arguments = draw(objects).pairs
            params.append((spelled(draw, "arguments"), Obj(arguments)))
        if meta == "progress":
            params.append(("_meta", Obj([("progressToken", draw(st.integers(0, 99)))])))
        elif meta == "modern":
            params.append(("_meta", Obj(list(MODERN_META.items()))))
        if draw(st.integers(0, 4)) == 0:  # a task-augmented call (2025-11-25 tasks)
            params.append(("task", Obj([("ttl", 60000)])))
            task = True
        params = shuffled(draw, params)

    envelope: list[tuple[Any, Any]] = [
        ("jsonrpc", "2.0"),
        (spelled(draw, "method"), spelled(draw, "tools/call", rate=2)),
    ]
    if ident is not None:
        envelope.append(("id", ident))
    if params is not None:
        envelope.append(("params", Obj(params)))
    elif shape == "bad-params":
        envelope.append(("params", draw(non_objects)))
    envelope = shuffled(draw, envelope)

    modern = meta == "modern"
    if shape in SHAPE_ERRORS:
        outcome = Outcome("error", INVALID_PARAMS, SHAPE_ERRORS[shape])
    elif name == ALLOWED:
        outcome = UPSTREAM
    else:
        # Under default deny a hidden tool is answered like any tool the policy does not name.
        kind = "deny" if name == DENIED else "default_deny"
        outcome = Outcome("violation", tool=name, rule_kind=kind, modern=modern, task=task)
    defects = {"bad-params"} if shape == "bad-params" else set()
    if ident is not None and ident.kind == "object":
        defects.add("object-id")
    if ident is not None and outcome.kind in ("violation", "unknown") and not defects:
        ctx.refused.add(ident.slot)
    return Element(
        ast=Obj(envelope),
        kind="request" if ident is not None else "notification",
        ident=ident,
        outcome=outcome if ident is not None else None,
        forwarded=outcome == UPSTREAM,
        is_call=True,
        label=f"call {name!r} ({shape}, meta={meta}, {'request' if ident else 'notification'})",
        defects=defects,
        envelope=envelope,
        params=params,
        arguments=arguments,
        has_name=has_name,
    )


def other_element(draw: st.DrawFn, ctx: Ctx, kind: str) -> Element:
    """A request, a notification, a cancellation or a client's answer: never a tools/call."""
    envelope: list[tuple[Any, Any]] = [("jsonrpc", "2.0")]
    params: list[tuple[Any, Any]] | None = None
    ident: Id | None = None
    if kind == "cancel":
        target: Id | None = None
        aimed: bool = draw(st.booleans())
        if aimed and ctx.requests:
            target = draw(st.sampled_from(ctx.requests))
        request = target if target is not None else Id(-1)  # -1: an id nobody used
        envelope += [("method", "notifications/cancelled"), ("params", Obj([("requestId", request)]))]
        dropped = target is not None and target.slot in ctx.refused and target.slot not in ctx.cancelled
        if dropped and target is not None:
            ctx.cancelled.add(target.slot)
        ast = Obj(shuffled(draw, envelope))
        return Element(ast, "notification", forwarded=not dropped, label=f"cancel (dropped={dropped})")
    if kind == "response":
        envelope.append(("id", f"srv-{draw(st.integers(0, 9))}"))
        body = draw(objects) if draw(st.booleans()) else Obj([("code", -1), ("message", "no")])
        envelope.append(("result" if "code" not in dict(body.pairs) else "error", body))
        envelope = shuffled(draw, envelope)
        return Element(Obj(envelope), "response", label="client response", envelope=envelope, params=body.pairs)
    method = draw(st.sampled_from(NON_CALL_METHODS if kind == "request" else NOTIFICATION_METHODS))
    envelope.append((spelled(draw, "method"), spelled(draw, method)))
    defects = set()
    if kind == "request":
        ident = request_id(draw, ctx)
        envelope.append(("id", ident))
        if ident.kind == "object":
            defects.add("object-id")
    if draw(st.booleans()):
        params = draw(objects).pairs
        envelope.append(("params", Obj(params)))
    envelope = shuffled(draw, envelope)
    return Element(
        Obj(envelope),
        "request" if kind == "request" else "notification",
        ident=ident,
        outcome=UPSTREAM if ident is not None else None,
        label=f"{kind} {method!r}",
        defects=defects,
        envelope=envelope,
        params=params,
    )


def junk_element(draw: st.DrawFn) -> Element:
    value = draw(st.sampled_from([1, "x", None, [], Obj([]), [1, [2]], "tools/call"]))
    defect = "junk-batch" if isinstance(value, list) else "no-jsonrpc" if isinstance(value, Obj) else "junk-value"
    return Element(value, "junk", label="junk element", defects={defect})


def element(draw: st.DrawFn, ctx: Ctx, kinds: Sequence[str]) -> Element:
    kind = draw(st.sampled_from(kinds))
    if kind == "call":
        return call_element(draw, ctx)
    if kind == "junk":
        return junk_element(draw)
    return other_element(draw, ctx, kind)


def insert(draw: st.DrawFn, pairs: list[tuple[Any, Any]], *new: tuple[Any, Any]) -> None:
    for pair in new:
        pairs.insert(draw(st.integers(0, len(pairs))), pair)


def duplicate_key(key: str) -> Defect:
    return Defect("dup", INVALID_REQUEST, f"duplicate key {key!r}")


def mutate(draw: st.DrawFn, el: Element, mutation: str) -> Defect | None:
    """Give ``el`` one defect in place: one of syntax (returned: the frame fails the strict parse) or one of
    shape (added to ``el.defects``). A mutation the element has no place for falls back to another."""
    assert el.envelope is not None
    if mutation == "dup-method" and any(_key(k) == "method" for k, _ in el.envelope):
        other = Str("ping") if el.is_call else spelled(draw, "tools/call", rate=2)
        insert(draw, el.envelope, (spelled(draw, "method"), other))
        return duplicate_key("method")
    if mutation == "dup-params" and any(_key(k) == "params" for k, _ in el.envelope):
        other_name = DENIED if draw(st.booleans()) else ALLOWED
        insert(draw, el.envelope, ("params", Obj([("name", other_name)])))
        return duplicate_key("params")
    if mutation == "dup-name" and el.params is not None:
        names = [("name", ALLOWED)] if el.has_name else [("name", ALLOWED), ("name", DENIED)]
        insert(draw, el.params, *names)
        return duplicate_key("name")
    if mutation == "dup-arguments" and (el.arguments is not None or el.params is not None):
        target = el.arguments if el.arguments is not None else el.params
        assert target is not None
        insert(draw, target, ("x", 1), ("x", 2))
        return duplicate_key("x")
    if mutation in VALUES:
        targets = [t for t in (el.envelope, el.params, el.arguments) if t is not None]
        target = draw(st.sampled_from(targets))
        insert(draw, target, ("hostile", draw(hostile_values[mutation])))
        return Defect(mutation, *VALUE_DEFECTS[mutation])
    if mutation == "bom":
        return BOM_DEFECT
    if mutation == "no-jsonrpc":
        el.envelope[:] = [(k, v) for k, v in el.envelope if _key(k) != "jsonrpc"]
        el.defects.add("no-jsonrpc")
        return None
    if mutation == "case-alone" and spell_in_another_case(draw, el):
        return None
    if mutation in ("case-dup", "case-alone"):
        return add_case_variant(draw, el)
    insert(draw, el.envelope, ("jsonrpc", "2.0"))
    return duplicate_key("jsonrpc")


def spell_in_another_case(draw: st.DrawFn, el: Element) -> bool:
    """Give one member a spelling only case-folding readers (Go's encoding/json) take for it; False if
    the element has no place for that (no params object)."""
    assert el.envelope is not None
    if el.kind == "response":
        pairs, defect = el.envelope, "envelope-case"
    elif el.params is not None:
        pairs, defect = el.params, "params-case"
    else:
        return False
    present = [index for index, (key, _) in enumerate(pairs) if _key(key) in CASE_ALONE]
    if present:
        index = draw(st.sampled_from(present))
        key, value = pairs[index]
        pairs[index] = (draw(st.sampled_from(CASE_ALONE[_key(key)])), value)
    else:
        insert(draw, pairs, (draw(st.sampled_from(["Cursor", "URI", "tas\u212a"])), "x"))
    el.defects.add(defect)
    return True


def case_variants(key: str) -> list[str]:
    """Other spellings of ``key`` that fold to the same key."""
    spellings = {key.upper(), key.capitalize(), key.swapcase(), key.replace("k", "\u212a"), key.replace("s", "\u017f")}
    return sorted(s for s in spellings if s != key and s.casefold() == key.casefold())


def add_case_variant(draw: st.DrawFn, el: Element) -> Defect:
    """Add a key next to one that differs from it only in case."""
    places = [
        (pairs, _key(key))
        for pairs in (el.envelope, el.params, el.arguments)
        if pairs is not None
        for key, _ in pairs
        if case_variants(_key(key))
    ]
    pairs, key = draw(st.sampled_from(places))
    insert(draw, pairs, (draw(st.sampled_from(case_variants(key))), draw(st.sampled_from([ALLOWED, DENIED, 1]))))
    return Defect("case-dup", INVALID_REQUEST, "differ only in case")


def _key(key: Any) -> str:
    return key.value if isinstance(key, Str) else str(key)


def open_bug(el: Element, mutation: str) -> str | None:
    """The open guard bug (if any) that refusing ``el`` alone with ``mutation`` runs into."""
    if mutation == "no-jsonrpc" and el.kind == "response":
        return "lone-shape-answered"
    if mutation != "case-alone":
        return None
    if el.kind == "response":
        return "response-id"
    if el.params is None:
        return None  # falls back to case-dup
    if el.kind == "notification":
        return "lone-shape-answered"
    if el.ident is not None and el.ident.kind != "object":
        return "params-case-null"
    return None


def refuse_lone(frame: Frame, el: Element, code: int, text: str, readable: bool) -> None:
    """A lone message the guard refuses: its request id gets the error; a notification or a response is
    dropped; anything else (unreadable, no usable id) gets one error with id null."""
    frame.relay = "none"
    if not readable:
        frame.null_errors.append(code)
    elif el.kind in ("notification", "response"):
        frame.dropped = True
    elif el.ident is not None and el.ident.kind != "object":
        frame.answers.append((el.ident, Outcome("error", code, text)))
    else:
        frame.null_errors.append(code)


@st.composite
def single_frame(draw: st.DrawFn, ctx: Ctx) -> Frame:
    kind = draw(
        st.sampled_from(["call"] * 5 + ["request"] * 2 + ["notification", "cancel", "response", "junk", "blank"])
    )
    ending = draw(st.sampled_from([b"\n", b"\n", b"\r\n"]))
    prefix = draw(st.sampled_from([b"", b"", b"", b" ", b"\t "]))
    if kind == "blank":
        blank = Raw(draw(st.sampled_from([b"", b" ", b"\t", b"  "])))
        return Frame([blank], ending, relay="none", label="blank line")
    if kind == "junk":
        return draw(junk_frame())
    snapshot = (set(ctx.refused), set(ctx.cancelled))
    el = element(draw, ctx, [kind])
    mutation = draw(st.sampled_from([None] * 12 + MUTATIONS)) if kind != "cancel" else None
    if mutation is not None and open_bug(el, mutation) in OPEN_GUARD_BUGS:
        mutation = "case-dup"
    defect = mutate(draw, el, mutation) if mutation is not None else None
    parts: list[Any] = [Raw(BOM)] if defect is BOM_DEFECT else []
    label = el.label + (f" + {defect.name if defect is not None else mutation}" if mutation is not None else "")
    frame = Frame([*parts, Raw(prefix), el.ast], ending, draw(st.booleans()), label=label)
    if defect is None and not el.defects:
        if el.ident is not None and el.outcome is not None:
            frame.answers.append((el.ident, el.outcome))
        frame.relay = "verbatim" if el.forwarded else "none"
        return frame
    # Refused before it was judged: what the clean element did to ctx did not happen.
    ctx.refused, ctx.cancelled = snapshot
    if defect is not None:
        refuse_lone(frame, el, defect.code, defect.text, readable=defect.name != "deep")
    else:
        refuse_lone(frame, el, INVALID_REQUEST, first_defect(el), readable=True)
    return frame


# Lines that are not one JSON-RPC message (None: they read as a notification or a response, dropped).
JUNK: list[tuple[bytes, int | None]] = [
    (b"42", INVALID_REQUEST),
    (b"null", INVALID_REQUEST),
    (b'"tools/call"', INVALID_REQUEST),
    (b"{}", INVALID_REQUEST),
    (b"not json", PARSE_ERROR),
    (b"[1,2]", INVALID_REQUEST),
    (b"[[1],{}]", INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","method":"tools/call","params":{"name":"denied_tool"}', PARSE_ERROR),  # truncated call
    (b'{"jsonrpc":"2.0","id":0,"method":"ping"', PARSE_ERROR),  # truncated ping: its id cannot be read
    (b'{"jsonrpc":"2.0","method":"ping"} {"jsonrpc":"2.0","method":"ping"}', PARSE_ERROR),
    (b'{"jsonrpc":"2.0","method":"notifications/initialized"}\r{"jsonrpc":"2.0","method":"ping"}', PARSE_ERROR),
    (b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}', INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"denied_tool"}}', INVALID_REQUEST),
    (b'[{"jsonrpc":"2.0","method":"tools/call","params":{"name":"denied_tool"},"x":NaN}]', PARSE_ERROR),
    (b'{"jsonrpc":"2.0","method":"notifications/progress","params":[1]}', None),
    (b'{"jsonrpc":"2.0","method":"notifications/initialized","x":1e999}', None),
    (b'{"jsonrpc":"2.0","id":"srv-junk","result":{},"x":NaN}', None),
]


@st.composite
def junk_frame(draw: st.DrawFn) -> Frame:
    text, code = draw(st.sampled_from(JUNK))
    frame = Frame([Raw(text)], relay="none", label=f"junk {text[:50]!r}")
    if code is None:
        frame.dropped = True
    else:
        frame.null_errors.append(code)
    return frame


def reuse_an_id(draw: st.DrawFn, ctx: Ctx, elements: list[Element]) -> None:
    """Add a ping with the id of a request earlier in the batch: it is refused, the first one is not."""
    requests = [index for index, e in enumerate(elements) if e.kind == "request"]
    if not requests:
        elements.append(other_element(draw, ctx, "request"))
        requests = [len(elements) - 1]
    index = draw(st.sampled_from(requests))
    ident = elements[index].ident
    assert ident is not None
    copy = Element(
        Obj([("jsonrpc", "2.0"), ("id", ident), ("method", "ping")]),
        "request",
        ident,
        Outcome("error", INVALID_REQUEST, "appears twice in the batch"),
        forwarded=False,
        label="ping reusing an id",
        defects={"object-id"} if ident.kind == "object" else set(),
    )
    elements.insert(draw(st.integers(index + 1, len(elements))), copy)


@st.composite
def batch_frame(draw: st.DrawFn, ctx: Ctx) -> Frame:
    hostility = draw(
        st.sampled_from(
            [None] * 16 + ["empty", "reused-id", "dup-envelope", "dup-method", "case-dup"] + SHAPES + VALUES + ["bom"]
        )
    )
    prefix = draw(st.sampled_from([b"", b"", b" ", b"\t"]))
    spaced = draw(st.booleans())
    if hostility == "empty":
        empty = Raw(prefix + b"[" + draw(st.sampled_from([b"", b" "])) + b"]")
        return Frame([empty], null_errors=[INVALID_REQUEST], relay="none", batch=True, label="empty batch")
    snapshot = (set(ctx.refused), set(ctx.cancelled))
    kinds = ["call"] * 4 + ["request"] * 3 + ["notification", "cancel", "response", "junk"]
    ctx.in_batch = True
    elements = [element(draw, ctx, kinds) for _ in range(draw(st.integers(1, 6)))]
    ctx.in_batch = False
    label = "batch of " + ", ".join(e.label for e in elements) + (f" + {hostility}" if hostility else "")
    defect: Defect | None = None
    if hostility == "reused-id":
        reuse_an_id(draw, ctx, elements)
    elif hostility == "bom":
        defect = BOM_DEFECT
    elif hostility is not None:
        candidates = [e for e in elements if e.envelope is not None]
        if not candidates:
            candidates = [other_element(draw, ctx, "request")]
            elements.append(candidates[0])
        defect = mutate(draw, draw(st.sampled_from(candidates)), hostility)
    parts: list[Any] = [Raw(BOM)] if defect is BOM_DEFECT else []
    frame = Frame([*parts, Raw(prefix), elements_ast(elements)], spaced=spaced, batch=True, label=label)
    defective = [e for e in elements if e.defects]
    if defect is None and not defective:
        judge_batch(ctx, frame, elements)
        return frame

    # Refused whole: one error per request id it holds (in an array if several), else one with id null.
    ctx.refused, ctx.cancelled = snapshot
    code, text = (defect.code, defect.text) if defect is not None else (INVALID_REQUEST, first_defect(defective[0]))
    requests = [e.ident for e in elements if e.kind == "request" and e.ident is not None and e.ident.kind != "object"]
    frame.relay = "none"
    if requests and (defect is None or defect.name != "deep"):
        frame.answers = [(ident, Outcome("error", code, text)) for ident in requests]
        frame.array = True  # a batch is answered with an array, whatever it holds
    else:
        frame.null_errors.append(code)
    return frame


def judge_batch(ctx: Ctx, frame: Frame, elements: list[Element]) -> None:
    """A batch the guard reads: each element judged on its own, the answers in one array."""
    answers = [(e.ident, e.outcome) for e in elements if e.ident is not None and e.outcome is not None]
    guard_answers = any(outcome.kind != "upstream" for _, outcome in answers)
    swallowed = [e for e in elements if not e.forwarded]
    frame.answers, frame.array = answers, True
    if swallowed and not guard_answers and "batch-leak" in OPEN_GUARD_BUGS:
        if any(e.is_call for e in swallowed):
            # Avoid the open bug (the refused call would be relayed): give the guard something to answer.
            denied = call_to(ctx, DENIED)
            assert denied.ident is not None and denied.outcome is not None
            elements.append(denied)
            answers.append((denied.ident, denied.outcome))
            frame.parts[-1] = elements_ast(elements)
        else:
            return  # only dropped cancellations: the guard relays the batch unchanged
    kept = [e.ast for e in elements if e.forwarded]
    if not swallowed:
        frame.relay = "verbatim"
    elif kept:
        frame.relay, frame.kept = "subset", kept
    else:
        frame.relay = "none"


def call_to(ctx: Ctx, name: str) -> Element:
    ident = ctx.new_id("int")
    envelope: list[tuple[Any, Any]] = [
        ("jsonrpc", "2.0"),
        ("id", ident),
        ("method", "tools/call"),
        ("params", Obj([("name", name)])),
    ]
    outcome = Outcome("violation", tool=name, rule_kind="deny")
    ctx.refused.add(ident.slot)
    return Element(Obj(envelope), "request", ident, outcome, forwarded=False, is_call=True, label=f"call {name!r}")


def elements_ast(elements: list[Element]) -> list[Any]:
    return [e.ast for e in elements]


@st.composite
def scripts(draw: st.DrawFn) -> list[Frame]:
    ctx = Ctx()
    frames: list[Frame] = []
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.integers(0, 3)) == 0:
            frames.append(draw(batch_frame(ctx)))
        else:
            frames.append(draw(single_frame(ctx)))
    return frames


# --- the guard under test --------------------------------------------------------------------------------


class GuardUnderTest:
    """One guard + batch recorder for many examples; restarted (and the example failed) if it dies."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.policy = write_policy(directory, POLICY)
        self.env = isolated_env(directory)
        self.record = directory / "received.jsonl"
        self.record.write_bytes(b"")
        self.offset = 0
        self.counter = itertools.count(1)
        self.session = self._start()
        self.drops = 0  # stderr lines so far saying a client message was dropped

    def _start(self) -> RawSession:
        argv = [*guard_command(), "--policy", str(self.policy), "--no-reload", "--"]
        return RawSession([*argv, PYTHON, str(BATCH_RECORDER), str(self.record)], self.env)

    def fresh(self, kind: str) -> Any:
        n = next(self.counter)
        return {"int": 1_000_000 + n, "str": f"h-{n}", "object": {"n": n}}[kind]

    def id_values(self) -> IdValues:
        assigned: dict[int, Any] = {}

        def value(ident: Id) -> Any:
            if ident.slot < 0:
                return "nobody-used-this-id"
            if ident.slot not in assigned:
                assigned[ident.slot] = self.fresh(ident.kind)
            return assigned[ident.slot]

        return value

    def exchange(self, lines: Sequence[bytes], timeout: float = 20.0) -> tuple[list[bytes], list[bytes]]:
        """Send ``lines`` and a sentinel ping; what the client read and what the upstream got before it."""
        if self.session.proc.poll() is not None:
            self.session.kill()
            self.session = self._start()
            self.offset = self.record.stat().st_size
            self.drops = 0
        self.new_drops(0)  # drops said before belong to earlier exchanges
        sentinel_id = f"sentinel-{next(self.counter)}"
        sentinel = json.dumps({"jsonrpc": "2.0", "id": sentinel_id, "method": "ping"}).encode() + b"\n"
        stdin = self.session.proc.stdin
        assert stdin is not None
        stdin.write(b"".join(lines) + sentinel)
        stdin.flush()
        client: list[bytes] = []
        while True:
            line = self.session.read_line(timeout)
            message = json.loads(line)
            if isinstance(message, dict) and message.get("id") == sentinel_id and "result" in message:
                break
            client.append(line)
        data = self.record.read_bytes()[self.offset :]
        recorded = [chunk + b"\n" for chunk in data.split(b"\n")[:-1]]
        assert sentinel in recorded, "the sentinel was answered but not recorded"
        cut = recorded.index(sentinel)
        self.offset += sum(len(chunk) for chunk in recorded[: cut + 1])
        return client, recorded[:cut]

    def new_drops(self, expected: int) -> int:
        """How many client messages the guard said it dropped since the last call (waiting for ``expected``)."""
        deadline = time.monotonic() + 5.0
        while True:
            count = self.session.stderr_so_far().count(DROPPED) - self.drops
            if count >= expected or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        self.drops += count
        return count

    def assert_healthy(self) -> None:
        stderr = self.session.stderr_so_far()
        assert self.session.proc.poll() is None, f"the guard exited ({self.session.proc.returncode}):\n{stderr}"
        assert "internal error" not in stderr and "Traceback" not in stderr, stderr

    def finish(self) -> tuple[int, str]:
        return self.session.finish()


@pytest.fixture(scope="module")
def guard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuardUnderTest]:
    under_test = GuardUnderTest(tmp_path_factory.mktemp("hostile"))
    yield under_test
    under_test.session.kill()


# --- checks ---------------------------------------------------------------------------------------------


def first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        result.setdefault(key, value)
    return result


def readings(line: bytes) -> list[Any] | None:
    """Both ways a lenient parser may read ``line`` (last / first duplicate wins), or None if none can."""
    body = line[len(BOM) :] if line.startswith(BOM) else line
    text = body.decode("utf-8", "replace")
    try:
        return [json.loads(text, strict=False), json.loads(text, strict=False, object_pairs_hook=first_wins)]
    except (ValueError, RecursionError):
        return None


def _unique_folds(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    folds = [key.casefold() for key, _ in pairs]
    assert len(set(folds)) == len(folds), f"keys that collide (as they are or under case folding): {folds}"
    return dict(pairs)


def _exact_int(text: str) -> int:
    value = int(text)
    assert -MAX_EXACT <= value <= MAX_EXACT, f"the integer {text[:40]} is beyond ±2^53"
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    assert math.isfinite(value), f"the number {text[:40]} overflows a double"
    return value


def _no_constant(name: str) -> Any:
    raise AssertionError(f"{name} is not JSON")


def assert_forwardable(line: bytes) -> None:
    """Invariants (a) on one line the upstream received: no refused call under any reading, and one
    JSON-RPC message (or a flat batch of them) that parses strictly."""
    read = readings(line)
    assert read is not None, f"upstream got a line no JSON parser reads: {line[:300]!r}"
    for reading in read:
        for message in reading if isinstance(reading, list) else [reading]:
            if not (isinstance(message, dict) and message.get("method") == "tools/call"):
                continue
            params = message.get("params")
            assert isinstance(params, dict), f"upstream got a call without params: {line[:300]!r}"
            assert params.get("name") == ALLOWED, f"upstream got a refused call: {line[:300]!r}"
            assert params.get("arguments") is None or isinstance(params["arguments"], dict), line[:300]
    body = line.removesuffix(b"\n").removesuffix(b"\r")
    where = f"upstream got a frame that is not strict JSON-RPC: {line[:300]!r}"
    assert line.endswith(b"\n") and b"\r" not in body and not body.startswith(BOM), where
    try:
        value = json.loads(
            body.decode("utf-8"),
            object_pairs_hook=_unique_folds,
            parse_int=_exact_int,
            parse_float=_finite_float,
            parse_constant=_no_constant,
        )
    except (ValueError, AssertionError) as exc:
        raise AssertionError(f"{where} ({exc})") from None
    messages = value if isinstance(value, list) else [value]
    assert messages and all(isinstance(m, dict) and m.get("jsonrpc") == "2.0" for m in messages), where


def canonical(ident: Any) -> str:
    return json.dumps(ident, sort_keys=True)


def assert_answer(answer: dict[str, Any], outcome: Outcome, ident: Any, label: str) -> None:
    where = f"answer to {label} (id {ident!r}): {answer}"
    if outcome.kind == "upstream":
        assert answer == {"jsonrpc": "2.0", "id": ident, "result": {"content": [], "isError": False}}, where
        return
    if outcome.kind == "error":
        error = answer.get("error")
        assert isinstance(error, dict) and error.get("code") == outcome.code, where
        assert error["message"].startswith("mcp-guard: "), where
        if outcome.text is not None:
            assert outcome.text in error["message"], f"{where}: the message does not say {outcome.text!r}"
        return
    if outcome.task:
        error = answer.get("error")
        assert isinstance(error, dict) and error.get("code") == -32000, where
        violation = error["data"]["mcp-guard/violation"]
        assert (violation["tool"], violation["kind"]) == (outcome.tool, outcome.rule_kind), where
        return
    result = answer.get("result")
    assert isinstance(result, dict) and result.get("isError") is True, where
    assert (result.get("resultType") == "complete") == outcome.modern, where
    if outcome.kind == "unknown":
        assert result["content"] == [{"type": "text", "text": f"Unknown tool: {outcome.tool}"}], where
        assert "_meta" not in result, where
    else:
        violation = result["_meta"]["mcp-guard/violation"]
        assert (violation["tool"], violation["kind"]) == (outcome.tool, outcome.rule_kind), where


def assert_answers(found: list[dict[str, Any]], wanted: list[tuple[Outcome, Any]], label: str) -> None:
    """``found`` answers the requests that share one id (two when a batch reuses one), in some order."""
    failures: list[str] = []
    for order in itertools.permutations(wanted):
        try:
            for answer, (outcome, ident) in zip(found, order, strict=True):
                assert_answer(answer, outcome, ident, label)
        except AssertionError as exc:
            failures.append(str(exc))
            continue
        return
    raise AssertionError("\n".join(failures))


def check_example(
    frames: Sequence[Frame],
    lines: Sequence[bytes],
    ids: IdValues,
    client: Sequence[bytes],
    recorded: Sequence[bytes],
    drops: int,
) -> None:
    # (a), model-free: nothing the upstream got is a refused call under any reading, or anything but strict.
    for line in recorded:
        assert_forwardable(line)

    # Relaying: exactly the frames (or the parts of batches) the guard must pass on, in order, byte for byte.
    expected: list[bytes | list[Any]] = []
    for frame, line in zip(frames, lines, strict=True):
        if frame.relay == "verbatim":
            expected.append(line)
        elif frame.relay == "subset":
            expected.append([json.loads(render(e, ids)) for e in frame.kept])
    assert len(recorded) == len(expected), (
        f"upstream got {len(recorded)} lines, expected {len(expected)}:\n"
        + "\n".join(repr(r[:200]) for r in recorded)
        + "\nexpected:\n"
        + "\n".join(repr(e if isinstance(e, list) else e[:200]) for e in expected)
    )
    for got, want in zip(recorded, expected, strict=True):
        if isinstance(want, bytes):
            assert got == want, f"relayed frame changed:\n got {got[:300]!r}\nwant {want[:300]!r}"
        else:
            assert got.endswith(b"\n") and json.loads(got) == want, f"relayed batch:\n got {got[:300]!r}\nwant {want}"

    # (b): every readable request answered exactly once, with what its frame calls for; a batch's in one line.
    answers: dict[str, list[tuple[int, bool, dict[str, Any]]]] = {}
    null_codes: list[int] = []
    for index, line in enumerate(client):
        message = json.loads(line)
        items = message if isinstance(message, list) else [message]
        assert items, f"empty array answer {line!r}"
        for item in items:
            assert isinstance(item, dict) and item.get("jsonrpc") == "2.0", line[:300]
            assert ("result" in item) != ("error" in item), line[:300]
            if item.get("id") is None:
                assert "error" in item and item["error"]["message"].startswith("mcp-guard: "), line[:300]
                null_codes.append(item["error"]["code"])
            else:
                answers.setdefault(canonical(item["id"]), []).append((index, isinstance(message, list), item))
    wanted: dict[str, tuple[Frame, list[tuple[Outcome, Any]]]] = {}
    for frame in frames:
        for ident, outcome in frame.answers:
            wanted.setdefault(canonical(ids(ident)), (frame, []))[1].append((outcome, ids(ident)))
    assert sorted(answers) == sorted(wanted), (
        f"answered ids {sorted(answers)} != expected {sorted(wanted)}; frames: {[f.label for f in frames]}"
    )
    for key, found in answers.items():
        frame, outcomes = wanted[key]
        assert len(found) == len(outcomes), f"{len(found)} answers to {len(outcomes)} with id {key}: {frame.label}"
        for _, in_array, _ in found:
            assert in_array == frame.array, f"answer to {frame.label} {'not ' if frame.array else ''}in an array"
        assert_answers([item for _, _, item in found], outcomes, frame.label)
    for frame in frames:
        if frame.batch and frame.answers:
            indices = {index for ident, _ in frame.answers for index, _, _ in answers[canonical(ids(ident))]}
            # The guard's own answers (one array, at once) and the server's: at most two lines.
            assert len(indices) <= 2, f"answers to one batch spread over {len(indices)} lines: {frame.label}"
    assert sorted(null_codes) == sorted(c for f in frames for c in f.null_errors), (
        f"id-null errors {null_codes}; frames: {[(f.label, f.null_errors) for f in frames]}"
    )
    # Dropped messages (notifications, responses) are not answered, but said on stderr.
    assert drops == sum(f.dropped for f in frames), (
        f"{drops} messages reported dropped; frames: {[(f.label, f.dropped) for f in frames]}"
    )


def run_example(guard: GuardUnderTest, frames: Sequence[Frame]) -> None:
    for frame in frames:
        event(frame.label.split(" ")[0] + (" +" + frame.label.rsplit("+", 1)[1] if " + " in frame.label else ""))
    ids = guard.id_values()
    lines = [frame.line(ids) for frame in frames]
    try:
        client, recorded = guard.exchange(lines)
        drops = guard.new_drops(sum(f.dropped for f in frames))
    finally:
        guard.assert_healthy()
    check_example(frames, lines, ids, client, recorded, drops)


# --- the property ---------------------------------------------------------------------------------------


@settings(
    max_examples=150,
    deadline=None,
    phases=[
        Phase.explicit,
        Phase.reuse,
        Phase.generate,
    ],  # no shrinking: too slow
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(frames=scripts())
def test_hostile_frame_sequences(guard: GuardUnderTest, frames: list[Frame]) -> None:
    run_example(guard, frames)


# --- one example per kind of hostility, with exact answers ---------------------------------------------


def send(guard: GuardUnderTest, *lines: bytes) -> tuple[list[Any], list[bytes]]:
    client, recorded = guard.exchange([line if line.endswith(b"\n") else line + b"\n" for line in lines])
    guard.assert_healthy()
    for line in recorded:
        assert_forwardable(line)
    return [json.loads(line) for line in client], recorded


def call(ident: Any, name: Any = ALLOWED, **params: Any) -> bytes:
    frame = {"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": {"name": name, **params}}
    return json.dumps(frame, separators=(",", ":")).encode()


def error(ident: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "error": {"code": code, "message": f"mcp-guard: {message}"}}


def ok(ident: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "result": {"content": [], "isError": False}}


def duplicate(key: str) -> str:
    return f"duplicate key {key!r} in the frame: JSON parsers disagree on which value wins, so the guard refuses it"


HEAD = b'{"jsonrpc":"2.0","id":"d1",'
DUPLICATE_FRAMES = {
    "envelope": (
        b'{"jsonrpc":"2.0","jsonrpc":"2.0","id":"d1","method":"tools/call","params":{"name":"allowed_tool"}}',
        "jsonrpc",
    ),
    "method": (HEAD + b'"method":"tools/call","method":"ping","params":{"name":"denied_tool"}}', "method"),
    "params": (
        HEAD + b'"method":"tools/call","params":{"name":"allowed_tool"},"params":{"name":"denied_tool"}}',
        "params",
    ),
    "name": (HEAD + b'"method":"tools/call","params":{"name":"denied_tool","n\\u0061me":"allowed_tool"}}', "name"),
    "arguments": (HEAD + b'"method":"tools/call","params":{"name":"allowed_tool","arguments":{"p":1,"p":2}}}', "p"),
}


@pytest.mark.parametrize("level", sorted(DUPLICATE_FRAMES))
def test_duplicate_keys_at_every_level(guard: GuardUnderTest, level: str) -> None:
    frame, key = DUPLICATE_FRAMES[level]
    answers, recorded = send(guard, frame)
    assert answers == [error("d1", INVALID_REQUEST, duplicate(key))]
    assert recorded == []


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity(guard: GuardUnderTest, constant: str) -> None:
    frame = b'{"jsonrpc":"2.0","id":"n1","method":"tools/call","params":{"name":"allowed_tool","arguments":{"x":%s}}}'
    answers, recorded = send(guard, frame % constant.encode())
    assert answers == [error("n1", PARSE_ERROR, f"{constant} is not valid JSON")]
    assert recorded == []


@pytest.mark.parametrize("number", [MAX_EXACT + 1, -(MAX_EXACT + 1), 2**64, int("9" * 300)])
def test_integers_beyond_2_53(guard: GuardUnderTest, number: int) -> None:
    answers, recorded = send(guard, call("i1", arguments={"n": number}))
    text = str(number)
    shown = text[:40] + ("…" if len(text) > 40 else "")
    assert answers == [
        error(
            "i1",
            INVALID_REQUEST,
            f"the number {shown} is outside ±2^53, where JSON parsers disagree on its value; send it as a string",
        )
    ]
    assert recorded == []


def test_integers_at_2_53_are_exact_and_relayed(guard: GuardUnderTest) -> None:
    frames = [call("i2", arguments={"n": MAX_EXACT}), call("i3", arguments={"n": -MAX_EXACT})]
    answers, recorded = send(guard, *frames)
    assert answers == [ok("i2"), ok("i3")]
    assert recorded == [frame + b"\n" for frame in frames]


@pytest.mark.parametrize("number", ["1e400", "-1.8E308"])
def test_float_overflow(guard: GuardUnderTest, number: str) -> None:
    frame = b'{"jsonrpc":"2.0","id":"f1","method":"tools/call","params":{"name":"allowed_tool","arguments":{"x":%s}}}'
    answers, recorded = send(guard, frame % number.encode())
    assert answers == [error("f1", INVALID_REQUEST, f"the number {number} is too large for a double-precision float")]
    assert recorded == []


def test_byte_order_mark(guard: GuardUnderTest) -> None:
    answers, recorded = send(guard, BOM + call("b1"))
    message = "the frame starts with a UTF-8 byte-order mark, which JSON-RPC does not allow"
    assert answers == [error("b1", PARSE_ERROR, message)]
    assert recorded == []
    # Any frame: json.loads(bytes) reads a BOM, and UTF-16 and UTF-32 too.
    answers, recorded = send(guard, BOM + b'{"jsonrpc":"2.0","id":"b2","method":"ping"}')
    assert (answers, recorded) == ([error("b2", PARSE_ERROR, message)], [])


@pytest.mark.parametrize("bad", [b"\xff", b"\xc3(", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80"])
def test_invalid_utf8(guard: GuardUnderTest, bad: bytes) -> None:
    frame = call("u1", arguments={"s": "PLACEHOLDER"}).replace(b"PLACEHOLDER", bad)
    answers, recorded = send(guard, frame)
    offset = frame.index(bad)
    assert answers == [error("u1", PARSE_ERROR, f"the frame is not valid UTF-8 (byte {offset})")]
    assert recorded == []


def test_invalid_utf8_in_a_frame_that_is_not_a_call(guard: GuardUnderTest) -> None:
    ping = b'{"jsonrpc":"2.0","id":"u2","method":"ping","params":{"s":"\xff"}}'
    notification = b'{"jsonrpc":"2.0","method":"notifications/initialized","params":{"s":"\xff"}}'
    answers, recorded = send(guard, ping, notification)
    offset = ping.index(b"\xff")
    assert answers == [error("u2", PARSE_ERROR, f"the frame is not valid UTF-8 (byte {offset})")]
    assert recorded == []
    assert guard.new_drops(1) == 1  # the notification: nobody to answer, so said on stderr


def test_nesting_too_deep(guard: GuardUnderTest) -> None:
    nested = b"[" * DEEP + b"]" * DEEP
    frame = call("deep-1", arguments={"x": "PLACEHOLDER"}).replace(b'"PLACEHOLDER"', nested)
    answers, recorded = send(guard, frame)
    assert answers == [error(None, INVALID_REQUEST, "the frame is nested too deeply")]
    assert recorded == []
    # Nesting every reader can take is fine; deeper than the Python SDK reads (about 200) is refused.
    moderate = call("deep-2", arguments={"x": "PLACEHOLDER"}).replace(b'"PLACEHOLDER"', b"[" * 150 + b"]" * 150)
    answers, recorded = send(guard, moderate)
    assert (answers, recorded) == ([ok("deep-2")], [moderate + b"\n"])
    beyond = call("deep-3", arguments={"x": "PLACEHOLDER"}).replace(b'"PLACEHOLDER"', b"[" * 200 + b"]" * 200)
    answers, recorded = send(guard, beyond)
    message = "the frame is nested more than 190 levels deep, beyond what some readers (the Python SDK) read"
    assert (answers, recorded) == ([error("deep-3", INVALID_REQUEST, message)], [])


def test_crlf_line_endings_and_blank_lines(guard: GuardUnderTest) -> None:
    allowed = call("c1") + b"\r\n"
    denied = call("c2", DENIED) + b"\r\n"
    blanks = [b"\n", b"\r\n", b"   \n"]
    answers, recorded = send(guard, blanks[0], allowed, blanks[1], denied, blanks[2])
    by_id = {answer["id"]: answer for answer in answers}
    assert len(answers) == len(by_id) == 2
    assert by_id["c1"] == ok("c1")
    assert by_id["c2"]["result"]["_meta"]["mcp-guard/violation"]["kind"] == "deny"
    assert recorded == [allowed]  # blank lines are dropped, silently
    assert guard.new_drops(0) == 0


M1 = b'{"jsonrpc":"2.0","id":"m1","method":"tools/call"'
MALFORMED_CALLS = {
    "arguments-list": (call("m1", arguments=[1]), NEEDS_OBJECT),
    "arguments-string": (call("m1", arguments="{}"), NEEDS_OBJECT),
    "name-missing": (M1 + b',"params":{}}', NEEDS_NAME),
    "name-number": (call("m1", 7), NEEDS_NAME),
    "name-null": (call("m1", None), NEEDS_NAME),
    "params-missing": (M1 + b"}", NEEDS_PARAMS),
}


def test_unpaired_surrogates_anywhere_are_refused(guard: GuardUnderTest) -> None:
    """Readers disagree on a lone surrogate escape: the Python SDK drops the frame, Go reads U+FFFD."""
    message = (
        "the frame holds an unpaired UTF-16 surrogate escape (\\ud800-\\udfff): readers disagree on it (the "
        "Python SDK drops the frame, Go reads U+FFFD, JavaScript keeps it)"
    )
    for frame in (
        M1 + b',"params":{"name":"allowed_tool\\ud800"}}',
        M1 + b',"params":{"name":"allowed_tool","arguments":{"note":"\\udfff"}}}',
    ):
        answers, recorded = send(guard, frame)
        assert (answers, recorded) == ([error("m1", INVALID_REQUEST, message)], [])


@pytest.mark.parametrize("case", sorted(MALFORMED_CALLS))
def test_malformed_calls(guard: GuardUnderTest, case: str) -> None:
    frame, message = MALFORMED_CALLS[case]
    answers, recorded = send(guard, frame)
    assert answers == [error("m1", INVALID_PARAMS, message)]
    assert recorded == []


@pytest.mark.parametrize("method", ["tools/call", "ping"])
def test_params_that_are_not_an_object(guard: GuardUnderTest, method: str) -> None:
    """Not JSON-RPC as MCP uses it, whatever the method: refused before it is judged."""
    frame = b'{"jsonrpc":"2.0","id":"m3","method":"%s","params":["allowed_tool"]}' % method.encode()
    answers, recorded = send(guard, frame)
    assert answers == [error("m3", INVALID_REQUEST, "the message's params is not an object (MCP params are objects)")]
    assert recorded == []


def test_null_arguments_are_no_arguments(guard: GuardUnderTest) -> None:
    frame = call("m2", arguments=None)
    assert send(guard, frame) == ([ok("m2")], [frame + b"\n"])


def test_escaped_names_and_methods(guard: GuardUnderTest) -> None:
    allowed = b'{"jsonrpc":"2.0","id":"e1","method":"tools\\/call","params":{"name":"\\u0061llowed_tool"}}\n'
    denied = b'{"jsonrpc":"2.0","id":"e2","method":"\\u0074ools/call","params":{"name":"d\\u0065nied_tool"}}\n'
    hidden = b'{"jsonrpc":"2.0","id":"e3","method":"tools\\/call","params":{"n\\u0061me":"hidden\\u005Ftool"}}\n'
    answers, recorded = send(guard, allowed, denied, hidden)
    answers.sort(key=lambda answer: str(answer["id"]))
    assert answers[0] == ok("e1")
    assert answers[1]["result"]["_meta"]["mcp-guard/violation"]["tool"] == DENIED
    assert answers[2]["id"] == "e3"
    assert answers[2]["result"]["_meta"]["mcp-guard/violation"] == {
        "tool": HIDDEN,
        "rule": "default",
        "kind": "default_deny",
        "reason": "Tool 'hidden_tool' is not allowed: the policy does not list it and its default is deny.",
    }
    assert recorded == [allowed]


def test_task_augmented_calls(guard: GuardUnderTest) -> None:
    allowed = call("t1", task={"ttl": 60000})
    answers, recorded = send(guard, allowed, call("t2", DENIED, task={"ttl": 60000}), call("t3", HIDDEN, task={}))
    answers.sort(key=lambda answer: str(answer["id"]))
    assert answers[0] == ok("t1")
    # Refused task-augmented calls are JSON-RPC errors (their clients expect a CreateTaskResult, never a result).
    assert answers[1]["error"]["data"]["mcp-guard/violation"]["kind"] == "deny"
    assert answers[2]["error"]["data"]["mcp-guard/violation"]["kind"] == "default_deny"
    assert recorded == [allowed + b"\n"]


def test_batch_mixing_refused_and_relayed_elements(guard: GuardUnderTest) -> None:
    elements = [
        {"jsonrpc": "2.0", "id": "bm1", "method": "tools/call", "params": {"name": DENIED}},
        {"jsonrpc": "2.0", "id": "bm2", "method": "tools/call", "params": {"name": ALLOWED, "arguments": {"a": "é"}}},
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}},
        {"jsonrpc": "2.0", "id": "bm3", "method": "ping"},
        {"jsonrpc": "2.0", "id": "bm4", "method": "tools/call", "params": {"name": HIDDEN}},
        {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": DENIED}},
    ]
    answers, recorded = send(guard, json.dumps(elements).encode())
    # The guard's answers come at once in an array of their own (servers since 2025-06-18 cannot read
    # batches, so they must not wait for the server's); the server's follow in its own.
    refused, relayed = answers
    assert sorted(a["id"] for a in refused) == ["bm1", "bm4"] and sorted(a["id"] for a in relayed) == ["bm2", "bm3"]
    by_id = {a["id"]: a for a in [*refused, *relayed]}
    assert by_id["bm2"] == ok("bm2") and by_id["bm3"] == ok("bm3")
    assert by_id["bm1"]["result"]["_meta"]["mcp-guard/violation"]["kind"] == "deny"
    assert by_id["bm4"]["result"]["_meta"]["mcp-guard/violation"]["kind"] == "default_deny"
    [line] = recorded
    assert json.loads(line) == [elements[1], elements[2], elements[3]]


def test_batch_of_refused_calls_only(guard: GuardUnderTest) -> None:
    elements = [
        {"jsonrpc": "2.0", "id": "br1", "method": "tools/call", "params": {"name": DENIED}},
        {"jsonrpc": "2.0", "id": "br2", "method": "tools/call", "params": {"name": "nope"}},
    ]
    answers, recorded = send(guard, b" " + json.dumps(elements).encode())
    [array] = answers
    assert [a["id"] for a in array] == ["br1", "br2"]
    assert [a["result"]["_meta"]["mcp-guard/violation"]["kind"] for a in array] == ["deny", "default_deny"]
    assert recorded == []


def test_empty_batch(guard: GuardUnderTest) -> None:
    answers, recorded = send(guard, b"[]")
    assert answers == [error(None, INVALID_REQUEST, "an empty batch is not valid JSON-RPC")]
    assert recorded == []


def test_batch_with_a_defect_is_refused_whole(guard: GuardUnderTest) -> None:
    """A batch the guard cannot judge gets an error for each request in it, in one array."""
    frame = b'[{"jsonrpc":"2.0","id":"bd1","method":"ping","a":1,"a":2},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":"bd2","method":"tools/call","params":{"name":"allowed_tool"}}]'  # noqa: E501
    answers, recorded = send(guard, frame)
    assert answers == [[error("bd1", INVALID_REQUEST, duplicate("a")), error("bd2", INVALID_REQUEST, duplicate("a"))]]
    assert recorded == []
    # Without a request in it, or unreadable, it gets a single error with id null.
    only_notification = b'[{"jsonrpc":"2.0","method":"tools/call","params":{"name":"allowed_tool"},"x":NaN}]'
    deep = b'[{"jsonrpc":"2.0","id":"bd3","method":"tools/call","params":{"name":"allowed_tool","arguments":{"x":%s}}}]'
    answers, recorded = send(guard, only_notification, deep % (b"[" * DEEP + b"]" * DEEP))
    assert answers == [
        error(None, PARSE_ERROR, "NaN is not valid JSON"),
        error(None, INVALID_REQUEST, "the frame is nested too deeply"),
    ]
    assert recorded == []


def test_cancellation_of_a_refused_call_stays_in_the_guard(guard: GuardUnderTest) -> None:
    cancel = b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"cr1"}}\n'
    answers, recorded = send(guard, call("cr1", DENIED), cancel, cancel)
    assert [a["id"] for a in answers] == ["cr1"]
    assert recorded == [cancel]  # the first is dropped, a repeated one is not the guard's business


def test_refused_call_notification_in_a_batch_is_not_relayed(guard: GuardUnderTest) -> None:
    batch = [
        {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": DENIED}},
        {"jsonrpc": "2.0", "id": "bn1", "method": "ping"},
    ]
    answers, recorded = send(guard, json.dumps(batch).encode())
    assert answers == [[ok("bn1")]]
    assert [json.loads(line) for line in recorded] == [[batch[1]]]


def test_refused_call_notification_alone_in_a_batch_is_not_relayed(guard: GuardUnderTest) -> None:
    batch = b'[{"jsonrpc":"2.0","method":"tools/call","params":{"name":"denied_tool"}}]'
    answers, recorded = send(guard, batch)
    assert (answers, recorded) == ([], [])
    # Nor is a cancellation of a refused call, when it is all a batch drops.
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "bc1"}}
    ping = {"jsonrpc": "2.0", "id": "bc2", "method": "ping"}
    answers, _ = send(guard, call("bc1", DENIED))
    answers, recorded = send(guard, json.dumps([cancel, ping]).encode())
    assert answers == [[ok("bc2")]]
    assert [json.loads(line) for line in recorded] == [[ping]]


@pytest.mark.parametrize("ident", [{"a": 1}, [1], 1.5, None, True], ids=["object", "array", "float", "null", "bool"])
def test_request_ids_that_are_not_strings_or_integers(tmp_path: Path, ident: Any) -> None:
    """Refused with an id-null error (the id cannot be answered), and not fatal to the guard."""
    guard = GuardUnderTest(tmp_path)  # not the module's guard: a regression would kill it
    ping = json.dumps({"jsonrpc": "2.0", "id": ident, "method": "ping"}).encode()
    try:
        answers, recorded = send(guard, ping, call(ident, DENIED))
        assert recorded == []
        assert answers == [error(None, INVALID_REQUEST, "the request id must be a string or an integer")] * 2
        code, stderr = guard.finish()
        assert (code, without_start_line(stderr)) == (0, "")
    finally:
        guard.session.kill()


def test_unreadable_client_response_is_dropped(guard: GuardUnderTest) -> None:
    """A client answering server request 5 must not see an error answer to its own request 5: nobody is
    answered, and stderr says why."""
    response = b'{"jsonrpc":"2.0","id":5,"result":{"content":{"type":"text","text":"a\\n\xff"}}}'
    answers, recorded = send(guard, response)
    assert (answers, recorded) == ([], [])
    assert guard.new_drops(1) == 1


def test_refused_notifications_are_dropped_with_a_line_on_stderr(guard: GuardUnderTest) -> None:
    frames = [
        b'{"jsonrpc":"2.0","method":"tools/call","params":{"name":"allowed_tool","arguments":{"a":1,"a":2}}}',
        b'{"jsonrpc":"2.0","method":"notifications/progress","params":[1]}',
        b'{"jsonrpc":"2.0","method":"notifications/initialized","x":1e999}',
    ]
    answers, recorded = send(guard, *frames)
    assert (answers, recorded) == ([], [])
    assert guard.new_drops(3) == 3
    stderr = guard.session.stderr_so_far()
    assert f"{DROPPED}: {duplicate('a')}" in stderr
    assert f"{DROPPED}: the message's params is not an object (MCP params are objects)" in stderr


NOT_A_MESSAGE = "the frame is not a JSON-RPC message (an object) or a batch of them"
NOT_JSON = "the frame is not valid JSON"
JUNK_ANSWERS = {
    b"42": (INVALID_REQUEST, NOT_A_MESSAGE),
    b"null": (INVALID_REQUEST, NOT_A_MESSAGE),
    b'"tools/call"': (INVALID_REQUEST, NOT_A_MESSAGE),
    b"{}": (INVALID_REQUEST, 'the message lacks "jsonrpc": "2.0"'),
    b"not json": (PARSE_ERROR, f"{NOT_JSON} (at character 0)"),
    b"[1,2]": (INVALID_REQUEST, "element 0 of the batch is not a JSON-RPC message"),
    b"[[1],{}]": (INVALID_REQUEST, "element 0 of the batch is itself a batch"),
    b'{"jsonrpc":"2.0","id":0,"method":"ping"': (
        PARSE_ERROR,
        f"{NOT_JSON}: Expecting ',' delimiter: line 1 column 40 (char 39)",
    ),
    b'{"jsonrpc":"2.0","method":"ping"} {"jsonrpc":"2.0","method":"ping"}': (
        PARSE_ERROR,
        f"{NOT_JSON}: extra data at character 33",
    ),
}


@pytest.mark.parametrize("junk", sorted(JUNK_ANSWERS), ids=lambda junk: junk.decode()[:20])
def test_lines_that_are_not_a_message(guard: GuardUnderTest, junk: bytes) -> None:
    code, message = JUNK_ANSWERS[junk]
    assert send(guard, junk) == ([error(None, code, message)], [])


CR = (
    "the frame holds a carriage return (CR) that is not part of its line ending: readers with universal newlines "
    "(the Python SDK, Node's readline) would read it as two lines"
)


def test_bare_carriage_returns(guard: GuardUnderTest) -> None:
    """Only the final CRLF may hold a CR: elsewhere the Python SDK and Node's readline end the line there."""
    frames = [
        call("cr1", arguments={"s": "a\rb"}).replace(b"\\r", b"\r"),
        call("cr2", DENIED).replace(b",", b",\r", 1),
        b'{"jsonrpc":"2.0","id":"cr3","method":"ping"}\r\r\n',
    ]
    answers, recorded = send(guard, *frames)
    assert answers == [error(ident, PARSE_ERROR, CR) for ident in ("cr1", "cr2", "cr3")]
    assert recorded == []
    # Two messages split by a CR: one line here, two for the SDKs. Neither is forwarded; both are answered.
    split = call("cr4") + b"\r" + call("cr5", DENIED)
    assert send(guard, split) == ([[error("cr4", PARSE_ERROR, CR), error("cr5", PARSE_ERROR, CR)]], [])


def differ_in_case(first: str, second: str) -> str:
    return (
        f"keys {first!r} and {second!r} in the frame differ only in case: some JSON readers (Go's encoding/json) "
        "treat them as the same key, so the guard refuses it"
    )


def test_keys_that_differ_only_in_case(guard: GuardUnderTest) -> None:
    """Go's encoding/json keeps the last key matching a field in any case (CVE-2026-27896)."""
    frames = [
        call("ci1", arguments={"dashboardUid": "safe", "DashboardUID": "evil"}),
        call("ci2", arguments={"k": 1, "\u212a": 2}),  # KELVIN SIGN
        b'{"jsonrpc":"2.0","id":"ci3","method":"tools/call","params":{"name":"allowed_tool","NAME":"denied_tool"}}',
        b'{"jsonrpc":"2.0","id":"ci4","method":"tools/call","METHOD":"ping","params":{"name":"denied_tool"}}',
    ]
    answers, recorded = send(guard, *frames)
    assert answers == [
        error("ci1", INVALID_REQUEST, differ_in_case("dashboardUid", "DashboardUID")),
        error("ci2", INVALID_REQUEST, differ_in_case("k", "\u212a")),
        error("ci3", INVALID_REQUEST, differ_in_case("name", "NAME")),
        error("ci4", INVALID_REQUEST, differ_in_case("method", "METHOD")),
    ]
    assert recorded == []


def another_case(where: str, key: str, member: str) -> str:
    return (
        f"{where} key {key!r} is {member!r} in another case: some readers (Go's encoding/json) would read it as "
        f"{member!r}, others would not"
    )


def test_a_member_only_in_another_case_in_a_batch(guard: GuardUnderTest) -> None:
    """{"NAME": ...} alone: Go reads the tool's name, the guard's own reading has none. Refused whole."""
    batch = (
        b'[{"jsonrpc":"2.0","id":"ca1","method":"tools/call","params":{"NAME":"denied_tool"}},'
        b'{"jsonrpc":"2.0","id":"ca2","method":"ping"},{"jsonrpc":"2.0","id":"srv-1","Result":{}}]'
    )
    message = "element 0 of the batch: " + another_case("a params", "NAME", "name")
    assert send(guard, batch) == (
        [[error("ca1", INVALID_REQUEST, message), error("ca2", INVALID_REQUEST, message)]],
        [],
    )


def test_a_member_only_in_another_case_in_a_lone_request(guard: GuardUnderTest) -> None:
    frame = b'{"jsonrpc":"2.0","id":"ca3","method":"tools/call","params":{"NAME":"denied_tool"}}'
    message = another_case("a params", "NAME", "name")
    assert send(guard, frame) == ([error("ca3", INVALID_REQUEST, message)], [])


def test_a_response_member_in_another_case_is_dropped(guard: GuardUnderTest) -> None:
    answers, recorded = send(guard, b'{"jsonrpc":"2.0","id":"srv-2","Result":{}}')
    assert (answers, recorded, guard.new_drops(1)) == ([], [], 1)


@pytest.mark.parametrize(
    "frame",
    [
        b'{"id":"srv-3","result":{}}',
        b'{"jsonrpc":"2.0","id":"srv-4"}',
        b'{"jsonrpc":"2.0","method":"notifications/initialized","Params":{}}',
        b'{"jsonrpc":"2.0","method":"notifications/progress","params":{"_Meta":{}}}',
    ],
)
def test_lone_notifications_and_responses_that_are_not_json_rpc_are_dropped(
    guard: GuardUnderTest, frame: bytes
) -> None:
    answers, recorded = send(guard, frame)
    assert (answers, recorded, guard.new_drops(1)) == ([], [], 1)


def test_a_request_id_twice_in_a_batch(guard: GuardUnderTest) -> None:
    """The first is judged as usual; the second is refused, and never reaches the server."""
    ping = {"jsonrpc": "2.0", "id": "twice", "method": "ping"}
    batch = [ping, {"jsonrpc": "2.0", "id": "twice", "method": "tools/call", "params": {"name": ALLOWED}}]
    answers, recorded = send(guard, json.dumps(batch).encode())
    assert answers == [
        [error("twice", INVALID_REQUEST, "request id 'twice' appears twice in the batch")],
        [ok("twice")],
    ]
    assert [json.loads(line) for line in recorded] == [[ping]]


def test_a_refused_batch_with_one_request_gets_an_array(guard: GuardUnderTest) -> None:
    batch = (
        b'[{"jsonrpc":"2.0","id":"one","method":"ping","x":NaN},{"jsonrpc":"2.0","method":"notifications/initialized"}]'
    )
    assert send(guard, batch) == ([[error("one", PARSE_ERROR, "NaN is not valid JSON")]], [])


def test_integer_with_more_digits_than_python_converts(guard: GuardUnderTest) -> None:
    frame = (
        b'{"jsonrpc":"2.0","id":"big-int","method":"tools/call","params":{"name":"allowed_tool","arguments":{"n":%s}}}'
    )
    answers, recorded = send(guard, frame % (b"9" * 5000))
    assert recorded == []
    assert [(a["id"], a["error"]["code"]) for a in answers] == [("big-int", INVALID_REQUEST)]


def test_zz_guard_exits_cleanly_at_the_end(guard: GuardUnderTest) -> None:
    """(c) for the module's long-lived guard: after everything above, stdin EOF ends it with status 0."""
    guard.assert_healthy()
    code, stderr = guard.finish()
    assert code == 0, stderr
    assert "internal error" not in stderr and "Traceback" not in stderr, stderr
