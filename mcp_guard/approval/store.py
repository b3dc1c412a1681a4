"""Pending approvals, decisions and grants in one SQLite file shared by every guard and the CLI.

The flow, for a call the policy says needs a person's approval (``identity`` is the server's
:func:`server_identity`, ``server`` the name people see)::

    grant = store.consume_grant(server, tool, arguments, identity=identity)  # approved already? (uses it up)
    if grant is None:
        request = store.pending_for(server, tool, arguments, rule, reason, identity=identity)  # ApprovalDenied
        answer = ask_tty(request, timeout_s)  # or ask_command, or the client: optional
        if answer in ("approved", "declined"):
            grant = store.settle(request, answer == "approved", by="tty")  # None: refuse
        else:
            ...refuse, telling the model to retry once a person ran `mcp-guard approve <id>`...

A person lists requests with ``mcp-guard approvals`` (``approvals show ID`` prints every argument
in full) and answers with ``mcp-guard approve ID [--for 10m]`` or ``mcp-guard deny ID``
(:meth:`ApprovalStore.decide`). An approval becomes a *grant* for the identical call (same server
identity, tool and canonical arguments): single-use by default, valid :data:`GRANT_TTL_S` after the
decision; or usable any number of times until a time when given ``--for``. Other channels that
asked in-band record grants directly with :meth:`ApprovalStore.remember` (a rule's ``remember: "10m"``).

Bound to the server that asked: a call's fingerprint covers the server's identity (its whole
command line, or ``--name`` when given), not the display name derived from the package, so an
approval for one ``server.py`` is not good for another ``server.py`` started from elsewhere. A
caller that passes no ``identity`` is bound to its display name, as if it were a ``--name``.

Sealed: every row carries an HMAC (``mac``) over all its other columns, made with a key derived
from the installation's secret (:mod:`mcp_guard.integrity.fingerprint`, mode 0600). A row that
does not verify, or whose columns do not have the types the guard writes, was written by something
other than the guard (``sqlite3`` by hand, a program the agent ran): it is never honoured, counted
or shown; it is treated as absent, with one warning per row. What this cannot stop: a program that
can read the secret, or one that puts back an earlier, genuine copy of a row (a single-use grant
before it was used) within that grant's lifetime.

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
A store written by an older mcp-guard (schema 1, rows without a seal) is emptied when opened.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

from mcp_guard.approval.request import (
    ApprovalRequest,
    State,
    call_fingerprint,
    duration_words,
    new_request_id,
    normalize_id,
    printable,
)
from mcp_guard.audit import arguments_sha256, server_identity
from mcp_guard.canonical import canonical_json, compact_json, escape_surrogates
from mcp_guard.integrity.fingerprint import SecretError, load_or_create_secret, subkey

__all__ = [
    "GRANT_TTL_S",
    "HISTORY_S",
    "MAX_PENDING",
    "MIN_DENIAL_S",
    "REQUEST_TTL_S",
    "AlreadyDecided",
    "ApprovalDenied",
    "ApprovalError",
    "ApprovalExpired",
    "ApprovalStore",
    "ApprovalStoreUnavailable",
    "Grant",
    "TooManyPending",
    "UnknownApproval",
    "default_store_path",
    "server_identity",
]

REQUEST_TTL_S = 600.0
"""How long a request waits for a person's answer."""
GRANT_TTL_S = 600.0
"""How long a single-use approval waits for the agent to retry the call."""
MIN_DENIAL_S = 60.0
"""A denial refuses retries until the request would have expired, and for at least this long."""
HISTORY_S = 3600.0
"""How long decided and expired requests stay for ``status`` before they are deleted."""
MAX_PENDING = 100

_SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE requests (
    id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,      -- call_fingerprint(server_identity, tool, arguments)
    server TEXT NOT NULL,           -- the name people see
    server_identity TEXT NOT NULL,  -- what the approval is bound to: the command line, or name:NAME
    tool TEXT NOT NULL,
    arguments TEXT NOT NULL,        -- JSON, keys in the call's order
    args_sha256 TEXT NOT NULL,      -- as in the audit log
    rule TEXT NOT NULL,
    reason TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    state TEXT NOT NULL,            -- pending | approved | denied
    decided_at REAL,
    decided_by TEXT,
    until REAL,                     -- when an approval lapses, or a denial stops refusing retries
    single_use INTEGER NOT NULL,
    forget_at REAL NOT NULL,
    mac TEXT NOT NULL               -- HMAC of every column above, under the installation's secret
) WITHOUT ROWID;
CREATE INDEX requests_by_call ON requests (fingerprint, state);
CREATE INDEX requests_by_state ON requests (state, expires);
CREATE INDEX requests_by_forget ON requests (forget_at);
CREATE TABLE grants (
    id TEXT PRIMARY KEY,            -- the approved request's id, or a new one for remember()
    fingerprint TEXT NOT NULL,
    server TEXT NOT NULL,
    server_identity TEXT NOT NULL,
    tool TEXT NOT NULL,
    args_sha256 TEXT NOT NULL,
    source TEXT NOT NULL,           -- who approved, for the audit log
    approved_at REAL NOT NULL,
    until REAL NOT NULL,
    single_use INTEGER NOT NULL,
    used_at REAL,                   -- the last use
    uses INTEGER NOT NULL,
    forget_at REAL NOT NULL,
    mac TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX grants_by_call ON grants (fingerprint, until);
CREATE INDEX grants_by_forget ON grants (forget_at);
"""

_COLUMNS: dict[str, tuple[str, ...]] = {
    "requests": (
        *("id", "fingerprint", "server", "server_identity", "tool", "arguments", "args_sha256", "rule", "reason"),
        *("created", "expires", "state", "decided_at", "decided_by", "until", "single_use", "forget_at"),
    ),
    "grants": (
        *("id", "fingerprint", "server", "server_identity", "tool", "args_sha256", "source", "approved_at"),
        *("until", "single_use", "used_at", "uses", "forget_at"),
    ),
}
_REAL = frozenset({"created", "expires", "decided_at", "until", "forget_at", "approved_at", "used_at"})
_INTEGER = frozenset({"single_use", "uses"})
_SELECT = {table: f"SELECT {', '.join(columns)}, mac FROM {table} " for table, columns in _COLUMNS.items()}  # noqa: S608
_MAX_WARNED = 1000

Row = dict[str, Any]


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
    from mcp_guard import paths

    return paths.approval_store_path()


def _bound_to(server: str, identity: str | None) -> str:
    """The identity a call is bound to: the one given, else the display name taken as a ``--name``."""
    return identity if identity else server_identity((), server)


def _stored(column: str, value: Any) -> Any:
    """A value as SQLite keeps it in ``column``, so that the seal made now verifies when it is read back."""
    if value is None:
        return None
    if column in _REAL:
        return float(value)
    if column in _INTEGER:
        return int(value)
    return escape_surrogates(str(value))  # SQLite's text is UTF-8, which cannot hold a lone surrogate


def _as_written(column: str, value: Any) -> bool:
    """Whether ``value`` has the type the guard writes in ``column`` (text in a REAL column would
    compare unlike a number in the store's queries)."""
    if value is None:
        return True
    if column in _REAL:
        return type(value) is float
    if column in _INTEGER:
        return type(value) is int
    return type(value) is str


def _default_warn(message: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"mcp-guard: {message}\n")
        sys.stderr.flush()


class ApprovalStore:
    """Approval requests and grants in a SQLite file (WAL mode), safe across threads and processes.

    One connection, guarded by a lock, serves every thread; it is reopened after ``fork`` and
    after any SQLite error. ``clock`` (wall-clock seconds) is for tests. Rows are sealed with a
    key derived from ``key`` if given, else from the installation's secret (``secret_path``, or
    the default one), read when the store is first used. ``warn`` hears of rows that do not
    verify (default: a line on stderr).
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
        key: bytes | None = None,
        secret_path: Path | None = None,
        warn: Callable[[str], None] | None = None,
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
        self._secret = key
        self._secret_path = secret_path
        self._seal_key: bytes | None = None
        self._warn = warn or _default_warn
        self._warned: set[tuple[str, str]] = set()

    # --- the relay's side ---------------------------------------------------------------

    def consume_grant(
        self, server: str, tool: str, arguments: Mapping[str, Any], *, identity: str | None = None
    ) -> Grant | None:
        """Use a valid approval of this identical call, if there is one; ``None`` if not.

        A single-use grant is marked used in the same transaction that found it, so of several
        guards asking at once exactly one gets it. Grants usable many times are preferred.
        """
        fingerprint = call_fingerprint(_bound_to(server, identity), tool, arguments)
        find = (
            _SELECT["grants"] + "WHERE fingerprint = ? AND until > ? AND (single_use = 0 OR used_at IS NULL) "
            "ORDER BY single_use, until"
        )
        with self._connected() as conn:
            # Most calls have no grant: find that out without taking the write lock.
            rows = conn.execute(find, (fingerprint, self._clock())).fetchall()
            if not any(self._verified("grants", raw) is not None for raw in rows):
                return None
        with self._transaction() as conn:
            now = self._clock()
            row = self._first("grants", conn.execute(find, (fingerprint, now)).fetchall())
            if row is None:
                return None  # another guard used it first
            row["used_at"] = now
            row["uses"] += 1
            self._put(conn, "grants", row, replace=True)
            return _grant(row)

    def pending_for(
        self,
        server: str,
        tool: str,
        arguments: Mapping[str, Any],
        rule: str,
        reason: str,
        ttl_s: float | None = None,
        *,
        identity: str | None = None,
    ) -> ApprovalRequest:
        """The pending request for this identical call: the one already waiting, or a new one.

        ``server`` is the name shown to people; ``identity`` what the request is bound to.
        Raises :class:`ApprovalDenied` if a person denied this identical call recently,
        :class:`TooManyPending` if ``max_pending`` requests are waiting already.
        """
        bound = _bound_to(server, identity)
        fingerprint = call_fingerprint(bound, tool, arguments)
        encoded = compact_json(dict(arguments))
        with self._transaction() as conn:
            now = self._clock()
            self._prune(conn, now)
            denied_row = self._first(
                "requests",
                conn.execute(
                    _SELECT["requests"] + "WHERE fingerprint = ? AND state = 'denied' AND until > ? "
                    "ORDER BY decided_at DESC",
                    (fingerprint, now),
                ).fetchall(),
            )
            if denied_row is not None:
                denied = self._request(conn, denied_row, now)
                ago = duration_words(now - (denied.decided_at or now))
                raise ApprovalDenied(
                    f"A person denied this call ({denied.id}, {ago} ago): do not retry it unchanged; "
                    "ask the user how to proceed.",
                    denied,
                )
            waiting = [
                row
                for row in (
                    self._verified("requests", raw)
                    for raw in conn.execute(
                        _SELECT["requests"] + "WHERE state = 'pending' AND expires > ? ORDER BY created", (now,)
                    ).fetchall()
                )
                if row is not None
            ]
            for row in waiting:
                if row["fingerprint"] == fingerprint:
                    return self._request(conn, row, now)
            if len(waiting) >= self.max_pending:
                raise TooManyPending(
                    f"{len(waiting)} approvals are already waiting for a person: none can be asked for until "
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
                server_identity=bound,
            )
            self._put(
                conn,
                "requests",
                {
                    "id": request.id,
                    "fingerprint": fingerprint,
                    "server": server,
                    "server_identity": bound,
                    "tool": tool,
                    "arguments": encoded,
                    "args_sha256": request.args_sha256,
                    "rule": rule,
                    "reason": reason,
                    "created": now,
                    "expires": request.expires,
                    "state": "pending",
                    "decided_at": None,
                    "decided_by": None,
                    "until": None,
                    "single_use": 1,
                    "forget_at": request.expires + HISTORY_S,
                },
            )
            return request

    def remember(
        self,
        server: str,
        tool: str,
        arguments: Mapping[str, Any],
        seconds: float,
        source: str,
        *,
        identity: str | None = None,
    ) -> Grant:
        """Record that a person approved this identical call for ``seconds``: until then it passes unasked.

        For approvals given through another channel (in-band, terminal, command) with a rule's
        ``remember``. The returned grant has a new id; it is not marked used.
        """
        if not seconds > 0:
            raise ValueError(f"remember: seconds must be more than zero, got {seconds!r}")
        bound = _bound_to(server, identity)
        fingerprint = call_fingerprint(bound, tool, arguments)
        with self._transaction() as conn:
            now = self._clock()
            self._prune(conn, now)
            grant = Grant(self._new_id(conn), source, now, now + seconds, single_use=False, uses=0)
            self._put(
                conn,
                "grants",
                {
                    "id": grant.id,
                    "fingerprint": fingerprint,
                    "server": server,
                    "server_identity": bound,
                    "tool": tool,
                    "args_sha256": arguments_sha256(arguments),
                    "source": source,
                    "approved_at": now,
                    "until": grant.until,
                    "single_use": 0,
                    "used_at": None,
                    "uses": 0,
                    "forget_at": grant.until + HISTORY_S,
                },
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
        decided. Raises :class:`UnknownApproval` (also for a row the guard did not write),
        :class:`ApprovalExpired` or :class:`AlreadyDecided`.
        """
        if for_seconds is not None and not for_seconds > 0:
            raise ValueError(f"for_seconds must be more than zero, got {for_seconds!r}")
        request_id = normalize_id(id)
        with self._transaction() as conn:
            now = self._clock()
            row = self._find(conn, request_id)
            request = self._request(conn, row, now)
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
            state: State
            if approve:
                state = "approved"
                single_use = for_seconds is None
                until = now + (self.grant_ttl_s if for_seconds is None else for_seconds)
                self._put(conn, "grants", _grant_row(row, by, now, until, single_use, used_at=None), replace=True)
            else:
                state = "denied"
                single_use = True
                until = max(request.expires, now + MIN_DENIAL_S)
            row.update(
                state=state,
                decided_at=now,
                decided_by=by,
                until=until,
                single_use=int(single_use),
                forget_at=max(request.expires, until) + HISTORY_S,
            )
            self._put(conn, "requests", row, replace=True)
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
                server_identity=request.server_identity,
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
        uses that approval's grant (when still unused); if it expired, is gone, or its row does not
        verify, the person's answer still holds and a grant with a new id is returned.

        Declined: the request is marked denied, as by ``mcp-guard deny``, so retries of the
        identical call are refused for a while; returns ``None``.
        """
        if remember_s is not None and not remember_s > 0:
            raise ValueError(f"remember_s must be more than zero, got {remember_s!r}")
        with self._transaction() as conn:
            now = self._clock()
            row = self._first("requests", conn.execute(_SELECT["requests"] + "WHERE id = ?", (request.id,)).fetchall())
            state = row["state"] if row is not None else None
            pending = row is not None and state == "pending" and row["expires"] > now
            if not approved:
                if row is not None and pending:
                    until = max(row["expires"], now + MIN_DENIAL_S)
                    row.update(state="denied", decided_at=now, decided_by=by, until=until, forget_at=until + HISTORY_S)
                    self._put(conn, "requests", row, replace=True)
                return None
            if state == "denied":
                return None
            if state == "approved":
                # Approved meanwhile with `mcp-guard approve`: the held call uses that grant, if it is unused.
                found = self._first(
                    "grants",
                    conn.execute(
                        _SELECT["grants"] + "WHERE id = ? AND until > ? AND (single_use = 0 OR used_at IS NULL)",
                        (request.id, now),
                    ).fetchall(),
                )
                if found is not None:
                    found["used_at"] = now
                    found["uses"] += 1
                    self._put(conn, "grants", found, replace=True)
                    return _grant(found)
            single_use = remember_s is None
            until = now + (self.grant_ttl_s if remember_s is None else remember_s)
            if row is not None and pending:
                row.update(
                    state="approved",
                    decided_at=now,
                    decided_by=by,
                    until=until,
                    single_use=int(single_use),
                    forget_at=max(row["expires"], until) + HISTORY_S,
                )
                self._put(conn, "requests", row, replace=True)
                source = row
            elif row is not None:
                source = {**row, "id": self._new_id(conn)}  # approved meanwhile through the CLI, or expired
            else:
                # Pruned, or not the guard's row: the call as the channel saw it gets a grant of its own.
                bound = _bound_to(request.server, request.server_identity or None)
                source = {
                    "id": self._new_id(conn),
                    "fingerprint": call_fingerprint(bound, request.tool, request.arguments),
                    "server": request.server,
                    "server_identity": bound,
                    "tool": request.tool,
                    "args_sha256": request.args_sha256,
                }
            grant_row = _grant_row(source, by, now, until, single_use, used_at=now)
            self._put(conn, "grants", grant_row, replace=True)
            return _grant(grant_row)

    def list_pending(self) -> list[ApprovalRequest]:
        """Requests waiting for an answer, oldest first."""
        with self._connected() as conn:
            now = self._clock()
            rows = conn.execute(
                _SELECT["requests"] + "WHERE state = 'pending' AND expires > ? ORDER BY created", (now,)
            ).fetchall()
            verified = [self._verified("requests", raw) for raw in rows]
            return [self._request(conn, row, now) for row in verified if row is not None]

    def status(self, id: str) -> ApprovalRequest:
        """A request as it stands (``state`` says pending, expired, approved, used or denied)."""
        with self._connected() as conn:
            return self._request(conn, self._find(conn, normalize_id(id)), self._clock())

    def expire_old(self) -> int:
        """Delete requests and grants past their history time; returns how many rows went."""
        with self._transaction() as conn:
            return self._prune(conn, self._clock())

    def close(self) -> None:
        with self._lock:
            self._close()

    # --- sealed rows --------------------------------------------------------------------

    def _seal(self, table: str, row: Mapping[str, Any]) -> str:
        assert self._seal_key is not None  # noqa: S101 (set when the connection is made)
        body = canonical_json([table, [row[column] for column in _COLUMNS[table]]])
        return hmac.new(self._seal_key, body, sha256).hexdigest()

    def _put(self, conn: sqlite3.Connection, table: str, row: Mapping[str, Any], *, replace: bool = False) -> None:
        """Write ``row`` (every column of ``table``) with its seal; ``replace`` overwrites a row with its id."""
        stored = {column: _stored(column, row[column]) for column in _COLUMNS[table]}
        columns = (*_COLUMNS[table], "mac")
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        conn.execute(
            f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
            (*stored.values(), self._seal(table, stored)),
        )

    def _verified(self, table: str, raw: tuple[Any, ...]) -> Row | None:
        """The row as a dict if the guard wrote it (types as written, seal verifies); else None, with a warning."""
        columns = _COLUMNS[table]
        row = dict(zip(columns, raw[: len(columns)], strict=True))
        mac = raw[len(columns)]
        try:
            genuine = (
                isinstance(mac, str)
                and all(_as_written(column, value) for column, value in row.items())
                and hmac.compare_digest(mac, self._seal(table, row))
            )
        except (TypeError, ValueError):
            genuine = False
        if genuine:
            return row
        self._report(table, row.get("id"))
        return None

    def _first(self, table: str, rows: list[tuple[Any, ...]]) -> Row | None:
        for raw in rows:
            row = self._verified(table, raw)
            if row is not None:
                return row
        return None

    def _report(self, table: str, row_id: Any) -> None:
        shown = printable(str(row_id))
        if (table, shown) in self._warned or len(self._warned) >= _MAX_WARNED:
            return
        self._warned.add((table, shown))
        kind = "grant" if table == "grants" else "request"
        with contextlib.suppress(Exception):
            self._warn(
                f"approval store {self.path}: {kind} {shown} was not written by mcp-guard (its seal does not "
                "verify with this installation's secret); it is ignored"
            )

    # --- internals ----------------------------------------------------------------------

    def _find(self, conn: sqlite3.Connection, request_id: str) -> Row:
        rows = conn.execute(_SELECT["requests"] + "WHERE id = ?", (request_id,)).fetchall()
        if not rows:
            raise UnknownApproval(
                f"no pending approval {printable(request_id)} (it may have expired: requests expire after "
                f"{duration_words(self.request_ttl_s)})"
            )
        row = self._verified("requests", rows[0])
        if row is None:
            raise UnknownApproval(
                f"approval {printable(request_id)} was not written by mcp-guard (its seal does not verify with "
                "this installation's secret); it is ignored"
            )
        return row

    def _request(self, conn: sqlite3.Connection, row: Row, now: float) -> ApprovalRequest:
        state = row["state"]
        if state == "pending" and row["expires"] <= now:
            state = "expired"
        elif state == "approved" and row["single_use"]:
            grant = self._first("grants", conn.execute(_SELECT["grants"] + "WHERE id = ?", (row["id"],)).fetchall())
            if grant is not None and grant["used_at"] is not None:
                state = "used"
        return ApprovalRequest(
            row["id"],
            row["server"],
            row["tool"],
            json.loads(row["arguments"]),
            row["args_sha256"],
            row["rule"],
            row["reason"],
            row["created"],
            row["expires"],
            state=state,
            decided_at=row["decided_at"],
            decided_by=row["decided_by"],
            until=row["until"],
            single_use=bool(row["single_use"]),
            server_identity=row["server_identity"],
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
            except (sqlite3.Error, OSError, SecretError) as exc:
                self._close()
                raise self._unavailable(exc) from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back if the body raises (an ApprovalError too)."""
        with self._lock:
            try:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
            except (sqlite3.Error, OSError, SecretError) as exc:
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
        if self._seal_key is None:
            secret = self._secret if self._secret is not None else load_or_create_secret(self._secret_path)
            self._seal_key = subkey(secret, "approval store")
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
            self._wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            if _schema_version(conn) != _SCHEMA_VERSION:
                conn.execute("BEGIN IMMEDIATE")
                version = _schema_version(conn)  # again, under the lock: another guard may have done it
                if version > _SCHEMA_VERSION:
                    conn.execute("ROLLBACK")
                    raise sqlite3.DatabaseError(
                        f"written by a newer mcp-guard (schema {version}, this one knows {_SCHEMA_VERSION})"
                    )
                if version < _SCHEMA_VERSION:
                    # Older rows carry no seal, so none could be honoured: start empty.
                    conn.execute("DROP TABLE IF EXISTS requests")
                    conn.execute("DROP TABLE IF EXISTS grants")
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
                conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        return conn

    def _wal(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL. Several processes opening a new store at once can get "database is locked" here
        at once, without SQLite's busy handler waiting: retry for as long as the busy timeout allows."""
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None


def _schema_version(conn: sqlite3.Connection) -> int:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    return int(version)


def _grant(row: Row) -> Grant:
    return Grant(row["id"], row["source"], row["approved_at"], row["until"], bool(row["single_use"]), row["uses"])


def _grant_row(
    source: Mapping[str, Any], by: str, now: float, until: float, single_use: bool, *, used_at: float | None
) -> Row:
    """The grant for the call of ``source`` (a request row, or its parts), approved by ``by`` at ``now``."""
    return {
        "id": source["id"],
        "fingerprint": source["fingerprint"],
        "server": source["server"],
        "server_identity": source["server_identity"],
        "tool": source["tool"],
        "args_sha256": source["args_sha256"],
        "source": by,
        "approved_at": now,
        "until": until,
        "single_use": int(single_use),
        "used_at": used_at,
        "uses": 0 if used_at is None else 1,
        "forget_at": until + HISTORY_S,
    }
