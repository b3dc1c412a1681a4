"""OpenTelemetry: one span per judged ``tools/call`` and a few counters, exported over OTLP/HTTP.

On with ``--otel`` or the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``)
variable; the exporters read the rest of the standard ``OTEL_*`` settings themselves. This module is
imported only then (see :mod:`mcp_guard.watching`), and the OpenTelemetry packages only from here,
so a guard without telemetry imports none of them. They come with the ``mcp-guard[otel]`` extra.

A span (``tools/call TOOL``) starts when the guard judges a call (or first holds it for a person) and
ends when the server answers it, or at once when the guard answers itself. It continues the client's
trace when the call carries ``_meta.traceparent`` (MCP's trace context convention). Its attributes:
the tool, the decision, the rule and the reason, the counter's usage for a limit refusal, the wait
for a person, the server's latency and whether it answered with an error. Never argument values.

Metrics: ``mcp_guard.calls`` (by decision and tool), ``mcp_guard.refusals`` (by rule),
``mcp_guard.approval.wait`` and ``mcp_guard.upstream.duration`` (histograms, ms).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from mcp_guard.actions import Action
from mcp_guard.pipeline import CallIn, Hold, Refuse, Relay, Reply, ResultIn, ResultOutcome, Verdict

EXTRA_HINT = (
    "install the otel extra (in a checkout: pip install '.[otel]'; with pipx: pipx inject mcp-guard "
    "opentelemetry-sdk opentelemetry-exporter-otlp-proto-http)"
)
_SHUTDOWN_S = 5.0


class TelemetryUnavailable(Exception):
    """Telemetry was asked for but cannot run (the extra is not installed)."""


def _key(ident: object) -> tuple[str, object]:
    return (type(ident).__name__, ident)


class Telemetry:
    """A tap and a verdict observer that turn judged calls into spans and metrics."""

    def __init__(self, tracer: Any, meter: Any, providers: Sequence[Any], server: str) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._tracer = tracer
        self._providers = providers
        self._server = server
        self._propagator = TraceContextTextMapPropagator()
        self._lock = threading.Lock()
        self._open: dict[tuple[str, object], tuple[Any, int, str]] = {}  # id -> (span, start ns, tool)
        self._asking: dict[tuple[str, object], int] = {}  # id -> when a person was first asked (ns)
        self._calls = meter.create_counter("mcp_guard.calls", unit="{call}", description="Judged tool calls")
        self._refusals = meter.create_counter(
            "mcp_guard.refusals", unit="{call}", description="Tool calls the guard refused, by rule"
        )
        self._approval_wait = meter.create_histogram(
            "mcp_guard.approval.wait", unit="ms", description="How long calls waited for a person"
        )
        self._upstream = meter.create_histogram(
            "mcp_guard.upstream.duration", unit="ms", description="How long the server took to answer a relayed call"
        )

    @classmethod
    def start(cls, server: str, warn: Callable[[str], None]) -> Telemetry:
        """Exporters over OTLP/HTTP, set up from the standard ``OTEL_*`` variables."""
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            raise TelemetryUnavailable(
                f"--otel (or $OTEL_EXPORTER_OTLP_ENDPOINT) needs the OpenTelemetry packages, which are not installed "
                f"({exc.name or exc}): {EXTRA_HINT}, or unset the variable"
            ) from None
        from mcp_guard import __version__

        resource = Resource.create(
            {"service.name": "mcp-guard", "service.version": __version__, "mcp_guard.server": server}
        )
        tracing = TracerProvider(resource=resource)
        tracing.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        reader = PeriodicExportingMetricReader(OTLPMetricExporter())
        metering = MeterProvider(resource=resource, metric_readers=[reader])
        return cls(
            tracing.get_tracer("mcp_guard", __version__),
            metering.get_meter("mcp_guard", __version__),
            (tracing, metering),
            server,
        )

    # the pipeline's side ---------------------------------------------------------------------------

    def verdict(self, call: CallIn, verdict: Verdict, after_approval: bool) -> None:
        if call.ident is None:
            return  # a tools/call sent as a notification: nobody waits for it
        key = _key(call.ident)
        now = time.time_ns()
        if isinstance(verdict, Hold):
            if verdict.kind == "approval":
                with self._lock:
                    self._asking.setdefault(key, now)
            return
        with self._lock:
            asked_at = self._asking.pop(key, None)
        start = asked_at if asked_at is not None else now
        span = self._tracer.start_span(
            f"tools/call {call.name}",
            context=self._parent(call),
            start_time=start,
            attributes={
                "mcp.method.name": "tools/call",
                "gen_ai.tool.name": call.name,
                "jsonrpc.request.id": str(call.ident),
                "mcp_guard.server": self._server,
            },
        )
        if asked_at is not None:
            wait_ms = (now - asked_at) / 1e6
            span.set_attribute("mcp_guard.approval.wait_ms", wait_ms)
            self._approval_wait.record(wait_ms, {"gen_ai.tool.name": call.name})
        if isinstance(verdict, Relay):
            record = verdict.record
            decision = "approve" if record.decision == "approved" or asked_at is not None else "allow"
            self._decided(span, call.name, decision, record.rule or "default", record.reason)
            if record.decision == "monitored":
                span.set_attribute("mcp_guard.monitored", True)
            self._pass_on(call, verdict, span)
            with self._lock:
                self._open[key] = (span, now, call.name)
            return
        if isinstance(verdict, Refuse):
            deny = verdict.deny
            decision = "declined" if verdict.word == "declined" else "deny"
            self._decided(span, call.name, decision, deny.rule, deny.reason)
            span.set_attribute("mcp_guard.kind", deny.kind)
            details = deny.details
            if deny.kind == "limit":
                for name in ("counter", "used", "max", "window_s"):
                    value = details.get(name)
                    if isinstance(value, (str, int, float)):
                        span.set_attribute(f"mcp_guard.limit.{name}", value)
            self._refusals.add(1, {"mcp_guard.rule": deny.rule, "gen_ai.tool.name": call.name})
        elif isinstance(verdict, Reply):
            self._decided(span, call.name, "approve", None, "asked the client's user (2026-07-28 input round)")
        span.end(end_time=time.time_ns())

    def result(self, answer: ResultIn, outcome: ResultOutcome) -> None:
        """The result side's outcome and findings on the call's span (detector, kind, count; never values)."""
        with self._lock:
            opened = self._open.get(_key(answer.ident))
        if opened is None:
            return
        span = opened[0]
        span.set_attribute("mcp_guard.result.outcome", outcome.outcome)
        if outcome.findings:
            count = 0
            for finding in outcome.findings:
                found = finding.get("count")
                count += found if isinstance(found, int) else 0
            span.set_attribute("mcp_guard.result.findings", count)
            detectors = sorted({str(f["detector"]) for f in outcome.findings})
            span.set_attribute("mcp_guard.result.detectors", detectors)

    def _decided(self, span: Any, tool: str, decision: str, rule: str | None, reason: str | None) -> None:
        span.set_attribute("mcp_guard.decision", decision)
        if rule is not None:
            span.set_attribute("mcp_guard.rule", rule)
        if reason is not None:
            span.set_attribute("mcp_guard.reason", reason)
        self._calls.add(1, {"mcp_guard.decision": decision, "gen_ai.tool.name": tool})

    def _pass_on(self, call: CallIn, verdict: Relay, span: Any) -> None:
        """The server continues the trace from the guard's span: its ``_meta.traceparent`` names it.

        Only where the client sent a trace context: that field alone changes (never the tool or its
        arguments), so the server sees the guard between the client and itself.
        """
        meta = call.params.get("_meta")
        if not isinstance(meta, dict) or not isinstance(meta.get("traceparent"), str):
            return
        from opentelemetry.trace import set_span_in_context

        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=set_span_in_context(span))
        base = verdict.forward if verdict.forward is not None else call.message
        params = base.get("params")
        if "traceparent" not in carrier or not isinstance(params, dict):
            return
        forward_meta = params.get("_meta")
        new_meta = {**(forward_meta if isinstance(forward_meta, dict) else meta), **carrier}
        verdict.forward = {**base, "params": {**params, "_meta": new_meta}}

    def _parent(self, call: CallIn) -> Any:
        meta = call.params.get("_meta")
        if not isinstance(meta, dict):
            return None
        parent = meta.get("traceparent")
        if not isinstance(parent, str):
            return None
        carrier = {"traceparent": parent}
        state = meta.get("tracestate")
        if isinstance(state, str):
            carrier["tracestate"] = state
        return self._propagator.extract(carrier)

    # the relay's side ------------------------------------------------------------------------------

    def client_line(self, line: bytes) -> None:
        pass

    def client_actions(self, line: bytes, actions: Sequence[Action]) -> None:
        pass

    def emitted(self, actions: Sequence[Action]) -> None:
        pass

    def upstream_line(self, line: bytes, actions: Sequence[Action]) -> None:
        if not self._open:
            return
        from mcp_guard.wire.peek import peek

        message = peek(line)
        if message.kind != "response":
            return
        with self._lock:
            opened = self._open.pop(_key(message.id), None)
        if opened is None:
            return
        span, started, tool = opened
        now = time.time_ns()
        latency_ms = (now - started) / 1e6
        status = "error" if b'"isError":true' in line or b'"error":{' in line[:200] else "ok"
        span.set_attribute("mcp_guard.upstream.latency_ms", latency_ms)
        span.set_attribute("mcp_guard.upstream.status", status)
        span.end(end_time=now)
        self._upstream.record(latency_ms, {"gen_ai.tool.name": tool, "mcp_guard.upstream.status": status})

    def close(self) -> None:
        """End what is still open, then export everything (bounded in time)."""
        with self._lock:
            left = list(self._open.values())
            self._open.clear()
        for span, _, _ in left:
            span.set_attribute("mcp_guard.upstream.status", "unanswered")
            span.end()

        def shut() -> None:
            for provider in self._providers:
                provider.shutdown()

        closer = threading.Thread(target=shut, name="mcp-guard telemetry", daemon=True)
        closer.start()
        closer.join(_SHUTDOWN_S)
