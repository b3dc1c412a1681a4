"""An upstream that does not stop by itself, for the guard's shutdown tests (standard library only).

``python stubborn.py PIDFILE [--grandchild PIDFILE] [--ignore-term] [--events FILE]`` writes its pid to
PIDFILE and
serves newline-delimited JSON-RPC on stdio: ``initialize`` and ``ping`` are answered, a ``tools/call``
never is (a call stays in flight), other requests get "method not found". At stdin EOF it keeps
running, as servers busy with a call or with a stuck event loop do. ``--grandchild`` starts a
``sleep`` that shares its process group and its stdout (as helpers that ``npx`` starts do) and writes
that pid too; ``--ignore-term`` ignores SIGTERM in both, so only SIGKILL ends them. ``--events`` appends
``eof`` when stdin ends and ``sigterm`` when SIGTERM arrives (then exits 143), one a line, so a test can
check the order in which the guard ended it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _write_pid(path: str, pid: int) -> None:
    # The newline last: a reader that sees it knows the whole number is there.
    Path(path).write_text(f"{pid}\n", encoding="ascii")


def _answer(ident: Any, body: dict[str, Any]) -> None:
    sys.stdout.buffer.write(json.dumps({"jsonrpc": "2.0", "id": ident, **body}).encode() + b"\n")
    sys.stdout.buffer.flush()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("pidfile")
    parser.add_argument("--grandchild")
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--events")
    args = parser.parse_args()

    def event(word: str) -> None:
        if args.events:
            with open(args.events, "a", encoding="ascii") as events:
                events.write(word + "\n")

    def on_term(signum: int, frame: object) -> None:
        event("sigterm")
        os._exit(143)

    if args.ignore_term:
        # Set before spawning: an ignored signal stays ignored across exec, so the grandchild ignores it too.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, on_term)  # exec resets a handler: the helper keeps the default action
    if args.grandchild:
        helper = subprocess.Popen(["sleep", "300"], stdin=subprocess.DEVNULL)
        _write_pid(args.grandchild, helper.pid)
    _write_pid(args.pidfile, os.getpid())
    for line in sys.stdin.buffer:
        message = json.loads(line)
        if "id" not in message or "method" not in message:
            continue
        method = message["method"]
        if method == "initialize":
            result = {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "stubborn", "version": "1"},
            }
            _answer(message["id"], {"result": result})
        elif method == "ping":
            _answer(message["id"], {"result": {}})
        elif method != "tools/call":
            _answer(message["id"], {"error": {"code": -32601, "message": f"method not found: {method}"}})
    event("eof")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    raise SystemExit(main())
