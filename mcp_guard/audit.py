"""The audit log: one JSON line per decision, written off the relay's path.

The pump threads only append a small record to a deque; a writer thread wakes a
few times a second and does the rest for the whole batch (canonical-argument
hashing, JSON encoding, one write, rotation). Waking the writer per record cost
more than the rest of the relay together (a futex wake and a context switch per
call, measured in ``benchmarks/``). A backlog past its bound drops records
(counted and reported in the next line written) rather than slow the relay, and a
failing disk is reported once on stderr and never stops the session.

Argument values are never written: only their keys and a SHA-256 of the canonical
arguments, since they hold card numbers and customer data.

Several guards (one per server) share one file: each ``write`` holds whole lines
on a descriptor opened with ``O_APPEND``, which the OS keeps whole; rotation is
serialised between processes with an advisory lock and noticed by the others
through the file's inode.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_guard.canonical import KeyedDigest, canonical_json, compact_json, sha256_hex, utf8
from mcp_guard.wire.jsonrpc import answer_status, loads_or_none

Decision = str  # allowed | refused | approved | declined | monitored
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_KEEP = 3
_BACKLOG = 100_000
_FLUSH_EVERY_S = 0.2
_CACHED = 256  # encoded pieces of lines kept for reuse


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def canonical_arguments(arguments: Mapping[str, Any]) -> bytes:
    """The arguments as canonical JSON (:func:`mcp_guard.canonical.canonical_json`), the input of the fingerprint."""
    return canonical_json(arguments)


def arguments_sha256(arguments: Mapping[str, Any]) -> str:
    return sha256_hex(arguments)


def server_identity(command: Sequence[str], name: str | None = None) -> str:
    """What approvals are bound to: ``--name`` when given, else the whole command line that started the server.

    A display name (:func:`server_name_from`) is not enough: two servers started as
    ``python …/server.py`` from different folders share one. The command is written as a JSON
    list (so ``["a b"]`` and ``["a", "b"]`` differ) and a name gets a prefix no JSON list has.
    """
    if name:
        return f"name:{name}"
    return compact_json(without_secrets(command))


def without_secrets(command: Sequence[str]) -> list[str]:
    """``command`` fit to store and show: the values of mcp-remote's ``--header`` arguments hashed.

    ``wrap --remote`` puts a remote server's headers (``Authorization: Bearer ...``) on mcp-remote's
    command line, where the client has often expanded ``${TOKEN}`` already. The hash keeps two
    commands that differ only in a header value apart (an approval stays bound to the credential)
    without writing the credential into the approvals database or onto a screen.
    """
    words = list(command)
    if not any(_is_mcp_remote(os.path.basename(word)) for word in words):
        return words
    for i in range(1, len(words)):
        if words[i - 1] == "--header" and ":" in words[i]:
            name, _, value = words[i].partition(":")
            words[i] = f"{name}: sha256:{sha256_hex(value.strip())[:16]}"
    return words


def server_name_from(command: list[str]) -> str:
    """A readable server name from its command: the package or script, not the launcher.

    A remote server reached through the mcp-remote bridge is named after its URL (host and
    path), not the bridge: otherwise every remote server would share one name, and with it
    the 'server'-scoped counters.
    """
    launchers = {"npx", "npx.cmd", "uvx", "pipx", "node", "python", "python3", "deno", "bun", "bunx", "pnpm", "yarn"}
    words = [os.path.basename(w) if i == 0 else w for i, w in enumerate(command)]
    if words and (words[0] in launchers or words[0].startswith("python")):
        for i, word in enumerate(words[1:], 1):
            if not word.startswith("-") and word not in ("run", "exec", "dlx", "x"):
                if word.startswith(("/", ".", "~")) or word.endswith((".py", ".js", ".mjs", ".cjs", ".ts")):
                    return os.path.splitext(os.path.basename(word))[0]
                if _is_mcp_remote(word) and i + 1 < len(words):
                    return _url_name(words[i + 1])
                return word  # a package name, scoped ones included
    if len(words) > 1 and _is_mcp_remote(os.path.splitext(words[0])[0]):
        return _url_name(words[1])
    return words[0] if words else "server"


def _is_mcp_remote(word: str) -> bool:
    return word == "mcp-remote" or word.startswith("mcp-remote@")


def _url_name(url: str) -> str:
    """``https://user@mcp.example.com/v1/mcp?x=1`` -> ``mcp.example.com/v1/mcp``."""
    rest = url.split("://", 1)[-1].split("?", 1)[0].split("#", 1)[0]
    host, _, path = rest.partition("/")
    name = host.rsplit("@", 1)[-1] + ("/" + path if path else "")
    return name.rstrip("/") or url


