"""Hostile input on the client side of the guard: a hypothesis property suite, then one example per kind.

One guard runs for the whole module (spawning one costs ~0.3 s), in front of
``tests/servers/batch_recorder.py``: ``recorder.py`` plus answers to JSON-RPC batches and lenient
reading, so that every request the guard relays gets its answer. Each example sends its frames
with fresh ids, then a plain ``ping`` sentinel; everything the client reads before the sentinel's
answer, and everything the recorder wrote before the sentinel's line, belongs to that example.

The generator knows what each frame it builds is (a call to which tool, with which defect), so it
also knows what the guard must do with it; the checks compare the guard against that and against
three invariants that need no model at all:

(a) the upstream never receives a ``tools/call`` whose name the policy refuses, under a first-wins
    or a last-wins reading of duplicate keys, at the top level or as an element of a batch;
(b) every request gets exactly one answer, from the guard or the upstream (an array holding all
    of them for a batch); a frame the guard cannot read at all (nesting beyond any parser's depth)
    gets one error with id null, as does a defective notification that might be a call;
(c) the guard never crashes: it is alive after every example, writes no "internal error" or
    traceback, and exits 0 when its stdin closes.

``OPEN_GUARD_BUGS`` names guard defects this suite found that are not fixed yet: while a name is
in it, the generator leaves out the inputs that trigger the defect (each open one has a strict
xfail example test below). Remove the name once the guard is fixed.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from conftest import MODERN_META, PYTHON, ROOT, RawSession, guard_command, isolated_env, write_policy
from hypothesis import HealthCheck, event, given, settings
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

# "response-id": a client's response (to a server request) that the guard cannot judge gets an
#   error addressed to the response's id, which the client may take for the answer to its own
#   request with that id.
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


def placeholder_ids(ident: Id) -> Any:
    return {"int": 1, "str": "h-1", "object": {"n": 1}}[ident.kind]


def python_reads(line: bytes) -> bool:
    """Whether Python's ``json.loads`` reads ``line`` (the bytes, so a BOM and UTF-8-encoded surrogates pass).

    This is the reading the guard falls back on for a frame that fails its strict parse, to see
    whether it might hold a tools/call: if Python cannot read it, the guard assumes it might.
    """
    try:
        json.loads(line)
    except (ValueError, RecursionError):
        return False
    return True


def _any_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # more digits than int() converts
        return 0


def lenient_reads(line: bytes) -> Any:
    """``line`` read as leniently as a parser can (BOM skipped, bad UTF-8 replaced, any number), or None.

    Only nesting too deep for a recursive parser defeats this reading; it is how the guard finds
    the ids to address its errors to, and how a lenient upstream (batch_recorder.py) reads.
    """
    body = line[len(BOM) :] if line.startswith(BOM) else line
    try:
        return json.loads(body.decode("utf-8", "replace"), strict=False, parse_int=_any_int)
    except (ValueError, RecursionError):
        return None


def needs_judging(line: bytes) -> bool:
    """The guard's rule (session.needs_judging): only such frames are parsed, strictly."""
    return b"tools/call" in line or b"\\" in line or line.lstrip()[:1] == b"["


# --- what a frame must lead to -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """The answer a request must get: from the upstream, or the guard's error / refusal."""

    kind: Literal["upstream", "error", "violation", "unknown", "any"]
    code: int = 0
    key: str | None = None  # a duplicate-key error names this key
    tool: str | None = None
    rule_kind: str | None = None
    modern: bool = False


UPSTREAM = Outcome("upstream")


@dataclass
class Frame:
    """One line the client sends, and what must follow from it."""

    parts: list[Any]
    ending: bytes = b"\n"
    spaced: bool = False
    answers: list[tuple[Id, Outcome]] = field(default_factory=list)
    null_errors: list[int] = field(default_factory=list)  # codes of id-null errors the guard must write
    relay: Literal["verbatim", "none", "subset"] = "verbatim"
    kept: list[Any] = field(default_factory=list)  # for "subset": the batch elements the upstream gets
    batch: bool = False
    label: str = ""

    def line(self, ids: IdValues) -> bytes:
        return b"".join(render(part, ids, self.spaced) for part in self.parts) + self.ending


