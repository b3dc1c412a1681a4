"""Property tests for the client side of the wire (issue 17): generated hostile frames, one guard, a real reader.

Each test drives one long-lived guard in front of the Python SDK reader (``tests/servers/sdk_reader.py``:
universal newlines, last duplicate wins) with frames hypothesis builds from the classes of the issue, and
checks each example with :func:`test_differential.run_case`, which asserts the invariants: a call the policy
refuses is never executed, every line the reader receives is one strictly parsed message whose calls the
policy allows, every request whose id can be read gets exactly one answer (an error -32700 / -32600 where
the frame must be refused), and the guard is alive after it.

The generators know what they built, so each example also says what the guard must do with it:

* key games: duplicate keys (spelled the same, or with escapes), keys that collide under Go's case folding
  (ASCII case, ``\\u017f`` for s, ``\\u212a`` for k), at every level, before or after the real one; a
  duplicate refuses the frame; a lone odd spelling may be refused or left unread, the request is answered;
* CR/LF games: messages joined and broken with CR, LF and CRLF between tokens, inside strings and between
  messages; each ``\\n``-line is forwarded only if it is one strict message, else refused;
* batches: flat ones are judged element by element, any nesting or non-object element refuses the line;
* nesting: shallow arguments work, deep ones are refused or answered, never forwarded deeper than a reader reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_differential import (
    POLICY,
    Case,
    Rig,
    RigPool,
    fold,
    policy_allows,
    reader_argv,
    run_case,
    strict_parse,
)

# No shrinking: each failing example restarts the guard and the SDK server (about a second), so shrinking
# would outlast the test timeout; the examples are small as generated, and reported as they are.
SETTINGS = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def rigs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RigPool]:
    pool = RigPool(lambda reader, folder: Rig(reader, reader_argv(reader, request), folder, POLICY), tmp_path_factory)
    yield pool
    pool.close()


def check(rigs: RigPool, case: Case) -> None:
    with rigs.use("python") as rig:
        run_case(rig, case)


# --- JSON with duplicate keys and chosen spellings --------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """JSON source text, written as is (an id slot, a spelled key)."""

    text: str


@dataclass(frozen=True)
class Obj:
    """A JSON object as ordered pairs; a key is its JSON source text, so duplicates and escapes can be spelled."""

    pairs: tuple[tuple[str, Any], ...]


def key(name: str) -> str:
    return json.dumps(name, ensure_ascii=False)


def obj(**members: Any) -> Obj:
    return Obj(tuple((key(name), value) for name, value in members.items()))


def render(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Obj):
        return "{" + ",".join(k + ":" + render(v) for k, v in value.pairs) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(render(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


A, B, C = Raw("@A@"), Raw("@B@"), Raw("@C@")
SLOT_OF = {A.text: "A", B.text: "B", C.text: "C"}

# Allowed calls, and for each member what a shadowing duplicate carries instead (the refused value).
BASES: dict[str, dict[str, Any]] = {
    "safe": {},
    "pay": {"amount": 5, "to": "x"},
    "dashboard": {"dashboardUid": "safe"},
}
SHADOWS: dict[str, Any] = {
    "jsonrpc": "1.0",
    "id": B,
    "method": "ping",
    "params": obj(name="evil", arguments=obj()),
    "name": "evil",
    "arguments": obj(amount=5000, to="x"),
    "amount": 5000,
    "to": "y",
    "dashboardUid": "evil",
    "_meta": obj(progressToken="shadow"),
}


def _fold_options(char: str) -> list[str]:
    """``char`` and every other character Go's encoding/json matches to it."""
    options = [char]
    if char.isalpha():
        options.append(char.swapcase())
    if char.lower() == "s":
        options.append("\u017f")
    if char.lower() == "k":
        options.append("\u212a")
    return options


@st.composite
def folded_spelling(draw: st.DrawFn, name: str) -> str:
    """``name`` spelled so that Go's encoding/json matches it to ``name``, but not byte-equal to it."""
    changed = draw(st.sampled_from([i for i, c in enumerate(name) if len(_fold_options(c)) > 1]))
    chars = [
        draw(st.sampled_from(_fold_options(c)[1:] if i == changed else _fold_options(c))) for i, c in enumerate(name)
    ]
    spelled = "".join(chars)
    assert spelled != name and fold(spelled) == fold(name)
    return json.dumps(spelled, ensure_ascii=draw(st.booleans()))


@st.composite
def escaped_spelling(draw: st.DrawFn, name: str) -> str:
    """``name`` exactly, with some characters (at least one) written as ``\\uXXXX`` escapes."""
    forced = draw(st.integers(0, len(name) - 1))
    escape = [i == forced or draw(st.booleans()) for i in range(len(name))]
    return '"' + "".join(f"\\u{ord(c):04x}" if e else c for c, e in zip(name, escape, strict=True)) + '"'


@dataclass(frozen=True)
class Mutation:
    name: str
    how: str  # "duplicate", "escaped-duplicate", "folded-duplicate", "folded-rename"
    after: bool


