"""Red team: a resources/read answer acquires its resource's flow labels whatever its keys look like.

The guard told a read from a subscribe by the answer's shape (a "contents" member). Go's encoding/json (the Go
SDK client) reads "Contents" as contents: the data reached the agent, and no label was acquired, so the
flow rule that stops sending private data out let the next send through.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import PYTHON, Start, handshake, tool_call, write_policy

SERVER = r"""
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if "id" not in m:
        continue
    method = m["method"]
    if method == "initialize":
        result = {"protocolVersion": m["params"]["protocolVersion"], "serverInfo": {"name": "s", "version": "1"},
                  "capabilities": {"tools": {}, "resources": {"subscribe": True}}}
    elif method == "resources/read":
        result = {KEY: [{"uri": m["params"]["uri"], "text": "the PIN is 4242"}]}
    elif method == "tools/list":
        result = {"tools": [{"name": "send", "inputSchema": {"type": "object"}}]}
    else:
        result = {"content": [{"type": "text", "text": "sent"}]} if method == "tools/call" else {}
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": result}) + "\n")
    sys.stdout.flush()
"""


@pytest.mark.parametrize("key", ["contents", "Contents", "CONTENTS", "conten\u0074\u017f"])
def test_a_read_answer_in_any_spelling_acquires_the_resources_labels(
    guard_cmd: list[str], start: Start, tmp_path: Path, key: str
) -> None:
    server = tmp_path / "server.py"
    server.write_text(SERVER.replace("KEY", json.dumps(key)))
    policy = write_policy(
        tmp_path,
        {
            "version": "1",
            "default": "allow",
            "tools": {"send": {"labels": ["external"]}},
            "resources": {"rules": {"mail://*": {"labels": ["private"]}}},
            "flows": [{"from": ["private"], "to": ["external"], "action": "deny"}],
        },
    )
    session = start([*guard_cmd, "--policy", str(policy), "--", PYTHON, str(server)])
    handshake(session)
    read = session.request({"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "mail://inbox"}})
    assert read["result"] == {key: [{"uri": "mail://inbox", "text": "the PIN is 4242"}]}
    sent = session.request(tool_call(2, "send", {"body": "4242"}))
    assert sent["result"]["isError"] is True, sent
    assert "private" in sent["result"]["content"][0]["text"], sent
