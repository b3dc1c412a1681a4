"""OpenTelemetry, end to end: a real guard exports over OTLP/HTTP to a receiver started here, decoded here."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO_SERVER, PYTHON, ROOT, Cli, isolated_env, write_policy
from mcp import Client, StdioServerParameters

pytestmark = [pytest.mark.timeout(90)]

POLICY: dict[str, Any] = {
    "version": "1",
    "default": "deny",
    "tools": {
        "track_behavior_event": {"limits": [{"counter": "events", "window": "minute", "max": 1, "scope": "grant"}]},
    },
}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
ARG_VALUE = "value-that-must-never-be-exported"


class Receiver:
    """An OTLP/HTTP receiver: keeps each POST's body by path."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[bytes]] = {}
        received = self.bodies

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.setdefault(self.path, []).append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> list[Any]:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        out = []
        for body in self.bodies.get("/v1/traces", []):
            request = ExportTraceServiceRequest.FromString(body)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    out.extend(scope.spans)
        return out

    def metric_points(self, name: str) -> list[tuple[dict[str, Any], float]]:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

        out = []
        for body in self.bodies.get("/v1/metrics", []):
            request = ExportMetricsServiceRequest.FromString(body)
            for resource in request.resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        if metric.name == name:
                            out.extend(
                                (attributes(p.attributes), p.as_int or p.as_double) for p in metric.sum.data_points
                            )
        return out


