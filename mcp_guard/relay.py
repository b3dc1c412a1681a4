"""The relay: two blocking pump threads, started, waited for and ended by the guard's main thread.

Each direction is a thread doing buffered ``readline`` and ``os.write``: per frame
that costs a fraction of what an event loop's stream machinery does (measured in
``benchmarks/``), and blocking writes give backpressure for free (a client that
stops reading stops the guard reading the upstream). The main thread only waits for
the first ending (client EOF, upstream exit, a signal) and runs the shutdown. No event
loop: importing and starting one (asyncio, anyio) was a sixth of the guard's start-up,
for a loop that had nothing to do but wait.

Signals are watched from start to exit, shutdown included: the server runs in a
process group of its own, out of the client's reach, so the guard must never be
the one that dies first. The first SIGINT/SIGTERM starts the shutdown; any signal
after that kills the server's group at once, and the guard still ends normally.
"""

from __future__ import annotations

import io
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from mcp_guard.actions import Action, Start, ToClient, ToUpstream
from mcp_guard.session import Session
from mcp_guard.upstream import Upstream, describe_exit, exit_status
from mcp_guard.workers import Workers

if TYPE_CHECKING:
    from types import FrameType

    from mcp_guard.observe import Tap

T = TypeVar("T")

_READ_BUFFER = 1 << 16
# Longest piece a pump takes from readline at once; a longer line is put together by _rest_of_line: joined
# from pieces up to _JOINED_UP_TO, past it in one growing buffer read _LONG_PIECE at a time.
_PIECE = 1 << 16
_JOINED_UP_TO = 1 << 22
_LONG_PIECE = 1 << 20
# How long to keep relaying what the server writes on its way out, once its group is gone or going.
_DRAIN_S = 1.0
# After the server ended by itself: its last frames, then its exit status.
_EXITED_DRAIN_S = 2.0
_EXIT_WAIT_S = 2.0
_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
# How the main thread waits: in slices, everywhere. A signal's Python handler runs only on the main thread,
# and only once that thread runs bytecode again; the kernel may hand a process-directed signal to any
# thread (a pump's, when the main one already has one pending), and then nothing interrupts the main
# thread's blocked wait: a burst of SIGINT/SIGTERM left the guard waiting for ever, the server running.
# On Windows a blocked wait never sees Ctrl-C either (no handlers there: KeyboardInterrupt ends the guard).
_SLICE_S = 0.1

# A task that runs beside the relay (the policy watcher) on a thread of its own, until the event is set.
Background = Callable[[threading.Event], None]


def write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    if written == len(data):  # nearly always: a pipe takes a whole frame up to its free space
        return
    view = memoryview(data)[written:]
    while view:
        written = os.write(fd, view)
        view = view[written:]


class FrameWriter:
    """Writes whole frames to one fd; frames from different threads never interleave."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._lock = threading.Lock()
        self.broken = False

    def __call__(self, frame: bytes) -> None:
        with self._lock:
            if self.broken:
                return
            try:
                write_all(self.fd, frame)
            except OSError:
                # The reader is gone (EPIPE) or closed; the pumps notice through their own EOFs.
                self.broken = True


def stderr_line(message: str) -> None:
    try:
        write_all(2, f"mcp-guard: {message}\n".encode(errors="replace"))
    except OSError:
        pass


class Carrier:
    """Carries out the session's actions: writes to a side, or starts a job on the bounded pool."""

    def __init__(
        self,
        to_client: Callable[[bytes], None],
        to_upstream: Callable[[bytes], None],
        workers: Workers,
        tap: Tap | None = None,
    ) -> None:
        self._to_client = to_client
        self._to_upstream = to_upstream
        self.workers = workers
        self._tap = tap
        # What a worker job emits through: the carrier itself, or (watched) a tap first.
        self._emit: Callable[[Sequence[Action]], None] = self if tap is None else self._tapped

    def _tapped(self, actions: Sequence[Action]) -> None:
        assert self._tap is not None  # noqa: S101
        self._tap.emitted(actions)
        self(actions)

    def __call__(self, actions: Sequence[Action]) -> None:
        for action in actions:
            if type(action) is ToUpstream:
                self._to_upstream(action.frame)
            elif type(action) is ToClient:
                self._to_client(action.frame)
            elif isinstance(action, Start):
                job = action.job
                if not self.workers.submit(job.name, partial(job.run, self._emit)):
                    self._emit(job.overflow())


@dataclass
class _Endings:
    """Which ending came first. Set from the pump threads and from signal handlers; each ending wakes the
    main thread."""

    client_eof: bool = False
    upstream_eof: bool = False
    upstream_exit: bool = False
    signal_name: str | None = None
    ended: bool = False  # any of the above
    upstream_drained: threading.Event = field(default_factory=threading.Event)
    # Reentrant (a C queue): a signal handler may put on it while it interrupts the main thread anywhere, even
    # inside a get; a threading.Event's set could deadlock on a lock that thread held.
    wake: queue.SimpleQueue[None] = field(default_factory=queue.SimpleQueue)

    def end(self) -> None:
        self.ended = True
        self.wake.put(None)

    def wait_first(self) -> None:
        while True:
            try:
                self.wake.get(timeout=_SLICE_S)
                return
            except queue.Empty:
                continue


