"""What watches a running guard, built from its configuration: the recorder and OpenTelemetry.

Imported only when one of them is on (``--record``, ``record:``, ``--otel``, an OTLP endpoint in the
environment), so a guard without them imports and runs nothing of this.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mcp_guard.observe import ObservedPipeline, Tap, Taps, VerdictObserver

if TYPE_CHECKING:
    from mcp_guard.config import GuardConfig
    from mcp_guard.session import Session


class WatchError(Exception):
    """A watcher cannot start (a record file that cannot be used, telemetry without its extra)."""


@dataclass
class Watchers:
    tap: Tap | None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in self.closers:
            with contextlib.suppress(Exception):  # a watcher failing at exit must not hide the guard's status
                close()
        self.closers.clear()


def watch(config: GuardConfig, session: Session, warn: Callable[[str], None]) -> Watchers:
    """Start the configured watchers and hook them into ``session``. Raises :class:`WatchError`."""
    taps: list[Tap] = []
    observers: list[VerdictObserver] = []
    closers: list[Callable[[], None]] = []
    if config.otel:
        from mcp_guard.telemetry import Telemetry, TelemetryUnavailable

        try:
            telemetry = Telemetry.start(config.server_name, warn)
        except TelemetryUnavailable as exc:
            raise WatchError(str(exc)) from None
        taps.append(telemetry)
        observers.append(telemetry)
        closers.append(telemetry.close)
    if config.record is not None:
        from mcp_guard import __version__
        from mcp_guard.record import Recorder, RecordError

        header = {
            "server": config.server_name,
            "pid": os.getpid(),
            "policy": str(config.policy_path.resolve()) if config.policy_path is not None else None,
            "policy_sha256": config.policy_digest,
            "mcp_guard": __version__,
        }
        try:
            recorder = Recorder(config.record, warn, header)
        except RecordError as exc:
            for close in closers:
                close()
            raise WatchError(str(exc)) from None
        taps.append(recorder)
        observers.append(recorder)
        closers.append(recorder.close)
    if observers:
        session.pipeline = ObservedPipeline(session.pipeline, observers)
    tap: Tap | None = taps[0] if len(taps) == 1 else Taps(taps) if taps else None
    return Watchers(tap, closers)
