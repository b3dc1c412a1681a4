"""The Python SDK reader for the differential tests: an ``MCPServer`` over stdio that records what it executes.

Tools: ``safe()``, ``evil()``, ``pay(amount, to, delay=0)`` (sleeps ``delay`` seconds; ``to == "fail"``
answers with an ``isError`` result) and ``dashboard(dashboardUid)``. Every tool, when the SDK runs it,
appends ``{"tool": NAME, "arguments": {...}}`` (the arguments as the SDK handed them to the function)
to the file named by ``MCP_GUARD_TEST_CALLS``, before doing anything else; every byte read from stdin is
appended to ``MCP_GUARD_TEST_WIRE`` before the SDK sees it.

Stdin is read exactly as the SDK's own ``stdio_server()`` reads it (a ``TextIOWrapper``, UTF-8 with
replacement, universal newlines: a bare ``\\r`` ends a line); only the byte source is a tee.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any, BinaryIO

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.stdio import stdio_server

CALLS = os.environ["MCP_GUARD_TEST_CALLS"]
WIRE = os.environ["MCP_GUARD_TEST_WIRE"]

app = MCPServer("sdk-reader", version="1.0.0")


def record(tool: str, arguments: dict[str, Any]) -> None:
    with open(CALLS, "a", encoding="utf-8") as calls:
        calls.write(json.dumps({"tool": tool, "arguments": arguments}) + "\n")


@app.tool()
def safe() -> str:
    """Harmless."""
    record("safe", {})
    return "safe done"


@app.tool()
def evil() -> str:
    """Always refused by the tests' policy."""
    record("evil", {})
    return "evil done"


@app.tool()
async def pay(amount: float, to: str, delay: float = 0.0) -> str:
    """Pay `amount` to `to` after `delay` seconds; `to == "fail"` fails."""
    record("pay", {"amount": amount, "to": to, "delay": delay})
    if delay > 0:
        await anyio.sleep(delay)
    if to == "fail":
        raise ToolError(f"payment of {amount} failed")
    return f"paid {amount} to {to}"


@app.tool()
def dashboard(dashboardUid: str) -> str:
    """Open a dashboard."""
    record("dashboard", {"dashboardUid": dashboardUid})
    return f"dashboard {dashboardUid}"


class _Tee(io.RawIOBase):
    """Raw stdin that copies every chunk it reads to the wire log first."""

    def __init__(self, fd: int, log: BinaryIO) -> None:
        super().__init__()
        self._fd = fd
        self._log = log

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = os.read(self._fd, len(buffer))
        self._log.write(data)
        buffer[: len(data)] = data
        return len(data)


async def serve() -> None:
    lowlevel = app._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    with open(WIRE, "ab", buffering=0) as wire:
        text = io.TextIOWrapper(io.BufferedReader(_Tee(0, wire)), encoding="utf-8", errors="replace")
        async with stdio_server(stdin=anyio.wrap_file(text)) as (read_stream, write_stream):
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


if __name__ == "__main__":
    anyio.run(serve)