def _rest_of_line(head: bytes, readline: Callable[[int], bytes]) -> bytes:
    """The line that starts with ``head``: exactly what ``readline()`` would have returned.

    Up to a few megabytes it is put together as ``readline()`` does (pieces, then their join: the line twice
    for a moment, and the fastest way for a line of that size). A longer one goes on in one buffer that grows
    in place and becomes the line itself (``BytesIO.getvalue`` hands its buffer over without a copy): a
    20 MB line is held once while it is read, not twice.
    """
    pieces = [head]
    size = len(head)
    while size < _JOINED_UP_TO:
        piece = readline(_PIECE)
        pieces.append(piece)
        size += len(piece)
        if len(piece) < _PIECE or piece[-1] == 10:  # the line's end (b"\n"), or end of input
            return b"".join(pieces)
    buffer = io.BytesIO()
    buffer.write(b"".join(pieces))
    del pieces
    while True:
        piece = readline(_LONG_PIECE)
        buffer.write(piece)
        if len(piece) < _LONG_PIECE or piece[-1] == 10:
            return buffer.getvalue()


def _pump(fd: int, handle: Callable[[bytes], None], done: Callable[[], None], name: str) -> threading.Thread:
    def run() -> None:
        try:
            reader = open(fd, "rb", buffering=_READ_BUFFER, closefd=False)  # noqa: SIM115
            readline = reader.readline
            while True:
                line = readline(_PIECE)
                if len(line) == _PIECE and line[-1] != 10:  # not b"\n": a long line, not all read yet
                    line = _rest_of_line(line, readline)
                    if len(line) > _JOINED_UP_TO:
                        # Freed once handled, not once the next line has come (two would be held at once).
                        # A shorter one is kept: freeing it first made glibc trim its heap, and each next
                        # line paid page faults for it (1 MB answers: 3 ms of CPU instead of 1.8).
                        handle(line)
                        del line
                        continue
                if not line:
                    break
                handle(line)
        except OSError:
            pass
        except Exception as exc:  # a bug must end the session loudly, never hang it
            stderr_line(f"internal error in the {name} pump: {exc!r}")
        finally:
            done()

    # Daemon: a thread blocked reading the client's stdin must not keep the process alive at exit.
    thread = threading.Thread(target=run, name=f"mcp-guard {name}", daemon=True)
    thread.start()
    return thread


def relay(
    upstream: Upstream,
    session: Session,
    client_stdin: int = 0,
    background: Sequence[Background] = (),
    tap: Tap | None = None,
) -> int:
    """Relay until the session ends; return the guard's exit status. Run on the main thread (signals).

    ``background`` tasks (the policy watcher) run on threads of their own and are stopped at the
    first ending. ``tap`` (the recorder, telemetry) sees every line and action; None costs nothing.
    """
    endings = _Endings()

    def notify(setter: Callable[[], None]) -> Callable[[], None]:
        def done() -> None:
            setter()
            endings.end()

        return done

    def client_done() -> None:
        endings.client_eof = True

    def upstream_done() -> None:
        endings.upstream_eof = True
        endings.upstream_drained.set()

    def waiter() -> None:
        upstream.process.wait()
        notify(lambda: setattr(endings, "upstream_exit", True))()

    carry = Carrier(FrameWriter(1), FrameWriter(upstream.stdin_fd), Workers(on_error=stderr_line), tap)
    session.outbox = carry  # a reload's notification to the client goes out like any other frame
    on_client, on_upstream = _handlers(session, carry, tap)

    # Before the first frame moves: a client that has had an answer may signal the guard. Watched until the
    # end, the shutdown included.
    signals = _Signals(endings, upstream) if sys.platform != "win32" else None
    try:
        _pump(client_stdin, on_client, notify(client_done), "client")
        _pump(upstream.stdout_fd, on_upstream, notify(upstream_done), "upstream")
        threading.Thread(target=waiter, name="mcp-guard waiter", daemon=True).start()
        stop = threading.Event()
        for task in background:
            _start_background(task, stop)
        endings.wait_first()
        stop.set()
        status = _shut_down(
            upstream,
            endings,
            lambda why: carry(session.stopping(why)),
            lambda description: carry(session.upstream_exited(description)),
        )
        # Signals still watched: one that arrives while a worker finishes is caught, not a traceback.
        carry.workers.close(1.0)
    finally:
        if signals is not None:
            signals.close()
    return status


