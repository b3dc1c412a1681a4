"""An SDK server whose prompts and resources make it act, like ``mcp-server-fetch``'s ``fetch`` prompt.

For the tests of prompts and resources under policy (issue 23, part 2). Every prompt or resource the
server produces appends a line to the file named by its first argument ("prompt NAME", "read URI",
"tool fetch URL"), so a test can tell whether the server acted at all.

* tools: ``fetch(url)`` ("fetches" a URL: answers with a fixed text);
* prompts: ``fetch(url)`` (performs the same "GET" as the tool), ``summarise(text)``, ``debug_dump``,
  ``debug_state``;
* resources: the templates ``https://example.com/page/{n}`` and ``debug://{key}``, and a few static ones:
  ``https://example.com/``, ``file:///etc/hostname``, ``file:///srv/notes.txt``, ``debug://state``.
"""

from __future__ import annotations

import sys

from mcp.server import MCPServer

app = MCPServer("prompts-server")


def _acted(what: str) -> None:
    if len(sys.argv) > 1:
        with open(sys.argv[1], "a", encoding="utf-8") as log:
            log.write(what + "\n")


def _get(url: str) -> str:
    return f"<html>contents of {url}</html>"


@app.tool()
def fetch(url: str) -> str:
    """Fetch a URL."""
    _acted(f"tool fetch {url}")
    return _get(url)


@app.prompt(name="fetch")
def fetch_prompt(url: str) -> str:
    """Fetch a URL and put its contents in the conversation."""
    _acted("prompt fetch")
    return f"Contents of {url}:\n{_get(url)}"


@app.prompt()
def summarise(text: str) -> str:
    """Ask for a summary."""
    _acted("prompt summarise")
    return f"Summarise: {text}"


@app.prompt()
def debug_dump() -> str:
    """Internal state (hidden by the tests' policy)."""
    _acted("prompt debug_dump")
    return "state"


@app.prompt()
def debug_state() -> str:
    """More internal state."""
    _acted("prompt debug_state")
    return "state"


@app.resource("https://example.com/")
def home() -> str:
    _acted("read https://example.com/")
    return _get("https://example.com/")


@app.resource("https://example.com/page/{n}")
def page(n: str) -> str:
    uri = f"https://example.com/page/{n}"
    _acted(f"read {uri}")
    return _get(uri)


@app.resource("file:///etc/hostname")
def hostname() -> str:
    _acted("read file:///etc/hostname")
    return "guarded-host\n"


@app.resource("file:///srv/notes.txt")
def notes() -> str:
    _acted("read file:///srv/notes.txt")
    return "notes\n"


@app.resource("debug://state")
def debug_resource() -> str:
    _acted("read debug://state")
    return "state"


@app.resource("debug://{key}")
def debug_key(key: str) -> str:
    _acted(f"read debug://{key}")
    return key


if __name__ == "__main__":
    app.run()