@dataclass
class Element:
    """One generated JSON-RPC message, before it becomes a frame or a batch element."""

    ast: Any
    ident: Id | None = None  # set for requests
    outcome: Outcome | None = None  # the answer a request must get when judged cleanly
    forwarded: bool = True  # relayed when judged cleanly
    is_call: bool = False  # method is tools/call
    label: str = ""
    # mutable parts, for hostile edits
    envelope: list[tuple[Any, Any]] | None = None
    params: list[tuple[Any, Any]] | None = None
    arguments: list[tuple[Any, Any]] | None = None
    has_name: bool = False


@dataclass
class Ctx:
    """What the frames drawn so far did, for the ones drawn next (cancellations need it)."""

    slots: int = 0
    requests: list[Id] = field(default_factory=list)
    refused: set[int] = field(default_factory=set)  # slots the policy refused (the guard remembers them)
    cancelled: set[int] = field(default_factory=set)

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
DUPLICATES = ["dup-envelope", "dup-method", "dup-params", "dup-name", "dup-arguments"]
VALUES = ["nan", "huge", "float-overflow", "bad-utf8", "deep"]
MUTATIONS = [*DUPLICATES, *VALUES, "bom"]
CODES = {
    **dict.fromkeys(DUPLICATES, INVALID_REQUEST),
    "nan": PARSE_ERROR,
    "huge": INVALID_REQUEST,
    "float-overflow": INVALID_REQUEST,
    "bad-utf8": PARSE_ERROR,
    "deep": INVALID_REQUEST,
    "bom": PARSE_ERROR,
}

NOT_SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
CHARACTERS = st.characters(exclude_categories=NOT_SURROGATES)
keys = st.text(CHARACTERS, max_size=6)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-MAX_EXACT, MAX_EXACT)
    | st.sampled_from([MAX_EXACT, -MAX_EXACT, 5e-324, 1.7976931348623157e308])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(CHARACTERS, max_size=8)
    | st.sampled_from(TRICKY_STRINGS)
)
values = st.recursive(
    scalars,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(keys, kids, max_size=3).map(lambda d: Obj(list(d.items())))
    ),
    max_leaves=6,
)
objects = st.dictionaries(keys, values, max_size=3).map(lambda d: Obj(list(d.items())))
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
    kinds: list[Literal["int", "str", "object"]] = ["int", "str"]
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
    meta = draw(st.sampled_from([None, None, "progress", "modern"]))
    is_request = draw(st.integers(0, 7)) != 0
    ident = request_id(draw, ctx) if is_request else None

    params: list[tuple[Any, Any]] | None = None
    arguments: list[tuple[Any, Any]] | None = None
    has_name = False
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
    if shape in ("no-params", "bad-params", "no-name", "bad-name", "bad-arguments"):
        outcome = Outcome("error", INVALID_PARAMS)
    elif name == ALLOWED:
        outcome = UPSTREAM
    elif name == HIDDEN:
        outcome = Outcome("unknown", tool=name, modern=modern)
    else:
        kind = "deny" if name == DENIED else "default_deny"
        outcome = Outcome("violation", tool=name, rule_kind=kind, modern=modern)
    element = Element(
        ast=Obj(envelope),
        ident=ident,
        outcome=outcome if ident is not None else None,
        forwarded=outcome == UPSTREAM,
        is_call=True,
        label=f"call {name!r} ({shape}, meta={meta}, {'request' if ident else 'notification'})",
        envelope=envelope,
        params=params,
        arguments=arguments,
        has_name=has_name,
    )
    element.ast = Obj(envelope)
    if ident is not None and outcome.kind in ("violation", "unknown"):
        ctx.refused.add(ident.slot)
    return element


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
        return Element(Obj(shuffled(draw, envelope)), forwarded=not dropped, label=f"cancel (dropped={dropped})")
    if kind == "response":
        envelope.append(("id", f"srv-{draw(st.integers(0, 9))}"))
        body = draw(objects) if draw(st.booleans()) else Obj([("code", -1), ("message", "no")])
        envelope.append(("result" if "code" not in dict(body.pairs) else "error", body))
        envelope = shuffled(draw, envelope)
        return Element(Obj(envelope), label="client response", envelope=envelope, params=body.pairs)
    method = draw(st.sampled_from(NON_CALL_METHODS if kind == "request" else NOTIFICATION_METHODS))
    envelope.append((spelled(draw, "method"), spelled(draw, method)))
    if kind == "request":
        ident = request_id(draw, ctx)
        envelope.append(("id", ident))
    if draw(st.booleans()):
        params = draw(objects).pairs
        envelope.append(("params", Obj(params)))
    envelope = shuffled(draw, envelope)
    return Element(
        Obj(envelope),
        ident=ident,
        outcome=UPSTREAM if ident is not None else None,
        label=f"{kind} {method!r}",
        envelope=envelope,
        params=params,
    )


