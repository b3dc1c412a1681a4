"""Backpressure: a client that stops reading must stall the guard, not fill its memory.

The guard relays with blocking writes, so a client that does not read makes the guard stop
reading the server, and the server's own writes block. Nothing in between may pile up: the
guard holds at most the frame it is writing. Here the client pipelines 100 calls to ``big``
(1 MB each), reads nothing while the guard's memory is sampled, then reads everything and
checks it against a byte-for-byte copy of what the server wrote (``tee`` between the server
and the guard).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import EVERYTHING_SERVER, INITIALIZED, PYTHON, encode_frame, initialize, isolated_env, tool_call

CALLS = 100
SIZE = 1_000_000
RSS_LIMIT_KB = 150 * 1024
PATTERN = "0123456789abcdefghijklmnopqrstuvwxyz\n"  # what everything_server's `big` repeats


def status_kb(pid: int, field: str) -> int:
    """A ``VmRSS``-style field of /proc/<pid>/status, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def wait_until_stalled(path: Path, quiet_s: float = 1.0, timeout: float = 30.0) -> int:
    """Wait until ``path`` has stopped growing for ``quiet_s``; its size then."""
    deadline = time.monotonic() + timeout
    size, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = path.stat().st_size if path.exists() else 0
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return size
        time.sleep(0.05)
    raise AssertionError(f"{path} kept growing for {timeout} s: the client's silence did not stall anything")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the guard's memory from /proc")
@pytest.mark.timeout(120)
def test_silent_client_stalls_the_guard_without_buffering(guard_cmd: list[str], tmp_path: Path) -> None:
    tee = tmp_path / "server-stdout.jsonl"
    # The server's stdout goes through tee, which keeps an exact copy of what the guard was given.
    server = ["sh", "-c", f"'{PYTHON}' '{EVERYTHING_SERVER}' | tee '{tee}'"]
    proc = subprocess.Popen(
        [*guard_cmd, "--", *server],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=isolated_env(tmp_path),
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        proc.stdin.write(encode_frame(initialize(0)))
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["id"] == 0
        proc.stdin.write(encode_frame(INITIALIZED))
        proc.stdin.write(b"".join(encode_frame(tool_call(i, "big", {"size": SIZE})) for i in range(1, CALLS + 1)))
        proc.stdin.flush()

        # The client reads nothing: the pipeline fills up and stops.
        stalled_at = wait_until_stalled(tee)
        assert stalled_at < CALLS * SIZE // 4, f"{stalled_at} bytes got past a client that reads nothing"
        samples = []
        for _ in range(20):
            samples.append(status_kb(proc.pid, "VmRSS"))
            time.sleep(0.05)
        assert max(samples) < RSS_LIMIT_KB, f"guard RSS {max(samples)} kB while the client was not reading"
        assert tee.stat().st_size == stalled_at  # still stalled: nothing moved while sampling

        # The client reads again: every answer arrives, whole, in the server's order.
        received: list[bytes] = []
        stdout = proc.stdout
        reader = threading.Thread(target=lambda: received.extend(iter(stdout.readline, b"")), daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while len(received) < CALLS and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(received) == CALLS, f"{len(received)} of {CALLS} answers within 60 s"
        peak = status_kb(proc.pid, "VmHWM")
        assert peak < RSS_LIMIT_KB, f"guard peak RSS {peak} kB while relaying {CALLS} x {SIZE} bytes"

        proc.stdin.close()
        reader.join(15)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)

    server_lines = tee.read_bytes().splitlines(keepends=True)
    assert b"".join(received) == b"".join(server_lines[1:])  # all but the initialize answer, byte for byte
    text = (PATTERN * (SIZE // len(PATTERN) + 1))[:SIZE]
    answered = []
    for line in received:
        answer = json.loads(line)
        assert answer["result"]["content"] == [{"type": "text", "text": text}]
        answered.append(answer["id"])
    assert sorted(answered) == list(range(1, CALLS + 1))
    assert b"internal error" not in proc.stderr.read()
