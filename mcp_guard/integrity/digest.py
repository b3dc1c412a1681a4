"""Digests of tool definitions: the SHA-256 of each whole definition, as the server sent it.

A tool's behaviour is promised by everything the server says about it: its description
(which the model reads as instructions), its input and output schemas, its annotations,
icons, ``_meta`` and any field a later protocol revision adds. :func:`tool_digest` hashes all
of it, exactly as sent, so any change to any of it, down to one character, shows.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from mcp_guard.canonical import canonical_json

_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*\Z")


def tool_digest(tool: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the whole tool definition, every field included, as the server sent it."""
    return hashlib.sha256(canonical_json(tool)).hexdigest()


def tool_name(tool: object) -> str | None:
    """The tool's ``name`` if it is a JSON object with a string name, else None."""
    if isinstance(tool, Mapping):
        name = tool.get("name")
        if isinstance(name, str):
            return name
    return None


def json_path(parts: Iterable[str | int], root: str = "") -> str:
    """``root.key[0]["odd key"]``: a readable path into a JSON value."""
    out = root
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out