def junk_element(draw: st.DrawFn) -> Element:
    return Element(draw(st.sampled_from([1, "x", None, [], Obj([]), [1, [2]], "tools/call"])), label="junk element")


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


def mutate(draw: st.DrawFn, el: Element, mutation: str) -> tuple[str, str | None, bool]:
    """Give ``el`` one defect in place. Returns the mutation applied (some fall back to dup-envelope),
    the key a duplicate-key error must name, and whether some reading of it is now a tools/call."""
    assert el.envelope is not None
    call_reading = el.is_call
    if mutation == "dup-method" and any(_key(k) == "method" for k, _ in el.envelope):
        other = Str("ping") if el.is_call else spelled(draw, "tools/call", rate=2)
        insert(draw, el.envelope, (spelled(draw, "method"), other))
        return mutation, "method", True
    if mutation == "dup-params" and any(_key(k) == "params" for k, _ in el.envelope):
        other_name = DENIED if draw(st.booleans()) else ALLOWED
        insert(draw, el.envelope, ("params", Obj([("name", other_name)])))
        return mutation, "params", call_reading
    if mutation == "dup-name" and el.params is not None:
        names = [("name", ALLOWED)] if el.has_name else [("name", ALLOWED), ("name", DENIED)]
        insert(draw, el.params, *names)
        return mutation, "name", call_reading
    if mutation == "dup-arguments" and (el.arguments is not None or el.params is not None):
        target = el.arguments if el.arguments is not None else el.params
        assert target is not None
        insert(draw, target, ("x", 1), ("x", 2))
        return mutation, "x", call_reading
    if mutation in VALUES:
        targets = [t for t in (el.envelope, el.params, el.arguments) if t is not None]
        target = draw(st.sampled_from(targets))
        insert(draw, target, ("hostile", draw(hostile_values[mutation])))
        return mutation, None, call_reading
    if mutation == "bom":
        return mutation, None, call_reading
    insert(draw, el.envelope, ("jsonrpc", "2.0"))
    return "dup-envelope", "jsonrpc", call_reading


def _key(key: Any) -> str:
    return key.value if isinstance(key, Str) else str(key)


def rebuild(el: Element) -> None:
    """Re-point the element's syntax tree at its (edited) pair lists."""
    assert isinstance(el.ast, Obj) and el.envelope is not None
    el.ast.pairs = el.envelope


@st.composite
def single_frame(draw: st.DrawFn, ctx: Ctx) -> Frame:
    kind = draw(
        st.sampled_from(["call"] * 5 + ["request"] * 2 + ["notification", "cancel", "response", "junk", "blank"])
    )
    ending = draw(st.sampled_from([b"\n", b"\n", b"\r\n"]))
    prefix = draw(st.sampled_from([b"", b"", b"", b" ", b"\t "]))
    if kind == "blank":
        return Frame([Raw(draw(st.sampled_from([b"", b" ", b"\t", b"  "])))], ending, label="blank line")
    if kind == "junk":
        return draw(junk_frame())
    snapshot = (set(ctx.refused), set(ctx.cancelled))
    el = element(draw, ctx, [kind])
    mutation = draw(st.sampled_from([None] * 12 + MUTATIONS)) if kind != "cancel" else None
    if kind == "response" and mutation == "bad-utf8" and "response-id" in OPEN_GUARD_BUGS:
        mutation = None
    spaced = draw(st.booleans())
    if mutation is None:
        frame = Frame([Raw(prefix), el.ast], ending, spaced, label=el.label)
        if el.ident is not None and el.outcome is not None:
            frame.answers.append((el.ident, el.outcome))
        frame.relay = "verbatim" if el.forwarded else "none"
        return frame

    applied, key, call_reading = mutate(draw, el, mutation)
    rebuild(el)
    parts: list[Any] = [Raw(BOM)] if applied == "bom" else []
    frame = Frame([*parts, Raw(prefix), el.ast], ending, spaced, label=f"{el.label} + {applied}")
    line = frame.line(placeholder_ids)
    # The frame is no longer judged as a call: what the clean element did to ctx did not happen.
    ctx.refused, ctx.cancelled = snapshot
    if needs_judging(line) and (call_reading or not python_reads(line)):
        # Refused as a frame the guard cannot judge, with an error addressed to the id a lenient
        # reading finds (JSON-RPC ids are strings or numbers: an object id gets id null).
        code = CODES[applied]
        if el.ident is not None and el.ident.kind != "object" and lenient_reads(line) is not None:
            frame.answers.append((el.ident, Outcome("error", code, key)))
        else:
            frame.null_errors.append(code)
        frame.relay = "none"
    else:
        frame.relay = "verbatim"
        if el.ident is not None and applied != "deep":  # the recorder reads all but too-deep frames
            frame.answers.append((el.ident, UPSTREAM))
    return frame


