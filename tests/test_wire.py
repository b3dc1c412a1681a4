"""Frame classification and strict parsing: the pure parts of the wire layer."""

from __future__ import annotations

import json
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_guard.wire import jsonrpc
from mcp_guard.wire.frames import Refused, read_frame
from mcp_guard.wire.jsonrpc import INVALID_REQUEST, PARSE_ERROR, FrameError, loads_or_none, strict_loads
from mcp_guard.wire.peek import classify, peek
from mcp_guard.wire.tools_list import filter_tools_result

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
ids = st.integers(-(2**31), 2**31) | st.text(max_size=12)
methods = st.sampled_from(["tools/call", "tools/list", "ping", "notifications/cancelled", 'x/"quoted"', "é/ü"])


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["request", "notification", "result", "error"]))
    msg: dict[str, Any] = {"jsonrpc": "2.0"}
    if kind in ("request", "result", "error"):
        msg["id"] = draw(ids)
    if kind in ("request", "notification"):
        msg["method"] = draw(methods)
        msg["params"] = draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3))
    elif kind == "result":
        msg["result"] = draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3))
    else:
        msg["error"] = {"code": -32000, "message": draw(st.text(max_size=10))}
    return msg


def ts_layout(msg: dict[str, Any]) -> dict[str, Any]:
    """The TypeScript SDK's key order: payload first, jsonrpc and id last."""
    out = {k: v for k, v in msg.items() if k not in ("jsonrpc", "id")}
    out["jsonrpc"] = "2.0"
    if "id" in msg:
        out["id"] = msg["id"]
    return out


@settings(max_examples=400)
@given(
    msg=messages(),
    layout=st.sampled_from(["python", "ts", "spaced", "shuffled"]),
    ascii_only=st.booleans(),
    rnd=st.randoms(use_true_random=False),
)
def test_peek_agrees_with_a_full_parse(msg: dict[str, Any], layout: str, ascii_only: bool, rnd: Any) -> None:
    shaped = ts_layout(msg) if layout == "ts" else msg
    if layout == "shuffled":
        items = list(msg.items())
        rnd.shuffle(items)
        shaped = dict(items)
    separators = (", ", ": ") if layout == "spaced" else (",", ":")
    line = json.dumps(shaped, separators=separators, ensure_ascii=ascii_only).encode() + b"\n"
    fast, full = peek(line), classify(json.loads(line))
    assert (fast.kind, fast.id, fast.method) == (full.kind, full.id, full.method)


@pytest.mark.parametrize(
    "line",
    [b"Server starting on stdio...\n", b"[INFO] ready\n", b"\n", b"{not json}\n", b'{"jsonrpc":"2.0"}\n', b"42\n"],
)
def test_non_messages_are_invalid(line: bytes) -> None:
    assert peek(line).kind == "invalid"


def test_peek_reads_a_huge_frame_without_parsing_it() -> None:
    body = "x" * 5_000_000
    line = b'{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"' + body.encode() + b'"}]}}\n'
    assert (peek(line).kind, peek(line).id) == ("response", 7)
    ts = b'{"result":{"text":"' + body.encode() + b'"},"jsonrpc":"2.0","id":"a-1"}\n'
    assert (peek(ts).kind, peek(ts).id) == ("response", "a-1")


@pytest.mark.parametrize(
    "line",
    [
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}',
        b'{"jsonrpc":"2.0","id":1,"method":"tools\\/call","params":{}}',
        b'{"jsonrpc":"2.0","id":1,"method":"\\u0074ools/call","params":{}}',
        b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]',
        b'  [{"jsonrpc":"2.0","id":1,"method":"ping"}]',
    ],
)
def test_anything_that_could_be_a_call_is_read_whole(line: bytes) -> None:
    # Every client frame is parsed; an escaped method name reads as the method every reader sees.
    frame = read_frame(line)
    assert frame is not None
    assert frame.messages[0].method in ("tools/call", "ping")


def test_plain_frames_are_read_too() -> None:
    frame = read_frame(b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}\n')
    assert frame is not None and frame.messages[0].kind == "request" and frame.messages[0].id == 1
    with pytest.raises(Refused):
        read_frame(b'{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}\n')


@pytest.mark.parametrize(
    ("line", "code", "words"),
    [
        (b'{"method":"tools/call","method":"ping"}', INVALID_REQUEST, "duplicate key 'method'"),
        (b'{"params":{"name":"a","na\\u006de":"b"}}', INVALID_REQUEST, "duplicate key 'name'"),
        (b'{"x": NaN}', PARSE_ERROR, "NaN is not valid JSON"),
        (b'{"x": -Infinity}', PARSE_ERROR, "-Infinity is not valid JSON"),
        (b'{"x": 9007199254740993}', INVALID_REQUEST, "outside ±2^53"),
        (b'{"x": 1e400}', INVALID_REQUEST, "too large"),
        (b"\xef\xbb\xbf{}", PARSE_ERROR, "byte-order mark"),
        (b'{"x": "\xff"}', PARSE_ERROR, "not valid UTF-8"),
        (b"[" * 100_000, INVALID_REQUEST, "nested too deeply"),
        (b'{"a":1,}', PARSE_ERROR, "not valid JSON"),
    ],
)
def test_strict_parse_refuses_ambiguous_frames(line: bytes, code: int, words: str) -> None:
    with pytest.raises(FrameError) as info:
        strict_loads(line)
    assert info.value.code == code
    assert words in info.value.message


