"""Relay floor (b): one blocking thread per direction, buffered ``readline`` + ``os.write``.

``python thread_relay.py -- COMMAND ARGS...`` spawns COMMAND and relays lines both
ways without looking at them. This is the guard's relay design with no policy and
no frame classification: the cost floor for a Python relay of this shape.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

_READ_BUFFER = 1 << 16


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _pump(src: int, dst: int, close_dst: bool) -> None:
    try:
        with open(src, "rb", buffering=_READ_BUFFER, closefd=False) as reader:
            readline = reader.readline
            while True:
                line = readline()
                if not line:
                    break
                _write_all(dst, line)
    except OSError:
        pass
    finally:
        if close_dst:
            try:
                os.close(dst)
            except OSError:
                pass


def main(argv: list[str]) -> int:
    command = argv[argv.index("--") + 1 :] if "--" in argv else argv[1:]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    assert proc.stdin is not None and proc.stdout is not None
    to_child = os.dup(proc.stdin.fileno())
    proc.stdin.close()
    client = threading.Thread(target=_pump, args=(0, to_child, True), daemon=True)
    upstream = threading.Thread(target=_pump, args=(proc.stdout.fileno(), 1, False), daemon=True)
    client.start()
    upstream.start()
    upstream.join()  # the child closed its stdout (it saw our EOF on its stdin, or it exited)
    code = proc.wait()
    os._exit(code)


if __name__ == "__main__":
    main(sys.argv)
