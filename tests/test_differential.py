"""Differential tests: hostile client frames sent through the guard to real MCP servers (issue 17).

Three readers sit behind the guard, each a real stdio MCP server that reads its input its own way:

* ``python``: the Python SDK (``MCPServer``, ``tests/servers/sdk_reader.py``): a text reader with
  universal newlines, so a bare ``\\r`` ends a line; pydantic keeps the last of duplicate keys;
* ``typescript``: the TypeScript SDK (``McpServer`` + ``StdioServerTransport``, ``tests/node/ts_reader.mjs``):
  lines split at ``\\n``, ``JSON.parse`` keeps the last duplicate;
* ``go``: Go's ``encoding/json`` (``tests/go``): a stream decoder (a value may span lines, a line may hold
  several), typed structs matching keys case-insensitively with Unicode folding, the last match winning.

Each reader records every tool call it executes (tool and arguments, as it read them) and every byte it
receives. For every frame and every reader the tests check:

* a call the policy refuses is never executed (the reader's record), and never forwarded: every line the
  reader receives is one strictly parsed JSON-RPC message or flat batch (UTF-8, no raw CR, no duplicate or
  case-colliding keys) whose calls the policy allows;
* every request whose id can be read gets exactly one answer, and nothing answers an id nobody sent;
* where the issue's rule says the frame must be refused: the answers are JSON-RPC errors (-32700 /
  -32600), and the reader receives nothing of it;
* the guard is still alive: a ``safe`` call sent after the frame is executed and answered.

One guard per reader serves all the frame cases (a new one after a case that failed, so one failure does
not spill into the next case); the request-id and approval tests get their own guard per reader.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    HANDSHAKE_VERSION,
    INITIALIZED,
    PYTHON,
    ROOT,
    RawSession,
    guard_command,
    isolated_env,
    tool_call,
    write_policy,
)

SDK_READER = ROOT / "tests" / "servers" / "sdk_reader.py"
TS_READER = ROOT / "tests" / "node" / "ts_reader.mjs"
GO_READER_SOURCE = ROOT / "tests" / "go"
READERS = ("python", "typescript", "go")
CALLS_VAR, WIRE_VAR = "MCP_GUARD_TEST_CALLS", "MCP_GUARD_TEST_WIRE"

PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS = -32700, -32600, -32602
REFUSAL_CODES = (PARSE_ERROR, INVALID_REQUEST)

POLICY: dict[str, Any] = {
    "version": "1",
    "default": "deny",
    "tools": {
        "safe": {},
        "evil": {"action": "deny", "reason": "Never."},
        "pay": {"require": [{"path": "args.amount", "op": "lte", "value": 10, "reason": "At most 10."}]},
        "dashboard": {"require": [{"path": "args.dashboardUid", "op": "eq", "value": "safe"}]},
    },
}

SENTINEL_TIMEOUT_S = 10.0  # the answer to the `safe` call sent after each case
GRACE_S = 2.0  # how long answers that must come may trail the sentinel's (SDK servers answer out of order)


def policy_allows(tool: Any, arguments: Any) -> bool:
    """The tests' policy, applied to a call as a reader read it."""
    if not isinstance(arguments, dict):
        return False
    if tool == "safe":
        return True
    if tool == "pay":
        amount = arguments.get("amount")
        return isinstance(amount, (int, float)) and not isinstance(amount, bool) and amount <= 10
    if tool == "dashboard":
        return arguments.get("dashboardUid") == "safe"
    return False


# --- reading what a reader received, the strictest way --------------------------------------------------------

# Go's encoding/json folds keys with these two beside ASCII case (CVE-2026-27896).
_GO_FOLD = str.maketrans({"\u017f": "s", "\u212a": "k"})


