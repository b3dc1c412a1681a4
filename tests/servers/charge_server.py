"""An SDK server with ``create_charge(customer_id: int, amount: float)``, for the keyed-limit attacks in
tests/test_redteam_calls.py. Like every SDK tool it reads its arguments through pydantic in lax mode,
so ``"1"``, ``" 1 "``, ``"01"``, ``"+1"``, ``"1.0"`` and ``true`` are all customer 1. Each charge appends
``charge CUSTOMER AMOUNT`` to the file named by the first argument."""

from __future__ import annotations

import sys

from mcp.server import MCPServer

app = MCPServer("charge-server")


@app.tool()
def create_charge(customer_id: int, amount: float) -> str:
    """Charge a customer."""
    if len(sys.argv) > 1:
        with open(sys.argv[1], "a", encoding="utf-8") as log:
            log.write(f"charge {customer_id} {amount}\n")
    return f"charged {customer_id}"


if __name__ == "__main__":
    app.run()
