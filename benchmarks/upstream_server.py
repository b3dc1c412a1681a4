"""A minimal stdio MCP server for the benchmarks (standard library only).

``python upstream_server.py [--sizes 16,65536,...] [--spaced]`` answers, one frame per line,
in the Python SDK's compact layout (``{"jsonrpc":"2.0","id":N,"result":{...}}``) or, with
``--spaced``, in the layout of ``json.dumps`` with its default separators
(``{"jsonrpc": "2.0", "id": N, "result": {...}}``, ", " and ": "):

* ``initialize``, ``server/discover``, ``ping``, ``tools/list``;
* ``tools/call`` for the tool ``echo``: the result holds one text item of exactly
  ``arguments.size`` bytes (``"x"`` repeated). Everything else in ``arguments``
  (such as a large ``pad`` string, used to send big requests) is ignored.

Results for the sizes named by ``--sizes`` are encoded once at start-up, so an
answer costs one parse of the (small) request and one ``writev``; other sizes are
encoded on first use and then cached. Notifications are read and ignored.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

PROTOCOL_VERSION = "2025-06-18"
SERVER_INFO = {"name": "bench-upstream", "version": "1.0"}
TOOLS = [
    {
        "name": "echo",
        "description": "Returns a text result of the requested size.",
        "inputSchema": {
            "type": "object",
            "properties": {"size": {"type": "integer", "minimum": 0}, "pad": {"type": "string"}},
            "required": ["size"],
        },
    }
]


SPACED = False  # set by --spaced: ", " and ": " separators, as json.dumps writes by default


def _compact(value: Any) -> bytes:
    separators = (", ", ": ") if SPACED else (",", ":")
    return json.dumps(value, separators=separators, ensure_ascii=False).encode()


def _result_tail(result: Any) -> bytes:
    """Everything of an answer frame after its id: ``,"result":{...}}\\n``."""
    return (b', "result": ' if SPACED else b',"result":') + _compact(result) + b"}\n"


def _echo_tail(size: int) -> bytes:
    # The payload is ASCII "x", so the encoded text is exactly ``size`` bytes.
    text = b"x" * size
    if SPACED:
        return b', "result": {"content": [{"type": "text", "text": "' + text + b'"}], "isError": false}}\n'
    return b',"result":{"content":[{"type":"text","text":"' + text + b'"}],"isError":false}}\n'


def _error_tail(code: int, message: str) -> bytes:
    return (b', "error": ' if SPACED else b',"error":') + _compact({"code": code, "message": message}) + b"}\n"


class Server:
    def __init__(self, sizes: list[int]) -> None:
        self.echo_tails: dict[int, bytes] = {size: _echo_tail(size) for size in sizes}
        self.tools_tail = _result_tail({"tools": TOOLS})
        self.empty_tail = _result_tail({})

    def tail_for(self, method: str, params: Any) -> bytes:
        if method == "tools/call":
            if not isinstance(params, dict) or params.get("name") != "echo":
                return _error_tail(-32602, "unknown tool")
            arguments = params.get("arguments") or {}
            size = int(arguments.get("size", 0))
            tail = self.echo_tails.get(size)
            if tail is None:
                tail = self.echo_tails[size] = _echo_tail(size)
            return tail
        if method == "tools/list":
            return self.tools_tail
        if method == "initialize":
            requested = params.get("protocolVersion") if isinstance(params, dict) else None
            return _result_tail(
                {
                    "protocolVersion": requested or PROTOCOL_VERSION,
                    "capabilities": {"tools": {}},
                    "serverInfo": SERVER_INFO,
                }
            )
        if method == "server/discover":
            return _result_tail(
                {
                    "supportedVersions": [PROTOCOL_VERSION],
                    "capabilities": {"tools": {}},
                    "serverInfo": SERVER_INFO,
                }
            )
        if method == "ping":
            return self.empty_tail
        return _error_tail(-32601, "method not found")


def _write_all(fd: int, parts: list[bytes]) -> None:
    total = sum(len(p) for p in parts)
    written = os.writev(fd, parts)
    if written == total:
        return
    data = memoryview(b"".join(parts))[written:]
    while data:
        data = data[os.write(fd, data) :]


def main(argv: list[str]) -> int:
    global SPACED
    sizes: list[int] = []
    if "--sizes" in argv[1:-1]:
        sizes = [int(s) for s in argv[argv.index("--sizes") + 1].split(",") if s]
    SPACED = "--spaced" in argv[1:]
    head_start = b'{"jsonrpc": "2.0", "id": ' if SPACED else b'{"jsonrpc":"2.0","id":'
    server = Server(sizes)
    out = sys.stdout.fileno()
    for line in sys.stdin.buffer:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if not isinstance(message, dict) or "id" not in message or "method" not in message:
            continue  # notifications and answers need no reply
        head = head_start + _compact(message["id"])
        _write_all(out, [head, server.tail_for(message["method"], message.get("params"))])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
