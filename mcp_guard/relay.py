"""The relay: two blocking pump threads, owned and ended by one anyio task group.

Each direction is a thread doing buffered ``readline`` and ``os.write``: per frame
that costs a fraction of what an event loop's stream machinery does (measured in
``benchmarks/``), and blocking writes give backpressure for free (a client that
stops reading stops the guard reading the upstream). The event loop only waits for
the first ending (client EOF, upstream exit, a signal) and runs the shutdown.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel

from mcp_guard.session import Session
from mcp_guard.upstream import Upstream, describe_exit, exit_status

_READ_BUFFER = 1 << 16


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
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


@dataclass
class _Endings:
    """Which ending came first. Set from pump threads through the event loop."""

    event: anyio.Event = field(default_factory=anyio.Event)
    client_eof: bool = False
    upstream_eof: bool = False
    upstream_exit: bool = False
    signal_name: str | None = None
    upstream_drained: threading.Event = field(default_factory=threading.Event)


def _pump(fd: int, handle: Callable[[bytes], None], done: Callable[[], None], name: str) -> threading.Thread:
    def run() -> None:
        try:
            reader = open(fd, "rb", buffering=_READ_BUFFER, closefd=False)  # noqa: SIM115
            readline = reader.readline
            while True:
                line = readline()
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


async def relay(
    upstream: Upstream,
    session: Session,
    client_stdin: int = 0,
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
) -> int:
    """Relay until the session ends; return the guard's exit status.

    ``background`` tasks (the policy watcher) run in the same task group and are
    cancelled with it.
    """
    token = anyio.lowlevel.current_token()
    endings = _Endings()

    def notify(setter: Callable[[], None]) -> Callable[[], None]:
        def done() -> None:
            setter()
            with contextlib.suppress(Exception):  # the loop already finished; nothing is waiting
                anyio.from_thread.run_sync(endings.event.set, token=token)

        return done

    def client_done() -> None:
        endings.client_eof = True

    def upstream_done() -> None:
        endings.upstream_eof = True
        endings.upstream_drained.set()

    def waiter() -> None:
        upstream.process.wait()
        notify(lambda: setattr(endings, "upstream_exit", True))()

    _pump(client_stdin, session.from_client, notify(client_done), "client")
    _pump(upstream.stdout_fd, session.from_upstream, notify(upstream_done), "upstream")
    threading.Thread(target=waiter, name="mcp-guard waiter", daemon=True).start()

    async with anyio.create_task_group() as tg:

        async def watch_signals() -> None:
            signals = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
            with anyio.open_signal_receiver(*signals) as received:
                async for signum in received:
                    endings.signal_name = signal.Signals(signum).name
                    endings.event.set()
                    return

        if sys.platform != "win32":
            tg.start_soon(watch_signals)
        for task in background:
            tg.start_soon(task)
        await endings.event.wait()
        tg.cancel_scope.cancel()

    if endings.client_eof or endings.signal_name is not None:
        # The client is done: the MCP shutdown order, then keep relaying what the server says meanwhile.
        await anyio.to_thread.run_sync(upstream.shutdown, abandon_on_cancel=True)
        await anyio.to_thread.run_sync(endings.upstream_drained.wait, 1.0, abandon_on_cancel=True)
        # A signal is an ordinary way to stop the guard (as a client closing stdin is): exit 0.
        return 0

    # The upstream ended first. Let its last frames through, then answer what it never did.
    await anyio.to_thread.run_sync(endings.upstream_drained.wait, 2.0, abandon_on_cancel=True)
    code = await anyio.to_thread.run_sync(upstream.wait, 2.0, abandon_on_cancel=True)
    session.upstream_exited(describe_exit(code))
    await anyio.to_thread.run_sync(upstream.shutdown, 0.0, 2.0, abandon_on_cancel=True)
    if code is None:
        code = upstream.poll()
    stderr_line(f"the MCP server {describe_exit(code)}")
    return exit_status(code)
