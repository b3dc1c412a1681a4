"""The audit log: complete entries, no argument values, rotation, concurrent writers, and the commands reading it."""

from __future__ import annotations

import hashlib
import hmac
import json
import multiprocessing
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import PYTHON, RECORDER_SERVER, Cli, Start, guard_command, tool_call, write_policy

from mcp_guard.audit import (
    AuditLog,
    Event,
    arguments_sha256,
    canonical_arguments,
    log_files,
    server_identity,
    server_name_from,
)
from mcp_guard.canonical import sha256_hex

SECRET_CARD = "4242424242424242"
SECRET_MAIL = "jane.doe@example.com"


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The installation secret and state of these tests live under tmp_path, never in the user's own."""
    for var in ("XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for f in log_files(path) for line in f.read_text().splitlines()]


KEY = b"k" * 32


def keyed(arguments: dict[str, Any], key: bytes = KEY) -> str:
    return hmac.new(key, canonical_arguments(arguments), hashlib.sha256).hexdigest()


def event(tool: str = "t", **kw: Any) -> Event:
    base: dict[str, Any] = {
        "server": "srv",
        "client": None,
        "tool": tool,
        "decision": "allowed",
        "rule": None,
        "reason": None,
        "arguments": {"card": SECRET_CARD},
        "when": time.time(),
    }
    base.update(kw)
    return Event(**base)


def test_entries_are_complete_and_hold_no_values(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, warn=lambda m: None, key=KEY)
    log.record(event("pay", status="ok", duration_ms=12.3456, rule="tools.pay", client={"name": "c", "version": "1"}))
    log.close()
    [entry] = read_log(path)
    assert SECRET_CARD not in path.read_text()
    assert entry["tool"] == "pay" and entry["server"] == "srv" and entry["decision"] == "allowed"
    assert entry["client"] == {"name": "c", "version": "1"}
    assert (entry["status"], entry["duration_ms"], entry["rule"]) == ("ok", 12.346, "tools.pay")
    assert entry["arg_keys"] == ["card"]
    assert entry["args_hmac"] == keyed({"card": SECRET_CARD})
    assert arguments_sha256({"card": SECRET_CARD}) not in path.read_text()  # no unkeyed hash to guess against
    assert entry["ts"].endswith("+00:00")


def test_rotation_keeps_a_few_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, warn=lambda m: None, max_bytes=2000, keep=2)
    for i in range(200):
        log.record(event(f"tool_{i}"))
    log.close()
    files = log_files(path)
    # The newest file may not exist yet: rotation happens right after the write that fills it.
    assert [f.name for f in files][:2] == ["audit.jsonl.2", "audit.jsonl.1"]
    assert not (tmp_path / "audit.jsonl.3").exists()
    assert all(f.stat().st_size < 2000 + 400 for f in files)
    tools = [e["tool"] for e in read_log(path)]
    assert tools == sorted(tools, key=lambda t: int(t.split("_")[1]))  # oldest first, none reordered
    assert tools[-1] == "tool_199"


def _writer(path: str, name: str, count: int) -> None:
    log = AuditLog(Path(path), warn=lambda m: None, max_bytes=50_000, keep=50)
    for i in range(count):
        log.record(event(f"{name}-{i}", reason="x" * 200))
    log.close(timeout=30)


def test_concurrent_guards_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), f"w{n}", 400)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    lines = [line for f in log_files(path) for line in f.read_text().splitlines()]
    assert len(lines) == 1600
    tools = {json.loads(line)["tool"] for line in lines}  # every line parses: no torn or mixed lines
    assert len(tools) == 1600


def test_unwritable_log_warns_once_and_never_raises(tmp_path: Path) -> None:
    blocked = tmp_path / "audit.jsonl"
    blocked.mkdir()  # a directory where the file should be
    warnings: list[str] = []
    log = AuditLog(blocked, warn=warnings.append)
    for _ in range(5):
        log.record(event())
    log.close()
    assert len(warnings) == 1 and "cannot be written" in warnings[0] and "relaying goes on" in warnings[0]


