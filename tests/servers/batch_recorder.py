"""A recording stdio upstream that answers every request it can read, batches included (standard library only).

``python batch_recorder.py RECORD_FILE`` behaves like ``recorder.py`` (every line it receives is
appended to RECORD_FILE, flushed per line; every request, a frame with both ``method`` and ``id``,
is answered with the fixed result ``{"content":[],"isError":false}``), with two differences the
hostile-input tests need, where every request the guard forwards must get its answer:

* it reads as leniently as an upstream might: a UTF-8 byte-order mark is skipped, invalid UTF-8 is
  replaced, raw control characters in strings are accepted, and duplicate keys, NaN and numbers
  beyond 2^53 are whatever Python's ``json`` makes of them (last key wins);
* a JSON-RPC batch (a JSON array) gets one array holding an answer for each request in it, in
  order, as JSON-RPC requires; a batch without requests gets no answer.

Lines it cannot read at all (invalid JSON, nesting beyond Python's recursion limit) are only recorded.
"""

from __future__ import annotations

import json
import sys
from typing import Any

BOM = b"\xef\xbb\xbf"


def read(line: bytes) -> Any:
    body = line[len(BOM) :] if line.startswith(BOM) else line
    try:
        return json.loads(body.decode("utf-8", "replace"), strict=False)
    except (ValueError, RecursionError):
        return None


def answer(message: Any) -> dict[str, Any] | None:
    if isinstance(message, dict) and "method" in message and "id" in message:
        return {"jsonrpc": "2.0", "id": message["id"], "result": {"content": [], "isError": False}}
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: batch_recorder.py RECORD_FILE\n")
        return 2
    with open(argv[1], "ab", buffering=0) as record:
        for line in sys.stdin.buffer:
            record.write(line)
            message = read(line)
            reply: Any
            if isinstance(message, list):
                answers = [a for a in map(answer, message) if a is not None]
                reply = answers or None
            else:
                reply = answer(message)
            if reply is not None:
                sys.stdout.buffer.write(json.dumps(reply, separators=(",", ":")).encode() + b"\n")
                sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
