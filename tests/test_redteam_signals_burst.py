"""Red team: a burst of signals at the guard (nested handlers) must never hang it or orphan the server."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
from test_signals import GuardedFactory, alive_at, assert_quiet, guarded, spawned  # noqa: F401

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and process groups")


@pytest.mark.parametrize("round_", range(12))
def test_signal_burst_never_hangs_the_guard(guarded: GuardedFactory, round_: int) -> None:  # noqa: F811
    run = guarded(ignore_term=True)
    pid = run.session.proc.pid
    began = time.monotonic()
    for n in range(400):
        try:
            os.kill(pid, (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)[n % 3])
        except ProcessLookupError:
            break
    assert alive_at(run.pids, began + 2.0) == []
    assert run.session.wait(5) == 0
    assert_quiet(run.session.stderr_so_far())


@pytest.mark.parametrize("round_", range(16))
def test_a_stream_of_signals_is_handled_without_a_traceback(guarded: GuardedFactory, round_: int) -> None:  # noqa: F811
    """SIGTERM every 20 µs for 1.5 s: each handler ran inside the one before (a Python handler runs at the next
    bytecode boundary, inside another handler too), down to a RecursionError: a traceback, exit 1."""
    run = guarded(ignore_term=True)
    pid = run.session.proc.pid
    began = time.monotonic()
    while time.monotonic() - began < 1.5 and run.session.proc.poll() is None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            break
        time.sleep(20e-6)
    assert alive_at(run.pids, began + 2.0) == []
    assert run.session.wait(5) == 0
    assert_quiet(run.session.stderr_so_far())
    assert "RecursionError" not in run.session.stderr_so_far()
