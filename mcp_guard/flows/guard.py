"""One guard's side of the flow rules: the labels of its server's tools, checking a call, acquiring labels.

Built once per guard and kept across policy reloads (the rules themselves come from the engine of the
snapshot a call is judged against). The shared ledger is opened on first use, so a guard whose policy has no
flow rules never touches it.

A tool's labels are the policy's (:meth:`Engine.labels_for`) plus those its server's annotations give:
``read_only``, ``destructive`` and ``open_world`` for ``readOnlyHint``, ``destructiveHint`` and
``openWorldHint`` set to true, from the newest ``tools/list`` the guard relayed (or, before one, the tool's
pinned definition). Only hints the server states count: MCP's defaults (a tool without hints is
"destructive" and "open world") would label nearly every tool.

A prompt's or resource's labels (``kind`` "prompt" or "resource") are those of its section's rules
(:meth:`Section.labels_for`) only: the prompt ``fetch`` is not the tool ``fetch``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from mcp_guard.flows.ledger import Held, Ledger, MemoryLedger
from mcp_guard.limits.base import StoreUnavailable
from mcp_guard.policy.decision import Approve, Deny
from mcp_guard.policy.engine import CompiledFlow, Engine

HINTS = (("readOnlyHint", "read_only"), ("destructiveHint", "destructive"), ("openWorldHint", "open_world"))


def annotation_labels(definition: Mapping[str, Any]) -> frozenset[str]:
    annotations = definition.get("annotations")
    if not isinstance(annotations, Mapping):
        return frozenset()
    return frozenset(label for hint, label in HINTS if annotations.get(hint) is True)


def _clock_text(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def _duration(seconds: float) -> str:
    for name, length in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= length and seconds % length == 0:
            return f"{seconds / length:g}{name}"
    return f"{seconds:g}s"


class FlowGuard:
    """Flow checks for one guard. ``shared``: the ledger for client/server/global scopes (default: opened from
    ``state_url`` on first use); ``client_id``: None to find it from the parent process when first needed."""

    def __init__(
        self,
        server_name: str,
        state_url: str | None = None,
        client_id: str | None = None,
        *,
        shared: Ledger | None = None,
        local: Ledger | None = None,
        pinned: Callable[[str], Mapping[str, Any] | None] | None = None,
    ) -> None:
        self.server_name = server_name
        self.state_url = state_url
        self._client_id = client_id
        self.client_source = "--client-id" if client_id else ""
        self._shared = shared
        self.local: Ledger = local if local is not None else MemoryLedger()
        self.instance = uuid.uuid4().hex[:16]
        self._annotations: dict[str, frozenset[str]] = {}
        self._pinned = pinned
        self._lock = threading.Lock()

    # --- identity and stores ----------------------------------------------------------------------

    @property
    def client_id(self) -> str:
        if self._client_id is None:
            from mcp_guard.flows.client import client_identity

            self._client_id, self.client_source = client_identity(None)
        return self._client_id

    def holder(self, scope: str) -> str:
        if scope == "client":
            return f"client:{self.client_id}"
        if scope == "grant":
            return f"grant:{self.instance}"
        if scope == "server":
            return f"server:{self.server_name}"
        return "global"

    def shared(self) -> Ledger:
        with self._lock:
            if self._shared is None:
                from mcp_guard.flows.ledger import open_ledger

                try:
                    self._shared = open_ledger(self.state_url)
                except ValueError as exc:
                    raise StoreUnavailable(str(exc)) from exc
            return self._shared

    def where(self) -> str:
        """Where the shared ledger is, for the start line."""
        from mcp_guard.flows.ledger import FLOWS_FILE

        if self.state_url is None or self.state_url.strip().lower().startswith("memory:"):
            from mcp_guard import paths

            return f"labels held in sqlite://{paths.state_dir() / FLOWS_FILE}"
        from mcp_guard.limits.store import describe_store

        return f"labels held in {describe_store(self.state_url)}"

    # --- labels -----------------------------------------------------------------------------------

    def learn_listing(self, tools: Iterable[Any]) -> None:
        """Take the annotation labels of a ``tools/list`` the guard relayed (replacing older ones)."""
        learnt: dict[str, frozenset[str]] = {}
        for tool in tools:
            if isinstance(tool, Mapping) and isinstance(tool.get("name"), str):
                learnt[str(tool["name"])] = annotation_labels(tool)
        with self._lock:
            self._annotations.update(learnt)

    def labels(self, engine: Engine, tool: str, kind: str = "tool") -> frozenset[str]:
        if kind != "tool":
            section = engine.section(kind)
            return section.labels_for(tool) if section is not None else frozenset()
        given = engine.labels_for(tool)
        with self._lock:
            hinted = self._annotations.get(tool)
        if hinted is None and self._pinned is not None:
            definition = self._pinned(tool)
            hinted = annotation_labels(definition) if definition is not None else None
        return given | hinted if hinted else given

    # --- the call side ----------------------------------------------------------------------------

    def check(
        self, engine: Engine, tool: str, on_store_error: str = "deny", kind: str = "tool"
    ) -> Deny | Approve | None:
        """The first ``deny`` flow rule this call breaks, else the first ``approve`` one, else None (``kind``:
        ``tool`` names a tool, a prompt or a resource)."""
        flows = engine.flows
        if not flows:
            return None
        labels = self.labels(engine, tool, kind)
        rules = [flow for flow in flows if flow.targets & labels]
        if not rules:
            return None
        try:
            held, now = self._held(rules)
        except StoreUnavailable as exc:
            if on_store_error == "allow":
                return None
            return Deny(
                "store_unavailable",
                rules[0].rule,
                f"The flow ledger that says which labels this session holds is unavailable ({exc}), so this "
                f"{_request(kind, tool)}, which carries the label(s) {_names(labels & rules[0].targets)}, is refused "
                "(fail closed). Try again shortly.",
            )
        approve: Approve | None = None
        for flow in sorted(rules, key=lambda f: f.action != "deny"):
            holder = self.holder(flow.scope)
            found = [
                h
                for h in held
                if h.holder == holder
                and h.label in flow.sources
                and (flow.within_s is None or h.at >= now - flow.within_s)
            ]
            if not found:
                continue
            if flow.action == "deny":
                return self._refusal(flow, _request(kind, tool), labels, found, now)
            if approve is None:
                approve = Approve(flow.rule, self._message(flow, _request(kind, tool), labels, found, now, asks=True))
        return approve

    def _held(self, rules: Sequence[CompiledFlow]) -> tuple[list[Held], float]:
        out: list[Held] = []
        now = time.time()
        by_ledger: dict[bool, tuple[set[str], set[str]]] = {}
        for flow in rules:
            holders, labels = by_ledger.setdefault(flow.scope == "grant", (set(), set()))
            holders.add(self.holder(flow.scope))
            labels |= flow.sources
        for grant, (holders, labels) in by_ledger.items():
            rows, now = (self.local if grant else self.shared()).held(sorted(holders), sorted(labels))
            out += rows
        return out, now

    def _message(
        self, flow: CompiledFlow, request: str, labels: frozenset[str], found: list[Held], now: float, asks: bool
    ) -> str:
        newest = max(found, key=lambda h: h.at)
        whose = {
            "client": "this client session",
            "grant": "this session with this server",
            "server": f"the guards of server {self.server_name!r}",
            "global": "the guards sharing this store",
        }[flow.scope]
        if flow.within_s is not None:
            expiry = max(h.at for h in found) + flow.within_s
            until = f"it is held until {_clock_text(expiry)} (for {_duration(flow.within_s)} after it was acquired)"
        elif flow.scope == "client":
            until = "it is held for the rest of this client session"
        else:
            until = "it is held until a person clears it (mcp-guard flows clear)"
        head = (flow.reason.strip().rstrip(".") + ". ") if flow.reason else ""
        what = "needs a person's approval" if asks else "is refused"
        return (
            f"{head}This {request} carries the label {_names(labels & flow.targets)}, and {whose} holds "
            f"{newest.label!r}, acquired when {newest.tool!r} (server {newest.server!r}) answered at "
            f"{_clock_text(newest.at)}; {until}, so the {request.partition(' ')[0]} {what}."
        )

    def _refusal(self, flow: CompiledFlow, request: str, labels: frozenset[str], found: list[Held], now: float) -> Deny:
        held = [
            {
                "label": h.label,
                "tool": h.tool,
                "server": h.server,
                "acquired_at": _clock_text(h.at),
                "expires_at": _clock_text(h.at + flow.within_s) if flow.within_s is not None else None,
            }
            for h in sorted(found, key=lambda h: -h.at)
        ]
        details: dict[str, Any] = {"flow": flow.rule, "labels": sorted(labels & flow.targets), "held": held}
        return Deny("flow", flow.rule, self._message(flow, request, labels, found, now, asks=False), details)

    # --- the result side --------------------------------------------------------------------------

    def acquire(self, engine: Engine, tool: str, extra: Iterable[str] = (), *, kind: str = "tool") -> None:
        """A call to ``tool`` succeeded: record the labels it gives that some flow rule watches (``extra``: those
        its answer's findings gave; ``kind``: ``tool`` names a tool, a prompt or a resource, recorded in the
        ledger as ``prompt:NAME`` or ``resource:URI``).

        Raises :class:`StoreUnavailable` when the ledger cannot record them."""
        if not engine.flows:
            return
        given = self.labels(engine, tool, kind)
        labels = (given | frozenset(extra)) & engine.flow_sources
        if not labels:
            return
        holders: dict[bool, set[str]] = {}
        for flow in engine.flows:
            if flow.sources & labels:
                holders.setdefault(flow.scope == "grant", set()).add(self.holder(flow.scope))
        for grant, names in holders.items():
            ledger = self.local if grant else self.shared()
            ledger.acquire(
                sorted(names), sorted(labels), tool if kind == "tool" else f"{kind}:{tool}", self.server_name
            )

    def wants_result(self, engine: Engine, tool: str, kind: str = "tool") -> bool:
        """Whether the answer to a call of ``tool`` (a prompt or resource, by ``kind``) must be read to acquire
        labels: it has one a flow rule watches. (Labels found in the answer itself come from a stage that reads
        every answer anyway.)"""
        return bool(engine.flow_sources) and bool(self.labels(engine, tool, kind) & engine.flow_sources)


def _request(kind: str, name: str) -> str:
    """What a refusal calls the request: "call to 'x'" for a tool, "request for the prompt 'x'" for a prompt."""
    return f"call to {name!r}" if kind == "tool" else f"request for the {kind} {name!r}"


def _names(labels: Iterable[str]) -> str:
    return ", ".join(repr(label) for label in sorted(labels))