def mutate(target: Obj, mutation: Mutation, spelled: str) -> Obj:
    pairs = list(target.pairs)
    index = next(i for i, (k, _) in enumerate(pairs) if k == key(mutation.name))
    if mutation.how == "folded-rename":
        pairs[index] = (spelled, pairs[index][1])
    else:
        pairs.insert(index + 1 if mutation.after else index, (spelled, SHADOWS[mutation.name]))
    return Obj(tuple(pairs))


@st.composite
def mutated(draw: st.DrawFn, target: Obj, names: Sequence[str], mutations: list[Mutation]) -> Obj:
    """``target`` with up to two of its members ``names`` duplicated or respelled."""
    if not names:
        return target
    for name in draw(st.lists(st.sampled_from(names), unique=True, max_size=2)):
        how = draw(st.sampled_from(["duplicate", "escaped-duplicate", "folded-duplicate", "folded-rename"]))
        if how == "duplicate":
            spelled = key(name)
        elif how == "escaped-duplicate":
            spelled = draw(escaped_spelling(name))
        else:
            spelled = draw(folded_spelling(name))
        mutation = Mutation(name, how, draw(st.booleans()))
        target = mutate(target, mutation, spelled)
        mutations.append(mutation)
    return target


@st.composite
def key_games(draw: st.DrawFn) -> Case:
    tool = draw(st.sampled_from(sorted(BASES)))
    mutations: list[Mutation] = []
    arguments = draw(mutated(obj(**BASES[tool]), list(BASES[tool]), mutations))
    params = draw(
        mutated(
            obj(name=tool, arguments=arguments, _meta=obj(progressToken=1)), ["name", "arguments", "_meta"], mutations
        )
    )
    envelope = Obj((('"jsonrpc"', "2.0"), ('"id"', A), ('"method"', "tools/call"), ('"params"', params)))
    envelope = draw(mutated(envelope, ["jsonrpc", "id", "method", "params"], mutations))
    payload = render(envelope) + "\n"
    # With the id duplicated or respelled, the request may have no id the guard can answer to.
    must, may = ((), ("A", "B")) if any(m.name == "id" for m in mutations) else (("A",), ())
    if any(m.how != "folded-rename" for m in mutations):
        return Case("key-game", payload, must=must, may=may, refuse=True)
    if mutations:
        return Case("key-game", payload, must=must, may=may)
    return Case("key-game", payload, must=("A",), ok=("A",))


@given(case=key_games())
@SETTINGS
def test_duplicate_and_case_folded_keys(rigs: RigPool, case: Case) -> None:
    check(rigs, case)


# --- CR and LF anywhere --------------------------------------------------------------------------------------

MESSAGES: dict[str, Any] = {
    "safe": obj(jsonrpc="2.0", id=None, method="tools/call", params=obj(name="safe", arguments=obj())),
    "pay": obj(jsonrpc="2.0", id=None, method="tools/call", params=obj(name="pay", arguments=obj(amount=5, to="x"))),
    "evil": obj(jsonrpc="2.0", id=None, method="tools/call", params=obj(name="evil", arguments=obj())),
    "overspend": obj(
        jsonrpc="2.0", id=None, method="tools/call", params=obj(name="pay", arguments=obj(amount=5000, to="x"))
    ),
    "ping": obj(jsonrpc="2.0", id=None, method="ping"),
}
BREAKS = ["\r", "\n", "\r\n", " ", ""]


def with_id(message: Obj, slot: Raw) -> Obj:
    return Obj(tuple((k, slot if k == '"id"' else v) for k, v in message.pairs))


def tokens(value: Any) -> list[str]:
    """``value`` as JSON tokens, so breaks can go between any two of them."""
    if isinstance(value, Obj):
        out = ["{"]
        for index, (k, v) in enumerate(value.pairs):
            out += ([","] if index else []) + [k, ":", *tokens(v)]
        return [*out, "}"]
    return [render(value)]


@st.composite
def cr_lf_games(draw: st.DrawFn) -> Case:
    kinds = draw(st.lists(st.sampled_from(sorted(MESSAGES)), min_size=1, max_size=3))
    pieces: list[str] = []
    for index, kind in enumerate(kinds):
        message = with_id(MESSAGES[kind], (A, B, C)[index])
        parts = tokens(message)
        for _ in range(draw(st.integers(0, 2))):
            at = draw(st.integers(1, len(parts) - 1))
            parts.insert(at, draw(st.sampled_from(BREAKS[:3])))
        if draw(st.integers(0, 4)) == 0:  # a raw CR inside a string value
            strings = [i for i, p in enumerate(parts) if p.startswith('"') and i > 0 and parts[i - 1] == ":"]
            at = draw(st.sampled_from(strings))
            parts[at] = parts[at][:-1] + "\r" + '"'
        pieces.append("".join(parts))
        if index < len(kinds) - 1:
            pieces.append(draw(st.sampled_from(BREAKS)))
    payload = "".join(pieces) + draw(st.sampled_from(["\n", "\r\n"]))
    return expect_by_line(payload)


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [fold(k) for k, _ in pairs]
    if len(names) != len(set(names)):
        raise ValueError("duplicate keys")
    return dict(pairs)


