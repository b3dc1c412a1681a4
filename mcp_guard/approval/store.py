"""Pending approvals, decisions and grants in one SQLite file shared by every guard and the CLI.

The flow, for a call the policy says needs a person's approval::

    grant = store.consume_grant(server, tool, arguments)      # approved already? (uses it up)
    if grant is None:
        request = store.pending_for(server, tool, arguments, rule, reason)  # raises ApprovalDenied
        answer = ask_tty(request, timeout_s)  # or ask_command, or the client: optional
        if answer in ("approved", "declined"):
            grant = store.settle(request, answer == "approved", by="tty")  # None: refuse
        else:
            ...refuse, telling the model to retry once a person ran `mcp-guard approve <id>`...

A person lists requests with ``mcp-guard approvals`` and answers with ``mcp-guard approve ID
[--for 10m]`` or ``mcp-guard deny ID`` (:meth:`ApprovalStore.decide`). An approval becomes a
*grant* for the identical call (same server, tool and canonical arguments): single-use by
default, valid :data:`GRANT_TTL_S` after the decision; or usable any number of times until a
time when given ``--for``. Other channels that asked in-band record grants directly with
:meth:`ApprovalStore.remember` (a rule's ``remember: "10m"``).

Requests: asking again for an identical call that is still pending returns the same request
(a model retrying before anyone answered does not pile requests up). A denied call is refused
(:class:`ApprovalDenied`) when retried before the request would have expired, and for at least
:data:`MIN_DENIAL_S` after the denial. At most ``max_pending`` requests wait at once.

Concurrency: every change runs in a ``BEGIN IMMEDIATE`` transaction, which takes SQLite's
write lock before reading, so two guards can never both use one single-use grant, nor
create two requests for one call. WAL mode lets readers go on meanwhile; writers wait up
to ``busy_timeout_s`` for each other. A store that cannot be used raises
:class:`ApprovalStoreUnavailable`: callers should refuse the call (fail closed).

Argument values are stored (a person has to see them to decide), unlike in the audit log:
the file is created private (0600), and rows are deleted :data:`HISTORY_S` after the request
expired or its grant lapsed (:meth:`ApprovalStore.expire_old`, also run on every change).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_guard.approval.request import (
    ApprovalRequest,
    State,
    call_fingerprint,
    duration_words,
    new_request_id,
    normalize_id,
)
from mcp_guard.audit import arguments_sha256

REQUEST_TTL_S = 600.0
"""How long a request waits for a person's answer."""
GRANT_TTL_S = 600.0
"""How long a single-use approval waits for the agent to retry the call."""
MIN_DENIAL_S = 60.0
"""A denial refuses retries until the request would have expired, and for at least this long."""
HISTORY_S = 3600.0
"""How long decided and expired requests stay for ``status`` before they are deleted."""
MAX_PENDING = 100

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,   -- call_fingerprint(server, tool, arguments)
    server TEXT NOT NULL,
    tool TEXT NOT NULL,
    arguments TEXT NOT NULL,     -- JSON, keys in the call's order
    args_sha256 TEXT NOT NULL,   -- as in the audit log
    rule TEXT NOT NULL,
    reason TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    state TEXT NOT NULL,         -- pending | approved | denied
    decided_at REAL,
    decided_by TEXT,
    until REAL,                  -- when an approval lapses, or a denial stops refusing retries
    single_use INTEGER NOT NULL DEFAULT 1,
    forget_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS requests_by_call ON requests (fingerprint, state);
CREATE INDEX IF NOT EXISTS requests_by_state ON requests (state, expires);
CREATE INDEX IF NOT EXISTS requests_by_forget ON requests (forget_at);
CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY,         -- the approved request's id, or a new one for remember()
    fingerprint TEXT NOT NULL,
    server TEXT NOT NULL,
    tool TEXT NOT NULL,
    args_sha256 TEXT NOT NULL,
    source TEXT NOT NULL,        -- who approved, for the audit log
    approved_at REAL NOT NULL,
    until REAL NOT NULL,
    single_use INTEGER NOT NULL,
    used_at REAL,                -- the last use
    uses INTEGER NOT NULL DEFAULT 0,
    forget_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS grants_by_call ON grants (fingerprint, until);
