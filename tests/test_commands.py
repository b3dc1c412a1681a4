"""The policy subcommands as a user runs them: check, explain, schema.

Most run in this process (``conftest.cli``: the same exit code, stdout and stderr without a Python
start-up per command); a few run the installed script, as a user does.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, Cli, guard_command, write_policy

from mcp_guard.commands.schema import policy_schema

POLICIES = ROOT / "examples" / "policies"


def guard_process(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*guard_command(), *args], capture_output=True, text=True, timeout=60, check=False)


Guard = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def guard(cli: Cli) -> Guard:
    """``guard(*args)``: ``mcp-guard ARGS`` in this process, in the test's own folder and this environment."""
    return lambda *args: cli(*args, env=dict(os.environ))


@pytest.mark.parametrize(
    "name",
    sorted(p.name for p in POLICIES.iterdir() if p.suffix in (".json", ".yaml") and p.name != "policy.schema.json"),
)
def test_every_example_policy_is_valid(name: str, guard: Guard) -> None:
    result = guard("check", str(POLICIES / name))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{POLICIES / name}: valid (")


def test_check_reports_errors_with_location(tmp_path: Path) -> None:
    path = write_policy(tmp_path, '{\n  "version": "1",\n  "tools": {"t": {"deny_iff": []}}\n}\n')
    result = guard_process("check", str(path))
    assert result.returncode == 2
    assert result.stderr == f"{path}:3:19: tools.t.deny_iff: unknown field 'deny_iff'; did you mean 'deny_if'?\n"
    assert result.stdout == ""


def test_check_refuses_a_lone_surrogate_with_its_location(tmp_path: Path, guard: Guard) -> None:
    path = write_policy(tmp_path, '{\n  "version": "1",\n  "tools": {"pay\\ud800": {"action": "deny"}}\n}\n')
    result = guard("check", str(path))
    assert result.returncode == 2
    assert result.stderr == f"{path}:3:13: a lone surrogate (\\ud800-\\udfff) in a string is not a character\n"
    paired = write_policy(tmp_path, '{"version": "1", "tools": {"pay\\ud83d\\ude00": {"action": "deny"}}}', "ok.json")
    assert guard("check", str(paired)).returncode == 0


def test_check_warns_about_rules_that_never_fire(tmp_path: Path, guard: Guard) -> None:
    path = write_policy(
        tmp_path,
        {"version": "1", "tools": {"gone": {"action": "deny", "require": [{"path": "args.x", "op": "exists"}]}}},
    )
    result = guard("check", "--quiet", str(path))
    assert result.returncode == 0 and result.stdout == ""
    assert "warning: tools.gone.require: never fires: the tool's action is 'deny'" in result.stderr


def explain(guard: Guard, *args: str) -> tuple[int, dict[str, Any]]:
    result = guard("explain", str(POLICIES / "payments.json"), *args, "--json")
    return result.returncode, json.loads(result.stdout)


def test_explain_decisions_and_exit_codes(guard: Guard) -> None:
    code, out = explain(guard, "create_charge", '{"amount": 120, "currency": "EUR", "customer_id": "cus_1234"}')
    assert code == 0 and out["decision"] == "allow" and out["rule"] == "tools.create_charge"
    assert [(lim["counter"], lim["cost"]) for lim in out["limits"]] == [
        ("all_calls", 1.0),
        ("charge_total", 120.0),
        ("charge_count", 1.0),
    ]

    code, out = explain(guard, "create_charge", '{"amount": 20000, "currency": "EUR", "customer_id": "cus_1234"}')
    assert (code, out["decision"], out["rule"]) == (1, "deny", "tools.create_charge.deny_if[0]")
    assert out["reason"] == "Charges above 10 000 are never made by an agent."

    code, out = explain(guard, "create_charge", '{"amount": 1500, "currency": "USD", "customer_id": "cus_1234"}')
    assert (code, out["decision"], out["rule"]) == (3, "approve", "tools.create_charge.approve_if[0]")

    code, out = explain(guard, "create_charge", '{"amount": 15, "currency": "GBP", "customer_id": "cus_1234"}')
    assert (code, out["rule"], out["reason"]) == (
        1,
        "tools.create_charge.require[0]",
        "Only EUR and USD charges are allowed.",
    )

    code, out = explain(guard, "delete_customer")
    assert (code, out["kind"]) == (1, "hidden")


def test_explain_human_output() -> None:
    result = guard_process("explain", str(POLICIES / "seed.json"), "send_order_for_analysis", "{}")
    assert result.returncode == 1
    assert result.stdout.splitlines()[:2] == ["DENY  send_order_for_analysis", "  rule:   default"]


def test_explain_rejects_bad_arguments(guard: Guard) -> None:
    result = guard("explain", str(POLICIES / "seed.json"), "x", "[1]")
    assert result.returncode == 2 and "must be a JSON object" in result.stderr


def test_schema_is_generated_from_the_models_and_committed(guard: Guard) -> None:
    result = guard("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout) == policy_schema()
    committed = json.loads((POLICIES / "policy.schema.json").read_text())
    assert committed == policy_schema(), "run: mcp-guard schema -o examples/policies/policy.schema.json"
    assert "deny_if" in committed["$defs"]["ToolRule"]["properties"]


def test_explain_runs_the_same_checks_as_the_guard(tmp_path: Path, guard: Guard) -> None:
    """Issue 16 bug 2: explain said ALLOW for calls the running guard refuses."""
    from mcp_guard.integrity.lockfile import LockFile

    schema = {"type": "object", "properties": {"amount": {"type": "number"}}, "required": ["amount"]}
    LockFile.from_tools([{"name": "pay", "description": "Pay.", "inputSchema": schema}]).save(tmp_path / "p.lock.json")
    policy = write_policy(
        tmp_path,
        {"version": "1", "default": "allow", "validate_arguments": True, "pins": {"file": "p.lock.json"}},
    )

    def run(tool: str, arguments: dict[str, Any]) -> tuple[int, str, str]:
        result = guard("explain", str(policy), tool, json.dumps(arguments), "--json")
        out = json.loads(result.stdout)
        return result.returncode, out["decision"], out["rule"]

    # A path to the policy file itself: protect_own_files refuses it in the guard, so explain must too.
    assert run("pay", {"amount": 1, "note": str(policy)}) == (1, "deny", "protect_own_files")
    # Arguments that break the pinned schema.
    assert run("pay", {"amount": "lots"}) == (1, "deny", "validate_arguments")
    # A tool the lock does not know.
    assert run("other", {}) == (1, "deny", "pins")
    assert run("pay", {"amount": 1}) == (0, "allow", "default")