def _start_background(task: Background, stop: threading.Event) -> None:
    def run() -> None:
        try:
            task(stop)
        except Exception as exc:  # a bug must be said, and must not take the relay down with it
            stderr_line(f"internal error in a background task: {exc!r}")

    threading.Thread(target=run, name="mcp-guard background", daemon=True).start()


def _handlers(
    session: Session, carry: Carrier, tap: Tap | None
) -> tuple[Callable[[bytes], None], Callable[[bytes], None]]:
    """What each pump does with a line: the session decides, the carrier acts (and a tap, if any, sees it)."""
    from_client, from_upstream = session.from_client, session.from_upstream
    if tap is None:
        return (lambda line: carry(from_client(line))), (lambda line: carry(from_upstream(line)))
    client_line, client_actions, upstream_line = tap.client_line, tap.client_actions, tap.upstream_line

    def on_client(line: bytes) -> None:
        client_line(line)
        actions = from_client(line)
        client_actions(line, actions)
        carry(actions)

    def on_upstream(line: bytes) -> None:
        actions = from_upstream(line)
        upstream_line(line, actions)
        carry(actions)

    return on_client, on_upstream


class _Signals:
    """SIGINT, SIGTERM and SIGHUP while the relay runs: the first is an ending; one after any ending (a
    shutdown under way, whatever started it) means now: the server's group is killed at once.

    The handlers run on the main thread, between any two of its steps: they only set flags, put on the
    reentrant wake queue and signal the server's group (:meth:`Upstream.kill_now`, whose own waits run
    on other threads), so they never wait for a lock the main thread could be holding.
    """

    def __init__(self, endings: _Endings, upstream: Upstream) -> None:
        self._endings = endings
        self._upstream = upstream
        self._numbers = [getattr(signal, name) for name in _SIGNALS if hasattr(signal, name)]
        # Set while a handler runs: a Python handler runs at the next bytecode boundary, inside another one
        # too, so a stream of signals nested them down to a RecursionError (a traceback, exit 1), and one
        # nested inside kill_now's Event.set would wait for ever on the lock the outer one holds.
        self._handling = False
        self._again = False
        self._before = {signum: signal.signal(signum, self._handle) for signum in self._numbers}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._handling:
            self._again = True  # the handler under way goes round once more: a second signal still kills
            return
        self._handling = True
        try:
            while True:
                self._again = False
                if not self._endings.ended:
                    self._endings.signal_name = signal.Signals(signum).name
                    self._endings.end()
                elif not self._upstream.hurried:  # killed once: the group is gone or going, SIGKILL cannot be missed
                    self._upstream.kill_now()
                if not self._again:
                    break
        finally:
            self._handling = False

    def close(self) -> None:
        if self._endings.signal_name is not None or self._upstream.hurried:
            # Someone is signalling a guard whose server is already gone: one more signal between here
            # and the exit could only kill the guard mid-write or print a KeyboardInterrupt traceback.
            for signum in self._numbers:
                signal.signal(signum, signal.SIG_IGN)
            return
        for signum, before in self._before.items():
            signal.signal(signum, before if before is not None else signal.SIG_DFL)


def _off_thread(work: Callable[[], T]) -> T:
    """``work`` on a thread of its own, waited for here: a signal during a blocking step of the shutdown
    is handled at once (it hurries that step), and the step's own waits never run under a handler."""
    done: list[T] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            done.append(work())
        except BaseException as exc:  # re-raised on the main thread
            failed.append(exc)

    thread = threading.Thread(target=run, name="mcp-guard shutdown", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(_SLICE_S)
    if failed:
        raise failed[0]
    return done[0]


def _shut_down(
    upstream: Upstream, endings: _Endings, stopping: Callable[[str], object], exited: Callable[[str], object]
) -> int:
    """End the upstream after the first ending; the guard's exit status.

    ``stopping(why)`` answers every request still waiting, saying the guard is stopping;
    ``exited(description)`` says the server ended before answering.
    """
    if endings.client_eof or endings.signal_name is not None:
        why = f"it received {endings.signal_name}" if endings.signal_name else "the client closed its input"
        if endings.signal_name is not None:
            # Whoever signalled wants the guard gone: no caller waits through the shutdown for nothing.
            stopping(why)
        # The MCP shutdown order, keeping on relaying what the server says meanwhile.
        _off_thread(upstream.shutdown)
        endings.upstream_drained.wait(_DRAIN_S)
        # What the server left unanswered, and what the client sent during the shutdown.
        stopping(why)
        # A signal is an ordinary way to stop the guard (as a client closing stdin is): exit 0.
        return 0

    # The upstream ended first. Let its last frames through, then answer what it never did.
    endings.upstream_drained.wait(_EXITED_DRAIN_S)
    code = _off_thread(partial(upstream.wait, _EXIT_WAIT_S))
    exited(describe_exit(code))
    _off_thread(partial(upstream.shutdown, 0.0))
    if code is None:
        code = upstream.poll()
    stderr_line(f"the MCP server {describe_exit(code)}")
    return exit_status(code)