@st.composite
def junk_frame(draw: st.DrawFn) -> Frame:
    choice = draw(st.integers(0, 7))
    texts = [b"42", b"null", b'"tools/call"', b"{}", b"not json", b"[1,2]", b"[[1],{}]"]
    if choice < len(texts):
        return Frame([Raw(texts[choice])], label=f"junk {texts[choice]!r}")
    # Truncated frames: one that might be a call (refused, id unreadable), one that cannot be (relayed).
    if draw(st.booleans()):
        return Frame(
            [Raw(b'{"jsonrpc":"2.0","method":"tools/call","params":{"name":"denied_tool"')],
            null_errors=[PARSE_ERROR],
            relay="none",
            label="truncated call",
        )
    return Frame([Raw(b'{"jsonrpc":"2.0","id":0,"method":"ping"')], label="truncated ping")


@st.composite
def batch_frame(draw: st.DrawFn, ctx: Ctx) -> Frame:
    hostility = draw(st.sampled_from([None] * 10 + ["empty", "dup-envelope", "dup-method", *VALUES, "bom"]))
    prefix = draw(st.sampled_from([b"", b"", b" ", b"\t"]))
    spaced = draw(st.booleans())
    if hostility == "empty":
        empty = Raw(prefix + b"[" + draw(st.sampled_from([b"", b" "])) + b"]")
        return Frame([empty], null_errors=[INVALID_REQUEST], relay="none", batch=True, label="empty batch")
    snapshot = (set(ctx.refused), set(ctx.cancelled))
    kinds = ["call", "call", "call", "request", "request", "notification", "cancel", "response", "junk"]
    elements = [element(draw, ctx, kinds) for _ in range(draw(st.integers(1, 6)))]
    label = "batch of " + ", ".join(e.label for e in elements)
    if hostility is None:
        answers = [(e.ident, e.outcome) for e in elements if e.ident is not None and e.outcome is not None]
        guard_answers = any(outcome.kind != "upstream" for _, outcome in answers)
        swallowed = [e for e in elements if not e.forwarded]
        if swallowed and not guard_answers and "batch-leak" in OPEN_GUARD_BUGS:
            if any(e.is_call for e in swallowed):
                # Avoid the open bug (the refused call would be relayed): give the guard something to answer.
                denied = call_to(ctx, DENIED)
                assert denied.ident is not None and denied.outcome is not None
                elements.append(denied)
                answers.append((denied.ident, denied.outcome))
                guard_answers = True
            else:
                # Only dropped cancellations: today the guard relays the batch unchanged.
                batch = [Raw(prefix), elements_ast(elements)]
                return Frame(batch, spaced=spaced, answers=answers, batch=True, label=label)
        frame = Frame([Raw(prefix), elements_ast(elements)], spaced=spaced, answers=answers, batch=True, label=label)
        kept = [e.ast for e in elements if e.forwarded]
        if not swallowed:
            frame.relay = "verbatim"
        elif kept:
            frame.relay, frame.kept = "subset", kept
        else:
            frame.relay = "none"
        return frame

    # One defect somewhere in the batch: the guard can no longer judge it element by element.
    ctx.refused, ctx.cancelled = snapshot
    call_reading = any(e.is_call for e in elements)
    if hostility != "bom":
        candidates = [e for e in elements if e.envelope is not None and (hostility != "dup-method" or not e.is_call)]
        candidates = [
            e for e in candidates if hostility != "dup-method" or any(_key(k) == "method" for k, _ in e.envelope or [])
        ]
        if not candidates:
            extra = other_element(draw, ctx, "request")
            elements.append(extra)
            candidates = [extra]
        target = draw(st.sampled_from(candidates))
        _, _, reading = mutate(draw, target, hostility)
        rebuild(target)
        call_reading = call_reading or reading
    parts: list[Any] = [Raw(BOM)] if hostility == "bom" else []
    frame = Frame(
        [*parts, Raw(prefix), elements_ast(elements)], spaced=spaced, batch=True, label=f"{label} + {hostility}"
    )
    line = frame.line(placeholder_ids)
    if needs_judging(line) and (call_reading or not python_reads(line)):
        # Refused whole: one error per request in it (one array), or one id-null error if the
        # guard cannot read the batch at all or it holds no request.
        code = CODES[hostility]
        requests = [e.ident for e in elements if e.ident is not None]
        if requests and lenient_reads(line) is not None:
            frame.answers = [(ident, Outcome("error", code)) for ident in requests]
        else:
            frame.null_errors.append(code)
        frame.relay = "none"
    else:
        frame.relay = "verbatim"
        if hostility != "deep":
            frame.answers = [(e.ident, UPSTREAM) for e in elements if e.ident is not None]
    return frame


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
    return Element(Obj(envelope), ident, outcome, forwarded=False, is_call=True, label=f"call {name!r}")


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