@pytest.mark.parametrize(
    ("command", "name"),
    [
        (["npx", "-y", "@codespar/mcp-ap2"], "@codespar/mcp-ap2"),
        (["uvx", "mcp-server-git"], "mcp-server-git"),
        (["/usr/bin/python3", "/srv/demo_server.py"], "demo_server"),
        (["/opt/bin/my-server", "--x"], "my-server"),
        # Remote servers through the mcp-remote bridge: named after the URL, not the bridge.
        (["npx", "-y", "mcp-remote", "https://mcp.example.com/mcp", "--header", "A: b"], "mcp.example.com/mcp"),
        (["npx", "mcp-remote@0.15.1", "https://tok@mcp.linear.app/sse?x=1"], "mcp.linear.app/sse"),
        (["/usr/local/bin/mcp-remote", "http://127.0.0.1:8123/"], "127.0.0.1:8123"),
        (["npx", "-y", "mcp-remote"], "mcp-remote"),
    ],
)
def test_server_names(command: list[str], name: str) -> None:
    assert server_name_from(command) == name


def test_remote_credentials_stay_out_of_the_server_identity() -> None:
    """What approvals are bound to (and `approvals` shows) hashes mcp-remote's header values."""
    bridge = ["npx", "-y", "mcp-remote", "https://mcp.example.com/mcp", "--header"]
    one = server_identity([*bridge, "Authorization: Bearer s3cr3t-one"])
    two = server_identity([*bridge, "Authorization: Bearer s3cr3t-two"])
    assert "s3cr3t" not in one and "s3cr3t" not in two
    assert one != two  # still bound to the credential
    digest = sha256_hex("Bearer s3cr3t-one")[:16]
    assert json.loads(one) == [*bridge, f"Authorization: sha256:{digest}"]
    # Other commands are kept whole, --header included.
    assert json.loads(server_identity(["curl-mcp", "--header", "A: b"])) == ["curl-mcp", "--header", "A: b"]


