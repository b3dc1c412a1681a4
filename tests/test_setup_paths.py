"""From `init` to a guarded client without traps (issue 18, traps 1, 2 and 9).

1. `init`, `pins create` and `pins accept` list tools as a client that declares roots, sampling
   and elicitation would see them (``--capabilities`` to choose); the lock records the server it
   was made for; `pins --policy P` use P's own `pins.file`; `check` fails on a lock it cannot use.
2. A policy whose lock pins one server is never put on another by `wrap`; `init` prints the
   exact `wrap ... --server NAME` line; `wrap --init` gives each server a policy of its own.
9. Advice for the policy's author goes in `note`, never in what the model is told.

Every command runs in a sandboxed HOME and XDG tree, against the SDK-built servers in
``tests/servers`` and ``examples``; the npm reference server is used where it is installed. Most
commands run in this process (``guard``, through ``conftest.cli``), each distinct server listed once
per worker (``listed_once``); one ``init``, one ``pins accept`` and one ``wrap --init`` run the
installed script as a subprocess (``guard_process``), and what the commands wrote is always checked
by a real SDK client through a real guard process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import DEMO_SERVER, PYTHON, ROOT, Cli, guard_command
from sandboxes import guard_process, sandbox_env

from mcp_guard.integrity.lockfile import LockFile
from mcp_guard.policy.load import PolicyError, load_policy

pytestmark = pytest.mark.timeout(180)

CAPABLE_SERVER = ROOT / "tests" / "servers" / "capable_server.py"
CAPABLE = [PYTHON, str(CAPABLE_SERVER)]
DEMO = [PYTHON, str(DEMO_SERVER)]
BASE_TOOLS = ["lookup", "write_note", "erase"]
ALL_TOOLS = [*BASE_TOOLS, "list_roots", "summarize", "ask_user"]
NODE_PACKAGE = ROOT / "tests" / "node" / "node_modules" / "@modelcontextprotocol" / "server-everything"


Guard = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def guard(tmp_path: Path, cli: Cli, listed_once: None) -> Guard:
    """``guard(*argv, cwd=None)``: ``mcp-guard ARGV`` in this process, in the sandbox of ``tmp_path``."""
    return lambda *argv, cwd=None: cli(*argv, cwd=cwd or tmp_path, env=sandbox_env(tmp_path))


async def _client_listing(argv: Sequence[str], env: Mapping[str, str], capabilities: bool) -> list[str]:
    from mcp import Client, StdioServerParameters, types

    async def roots(context: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[])

    async def sampling(context: Any, params: Any) -> types.ErrorData:
        return types.ErrorData(code=types.INVALID_REQUEST, message="no model here")

    async def elicitation(context: Any, params: Any) -> types.ElicitResult:
        return types.ElicitResult(action="decline")

    callbacks: dict[str, Any] = (
        {"list_roots_callback": roots, "sampling_callback": sampling, "elicitation_callback": elicitation}
        if capabilities
        else {}
    )
    params = StdioServerParameters(command=argv[0], args=list(argv[1:]), env=dict(env))
    with anyio.fail_after(60):
        async with Client(params, mode="auto", **callbacks) as client:
            return [tool.name for tool in (await client.list_tools()).tools]


def client_listing(argv: Sequence[str], env: Mapping[str, str], capabilities: bool = True) -> list[str]:
    """The tool names a real SDK client lists through ``argv`` (declaring roots, sampling, elicitation)."""
    return anyio.run(_client_listing, argv, env, capabilities)


def listing_and_stderr(argv: Sequence[str], env: Mapping[str, str]) -> tuple[list[str], str]:
    """:func:`client_listing` through ``argv``, and what that process wrote on stderr meanwhile (as a shell runs it)."""
    log = Path(env["HOME"]) / f"guard-stderr-{len(list(Path(env['HOME']).glob('guard-stderr-*')))}.txt"
    wrapper = [
        PYTHON,
        "-c",
        "import subprocess, sys; log = open(sys.argv[1], 'wb'); sys.exit(subprocess.call(sys.argv[2:], stderr=log))",
        str(log),
        *argv,
    ]
    names = client_listing(wrapper, env)
    return names, log.read_text(encoding="utf-8")


# --- trap 1: list tools the way the client will ---------------------------------------------------


def test_init_lists_tools_as_a_capable_client_sees_them(tmp_path: Path) -> None:
    done = guard_process(tmp_path, "init", "-o", "capable.json", "--", *CAPABLE)
    assert done.returncode == 0, done.stderr
    policy_path = tmp_path / "capable.json"
    lock_path = tmp_path / "capable.lock.json"
    policy = json.loads(policy_path.read_text(encoding="utf-8"))
    assert list(policy["tools"]) == ALL_TOOLS
    lock = LockFile.load(lock_path)
    assert sorted(lock.tools) == sorted(ALL_TOOLS)
    # The lock says which server it was made for, and as which client.
    assert lock.server["command"] == CAPABLE
    assert lock.server["clientCapabilities"] == ["roots", "sampling", "elicitation"]
    assert lock.server["name"] == "capable"
    # Messages name files by absolute path.
    assert f"wrote {policy_path}" in done.stderr
    assert str(lock_path) in done.stderr
    assert "as a client declaring roots, sampling, elicitation" in done.stderr

    # A real client that declares those capabilities sees every tool through the guard, and the guard
    # has nothing to report.
    env = sandbox_env(tmp_path)
    argv = [*guard_command(), "--policy", str(policy_path), "--", *CAPABLE]
    names, stderr = listing_and_stderr(argv, env)
    assert names == ALL_TOOLS
    assert "tool pin" not in stderr


def test_init_capabilities_option(tmp_path: Path, guard: Guard) -> None:
    roots = guard("init", "-o", "roots.json", "--capabilities", "roots", "--", *CAPABLE)
    assert roots.returncode == 0, roots.stderr
    assert list(json.loads((tmp_path / "roots.json").read_text())["tools"]) == [*BASE_TOOLS, "list_roots"]
    assert LockFile.load(tmp_path / "roots.lock.json").server["clientCapabilities"] == ["roots"]

    bare = guard("init", "-o", "bare.json", "--capabilities", "none", "--", *CAPABLE)
    assert bare.returncode == 0, bare.stderr
    assert list(json.loads((tmp_path / "bare.json").read_text())["tools"]) == BASE_TOOLS
    assert LockFile.load(tmp_path / "bare.lock.json").server["clientCapabilities"] == []
    assert "as a client declaring no capabilities" in bare.stderr

    wrong = guard("init", "-o", "x.json", "--capabilities", "roots,telepathy", "--", *CAPABLE)
    assert wrong.returncode == 2
    assert "telepathy" in wrong.stderr and "roots, sampling, elicitation" in wrong.stderr
    assert not (tmp_path / "x.json").exists()


def test_a_tool_missing_from_the_lock_is_reported_and_can_be_accepted(tmp_path: Path, guard: Guard) -> None:
    """A lock made as a bare client: the live client is offered more; the guard says so; accept pins it."""
    lock_path = tmp_path / "bare.lock.json"
    made = guard("pins", "create", "--capabilities", "none", "--lock", "bare.lock.json", "--", *CAPABLE)
    assert made.returncode == 0, made.stderr
    assert f"in {lock_path}" in made.stderr
    assert sorted(LockFile.load(lock_path).tools) == sorted(BASE_TOOLS)
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps({"version": "1", "default": "allow", "pins": {"file": "bare.lock.json"}}))

    env = sandbox_env(tmp_path)
    argv = [*guard_command(), "--policy", str(policy), "--", *CAPABLE]
    names, stderr = listing_and_stderr(argv, env)
    assert names == BASE_TOOLS  # enforce: the unpinned tools are hidden
    command = " ".join(CAPABLE)
    assert (
        f"tool pin: ask_user: offered to this client but not in the lock file {lock_path}, which was made "
        "listing tools as a client declaring no capabilities (hidden and refused); after review, pin it with: "
        f"mcp-guard pins accept ask_user --lock {lock_path} -- {command}"
    ) in stderr

    accepted = guard_process(tmp_path, "pins", "accept", "ask_user", "--lock", str(lock_path), "--", *CAPABLE)
    assert accepted.returncode == 0, accepted.stderr
    assert "accepted new: ask_user" in accepted.stdout
    lock = LockFile.load(lock_path)
    assert sorted(lock.tools) == sorted([*BASE_TOOLS, "ask_user"])
    assert lock.server["clientCapabilities"] == ["roots", "sampling", "elicitation"]
    assert client_listing(argv, env) == [*BASE_TOOLS, "ask_user"]

    # A name the server offers to no client this one can be is explained, and nothing is written.
    unknown = guard("pins", "accept", "teleport", "--lock", str(lock_path), "--", *CAPABLE)
    assert unknown.returncode == 2
    assert (
        f"teleport: neither pinned in {lock_path} nor listed by the server to a client declaring roots, "
        "sampling, elicitation" in unknown.stderr
    )
    assert "--capabilities" in unknown.stderr
    assert sorted(LockFile.load(lock_path).tools) == sorted([*BASE_TOOLS, "ask_user"])


def test_pins_diff_lists_as_the_usual_client_and_points_out_a_narrower_lock(tmp_path: Path, guard: Guard) -> None:
    lock_path = tmp_path / "roots.lock.json"
    made = guard("pins", "create", "--capabilities", "roots", "--lock", str(lock_path), "--", *CAPABLE)
    assert made.returncode == 0, made.stderr
    wider = guard("pins", "diff", "--lock", str(lock_path), "--", *CAPABLE)
    assert wider.returncode == 1
    assert "# new: summarize" in wider.stdout and "# new: ask_user" in wider.stdout
    assert (
        f"note: {lock_path} was made listing tools as a client declaring roots; listing now as a client declaring "
        "roots, sampling, elicitation (--capabilities roots compares as then)"
    ) in wider.stderr
    same = guard("pins", "diff", "--capabilities", "roots", "--lock", str(lock_path), "--", *CAPABLE)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "note:" not in same.stderr


def test_pins_commands_use_the_policys_own_lock_file(tmp_path: Path, guard: Guard) -> None:
    (tmp_path / "locks").mkdir()
    policy = tmp_path / "rules.json"
    policy.write_text(json.dumps({"version": "1", "default": "allow", "pins": {"file": "locks/custom.lock.json"}}))
    lock_path = tmp_path / "locks" / "custom.lock.json"

    created = guard("pins", "create", "--policy", "rules.json", "--", *CAPABLE)
    assert created.returncode == 0, created.stderr
    assert lock_path.is_file()
    assert not (tmp_path / "rules.lock.json").exists()
    assert f"in {lock_path}" in created.stderr

    same = guard("pins", "diff", "--policy", str(policy), "--", *CAPABLE)
    assert same.returncode == 0, same.stderr
    assert str(lock_path) in same.stderr

    lock = json.loads(lock_path.read_text())
    del lock["tools"]["erase"]
    lock_path.write_text(json.dumps(lock))
    accepted = guard("pins", "accept", "--policy", str(policy), "--", *CAPABLE)
    assert accepted.returncode == 0, accepted.stderr
    assert "accepted new: erase" in accepted.stdout
    assert "erase" in LockFile.load(lock_path).tools

    # A policy without pins: the lock goes beside it, and the message says how to turn pins on.
    plain = tmp_path / "plain.json"
    plain.write_text('{"version": "1"}')
    beside = guard("pins", "create", "--policy", str(plain), "--", *CAPABLE)
    assert beside.returncode == 0, beside.stderr
    assert (tmp_path / "plain.lock.json").is_file()
    assert '"pins": {"file": "plain.lock.json"}' in beside.stderr


def test_check_fails_on_a_lock_file_it_cannot_use(tmp_path: Path, guard: Guard) -> None:
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps({"version": "1", "pins": {"file": "p.lock.json"}}) + "\n")
    lock_path = tmp_path / "p.lock.json"

    missing = guard("check", "p.json")
    assert missing.returncode == 2, missing.stdout
    assert missing.stdout == ""
    assert f"{lock_path}: no such lock file" in missing.stderr
    assert "mcp-guard pins create --policy" in missing.stderr

    lock_path.write_text("{not json")
    broken = guard("check", "p.json")
    assert broken.returncode == 2
    assert f"{lock_path}:1:2: invalid JSON" in broken.stderr

    made = guard("pins", "create", "--policy", "p.json", "--", *CAPABLE)
    assert made.returncode == 0, made.stderr
    fine = guard("check", "p.json")
    assert fine.returncode == 0, fine.stderr
    assert f"pins 6 tools in {lock_path}" in fine.stdout


def node_everything() -> list[str]:
    if shutil.which("node") is None or not (NODE_PACKAGE / "package.json").is_file():
        if os.environ.get("CI"):
            pytest.fail("CI is set, so the npm reference server must be installed (npm ci --prefix tests/node)")
        pytest.skip("the npm reference server is not installed: npm ci --prefix tests/node")
    package = json.loads((NODE_PACKAGE / "package.json").read_text())
    return ["node", str(NODE_PACKAGE / package["bin"]["mcp-server-everything"]), "stdio"]


def test_init_against_the_npm_reference_server(tmp_path: Path, guard: Guard) -> None:
    server = node_everything()
    full = guard("init", "-o", "full.json", "--", *server)
    assert full.returncode == 0, full.stderr
    bare = guard("init", "-o", "bare.json", "--capabilities", "none", "--", *server)
    assert bare.returncode == 0, bare.stderr
    full_tools = json.loads((tmp_path / "full.json").read_text())["tools"]
    bare_tools = json.loads((tmp_path / "bare.json").read_text())["tools"]
    assert (len(bare_tools), len(full_tools)) == (13, 17)
    assert {"get-roots-list", "trigger-sampling-request", "trigger-elicitation-request"} <= set(full_tools)
    # The client sees exactly what was pinned: nothing hidden, nothing reported.
    env = sandbox_env(tmp_path)
    argv = [*guard_command(), "--policy", str(tmp_path / "full.json"), "--", *server]
    assert sorted(client_listing(argv, env)) == sorted(full_tools)


# --- trap 2: one server's policy on one server ------------------------------------------------------


def config_with(path: Path, servers: Mapping[str, Sequence[str]], extra: Mapping[str, Any] | None = None) -> Path:
    entries: dict[str, Any] = {name: {"command": argv[0], "args": list(argv[1:])} for name, argv in servers.items()}
    entries.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"mcpServers": entries}, indent=2) + "\n", encoding="utf-8")
    return path


def entry_argv(config: Path, name: str) -> list[str]:
    entry = json.loads(config.read_text(encoding="utf-8"))["mcpServers"][name]
    return [entry["command"], *entry.get("args", [])]


def test_wrap_refuses_to_put_a_pinned_policy_on_every_server(tmp_path: Path, guard: Guard) -> None:
    config = config_with(tmp_path / "client.json", {"demo": DEMO, "store": CAPABLE})
    before = config.read_bytes()
    made = guard("init", "-o", "store.json", "--", *CAPABLE)
    assert made.returncode == 0, made.stderr
    policy = tmp_path / "store.json"

    everywhere = guard("wrap", "--config", str(config), "--policy", str(policy))
    assert everywhere.returncode == 2, everywhere.stderr
    assert "--server store" in everywhere.stderr
    assert "nothing written" in everywhere.stderr
    assert config.read_bytes() == before

    both = guard("wrap", "--config", str(config), "--policy", str(policy), "--server", "demo", "--server", "store")
    assert both.returncode == 2
    assert config.read_bytes() == before

    one = guard("wrap", "--config", str(config), "--policy", str(policy), "--server", "store")
    assert one.returncode == 0, one.stderr
    assert entry_argv(config, "demo") == DEMO
    assert entry_argv(config, "store")[-len(CAPABLE) - 2 :] == ["--policy", str(policy), *CAPABLE]
    # And the wrapped server lists every tool to a capable client.
    assert client_listing(entry_argv(config, "store"), sandbox_env(tmp_path)) == ALL_TOOLS

    # A policy that pins nothing may still go on every server.
    plain = tmp_path / "plain.json"
    plain.write_text('{"version": "1", "default": "allow"}')
    config_with(config, {"demo": DEMO, "store": CAPABLE})
    anywhere = guard("wrap", "--config", str(config), "--policy", str(plain))
    assert anywhere.returncode == 0, anywhere.stderr


def test_wrap_refuses_a_pinned_policy_for_the_only_server_when_it_is_another(tmp_path: Path, guard: Guard) -> None:
    config = config_with(tmp_path / "client.json", {"demo": DEMO})
    made = guard("init", "-o", "store.json", "--", *CAPABLE)
    assert made.returncode == 0, made.stderr
    refused = guard("wrap", "--config", str(config), "--policy", str(tmp_path / "store.json"))
    assert refused.returncode == 2
    assert "none of the servers" in refused.stderr
    assert "--server NAME" in refused.stderr


def test_init_prints_the_exact_wrap_command(tmp_path: Path, guard: Guard) -> None:
    home = tmp_path / "home"
    desktop = config_with(home / ".config" / "Claude" / "claude_desktop_config.json", {"demo": DEMO, "store": CAPABLE})
    done = guard("init", "-o", "store.json", "--", *CAPABLE)
    assert done.returncode == 0, done.stderr
    policy = tmp_path / "store.json"
    line = f"mcp-guard wrap --client claude-desktop --policy {policy} --server store"
    assert line in done.stderr
    # That very line works.
    wrapped = guard(*line.split()[1:])
    assert wrapped.returncode == 0, wrapped.stderr
    assert entry_argv(desktop, "demo") == DEMO
    assert entry_argv(desktop, "store")[-len(CAPABLE) - 2 :] == ["--policy", str(policy), *CAPABLE]


def test_init_prints_a_template_when_no_client_runs_the_server(tmp_path: Path, guard: Guard) -> None:
    done = guard("init", "-o", "demo.json", "--", *DEMO)
    assert done.returncode == 0, done.stderr
    assert f"mcp-guard wrap --client CLIENT --policy {tmp_path / 'demo.json'} --server NAME" in done.stderr


def test_wrap_init_gives_each_server_its_own_policy(tmp_path: Path, guard: Guard) -> None:
    home = tmp_path / "home"
    desktop = config_with(
        home / ".config" / "Claude" / "claude_desktop_config.json",
        {"demo": DEMO, "store": CAPABLE},
        {"remote": {"type": "http", "url": "https://example.com/mcp"}},
    )
    done = guard_process(tmp_path, "wrap", "--client", "claude-desktop", "--init")
    assert done.returncode == 0, done.stderr
    folder = desktop.parent / "mcp-guard"
    assert sorted(p.name for p in folder.iterdir()) == ["demo.json", "demo.lock.json", "store.json", "store.lock.json"]
    assert list(json.loads((folder / "store.json").read_text())["tools"]) == ALL_TOOLS
    assert "create_charge" in json.loads((folder / "demo.json").read_text())["tools"]
    for name, server in (("demo", DEMO), ("store", CAPABLE)):
        argv = entry_argv(desktop, name)
        assert argv[-len(server) - 2 :] == ["--policy", str(folder / f"{name}.json"), *server]
        assert LockFile.load(folder / f"{name}.lock.json").server["command"] == server
    env = sandbox_env(tmp_path)
    assert client_listing(entry_argv(desktop, "store"), env) == ALL_TOOLS
    assert "create_charge" in client_listing(entry_argv(desktop, "demo"), env)
    assert json.loads(desktop.read_text())["mcpServers"]["remote"] == {"type": "http", "url": "https://example.com/mcp"}

    # Again: every server is wrapped already, nothing changes.
    again = guard("wrap", "--client", "claude-desktop", "--init")
    assert again.returncode == 0, again.stderr
    assert "already wrapped" in again.stderr


def test_wrap_init_puts_policies_for_a_home_config_in_the_user_config_dir(tmp_path: Path, guard: Guard) -> None:
    home = tmp_path / "home"
    claude = config_with(home / ".claude.json", {"store": CAPABLE})
    project = tmp_path / "project"
    project.mkdir()
    done = guard("wrap", "--client", "claude-code", "--init", "--capabilities", "roots", cwd=project)
    assert done.returncode == 0, done.stderr
    policy = home / ".config" / "mcp-guard" / "servers" / "store.json"
    assert entry_argv(claude, "store")[-len(CAPABLE) - 2 :] == ["--policy", str(policy), *CAPABLE]
    assert list(json.loads(policy.read_text())["tools"]) == [*BASE_TOOLS, "list_roots"]
    assert list(project.iterdir()) == []


def test_wrap_init_wraps_the_servers_it_could_list_and_names_the_others(tmp_path: Path, guard: Guard) -> None:
    broken = [PYTHON, "-c", "import sys; sys.exit(3)"]
    config = config_with(tmp_path / "conf" / "client.json", {"broken": broken, "demo": DEMO})
    done = guard("wrap", "--config", str(config), "--init", "--server", "broken", "--server", "demo")
    assert done.returncode == 1, done.stderr
    assert "mcpServers.broken: skipped (could not list its tools (see above); left as it was)" in done.stderr
    assert "not wrapped, without a policy of their own: broken" in done.stderr
    assert entry_argv(config, "broken") == broken
    folder = config.parent / "mcp-guard"
    assert entry_argv(config, "demo")[-len(DEMO) - 2 :] == ["--policy", str(folder / "demo.json"), *DEMO]
    assert sorted(p.name for p in folder.iterdir()) == ["demo.json", "demo.lock.json"]

    # Unwrapped again, its policy is still there: not replaced without --force.
    assert guard("unwrap", "--config", str(config)).returncode == 0
    kept = guard("wrap", "--config", str(config), "--init", "--server", "demo")
    assert kept.returncode == 1
    assert f"{folder / 'demo.json'} exists already; pass --force" in kept.stderr
    assert entry_argv(config, "demo") == DEMO
    forced = guard("wrap", "--config", str(config), "--init", "--server", "demo", "--force")
    assert forced.returncode == 0, forced.stderr
    assert entry_argv(config, "demo")[-len(DEMO) - 2 :] == ["--policy", str(folder / "demo.json"), *DEMO]


def test_wrap_init_refuses_with_policy(tmp_path: Path, guard: Guard) -> None:
    config = config_with(tmp_path / "client.json", {"demo": DEMO})
    done = guard("wrap", "--config", str(config), "--init", "--policy", "x.json")
    assert done.returncode == 2
    assert "--init" in done.stderr


# --- trap 9: notes for the author, reasons for the model ------------------------------------------


def test_init_keeps_author_advice_out_of_what_the_model_is_told(tmp_path: Path, guard: Guard) -> None:
    done = guard("init", "-o", "demo.json", "--", *DEMO)
    assert done.returncode == 0, done.stderr
    tools = json.loads((tmp_path / "demo.json").read_text())["tools"]
    refund = tools["refund"]
    assert refund["action"] == "deny"
    assert "approve" in refund["note"] and "allow" in refund["note"]
    # Whatever the model may be told is addressed to it, about the tool: no advice about editing the policy.
    model_reason = "The server marks this tool as destructive: it can delete or change data."
    assert {name: rule.get("reason") for name, rule in tools.items()} == {
        "track_behavior_event": None,
        "send_order_for_analysis": None,
        "get_order_status": None,
        "list_customers": None,
        "create_charge": model_reason,
        "refund": model_reason,
    }
    assert all(rule["note"] for rule in tools.values())

    # What a client receives for a denied call has the reason, never the note.
    from mcp import Client, StdioServerParameters

    async def call() -> Any:
        argv = [*guard_command(), "--policy", str(tmp_path / "demo.json"), "--", *DEMO]
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=sandbox_env(tmp_path))
        async with Client(params, mode="auto") as client:
            return await client.call_tool("refund", {"charge_id": "ch_1", "amount": 5})

    result = anyio.run(call)
    assert result.is_error is True
    wire = result.model_dump_json(by_alias=True)
    assert refund["reason"] in wire
    assert refund["note"] not in wire
    assert "note" not in result.meta["mcp-guard/violation"]


def test_note_is_accepted_on_rules_conditions_and_limits(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps(
            {
                "version": "1",
                "tools": {
                    "pay": {
                        "note": "why this rule exists",
                        "deny_if": [
                            {"path": "args.amount", "op": "gt", "value": 5, "note": "finance asked"},
                            {"conditions": [], "on_deny": "no", "note": "a group"},
                        ],
                        "limits": [{"counter": "c", "window": "minute", "max": 3, "note": "per minute"}],
                    }
                },
            }
        )
    )
    policy = load_policy(path)
    assert policy.tools["pay"].note == "why this rule exists"
    path.write_text(json.dumps({"version": "1", "tools": {"pay": {"note": 3}}}))
    with pytest.raises(PolicyError, match=r"tools\.pay\.note"):
        load_policy(path)
