"""An SDK-built stdio server that never answers ``tools/list``: for Ctrl-C tests of ``init`` and ``pins create``.

``python slow_lister.py MARKER`` serves one tool, ``ping``. When a ``tools/list`` request
arrives it creates the file MARKER (so a test knows the command is now waiting for the
listing) and then waits for good, until the client goes away.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
from mcp.server import MCPServer, ServerRequestContext
from mcp.server.context import CallNext, HandlerResult

app = MCPServer("slow-lister", version="1.0.0")


@app.tool()
def ping() -> str:
    """Answer pong."""
    return "pong"


def stall_listing(marker: Path) -> Any:
    async def middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/list":
            marker.touch()
            await anyio.sleep_forever()
        return await call_next(ctx)

    return middleware


def main() -> None:
    if len(sys.argv) != 2:
        sys.stderr.write("usage: slow_lister.py MARKER\n")
        raise SystemExit(2)
    app.middleware.append(stall_listing(Path(sys.argv[1])))
    app.run()


if __name__ == "__main__":
    main()
