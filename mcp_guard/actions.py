"""What the session asks the relay to do. The session decides; only the relay writes or starts threads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ToClient:
    frame: bytes


@dataclass(frozen=True, slots=True)
class ToUpstream:
    frame: bytes


Emit = Callable[[Sequence["Action"]], None]


@dataclass(frozen=True, slots=True)
class Job:
    """Work that must wait (for a person, or for the server's tool list), run on the relay's bounded pool.

    ``run`` may block; it sends what it decides through ``emit``. ``overflow`` says what to do instead
    when every worker is busy (a clear refusal), so no input can start an unbounded number of threads.
    """

    name: str
    run: Callable[[Emit], None]
    overflow: Callable[[], Sequence[Action]]


@dataclass(frozen=True, slots=True)
class Start:
    job: Job


Action = ToClient | ToUpstream | Start
