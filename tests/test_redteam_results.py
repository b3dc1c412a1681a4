"""A hostile server against the result side: answers shaped to get a secret past a ``redact`` rule.

Each test is one attack that worked before its fix (see the commit that added it).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from results_fakes import crc32_token
from test_session import Wire, call

TOKEN = crc32_token(random.Random(7), "ghp_")
REDACTED = "t=[redacted: secrets/github_token]"
REDACT = {"version": "1", "default": "allow", "all_tools": {"results": {"redact": ["secrets"]}}}


def text(value: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": value}], "isError": False}


def leaked(wire: Wire) -> bool:
    return TOKEN in json.dumps(wire.client)


def test_a_second_id_key_cannot_address_a_checked_call_through_an_unchecked_answer(tmp_path: Path) -> None:
    """``{"id":1, "result":…, "id":2}``: the guard took it for the answer to ping 1 (not checked); the
    client's reader (last key wins) for the answer to call 2, secret included."""
    wire = Wire(tmp_path, REDACT)
    wire.send({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    wire.send(call(2, "echo"))
    body = json.dumps(text(f"t={TOKEN}"))
    for second in ('"id":2', '"ID":2', '"\\u0069d":2'):
        wire.answer(f'{{"jsonrpc":"2.0","id":1,"result":{body},{second}}}\n'.encode())
    assert not leaked(wire)
    assert all(m.get("id") == 1 and "error" in m for m in wire.client)