def assert_no_refused_call(line: bytes) -> None:
    """Invariant (a) on one line the upstream received."""
    read = readings(line)
    if read is None:
        # Unreadable to Python: then it must not be readable as a call by anyone, which needs the
        # method spelled out (the text tools/call) or escaped (a backslash).
        assert b"tools/call" not in line and b"\\" not in line, (
            f"upstream got an unreadable possible call: {line[:300]!r}"
        )
        return
    for reading in read:
        for message in reading if isinstance(reading, list) else [reading]:
            if not (isinstance(message, dict) and message.get("method") == "tools/call"):
                continue
            params = message.get("params")
            assert isinstance(params, dict), f"upstream got a call without params: {line[:300]!r}"
            assert params.get("name") == ALLOWED, f"upstream got a refused call: {line[:300]!r}"
            assert params.get("arguments") is None or isinstance(params["arguments"], dict), line[:300]


def canonical(ident: Any) -> str:
    return json.dumps(ident, sort_keys=True)


def assert_answer(answer: dict[str, Any], outcome: Outcome, ident: Any, label: str) -> None:
    where = f"answer to {label} (id {ident!r}): {answer}"
    if outcome.kind == "any":
        return
    if outcome.kind == "upstream":
        assert answer == {"jsonrpc": "2.0", "id": ident, "result": {"content": [], "isError": False}}, where
        return
    if outcome.kind == "error":
        error = answer.get("error")
        assert isinstance(error, dict) and error.get("code") == outcome.code, where
        assert error["message"].startswith("mcp-guard: "), where
        if outcome.key is not None:
            assert f"duplicate key {outcome.key!r}" in error["message"], where
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


def check_example(
    frames: Sequence[Frame], lines: Sequence[bytes], ids: IdValues, client: Sequence[bytes], recorded: Sequence[bytes]
) -> None:
    # (a), model-free: nothing the upstream got is a refused call under any reading.
    for line in recorded:
        assert_no_refused_call(line)

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

    # (b): every readable request answered exactly once, with what its frame calls for; batches in one array.
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
    wanted: dict[str, tuple[Outcome, Frame, Any]] = {}
    for frame in frames:
        for ident, outcome in frame.answers:
            wanted[canonical(ids(ident))] = (outcome, frame, ids(ident))
    assert sorted(answers) == sorted(wanted), (
        f"answered ids {sorted(answers)} != expected {sorted(wanted)}; frames: {[f.label for f in frames]}"
    )
    for key, found in answers.items():
        outcome, frame, ident = wanted[key]
        assert len(found) == 1, f"{len(found)} answers to {frame.label}: {found}"
        _, in_array, answer = found[0]
        assert in_array == frame.batch, f"answer to {frame.label} {'not ' if frame.batch else ''}in an array"
        assert_answer(answer, outcome, ident, frame.label)
    for frame in frames:
        if frame.batch and frame.answers:
            indices = {answers[canonical(ids(ident))][0][0] for ident, _ in frame.answers}
            assert len(indices) == 1, f"answers to one batch spread over {len(indices)} lines: {frame.label}"
    assert sorted(null_codes) == sorted(c for f in frames for c in f.null_errors), (
        f"id-null errors {null_codes}; frames: {[(f.label, f.null_errors) for f in frames]}"
    )


