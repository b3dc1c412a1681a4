"""An SDK-built stdio server whose ``pay`` tool asks the user to confirm before it pays.

In the 2026-07-28 era the question is an ``input_required`` result and the client retries the
same ``tools/call`` (new JSON-RPC id) with ``inputResponses`` and the server's ``requestState``;
in the handshake era it is an ``elicitation/create`` request in the middle of the call. Every
payment that happens is appended to the file named by ``--ledger``, so a test can tell whether
(and how often) the server really paid.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Annotated

from mcp.server import MCPServer
from mcp.server.mcpserver import Elicit, ElicitationResult, Resolve
from pydantic import BaseModel, Field


class Confirm(BaseModel):
    confirm: bool = Field(description="Really pay?")


def _ask(amount: int) -> Elicit[Confirm]:
    return Elicit(f"Really pay {amount}?", Confirm)


def build(ledger: Path) -> MCPServer:
    app = MCPServer("confirming", version="1.0.0")

    @app.tool()
    def pay(amount: int, answer: Annotated[ElicitationResult[Confirm], Resolve(_ask)]) -> str:
        """Pay ``amount`` after the user confirms it."""
        if answer.action != "accept" or not answer.data.confirm:
            return f"not paid ({answer.action})"
        with ledger.open("a") as f:
            f.write(f"{amount}\n")
        return f"paid {amount}"

    @app.tool()
    def balance() -> str:
        """What has been paid so far."""
        return ledger.read_text() if ledger.exists() else ""

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ledger", type=Path, required=True)
    build(parser.parse_args().ledger).run()


if __name__ == "__main__":
    main()
