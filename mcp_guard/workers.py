"""A bounded pool of worker threads for calls that must wait (approvals, a listing before a call).

Threads, not tasks: a held call blocks on a person or on the server, and the pumps that start
jobs are threads themselves. The pool is owned by the relay, never grows past ``size``, and is
ended with it: :meth:`close` stops taking jobs and waits (bounded) for the running ones, whose
waits the session has already cancelled by then.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

DEFAULT_SIZE = 32


class Workers:
    def __init__(self, size: int = DEFAULT_SIZE, on_error: Callable[[str], None] = lambda _: None) -> None:
        self.size = size
        self._on_error = on_error
        self._lock = threading.Lock()
        self._running: set[threading.Thread] = set()
        self._closed = False

    def submit(self, name: str, work: Callable[[], None]) -> bool:
        """Run ``work`` on a thread of the pool; False (and nothing started) when the pool is full or closed."""
        with self._lock:
            if self._closed or len(self._running) >= self.size:
                return False
            thread = threading.Thread(target=self._run, args=(work,), name=f"mcp-guard {name}", daemon=True)
            self._running.add(thread)
        thread.start()
        return True

    def _run(self, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as exc:  # a job's bug must not vanish silently
            self._on_error(f"internal error in a worker: {exc!r}")
        finally:
            with self._lock:
                self._running.discard(threading.current_thread())

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._running)

    def close(self, timeout_s: float = 2.0) -> int:
        """Take no more jobs; wait up to ``timeout_s`` for the running ones. Returns how many still run."""
        with self._lock:
            self._closed = True
            running = list(self._running)
        deadline = time.monotonic() + timeout_s
        for thread in running:
            thread.join(max(0.0, deadline - time.monotonic()))
        return self.busy
