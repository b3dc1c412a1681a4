"""``--record FILE``: a real guard session, recorded, read back (contents, mode, redaction)."""

from __future__ import annotations

import json
import os
import random
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO_SERVER, PYTHON, Cli, Start, converse, handshake, initialize, tool_call, write_policy
from mcp import Client, StdioServerParameters
from results_fakes import crc32_token

pytestmark = [pytest.mark.timeout(60)]

POLICY: dict[str, Any] = {
    "version": "1",
    "default": "deny",
    "tools": {
        "track_behavior_event": {
            "limits": [{"counter": "events", "window": "minute", "max": 3, "scope": "grant"}],
        },
        "get_order_status": {},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def wait_for_records(path: Path, predicate: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        records = read_records(path) if path.exists() else []
        if predicate(records) or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


async def record_demo_session(guard_cmd: list[str], env: dict[str, str], tmp_path: Path, secret: str) -> Path:
    """A guarded demo session through the SDK's client: 4 events (the 4th over the limit), a read, a charge."""
    policy = write_policy(tmp_path, POLICY)
    record = tmp_path / "session.jsonl"
    argv = [*guard_cmd, "--policy", str(policy), "--record", str(record), "--", PYTHON, str(DEMO_SERVER)]
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(env))
    async with Client(params, mode="legacy") as client:
        first = await client.call_tool(
            "track_behavior_event", {"user_id": "u1", "event": "login", "properties": {"token": secret}}
        )
        assert not first.is_error
        for _ in range(2):
            assert not (await client.call_tool("track_behavior_event", {"user_id": "u1", "event": "view"})).is_error
        assert (await client.call_tool("track_behavior_event", {"user_id": "u1", "event": "view"})).is_error
        assert not (await client.call_tool("get_order_status", {"order_id": "o1"})).is_error
        assert (await client.call_tool("create_charge", {"amount": 5, "currency": "EUR", "customer_id": "c1"})).is_error
    return record


@pytest.mark.anyio
async def test_a_session_is_recorded_with_frames_verdicts_times_and_no_secret(
    guard_cmd: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    secret = crc32_token(random.Random(7), "ghp_")
    before = time.time()
    record = await record_demo_session(guard_cmd, env, tmp_path, secret)

    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    text = record.read_text(encoding="utf-8")
    assert secret not in text
    assert "[redacted: secrets/" in text
    records = read_records(record)
    header = records[0]
    assert header["type"] == "session"
    assert header["v"] == 1
    assert header["server"] == "demo_server"
    assert header["policy"] == str((tmp_path / "policy.json").resolve())
    assert len(header["policy_sha256"]) == 64

    frames = [r for r in records if r["type"] == "frame"]
    assert {r["dir"] for r in frames} == {"c2s", "s2c", "g2c"}
    ats = [r["at"] for r in records[1:]]
    assert ats == sorted(ats)
    assert all(before - 1 < r["t"] < time.time() + 1 for r in records)
    calls = [r["frame"] for r in frames if r["dir"] == "c2s" and r["frame"].get("method") == "tools/call"]
    assert [c["params"]["name"] for c in calls] == [
        *["track_behavior_event"] * 4,
        "get_order_status",
        "create_charge",
    ]
    assert calls[0]["params"]["arguments"]["properties"]["token"].startswith("[redacted: secrets/")
    assert any(r["dir"] == "c2s" and r["frame"].get("method") == "initialize" for r in frames)
    # The refusals are the guard's own answers; the allowed calls' answers came from the server.
    own = {r["frame"]["id"]: r["frame"] for r in frames if r["dir"] == "g2c" and "id" in r["frame"]}
    server = {r["frame"]["id"] for r in frames if r["dir"] == "s2c" and "id" in r["frame"]}
    ids = [c["id"] for c in calls]
    assert set(own) == {ids[3], ids[5]}
    assert {ids[0], ids[1], ids[2], ids[4]} <= server
    assert own[ids[3]]["result"]["_meta"]["mcp-guard/violation"]["rule"] == "tools.track_behavior_event.limits[0]"

    verdicts = [r for r in records if r["type"] == "verdict"]
    assert [(v["id"], v["tool"], v["decision"], v["rule"]) for v in verdicts] == [
        (ids[0], "track_behavior_event", "allowed", "tools.track_behavior_event"),
        (ids[1], "track_behavior_event", "allowed", "tools.track_behavior_event"),
        (ids[2], "track_behavior_event", "allowed", "tools.track_behavior_event"),
        (ids[3], "track_behavior_event", "refused", "tools.track_behavior_event.limits[0]"),
        (ids[4], "get_order_status", "allowed", "tools.get_order_status"),
        (ids[5], "create_charge", "refused", "default"),
    ]
    assert verdicts[3]["details"]["used"] == 3
    assert "arguments" not in json.dumps(verdicts)


def test_unparsed_frames_are_recorded_as_text(start: Start, guard_cmd: list[str], tmp_path: Path) -> None:
    policy = write_policy(tmp_path, POLICY)
    record = tmp_path / "raw.jsonl"
    session = start([*guard_cmd, "--policy", str(policy), "--record", str(record), "--", PYTHON, str(DEMO_SERVER)])
    secret = crc32_token(random.Random(8), "ghp_")
    handshake(session)
    session.send(f"this is not json {secret}\n".encode())
    session.send(tool_call(5, "get_order_status", {"order_id": "o1"}))
    session.read_until_response(5)
    assert session.finish(15)[0] == 0
    records = read_records(record)
    unparsed = [r for r in records if r.get("unparsed")]
    assert len(unparsed) == 1
    assert unparsed[0]["dir"] == "c2s"
    assert unparsed[0]["text"].startswith("this is not json [redacted: secrets/")
    assert secret not in record.read_text(encoding="utf-8")
    # The guard's parse-error answer is its own frame.
    assert any(r.get("dir") == "g2c" and r["frame"].get("error", {}).get("code") == -32700 for r in records)


def test_record_from_the_policy_is_relative_to_it(guard_cmd: list[str], env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "recs").mkdir()
    policy = write_policy(tmp_path, {**POLICY, "record": "recs/from-policy.jsonl"})
    argv = [*guard_cmd, "--policy", str(policy), "--", PYTHON, str(DEMO_SERVER)]
    converse(argv, [initialize(0), INITIALIZED], env)
    records = read_records(tmp_path / "recs" / "from-policy.jsonl")
    assert [r["type"] for r in records[:2]] == ["session", "frame"]


def test_a_record_file_others_can_read_is_refused(start: Start, guard_cmd: list[str], tmp_path: Path) -> None:
    policy = write_policy(tmp_path, POLICY)
    record = tmp_path / "open.jsonl"
    record.write_text("")
    os.chmod(record, 0o644)
    session = start([*guard_cmd, "--policy", str(policy), "--record", str(record), "--", PYTHON, str(DEMO_SERVER)])
    code, stderr = session.finish(15)
    assert code == 2
    assert f"the record file {record} can be read or written by others (mode 0644)" in stderr
    assert record.read_text() == ""


def test_the_record_file_is_one_of_the_guards_own_files(tmp_path: Path, cli: Cli) -> None:
    """A call naming the recording (whole sessions) is refused like one naming the audit log."""
    policy = write_policy(tmp_path, {"version": "1", "default": "allow", "record": "session.jsonl"})
    done = cli("explain", str(policy), "read_file", json.dumps({"path": str(tmp_path / "session.jsonl")}), "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    assert json.loads(done.stdout)["rule"] == "protect_own_files"
    other = cli("explain", str(policy), "read_file", json.dumps({"path": str(tmp_path / "notes.txt")}))
    assert other.returncode == 0, other.stdout + other.stderr


def test_without_the_detectors_nothing_is_recorded_unredacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp_guard import record as recording

    def broken(*_: object) -> None:
        raise ImportError("no re2 here")

    monkeypatch.setattr(recording, "Redactor", broken)
    said: list[str] = []
    recorder = recording.Recorder(tmp_path / "r.jsonl", said.append, {"server": "s"})
    for _ in range(3):
        recorder.client_line(b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n')
    recorder.close()
    assert (tmp_path / "r.jsonl").read_text() == ""
    assert said == ["record: the secret detectors cannot be used (ImportError('no re2 here')); nothing is recorded"]
