"""An SDK-built stdio server whose tool list depends on the client's declared capabilities.

Like ``@modelcontextprotocol/server-everything`` (13 tools to a bare client, 17 to one that
declares roots, sampling and elicitation), it offers some tools only to clients that can
serve them, so a lock made by a client declaring nothing misses tools real clients see:

* always: ``lookup`` (read-only), ``write_note`` (no annotations), ``erase`` (destructive);
* ``list_roots`` when the client declares ``roots``;
* ``summarize`` when it declares ``sampling``;
* ``ask_user`` when it declares ``elicitation``.

``--name NAME`` changes the server's name (``serverInfo.name``), so two copies can stand for
two different servers in one client config.
"""

from __future__ import annotations

import argparse
from typing import Any

from mcp.server import MCPServer, ServerRequestContext
from mcp.server.context import CallNext, HandlerResult
from mcp.types import ToolAnnotations

NEEDS = {"list_roots": "roots", "summarize": "sampling", "ask_user": "elicitation"}


def build(name: str) -> MCPServer:
    app = MCPServer(name, version="2.0.0")

    @app.tool(annotations=ToolAnnotations(read_only_hint=True))
    def lookup(key: str) -> str:
        """Look a key up."""
        return f"value of {key}"

    @app.tool()
    def write_note(text: str) -> str:
        """Write a note."""
        return f"noted: {text}"

    @app.tool(annotations=ToolAnnotations(destructive_hint=True))
    def erase(key: str) -> str:
        """Erase a key for good."""
        return f"erased {key}"

    @app.tool()
    def list_roots() -> str:
        """List the client's roots (only offered to clients that declare roots)."""
        return "roots"

    @app.tool()
    def summarize(text: str) -> str:
        """Summarize a text with the client's model (only offered to clients that declare sampling)."""
        return text[:10]

    @app.tool()
    def ask_user(question: str) -> str:
        """Ask the user a question (only offered to clients that declare elicitation)."""
        return question

    async def by_capability(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method != "tools/list" or not isinstance(result, dict):
            return result
        declared = ctx.session.client_capabilities
        have = declared.model_dump(exclude_none=True) if declared is not None else {}
        result["tools"] = [t for t in result["tools"] if NEEDS.get(t["name"], "") in have or t["name"] not in NEEDS]
        return result

    app.middleware.append(by_capability)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--name", default="capable", help="the server's name in serverInfo")
    build(parser.parse_args().name).run()


if __name__ == "__main__":
    main()
