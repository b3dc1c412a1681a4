"""The strict reader's fast path against the strict reader alone (issue 21 without reopening issue 17).

``strict_loads`` first reads a frame with the C scanner and no Python hook, and keeps that reading only
when ``_same_as_strict`` proves the hooked (strict) decoder reads the same value. Its one job is to be
indistinguishable from the strict decoder: same accept or refuse, same error code and words, same value
(types included: 1, 1.0 and true stay apart), for ``strict_loads`` and for whole client frames
(``read_frame``: the refusal's ids, notification and batch flags too). Each check here runs a line once
as the guard reads it and once with the fast path switched off, and compares.

The lines come from a hand-written corpus of the classes issue 17 names (duplicate keys, keys that
collide under Unicode case folding, escaped keys, CR, BOM, surrogates, big numbers, deep nesting,
whitespace layouts, batches) and from hypothesis, which builds JSON-RPC calls with those games at every
level and lays them out in many ways.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_guard.wire import jsonrpc
from mcp_guard.wire.frames import Refused, read_frame
from mcp_guard.wire.jsonrpc import FrameError, strict_loads

Outcome = tuple[object, ...]


@contextmanager
def strict_only() -> Iterator[None]:
    """The hooked decoder alone: the fast reading is never kept."""
    with patch.object(jsonrpc, "_same_as_strict", lambda value, colons: False):
        yield


def loads_outcome(line: bytes) -> Outcome:
    try:
        value = strict_loads(line)
    except FrameError as exc:
        return ("refused", exc.code, exc.message)
    except RecursionError:  # must never happen: a frame too deep is a refusal
        return ("crashed",)
    return ("read", json.dumps(value), repr(value))  # repr tells 1 from 1.0 and True, and keeps key order


def frame_outcome(line: bytes) -> Outcome:
    try:
        frame = read_frame(line)
    except Refused as exc:
        return ("refused", exc.code, exc.message, repr(exc.ids), exc.notification, exc.batch)
    except RecursionError:
        return ("crashed",)
    if frame is None:
        return ("blank",)
    return (
        "read",
        frame.batch,
        tuple((m.kind, repr(m.id), m.method, json.dumps(m.body), repr(m.body)) for m in frame.messages),
    )


def assert_same(line: bytes) -> Outcome:
    """The line reads (or is refused) the same with and without the fast path; the guard's outcome."""
    fast_loads, fast_frame = loads_outcome(line), frame_outcome(line)
    with strict_only():
        slow_loads, slow_frame = loads_outcome(line), frame_outcome(line)
    assert fast_loads == slow_loads, line[:300]
    assert fast_frame == slow_frame, line[:300]
    assert fast_frame != ("crashed",)
    return fast_frame


def call(arguments: str, ident: str = "7", name: str = '"echo"') -> bytes:
    return ('{"jsonrpc":"2.0","id":' + ident + ',"method":"tools/call","params":{"name":' + name).encode() + (
        ',"arguments":' + arguments + "}}"
    ).encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------------------------------------------
# Hand-written corpus: each line is compared, and its expected verdict asserted where it matters.

REFUSED_ARGUMENTS = [
    '{"a":1,"a":2}',
    '{"a":"x:y","a":1}',  # the dropped value held a colon
    '{"a:":1,"a:":2}',  # the dropped key held one
    '{"name":"safe","Name":"evil"}',
    '{"dashboardUid":"safe","DashboardUID":"evil"}',
    '{"kind":"safe","\u212aind":"evil"}',  # K KELVIN SIGN, raw UTF-8
    '{"kind":"safe","\\u212aind":"evil"}',  # K KELVIN SIGN, escaped
    '{"\u212aind":"evil","kind":"safe"}',
    '{"pass":"x","pa\u017f\u017f":"y"}',  # LONG S, raw
    '{"pass":"x","pa\\u017fs":"y"}',  # LONG S, escaped
    '{"stra\u00dfe":1,"STRASSE":2}',  # casefold: ß is ss (refuses more than Go, never less)
    '{"name":"a","n\\u0061me":"b"}',  # one key, two spellings
    '{"n\\u0061me":"a","name":"b"}',
    '{"a/b":1,"a\\/b":2}',  # one key, two spellings without \\u
    '{"x":{"y":1,"y":2}}',
    '{"x":[{"y":1},{"y":1,"Y":2}]}',
    '{"x":[[[{"q":{"r":1,"R":1}}]]]}',
    '{"n":9007199254740993}',
    '{"n":-9007199254740993}',
    '{"n":[1,2,9007199254740993]}',
    '{"n":' + "9" * 5000 + "}",  # more digits than int() converts
    '{"n":1e400}',
    '{"n":-1e400}',
    '{"n":NaN}',
    '{"n":Infinity}',
    '{"n":-Infinity}',
    '{"s":"\\ud800"}',  # lone surrogate escapes
    '{"s":"\\udc00x"}',
    '{"\\ud800":1}',
    '{"s":"a\\ud83d"}',
]

