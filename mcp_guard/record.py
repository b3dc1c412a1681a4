"""``--record FILE``: every frame of a session, both directions, as JSON lines, secrets redacted.

The file is for ``mcp-guard replay`` and for people. Each line is one record:

- ``{"type": "session", "v": 1, "t": ..., "server": ..., "pid": ..., "policy": ..., "policy_sha256": ...}``
  starts a guard's session (one file may hold several: the guard appends);
- ``{"type": "frame", "t": ..., "at": ..., "dir": D, "frame": {...}}`` one JSON-RPC frame, with ``D``:
  ``c2s`` read from the client (relayed unless the guard answered it itself), ``s2c`` read from the
  server (relayed unless the guard changed it), ``g2c``/``g2s`` written by the guard itself (its
  refusals, questions, filtered listings, a held call sent on later). A line that is not JSON is
  kept as text: ``{"type": "frame", ..., "text": "...", "unparsed": true}``;
- ``{"type": "verdict", "t": ..., "at": ..., "id": ..., "tool": ..., "verdict": ..., "decision": ...,
  "rule": ..., "reason": ..., "kind": ...}`` what the guard's pipeline decided about a ``tools/call``;
- ``{"type": "result", "t": ..., "at": ..., "id": ..., "method": ..., "tool": ..., "outcome": ...,
  "findings": [...]}`` what the result stages made of an answer the policy inspects (findings name the
  detector, kind and count, never the value);
- ``{"type": "dropped", "frames": N}`` when the writer fell behind and frames were left out.

``t`` is the wall clock (Unix seconds), ``at`` seconds since the session began (monotonic).

The pumps only append ``(time, direction, bytes)`` to a deque; a writer thread wakes a few times a
second to parse, redact and write the batch (as the audit log does), so recording costs the relay a
clock read and an append per frame. Secrets, card numbers and IBANs anywhere in a frame are replaced
by ``[redacted: detector/kind]`` with the result detectors. The file is created with mode 0600, and
an existing file that others can read is refused rather than appended to.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mcp_guard.actions import Action, ToClient, ToUpstream
from mcp_guard.canonical import utf8
from mcp_guard.pipeline import CallIn, Hold, Refuse, Relay, Reply, ResultIn, ResultOutcome, Verdict

RECORD_VERSION = 1
# What is redacted in a recording: credentials and payment data, not e-mail addresses or hidden text.
REDACTED_DETECTORS = ("secrets", "payment_cards", "ibans")
_FLUSH_EVERY_S = 0.2
_BACKLOG_BYTES = 64 << 20  # frames waiting to be written; past this they are dropped and counted
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class RecordError(Exception):
    """The record file cannot be used."""


class Redactor:
    """Redaction with the result detectors: the one place their library is imported (it may be renamed).

    Built by the writer thread as it starts (importing and compiling the detectors takes it some
    0.2 s of CPU), while the server starts: the guard's start-up does not wait for it.
    """

    def __init__(self, detectors: tuple[str, ...] = REDACTED_DETECTORS) -> None:
        from mcp_guard.inspect import compile_scanner, inspect_value, redact

        self.scanner = compile_scanner(detectors)
        self._inspect = inspect_value
        self._redact = redact

    def may_match(self, raw: bytes) -> bool:
        """False only when no string in this raw JSON can hold a finding."""
        return self.scanner.frame_may_match(raw)

    def value(self, value: object) -> object:
        """``value`` with every finding in any string at any depth, keys included, replaced by its label."""
        found = self._inspect(value, self.scanner)
        return self._keys(found.redacted(value) if found else value)

    def _keys(self, value: object) -> object:
        # Object keys are strings a frame carries too ({"<token>": 1} in structuredContent or arguments).
        if isinstance(value, list):
            items = [self._keys(v) for v in value]
            return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
        if not isinstance(value, dict):
            return value
        pairs = [(self.text(k), self._keys(v)) for k, v in value.items()]
        if all(k == k2 and v is v2 for (k2, v2), (k, v) in zip(value.items(), pairs, strict=True)):
            return value
        return dict(pairs)

    def text(self, text: str) -> str:
        return self._redact(text, self.scanner.scan(text))

    def unparsed(self, text: str, raw: bytes) -> str:
        """A line that is not JSON, redacted; read with JSON's escapes decoded when they may spell a finding."""
        if self.may_match(raw):
            text = _ESCAPE.sub(_unescape, text)
        return self.text(text)