@dataclass(slots=True)
class Event:
    """One decision, as the relay knows it. Arguments stay unhashed until the writer thread."""

    server: str
    client: dict[str, str] | None
    tool: str
    decision: Decision
    rule: str | None
    reason: str | None
    arguments: Mapping[str, Any]
    status: str | None = None  # ok | error (isError) | rpc_error | server_exited, for relayed calls
    duration_ms: float | None = None
    when: float = 0.0  # time.time() at the decision
    answer: bytes | None = None  # the server's answer, when status is None: the writer reads the status from it
    # What the result checks did: {"outcome": warn|redact|block, "findings": [{detector, kind, count, paths}]}
    result: Mapping[str, Any] | None = None
    kind: str = "tool"  # prompt or resource: ``tool`` holds the prompt's name or the URI
    rounds: int = 1  # 2026-07-28 input rounds one call took (the retries carrying the server's requestState)


class AuditLog:
    def __init__(
        self,
        path: Path,
        warn: Callable[[str], None],
        max_bytes: int = DEFAULT_MAX_BYTES,
        keep: int = DEFAULT_KEEP,
        key: bytes | None = None,
        secret_path: Path | None = None,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self._warn = warn
        self._pending: collections.deque[Event] = collections.deque()
        self._stop = threading.Event()
        self._dropped = 0
        self._failed = False
        self._fd: int | None = None
        self._pid = os.getpid()
        self._key = key
        self._secret_path = secret_path
        self._ts_second = -1
        self._ts_prefix = ""
        self._digest: KeyedDigest | None = None
        self._middles: dict[Any, str] = {}
        self._arg_keys: dict[tuple[str, ...], str] = {}
        self._thread = threading.Thread(target=self._run, name="mcp-guard audit", daemon=True)
        self._thread.start()

    def record(self, event: Event) -> None:
        """Never blocks and wakes nothing: a deque append (atomic under the GIL)."""
        if len(self._pending) >= _BACKLOG:
            self._dropped += 1
            return
        self._pending.append(event)

    def close(self, timeout: float = 2.0) -> None:
        """Write what is pending (bounded in time) and stop the writer."""
        self._stop.set()
        self._thread.join(timeout)

    # writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(_FLUSH_EVERY_S)
            self._flush()
            if stopping:
                break
        self._close_fd()

    def _flush(self) -> None:
        lines: list[bytes] = []
        while self._pending:
            event = self._pending.popleft()
            try:
                lines.append(self._line(event))
            except Exception as exc:  # an audit bug must not end the session
                self._warn(f"audit log: could not record a decision: {exc!r}")
        if not lines:
            return
        try:
            self._write(lines)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                self._warn(f"audit log {self.path} cannot be written ({exc.strerror or exc}); relaying goes on")
            self._close_fd()

    def _line(self, event: Event) -> bytes:
        second = int(event.when)
        if second != self._ts_second:
            self._ts_second = second
            self._ts_prefix = dt.datetime.fromtimestamp(second, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        millis = int((event.when - second) * 1000)
        # Keys in a fixed order, so people reading the file see the same layout on every line. Built from
        # pieces, the ones that repeat from call to call (server, client, tool, rule, keys) encoded once:
        # the same text as encoding the whole record, at a third of the cost.
        status = event.status
        if status is None and event.answer is not None:
            status = answer_status(loads_or_none(event.answer))
        duration = event.duration_ms
        if duration is None:
            duration_text = "null"
        else:
            duration = round(duration, 3)
            duration_text = repr(duration) if type(duration) is float and math.isfinite(duration) else _ENCODE(duration)
        middle = self._middle(event, status)
        text = (
            f'{{"ts":"{self._ts_prefix}.{millis:03d}+00:00",{middle},"duration_ms":{duration_text},'
            f'"arg_keys":{self._keys(event.arguments)},"args_hmac":"{self._fingerprint(event.arguments)}",'
            f'"pid":{self._pid}'
        )
        if event.result is not None:
            text += f',"result":{_ENCODE(event.result)}'
        if event.kind != "tool":  # tool lines keep their layout; a prompt or resource line says what it is
            text += f',"kind":{_ENCODE(event.kind)}'
        if event.rounds > 1:
            text += f',"rounds":{int(event.rounds)}'
        if self._dropped:
            text += f',"dropped_before":{self._dropped}'
            self._dropped = 0
        return utf8(text + "}") + b"\n"  # a lone surrogate anywhere is written escaped, never dropped

    def _middle(self, event: Event, status: str | None) -> str:
        """``"server":…`` to ``"status":…``, encoded once per distinct combination."""
        client = event.client
        try:
            key: Any = (event.server, event.tool, event.decision, event.rule, event.reason, status)
            key += (tuple(client.items()),) if client is not None else (None,)
            text = self._middles.get(key)
        except TypeError:  # an unhashable value in the client's name: encode it every time
            key, text = None, None
        if text is None:
            text = _ENCODE(
                {
                    "server": event.server,
                    "client": client,
                    "tool": event.tool,
                    "decision": event.decision,
                    "rule": event.rule,
                    "reason": event.reason,
                    "status": status,
                }
            )[1:-1]
            if key is not None:
                if len(self._middles) >= _CACHED:
                    self._middles.clear()
                self._middles[key] = text
        return text

    def _keys(self, arguments: Mapping[str, Any]) -> str:
        """The argument names, sorted, as a JSON list; encoded once per distinct set of names."""
        key = tuple(arguments)
        text = self._arg_keys.get(key)
        if text is None:
            text = _ENCODE(sorted(arguments))
            if len(self._arg_keys) >= _CACHED:
                self._arg_keys.clear()
            self._arg_keys[key] = text
        return text

    def _fingerprint(self, arguments: Mapping[str, Any]) -> str:
        """HMAC-SHA-256 of the canonical arguments under the installation's secret.

        A plain hash of a small value (an amount, a 4-digit PIN) could be reversed by
        hashing every candidate; without the secret (mode 0600) it cannot.
        """
        if self._digest is None:
            if self._key is None:
                self._key = self._load_key()
            self._digest = KeyedDigest(self._key)
        return self._digest(arguments)

    def _load_key(self) -> bytes:
        from mcp_guard.integrity.fingerprint import SecretError, load_or_create_secret

        try:
            return load_or_create_secret(self._secret_path)
        except (SecretError, OSError) as exc:
            # Without the secret the fingerprint would be guessable: use a key of this process instead.
            self._warn(f"audit log: the installation secret cannot be used ({exc}); fingerprints use a per-process key")
            return os.urandom(32)

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _write(self, lines: list[bytes]) -> None:
        """Append whole lines; each ``write`` holds only whole lines, so guards sharing the file never interleave."""
        if self._fd is None:
            self._fd = self._open()
            if self._failed:
                self._failed = False
                self._warn(f"audit log {self.path} is writable again")
        elif self._rotated_away():
            self._close_fd()
            self._fd = self._open()
        size = os.fstat(self._fd).st_size
        chunk: list[bytes] = []
        chunk_size = 0
        for line in lines:
            chunk.append(line)
            chunk_size += len(line)
            # Each write stays small enough to land whole, and the file rotates on the way.
            if chunk_size >= 65536 or size + chunk_size >= self.max_bytes:
                size = self._append(b"".join(chunk))
                chunk, chunk_size = [], 0
        if chunk:
            self._append(b"".join(chunk))

    def _append(self, data: bytes) -> int:
        """Write ``data``; rotate if the file is full. Returns the size of the file now being written."""
        if self._fd is None:
            self._fd = self._open()
        os.write(self._fd, data)
        size = os.fstat(self._fd).st_size
        if size >= self.max_bytes:
            self._rotate()
            return 0
        return size

    def _rotated_away(self) -> bool:
        assert self._fd is not None  # noqa: S101
        try:
            return os.stat(self.path).st_ino != os.fstat(self._fd).st_ino
        except FileNotFoundError:
            return True

    def _rotate(self) -> None:
        with _interprocess_lock(self.path.with_name(self.path.name + ".lock")):
            try:
                if os.stat(self.path).st_size < self.max_bytes:
                    return  # another guard rotated first
            except FileNotFoundError:
                return
            for i in range(self.keep - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{i}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._close_fd()


@contextlib.contextmanager
def _interprocess_lock(path: Path) -> Any:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:  # Windows: rotation races are harmless there (renames of open files fail)
            pass
        yield
    finally:
        os.close(fd)


def default_audit_path() -> Path:
    from mcp_guard import paths

    return paths.audit_log_path()


def log_files(path: Path) -> list[Path]:
    """The log and its rotated predecessors, oldest first."""
    rotated = sorted(
        (p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
        key=lambda p: -int(p.suffix[1:]),
    )
    return [*rotated, path] if path.exists() else rotated