READ_ARGUMENTS = [
    "{}",
    '{"a":1,"b":2}',
    '{"a":"x:y","b":":"}',
    '{"a:b":"c:d"}',
    '{"kind":"a","\u212a":"b"}',  # K and kind do not collide
    '{"k1":"a","k2":"b"}',
    '{"n\\u0061me":"a"}',  # an escaped key alone is fine
    '{"s":"\\ud83d\\ude00"}',  # a surrogate pair
    '{"s":"\U0001f600"}',
    '{"n":9007199254740992}',
    '{"n":-9007199254740992}',
    '{"n":-0}',
    '{"n":-0.0}',
    '{"n":1.0}',
    '{"n":1E5}',
    '{"n":1.5e-300}',
    '{"n":true,"m":false,"o":null}',
    '{"nested":{"a":{"b":{"c":[1,[2,[3,{"d":"e:f"}]]]}}}}',
    '{"x":[{"y":1},{"y":2}]}',  # the same key in sibling objects is not a duplicate
    '{"esc":"\\"\\\\\\/\\b\\f\\n\\r\\t"}',
    '{"colon\\"":":\\":"}',
]


@pytest.mark.parametrize("arguments", REFUSED_ARGUMENTS)
def test_refused_arguments_are_refused_by_both_readers(arguments: str) -> None:
    outcome = assert_same(call(arguments))
    assert outcome[0] == "refused"
    assert outcome[3] == "[7]"  # answered, to the request's id


@pytest.mark.parametrize("arguments", READ_ARGUMENTS)
def test_plain_arguments_read_the_same(arguments: str) -> None:
    outcome = assert_same(call(arguments))
    assert outcome[0] == "read"


def _layouts() -> list[bytes]:
    """One call in the layouts clients write: compact, spaced, pretty, tabs, CR, CRLF, BOM, trailing data."""
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo", "arguments": {"a": "b:c"}}}
    compact = json.dumps(body, separators=(",", ":"))
    spaced = json.dumps(body)
    return [
        compact.encode(),
        spaced.encode(),
        (compact + "\n").encode(),
        (compact + "\r\n").encode(),
        (" \t " + compact + " \t ").encode(),
        json.dumps(body, indent="\t").replace("\n", " ").encode(),
        json.dumps(body, indent=2).encode(),  # LF inside: the framing splits there; read_frame gets it whole
        json.dumps(body, indent=2).replace("\n", "\r").encode(),
        json.dumps(body, indent=2).replace("\n", "\r\n").encode(),
        b"\xef\xbb\xbf" + compact.encode(),
        compact.encode("utf-16"),
        compact.encode("utf-32-le"),
        (compact + " " + compact).encode(),
        (compact + compact).encode(),
        (compact + ":").encode(),
        (compact + " x").encode(),
        compact[:-1].encode(),
        compact.replace('"b:c"', '"b\rc"').encode(),  # a raw CR inside a string
        compact.replace('"b:c"', '"b\x01c"').encode(),  # a raw control character
        compact.encode() + b"\xff",
        compact.replace("b:c", "\udcff").encode("utf-8", "surrogateescape"),
        compact.replace("b:c", "\ud800").encode("utf-8", "surrogatepass"),  # an encoded surrogate
        b"",
        b" \t ",
        b"\n",
        b"7",
        b'"tools/call"',
        b"null",
        b"[]",
        b"[7]",
        b"{}",
    ]


@pytest.mark.parametrize("line", _layouts())
def test_layouts_read_the_same(line: bytes) -> None:
    assert_same(line)


def _batches() -> list[bytes]:
    good = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":1}}}'
    dup = '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"a":1,"a":2}}}'
    folded = '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","NAME":"rm"}}'
    note = '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1}}'
    response = '{"jsonrpc":"2.0","id":"s1","result":{}}'
    return [
        f"[{good}]".encode(),
        f"[{good},{note}]".encode(),
        f"[{good},{dup}]".encode(),
        f"[{dup},{good}]".encode(),
        f"[{good},{folded}]".encode(),
        f"[{good},[{good}]]".encode(),
        f"[{good},7]".encode(),
        f"[{good},{response}]".encode(),
        f"[ {good} , {note} ]".encode(),
        f"[{good},{good}]".encode(),
        f"[{good}".encode(),
        f"[{good}]\r[{good}]".encode(),
        f"{good}\r{dup}".encode(),
    ]


@pytest.mark.parametrize("line", _batches())
def test_batches_read_the_same(line: bytes) -> None:
    assert_same(line)


@pytest.mark.parametrize("depth", [1, 50, 188, 189, 190, 191, 400, 900, 990, 1000, 1100, 3000, 20000])
@pytest.mark.parametrize("shape", ["[", '{"a":', '[{"a":', '{"a":1,"b":'])
def test_deep_nesting_reads_the_same(depth: int, shape: str) -> None:
    closer = {"[": "]", '{"a":': "}", '[{"a":': "}]", '{"a":1,"b":': "}"}[shape]
    outcome = assert_same(call(shape * depth + "1" + closer * depth))
    if depth >= 190:  # arguments at depth 3 of the message: deeper than 190 in all
        assert outcome[0] == "refused"
    if depth <= 50:
        assert outcome[0] == "read"