def fold(key: str) -> str:
    return key.translate(_GO_FOLD).lower()


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, str] = {}
    for key, _ in pairs:
        folded = fold(key)
        if folded in seen:
            raise ValueError(f"keys {seen[folded]!r} and {key!r} collide (duplicate or equal under case folding)")
        seen[folded] = key
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_parse(line: bytes) -> Any:
    """A forwarded line as every reader reads it, or ValueError saying why readers may disagree."""
    body = line[:-1] if line.endswith(b"\r") else line  # a final CRLF is fine for every reader
    text = body.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if "\r" in text:
        raise ValueError("a raw CR inside the line (a universal-newline reader splits it there)")
    if text.startswith("\ufeff"):
        raise ValueError("a byte-order mark")
    try:
        value = json.loads(text, object_pairs_hook=_strict_object, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("nesting too deep to parse") from None
    messages = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        raise ValueError("an empty batch")
    for message in messages:
        if not isinstance(message, dict):
            raise ValueError(f"not a JSON-RPC message: {message!r:.80}")
        if message.get("jsonrpc") != "2.0":
            raise ValueError("jsonrpc is not '2.0'")
    return value


def messages_of(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def succeeded(answer: Mapping[str, Any]) -> bool:
    """A tool call's answer that is a result and not an error result (the TypeScript SDK omits ``isError``)."""
    result = answer.get("result")
    return isinstance(result, dict) and not result.get("isError", False)


def id_key(value: Any) -> tuple[str, Any]:
    """Ids compared as JSON values: 7 and 7.0 are the same id, "7" is another."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return ("other", json.dumps(value, sort_keys=True))
    return ("str", value) if isinstance(value, str) else ("num", value)


NULL_KEY = id_key(None)


# --- the readers ----------------------------------------------------------------------------------------------


def build_go_reader(folder: Path) -> Path:
    """``go build`` the Go reader into ``folder`` (offline, standard library only, caches in ``folder``)."""
    go = shutil.which("go")
    if go is None:
        pytest.fail(
            "the Go reader needs the Go toolchain and `go` is not on PATH: install Debian's golang-go "
            "(apt-get install golang-go; .ci/run does)"
        )
    env = {
        **os.environ,
        "GOCACHE": str(folder / "gocache"),
        "GOPATH": str(folder / "gopath"),
        "GOENV": "off",
        "GOFLAGS": "",
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
    }
    binary = folder / "goreader"
    done = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=GO_READER_SOURCE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"go build in {GO_READER_SOURCE} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return binary


@pytest.fixture(scope="session")
def go_reader(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_go_reader(tmp_path_factory.mktemp("go-reader"))


def node_reader_argv() -> list[str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("the TypeScript reader needs Node.js (node) on PATH")
    if not (ROOT / "tests" / "node" / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir():
        pytest.fail("the TypeScript reader needs the SDK: run `npm ci --prefix tests/node` (.ci/run does)")
    return [node, str(TS_READER)]


def reader_argv(reader: str, request: pytest.FixtureRequest) -> list[str]:
    if reader == "python":
        return [PYTHON, str(SDK_READER)]
    if reader == "typescript":
        return node_reader_argv()
    return [str(request.getfixturevalue("go_reader"))]


# --- a guard in front of one reader ---------------------------------------------------------------------------


@dataclass
class Seen:
    """What the client read while waiting for one answer."""

    answers: dict[tuple[str, Any], list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)  # requests and notifications to the client

    def add(self, message: Any) -> None:
        assert isinstance(message, dict), f"the guard wrote a batch element that is not an object: {message!r}"
        if "method" in message:
            self.requests.append(message)
        else:
            self.answers.setdefault(id_key(message.get("id")), []).append(message)


class Rig:
    """``mcp-guard --policy P -- READER`` with the handshake done, and what the reader recorded since a mark."""

    def __init__(
        self,
        reader: str,
        argv: Sequence[str],
        folder: Path,
        policy: Mapping[str, Any],
        guard_args: Sequence[str] = (),
        capabilities: Mapping[str, Any] | None = None,
    ) -> None:
        self.reader = reader
        folder.mkdir(parents=True, exist_ok=True)
        self.calls, self.wire = folder / "calls.jsonl", folder / "wire.log"
        env = isolated_env(folder)
        env[CALLS_VAR], env[WIRE_VAR] = str(self.calls), str(self.wire)
        policy_path = write_policy(folder, dict(policy))
        command = [*guard_command(), "--policy", str(policy_path), "--no-reload", *guard_args, "--", *argv]
        self.session = RawSession(command, env)
        self.broken = False
        self._ids = itertools.count(1000)
        self.closed: dict[tuple[str, Any], str] = {}  # ids whose answer was read, and by which case
        # Ids of earlier cases that may still get their one answer: the case, and the error codes it must carry.
        self.open: dict[tuple[str, Any], tuple[str, tuple[int, ...] | None]] = {}
        self.sentinels: set[tuple[str, Any]] = set()  # ids of the safe calls sent between cases
        opening = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": HANDSHAKE_VERSION,
                "capabilities": dict(capabilities or {}),
                "clientInfo": {"name": "mcp-guard-differential", "version": "1"},
            },
        }
        try:
            answer = self.session.request(opening, timeout=30.0)
            assert "result" in answer, f"{reader}: initialize failed: {answer}"
            self.session.send(INITIALIZED)
            # Once this is answered, everything sent so far is in the reader's logs: marks start after it.
            self.call_safe(Seen(), timeout=30.0)
        except BaseException:
            self.close()
            raise

    def new_id(self) -> int:
        return next(self._ids)

    def alive(self) -> bool:
        return self.session.proc.poll() is None

    def stderr(self) -> str:
        return self.session.stderr_so_far()[-3000:]

    def mark(self) -> tuple[int, int]:
        return (self._size(self.calls), self._size(self.wire))

    @staticmethod
    def _size(path: Path) -> int:
        return path.stat().st_size if path.exists() else 0

    def executed_since(self, mark: tuple[int, int]) -> list[dict[str, Any]]:
        if not self.calls.exists():
            return []
        with self.calls.open("rb") as calls:
            calls.seek(mark[0])
            return [json.loads(line) for line in calls.read().splitlines()]

    def received_since(self, mark: tuple[int, int]) -> bytes:
        if not self.wire.exists():
            return b""
        with self.wire.open("rb") as wire:
            wire.seek(mark[1])
            return wire.read()

    def read_until(self, seen: Seen, done: Callable[[Seen], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done(seen):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.reader}: no {what} within {timeout} s; stderr:\n{self.stderr()}")
            line = self.session.read_line(remaining)
            try:
                value = json.loads(line)
            except ValueError:
                raise AssertionError(f"{self.reader}: the guard wrote a line that is not JSON: {line!r:.300}") from None
            for message in messages_of(value):
                if not self._late(message):
                    seen.add(message)

    def _late(self, message: Any) -> bool:
        """Whether ``message`` answers a request of an earlier case (SDK servers answer out of order); checked here."""
        if not isinstance(message, dict) or "method" in message:
            return False
        key = id_key(message.get("id"))
        if key == NULL_KEY:
            return False
        if key in self.closed:
            raise AssertionError(
                f"{self.reader}: another answer to id {key[1]!r} (of case {self.closed[key]}): {message}"
            )
        if key not in self.open:
            return False
        case, codes = self.open.pop(key)
        self.closed[key] = case
        code = message.get("error", {}).get("code")
        assert codes is None or code in codes, f"{self.reader}: case {case} must be refused with {codes}: {message}"
        return True

    def call_safe(self, seen: Seen, timeout: float = SENTINEL_TIMEOUT_S) -> dict[str, Any]:
        """Send a ``safe`` call, read until its answer; it must have been executed and answered cleanly."""
        ident = self.new_id()
        key = id_key(ident)
        self.sentinels.add(key)
        self.session.send(tool_call(ident, "safe"))
        self.read_until(seen, lambda s: key in s.answers, timeout, f"answer to the safe call {ident}")
        (answer,) = seen.answers.pop(key)
        assert succeeded(answer), f"{self.reader}: the safe call failed: {answer}"
        return answer

    def close(self) -> None:
        """End the guard the way a client does (stdin closed), so it takes its server down; kill it if it hangs."""
        self.session.close_stdin()
        try:
            self.session.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.session.kill()


class RigPool:
    """One rig per reader, replaced after a test that failed with it (its state can no longer be trusted)."""

    def __init__(self, start: Callable[[str, Path], Rig], folders: pytest.TempPathFactory) -> None:
        self._start = start
        self._folders = folders
        self._rigs: dict[str, Rig] = {}

    @contextmanager
    def use(self, reader: str) -> Iterator[Rig]:
        rig = self._rigs.get(reader)
        if rig is None or rig.broken or not rig.alive():
            if rig is not None:
                rig.close()
            rig = self._start(reader, self._folders.mktemp(f"rig-{reader}"))
            self._rigs[reader] = rig
        try:
            yield rig
        except BaseException:
            rig.broken = True
            raise

    def close(self) -> None:
        for rig in self._rigs.values():
            rig.close()


@pytest.fixture(scope="module")
def rigs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RigPool]:
    pool = RigPool(lambda reader, folder: Rig(reader, reader_argv(reader, request), folder, POLICY), tmp_path_factory)
    yield pool
    pool.close()


# --- checks shared by every case ------------------------------------------------------------------------------


def check_executed(rig: Rig, mark: tuple[int, int], what: str) -> list[dict[str, Any]]:
    executed = rig.executed_since(mark)
    for record in executed:
        assert policy_allows(record.get("tool"), record.get("arguments")), (
            f"{rig.reader} executed a call the policy refuses, after {what}: {record}"
        )
    return executed


def check_received(rig: Rig, mark: tuple[int, int], what: str, allowed_ids: set[tuple[str, Any]] | None) -> None:
    """Every line the reader received is strict JSON-RPC whose calls the policy allows; with ``allowed_ids``,
    only messages with those ids (or the ids of the rig's ``safe`` sentinels) reached it."""
    received = rig.received_since(mark)
    lines = received.split(b"\n")
    assert lines[-1] == b"", f"{rig.reader} received a line without its newline after {what}: {lines[-1]!r:.300}"
    for line in lines[:-1]:
        try:
            value = strict_parse(line)
        except ValueError as exc:
            raise AssertionError(
                f"the guard forwarded a line not every reader reads alike ({exc}): {line!r:.300}"
            ) from None
        for message in messages_of(value):
            if message.get("method") == "tools/call":
                params = message.get("params")
                name = params.get("name") if isinstance(params, dict) else None
                arguments = params.get("arguments", {}) if isinstance(params, dict) else None
                assert policy_allows(name, arguments), f"the guard forwarded a refused call after {what}: {line!r:.300}"
            if allowed_ids is not None:
                assert "id" in message and id_key(message["id"]) in allowed_ids | rig.sentinels, (
                    f"{rig.reader} received a message of a frame the guard must refuse ({what}): {line!r:.300}"
                )


# --- the cases ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A hostile payload (one or more lines) and what the guard must do with it.

    ``payload`` holds id slots ``@A@``, ``@B@``, replaced by fresh integers. ``must``: slots whose request
    must get exactly one answer; ``may``: at most one; ``ok``: must get the reader's successful result
    (the call is allowed and must work). ``refuse``: the issue's rule refuses the frame: every answer is
    a JSON-RPC error with a code in ``codes`` and the reader receives nothing but the messages of the
    ``forward`` slots. ``loose``: slots whose answers are not counted (the frame repeats an id).
    """

    name: str
    payload: str | bytes
    must: tuple[str, ...] = ()
    may: tuple[str, ...] = ()
    ok: tuple[str, ...] = ()
    refuse: bool = False
    forward: tuple[str, ...] = ()
    codes: tuple[int, ...] = REFUSAL_CODES
    loose: tuple[str, ...] = ()
    odd_ids: tuple[Any, ...] = ()  # ids that are not valid JSON-RPC ids, which an error may still be addressed to


SLOTS = ("A", "B", "C")


def req(slot: str, method: str = '"tools/call"', params: str = '{"name":"evil","arguments":{}}') -> str:
    return '{"jsonrpc":"2.0","id":@' + slot + '@,"method":' + method + ',"params":' + params + "}"


def call(slot: str, name: str = "evil", arguments: str = "{}") -> str:
    return req(slot, params='{"name":"' + name + '","arguments":' + arguments + "}")


def ping(slot: str) -> str:
    return '{"jsonrpc":"2.0","id":@' + slot + '@,"method":"ping"}'


SAFE_A = call("A", "safe")
EVIL_NOTE = '{"jsonrpc":"2.0","method":"tools/call","params":{"name":"evil","arguments":{}}}'
# A call to dashboard cut inside the value of dashboardUid, right after "safe".
DASHBOARD_A = (
    b'{"jsonrpc":"2.0","id":@A@,"method":"tools/call","params":{"name":"dashboard","arguments":{"dashboardUid":"safe'
)
PAY_OK, PAY_BIG = '{"amount":5,"to":"x"}', '{"amount":5000,"to":"x"}'


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _cases() -> Iterator[Case]:
    # Universal newlines: a bare CR ends a line for the Python SDK (and Node's readline).
    yield Case("cr-after-ping-hides-denied-call", ping("A") + "\r" + call("B") + "\n", may=("A", "B"), refuse=True)
    yield Case(
        "cr-after-allowed-call-hides-overspend",
        SAFE_A + "\r" + call("B", "pay", PAY_BIG) + "\n",
        may=("A", "B"),
        refuse=True,
    )
    yield Case(
        "cr-as-whitespace-wraps-denied-call",
        '{"jsonrpc":"2.0","id":@A@,"method":"tools/call","params":{"name":"safe","arguments":{}},"x":\r'
        + call("B")
        + "\r}\n",
        must=("A",),
        may=("B",),
        refuse=True,
    )
    yield Case(
        "cr-as-whitespace-in-denied-call",
        '{"jsonrpc":"2.0","id":@A@,\r"method":"tools/call","params":{"name":"evil","arguments":{}}}\n',
        must=("A",),
        refuse=True,
    )
    yield Case("cr-before-crlf", SAFE_A + "\r\r\n", must=("A",), refuse=True)
    yield Case("crlf-line-end-is-fine", SAFE_A + "\r\n", must=("A",), ok=("A",))
    yield Case(
        "notification-then-cr-call",
        EVIL_NOTE.replace("evil", "safe") + "\r" + call("A") + "\n",
        may=("A",),
        refuse=True,
    )
    for name, separator in (("nel", "\u0085"), ("line-separator", "\u2028"), ("paragraph-separator", "\u2029")):
        yield Case(f"{name}-outside-strings", SAFE_A + separator + call("B") + "\n", may=("A", "B"), refuse=True)
    # Control characters outside strings, and raw ones inside.
    for char in ("\x00", "\x0b", "\x0c", "\x1b", "\x7f"):
        yield Case(
            f"control-{ord(char):02x}-outside-strings",
            '{"jsonrpc":"2.0","id":@A@,"method":"tools/call",' + char + '"params":{"name":"safe","arguments":{}}}\n',
            may=("A",),
            refuse=True,
        )
    yield Case(
        "raw-nul-in-string", call("A", "dashboard", '{"dashboardUid":"safe\x00"}') + "\n", may=("A",), refuse=True
    )
    yield Case("raw-tab-in-string", call("A", "dashboard", '{"dashboardUid":"safe\t"}') + "\n", may=("A",), refuse=True)
    # Stream decoders: a value may span lines, a line may hold a fragment or several values.
    yield Case(
        "value-spans-two-lines",
        '{"jsonrpc":"2.0","id":@A@,"method":"tools/call",\n"params":{"name":"evil","arguments":{}}}\n',
        may=("A",),
        refuse=True,
    )
    yield Case(
        "fragment-wraps-an-allowed-line",
        '{"jsonrpc":"2.0","id":@A@,"method":"tools/call","params":{"name":"evil","arguments":{},"x":\n'
        + call("B", "safe")
        + "\n}}\n",
        may=("A",),
        ok=("B",),
        refuse=True,
        forward=("B",),
    )
    yield Case("brace-alone-then-call", "{\n" + call("A")[1:] + "\n", may=("A",), refuse=True)
    for name, separator in (("space", " "), ("none", ""), ("tab", "\t")):
        yield Case(f"second-value-after-{name}", SAFE_A + separator + call("B") + "\n", may=("A", "B"), refuse=True)
    yield Case("second-value-after-ping", ping("A") + call("B") + "\n", may=("A", "B"), refuse=True)
    for name, tail in (("word", " x"), ("bracket", "]"), ("brace", "}"), ("comma", ",")):
        yield Case(f"trailing-{name}", SAFE_A + tail + "\n", may=("A",), refuse=True)
    for name, bare in (
        ("string", '"tools/call"'),
        ("number", "5"),
        ("null", "null"),
        ("true", "true"),
        ("empty-object", "{}"),
        ("closing-bracket", "]"),
        ("closing-brace", "}"),
        ("key-fragment", '"jsonrpc":"2.0",'),
        ("quoted-call", json.dumps(call("A"))),
    ):
        yield Case(f"bare-{name}", bare + "\n", may=("A",), refuse=True)
    yield Case("empty-line", "\n")
    # Duplicate keys, at every level, either order.
    for first, last in (('"ping"', '"tools/call"'), ('"tools/call"', '"ping"')):
        yield Case(
            f"duplicate-method-{json.loads(last).replace('/', '-')}-last",
            '{"jsonrpc":"2.0","id":@A@,"method":'
            + first
            + ',"method":'
            + last
            + ',"params":{"name":"evil","arguments":{}}}\n',
            must=("A",),
            refuse=True,
        )
    for order, (one, two) in (("evil-last", ("safe", "evil")), ("evil-first", ("evil", "safe"))):
        yield Case(
            f"duplicate-name-{order}",
            req("A", params='{"name":"' + one + '","name":"' + two + '","arguments":{}}') + "\n",
            must=("A",),
            refuse=True,
        )
        yield Case(
            f"duplicate-params-{order}",
            '{"jsonrpc":"2.0","id":@A@,"method":"tools/call","params":{"name":"' + one + '","arguments":{}},'
            '"params":{"name":"' + two + '","arguments":{}}}\n',
            must=("A",),
            refuse=True,
        )
    for order, (one, two) in (("big-last", (PAY_OK, PAY_BIG)), ("big-first", (PAY_BIG, PAY_OK))):
        yield Case(
            f"duplicate-arguments-{order}",
            req("A", params='{"name":"pay","arguments":' + one + ',"arguments":' + two + "}") + "\n",
            must=("A",),
            refuse=True,
        )
    for order, (one, two) in (("big-last", ("5", "5000")), ("big-first", ("5000", "5"))):
        yield Case(
            f"duplicate-argument-key-{order}",
            call("A", "pay", '{"amount":' + one + ',"amount":' + two + ',"to":"x"}') + "\n",
            must=("A",),
            refuse=True,
        )
    for order, (one, two) in (("evil-last", ("safe", "evil")), ("evil-first", ("evil", "safe"))):
        yield Case(
            f"duplicate-dashboard-uid-{order}",
            call("A", "dashboard", '{"dashboardUid":"' + one + '","dashboardUid":"' + two + '"}') + "\n",
            must=("A",),
            refuse=True,
        )
    yield Case(
        "duplicate-jsonrpc",
        '{"jsonrpc":"2.0","jsonrpc":"1.0","id":@A@,"method":"tools/call","params":{"name":"safe","arguments":{}}}\n',
        must=("A",),
        refuse=True,
    )
    yield Case(
        "duplicate-id",
        '{"jsonrpc":"2.0","id":@A@,"id":@B@,"method":"tools/call","params":{"name":"safe","arguments":{}}}\n',
        may=("A", "B"),
        refuse=True,
    )
    yield Case(
        "duplicate-key-in-meta",
        req("A", params='{"name":"safe","arguments":{},"_meta":{"progressToken":1,"progressToken":2}}') + "\n",
        must=("A",),
        refuse=True,
    )
    yield Case(
        "duplicate-key-by-escape",
        req("A", params='{"name":"safe","n\\u0061me":"evil","arguments":{}}') + "\n",
        must=("A",),
        refuse=True,
    )
    yield Case(
        "duplicate-method-by-escape",
        '{"jsonrpc":"2.0","id":@A@,"method":"ping","\\u006dethod":"tools/call","params":{"name":"evil","arguments":{}}}\n',
        must=("A",),
        refuse=True,
    )
    # Keys that collide under Go's case folding (ASCII case, U+017F long s for s, U+212A Kelvin for k).
    for name, key in (("capital", "Method"), ("upper", "METHOD")):
        yield Case(
            f"method-and-{name}-method",
            '{"jsonrpc":"2.0","id":@A@,"method":"ping","'
            + key
            + '":"tools/call","params":{"name":"evil","arguments":{}}}\n',
            must=("A",),
            refuse=True,
        )
    for name, key in (("upper", "PARAMS"), ("long-s-escaped", "param\\u017f"), ("long-s-raw", "param\u017f")):
        yield Case(
            f"params-and-{name}",
            '{"jsonrpc":"2.0","id":@A@,"method":"tools/call","params":{"name":"safe","arguments":{}},"'
            + key
            + '":{"name":"evil","arguments":{}}}\n',
            must=("A",),
            refuse=True,
        )
    for name, key in (("capital", "Name"), ("upper", "NAME")):
        yield Case(
            f"name-and-{name}-name",
            req("A", params='{"name":"safe","' + key + '":"evil","arguments":{}}') + "\n",
            must=("A",),
            refuse=True,
        )
    for name, key in (
        ("capital", "Arguments"),
        ("long-s-escaped", "argument\\u017f"),
        ("long-s-raw", "argument\u017f"),
    ):
        yield Case(
            f"arguments-and-{name}",
            req("A", params='{"name":"pay","arguments":' + PAY_OK + ',"' + key + '":' + PAY_BIG + "}") + "\n",
            must=("A",),
            refuse=True,
        )
    for name, key in (
        ("camel", "DashboardUID"),
        ("upper", "DASHBOARDUID"),
        ("long-s-escaped", "da\\u017fhboardUid"),
        ("long-s-raw", "da\u017fhboardUid"),
    ):
        yield Case(
            f"dashboard-uid-and-{name}",
            call("A", "dashboard", '{"dashboardUid":"safe","' + key + '":"evil"}') + "\n",
            must=("A",),
            refuse=True,
        )
    yield Case(
        "amount-and-upper-amount",
        call("A", "pay", '{"amount":5,"to":"x","AMOUNT":5000}') + "\n",
        must=("A",),
        refuse=True,
    )
    for name, key in (("escaped", "lin\\u212a"), ("raw", "lin\u212a")):
        yield Case(
            f"kelvin-sign-{name}-collides",
            call("A", "safe", '{"link":"a","' + key + '":"b"}') + "\n",
            must=("A",),
            refuse=True,
        )
    yield Case(
        "id-and-upper-id",
        '{"jsonrpc":"2.0","id":@A@,"ID":@B@,"method":"tools/call","params":{"name":"safe","arguments":{}}}\n',
        may=("A", "B"),
        refuse=True,
    )
    yield Case(
        "jsonrpc-and-upper-jsonrpc",
        '{"jsonrpc":"2.0","JSONRPC":"1.0","id":@A@,"method":"tools/call","params":{"name":"safe","arguments":{}}}\n',
        must=("A",),
        refuse=True,
    )
    # One key spelled only in another case: no collision; the guard must not read it as the canonical one.
    yield Case(
        "only-upper-method",
        '{"jsonrpc":"2.0","id":@A@,"METHOD":"tools/call","params":{"name":"evil","arguments":{}}}\n',
        must=("A",),
        refuse=True,
    )
    yield Case(
        "only-upper-params",
        '{"jsonrpc":"2.0","id":@A@,"method":"tools/call","PARAMS":{"name":"evil","arguments":{}}}\n',
        must=("A",),
    )
    yield Case("only-capital-name", req("A", params='{"Name":"evil","arguments":{}}') + "\n", must=("A",))
    yield Case(
        "only-capital-arguments", req("A", params='{"name":"pay","Arguments":' + PAY_BIG + "}") + "\n", must=("A",)
    )
    yield Case("only-camel-dashboard-uid", call("A", "dashboard", '{"DashboardUID":"evil"}') + "\n", must=("A",))
    # Escapes: what they spell is what counts.
    for name, method in (("slash", '"tools\\/call"'), ("t", '"\\u0074ools/call"'), ("solidus", '"tools\\u002fcall"')):
        yield Case(f"escaped-method-{name}", req("A", method=method) + "\n", must=("A",))
    yield Case("escaped-tool-name", req("A", params='{"name":"\\u0065vil","arguments":{}}') + "\n", must=("A",))
    yield Case(
        "escaped-method-key",
        '{"jsonrpc":"2.0","id":@A@,"\\u006dethod":"tools/call","params":{"name":"evil","arguments":{}}}\n',
        must=("A",),
    )
    yield Case(
        "escaped-allowed-value", call("A", "dashboard", '{"dashboardUid":"\\u0073afe"}') + "\n", must=("A",), ok=("A",)
    )
    yield Case("method-with-escaped-nul", req("A", method='"tools/call\\u0000"') + "\n", must=("A",))
    # Batches: flat ones are judged element by element; anything else is refused whole.
    yield Case("batch-denied-call", "[" + call("A") + "]\n", must=("A",))
    yield Case("batch-overspend", "[" + call("A", "pay", PAY_BIG) + "]\n", must=("A",))
    yield Case("batch-allowed-and-denied", "[" + SAFE_A + "," + call("B") + "]\n", may=("A",), must=("B",))
    yield Case("batch-call-notification", "[" + SAFE_A + "," + EVIL_NOTE + "]\n", may=("A",))
    yield Case("batch-same-id-twice", "[" + SAFE_A + "," + call("A") + "]\n", loose=("A",))
    yield Case("batch-nested", "[[" + call("A") + "]]\n", may=("A",), refuse=True)
    yield Case("batch-nested-beside-allowed", "[" + SAFE_A + ",[" + call("B") + "]]\n", may=("A", "B"), refuse=True)
    yield Case("batch-with-a-number", "[" + SAFE_A + ",5]\n", may=("A",), refuse=True)
    yield Case("batch-empty", "[]\n", refuse=True)
    yield Case(
        "batch-element-with-duplicate-method",
        '[{"jsonrpc":"2.0","id":@A@,"method":"ping","method":"tools/call","params":{"name":"evil","arguments":{}}}]\n',
        may=("A",),
        refuse=True,
    )
    yield Case("batch-with-cr", "[" + SAFE_A + ",\r" + call("B") + "]\n", may=("A", "B"), refuse=True)
    # Encodings: only UTF-8 without a byte-order mark.
    for encoding in ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"):
        yield Case(f"encoded-{encoding}", ("ENCODE:" + encoding + ":" + SAFE_A), may=("A",), refuse=True)
    yield Case("utf8-bom", b"\xef\xbb\xbf" + SAFE_A.encode() + b"\n", may=("A",), refuse=True)
    yield Case("bom-between-tokens", '{"jsonrpc":"2.0",\ufeff"id":@A@,"method":"ping"}\n', may=("A",), refuse=True)
    for name, junk in (
        ("ff", b"\xff"),
        ("overlong-slash", b"\xc0\xaf"),
        ("encoded-surrogate", b"\xed\xa0\x80"),
        ("truncated", b"\xe2\x82"),
    ):
        yield Case(f"invalid-utf8-{name}", DASHBOARD_A + junk + b'"}}}\n', may=("A",), refuse=True)
    yield Case("invalid-utf8-in-key", SAFE_A[:-2].encode() + b',"\xff":1}}\n', may=("A",), refuse=True)
    yield Case("lone-surrogate-escape", call("A", "pay", '{"amount":5,"to":"\\ud800"}') + "\n", may=("A",))
    # Numbers.
    for name, number in (
        ("1e400", "1e400"),
        ("minus-1e400", "-1e400"),
        ("huge-int", "1" + "0" * 30),
        ("huge-negative-int", "-1" + "0" * 30),
        ("just-above-10", "10.000000000000002"),
        ("rounds-to-10", "10.0000000000000001"),
        ("minus-zero", "-0"),
        ("exponent-10", "1E1"),
        ("tiny", "5e-324"),
    ):
        yield Case(f"amount-{name}", call("A", "pay", '{"amount":' + number + ',"to":"x"}') + "\n", may=("A",))
    for name, constant in (("nan", "NaN"), ("infinity", "Infinity"), ("minus-infinity", "-Infinity")):
        yield Case(
            f"amount-{name}", call("A", "pay", '{"amount":' + constant + ',"to":"x"}') + "\n", may=("A",), refuse=True
        )
    yield Case("amount-string", call("A", "pay", '{"amount":"5","to":"x"}') + "\n", must=("A",))
    yield Case("amount-true", call("A", "pay", '{"amount":true,"to":"x"}') + "\n", must=("A",))
    # 7.0 and 7e0 are the id 7 to the guard and to JavaScript, not to pydantic: answered once, by someone.
    yield Case("id-with-zero-fraction", SAFE_A.replace("@A@", "@A@.0") + "\n", must=("A",))
    yield Case("id-with-exponent", SAFE_A.replace("@A@", "@A@e0") + "\n", must=("A",))
    yield Case("id-with-fraction", SAFE_A.replace("@A@", "@A@.5") + "\n", odd_ids=("FRACTION",))
    yield Case("id-beyond-2-53", SAFE_A.replace("@A@", str(2**64 + 1)) + "\n", odd_ids=(2**64 + 1,))
    yield Case("id-minus-zero", SAFE_A.replace("@A@", "-0") + "\n", odd_ids=(0,))
    for name, odd in (("true", True), ("object", {"a": 1}), ("array", [1])):
        yield Case(f"id-{name}", call("A").replace("@A@", json.dumps(odd)) + "\n", refuse=True, odd_ids=(odd,))
    yield Case("id-null", call("A").replace("@A@", "null") + "\n", refuse=True)
    # Nesting.
    yield Case("deep-arguments", call("A", "safe", '{"x":' + deep(100_000) + "}") + "\n", may=("A",), refuse=True)
    yield Case("deep-before-id", '{"x":' + deep(100_000) + "," + call("A")[1:] + "\n", may=("A",), refuse=True)
    yield Case("deep-batch", "[" * 100_000 + call("A") + "]" * 100_000 + "\n", may=("A",), refuse=True)
    # The Python SDK reads about 200 levels: deeper is refused (or the request would never be answered).
    yield Case("nesting-beyond-the-python-sdk", call("A", "safe", '{"x":' + deep(250) + "}") + "\n", must=("A",))
    yield Case("shallow-nesting-is-fine", call("A", "safe", '{"x":' + deep(20) + "}") + "\n", must=("A",), ok=("A",))
    # Params and the envelope.
    for name, params in (("array", '["evil",{}]'), ("string", '"evil"'), ("null", "null"), ("number", "1")):
        yield Case(
            f"params-{name}",
            req("A", params=params) + "\n",
            must=("A",),
            refuse=True,
            codes=(*REFUSAL_CODES, INVALID_PARAMS),
        )
    yield Case(
        "ping-with-params-array",
        '{"jsonrpc":"2.0","id":@A@,"method":"ping","params":[]}\n',
        must=("A",),
        refuse=True,
        codes=(*REFUSAL_CODES, INVALID_PARAMS),
    )
    yield Case("call-without-params", '{"jsonrpc":"2.0","id":@A@,"method":"tools/call"}\n', must=("A",))
    yield Case("call-without-name", req("A", params='{"arguments":{}}') + "\n", must=("A",))
    for name, version in (("missing", None), ("1.0", '"1.0"'), ("number", "2.0"), ("padded", '"2.0 "')):
        envelope = '{"id":@A@,' if version is None else '{"jsonrpc":' + version + ',"id":@A@,'
        yield Case(
            f"jsonrpc-{name}",
            envelope + '"method":"tools/call","params":{"name":"safe","arguments":{}}}\n',
            must=("A",),
            refuse=True,
        )
    yield Case(
        "notification-without-jsonrpc", '{"method":"tools/call","params":{"name":"evil","arguments":{}}}\n', refuse=True
    )
    for name, method in (("number", "1"), ("array", '["tools/call"]'), ("null", "null")):
        yield Case(f"method-{name}", req("A", method=method) + "\n", must=("A",), refuse=True)
    yield Case("unknown-method-case", req("A", method='"tools/CALL"') + "\n", must=("A",))
    yield Case("denied-call-notification", EVIL_NOTE + "\n")
    yield Case(
        "request-with-result-member-first",
        '{"result":{},"jsonrpc":"2.0","id":@A@,"method":"tools/call","params":{"name":"evil","arguments":{}}}\n',
        must=("A",),
        refuse=True,
    )
    yield Case(
        "request-with-error-member",
        call("A")[:-1] + ',"error":{"code":1,"message":"x"}}\n',
        must=("A",),
        refuse=True,
    )
    yield Case("response-nobody-asked-for", '{"jsonrpc":"2.0","id":"nobody-@A@","result":{}}\n')
    # Layouts every reader reads alike: allowed, and must work.
    yield Case(
        "layout-spaced",
        '{ "jsonrpc" : "2.0" , "id" : @A@ , "method" : "tools/call" , "params" : { "name" : "pay" , '
        '"arguments" : { "amount" : 5 , "to" : "x" } } }\n',
        must=("A",),
        ok=("A",),
    )
    yield Case(
        "layout-members-reversed",
        '{"params":{"arguments":{"dashboardUid":"safe"},"name":"dashboard"},"method":"tools/call","id":@A@,"jsonrpc":"2.0"}\n',
        must=("A",),
        ok=("A",),
    )
    yield Case("layout-leading-whitespace", " \t" + SAFE_A + "\n", must=("A",), ok=("A",))


CASES = list(_cases())


def render(case: Case, ids: Mapping[str, int]) -> bytes:
    payload = case.payload
    if isinstance(payload, str) and payload.startswith("ENCODE:"):
        _, encoding, body = payload.split(":", 2)
        for slot, ident in ids.items():
            body = body.replace(f"@{slot}@", str(ident))
        return body.encode(encoding) + b"\n"  # the newline in UTF-8: the guard's framing still sees one line
    data = payload.encode() if isinstance(payload, str) else payload
    for slot, ident in ids.items():
        data = data.replace(f"@{slot}@".encode(), str(ident).encode())
    return data


def run_case(rig: Rig, case: Case) -> None:
    ids = {slot: rig.new_id() for slot in SLOTS}
    keys = {slot: id_key(ident) for slot, ident in ids.items()}
    odd_keys = {id_key(ids["A"] + 0.5 if odd == "FRACTION" else odd) for odd in case.odd_ids}
    data = render(case, ids)
    what = f"case {case.name} ({data[:160]!r})"
    mark = rig.mark()
    rig.session.send(data)
    seen = Seen()
    must = {keys[s] for s in (*case.must, *case.ok)}
    try:
        rig.call_safe(seen)
        if not must <= seen.answers.keys():
            try:
                rig.read_until(seen, lambda s: must <= s.answers.keys(), GRACE_S, f"answer to every request of {what}")
            except AssertionError as exc:
                missing = ", ".join(str(k[1]) for k in must - seen.answers.keys())
                raise AssertionError(
                    f"{rig.reader}: no answer to request id {missing} of {what}; the client read instead: "
                    f"{list(seen.answers.values())}; {exc}"
                ) from None
    finally:
        # What reached the reader matters most: checked even when the guard stopped answering.
        check_executed(rig, mark, what)
        forwardable = {keys[s] for s in case.forward} if case.refuse else None
        check_received(rig, mark, what, forwardable)
    loose = {keys[s] for s in case.loose}
    refused = {keys[s] for s in SLOTS if s not in case.forward} | odd_keys if case.refuse else set()
    for key, answers in seen.answers.items():
        if key == NULL_KEY and key not in odd_keys:
            for answer in answers:
                code = answer.get("error", {}).get("code")
                assert code in REFUSAL_CODES, f"an answer with id null that is not a refusal, after {what}: {answer}"
            continue
        assert key in keys.values() or key in odd_keys, (
            f"an answer to id {key[1]!r}, which nobody sent, after {what}: {answers}"
        )
        assert key in loose or len(answers) == 1, f"{len(answers)} answers to id {key[1]!r} after {what}: {answers}"
        if key in refused:
            for answer in answers:
                code, codes = answer.get("error", {}).get("code"), case.codes
                assert code in codes, f"the guard must refuse {what} with an error in {codes}: {answer}"
        rig.closed[key] = case.name
    for slot in case.ok:
        (answer,) = seen.answers[keys[slot]]
        assert succeeded(answer), f"an allowed call failed after {what}: {answer}"
    for key in ({keys[s] for s in case.may} | odd_keys) - seen.answers.keys() - loose - {NULL_KEY}:
        rig.open[key] = (case.name, case.codes if key in refused else None)
    assert rig.alive(), f"the guard exited after {what}; stderr:\n{rig.stderr()}"


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_frame(rigs: RigPool, reader: str, case: Case) -> None:
    with rigs.use(reader) as rig:
        run_case(rig, case)


def test_case_names_are_unique() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


# --- request ids: in flight, and the guard's own ----------------------------------------------------------------

IDS_POLICY: dict[str, Any] = {
    "version": "1",
    "default": "deny",
    "tools": {
        "safe": {},
        "evil": {"action": "deny", "reason": "Never."},
        "pay": {
            "require": [{"path": "args.amount", "op": "lte", "value": 10}],
            "limits": [
                {
                    "counter": "spent",
                    "window": "1h",
                    "max": 10,
                    "increment_from": "args.amount",
                    "refund_on_error": True,
                }
            ],
        },
        "dashboard": {"action": "approve", "require": [{"path": "args.dashboardUid", "op": "eq", "value": "safe"}]},
    },
}
APPROVAL_TIMEOUT_S = 20


@pytest.fixture(scope="module")
def ids_rigs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RigPool]:
    """A guard with a spend cap and an approval rule, for a client that can be asked (elicitation)."""

    def start(reader: str, folder: Path) -> Rig:
        argv = reader_argv(reader, request)
        guard_args = ("--approval", "client", "--approval-timeout", str(APPROVAL_TIMEOUT_S))
        return Rig(reader, argv, folder, IDS_POLICY, guard_args, capabilities={"elicitation": {}})

    pool = RigPool(start, tmp_path_factory)
    yield pool
    pool.close()


def pay(ident: int, amount: float, to: str, delay: float = 0.0) -> dict[str, Any]:
    return tool_call(ident, "pay", {"amount": amount, "to": to, "delay": delay})


def answers_to(rig: Rig, ident: int, count: int, what: str) -> list[dict[str, Any]]:
    seen = Seen()
    key = id_key(ident)
    rig.read_until(seen, lambda s: len(s.answers.get(key, [])) >= count, SENTINEL_TIMEOUT_S, what)
    rig.call_safe(seen)
    answers = seen.answers.pop(key)
    assert len(answers) == count, f"{len(answers)} answers to id {ident} ({what}), {count} expected: {answers}"
    assert not seen.answers, f"answers to ids nobody sent ({what}): {seen.answers}"
    rig.closed[key] = what
    return answers


def refused_as_duplicate(answer: Mapping[str, Any]) -> bool:
    return answer.get("error", {}).get("code") == INVALID_REQUEST


@pytest.mark.parametrize("reader", READERS)
def test_request_id_already_in_flight(ids_rigs: RigPool, reader: str) -> None:
    """A request whose id is in flight is refused, never executed, and settles nothing of the first.

    Round 1: a slow pay of 1 that fails (its charge is refunded), and while it runs the same id again: a
    denied call and an allowed pay of 9. Round 2: a slow pay of 10 that succeeds, with duplicates. The cap
    (10 an hour) must then be exactly used up: the refund of round 1 went to round 1's call, and round 2's
    success refunded nothing.
    """
    with ids_rigs.use(reader) as rig:
        mark = rig.mark()
        first = rig.new_id()
        rig.session.send(pay(first, 1, "fail", delay=0.8))
        rig.session.send(tool_call(first, "evil"))
        rig.session.send(pay(first, 9, "second"))
        answers = answers_to(rig, first, 3, "round 1: a failing slow pay and two requests reusing its id")
        duplicates, (outcome,) = answers[:2], answers[2:]
        assert all(map(refused_as_duplicate, duplicates)), f"each reuse of id {first} must get -32600: {answers}"
        assert "result" in outcome and not succeeded(outcome), f"the first pay's own (failed) answer: {outcome}"

        second = rig.new_id()
        rig.session.send(pay(second, 10, "first", delay=0.8))
        rig.session.send(pay(second, 0, "again"))
        rig.session.send(tool_call(second, "evil"))
        answers = answers_to(rig, second, 3, "round 2: a succeeding slow pay of 10 and two requests reusing its id")
        assert all(map(refused_as_duplicate, answers[:2])), f"each reuse of id {second} must get -32600: {answers}"
        assert succeeded(answers[2]), f"the pay of 10 must go through (round 1 was refunded): {answers[2]}"

        probe = rig.new_id()
        rig.session.send(pay(probe, 1, "over the cap"))
        (answer,) = answers_to(rig, probe, 1, "a pay of 1 once the cap of 10 is used up")
        assert not succeeded(answer), f"the cap is used up; a refund went to the wrong call: {answer}"

        executed = [(r["tool"], r["arguments"].get("to")) for r in check_executed(rig, mark, "reused ids")]
        assert [e for e in executed if e[0] == "pay"] == [("pay", "fail"), ("pay", "first")], executed
        check_received(rig, mark, "reused ids", None)


def elicitation_id(rig: Rig, seen: Seen, what: str) -> Any:
    rig.read_until(seen, lambda s: any(m.get("method") == "elicitation/create" for m in s.requests), 10.0, what)
    (question,) = [m for m in seen.requests if m.get("method") == "elicitation/create"]
    seen.requests.remove(question)
    return question["id"]


def guessed_ids(guard_id: Any) -> list[Any]:
    """Ids a client could guess from one of the guard's: the same, and the next few of its sequence."""
    text = str(guard_id)
    stem = text.rstrip("0123456789")
    number = int(text[len(stem) :] or 0)
    return [guard_id, *(f"{stem}{number + step}" for step in (1, 2, 3))]


@pytest.mark.parametrize("reader", READERS)
def test_client_answers_the_guards_own_questions(ids_rigs: RigPool, reader: str) -> None:
    """Only a strictly parsed answer to a pending question counts; answers to other guard ids count for nothing.

    The approval question is answered first with frames a lenient parser reads as "accept" (a duplicate
    ``result``, a case-colliding ``RESULT``, a second message after a bare CR), then declined properly. Then
    the client answers ids it guessed from the guard's, before the next question exists, and declines that
    question. ``dashboard`` must never run, each call gets one refusal, and no answer reaches the server.
    """
    with ids_rigs.use(reader) as rig:
        mark = rig.mark()
        call_id = rig.new_id()
        seen = Seen()
        rig.session.send(tool_call(call_id, "dashboard", {"dashboardUid": "safe"}))
        guard_id = elicitation_id(rig, seen, "the approval question")
        gid = json.dumps(guard_id)
        accept = '{"action":"accept","content":{"approve":true}}'
        for forged in (
            '{"jsonrpc":"2.0","id":' + gid + ',"result":{"action":"decline"},"result":' + accept + "}",
            '{"jsonrpc":"2.0","id":' + gid + ',"result":{"action":"decline"},"RESULT":' + accept + "}",
            '{"jsonrpc":"2.0","id":'
            + gid
            + ',"result":{"action":"accept","content":{"approve":true,"approve":false}}}',
            '{"jsonrpc":"2.0","id":'
            + gid
            + ',"result":{"action":"decline"}}\r{"jsonrpc":"2.0","id":'
            + gid
            + ',"result":'
            + accept
            + "}",
        ):
            rig.session.send(forged.encode() + b"\n")
            rig.call_safe(seen)
            settled = seen.answers.get(id_key(call_id))
            assert settled is None, f"{reader}: this answer settled the approval question: {forged!r}: {settled}"
        rig.session.send({"jsonrpc": "2.0", "id": guard_id, "result": {"action": "decline"}})
        (answer,) = answers_to(rig, call_id, 1, "the declined approval")
        assert not succeeded(answer), f"a declined call went through: {answer}"

        for guess in guessed_ids(guard_id):
            rig.session.send({"jsonrpc": "2.0", "id": guess, "result": json.loads(accept)})
        second_call = rig.new_id()
        rig.session.send(tool_call(second_call, "dashboard", {"dashboardUid": "safe"}))
        second_question = elicitation_id(rig, seen, "the second approval question")
        rig.session.send({"jsonrpc": "2.0", "id": second_question, "result": {"action": "decline"}})
        (answer,) = answers_to(rig, second_call, 1, "the second, declined approval")
        assert not succeeded(answer), f"an answer sent before the question was asked approved it: {answer}"

        assert not [r for r in check_executed(rig, mark, "forged approvals") if r["tool"] == "dashboard"]
        check_received(rig, mark, "forged approvals", None)
        responses = [line for line in rig.received_since(mark).splitlines() if b'"result"' in line]
        assert not responses, f"answers to the guard's questions reached {reader}: {responses}"