def expect_by_line(payload: str) -> Case:
    """Split ``payload`` as the guard must (at LF): a line that is one strict message is judged and may be
    forwarded; any other line is refused, with an error to its id if the id can still be read (a line that
    is one JSON object, its only flaw a raw CR between tokens)."""
    must: set[str] = set()
    may: set[str] = set()
    ok: set[str] = set()
    forward: set[str] = set()
    for line in payload.split("\n")[:-1]:
        slots = {slot for text, slot in SLOT_OF.items() if text in line}
        numbered = line
        for text in SLOT_OF:
            numbered = numbered.replace(text, "7")
        try:
            message = strict_parse(numbered.encode())
        except ValueError:
            try:
                readable = isinstance(json.loads(numbered, object_pairs_hook=_unique), dict)
            except ValueError:
                readable = False
            (must if readable else may).update(slots)
            continue
        forward |= slots
        must |= slots
        params = message.get("params", {})
        if message.get("method") == "ping" or policy_allows(params.get("name"), params.get("arguments")):
            ok |= slots
    order = ("A", "B", "C")
    return Case(
        "cr-lf-game",
        payload,
        must=tuple(s for s in order if s in must),
        may=tuple(s for s in order if s in may),
        ok=tuple(s for s in order if s in ok),
        refuse=True,
        forward=tuple(s for s in order if s in forward),
    )


@given(case=cr_lf_games())
@SETTINGS
def test_carriage_returns_and_line_feeds(rigs: RigPool, case: Case) -> None:
    check(rigs, case)


# --- batches -------------------------------------------------------------------------------------------------

ELEMENTS = ["safe", "evil", "overspend", "ping", "notification", "nested", "number", "string", "null"]


@st.composite
def batch_games(draw: st.DrawFn) -> Case:
    kinds = draw(st.lists(st.sampled_from(ELEMENTS), min_size=0, max_size=3))
    slots = iter((A, B, C))
    elements: list[str] = []
    denied: list[str] = []
    allowed: list[str] = []
    flat = bool(kinds)
    for kind in kinds:
        if kind in ("number", "string", "null"):
            elements.append({"number": "5", "string": '"tools/call"', "null": "null"}[kind])
            flat = False
        elif kind == "notification":
            elements.append('{"jsonrpc":"2.0","method":"tools/call","params":{"name":"evil","arguments":{}}}')
        else:
            slot = next(slots)
            inner = render(with_id(MESSAGES["evil" if kind == "nested" else kind], slot))
            elements.append("[" + inner + "]" if kind == "nested" else inner)
            if kind == "nested":
                flat = False
            (denied if kind in ("evil", "overspend", "nested") else allowed).append(SLOT_OF[slot.text])
    payload = "[" + ",".join(elements) + "]\n"
    if not flat:
        return Case("batch-game", payload, may=tuple(denied + allowed), refuse=True)
    # The Python SDK reads no batches: what the guard forwards may go unanswered; what it refuses may not.
    return Case("batch-game", payload, must=tuple(denied), may=tuple(allowed))


@given(case=batch_games())
@SETTINGS
def test_batches(rigs: RigPool, case: Case) -> None:
    check(rigs, case)


# --- nesting -------------------------------------------------------------------------------------------------


SHAPES = (("[", "]"), ('{"a":', "}"), ('{"a":1,"b":', "}"), ("[0,", "]"))


def nesting_case(depth: int, pattern: Sequence[int]) -> Case:
    """A call to ``safe`` whose one argument nests ``depth`` containers, shaped by ``pattern`` (cycled)."""
    shapes = [SHAPES[pattern[level % len(pattern)]] for level in range(depth)]
    nest = "".join(o for o, _ in shapes) + "0" + "".join(c for _, c in reversed(shapes))
    payload = (
        '{"jsonrpc":"2.0","id":@A@,"method":"tools/call","params":{"name":"safe","arguments":{"x":' + nest + "}}}\n"
    )
    if depth <= 30:
        return Case("nesting-game", payload, must=("A",), ok=("A",))
    if depth <= 400:
        # Deeper than the Python SDK reads (about 200 levels in all): refused, or read and answered.
        return Case("nesting-game", payload, must=("A",))
    return Case("nesting-game", payload, may=("A",))


@given(
    depth=st.one_of(st.integers(1, 30), st.integers(150, 400), st.sampled_from([5_000, 100_000])),
    pattern=st.lists(st.integers(0, len(SHAPES) - 1), min_size=1, max_size=4),
)
@SETTINGS
def test_nesting(rigs: RigPool, depth: int, pattern: list[int]) -> None:
    check(rigs, nesting_case(depth, pattern))
