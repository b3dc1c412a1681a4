"""One call through the live guard's pipeline, with nothing sent anywhere: what ``explain`` reports."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_guard.pipeline import Approved, CallIn, Hold, Kind, Pipeline, Refuse, Relay, Snapshot, Verdict
from mcp_guard.policy.decision import Allow, Approve
from mcp_guard.policy.model import Policy

if TYPE_CHECKING:
    from mcp_guard.flows.guard import FlowGuard
    from mcp_guard.integrity.guard import ToolIntegrity
    from mcp_guard.policy.engine import Engine


class _WouldAsk:
    """The approval stage of a dry run: a person would be asked."""

    def consider(self, call: CallIn, decision: Approve) -> Verdict | Approved:
        return Hold("approval", decision)


def dry_run_snapshot(
    policy: Policy,
    policy_path: Path | None,
    lock: Path | None = None,
    held: Sequence[str] = (),
    clock: Callable[[], float] = time.time,
) -> Snapshot:
    """The snapshot a guard would judge calls against, with the lock file standing in for the server's listing.

    The policy's decisions are reported even in monitor mode (the guard would only report them then).
    Flow rules see a ledger of their own, in memory, in which every holder holds the labels ``held`` (never the
    real ledger). ValueError when the lock file cannot be used.
    """
    from mcp_guard.integrity.setup import IntegrityError, build_integrity
    from mcp_guard.policy.engine import Engine

    engine = Engine(policy.model_copy(update={"mode": "enforce"})) if policy.mode == "monitor" else Engine(policy)
    try:
        integrity = build_integrity(policy, policy_path, lock=lock)
    except IntegrityError as exc:
        raise ValueError(str(exc)) from None
    if integrity is not None and integrity.settings.lock is not None:
        integrity.listed([pin.definition for pin in integrity.settings.lock.tools.values()], complete=True)
    return Snapshot(engine, integrity, flows=dry_run_flows(engine, integrity, held, clock))


def dry_run_flows(
    engine: Engine, integrity: ToolIntegrity | None, held: Sequence[str], clock: Callable[[], float] = time.time
) -> FlowGuard:
    """Flow checks over memory ledgers (``held``: labels every holder holds now); pins give the annotations."""
    from mcp_guard.flows.guard import FlowGuard
    from mcp_guard.flows.ledger import MemoryLedger

    lock = integrity.settings.lock if integrity is not None else None
    pins = lock.tools if lock is not None else {}

    def pinned(tool: str) -> Mapping[str, Any] | None:
        entry = pins.get(tool)
        return entry.definition if entry is not None else None

    flows = FlowGuard(
        "dry-run", client_id="dry-run", shared=MemoryLedger(clock), local=MemoryLedger(clock), pinned=pinned
    )
    if held:
        for scope in ("client", "server", "global"):
            flows.shared().acquire([flows.holder(scope)], list(held), "(given with --labels)", "dry-run")
        flows.local.acquire([flows.holder("grant")], list(held), "(given with --labels)", "dry-run")
    return flows


def summary(verdict: Verdict) -> dict[str, Any] | None:
    """The decision, rule and reason of a verdict as ``explain`` and ``test`` report them.

    None for a call held for the server's tool list, which no lock file stood in for.
    """
    if isinstance(verdict, Relay):
        # An allowed call names the tool's entry ("tools.NAME"), the approval rule once a person approved
        # it, or "default" when no entry matched and the default allowed it.
        return {"decision": "allow", "rule": verdict.record.rule or "default", "reason": None}
    if isinstance(verdict, Refuse):
        deny = verdict.deny
        return {"decision": "deny", "rule": deny.rule, "reason": deny.reason, "kind": deny.kind}
    if isinstance(verdict, Hold) and verdict.decision is not None:
        return {"decision": "approve", "rule": verdict.decision.rule, "reason": verdict.decision.reason}
    return None


def explain_call(
    policy: Policy,
    policy_path: Path | None,
    tool: str,
    arguments: dict[str, Any],
    lock: str | None = None,
    held: Sequence[str] = (),
    kind: Kind = "tool",
) -> dict[str, Any]:
    """The decision the running guard would reach for this call, as a JSON-ready dict.

    The same stages run as in the guard, in the same order: hidden, own files, pins and schema (the
    lock file stands in for the server's listing), the rule, flows (the labels ``held``; a prompt or resource
    carries its own section's labels), approval, and limits (an empty counter).
    ValueError when the lock file cannot be used.
    """
    from mcp_guard.judge import Judge
    from mcp_guard.limits.memory import MemoryLimiter

    snapshot = dry_run_snapshot(policy, policy_path, Path(lock) if lock else None, held)
    engine = snapshot.engine
    pipeline = Pipeline(Judge(engine, MemoryLimiter()), _WouldAsk())
    call = request_in(tool, arguments, kind)
    verdict = pipeline.judge_call(call, snapshot)
    section = engine.section(kind) if kind != "tool" else None
    if kind == "tool":
        decided = engine.decide(tool, arguments)
    else:
        decided = section.decide(tool, arguments) if section is not None else Allow(None)
    charges = decided.charges if isinstance(decided, (Allow, Approve)) else ()
    # A listing the lock could not stand in for.
    out = summary(verdict) or {
        "decision": "deny",
        "rule": "pins",
        "reason": f"Tool {tool!r} is not in the lock file.",
        "kind": "pin",
    }
    out["limits"] = [
        {"rule": c.rule, "counter": c.counter, "window_s": c.window_s, "max": c.max, "cost": c.cost} for c in charges
    ]
    if snapshot.flows is not None and (engine.flows or held):
        out["labels"] = sorted(snapshot.flows.labels(engine, tool, kind))  # a prompt's or resource's own
        out["held"] = sorted(set(held))
    if kind != "tool":
        out["kind"] = kind
        if section is None:
            out["reason"] = (
                f"The policy has no '{kind}s' section, so the guard relays every {_METHODS[kind]} untouched."
            )
    if policy.mode == "monitor":
        out["mode"] = "monitor"
    return out


_METHODS = {"tool": "tools/call", "prompt": "prompts/get", "resource": "resources/read"}


def request_in(name: str, arguments: dict[str, Any], kind: Kind = "tool", ident: int = 1) -> CallIn:
    """The request a client would send, as the guard reads it: a tools/call, prompts/get or resources/read."""
    params: dict[str, Any] = {"uri": name} if kind == "resource" else {"name": name, "arguments": arguments}
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": ident, "method": _METHODS[kind], "params": params}
    return CallIn(ident, name, arguments, params, message, False, kind=kind)
