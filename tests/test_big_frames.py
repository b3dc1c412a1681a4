"""Large frames (issue 21): the pumps' reader and the strict reading of a judged frame, in memory.

The pump reads a line longer than one readline piece into one growing buffer instead of letting
``readline()`` build it (which holds it twice: its chunks, then their join). These tests hold it to
giving exactly the lines ``readline()`` gives, on tricky input split anywhere across reads, and check
the memory it and ``read_frame`` take for a 20 MB frame with ``tracemalloc`` (no timing).
"""

from __future__ import annotations

import io
import json
import os
import random
import threading
import tracemalloc
from pathlib import Path
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_guard import relay
from mcp_guard.actions import ToUpstream
from mcp_guard.judge import Judge
from mcp_guard.limits.memory import MemoryLimiter
from mcp_guard.pipeline import Snapshot
from mcp_guard.policy.engine import Engine
from mcp_guard.policy.load import load_policy
from mcp_guard.session import Session
from mcp_guard.wire import frames, jsonrpc
from tests.test_fast_reader import READ_ARGUMENTS, REFUSED_ARGUMENTS, frame_outcome, lines, loads_outcome, strict_only

PIECE = relay._PIECE
BIG = 20_000_000


def pumped(data: bytes, cuts: list[int]) -> list[bytes]:
    """The lines the client pump hands on when ``data`` arrives in writes cut at ``cuts``."""
    read_fd, write_fd = os.pipe()
    lines: list[bytes] = []
    done = threading.Event()

    def write() -> None:
        try:
            start = 0
            for cut in [*cuts, len(data)]:
                relay.write_all(write_fd, memoryview(data)[start:cut])  # type: ignore[arg-type]  # no copy
                start = cut
        finally:
            os.close(write_fd)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        relay._pump(read_fd, lines.append, done.set, "test").join(60)
        assert done.is_set()
    finally:
        writer.join(60)
        os.close(read_fd)
    return lines


def readline_lines(data: bytes) -> list[bytes]:
    """What the pump read before the long-line reader: ``readline()`` until it returns nothing."""
    reader = io.BufferedReader(io.BytesIO(data), buffer_size=relay._READ_BUFFER)  # type: ignore[arg-type]
    return list(iter(reader.readline, b""))


TRICKY = [
    b"",
    b"\n",
    b"\n\n\r\n",
    b"a",
    b'{"a":1}\n{"b":2}',  # no final newline
    b"lone\rcarriage\rreturns\r\nand crlf\r\n\r",
    b"x" * (PIECE - 1) + b"\n" + b"y" * PIECE + b"\n" + b"z" * (PIECE + 1) + b"\n",
    b"x" * PIECE,  # exactly one piece, then end of input
    b"x" * (PIECE - 1) + b"\r" + b"\n" + b"\r" * PIECE + b"\n",
    b"w" * (2 * PIECE) + b"\n" + b"v" * (3 * PIECE) + b"\r\n" + b"u" * (2 * PIECE),  # long, and no newline at the end
    b"\n".join(b"%d" % i * (i * 997 % (3 * PIECE)) for i in range(40)),
    (b"q" * 3_000_000 + b"\r") * 2 + b"\n" + b"end\n",
]


@pytest.mark.parametrize("data", TRICKY, ids=range(len(TRICKY)))
def test_the_pump_reads_the_lines_readline_reads(data: bytes) -> None:
    expected = readline_lines(data)
    assert pumped(data, []) == expected
    rng = random.Random(len(data))
    for _ in range(4):  # the same bytes arriving in other writes: at every piece's edge, and anywhere
        edges = [n for k in range(1, 8) for n in (k * PIECE - 1, k * PIECE, k * PIECE + 1) if 0 < n < len(data)]
        anywhere = rng.sample(range(1, len(data)), min(len(data) - 1, 20)) if len(data) > 1 else []
        assert pumped(data, sorted(set(edges + anywhere))) == expected


