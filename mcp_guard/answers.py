"""What the session does with a server's answer that the policy has ``results`` rules for.

Cheap first: :meth:`ResultCheck.may_match` looks at the raw frame (one RE2 pass of short
triggers); only a frame that could hold a finding (or whose ``structuredContent`` is checked
against an ``outputSchema``) is parsed, strictly, and handed to the pipeline's result stages.
An answer that comes back unchanged is forwarded as the server's own bytes. An answer the guard
cannot read strictly is not passed on (the client might read it as something the guard did not
check).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcp_guard.wire.json_types import JSON, JSONObject
from mcp_guard.wire.jsonrpc import SERVER_ERROR, FrameError, error_frame, strict_loads, utf8_frame

if TYPE_CHECKING:
    from mcp_guard.inspect.plan import ResultCheck
    from mcp_guard.pipeline import Pipeline, ResultOutcome, Snapshot

# Methods whose results reach the model and carry text the detectors read.
INSPECTED_METHODS = frozenset({"tools/call", "tasks/result", "resources/read", "prompts/get"})


@dataclass(slots=True)
class Inspected:
    """The frame to send, and what the result stages made of it (None: not looked at, or nothing found)."""

    line: bytes
    outcome: ResultOutcome | None = None
    task: str | None = None  # a task-augmented call's taskId (its result is fetched later)


def inspect_answer(
    line: bytes, ident: JSON, method: str, tool: str | None, check: ResultCheck, pipeline: Pipeline, snap: Snapshot
) -> Inspected:
    if not check.may_match(line):
        # A task-augmented call is answered with a small CreateTaskResult: its taskId says which later
        # tasks/result answer is this tool's result.
        # (Any size: padding must not hide it; a small frame may spell the key with escapes.)
        if method == "tools/call" and (b'"taskId"' in line or (len(line) < _TASK_FRAME_LIMIT and b"\\u" in line)):
            return Inspected(line, task=_task_of(line))
        return Inspected(line)
    from mcp_guard.pipeline import ResultIn

    try:
        message = strict_loads(line)
    except FrameError as exc:
        return Inspected(
            error_frame(
                ident,
                SERVER_ERROR,
                f"mcp-guard: the server's answer could not be read strictly ({exc.message}), and the policy checks "
                "what this request returns, so it was not passed on",
            )
        )
    result = message.get("result") if isinstance(message, dict) else None
    if not isinstance(message, dict) or not isinstance(result, dict):
        return Inspected(line)  # an error answer: nothing of the tool's reaches the model
    task = _task_id(result)
    if task is not None and result.keys() <= {"task", "_meta"}:
        return Inspected(line, task=task)  # a CreateTaskResult: the tool's result comes with tasks/result
    kind = result.get("resultType")
    if kind == "input_required":
        # A 2026-07-28 input round, not the result yet. Only that kind: a client may take any other
        # (a misspelt "Complete", a kind it does not know) for the result.
        return Inspected(line)
    outcome = pipeline.judge_result(
        ResultIn("tools/call" if method == "tasks/result" else method, tool, result, check, kind is not None, ident),
        snap,
    )
    if outcome.outcome in ("forward", "warn"):
        return Inspected(line, outcome, task)
    if outcome.result is not None:
        message["result"] = outcome.result
        del result  # the server's own result: not needed past here (a large one is freed before encoding)
        return Inspected(_encode_releasing(message, outcome), outcome, task)
    text = outcome.message or "mcp-guard withheld this result"
    return Inspected(error_frame(ident, SERVER_ERROR, text), outcome, task)


_TASK_FRAME_LIMIT = 8192

# A key that a JSON reader may take for "id": any case (Go's encoding/json folds it), any escapes.
_ID_KEY = re.compile(rb'"(?:[iI]|\\u00[46]9)(?:[dD]|\\u00[46]4)"[ \t\r\n]*:')


def unreadable_routing(line: bytes) -> str | None:
    """Why this answer cannot be routed the way the client will (a second "id" key, which a reader
    that lets the last key win takes for another request's answer), or None. Only a frame with two
    keys that could be "id" is parsed."""
    keys = _ID_KEY.finditer(line)
    if next(keys, None) is None or next(keys, None) is None:
        return None
    try:
        strict_loads(line)
    except FrameError as exc:
        return exc.message
    return None


def _encode_releasing(message: JSONObject, outcome: ResultOutcome) -> bytes:
    """The frame for ``message``, dropping the parsed copy as soon as the text exists: a 20 MB redacted
    result then peaks at two copies of its size (text, then bytes), not four."""
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    message.clear()
    outcome.result = None
    data = utf8_frame(text)
    del text
    return data + b"\n"


def _task_of(line: bytes) -> str | None:
    try:
        message = strict_loads(line)
    except FrameError:
        return None
    result = message.get("result") if isinstance(message, dict) else None
    return _task_id(result) if isinstance(result, dict) else None


def _task_id(result: JSONObject) -> str | None:
    """The taskId of a ``CreateTaskResult`` (a call made with ``params.task``), else None."""
    task = result.get("task")
    if not isinstance(task, dict):
        return None
    ident = task.get("taskId")
    return ident if isinstance(ident, str) else None


def audit_record(outcome: ResultOutcome) -> JSONObject:
    out: JSONObject = {"outcome": outcome.outcome, "findings": findings_json(outcome.findings)}
    if outcome.labels:
        labels: list[JSON] = []
        labels.extend(sorted(outcome.labels))
        out["labels"] = labels
    if outcome.message is not None and not outcome.findings:
        out["reason"] = outcome.message
    return out


def findings_json(records: list[dict[str, object]]) -> list[JSON]:
    """The detectors' audit records (detector, kind, count, paths, action) as JSON."""
    findings: list[JSON] = []
    for record in records:
        entry: JSONObject = {}
        for key, value in record.items():
            if isinstance(value, (str, int)):
                entry[key] = value
            elif isinstance(value, list):
                paths: list[JSON] = [str(v) for v in value]
                entry[key] = paths
        findings.append(entry)
    return findings
