"""A recording stdio upstream for the guard's tests (standard library only).

``python recorder.py RECORD_FILE`` appends every line it receives on stdin to RECORD_FILE
(flushed per line, so a test can read it while this runs) and answers every request (a
frame with both ``method`` and ``id``, whatever the id's type) with the fixed result
``{"content":[],"isError":false}``. Notifications and anything unparsable are only recorded.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: recorder.py RECORD_FILE\n")
        return 2
    with open(argv[1], "ab", buffering=0) as record:
        for line in sys.stdin.buffer:
            record.write(line)
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and "method" in message and "id" in message:
                answer = {"jsonrpc": "2.0", "id": message["id"], "result": {"content": [], "isError": False}}
                sys.stdout.buffer.write(json.dumps(answer, separators=(",", ":")).encode() + b"\n")
                sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