def test_a_20_mb_line_is_read_whole_and_held_once() -> None:
    line = b'{"jsonrpc":"2.0","id":1,"result":{"text":"' + b"x" * BIG + b'"}}\n'
    data = line + b"next\n"
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        lines = pumped(data, [PIECE // 2, 5_000_000])
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert lines == [line, b"next\n"]
    # readline() builds it from chunks and then joins them: twice its size at the peak.
    assert peak < 1.3 * len(line), f"{peak / len(line):.2f} times the line"


# --- read_frame: a large frame is read in place, with the same outcome ---------------------------------------


def call_line(arguments: str, ident: str = "7") -> bytes:
    head = '{"jsonrpc":"2.0","id":' + ident + ',"method":"tools/call","params":{"name":"echo","arguments":'
    return (head + arguments + "}}").encode()


PAD = "p" * (frames._IN_PLACE + 10)
LARGE = [
    call_line('{"pad":"' + PAD + '"}') + b"\n",
    call_line('{"pad":"' + PAD + '"}') + b"\r\n",
    call_line('{"pad":"' + PAD + '"}'),
    call_line('{"pad":"' + PAD + '"}') + b"\r",
    b"  \t " + call_line('{"pad":"' + PAD + '"}') + b" \t\r\n",
    call_line('{"pad":"' + PAD + '"}')[:-1] + b"\n",  # cut short: the error's position is at the end
    call_line('{"pad":"' + PAD + '"}')[:-1] + b"\r\n",
    call_line('{"pad":"' + PAD + '"}')[:-3] + b"   \n",
    call_line('{"pad":"' + PAD + '"}') + b" x\n",  # extra data
    call_line('{"pad":"' + PAD + '"}') + b"{}\r\n",
    call_line('{"pad":"' + PAD + '\\u0041"}') + b"\n",
    call_line('{"pad":"' + PAD + '\\ud800"}') + b"\n",
    call_line('{"pad":"' + PAD + '","pad":1}') + b"\n",  # duplicate key
    call_line('{"pad":"' + PAD + '","PAD":1}') + b"\n",  # keys equal under case folding
    call_line('{"pad":"' + PAD + '"}').replace(b'"id":7', b'"ID":7') + b"\n",
    call_line('{"pad":"' + PAD + '"}').replace(b"pppp", b"pp\rp", 1) + b"\n",  # a CR inside
    call_line('{"pad":"' + PAD + '"}') + b"\r\r\n",
    b"\xef\xbb\xbf" + call_line('{"pad":"' + PAD + '"}') + b"\n",
    call_line('{"pad":"' + PAD + '"}').replace(b"pppp", b"pp\xffp", 1) + b"\n",  # not UTF-8
    b"[" + call_line('{"pad":"' + PAD + '"}') + b"," + call_line("{}", "8") + b"]\n",
    b"[" + call_line('{"pad":"' + PAD + '"}') + b",[]]\n",
    call_line("[" * 200 + "1" + "]" * 200 + ',"pad":"' + PAD + '"').replace(b"arguments", b"argumentz") + b"\n",
    b" " * (frames._IN_PLACE + 10) + b"\n",
    b" \t" * (frames._IN_PLACE + 10) + b"\r\n",
    b" " * (frames._IN_PLACE + 10) + b"x\n",
]


@pytest.mark.parametrize("line", LARGE, ids=range(len(LARGE)))
def test_a_large_frame_reads_as_its_copy_did(line: bytes) -> None:
    assert len(line) > frames._IN_PLACE
    in_place = frame_outcome(line)
    with patch.object(frames, "_IN_PLACE", len(line) + 10):  # every frame copied out of its line, as before
        copied = frame_outcome(line)
    assert in_place == copied


def test_a_judged_20_mb_frame_is_parsed_from_its_bytes_alone(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"version": "1", "default": "allow"}))
    engine = Engine(load_policy(path))
    warnings: list[str] = []
    session = Session(Judge(engine, MemoryLimiter()), Snapshot(engine), warnings.append)
    line = call_line('{"size":16,"pad":"' + "p" * BIG + '"}') + b"\n"
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        actions = session.from_client(line)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    # Forwarded as the very bytes that were judged.
    assert len(actions) == 1 and isinstance(actions[0], ToUpstream) and actions[0].frame is line
    assert warnings == []
    # The parsed value, the frame's size: no copy of the body, no decoded text (it was 3 times the frame).
    assert peak < 1.5 * len(line), f"{peak / len(line):.2f} times the frame"


# --- the status of a large answer, read by pydantic-core's parser ------------------------------------------

ODD_ANSWERS = [
    b'{"a":1,"a":2}',
    b'{"a":' + b"9" * 5000 + b"}",
    b'{"a":' + b"9" * 400 + b"}",
    b'{"a":"\\ud800"}',
    b'{"a":"\\ud83d\\ude00 \\u00e9 \\" \\\\ \\/ \\b\\f\\n\\r\\t"}',
    b'{"a":NaN,"b":Infinity,"c":-Infinity}',
    b'{"a":"\xff"}',
    b'\xef\xbb\xbf{"a":1}',
    b"[" * 3000 + b"]" * 3000,
    b"[" * 150 + b"]" * 150,
    b'{"a":"\x01"}',
    b'{"a":1} x',
    b' {"a":1}\r\n',
    b'{"a":1e400,"b":-0,"c":-0.0,"d":1.0,"e":1E2,"f":0.1,"g":5e-324,"h":1.7976931348623157e308}',
    '{"a":1}'.encode("utf-16"),
    '{"a":"é"}'.encode("utf-32"),
    b"",
    b"null",
    b'"text"',
    b"[1,]",
    b"{'a':1}",
    b'{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true},"error":{"code":1}}',
]


