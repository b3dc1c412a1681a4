"""What a session tracks about requests in flight: shared by the session, the pipeline and the approval desk."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from mcp_guard.limits.base import Receipt
from mcp_guard.wire.json_types import JSON, JSONObject, RequestId


@dataclass(slots=True)
class Call:
    """A relayed tools/call whose outcome the audit log (and a refund) is waiting for."""

    tool: str
    rule: str | None
    reason: str | None
    decision: str
    arguments: JSONObject
    when: float
    started: float
    refund: Receipt | None = None  # what to give back if the server answers with an error
    modern_approval: bool = False  # approved in a 2026-07-28 round: nest the server's own input state
    cancelled: bool = False  # the client gave up on it: never refunded, whatever the server answers
    inspected: JSONObject | None = None  # what the result checks did, for the audit record (never values)
    labels: frozenset[str] = frozenset()  # added by result stages (findings), acquired with the tool's own
    kind: str = "tool"  # tool, prompt or resource (``tool`` then holds the prompt's name or the URI)
    rounds: int = 1  # 2026-07-28 input rounds: the retries that carried on this one call (see rounds.py)
    modern: bool = False  # a 2026-07-28 request: its answer may open an input round, so it is always read
    subscribe: bool = False  # a resources/subscribe: its answer puts no data in the agent's context

    @property
    def subject(self) -> str:
        """How approvals name it: the tool's name, or ``prompt:NAME`` / ``resource:URI`` (as CallIn.for_approval)."""
        return self.tool if self.kind == "tool" else f"{self.kind}:{self.tool}"


@dataclass(slots=True)
class InFlight:
    method: str | None
    ident: RequestId | None
    call: Call | None = None
    result_of: str | None = None  # tasks/result: the tool whose task this is (its result is inspected)


@dataclass(slots=True)
class Waiter:
    """Something a worker waits for: the answer to a request the guard sent, or a held call's end.

    ``cancelled`` is set when the client gave up on the held call or the guard is stopping.
    """

    event: threading.Event = field(default_factory=threading.Event)
    answer: JSON = None  # the answering message as parsed; None until it comes
    cancelled: bool = False

    def settle(self, answer: JSON) -> None:
        self.answer = answer
        self.event.set()

    def cancel(self) -> None:
        self.cancelled = True
        self.event.set()
