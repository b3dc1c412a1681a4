"""A remote MCP server for the ``wrap --remote`` tests: Streamable HTTP, built with the Python SDK's MCPServer.

``python http_server.py PORT_FILE CALL_LOG [--sse]`` listens on 127.0.0.1 at a port the system
picks (no race between choosing a free port and binding it), writes that port and a newline to
PORT_FILE once it accepts connections, and serves MCP over Streamable HTTP at ``/mcp`` (with
``--sse``: the older HTTP+SSE transport, at ``/sse``). Every tool call that
reaches it is appended to CALL_LOG as one JSON line (``{"tool": ..., "headers": {...}}``, the
headers lower-cased as HTTP has them), so a test can tell a call the guard refused (absent
here) from one the server answered with an error.

Tools: ``echo(text)``, ``whoami()`` (the ``authorization`` and ``x-tenant`` headers it was
sent, as JSON) and ``delete_everything()``, which a test policy denies.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import anyio
import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context

app = MCPServer("remote-test-server")
CALL_LOG: Path | None = None


def _record(tool: str, ctx: Context) -> dict[str, str]:
    headers = {k.lower(): v for k, v in (ctx.headers or {}).items()}
    seen = {k: headers[k] for k in ("authorization", "x-tenant") if k in headers}
    if CALL_LOG is not None:
        with CALL_LOG.open("a", encoding="utf-8") as log:
            log.write(json.dumps({"tool": tool, "headers": seen}) + "\n")
    return seen


@app.tool()
def echo(text: str, ctx: Context) -> str:
    """Say ``text`` back."""
    _record("echo", ctx)
    return text


@app.tool()
def whoami(ctx: Context) -> str:
    """The credentials this request came with."""
    return json.dumps(_record("whoami", ctx), sort_keys=True)


@app.tool()
def delete_everything(ctx: Context) -> str:
    """Pretend to do something a policy should stop."""
    _record("delete_everything", ctx)
    return "deleted everything"


async def serve(port_file: Path, sse: bool) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    starlette_app = app.sse_app(host="127.0.0.1") if sse else app.streamable_http_app(host="127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(starlette_app, log_level="warning"))

    async def announce() -> None:
        while not server.started:
            await anyio.sleep(0.01)
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(f"{port}\n", encoding="utf-8")
        tmp.replace(port_file)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(announce)
        await server.serve(sockets=[sock])


def main(argv: list[str]) -> int:
    global CALL_LOG
    if len(argv) not in (3, 4) or argv[3:] not in ([], ["--sse"]):
        sys.stderr.write("usage: http_server.py PORT_FILE CALL_LOG [--sse]\n")
        return 2
    CALL_LOG = Path(argv[2])
    anyio.run(serve, Path(argv[1]), argv[3:] == ["--sse"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
