"""Tool integrity through the installed guard: pins, argument validation, the guard's own files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import EVERYTHING_SERVER, PYTHON, RECORDER_SERVER, Start, handshake, tool_call, write_policy

VIOLATION = "mcp-guard/violation"


@pytest.fixture(scope="module")
def lock_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lock pinned against the everything server with three extra tools."""
    from conftest import isolated_env

    from mcp_guard import cli

    folder = tmp_path_factory.mktemp("pins")
    lock = folder / "server.lock.json"
    # In this process (tests/test_pin_command.py runs pin as a subprocess): the server is started and
    # listed all the same, without a second Python start-up and import of the MCP SDK.
    with pytest.MonkeyPatch.context() as patch:
        for name, value in isolated_env(folder).items():
            patch.setenv(name, value)
        code = cli.main(["pin", "-o", str(lock), "--", PYTHON, str(EVERYTHING_SERVER), "--tools", "3"])
    assert code == 0
    return lock


def listing(session: Any, ident: int = 90) -> list[str]:
    answer = session.request({"jsonrpc": "2.0", "id": ident, "method": "tools/list"})
    return [tool["name"] for tool in answer["result"]["tools"]]


def violation(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["result"]["isError"] is True, answer
    meta: dict[str, Any] = answer["result"]["_meta"][VIOLATION]
    return meta


def guarded(start: Start, guard_cmd: list[str], tmp_path: Path, policy: dict[str, Any], *server: str) -> Any:
    path = write_policy(tmp_path, policy)
    return start([*guard_cmd, "--policy", str(path), "--", PYTHON, str(EVERYTHING_SERVER), *server])


ALLOW = {"version": "1", "default": "allow"}


def test_new_tool_is_hidden_and_refused_under_enforce(
    guard_cmd: list[str], start: Start, tmp_path: Path, lock_file: Path
) -> None:
    session = guarded(start, guard_cmd, tmp_path, {**ALLOW, "pins": {"file": str(lock_file)}}, "--tools", "4")
    handshake(session)
    names = listing(session)
    assert "tool_2" in names and "tool_3" not in names
    refused = violation(session.request(tool_call(1, "tool_3")))
    assert (refused["kind"], refused["rule"]) == ("pin", "pins")
    assert "echo" in names and session.request(tool_call(2, "echo", {"text": "hi"}))["result"]["isError"] is False
    session.close_stdin()
    code, stderr = session.finish()
    assert code == 0 and "tool pin:" in stderr and "tool_3" in stderr


def test_changed_description_is_caught_before_any_listing(
    guard_cmd: list[str], start: Start, tmp_path: Path, lock_file: Path
) -> None:
    # The lock says echo's description was something else: as if the server changed it after pinning.
    lock = json.loads(lock_file.read_text())
    lock["tools"]["echo"]["definition"]["description"] = "Return the text unchanged (reviewed)."
    from mcp_guard.integrity.pins import tool_digest

    lock["tools"]["echo"]["sha256"] = tool_digest(lock["tools"]["echo"]["definition"])
    edited = tmp_path / "edited.lock.json"
    edited.write_text(json.dumps(lock))
    session = guarded(start, guard_cmd, tmp_path, {**ALLOW, "pins": {"file": str(edited)}})
    handshake(session)
    # No tools/list from the client: the guard reads the listing itself (its own ids) and judges the call.
    refused = violation(session.request(tool_call(1, "echo", {"text": "hi"})))
    assert refused["kind"] == "pin"
    assert refused["changes"] == [
        'description changed: "Return the text unchanged (reviewed)." -> "Return the text unchanged."'
    ]
    assert session.request(tool_call(2, "add", {"a": 1, "b": 2}))["result"]["isError"] is False
    session.close_stdin()
    assert session.wait() == 0


def test_warn_mode_relays_everything_and_reports(
    guard_cmd: list[str], start: Start, tmp_path: Path, lock_file: Path
) -> None:
    session = guarded(
        start, guard_cmd, tmp_path, {**ALLOW, "pins": {"file": str(lock_file), "mode": "warn"}}, "--tools", "4"
    )
    handshake(session)
    assert "tool_3" in listing(session)
    assert session.request(tool_call(1, "tool_3"))["result"]["isError"] is False
    session.close_stdin()
    code, stderr = session.finish()
    assert code == 0 and "tool_3" in stderr and "reported" in stderr


def test_arguments_are_validated_against_the_listed_schema(guard_cmd: list[str], start: Start, tmp_path: Path) -> None:
    session = guarded(start, guard_cmd, tmp_path, {**ALLOW, "validate_arguments": True})
    handshake(session)
    bad = violation(session.request(tool_call(1, "add", {"a": "one", "b": 2})))
    assert bad["kind"] == "invalid_arguments"
    assert "arguments.a" in bad["reason"] and "integer" in bad["reason"]
    missing = violation(session.request(tool_call(2, "add", {"a": 1})))
    assert "arguments.b: required but missing" in missing["reason"]
    assert session.request(tool_call(3, "add", {"a": 1, "b": 2}))["result"]["isError"] is False
    session.close_stdin()
    assert session.wait() == 0


@pytest.mark.parametrize("form", ["absolute", "file-uri", "relative", "in-a-command"])
def test_the_guard_protects_its_own_policy(guard_cmd: list[str], start: Start, tmp_path: Path, form: str) -> None:
    policy = write_policy(tmp_path, ALLOW)
    text = {
        "absolute": str(policy),
        "file-uri": "file://" + str(policy).replace("policy.json", "polic%79.json"),
        "relative": f"../{tmp_path.name}/policy.json",
        "in-a-command": f"sed -i 's/deny/allow/' {policy}",
    }[form]
    # The recorder (standard library only) is upstream: what matters here is what the guard lets through,
    # and a server that imports the MCP SDK would cost a second of start-up per case.
    record = tmp_path / "received.jsonl"
    server = [PYTHON, str(RECORDER_SERVER), str(record)]
    session = start([*guard_cmd, "--policy", str(policy), "--", *server]) if form != "relative" else None
    if session is None:
        import os

        cwd = os.getcwd()
        os.chdir(tmp_path)
        try:
            session = start([*guard_cmd, "--policy", str(policy), "--", *server])
        finally:
            os.chdir(cwd)
    handshake(session)
    refused = violation(session.request(tool_call(1, "echo", {"text": text})))
    assert (refused["kind"], refused["rule"]) == ("protected", "protect_own_files")
    control = "a policy is a fine word" if form == "relative" else "policy.json is a fine word"
    assert session.request(tool_call(2, "echo", {"text": control}))["result"]["isError"] is False
    session.close_stdin()
    assert session.wait() == 0
    received = [json.loads(line) for line in record.read_bytes().splitlines()]
    assert [m["params"]["arguments"]["text"] for m in received if m.get("method") == "tools/call"] == [control]