def test_strict_parse_accepts_crlf_and_escapes() -> None:
    assert strict_loads(b'{"method":"tools\\/call","n":9007199254740992}\r\n') == {
        "method": "tools/call",
        "n": 2**53,
    }


# The strict reader's fast path (no Python hook per object and integer) must read exactly what the hooked
# decoder reads, and refuse exactly what it refuses, with the same words.

_KEYS = ["a", "A", "a:", "A:", ":", "\\/", "/", "\\u0061", "s", "\\u017f", "k", "\\u212a", "\u017f", 'x\\"y']
_SCALARS = [
    "1",
    "-0",
    "9007199254740992",
    "-9007199254740992",
    "9007199254740993",
    "-9007199254740993",
    "1" * 5000,
    "1.5",
    "1e400",
    "NaN",
    "true",
    "null",
    '"x:y"',
    '":"',
    '"\\u003a"',
    '"\\/"',
    '"\\ud800"',
    '""',
]


@st.composite
def json_texts(draw: st.DrawFn, depth: int = 0) -> str:
    """JSON source text (or something close to it) built to trip the fast path: repeated keys in several
    spellings, colons in keys and strings, escapes, integers at the edge of ±2^53, trailing data."""
    if depth < 3 and draw(st.booleans()):
        if draw(st.booleans()):
            items = draw(st.lists(json_texts(depth + 1), max_size=3))
            return "[" + ",".join(items) + "]"
        pairs = draw(st.lists(st.tuples(st.sampled_from(_KEYS), json_texts(depth + 1)), max_size=4))
        return "{" + ",".join(f'"{key}":{value}' for key, value in pairs) + "}"
    return draw(st.sampled_from(_SCALARS))


def _outcome(line: bytes) -> tuple[Any, ...]:
    try:
        value = strict_loads(line)
    except FrameError as exc:
        return ("refused", exc.code, exc.message)
    return ("read", json.dumps(value), repr(value))  # repr tells 1 from 1.0 and True


@given(text=json_texts(), trailing=st.sampled_from(["", " ", ' {"a":1}', ' {"a":1,"a":2}', ":", "\r\n"]))
@settings(max_examples=600, deadline=None)
def test_the_fast_strict_reader_reads_and_refuses_as_the_hooked_one(text: str, trailing: str) -> None:
    line = (text + trailing).encode()
    fast = _outcome(line)
    with patch.object(jsonrpc, "_same_as_strict", lambda value, colons: False):  # the hooked decoder only
        assert _outcome(line) == fast


@pytest.mark.parametrize(
    "line",
    [
        b'{"a":"x:y","a":1}',  # the dropped value held a colon
        b'{"a:":1,"a:":2}',  # so did the dropped key
        b'{"\\/":1,"/":2}',  # one key, two spellings, no \\u escape
        b'{"a":{"b":1,"b":{"c:":":"}}}',
        b'{"a":1} {"b":2}',
        b'{"a":9007199254740993}',
        b"9007199254740993",
        b"[[1],[-9007199254740993]]",
    ],
)
def test_the_fast_strict_reader_catches_what_a_dict_hides(line: bytes) -> None:
    with pytest.raises(FrameError):
        strict_loads(line)


def test_a_plain_call_is_read_without_the_hooked_decoder() -> None:
    line = b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"url":"https://x"}}}'
    with patch.object(jsonrpc, "_SCAN", None):  # calling it would fail
        assert strict_loads(line)["params"]["arguments"] == {"url": "https://x"}


def _json_loads_or_none(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None


@given(
    text=json_texts(),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32-be"]),
    around=st.sampled_from(["", " ", "\n", " \t\r\n", "x", " 1", "\x00"]),
)
@settings(max_examples=300, deadline=None)
def test_bookkeeping_reads_what_json_loads_reads(text: str, encoding: str, around: str) -> None:
    line = (" " + text + around).encode(encoding, "surrogatepass")
    assert repr(loads_or_none(line)) == repr(_json_loads_or_none(line))


def test_tools_list_filter_keeps_every_other_field() -> None:
    line = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 3,
            "result": {
                "tools": [{"name": "a", "x": 1}, {"name": "secret"}, {"name": "b"}],
                "nextCursor": "c2",
                "_meta": {"k": "v"},
                "resultType": "complete",
                "ttlMs": 0,
            },
        }
    ).encode()
    out = filter_tools_result(line, lambda name: name != "secret")
    assert out is not None
    assert json.loads(out) == {
        "jsonrpc": "2.0",
        "id": 3,
        "result": {
            "tools": [{"name": "a", "x": 1}, {"name": "b"}],
            "nextCursor": "c2",
            "_meta": {"k": "v"},
            "resultType": "complete",
            "ttlMs": 0,
        },
    }
    assert filter_tools_result(line, lambda name: True) is None
