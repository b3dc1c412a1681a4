"""A demo upstream MCP server modelled on a payments / fraud-analytics server.

It exists so mcp-guard can be demonstrated offline: it has the same shape of tools as a
real payments server (telemetry, risk analysis, read-only lookups, money-moving actions)
but keeps all state in memory and never talks to the network.

Run it directly (it speaks MCP over stdio): ``python examples/demo_server.py``.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

app = MCPServer(
    "demo-payments",
    version="0.1.0",
    instructions="Demo payments/fraud server for mcp-guard. All data is fake and in memory.",
)

# Hint objects shared by several tools: clients (and mcp-guard policies) can use them to tell
# lookups from actions that move money.
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False)

CUSTOMERS: dict[str, dict[str, str]] = {
    "cus_001": {"name": "Ada Lovelace", "email": "ada@example.com"},
    "cus_002": {"name": "Alan Turing", "email": "alan@example.com"},
    "cus_003": {"name": "Grace Hopper", "email": "grace@example.com"},
}
_events: dict[str, int] = {}
_orders: dict[str, dict[str, Any]] = {}
_charges: dict[str, dict[str, Any]] = {}
# Sequential ids rather than random ones, so runs of the demo are reproducible.
_charge_ids = itertools.count(1)
_refund_ids = itertools.count(1)


@app.tool()
def track_behavior_event(user_id: str, event: str, properties: dict[str, Any] | None = None) -> dict[str, Any]:
    """Record a user behaviour event (page view, login, checkout step) for fraud analytics."""
    _events[user_id] = _events.get(user_id, 0) + 1
    return {
        "ack": True,
        "user_id": user_id,
        "event": event,
        "properties": properties or {},
        "user_event_count": _events[user_id],
        "total_event_count": sum(_events.values()),
    }


@app.tool()
def send_order_for_analysis(order_id: str, amount: float, currency: str) -> dict[str, Any]:
    """Submit an order to the fraud engine and return its risk score (0.0 safe .. 1.0 fraud)."""
    # A hash of the inputs stands in for the model: the same order always gets the same score.
    digest = hashlib.sha256(f"{order_id}|{amount:.2f}|{currency.upper()}".encode()).digest()
    score = round(min(1.0, digest[0] / 255 * 0.7 + min(amount, 10_000) / 10_000 * 0.3), 3)
    decision = "approve" if score < 0.4 else "review" if score < 0.75 else "decline"
    _orders[order_id] = {
        "amount": amount,
        "currency": currency.upper(),
        "risk_score": score,
        "decision": decision,
    }
    return {"order_id": order_id, "risk_score": score, "decision": decision}


@app.tool(annotations=READ_ONLY)
def get_order_status(order_id: str) -> dict[str, Any]:
    """Look up an order's fraud-review status."""
    order = _orders.get(order_id)
    if order is None:
        return {"order_id": order_id, "status": "not_found"}
    return {"order_id": order_id, "status": "analysed", **order}


@app.tool(annotations=READ_ONLY)
def list_customers() -> dict[str, list[dict[str, str]]]:
    """List the customers known to this account."""
    return {"customers": [{"customer_id": cid, **info} for cid, info in CUSTOMERS.items()]}


@app.tool(annotations=DESTRUCTIVE)
def create_charge(amount: float, currency: str, customer_id: str, description: str = "") -> dict[str, Any]:
    """Charge a customer's saved payment method. Moves real money in a real deployment."""
    # ToolError rather than ValueError: the SDK reports a ToolError's message to the caller as an
    # isError result, but masks any other exception as a bare "Error executing tool create_charge".
    if amount <= 0:
        raise ToolError("amount must be positive")
    if len(currency) != 3 or not currency.isalpha():
        raise ToolError("currency must be a 3-letter ISO 4217 code")
    if customer_id not in CUSTOMERS:
        raise ToolError(f"unknown customer {customer_id!r}")
    charge_id = f"ch_{next(_charge_ids):06d}"
    _charges[charge_id] = {
        "amount": amount,
        "currency": currency.upper(),
        "customer_id": customer_id,
        "description": description,
        "refunded": 0.0,
    }
    return {"charge_id": charge_id, "status": "succeeded", **_charges[charge_id]}


@app.tool(annotations=DESTRUCTIVE)
def refund(charge_id: str, amount: float) -> dict[str, Any]:
    """Refund part or all of a previous charge."""
    charge = _charges.get(charge_id)
    if charge is None:
        raise ToolError(f"unknown charge {charge_id!r}")
    remaining = charge["amount"] - charge["refunded"]
    if amount <= 0 or amount > remaining + 1e-9:
        raise ToolError(f"refund amount must be in (0, {remaining:.2f}]")
    charge["refunded"] += amount
    return {
        "refund_id": f"re_{next(_refund_ids):06d}",
        "charge_id": charge_id,
        "amount": amount,
        "status": "succeeded",
    }


if __name__ == "__main__":
    app.run()
