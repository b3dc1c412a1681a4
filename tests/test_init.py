"""``mcp-guard init`` against real servers, policies written under tmp_path.

The demo-server and Ctrl-C tests run the installed script as a subprocess; the rest run the command
in this process (``init_here``, through ``conftest.cli``), each distinct server listed once per run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO_SERVER, EVERYTHING_SERVER, PYTHON, ROOT, Cli, guard_command
from sandboxes import guard_process, sandbox_env

from mcp_guard.policy.load import load_policy

pytestmark = pytest.mark.timeout(90)

DENY_REASON = "The server marks this tool as destructive: it can delete or change data."
DENY_NOTE = (
    'destructive (destructiveHint): refused. Set "action" to "approve" to ask a person before each call, or to "allow"'
)


def init(tmp_path: Path, *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return guard_process(tmp_path, "init", *argv, cwd=cwd, timeout=80)


def demo(tmp_path: Path, *options: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return init(tmp_path, *options, "--", PYTHON, str(DEMO_SERVER), cwd=cwd)


Init = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def init_here(tmp_path: Path, cli: Cli, listed_once: None) -> Init:
    """``init_here(*argv, cwd=None)``: what :func:`init` gives, with the command run in this process."""
    return lambda *argv, cwd=None: cli("init", *argv, cwd=cwd or tmp_path, env=sandbox_env(tmp_path))


def rate(tool: str) -> list[dict[str, Any]]:
    return [{"counter": f"{tool}_rate", "window": "minute", "max": 30, "scope": "grant"}]


def test_init_demo_server(tmp_path: Path) -> None:
    result = demo(tmp_path)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "mcp-guard-policy.json"  # the default, in the working directory
    policy = json.loads(path.read_text(encoding="utf-8"))
    assert list(policy) == ["version", "default", "all_tools", "tools", "pins", "validate_arguments"]
    assert policy["all_tools"] == {
        "results": {"redact": ["secrets", "payment_cards"], "block": ["invisible_text", "terminal_escapes"]}
    }
    assert policy["version"] == "1"
    assert policy["default"] == "deny"
    assert policy["pins"] == {"file": "mcp-guard-policy.lock.json", "mode": "enforce"}
    assert policy["validate_arguments"] is True
    lock = json.loads((tmp_path / "mcp-guard-policy.lock.json").read_text(encoding="utf-8"))
    assert sorted(lock["tools"]) == sorted(policy["tools"])
    tools = policy["tools"]
    assert list(tools) == [
        "track_behavior_event",
        "send_order_for_analysis",
        "get_order_status",
        "list_customers",
        "create_charge",
        "refund",
    ]
    # Not annotated: allowed with a rate limit; the note (for the author, never the model) says why.
    for name in ("track_behavior_event", "send_order_for_analysis"):
        assert set(tools[name]) == {"note", "limits"}
        assert tools[name]["limits"] == rate(name)
        assert "30 calls a minute" in tools[name]["note"]
        assert "action" not in tools[name]
    # readOnlyHint: allowed, no limit; the note says why.
    for name in ("get_order_status", "list_customers"):
        assert set(tools[name]) == {"note"}
        assert "readOnlyHint" in tools[name]["note"]
    # destructiveHint: denied, with a reason for the model and a note for the author.
    for name in ("create_charge", "refund"):
        assert tools[name] == {"action": "deny", "reason": DENY_REASON, "note": DENY_NOTE}
    # It loads with the guard's own loader.
    loaded = load_policy(path)
    assert loaded.default == "deny"
    assert loaded.tools["create_charge"].action == "deny"
    assert loaded.tools["get_order_status"].action == "allow"
    assert loaded.tools["track_behavior_event"].limits[0].max == 30
    # The table on stderr.
    assert "demo-payments 0.1.0: 6 tool(s)" in result.stderr
    lines = result.stderr.splitlines()
    assert any(line.split() == ["create_charge", "deny", "(destructive)"] for line in lines)
    assert any(line.split() == ["get_order_status", "allow", "(read-only)"] for line in lines)
    assert any(line.split() == ["track_behavior_event", "allow,", "30/minute"] for line in lines)
    assert result.stdout == ""
    assert path.read_text(encoding="utf-8").endswith("}\n")


def test_init_refuses_to_overwrite(tmp_path: Path, init_here: Init) -> None:
    out = tmp_path / "policy.json"
    out.write_text("keep me\n")
    result = init_here("-o", str(out), "--", PYTHON, str(DEMO_SERVER))
    assert result.returncode == 1
    assert "already exists" in result.stderr
    assert "--force" in result.stderr
    assert out.read_text() == "keep me\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_init_force_overwrites(tmp_path: Path, init_here: Init) -> None:
    out = tmp_path / "policy.json"
    out.write_text("old\n")
    result = init_here("--force", "-o", str(out), "--", PYTHON, str(DEMO_SERVER))
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["default"] == "deny"
    load_policy(out)


def test_init_follows_pagination(tmp_path: Path, init_here: Init) -> None:
    paged = init_here("-o", "paged.json", "--", PYTHON, str(EVERYTHING_SERVER), "--tools", "23", "--page-size", "4")
    assert paged.returncode == 0, paged.stderr
    whole = init_here("-o", "whole.json", "--", PYTHON, str(EVERYTHING_SERVER), "--tools", "23")
    assert whole.returncode == 0, whole.stderr
    paged_tools = json.loads((tmp_path / "paged.json").read_text())["tools"]
    whole_tools = json.loads((tmp_path / "whole.json").read_text())["tools"]
    assert {f"tool_{i}" for i in range(23)} <= set(paged_tools)
    assert paged_tools == whole_tools
    load_policy(tmp_path / "paged.json")


def test_init_without_command(tmp_path: Path, init_here: Init) -> None:
    result = init_here()
    assert result.returncode == 2
    assert "no server command" in result.stderr
    assert not (tmp_path / "mcp-guard-policy.json").exists()


def test_init_command_not_found(tmp_path: Path, init_here: Init) -> None:
    result = init_here("--", "mcp-guard-test-no-such-command")
    assert result.returncode == 1
    assert "command not found" in result.stderr
    assert not (tmp_path / "mcp-guard-policy.json").exists()


def test_init_server_that_exits(tmp_path: Path, init_here: Init) -> None:
    result = init_here("--", PYTHON, "-c", "import sys; sys.exit(3)")
    assert result.returncode == 1
    assert "could not list the server's tools" in result.stderr
    assert not (tmp_path / "mcp-guard-policy.json").exists()


SLOW_LISTER = ROOT / "tests" / "servers" / "slow_lister.py"


def interrupt_while_listing(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``mcp-guard ARGV -- slow_lister`` in an empty folder and Ctrl-C it while it waits for the tool list."""
    work = tmp_path / "work"
    work.mkdir()
    marker = tmp_path / "listing-requested"
    proc = subprocess.Popen(
        [*guard_command(), *argv, "--", PYTHON, str(SLOW_LISTER), str(marker)],
        cwd=work,
        env=sandbox_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the server was never asked for its tools"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_ctrl_c_during_init_ends_quietly_and_writes_nothing(tmp_path: Path) -> None:
    result = interrupt_while_listing(tmp_path, "init")
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == "mcp-guard: interrupted"
    assert result.stdout == ""
    assert list((tmp_path / "work").iterdir()) == []


def test_policy_and_lock_file_are_put_in_place_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C between the two renames waits for the second one: both files or neither, never one."""
    from mcp_guard import atomic

    real_replace = os.replace
    renamed: list[str] = []

    def replace_then_interrupt(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        real_replace(src, dst)
        renamed.append(os.fspath(dst))
        if len(renamed) == 1:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(atomic.os, "replace", replace_then_interrupt)
    policy, lock = tmp_path / "p.json", tmp_path / "p.lock.json"
    moves = [(atomic.stage(lock, b"lock\n"), lock), (atomic.stage(policy, b"policy\n"), policy)]
    with pytest.raises(KeyboardInterrupt):
        atomic.commit(moves)
    assert renamed == [str(lock), str(policy)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json", "p.lock.json"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_no_temporary_file_stays_after_a_failed_commit(tmp_path: Path) -> None:
    from mcp_guard import atomic

    staged = [atomic.stage(tmp_path / name, b"x") for name in ("a.json", "b.json")]
    with pytest.raises(FileNotFoundError):
        atomic.commit([(staged[0], tmp_path / "gone" / "a.json"), (staged[1], tmp_path / "b.json")])
    assert list(tmp_path.iterdir()) == []


def test_init_writes_starter_tests_that_pass(tmp_path: Path, init_here: Init, cli: Cli) -> None:
    """Issue 22: a few cases derived from the policy, beside it, that `mcp-guard test` passes as written."""
    import yaml

    result = init_here("-o", "payments.json", "--", PYTHON, str(DEMO_SERVER))
    assert result.returncode == 0, result.stderr
    tests = tmp_path / "payments.tests.yaml"
    assert f"wrote 4 starter policy test(s) to {tests}; run them with\n  mcp-guard test {tests}" in result.stderr
    text = tests.read_text(encoding="utf-8")
    assert text.startswith("# Starter policy tests written by `mcp-guard init`: run them with `mcp-guard test ")
    document = yaml.safe_load(text)
    assert document["policy"] == "payments.json"
    assert document["cases"] == [
        {
            "name": "get_order_status is allowed",
            "call": {"tool": "get_order_status", "args": {"order_id": "x"}},
            "expect": "allow",
        },
        {
            "name": "create_charge is refused",
            "call": {"tool": "create_charge", "args": {"amount": 1.0, "currency": "x", "customer_id": "x"}},
            "expect": {"decision": "deny", "rule": "tools.create_charge.action"},
        },
        {
            "name": "a tool the policy does not list is refused",
            "call": {"tool": "a_tool_the_policy_does_not_list", "args": {}},
            "expect": "deny",
        },
        {
            "name": "track_behavior_event: 30 calls in a minute pass, the next is refused",
            "repeat": 31,
            "call": {"tool": "track_behavior_event", "args": {"user_id": "x", "event": "x"}},
            "expect": "allow",
            "expect_last": {"decision": "deny", "rule": "tools.track_behavior_event.limits[0]"},
        },
    ]
    ran = cli("test", str(tests))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "4 passed" in ran.stdout
    # A second init without --force keeps the policy and its tests as they are.
    again = init_here("-o", "payments.json", "--", PYTHON, str(DEMO_SERVER))
    assert again.returncode == 1
    assert tests.read_text(encoding="utf-8") == text


def test_init_starter_tests_for_the_everything_server_pass(tmp_path: Path, init_here: Init, cli: Cli) -> None:
    result = init_here("-o", "everything.json", "--", PYTHON, str(EVERYTHING_SERVER))
    assert result.returncode == 0, result.stderr
    ran = cli("test", str(tmp_path / "everything.tests.yaml"))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert " passed" in ran.stdout.splitlines()[-1]


def test_init_writes_prompts_and_resources_sections(tmp_path: Path, init_here: Init) -> None:
    server = Path(__file__).parent / "servers" / "prompts_server.py"
    result = init_here("--", PYTHON, str(server))
    assert result.returncode == 0, result.stderr
    path = tmp_path / "mcp-guard-policy.json"
    policy = json.loads(path.read_text(encoding="utf-8"))
    assert list(policy) == [
        "version",
        "default",
        "all_tools",
        "tools",
        "prompts",
        "resources",
        "pins",
        "validate_arguments",
    ]
    assert policy["prompts"]["default"] == "allow"
    assert list(policy["prompts"]["rules"]) == ["fetch", "summarise", "debug_dump", "debug_state"]
    assert policy["resources"]["default"] == "allow"
    assert list(policy["resources"]["rules"]) == [
        "https://example.com/",
        "file:///etc/hostname",
        "file:///srv/notes.txt",
        "debug://state",
        "https://example.com/page/*",  # the template https://example.com/page/{n}
        "debug://*",  # debug://{key}
    ]
    assert "{n}" in policy["resources"]["rules"]["https://example.com/page/*"]["note"]
    assert all(set(rule) == {"note"} for rule in policy["prompts"]["rules"].values())
    loaded = load_policy(path)
    assert loaded.prompts is not None and loaded.resources is not None
    assert "4 prompt(s) listed under 'prompts'" in result.stderr


def test_init_writes_no_section_for_a_server_without_prompts_or_resources(tmp_path: Path, init_here: Init) -> None:
    result = init_here("--", PYTHON, str(DEMO_SERVER))
    assert result.returncode == 0, result.stderr
    policy = json.loads((tmp_path / "mcp-guard-policy.json").read_text(encoding="utf-8"))
    assert "prompts" not in policy and "resources" not in policy