def run_example(guard: GuardUnderTest, frames: Sequence[Frame]) -> None:
    for frame in frames:
        event(frame.label.split(" ")[0] + (" +" + frame.label.rsplit("+", 1)[1] if " + " in frame.label else ""))
    ids = guard.id_values()
    lines = [frame.line(ids) for frame in frames]
    try:
        client, recorded = guard.exchange(lines)
    finally:
        guard.assert_healthy()
    check_example(frames, lines, ids, client, recorded)


# --- the property ---------------------------------------------------------------------------------------


@settings(
    max_examples=150,
    deadline=None,
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
        assert_no_refused_call(line)
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
    # A frame that cannot be a call is not the guard's business, BOM or not.
    ping = BOM + b'{"jsonrpc":"2.0","id":"b2","method":"ping","params":{"s":"a\\\\b"}}\n'
    answers, recorded = send(guard, ping)
    assert (answers, recorded) == ([ok("b2")], [ping])


@pytest.mark.parametrize("bad", [b"\xff", b"\xc3(", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80"])
def test_invalid_utf8(guard: GuardUnderTest, bad: bytes) -> None:
    frame = call("u1", arguments={"s": "PLACEHOLDER"}).replace(b"PLACEHOLDER", bad)
    answers, recorded = send(guard, frame)
    offset = frame.index(bad)
    assert answers == [error("u1", PARSE_ERROR, f"the frame is not valid UTF-8 (byte {offset})")]
    assert recorded == []


def test_invalid_utf8_in_a_frame_that_is_not_a_call(guard: GuardUnderTest) -> None:
    # Unjudged (no backslash, no "tools/call"): relayed as it is. Judged: the guard cannot be sure
    # what a lenient parser makes of it, so it refuses it like a possible call.
    plain = b'{"jsonrpc":"2.0","id":"u2","method":"ping","params":{"s":"\xff"}}\n'
    judged = b'{"jsonrpc":"2.0","id":"u3","method":"ping","params":{"s":"\xff\\n"}}\n'
    answers, recorded = send(guard, plain, judged)
    offset = judged.index(b"\xff")
    answers.sort(key=lambda answer: str(answer["id"]))
    assert answers == [ok("u2"), error("u3", PARSE_ERROR, f"the frame is not valid UTF-8 (byte {offset})")]
    assert recorded == [plain]


def test_nesting_too_deep(guard: GuardUnderTest) -> None:
    nested = b"[" * DEEP + b"]" * DEEP
    frame = call("deep-1", arguments={"x": "PLACEHOLDER"}).replace(b'"PLACEHOLDER"', nested)
    answers, recorded = send(guard, frame)
    assert answers == [error(None, INVALID_REQUEST, "the frame is nested too deeply")]
    assert recorded == []
    # Nesting a parser can take is fine.
    moderate = call("deep-2", arguments={"x": "PLACEHOLDER"}).replace(b'"PLACEHOLDER"', b"[" * 200 + b"]" * 200)
    answers, recorded = send(guard, moderate)
    assert (answers, recorded) == ([ok("deep-2")], [moderate + b"\n"])


def test_crlf_line_endings_and_blank_lines(guard: GuardUnderTest) -> None:
    allowed = call("c1") + b"\r\n"
    denied = call("c2", DENIED) + b"\r\n"
    blanks = [b"\n", b"\r\n", b"   \n"]
    answers, recorded = send(guard, blanks[0], allowed, blanks[1], denied, blanks[2])
    by_id = {answer["id"]: answer for answer in answers}
    assert len(answers) == len(by_id) == 2
    assert by_id["c1"] == ok("c1")
    assert by_id["c2"]["result"]["_meta"]["mcp-guard/violation"]["kind"] == "deny"
    assert recorded == [blanks[0], allowed, blanks[1], blanks[2]]


M1 = b'{"jsonrpc":"2.0","id":"m1","method":"tools/call"'
NEEDS_OBJECT = "tools/call params.arguments must be an object"
NEEDS_NAME = "tools/call params.name must be a string"
NEEDS_PARAMS = "tools/call needs a params object"
MALFORMED_CALLS = {
    "arguments-list": (call("m1", arguments=[1]), NEEDS_OBJECT),
    "arguments-string": (call("m1", arguments="{}"), NEEDS_OBJECT),
    "name-missing": (M1 + b',"params":{}}', NEEDS_NAME),
    "name-number": (call("m1", 7), NEEDS_NAME),
    "name-null": (call("m1", None), NEEDS_NAME),
    "params-missing": (M1 + b"}", NEEDS_PARAMS),
    "params-list": (M1 + b',"params":["allowed_tool"]}', NEEDS_PARAMS),
    "name-surrogate": (
        M1 + b',"params":{"name":"allowed_tool\\ud800"}}',
        "the tool name contains an unpaired surrogate",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_CALLS))
def test_malformed_calls(guard: GuardUnderTest, case: str) -> None:
    frame, message = MALFORMED_CALLS[case]
    answers, recorded = send(guard, frame)
    assert answers == [error("m1", INVALID_PARAMS, message)]
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
    assert answers[2] == {
        "jsonrpc": "2.0",
        "id": "e3",
        "result": {"content": [{"type": "text", "text": "Unknown tool: hidden_tool"}], "isError": True},
    }
    assert recorded == [allowed]


def test_task_augmented_calls(guard: GuardUnderTest) -> None:
    allowed = call("t1", task={"ttl": 60000})
    answers, recorded = send(guard, allowed, call("t2", DENIED, task={"ttl": 60000}), call("t3", HIDDEN, task={}))
    answers.sort(key=lambda answer: str(answer["id"]))
    assert answers[0] == ok("t1")
    assert answers[1]["result"]["_meta"]["mcp-guard/violation"]["kind"] == "deny"
    assert answers[2]["result"]["content"] == [{"type": "text", "text": "Unknown tool: hidden_tool"}]
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
    [array] = answers
    assert isinstance(array, list)
    assert sorted(a["id"] for a in array) == ["bm1", "bm2", "bm3", "bm4"]
    by_id = {a["id"]: a for a in array}
    assert by_id["bm2"] == ok("bm2") and by_id["bm3"] == ok("bm3")
    assert by_id["bm1"]["result"]["_meta"]["mcp-guard/violation"]["kind"] == "deny"
    assert by_id["bm4"]["result"]["content"] == [{"type": "text", "text": "Unknown tool: hidden_tool"}]
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


@pytest.mark.parametrize("ident", [{"a": 1}, [1]], ids=["object", "array"])
def test_request_with_an_unhashable_id_does_not_kill_the_guard(tmp_path: Path, ident: Any) -> None:
    """Not valid JSON-RPC, but relayed (the upstream answers as it sees fit) and refused like any id."""
    guard = GuardUnderTest(tmp_path)  # not the module's guard: a regression would kill it
    ping = json.dumps({"jsonrpc": "2.0", "id": ident, "method": "ping"}).encode()
    try:
        answers, recorded = send(guard, ping, call(ident, DENIED))
        assert recorded == [ping + b"\n"]
        relayed, refused = sorted(answers, key=lambda answer: bool(answer["result"]["isError"]))
        assert relayed == ok(ident)
        assert refused["id"] == ident
        assert refused["result"]["_meta"]["mcp-guard/violation"]["kind"] == "deny"
        code, stderr = guard.finish()
        assert (code, stderr) == (0, "")
    finally:
        guard.session.kill()


def test_unjudgeable_client_response_gets_no_answer_with_its_id(guard: GuardUnderTest) -> None:
    """A client answering server request 5 must not see that as an error answer to its own request 5."""
    response = b'{"jsonrpc":"2.0","id":5,"result":{"content":{"type":"text","text":"a\\n\xff"}}}'
    answers, _ = send(guard, response)
    assert [answer for answer in answers if answer.get("id") == 5] == []


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