# ---------------------------------------------------------------------------------------------------
# Generated: calls whose arguments play every game at every level, in many layouts.

_KEY_SPELLINGS = {
    # a name, and the ways to write it (or a key that collides with it) in JSON source
    "name": ['"name"', '"Name"', '"NAME"', '"n\\u0061me"', '"n\\u0041me"', '"nam\\u0065"'],
    "kind": ['"kind"', '"\u212aind"', '"\\u212aind"', '"KIND"', '"\\u004bind"'],
    "pass": ['"pass"', '"pa\u017fs"', '"pa\\u017f\\u017f"', '"PASS"', '"pa\\u0073s"'],
    "a:b": ['"a:b"', '"A:B"', '"a\\u003ab"', '"a\\u003aB"'],
    "a/b": ['"a/b"', '"a\\/b"', '"A\\/B"', '"a\\u002fb"'],
    "q": ['"q"', '"Q"'],
}

_SCALARS = st.sampled_from(
    [
        "1",
        "-0",
        "0.5",
        "1e5",
        "-1.0E-3",
        "9007199254740992",
        "-9007199254740992",
        "9007199254740993",
        "-9007199254740993",
        "12345678901234567890",
        "1e400",
        "true",
        "false",
        "null",
        "NaN",
        '"x"',
        '"x:y"',
        '":"',
        '"::"',
        '"\\u003a"',
        '"\\\\u003a"',  # an escaped backslash before u: not an escape
        '"\\/"',
        '"\\ud800"',
        '"\\ud83d\\ude00"',
        '"\U0001f600"',
        '"\u212a"',
        '""',
        '"\\"quoted:\\""',
    ]
)

_SPACE = st.sampled_from(["", "", "", " ", "  ", "\t", "\n", "\r", "\r\n", " \t "])


@st.composite
def values(draw: st.DrawFn, depth: int = 0) -> str:
    if depth >= 4 or draw(st.integers(0, 2)) == 0:
        return draw(_SCALARS)
    if draw(st.booleans()):
        items = draw(st.lists(values(depth + 1), max_size=3))
        return "[" + draw(_SPACE) + ",".join(items) + draw(_SPACE) + "]"
    return draw(objects(depth + 1))


@st.composite
def objects(draw: st.DrawFn, depth: int = 0) -> str:
    names = draw(st.lists(st.sampled_from(sorted(_KEY_SPELLINGS)), max_size=4))
    pairs = []
    for name in names:
        key = draw(st.sampled_from(_KEY_SPELLINGS[name]))
        pairs.append(draw(_SPACE) + key + draw(_SPACE) + ":" + draw(_SPACE) + draw(values(depth)))
    return "{" + ",".join(pairs) + draw(_SPACE) + "}"


@st.composite
def calls(draw: st.DrawFn) -> str:
    envelope = draw(
        st.permutations(
            [
                '"jsonrpc":"2.0"',
                draw(st.sampled_from(['"id":7', '"id":"7"', '"id":7.0', '"id":null', '"id":[7]'])),
                draw(st.sampled_from(['"method":"tools/call"', '"method":"tools\\/call"', '"Method":"tools/call"'])),
                '"params":{"name":"echo","arguments":' + draw(objects()) + "}",
            ]
        )
    )
    extra = draw(st.sampled_from(["", ',"id":8', ',"ID":8', ',"jsonrpc":"2.0"', ',"params":{}']))
    return "{" + ",".join(envelope) + extra + "}"


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    messages = draw(st.lists(calls(), min_size=1, max_size=3))
    lone = len(messages) == 1 and draw(st.booleans())
    text = messages[0] if lone else "[" + ",".join(messages) + "]"
    text = draw(_SPACE) + text + draw(st.sampled_from(["", " ", "\r\n", "\n", ":", " 1", ' {"a":1}']))
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        data = draw(st.sampled_from([b"\xef\xbb\xbf", b" ", b"\xff"])) + data
    return data


@given(line=lines())
@settings(max_examples=250, deadline=None)
def test_generated_calls_read_the_same(line: bytes) -> None:
    assert_same(line)


@given(arguments=objects())
@settings(max_examples=200, deadline=None)
def test_generated_arguments_read_the_same(arguments: str) -> None:
    assert_same(call(arguments))


# ---------------------------------------------------------------------------------------------------
# Bounded state: what the fast path remembers between frames stays small whatever the client sends.


def test_the_fast_path_keeps_no_large_keys_between_frames() -> None:
    jsonrpc._FOLDS_APART.clear()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(40):
            key = f"{index:05d}" + "x" * 250_000
            line = call(json.dumps({key: 1, "b": 2}), ident=str(index))
            assert frame_outcome(line)[0] == "read"
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 1_000_000, f"{kept} bytes kept after 40 frames of 250 kB keys"