CREATE INDEX IF NOT EXISTS grants_by_forget ON grants (forget_at);
"""

# Each query written out whole: the columns are what ``_request`` unpacks.
_DENIAL_FOR_CALL = (
    "SELECT id, server, tool, arguments, args_sha256, rule, reason, created, expires, state, decided_at, decided_by, "
    "until, single_use FROM requests "
    "WHERE fingerprint = ? AND state = 'denied' AND until > ? ORDER BY decided_at DESC LIMIT 1"
)
_PENDING_FOR_CALL = (
    "SELECT id, server, tool, arguments, args_sha256, rule, reason, created, expires, state, decided_at, decided_by, "
    "until, single_use FROM requests "
    "WHERE fingerprint = ? AND state = 'pending' AND expires > ? ORDER BY created LIMIT 1"
)
_ALL_PENDING = (
    "SELECT id, server, tool, arguments, args_sha256, rule, reason, created, expires, state, decided_at, decided_by, "
    "until, single_use FROM requests "
    "WHERE state = 'pending' AND expires > ? ORDER BY created"
)
_BY_ID = (
    "SELECT id, server, tool, arguments, args_sha256, rule, reason, created, expires, state, decided_at, decided_by, "
    "until, single_use FROM requests "
    "WHERE id = ?"
)
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class ApprovalError(Exception):
    """Something about an approval a person (or the model) should be told: ``str(exc)`` says it."""


class UnknownApproval(ApprovalError):
    pass


class ApprovalExpired(ApprovalError):
    pass


class AlreadyDecided(ApprovalError):
    pass


class TooManyPending(ApprovalError):
    pass


class ApprovalStoreUnavailable(ApprovalError):
    pass


class ApprovalDenied(ApprovalError):
    """A person denied this identical call recently; ``request`` is their decision."""

    def __init__(self, message: str, request: ApprovalRequest) -> None:
        super().__init__(message)
        self.request = request


@dataclass(frozen=True, slots=True)
class Grant:
    """An approval that was just used: what the audit log records about it."""

    id: str  # the approval id (ap-…)
    source: str  # who or what approved: "alice via mcp-guard approve", "client", "tty", ...
    approved_at: float
    until: float
    single_use: bool
    uses: int  # times it has been used, this use included


def default_store_path() -> Path:
    from mcp_guard.limits.store import state_dir

    return state_dir() / "approvals.db"


class ApprovalStore:
    """Approval requests and grants in a SQLite file (WAL mode), safe across threads and processes.

    One connection, guarded by a lock, serves every thread; it is reopened after ``fork`` and
    after any SQLite error. ``clock`` (wall-clock seconds) is for tests.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        request_ttl_s: float = REQUEST_TTL_S,
        grant_ttl_s: float = GRANT_TTL_S,
        max_pending: int = MAX_PENDING,
        busy_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self.request_ttl_s = request_ttl_s
        self.grant_ttl_s = grant_ttl_s
        self.max_pending = max_pending
        self.busy_timeout_s = busy_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()

    # --- the relay's side ---------------------------------------------------------------

    def consume_grant(self, server: str, tool: str, arguments: Mapping[str, Any]) -> Grant | None:
        """Use a valid approval of this identical call, if there is one; ``None`` if not.

        A single-use grant is marked used in the same transaction that found it, so of several
        guards asking at once exactly one gets it. Grants usable many times are preferred.
        """
        fingerprint = call_fingerprint(server, tool, arguments)
        find = (
            "SELECT id, source, approved_at, until, single_use, uses FROM grants "
            "WHERE fingerprint = ? AND until > ? AND (single_use = 0 OR used_at IS NULL) "
            "ORDER BY single_use, until LIMIT 1"
        )
        with self._connected() as conn:
            # Most calls have no grant: find that out without taking the write lock.
            if conn.execute(find, (fingerprint, self._clock())).fetchone() is None:
                return None
        with self._transaction() as conn:
            now = self._clock()
            row = conn.execute(find, (fingerprint, now)).fetchone()
            if row is None:
                return None  # another guard used it first
            conn.execute("UPDATE grants SET used_at = ?, uses = uses + 1 WHERE id = ?", (now, row[0]))
            return Grant(row[0], row[1], row[2], row[3], bool(row[4]), row[5] + 1)

    def pending_for(
        self,
        server: str,
        tool: str,
        arguments: Mapping[str, Any],
        rule: str,
        reason: str,
        ttl_s: float | None = None,
    ) -> ApprovalRequest:
        """The pending request for this identical call: the one already waiting, or a new one.

        Raises :class:`ApprovalDenied` if a person denied this identical call recently,
        :class:`TooManyPending` if ``max_pending`` requests are waiting already.
        """
        fingerprint = call_fingerprint(server, tool, arguments)
        encoded = _ENCODE(dict(arguments))
        with self._transaction() as conn:
            now = self._clock()
            self._prune(conn, now)
            row = conn.execute(
                _DENIAL_FOR_CALL,
                (fingerprint, now),
            ).fetchone()
            if row is not None:
                denied = self._request(conn, row, now)
                ago = duration_words(now - (denied.decided_at or now))
                raise ApprovalDenied(
                    f"A person denied this call ({denied.id}, {ago} ago): do not retry it unchanged; "
                    "ask the user how to proceed.",
                    denied,
                )
            row = conn.execute(
                _PENDING_FOR_CALL,
                (fingerprint, now),
            ).fetchone()
            if row is not None:
                return self._request(conn, row, now)
            (waiting,) = conn.execute(
                "SELECT count(*) FROM requests WHERE state = 'pending' AND expires > ?", (now,)
            ).fetchone()
            if waiting >= self.max_pending:
                raise TooManyPending(
                    f"{waiting} approvals are already waiting for a person: none can be asked for until "
                    "some are answered (mcp-guard approvals) or expire"
                )
            ttl = self.request_ttl_s if ttl_s is None else ttl_s
            request = ApprovalRequest(
                id=self._new_id(conn),
                server=server,
                tool=tool,
                arguments=json.loads(encoded),
                args_sha256=arguments_sha256(arguments),
                rule=rule,
                reason=reason,
                created=now,
                expires=now + ttl,
            )
            conn.execute(
                "INSERT INTO requests (id, fingerprint, server, tool, arguments, args_sha256, rule, reason, created, "
                "expires, state, forget_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                (
                    request.id,
                    fingerprint,
                    server,
                    tool,
                    encoded,
                    request.args_sha256,
                    rule,
                    reason,
                    now,
                    request.expires,
                    request.expires + HISTORY_S,
                ),
            )
            return request

    def remember(self, server: str, tool: str, arguments: Mapping[str, Any], seconds: float, source: str) -> Grant:
        """Record that a person approved this identical call for ``seconds``: until then it passes unasked.

        For approvals given through another channel (in-band, terminal, command) with a rule's
        ``remember``. The returned grant has a new id; it is not marked used.
        """
        if not seconds > 0:
            raise ValueError(f"remember: seconds must be more than zero, got {seconds!r}")
        fingerprint = call_fingerprint(server, tool, arguments)
        with self._transaction() as conn:
            now = self._clock()
            self._prune(conn, now)
            grant = Grant(self._new_id(conn), source, now, now + seconds, single_use=False, uses=0)
            conn.execute(
                "INSERT INTO grants (id, fingerprint, server, tool, args_sha256, source, approved_at, until, "
                "single_use, forget_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
                (
                    grant.id,
                    fingerprint,
                    server,
                    tool,
                    arguments_sha256(arguments),
                    source,
                    now,
                    grant.until,
                    grant.until + HISTORY_S,
                ),
            )
            return grant

    # --- the person's side --------------------------------------------------------------

    def decide(
        self, id: str, approve: bool, for_seconds: float | None = None, *, by: str = "mcp-guard"
    ) -> ApprovalRequest:
        """Approve or deny a pending request; returns it as decided.

        Approving makes a grant for the identical call: single-use within ``grant_ttl_s``, or
        usable any number of times for ``for_seconds``. Denying makes retries of the identical
        call fail with :class:`ApprovalDenied` until the request would have expired (at least
        :data:`MIN_DENIAL_S`). ``for_seconds`` is ignored when denying. ``by`` is recorded as who
        decided. Raises :class:`UnknownApproval`, :class:`ApprovalExpired` or :class:`AlreadyDecided`.
        """
        if for_seconds is not None and not for_seconds > 0:
            raise ValueError(f"for_seconds must be more than zero, got {for_seconds!r}")
        request_id = normalize_id(id)
        with self._transaction() as conn:
            now = self._clock()
            request = self._find(conn, request_id, now)
            if request.state == "expired":
                raise ApprovalExpired(
                    f"approval {request.id} expired {duration_words(now - request.expires)} ago (requests expire "
                    f"after {duration_words(request.expires - request.created)}); the agent must make the call "
                    "again to ask anew"
                )
            if request.state != "pending":
                verb = "denied" if request.state == "denied" else "approved"
                used = " and used" if request.state == "used" else ""
                ago = duration_words(now - (request.decided_at or now))
                raise AlreadyDecided(
                    f"approval {request.id} was already {verb}{used} ({ago} ago, by {request.decided_by})"
                )
            fingerprint = conn.execute("SELECT fingerprint FROM requests WHERE id = ?", (request.id,)).fetchone()[0]
            state: State
            if approve:
                state = "approved"
                single_use = for_seconds is None
                until = now + (self.grant_ttl_s if for_seconds is None else for_seconds)
                conn.execute(
                    "INSERT INTO grants (id, fingerprint, server, tool, args_sha256, source, approved_at, until, "
                    "single_use, forget_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        request.id,
                        fingerprint,
                        request.server,
                        request.tool,
                        request.args_sha256,
                        by,
                        now,
                        until,
                        int(single_use),
                        until + HISTORY_S,
                    ),
                )
            else:
                state = "denied"
                single_use = True
                until = max(request.expires, now + MIN_DENIAL_S)
            conn.execute(
                "UPDATE requests SET state = ?, decided_at = ?, decided_by = ?, until = ?, single_use = ?, "
                "forget_at = ? WHERE id = ?",
                (state, now, by, until, int(single_use), max(request.expires, until) + HISTORY_S, request.id),
            )
            return ApprovalRequest(
                request.id,
                request.server,
                request.tool,
                request.arguments,
                request.args_sha256,
                request.rule,
                request.reason,
                request.created,
                request.expires,
                state=state,
                decided_at=now,
                decided_by=by,
                until=until,
                single_use=single_use,
            )

    def settle(
        self, request: ApprovalRequest, approved: bool, *, by: str, remember_s: float | None = None
    ) -> Grant | None:
        """Record an answer a channel (client, command, tty) got for ``request`` while the call is held.

        Approved: the request is marked approved and its grant is used by the held call at
        once (``uses == 1``), so it is never left lying around for a later identical call, unless
        ``remember_s`` is given: then identical calls pass unasked for that long. Returns the
        grant for the audit log. If someone denied the request meanwhile (``mcp-guard deny``),
        the denial stands and the result is ``None``; if it was approved meanwhile, the held call
        uses that approval's grant (when still unused); if it expired or is gone, the person's
        answer still holds and a grant with a new id is returned.

        Declined: the request is marked denied, as by ``mcp-guard deny``, so retries of the
        identical call are refused for a while; returns ``None``.
        """
        if remember_s is not None and not remember_s > 0:
            raise ValueError(f"remember_s must be more than zero, got {remember_s!r}")
        fingerprint = call_fingerprint(request.server, request.tool, request.arguments)
        with self._transaction() as conn:
            now = self._clock()
            row = conn.execute("SELECT state, expires FROM requests WHERE id = ?", (request.id,)).fetchone()
            state, expires = (row[0], row[1]) if row is not None else (None, now)
            pending = state == "pending" and expires > now
            if not approved:
                if pending:
                    until = max(expires, now + MIN_DENIAL_S)
                    conn.execute(
                        "UPDATE requests SET state = 'denied', decided_at = ?, decided_by = ?, until = ?, "
                        "forget_at = ? WHERE id = ?",
                        (now, by, until, until + HISTORY_S, request.id),
                    )
                return None
            if state == "denied":
                return None
            if state == "approved":
                # Approved meanwhile with `mcp-guard approve`: the held call uses that grant, if it is unused.
                found = conn.execute(
                    "SELECT id, source, approved_at, until, single_use, uses FROM grants "
                    "WHERE id = ? AND until > ? AND (single_use = 0 OR used_at IS NULL)",
                    (request.id, now),
                ).fetchone()
                if found is not None:
                    conn.execute("UPDATE grants SET used_at = ?, uses = uses + 1 WHERE id = ?", (now, found[0]))
                    return Grant(found[0], found[1], found[2], found[3], bool(found[4]), found[5] + 1)
            single_use = remember_s is None
            until = now + (self.grant_ttl_s if remember_s is None else remember_s)
            grant_id = request.id
            if pending:
                conn.execute(
                    "UPDATE requests SET state = 'approved', decided_at = ?, decided_by = ?, until = ?, "
                    "single_use = ?, forget_at = ? WHERE id = ?",
                    (now, by, until, int(single_use), max(expires, until) + HISTORY_S, request.id),
                )
            else:
                grant_id = self._new_id(conn)  # approved meanwhile through the CLI, expired, or pruned
            conn.execute(
                "INSERT INTO grants (id, fingerprint, server, tool, args_sha256, source, approved_at, until, "
                "single_use, used_at, uses, forget_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
                (
                    grant_id,
                    fingerprint,
                    request.server,
                    request.tool,
                    request.args_sha256,
                    by,
                    now,
                    until,
                    int(single_use),
                    now,
                    until + HISTORY_S,
                ),
            )
            return Grant(grant_id, by, now, until, single_use, 1)

    def list_pending(self) -> list[ApprovalRequest]:
        """Requests waiting for an answer, oldest first."""
        with self._connected() as conn:
            now = self._clock()
            rows = conn.execute(
                _ALL_PENDING,
                (now,),
            ).fetchall()
            return [self._request(conn, row, now) for row in rows]

    def status(self, id: str) -> ApprovalRequest:
        """A request as it stands (``state`` says pending, expired, approved, used or denied)."""
        with self._connected() as conn:
            return self._find(conn, normalize_id(id), self._clock())

    def expire_old(self) -> int:
        """Delete requests and grants past their history time; returns how many rows went."""
        with self._transaction() as conn:
            return self._prune(conn, self._clock())

    def close(self) -> None:
        with self._lock:
            self._close()

    # --- internals ----------------------------------------------------------------------

    def _find(self, conn: sqlite3.Connection, request_id: str, now: float) -> ApprovalRequest:
        row = conn.execute(_BY_ID, (request_id,)).fetchone()
        if row is None:
            raise UnknownApproval(
                f"no pending approval {request_id} (it may have expired: requests expire after "
                f"{duration_words(self.request_ttl_s)})"
            )
        return self._request(conn, row, now)

    def _request(self, conn: sqlite3.Connection, row: tuple[Any, ...], now: float) -> ApprovalRequest:
        (rid, server, tool, arguments, sha, rule, reason, created, expires, state, decided_at, by, until, single) = row
        if state == "pending" and expires <= now:
            state = "expired"
        elif state == "approved" and single:
            used = conn.execute("SELECT used_at FROM grants WHERE id = ?", (rid,)).fetchone()
            if used is not None and used[0] is not None:
                state = "used"
        return ApprovalRequest(
            rid,
            server,
            tool,
            json.loads(arguments),
            sha,
            rule,
            reason,
            created,
            expires,
            state=state,
            decided_at=decided_at,
            decided_by=by,
            until=until,
            single_use=bool(single),
        )

    def _new_id(self, conn: sqlite3.Connection) -> str:
        for _ in range(100):
            candidate = new_request_id()
            taken = conn.execute(
                "SELECT 1 FROM requests WHERE id = ? UNION ALL SELECT 1 FROM grants WHERE id = ?",
                (candidate, candidate),
            ).fetchone()
            if taken is None:
                return candidate
        raise ApprovalStoreUnavailable(f"approval store {self.path}: no free approval id found")

    @staticmethod
    def _prune(conn: sqlite3.Connection, now: float) -> int:
        gone = conn.execute("DELETE FROM requests WHERE forget_at < ?", (now,)).rowcount
        gone += conn.execute("DELETE FROM grants WHERE forget_at < ?", (now,)).rowcount
        return max(gone, 0)

    @contextlib.contextmanager
    def _connected(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._connection()
            except (sqlite3.Error, OSError) as exc:
                self._close()
                raise self._unavailable(exc) from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back if the body raises (an ApprovalError too)."""
        with self._lock:
            try:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
            except (sqlite3.Error, OSError) as exc:
                self._close()
                raise self._unavailable(exc) from exc
            try:
                yield conn
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, (sqlite3.Error, OSError)):
                    self._close()
                    raise self._unavailable(exc) from exc
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                self._close()
                raise self._unavailable(exc) from exc

    def _unavailable(self, exc: BaseException) -> ApprovalStoreUnavailable:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return ApprovalStoreUnavailable(f"the approval store {self.path} cannot be used ({detail})")

    def _connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            # A connection must not cross fork(): leave the parent's alone and open our own.
            self._pid = os.getpid()
            self._conn = None
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Create the file ourselves so it is private from the start; SQLite gives the
        # -wal and -shm files the same permissions as the database.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.name == "posix" and os.fstat(fd).st_mode & 0o077:
                with contextlib.suppress(OSError):
                    os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        conn = sqlite3.connect(
            str(self.path), timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version != _SCHEMA_VERSION:
                conn.execute("BEGIN IMMEDIATE")
                if version > _SCHEMA_VERSION:
                    conn.execute("ROLLBACK")
                    raise sqlite3.DatabaseError(
                        f"written by a newer mcp-guard (schema {version}, this one knows {_SCHEMA_VERSION})"
                    )
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
                conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        return conn

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
