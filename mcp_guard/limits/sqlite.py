"""Exact sliding-log limiter in a SQLite file, shared by every guard on this machine.

Each admitted call adds one row per counter to ``stamps``: its time, its cost, and
the counter's running total before it (``before``) and after it (``after``). The
cost recorded on a counter within ``[now - window, now]`` is then the counter's
total minus ``before`` of the first stamp in the window: two index lookups, however
many stamps the window holds (the in-memory limiter's cumulative sums, on disk).
``retry_after`` finds, through the ``(counter, after)`` index, the first stamp whose
departure from the window makes room.

The check and the record run in one ``BEGIN IMMEDIATE`` transaction, which takes
SQLite's single write lock before reading: two guards can never both see the last
free slot. Time is wall-clock (``time.time()``), read after the lock is taken, and
never runs backwards on a counter: a stamp is dated no earlier than the counter's
newest one, so a clock stepped back makes limits stricter for a while, never
looser. Stamps older than the longest window ever seen on their counter (kept in
``counters``) are deleted as calls arrive, and by a sweep of the whole table every
:data:`SWEEP_EVERY` calls, so the file stays as small as its windows.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from mcp_guard.limits.base import Charge, LimitRefusal, Receipt, StoreUnavailable

T = TypeVar("T")

SWEEP_EVERY = 1024
"""Admitted calls (per limiter object) between sweeps of stamps that no window can see any more."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stamps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so a receipt's ids stay its own
    counter TEXT NOT NULL,
    at REAL NOT NULL,
    cost REAL NOT NULL,
    before REAL NOT NULL,
    after REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS stamps_by_time ON stamps (counter, at);