def test_guard_session_is_audited_without_values(
    guard_cmd: list[str], start: Start, tmp_path: Path, env: dict[str, str]
) -> None:
    log_path = tmp_path / "audit.jsonl"
    record = tmp_path / "received.jsonl"
    policy = write_policy(
        tmp_path,
        {
            "version": "1",
            "default": "deny",
            "tools": {"allowed_tool": {}, "denied_tool": {"action": "deny", "reason": "no"}},
        },
    )
    session = start(
        [
            *guard_cmd,
            "--policy",
            str(policy),
            "--audit-log",
            str(log_path),
            "--name",
            "payments",
            "--",
            PYTHON,
            str(RECORDER_SERVER),
            str(record),
        ]
    )
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test-client", "version": "9"},
        },
    }
    session.request(init)
    secrets = {"card": SECRET_CARD, "email": SECRET_MAIL, "amount": 4711}
    session.request(tool_call(1, "allowed_tool", secrets))
    session.request(tool_call(2, "denied_tool", secrets))
    session.close_stdin()
    assert session.wait() == 0
    text = log_path.read_text()
    for value in (SECRET_CARD, SECRET_MAIL, "4711"):
        assert value not in text
    allowed, refused = sorted(read_log(log_path), key=lambda e: e["tool"])
    assert allowed["decision"] == "allowed" and allowed["status"] == "ok"
    assert isinstance(allowed["duration_ms"], float) and allowed["duration_ms"] >= 0
    assert refused["decision"] == "refused" and refused["rule"] == "tools.denied_tool.action"
    assert refused["reason"] == "no." and refused["status"] == "deny"
    for entry in (allowed, refused):
        assert entry["server"] == "payments"
        assert entry["client"] == {"name": "test-client", "version": "9"}
        assert entry["arg_keys"] == ["amount", "card", "email"]
        assert len(entry["args_hmac"]) == 64 and entry["args_hmac"] != arguments_sha256(secrets)
    # The fingerprint is keyed with the installation secret, and `logs --args` finds the calls by it.
    found = subprocess.run(
        [*guard_cmd, "logs", "--audit-log", str(log_path), "--json", "--args", json.dumps(secrets)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert sorted(json.loads(line)["tool"] for line in found.stdout.splitlines()) == ["allowed_tool", "denied_tool"]
    other = subprocess.run(
        [*guard_cmd, "logs", "--audit-log", str(log_path), "--json", "--args", '{"card": "1"}'],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert other.stdout == ""


def test_logs_and_stats_commands(tmp_path: Path, cli: Cli) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, warn=lambda m: None)
    for _ in range(3):
        log.record(event("pay", status="ok", duration_ms=2.0))
    log.record(event("pay", decision="refused", rule="tools.pay.limits[0]", reason="Rate limit", status="limit"))
    log.record(event("refund", server="other", decision="refused", rule="default", status="default_deny"))
    log.close()

    def guard(*args: str) -> subprocess.CompletedProcess[str]:  # in this process (conftest.cli)
        return cli(*args, "--audit-log", str(path))

    out = guard("logs", "--decision", "refused", "--json")
    assert out.returncode == 0
    assert [json.loads(line)["tool"] for line in out.stdout.splitlines()] == ["pay", "refund"]
    table = guard("logs", "--server", "srv", "-n", "2").stdout.splitlines()
    assert table[0].startswith("time") and len(table) == 3 and "tools.pay.limits[0]" in table[2]
    stats = json.loads(guard("stats", "--json").stdout)
    none = dict.fromkeys(("allowed", "approved", "refused", "declined", "monitored"), 0)
    assert stats == {
        "since": "1d",
        "audit_log": str(path),
        "decisions": [
            {"server": "other", "tool": "refund", "counts": {**none, "refused": 1}, "refused_by_rule": {"default": 1}},
            {
                "server": "srv",
                "tool": "pay",
                "counts": {**none, "allowed": 3, "refused": 1},
                "refused_by_rule": {"tools.pay.limits[0]": 1},
            },
        ],
        "counters": [],
        "labels": [],
    }
    assert guard("logs", "--since", "1h", "--tool", "nope").stderr.strip() == "mcp-guard: no decisions match"
    assert PYTHON


# --- lone surrogates and terminal tricks ----------------------------------------------------------------

TRICKY_TOOL = "pay\x1b[2J\u202e\U000e0041"
TRICKY_SERVER = "srv\x9b31m\x7f"
TRICKY_RULE = "tools.pay\x1b]0;owned\x07"


def test_lone_surrogates_anywhere_are_escaped_never_dropped(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    warnings: list[str] = []
    log = AuditLog(path, warn=warnings.append, key=KEY)
    arguments = {"card\ud800": "4242\udfff", "ok": 1}
    log.record(
        event(
            "pay\udc80",
            server="srv\ud801",
            client={"name": "client\udbff", "version": "1"},
            reason="why\ud800",
            arguments=arguments,
        )
    )
    log.record(event("next"))
    log.close()
    assert warnings == []
    raw = path.read_bytes()
    assert b"pay\\udc80" in raw and b"4242" not in raw
    first, second = read_log(path)
    assert (first["tool"], first["server"], first["client"]["name"]) == ("pay\udc80", "srv\ud801", "client\udbff")
    assert first["arg_keys"] == ["card\ud800", "ok"]
    assert first["args_hmac"] == keyed(arguments)
    assert second["tool"] == "next"


def _tricky_log(path: Path) -> None:
    log = AuditLog(path, warn=lambda m: None, key=KEY)
    log.record(event(TRICKY_TOOL, server=TRICKY_SERVER, decision="refused", rule=TRICKY_RULE, reason="r\x1b[1m"))
    log.record(event("t\ud800", server="s\udc00", status="ok\u2067", client={"name": "c\ud800"}))
    log.close()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*guard_command(), *args], capture_output=True, text=True, check=False, timeout=60)


def _no_tricks(text: str) -> None:
    for bad in ("\x1b", "\x9b", "\x7f", "\x07", "\u202e", "\u2067", "\U000e0041"):
        assert bad not in text, (bad, text)


def test_logs_and_stats_escape_what_they_print(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _tricky_log(path)
    logs = _run("logs", "--audit-log", str(path))
    assert logs.returncode == 0, logs.stderr
    _no_tricks(logs.stdout)
    assert "pay\\x1b[2J\\u202e\\U000e0041" in logs.stdout  # escaped, and never cut
    assert "srv\\x9b31m\\x7f" in logs.stdout and "tools.pay\\x1b]0;owned\\x07" in logs.stdout
    assert "r\\x1b[1m" in logs.stdout and "t\\ud800" in logs.stdout and "ok\\u2067" in logs.stdout

    stats = _run("stats", "--audit-log", str(path))
    assert stats.returncode == 0, stats.stderr
    _no_tricks(stats.stdout)
    assert "pay\\x1b[2J\\u202e\\U000e0041" in stats.stdout and "tools.pay\\x1b]0;owned\\x07 ×1" in stats.stdout
    assert "s\\udc00" in stats.stdout


def test_logs_json_stays_json_with_surrogates_and_tricks(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _tricky_log(path)
    out = _run("logs", "--audit-log", str(path), "--json")
    assert out.returncode == 0, out.stderr
    _no_tricks(out.stdout)
    tricky, lone = (json.loads(line) for line in out.stdout.splitlines())
    assert (tricky["tool"], tricky["server"], tricky["rule"]) == (TRICKY_TOOL, TRICKY_SERVER, TRICKY_RULE)
    assert (lone["tool"], lone["server"], lone["client"]) == ("t\ud800", "s\udc00", {"name": "c\ud800"})
    stats = _run("stats", "--audit-log", str(path), "--json")
    assert stats.returncode == 0, stats.stderr
    assert {(row["server"], row["tool"]) for row in json.loads(stats.stdout)["decisions"]} == {
        (TRICKY_SERVER, TRICKY_TOOL),
        ("s\udc00", "t\ud800"),
    }


# --- names are never cut; stats --json is what its help says (issue 18, trap 7) ----------------------------

LONG_SERVER = "@modelcontextprotocol/server-everything"
LONG_TOOL = "trigger-long-running-operation"
LONG_RULE = "tools.trigger-long-running-operation.limits[0]"


def _long_names_log(path: Path) -> None:
    log = AuditLog(path, warn=lambda m: None, key=KEY)
    log.record(event(LONG_TOOL, server=LONG_SERVER, status="ok", duration_ms=1234.5))
    log.record(event(LONG_TOOL, server=LONG_SERVER + "-fork", decision="refused", rule=LONG_RULE, status="limit"))
    log.record(event("echo", server="s", decision="refused", rule="default", reason="x" * 200, status="default_deny"))
    log.close()


def test_logs_never_cut_names_and_align_columns(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _long_names_log(path)
    out = _run("logs", "--audit-log", str(path))
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert len(rows) == 3
    # Every column starts where its header does, on every row, with the whole value in it.
    expected = [
        {"server": LONG_SERVER, "tool": LONG_TOOL, "decision": "allowed", "status": "ok"},
        {"server": f"{LONG_SERVER}-fork", "tool": LONG_TOOL, "decision": "refused", "rule": LONG_RULE},
        {"server": "s", "tool": "echo", "rule": "default", "reason": "x" * 200},
    ]
    for row, cells in zip(rows, expected, strict=True):
        for column, value in cells.items():
            at = header.index(column)
            assert row[at:].split("  ")[0] == value, (column, row)
    # The duration column is right-aligned under its header.
    assert header.index("duration") + len("duration") == rows[0].index("1234.5ms") + len("1234.5ms")


def test_stats_never_cut_names_and_align_columns(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _long_names_log(path)
    out = _run("stats", "--audit-log", str(path))
    assert out.returncode == 0, out.stderr
    _, header, *rows = out.stdout.splitlines()
    assert len(rows) == 3
    assert rows[0].startswith(f"{LONG_SERVER}       {LONG_TOOL}  ")
    assert rows[1].startswith(f"{LONG_SERVER}-fork  {LONG_TOOL}  ")
    assert rows[1].endswith(f"  {LONG_RULE} ×1")
    end_of_refused = header.index("refused") + len("refused")
    assert [row[end_of_refused - 1] for row in rows] == ["0", "1", "1"]


def test_stats_json_is_what_its_help_says(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _long_names_log(path)
    help_text = " ".join(_run("stats", "--help").stdout.split())
    assert '--json print one JSON object for scripts: {"since", "audit_log", "decisions": [{"server", "tool",' in (
        help_text
    )
    document = json.loads(_run("stats", "--audit-log", str(path), "--json", "--since", "1h").stdout)
    assert list(document) == ["since", "audit_log", "decisions", "counters", "labels"]
    assert (document["since"], document["audit_log"], document["counters"], document["labels"]) == (
        "1h",
        str(path),
        [],
        [],
    )
    for row in document["decisions"]:
        assert list(row) == ["server", "tool", "counts", "refused_by_rule"]
        assert list(row["counts"]) == ["allowed", "approved", "refused", "declined", "monitored"]
    assert [row["server"] for row in document["decisions"]] == [LONG_SERVER, f"{LONG_SERVER}-fork", "s"]
    logs_help = " ".join(_run("logs", "--help").stdout.split())
    assert "--json print each decision as the audit log has it: one JSON object per line" in logs_help
    for line in _run("logs", "--audit-log", str(path), "--json").stdout.splitlines():
        assert isinstance(json.loads(line), dict)
