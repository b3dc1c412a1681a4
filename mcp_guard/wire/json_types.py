"""The types of parsed JSON, in one place, so the wire, the session and the pipeline never need ``Any``.

``json.loads`` (and the strict reader built on its scanner) return ``Any``; each such call is a
boundary that says what it returns with these aliases, and the code past it narrows with
``isinstance`` where it reads a value. They are aliases only: nothing here runs per frame.

``JSON`` is what a parser builds (mutable ``dict`` and ``list``). ``JSONLike`` is what may be
written out (:func:`mcp_guard.wire.jsonrpc.encode`): read-only and covariant, so a
``list[JSONObject]`` (a batch of answers) or a ``Mapping`` passes without a copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

Scalar: TypeAlias = "bool | int | float | str | None"
JSON: TypeAlias = "bool | int | float | str | list[JSON] | dict[str, JSON] | None"
JSONObject: TypeAlias = "dict[str, JSON]"
JSONArray: TypeAlias = "list[JSON]"
JSONLike: TypeAlias = "bool | int | float | str | Sequence[JSONLike] | Mapping[str, JSONLike] | None"

# A JSON-RPC id as MCP allows it (string or integer, never a bool or float); None where a message has none.
RequestId: TypeAlias = "str | int"