def attributes(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        value = item.value
        out[item.key] = getattr(value, value.WhichOneof("value"))
    return out


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.mark.anyio
async def test_spans_and_metrics_reach_an_otlp_receiver(
    receiver: Receiver, guard_cmd: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    policy = write_policy(tmp_path, POLICY)
    record = tmp_path / "session.jsonl"  # to see what the server was sent
    argv = [*guard_cmd, "--policy", str(policy), "--record", str(record), "--", PYTHON, str(DEMO_SERVER)]
    otel_env = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=otel_env)
    async with Client(params, mode="legacy") as client:
        first = await client.call_tool(
            "track_behavior_event",
            {"user_id": ARG_VALUE, "event": "login"},
            meta={"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN}-01"},  # type: ignore[typeddict-unknown-key]
        )
        assert not first.is_error
        assert (await client.call_tool("track_behavior_event", {"user_id": "u", "event": "e"})).is_error
        assert (await client.call_tool("refund", {"charge_id": ARG_VALUE, "amount": 1})).is_error
    # The guard exported everything on its way out.
    spans = receiver.spans()
    assert [s.name for s in spans] == [
        "tools/call track_behavior_event",
        "tools/call track_behavior_event",
        "tools/call refund",
    ]
    allowed, limited, denied = (attributes(s.attributes) for s in spans)
    assert spans[0].trace_id.hex() == TRACE_ID
    assert spans[0].parent_span_id.hex() == PARENT_SPAN
    assert spans[1].trace_id.hex() != TRACE_ID
    # The server was sent the guard's span as the parent, and nothing else changed.
    records = [json.loads(line) for line in record.read_text().splitlines()]
    (forwarded,) = [r["frame"] for r in records if r.get("dir") == "g2s"]
    (sent,) = [r["frame"] for r in records if r.get("dir") == "c2s" and r["frame"].get("id") == forwarded["id"]]
    assert forwarded["params"]["_meta"]["traceparent"] == f"00-{TRACE_ID}-{spans[0].span_id.hex()}-01"
    del forwarded["params"]["_meta"]["traceparent"], sent["params"]["_meta"]["traceparent"]
    assert forwarded == sent
    assert allowed["mcp_guard.decision"] == "allow"
    assert allowed["mcp_guard.rule"] == "tools.track_behavior_event"
    assert allowed["mcp_guard.upstream.status"] == "ok"
    assert 0 < allowed["mcp_guard.upstream.latency_ms"] < 10_000
    assert allowed["gen_ai.tool.name"] == "track_behavior_event"
    assert limited["mcp_guard.decision"] == "deny"
    assert limited["mcp_guard.rule"] == "tools.track_behavior_event.limits[0]"
    assert (limited["mcp_guard.limit.counter"], limited["mcp_guard.limit.used"], limited["mcp_guard.limit.max"]) == (
        "events",
        1,
        1,
    )
    assert "mcp_guard.upstream.latency_ms" not in limited
    assert (denied["mcp_guard.decision"], denied["mcp_guard.rule"], denied["mcp_guard.kind"]) == (
        "deny",
        "default",
        "default_deny",
    )
    assert sorted(
        (a["mcp_guard.decision"], a["gen_ai.tool.name"], v) for a, v in receiver.metric_points("mcp_guard.calls")
    ) == [
        ("allow", "track_behavior_event", 1),
        ("deny", "refund", 1),
        ("deny", "track_behavior_event", 1),
    ]
    assert sorted((a["mcp_guard.rule"], v) for a, v in receiver.metric_points("mcp_guard.refusals")) == [
        ("default", 1),
        ("tools.track_behavior_event.limits[0]", 1),
    ]
    sent = b"".join(b for bodies in receiver.bodies.values() for b in bodies)
    assert ARG_VALUE.encode() not in sent


def test_otel_without_the_extra_says_what_to_install(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if not installed
    policy = write_policy(tmp_path, POLICY)
    done = cli("--otel", "--policy", str(policy), "--", PYTHON, str(DEMO_SERVER))
    assert done.returncode == 2
    assert "--otel (or $OTEL_EXPORTER_OTLP_ENDPOINT) needs the OpenTelemetry packages, which are not installed" in (
        done.stderr
    )
    assert "install the otel extra (in a checkout: pip install '.[otel]'; with pipx: pipx inject mcp-guard " in (
        done.stderr
    )


def test_a_guard_without_telemetry_or_recording_imports_none_of_it(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, POLICY)
    done = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "mcp_guard",
            "--policy",
            str(policy),
            "--",
            PYTHON,
            str(DEMO_SERVER),
        ],
        input=b"",
        capture_output=True,
        timeout=60,
        check=False,
        env=isolated_env(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    imported = done.stderr.decode()
    assert "mcp_guard.relay" in imported  # the guard did run
    for module in (
        "opentelemetry",
        "mcp_guard.telemetry",
        "mcp_guard.record",
        "mcp_guard.observe",
        "mcp_guard.watching",
    ):
        assert f" {module}" not in imported, module


@pytest.mark.anyio
async def test_result_findings_on_the_span_and_in_the_record(
    receiver: Receiver, guard_cmd: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    import random

    from results_fakes import crc32_token

    token = crc32_token(random.Random(22), "ghp_")
    policy = write_policy(
        tmp_path, {"version": "1", "default": "allow", "all_tools": {"results": {"redact": ["secrets"]}}}
    )
    record = tmp_path / "session.jsonl"
    server = ROOT / "tests" / "servers" / "leaky_server.py"
    argv = [*guard_cmd, "--policy", str(policy), "--record", str(record), "--", PYTHON, str(server)]
    otel_env = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=otel_env)
    async with Client(params, mode="legacy") as client:
        leaked = await client.call_tool("echo", {"text": f"a {token} and {token}"})
        clean = await client.call_tool("echo", {"text": "nothing here"})
    assert token not in str(leaked.content)
    assert not clean.is_error
    redacted, untouched = (attributes(s.attributes) for s in receiver.spans())
    # Two tokens, each in the text content and again in structuredContent.
    assert (redacted["mcp_guard.result.outcome"], redacted["mcp_guard.result.findings"]) == ("redact", 4)
    assert list(redacted["mcp_guard.result.detectors"].values) == [_string("secrets")]
    assert "mcp_guard.result.findings" not in untouched
    results = [r for r in map(json.loads, record.read_text().splitlines()) if r["type"] == "result"]
    assert [(r["tool"], r["outcome"], [(f["detector"], f["count"]) for f in r["findings"]]) for r in results] == [
        ("echo", "redact", [("secrets", 4)])
    ]
    sent = b"".join(b for bodies in receiver.bodies.values() for b in bodies)
    assert token.encode() not in sent
    assert token not in record.read_text()


def _string(value: str) -> Any:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    return AnyValue(string_value=value)