CREATE INDEX IF NOT EXISTS stamps_by_total ON stamps (counter, after);
CREATE TABLE IF NOT EXISTS counters (
    counter TEXT PRIMARY KEY,
    longest_s REAL NOT NULL,
    total REAL NOT NULL,
    last_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS flow_labels (  -- the flow ledger (mcp_guard.flows.ledger): who holds which label since when
    holder TEXT NOT NULL,
    label TEXT NOT NULL,
    at REAL NOT NULL,
    tool TEXT NOT NULL,
    server TEXT NOT NULL,
    PRIMARY KEY (holder, label)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS keyed (  -- keyed limits: the key counters each family tracks, until they expire
    family TEXT NOT NULL,
    counter TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (family, counter)
) WITHOUT ROWID;
"""

SLACK_S = 1e-9
"""A stamp at ``t`` counts while ``now <= t + window``; the slack keeps that true when
``now - window`` rounds up by an ulp (as in :mod:`mcp_guard.limits.memory`)."""

_FIRST_IN_WINDOW = "SELECT before FROM stamps WHERE counter = ? AND at >= ? ORDER BY at, id LIMIT 1"


@dataclass(slots=True)
class SqliteReceipt(Receipt):
    """A receipt that also names the rows it added: ``(counter, row id)`` per counter."""

    rows: tuple[tuple[str, int], ...] = ()

    def refundable(self) -> Receipt | None:
        keep = tuple(c for c in self.charges if c.refund_on_error)
        if not keep:
            return None
        counters = {c.counter for c in keep}
        return SqliteReceipt(keep, self.at, tuple(r for r in self.rows if r[0] in counters))


class SqliteLimiter:
    """A :class:`~mcp_guard.limits.base.Limiter` over a SQLite file (WAL mode).

    One connection per limiter, guarded by a lock, serves every thread
    (``check_same_thread=False``): SQLite admits one writer at a time anyway, the
    lock hands the connection over in microseconds where SQLite's busy handler
    would sleep in millisecond steps, and there is one file handle to close rather
    than one per thread that ever called. Other processes wait up to
    ``busy_timeout_s`` for the write lock; past that, or on any other SQLite or
    file-system error, calls raise :class:`StoreUnavailable` and the next call
    reopens the file. ``clock`` is for tests.
    """

    def __init__(self, path: Path, busy_timeout_s: float = 5.0, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file the connection has open
        self._pid = os.getpid()
        self._inherited: list[sqlite3.Connection] = []  # from before a fork: never used, never closed
        self._since_sweep = 0

    # --- connection ---------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Create the file ourselves so it is private from the start; SQLite gives the
        # -wal and -shm files the same permissions as the database.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            stat = os.fstat(fd)
        finally:
            os.close(fd)
        conn = sqlite3.connect(
            str(self.path), timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            self._use_wal(conn)
            # In WAL mode NORMAL syncs at checkpoints only: a power cut may lose the last
            # few stamps (limits briefly looser), an application crash loses nothing.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        self._identity = (stat.st_dev, stat.st_ino)
        return conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL mode (once per file; it persists).

        The switch needs an exclusive lock and SQLite answers "database is locked"
        at once, without its busy handler, when another guard holds one (two guards
        opening a new file together): wait and retry within the busy timeout here.
        """
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            try:
                if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                    return
                conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.005)

    def _connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            # A connection must not cross fork(), not even to be closed: keep the parent's
            # untouched (referenced, so never finalised here) and open our own.
            self._pid = os.getpid()
            if self._conn is not None:
                self._inherited.append(self._conn)
            self._conn = None
        if self._conn is not None:
            # If the file was removed or replaced, this connection writes where no other guard looks.
            try:
                stat = os.stat(self.path)
                current: tuple[int, int] | None = (stat.st_dev, stat.st_ino)
            except FileNotFoundError:
                current = None
            if current != self._identity:
                self._drop()
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                conn = self._connection()
                try:
                    return work(conn)
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except (sqlite3.Error, OSError) as exc:
                self._drop()
                raise StoreUnavailable(f"counter store {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._drop()

    def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on this store's connection, under its lock (the flow ledger shares the file)."""
        return self._run(work)

    def now(self) -> float:
        return self._clock()

    # --- the Limiter interface ------------------------------------------------------------

    def acquire(self, charges: Sequence[Charge]) -> LimitRefusal | Receipt:
        if not charges:
            return SqliteReceipt((), self._clock(), ())
        return self._run(lambda conn: self._acquire(conn, charges))

    def refund(self, receipt: Receipt) -> None:
        if receipt.charges:
            self._run(lambda conn: self._refund(conn, receipt))

    def usage(self, counter: str, window_s: float) -> float:
        now = self._clock()

        def read(conn: sqlite3.Connection) -> float:
            # One statement, so one snapshot: the total and the window's base agree.
            row = conn.execute(
                "SELECT (SELECT total FROM counters WHERE counter = ?1) - "
                "(SELECT before FROM stamps WHERE counter = ?1 AND at >= ?2 ORDER BY at, id LIMIT 1)",
                (counter, now - window_s - SLACK_S),
            ).fetchone()
            return float(row[0]) if row is not None and row[0] is not None else 0.0

        return self._run(read)

    def stamp_count(self) -> int:
        """Rows in the file (tests and the growth check)."""
        return self._run(lambda conn: int(conn.execute("SELECT count(*) FROM stamps").fetchone()[0]))

    # --- inside the transaction -----------------------------------------------------------

    def _acquire(self, conn: sqlite3.Connection, charges: Sequence[Charge]) -> LimitRefusal | Receipt:
        conn.execute("BEGIN IMMEDIATE")
        # Per counter, in first-mention order: (longest_s, total, last_at), or None if never recorded.
        state: dict[str, tuple[float, float, float] | None] = {}
        for charge in charges:
            if charge.counter not in state:
                row = conn.execute(
                    "SELECT longest_s, total, last_at FROM counters WHERE counter = ?", (charge.counter,)
                ).fetchone()
                state[charge.counter] = (float(row[0]), float(row[1]), float(row[2])) if row is not None else None
        # The clock is read holding the write lock, so commit order and time order agree.
        now = self._clock()
        for known in state.values():
            if known is not None and known[2] > now:
                now = known[2]

        for charge in charges:
            if charge.family is not None:
                full = self._keys_full(conn, charge, now)
                if full is not None:
                    conn.execute("ROLLBACK")
                    return full
            known = state[charge.counter]
            used = 0.0
            first = None
            if known is not None:
                first = conn.execute(_FIRST_IN_WINDOW, (charge.counter, now - charge.window_s - SLACK_S)).fetchone()
                if first is not None:
                    used = known[1] - float(first[0])
            if used + charge.cost > charge.max:
                if charge.cost > charge.max or known is None or first is None:
                    retry: float | None = None
                else:
                    retry = self._retry_after(conn, charge, known[1], now)
                conn.execute("ROLLBACK")
                return LimitRefusal(charge, used, retry)

        rows: list[tuple[str, int]] = []
        for counter, known in state.items():
            # Limits naming one counter share it: the call is one stamp on it, costing
            # what its first charge costs; it is kept as long as the longest of them needs.
            naming = [c for c in charges if c.counter == counter]
            longest = max(c.window_s for c in naming)
            before = 0.0
            if known is not None:
                longest = max(longest, known[0])
                before = known[1]
            cost = naming[0].cost
            conn.execute("DELETE FROM stamps WHERE counter = ? AND at < ?", (counter, now - longest))
            cursor = conn.execute(
                "INSERT INTO stamps (counter, at, cost, before, after) VALUES (?, ?, ?, ?, ?)",
                (counter, now, cost, before, before + cost),
            )
            assert cursor.lastrowid is not None  # noqa: S101 - an INSERT always sets it
            rows.append((counter, cursor.lastrowid))
            conn.execute(
                "INSERT INTO counters (counter, longest_s, total, last_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (counter) DO UPDATE SET longest_s = excluded.longest_s, total = excluded.total, "
                "last_at = excluded.last_at",
                (counter, longest, before + cost, now),
            )
            if naming[0].family is not None:
                conn.execute(
                    "INSERT INTO keyed (family, counter, expires) VALUES (?, ?, ?) "
                    "ON CONFLICT (family, counter) DO UPDATE SET expires = excluded.expires",
                    (naming[0].family, counter, now + longest),
                )
        self._since_sweep += 1
        if self._since_sweep >= SWEEP_EVERY:
            self._since_sweep = 0
            self._sweep(conn, now)
        conn.execute("COMMIT")
        return SqliteReceipt(tuple(charges), now, tuple(rows))

    @staticmethod
    def _keys_full(conn: sqlite3.Connection, charge: Charge, now: float) -> LimitRefusal | None:
        """A refusal when ``charge`` is a new key and its family tracks ``max_keys`` live keys already."""
        row = conn.execute(
            "SELECT expires FROM keyed WHERE family = ? AND counter = ?", (charge.family, charge.counter)
        ).fetchone()
        if row is not None and float(row[0]) >= now:
            return None
        live = conn.execute(
            "SELECT count(*), min(expires) FROM keyed WHERE family = ? AND expires >= ?", (charge.family, now)
        ).fetchone()
        if int(live[0]) < charge.max_keys:
            return None
        return LimitRefusal(charge, float(live[0]), max(0.0, float(live[1]) - now), keys_full=True)

    @staticmethod
    def _retry_after(conn: sqlite3.Connection, charge: Charge, total: float, now: float) -> float:
        # The first stamp j with after_j >= total + cost - max: once it leaves the window,
        # what remains plus this cost fits. Stamps before the window all have after <= the
        # window's base < that bound, so the search needs no window condition.
        need = total + charge.cost - charge.max
        row = conn.execute(
            "SELECT at FROM stamps WHERE counter = ? AND after >= ? ORDER BY after, id LIMIT 1",
            (charge.counter, need),
        ).fetchone()
        if row is None:  # rounding put the bound above the total: the newest stamp
            row = conn.execute(
                "SELECT at FROM stamps WHERE counter = ? ORDER BY at DESC, id DESC LIMIT 1", (charge.counter,)
            ).fetchone()
        return max(0.0, float(row[0]) + charge.window_s - now)

    @staticmethod
    def _sweep(conn: sqlite3.Connection, now: float) -> None:
        """Delete stamps of counters no call has touched lately; restart idle totals at zero."""
        conn.execute(
            "DELETE FROM stamps "
            "WHERE at < ? - (SELECT longest_s FROM counters WHERE counters.counter = stamps.counter)",
            (now,),
        )
        conn.execute(
            "UPDATE counters SET total = 0 WHERE total != 0 "
            "AND NOT EXISTS (SELECT 1 FROM stamps WHERE stamps.counter = counters.counter)"
        )
        # A key counter whose window emptied is forgotten whole: keys are many and often short-lived.
        conn.execute("DELETE FROM counters WHERE counter IN (SELECT counter FROM keyed WHERE expires < ?)", (now,))
        conn.execute("DELETE FROM stamps WHERE counter IN (SELECT counter FROM keyed WHERE expires < ?)", (now,))
        conn.execute("DELETE FROM keyed WHERE expires < ?", (now,))

    def _refund(self, conn: sqlite3.Connection, receipt: Receipt) -> None:
        conn.execute("BEGIN IMMEDIATE")
        if isinstance(receipt, SqliteReceipt):
            targets = list(receipt.rows)
        else:  # a receipt from elsewhere: the counter's stamp at that time and cost
            targets = []
            seen: set[str] = set()
            for charge in receipt.charges:
                if charge.counter in seen:
                    continue
                seen.add(charge.counter)
                row = conn.execute(
                    "SELECT id FROM stamps WHERE counter = ? AND at = ? AND cost = ? ORDER BY id DESC LIMIT 1",
                    (charge.counter, receipt.at, charge.cost),
                ).fetchone()
                if row is not None:
                    targets.append((charge.counter, int(row[0])))
        for counter, row_id in targets:
            row = conn.execute("SELECT cost FROM stamps WHERE id = ? AND counter = ?", (row_id, counter)).fetchone()
            if row is None:  # already out of every window and pruned
                continue
            cost = float(row[0])
            conn.execute("DELETE FROM stamps WHERE id = ?", (row_id,))
            # Later stamps' running totals no longer include it. Ids grow with time on a counter.
            conn.execute(
                "UPDATE stamps SET before = before - ?1, after = after - ?1 WHERE counter = ?2 AND id > ?3",
                (cost, counter, row_id),
            )
            conn.execute("UPDATE counters SET total = total - ? WHERE counter = ?", (cost, counter))
        conn.execute("COMMIT")
