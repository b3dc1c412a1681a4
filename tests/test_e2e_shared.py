"""Shared counters through the installed guard: several guards, one SQLite store, exact totals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import PYTHON, RECORDER_SERVER, Start, tool_call, write_policy

VIOLATION = "mcp-guard/violation"


def policy(scope: str, **extra: Any) -> dict[str, Any]:
    return {
        "version": "1",
        "default": "deny",
        **extra,
        "tools": {"pay": {"limits": [{"counter": "pays", "window": "hour", "max": 5, "scope": scope}]}},
    }


def test_guards_sharing_a_store_admit_exactly_max_in_total(guard_cmd: list[str], start: Start, tmp_path: Path) -> None:
    state = f"sqlite:///{tmp_path / 'counters.db'}"
    path = write_policy(tmp_path, policy("server"))
    guards = [
        start(
            [
                *guard_cmd,
                "--name",
                "payments",
                "--state",
                state,
                "--policy",
                str(path),
                "--",
                PYTHON,
                str(RECORDER_SERVER),
                str(tmp_path / f"received-{n}.jsonl"),
            ]
        )
        for n in range(3)
    ]
    admitted = 0
    for round_ in range(4):
        for n, guard in enumerate(guards):
            answer = guard.request(tool_call(f"{n}-{round_}", "pay"))
            if VIOLATION not in answer["result"].get("_meta", {}):
                admitted += 1
            else:
                meta = answer["result"]["_meta"][VIOLATION]
                assert (meta["kind"], meta["max"], meta["used"]) == ("limit", 5, 5)
    assert admitted == 5
    received = sum(
        1
        for n in range(3)
        if (tmp_path / f"received-{n}.jsonl").exists()
        for line in (tmp_path / f"received-{n}.jsonl").read_text().splitlines()
        if json.loads(line).get("method") == "tools/call"
    )
    assert received == 5
    for guard in guards:
        guard.close_stdin()
        assert guard.wait() == 0
    # The CLI reads how full the shared counter is right now, from the same store.
    import subprocess

    from conftest import guard_command, isolated_env

    levels = subprocess.run(
        [
            *guard_command(),
            "stats",
            "--json",
            "--audit-log",
            str(tmp_path / "none.jsonl"),
            "--policy",
            str(path),
            "--state",
            state,
            "--name",
            "payments",
        ],
        capture_output=True,
        text=True,
        env=isolated_env(tmp_path),
        check=False,
        timeout=60,
    )
    assert levels.returncode == 0, levels.stderr
    assert json.loads(levels.stdout)["counters"] == [
        {
            "rule": "tools.pay.limits[0]",
            "counter": "pays",
            "scope": "server",
            "used": 5.0,
            "max": 5.0,
            "window_s": 3600.0,
        }
    ]


def test_unreachable_store_fails_closed_unless_the_policy_allows(
    guard_cmd: list[str], start: Start, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store's directory should be")
    state = f"sqlite:///{blocker / 'counters.db'}"
    for on_error, refused in (("deny", True), ("allow", False)):
        path = write_policy(tmp_path, policy("global", on_store_error=on_error), name=f"{on_error}.json")
        guard = start(
            [
                *guard_cmd,
                "--state",
                state,
                "--policy",
                str(path),
                "--",
                PYTHON,
                str(RECORDER_SERVER),
                str(tmp_path / "received.jsonl"),
            ]
        )
        answer = guard.request(tool_call(1, "pay"))
        if refused:
            meta = answer["result"]["_meta"][VIOLATION]
            assert meta["kind"] == "store_unavailable"
            assert "is unavailable" in meta["reason"] and "fail closed" in meta["reason"]
        else:
            assert answer["result"] == {"content": [], "isError": False}
        guard.close_stdin()
        code, stderr = guard.finish()
        assert code == 0 and "the limit store sqlite:///" in stderr and "is unavailable" in stderr


def test_memory_store_warns_that_shared_scopes_stay_local(guard_cmd: list[str], start: Start, tmp_path: Path) -> None:
    path = write_policy(tmp_path, policy("server"))
    guard = start(
        [*guard_cmd, "--policy", str(path), "--", PYTHON, str(RECORDER_SERVER), str(tmp_path / "received.jsonl")]
    )
    guard.close_stdin()
    code, stderr = guard.finish()
    assert code == 0
    assert "limits with scope 'server' are counted in this process only" in stderr
