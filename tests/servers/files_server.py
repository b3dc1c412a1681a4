"""A file-reading MCP stdio server (Python SDK) for the ``within`` tests: it reads what it is asked, anywhere.

Like many real servers it accepts ``~`` and ``file:`` URLs (percent-decoded), and it has no root
restriction of its own, so whatever the guard lets through is read: a test that reads a secret
through it shows the guard let the path by.

Tools: ``read_text(path)`` returns a file's text; ``read_many(paths)`` returns the texts joined by
newlines.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from mcp.server import MCPServer

app = MCPServer("files", version="0.1.0")


def _local(path: str) -> str:
    if path[:5].lower() == "file:":
        path = unquote(urlsplit(path).path)
    return os.path.expanduser(path)


@app.tool()
def read_text(path: str) -> str:
    """Read a text file (a path, ~/path or file: URL)."""
    with open(_local(path), encoding="utf-8") as file:
        return file.read()


@app.tool()
def read_many(paths: list[str]) -> str:
    """Read several text files."""
    return "\n".join(read_text(path) for path in paths)


if __name__ == "__main__":
    app.run()
