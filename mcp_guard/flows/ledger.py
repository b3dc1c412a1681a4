"""The flow ledger: which holder (a client session, a guard, a server, everyone) holds which label since when.

A holder is a string: ``client:ID``, ``grant:ID``, ``server:NAME`` or ``global``. One row per holder and label
keeps the newest acquisition (the tool and server that gave it, and when): a label is held "within" a window
when its newest acquisition is, so older ones never matter. Time is wall-clock seconds (the refusal shows it
to the model as a time of day); in Redis, the server's clock, as for limits.

Rows are never aged out: a client session may last weeks, and a ``global`` label without ``within`` is held
until a person clears it (``mcp-guard flows clear``). A row is a few dozen bytes per holder and label.
"""

from __future__ import annotations

import importlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from mcp_guard.limits.base import StoreUnavailable


@dataclass(frozen=True, slots=True)
class Held:
    holder: str
    label: str
    at: float
    tool: str
    server: str


class Ledger(Protocol):
    def acquire(self, holders: Sequence[str], labels: Sequence[str], tool: str, server: str) -> None:
        """Record that each holder now holds each label, given by ``tool`` of ``server``."""
        ...

    def held(self, holders: Sequence[str], labels: Iterable[str]) -> tuple[list[Held], float]:
        """The rows of these holders for these labels, and the store's time now."""
        ...

    def entries(self) -> list[Held]:
        """Every row (``mcp-guard stats``)."""
        ...

    def clear(self, holder: str | None) -> int:
        """Forget ``holder``'s labels (every holder's with None); how many rows went."""
        ...


class MemoryLedger:
    """A ledger in this process (``grant`` scope, ``mcp-guard explain --labels``). ``clock`` is for tests."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._rows: dict[tuple[str, str], Held] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def acquire(self, holders: Sequence[str], labels: Sequence[str], tool: str, server: str) -> None:
        now = self._clock()
        with self._lock:
            for holder in holders:
                for label in labels:
                    self._rows[(holder, label)] = Held(holder, label, now, tool, server)

    def held(self, holders: Sequence[str], labels: Iterable[str]) -> tuple[list[Held], float]:
        wanted = list(labels)
        with self._lock:
            rows = [self._rows[(h, label)] for h in holders for label in wanted if (h, label) in self._rows]
        return rows, self._clock()

    def entries(self) -> list[Held]:
        with self._lock:
            return sorted(self._rows.values(), key=lambda h: (h.holder, h.label))

    def clear(self, holder: str | None) -> int:
        with self._lock:
            gone = [k for k in self._rows if holder is None or k[0] == holder]
            for key in gone:
                del self._rows[key]
            return len(gone)


class SqliteLedger:
    """The ledger in the SQLite counter store's file (its ``flow_labels`` table), shared by the guards on a machine."""

    def __init__(self, store: Any) -> None:
        self._store = store  # a SqliteLimiter: its connection handling (locks, fork, a replaced file) is reused

    def acquire(self, holders: Sequence[str], labels: Sequence[str], tool: str, server: str) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            now = self._store.now()
            conn.executemany(
                "INSERT INTO flow_labels (holder, label, at, tool, server) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (holder, label) DO UPDATE SET at = excluded.at, tool = excluded.tool, "
                "server = excluded.server",
                [(h, label, now, tool, server) for h in holders for label in labels],
            )
            conn.execute("COMMIT")

        self._store.run(write)

    def held(self, holders: Sequence[str], labels: Iterable[str]) -> tuple[list[Held], float]:
        wanted = list(labels)

        def read(conn: sqlite3.Connection) -> list[Held]:
            marks_h = ",".join("?" * len(holders))
            marks_l = ",".join("?" * len(wanted))
            rows = conn.execute(
                f"SELECT holder, label, at, tool, server FROM flow_labels WHERE holder IN ({marks_h}) "  # noqa: S608
                f"AND label IN ({marks_l})",
                [*holders, *wanted],
            ).fetchall()
            return [Held(str(r[0]), str(r[1]), float(r[2]), str(r[3]), str(r[4])) for r in rows]

        if not holders or not wanted:
            return [], self._store.now()
        rows = self._store.run(read)
        return rows, self._store.now()

    def entries(self) -> list[Held]:
        def read(conn: sqlite3.Connection) -> list[Held]:
            rows = conn.execute(
                "SELECT holder, label, at, tool, server FROM flow_labels ORDER BY holder, label"
            ).fetchall()
            return [Held(str(r[0]), str(r[1]), float(r[2]), str(r[3]), str(r[4])) for r in rows]

        result: list[Held] = self._store.run(read)
        return result

    def clear(self, holder: str | None) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            if holder is None:
                return int(conn.execute("DELETE FROM flow_labels").rowcount)
            return int(conn.execute("DELETE FROM flow_labels WHERE holder = ?", (holder,)).rowcount)

        result: int = self._store.run(delete)
        return result


