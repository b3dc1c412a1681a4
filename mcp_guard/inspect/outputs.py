"""``validate_output``: a tool result's ``structuredContent`` against the tool's ``outputSchema``.

The schema is the pinned one where the lock file pins the tool, else the one the server listed
in this session. The judge is the same ``jsonschema``-backed validator the guard uses for
arguments; its messages name the path (``structuredContent.rows[2].id: ...``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcp_guard.inspect.plan import ResultPlan
    from mcp_guard.integrity.guard import ToolIntegrity
    from mcp_guard.integrity.validate import ArgumentValidator

_ROOT = "structuredContent"
_validator: ArgumentValidator | None = None
_validator_lock = threading.Lock()


def output_schema(tool: str, integrity: ToolIntegrity | None, plan: ResultPlan | None) -> object:
    """The tool's ``outputSchema`` (pinned, else listed in this session), or None when it has none or the
    guard has not seen its definition."""
    lock = integrity.settings.lock if integrity is not None else None
    if lock is not None:
        pinned = lock.tools.get(tool)
        if pinned is not None:
            schema: object = pinned.definition.get("outputSchema")
            return schema if isinstance(schema, Mapping) else None
    if plan is None:
        return None
    _, listed = plan.listed_output_schema(tool)
    return listed if isinstance(listed, dict) else None  # the same object each time: compiled once


def check_output(schema: object, result: Mapping[str, object]) -> str | None:
    """Why ``result`` does not satisfy ``schema``, or None. A tool that declares an ``outputSchema`` must
    return ``structuredContent`` (as the MCP specification says)."""
    global _validator
    if "structuredContent" not in result:
        return f"{_ROOT}: missing (the tool declares an outputSchema, so its results must carry structuredContent)"
    with _validator_lock:
        if _validator is None:
            from mcp_guard.integrity.validate import ArgumentValidator

            _validator = ArgumentValidator()
        problem = _validator.check(schema, result["structuredContent"])  # not thread-safe: under the lock
    if problem is None:
        return None
    # The validator speaks of arguments and the inputSchema; here it is the structured output.
    if problem.startswith("arguments"):
        problem = _ROOT + problem[len("arguments") :]
    return problem.replace("inputSchema", "outputSchema")
