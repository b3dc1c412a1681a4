"""OpenTelemetry for the guard (placeholder until the exporter lands)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mcp_guard.actions import Action
from mcp_guard.pipeline import CallIn, Verdict


class TelemetryUnavailable(Exception):
    """Telemetry was asked for but cannot run."""


class Telemetry:
    @classmethod
    def start(cls, server: str, warn: Callable[[str], None]) -> Telemetry:
        raise TelemetryUnavailable("--otel: not implemented yet")

    def client_line(self, line: bytes) -> None: ...
    def client_actions(self, line: bytes, actions: Sequence[Action]) -> None: ...
    def upstream_line(self, line: bytes, actions: Sequence[Action]) -> None: ...
    def emitted(self, actions: Sequence[Action]) -> None: ...
    def verdict(self, call: CallIn, verdict: Verdict, after_approval: bool) -> None: ...
    def close(self) -> None: ...