_ACQUIRE_LUA = """
-- KEYS: one hash per holder; ARGV[1]: '' (the server's clock) or a time in seconds (tests);
-- ARGV[2]: tool; ARGV[3]: server; ARGV[4..]: labels.
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local value = cjson.encode({at = now, tool = ARGV[2], server = ARGV[3]})
for _, key in ipairs(KEYS) do
  for i = 4, #ARGV do redis.call('HSET', key, ARGV[i], value) end
end
return 1
"""

_NOW_LUA = """
local t = redis.call('TIME')
return t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
"""


class RedisLedger:
    """The ledger in Redis: one hash per holder (``<prefix>flows:<holder>``), label -> JSON of the acquisition."""

    def __init__(self, limiter: Any) -> None:
        self._limiter = limiter  # a RedisLimiter: its client, prefix and error handling are reused
        self._client: Any = limiter._client
        self._acquire: Any = self._client.register_script(_ACQUIRE_LUA)
        self._now: Any = self._client.register_script(_NOW_LUA)
        self._errors: tuple[type[BaseException], ...] = (importlib.import_module("redis").RedisError,)

    def _key(self, holder: str) -> str:
        return f"{self._limiter.prefix}flows:{holder}"

    def _do(self, work: Callable[[], Any]) -> Any:
        try:
            return work()
        except self._errors as exc:
            from mcp_guard.limits.redis import redacted

            raise StoreUnavailable(f"flow ledger {redacted(self._limiter.url)}: {exc}") from exc

    def _clock(self) -> str:
        clock = self._limiter._clock
        return "" if clock is None else repr(float(clock()))

    def _time(self) -> float:
        clock = self._limiter._clock
        if clock is not None:
            return float(clock())
        return float(_text(self._do(lambda: self._now(keys=[], args=[]))))

    def acquire(self, holders: Sequence[str], labels: Sequence[str], tool: str, server: str) -> None:
        keys = [self._key(h) for h in holders]
        self._do(lambda: self._acquire(keys=keys, args=[self._clock(), tool, server, *labels]))

    def held(self, holders: Sequence[str], labels: Iterable[str]) -> tuple[list[Held], float]:
        wanted = list(labels)
        out: list[Held] = []
        for holder in holders:
            key = self._key(holder)
            values = self._do(partial(self._client.hmget, key, wanted)) if wanted else []
            for label, raw in zip(wanted, values, strict=True):
                if raw is not None:
                    out.append(_held(holder, label, raw))
        return out, self._time()

    def entries(self) -> list[Held]:
        prefix = self._key("")
        out: list[Held] = []
        for key in self._do(lambda: list(self._client.scan_iter(match=f"{prefix}*"))):
            holder = _text(key)[len(prefix) :]
            for label, raw in self._do(partial(self._client.hgetall, key)).items():
                out.append(_held(holder, _text(label), raw))
        return sorted(out, key=lambda h: (h.holder, h.label))

    def clear(self, holder: str | None) -> int:
        if holder is not None:
            key = self._key(holder)
            count = int(self._do(lambda: self._client.hlen(key)))
            self._do(lambda: self._client.delete(key))
            return count
        count = 0
        for key in self._do(lambda: list(self._client.scan_iter(match=f"{self._key('')}*"))):
            count += int(self._do(partial(self._client.hlen, key)))
            self._do(partial(self._client.delete, key))
        return count


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _held(holder: str, label: str, raw: Any) -> Held:
    data = json.loads(_text(raw))
    return Held(holder, label, float(data["at"]), str(data["tool"]), str(data["server"]))


def open_ledger(url: str | None) -> Ledger:
    """The shared ledger for a ``--state`` URL: the SQLite file or Redis server the counters use; with no store
    (or ``memory:``, which other processes cannot see) the SQLite file ``flows.db`` in the user state directory."""
    from mcp_guard.limits.store import open_store

    if url is None or url.strip().lower() in ("memory:", "memory://"):
        from mcp_guard import paths
        from mcp_guard.limits.sqlite import SqliteLimiter

        return SqliteLedger(SqliteLimiter(paths.state_dir() / FLOWS_FILE))
    store = open_store(url)
    from mcp_guard.limits.sqlite import SqliteLimiter

    if isinstance(store, SqliteLimiter):
        return SqliteLedger(store)
    return RedisLedger(store)


FLOWS_FILE = "flows.db"