_ESCAPE = re.compile(r'\\(?:u([0-9a-fA-F]{4})|(["\\/bfnrt]))')
_SHORT = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _unescape(m: re.Match[str]) -> str:
    code = m.group(1)
    return chr(int(code, 16)) if code is not None else _SHORT[m.group(2)]


def open_record(path: Path) -> int:
    """A descriptor to append to ``path``, created with mode 0600. RecordError when it cannot be used."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise RecordError(f"cannot open the record file {path}: {exc.strerror or exc}") from None
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = "is not a regular file"
    elif os.name == "posix" and info.st_mode & 0o077:
        problem = (
            f"can be read or written by others (mode {stat.S_IMODE(info.st_mode):04o}); a recording holds "
            "whole sessions, so it must be 0600: chmod 600 it, or record to a new file"
        )
    if problem is not None:
        os.close(fd)
        raise RecordError(f"the record file {path} {problem}")
    return fd


class Recorder:
    """A tap on the relay and an observer of the pipeline, writing the record file off the pumps."""

    def __init__(self, path: Path, warn: Callable[[str], None], header: dict[str, Any]) -> None:
        self.path = path
        self._warn = warn
        self._fd: int | None = open_record(path)
        self._wall0 = time.time()
        self._mono0 = time.monotonic()
        self._pending: collections.deque[tuple[float, str, Any]] = collections.deque()
        self._pending_bytes = 0
        self._dropped = 0
        self._failed = False
        self._redactor: Redactor | None = None
        self._off = False  # the detectors could not be built: record nothing rather than unredacted frames
        self._stop = threading.Event()
        self._pending.append((self._mono0, "session", {"type": "session", "v": RECORD_VERSION, **header}))
        self._thread = threading.Thread(target=self._run, name="mcp-guard record", daemon=True)
        self._thread.start()

    # the pumps' side: a clock read and appends --------------------------------------------------

    def _frame(self, now: float, direction: str, frame: bytes) -> None:
        if self._off:
            return
        size = len(frame)
        if self._pending_bytes + size > _BACKLOG_BYTES:
            self._dropped += 1
            return
        self._pending_bytes += size  # approximate across threads; only a bound
        self._pending.append((now, direction, frame))

    def client_line(self, line: bytes) -> None:
        self._frame(time.monotonic(), "c2s", line)

    def client_actions(self, line: bytes, actions: Sequence[Action]) -> None:
        self._own(time.monotonic(), line, actions)

    def upstream_line(self, line: bytes, actions: Sequence[Action]) -> None:
        now = time.monotonic()
        self._frame(now, "s2c", line)
        self._own(now, line, actions)

    def emitted(self, actions: Sequence[Action]) -> None:
        self._own(time.monotonic(), None, actions)

    def _own(self, now: float, line: bytes | None, actions: Sequence[Action]) -> None:
        """The frames the guard wrote itself: every action but the line it read, relayed as it came."""
        for action in actions:
            kind = type(action)
            if kind is ToClient or kind is ToUpstream:
                frame = action.frame  # type: ignore[union-attr]  # ToClient or ToUpstream, checked above
                if frame is not line:
                    self._frame(now, "g2c" if kind is ToClient else "g2s", frame)

    def verdict(self, call: CallIn, verdict: Verdict, after_approval: bool) -> None:
        if self._off:
            return
        self._pending.append((time.monotonic(), "verdict", (call.ident, call.name, verdict, after_approval)))

    def result(self, answer: ResultIn, outcome: ResultOutcome) -> None:
        if self._off:
            return
        fields = {
            "id": answer.ident,
            "method": answer.method,
            "tool": answer.tool,
            "outcome": outcome.outcome,
            "findings": outcome.findings,
        }
        self._pending.append((time.monotonic(), "result", fields))

    # the writer thread ----------------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Write what is pending and close the file."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            # At once, while the server starts and the pumps are idle, not under the first calls.
            self._redactor = Redactor()
        except Exception as exc:
            # Never write a frame unredacted: without the detectors, the recording stops here.
            self._warn(f"record: the secret detectors cannot be used ({exc!r}); nothing is recorded")
            self._off = True
            self._pending.clear()
            self._stop.set()
        while True:
            stopping = self._stop.wait(_FLUSH_EVERY_S)
            self._flush()
            if stopping:
                break
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _flush(self) -> None:
        if self._off:
            self._pending.clear()
            return
        lines: list[bytes] = []
        while self._pending:
            now, kind, item = self._pending.popleft()
            try:
                lines.append(self._line(now, kind, item))
            except Exception as exc:  # a recorder bug must never end the session
                self._warn(f"record: could not record a frame: {exc!r}")
        if self._dropped:
            lines.append(utf8(_ENCODE({"type": "dropped", "frames": self._dropped})) + b"\n")
            self._dropped = 0
        if not lines or self._fd is None:
            return
        try:
            os.write(self._fd, b"".join(lines))
        except OSError as exc:
            if not self._failed:
                self._failed = True
                self._warn(f"record file {self.path} cannot be written ({exc.strerror or exc}); relaying goes on")

    def _times(self, now: float) -> dict[str, float]:
        at = now - self._mono0
        return {"t": round(self._wall0 + at, 6), "at": round(at, 6)}

    def _line(self, now: float, kind: str, item: Any) -> bytes:
        if kind == "session":
            record = {"type": "session", **self._times(now), **item}
        elif kind == "verdict":
            # A refusal's reason and details may quote an argument (a schema check names the value).
            fields = self._redactor.value(verdict_fields(*item)) if self._redactor is not None else None
            if not isinstance(fields, dict):
                raise RecordError("no secret detectors to redact with")
            record = {"type": "verdict", **self._times(now), **fields}
        elif kind == "result":
            record = {"type": "result", **self._times(now), **item}
        else:
            frame: bytes = item
            self._pending_bytes -= len(frame)
            at = now - self._mono0
            head = f'{{"type":"frame","t":{self._wall0 + at:.6f},"at":{at:.6f},"dir":"{kind}",'.encode()
            return head + self._frame_body(frame) + b"}\n"
        return utf8(_ENCODE(record)) + b"\n"

    def _frame_body(self, frame: bytes) -> bytes:
        """``"frame": ...`` (the frame as it came, unless redacted) or ``"text": ..., "unparsed": true``."""
        redactor = self._redactor
        if redactor is None:
            raise RecordError("no secret detectors to redact with")
        raw = frame.strip()
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            text = frame.decode("utf-8", "replace").rstrip("\r\n")
            return b'"text":' + utf8(_ENCODE(redactor.unparsed(text, raw))) + b',"unparsed":true'
        matched = redactor.may_match(raw)
        redacted = redactor.value(value) if matched else value
        # The raw bytes only when nothing in them may be a finding: a duplicate key's dropped value
        # ({"text":"<token>","text":"ok"}) is in the raw frame but not in the parsed one.
        if not matched and b"\r" not in raw and (raw.isascii() or _is_utf8(raw)):
            return b'"frame":' + raw  # valid JSON on one line, nothing to redact: no need to encode it again
        return b'"frame":' + utf8(_ENCODE(redacted))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def verdict_fields(ident: object, tool: str, verdict: Verdict, after_approval: bool) -> dict[str, Any]:
    """A verdict as the record file keeps it (never the arguments)."""
    out: dict[str, Any] = {"id": ident, "tool": tool}
    if isinstance(verdict, Relay):
        record = verdict.record
        out.update(verdict="relay", decision=record.decision, rule=record.rule, reason=record.reason)
    elif isinstance(verdict, Refuse):
        deny = verdict.deny
        out.update(verdict="refuse", decision=verdict.word, rule=deny.rule, reason=deny.reason, kind=deny.kind)
        if deny.details:
            out["details"] = dict(deny.details)
    elif isinstance(verdict, Reply):
        out.update(verdict="reply", decision="asking")
    elif isinstance(verdict, Hold):
        decision = verdict.decision
        out.update(verdict="hold", decision=verdict.kind)
        if decision is not None:
            out.update(rule=decision.rule, reason=decision.reason)
    if after_approval:
        out["after_approval"] = True
    return out