def same_reading(line: bytes) -> None:
    from mcp_guard.wire.jsonrpc import loads_or_none, quick_loads_or_none

    quick, plain = quick_loads_or_none(line), loads_or_none(line)
    assert repr(quick) == repr(plain), line[:200]  # repr tells 1 from 1.0 and True, keeps key order and NaN


@pytest.mark.parametrize("line", ODD_ANSWERS, ids=range(len(ODD_ANSWERS)))
def test_the_quick_parser_reads_what_loads_or_none_reads(line: bytes) -> None:
    same_reading(line)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values, st.booleans(), st.sampled_from([None, 1, "\t"]))
def test_the_quick_parser_reads_any_json_as_loads_or_none(value: object, ascii_only: bool, indent: object) -> None:
    same_reading(json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode("utf-8", "surrogatepass"))


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][-+]?[0-9]{1,3})?", fullmatch=True))
def test_the_quick_parser_reads_numbers_as_loads_or_none(number: str) -> None:
    same_reading(b'{"n":' + number.encode() + b"}")


# --- strict_loads: a frame past 1 MiB is read by pydantic-core from its bytes, with the same outcome ----------

MIB_PAD = "p" * (jsonrpc._LARGE_FRAME + 10)


def padded(line: bytes, where: str) -> bytes:
    """``line`` past the large-frame size: a long string beside the call's name, or spaces before it."""
    if where == "spaces":
        return b" " * (jsonrpc._LARGE_FRAME + 10) + line
    return line.replace(b'"name":"echo"', b'"name":"echo","zpad":"' + MIB_PAD.encode() + b'"', 1)


def assert_reads_as_strict_decoder(line: bytes) -> tuple[object, ...]:
    """The guard's outcome for ``line`` equals the hooked strict decoder's alone, on a copy of the body."""
    got = (loads_outcome(line), frame_outcome(line))
    with (
        strict_only(),
        patch.object(jsonrpc, "_LARGE_FRAME", 1 << 62),
        patch.object(frames, "_IN_PLACE", 1 << 62),
    ):
        reference = (loads_outcome(line), frame_outcome(line))
    assert got == reference, line[:300]
    return got[1]


@pytest.mark.parametrize("where", ["string", "spaces"])
@pytest.mark.parametrize("arguments", REFUSED_ARGUMENTS)
def test_large_refused_arguments_are_refused_as_before(arguments: str, where: str) -> None:
    line = padded(call_line(arguments), where)
    assert len(line) > jsonrpc._LARGE_FRAME
    outcome = assert_reads_as_strict_decoder(line)
    assert outcome[0] == "refused"
    assert outcome[3] == "[7]"


@pytest.mark.parametrize("where", ["string", "spaces"])
@pytest.mark.parametrize("arguments", READ_ARGUMENTS)
def test_large_plain_arguments_read_as_before(arguments: str, where: str) -> None:
    line = padded(call_line(arguments), where)
    assert assert_reads_as_strict_decoder(line)[0] == "read"


LARGE_ODD = [
    b"\xef\xbb\xbf",
    b"\xff",
    b"\xed\xa0\x80",  # a surrogate in UTF-8: not valid UTF-8
    b"\xc0\xaf",  # an overlong encoding
    b"\x01",
    b"\x7f",
    b"\t",
    b"\\x",
    b"\\u00e9",
]


@pytest.mark.parametrize("odd", LARGE_ODD)
def test_large_frames_with_odd_bytes_read_as_before(odd: bytes) -> None:
    line = padded(call_line('{"a":1}'), "string")
    assert_reads_as_strict_decoder(line.replace(b"pppp", b"pp" + odd + b"p", 1))
    assert_reads_as_strict_decoder(odd + line)


@given(line=lines(), where=st.sampled_from(["string", "spaces"]))
@settings(max_examples=150, deadline=None)
def test_large_generated_calls_read_as_before(line: bytes, where: str) -> None:
    assert_reads_as_strict_decoder(padded(line, where))
