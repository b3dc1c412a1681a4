"""Start-up cost: what a guard with a plain policy imports before it answers (issues 16 and 21).

Each module named here once cost every start measurable time although such a guard never uses it;
the test runs a real guard (``-X importtime``) and fails if one of them comes back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO_SERVER, PYTHON, isolated_env, write_policy

# One sliding-window limit (the benchmarks' start-up policy): no approvals, pins, flows or result rules.
ONE_LIMIT: dict[str, Any] = {
    "version": "1",
    "default": "deny",
    "tools": {"echo": {"limits": [{"counter": "c", "window": "minute", "max": 1000, "scope": "grant"}]}},
}
INITIALIZE = (
    json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
    )
    + "\n"
).encode()

NOT_IMPORTED = (
    # pydantic's plugin loader: it imports importlib.metadata and reads every installed package's entry points.
    "pydantic.plugin._loader",
    "importlib.metadata",
    # The approval store (SQLite) is opened on the first approval, and its default path comes from paths.
    "mcp_guard.approval.store",
    "sqlite3",
    # The relay's main thread only waits: no event loop to import and start.
    "asyncio",
    "anyio",
    # Did-you-mean hints, for a misspelt policy field or subcommand only.
    "difflib",
)


def _imported_by_guard(tmp_path: Path, *options: str) -> tuple[set[str], bytes]:
    """The modules a guard started with ``options`` imported, and its answer to ``initialize``."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mcp_guard", *options, "--", PYTHON, str(DEMO_SERVER)],
        input=INITIALIZE,
        capture_output=True,
        timeout=60,
        check=False,
        env=isolated_env(tmp_path),
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.decode(errors="replace").splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    return modules, done.stdout


@pytest.mark.parametrize("with_policy", [True, False], ids=["one-limit policy", "no policy"])
def test_a_plain_guard_start_imports_nothing_it_does_not_use(tmp_path: Path, with_policy: bool) -> None:
    options = ("--policy", str(write_policy(tmp_path, ONE_LIMIT))) if with_policy else ()
    modules, answer = _imported_by_guard(tmp_path, *options)
    assert json.loads(answer.splitlines()[0])["id"] == 0  # the guard did start the server and relay its answer
    assert "mcp_guard.policy.model" in modules  # and the policy was validated by its models
    assert sorted(m for m in NOT_IMPORTED if m in modules) == []


def test_models_built_without_plugin_lookup_validate_the_same_and_leave_pydantic_as_it_was(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from mcp_guard.policy.plugins import without_pydantic_plugins\n"
        "with without_pydantic_plugins():\n"
        "    from mcp_guard.policy.model import Policy\n"
        "print(type(Policy.__pydantic_validator__).__name__)\n"
        "print('pydantic.plugin._loader' in sys.modules, 'importlib.metadata' in sys.modules)\n"
        "try:\n"
        "    Policy.model_validate({'version': '1', 'tools': {'t': {'limits': [{'counter': 'c', 'window': 'x'}]}}})\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc.error_count())\n"
        "from pydantic import BaseModel\n"
        "class Later(BaseModel):\n"
        "    x: int\n"
        "print('pydantic.plugin._loader' in sys.modules)\n"
    )
    env = isolated_env(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    # Policy's validator is pydantic's own; a bad window and a missing max are both still found; a model
    # built afterwards goes through pydantic's real plugin loader.
    assert (done.returncode, done.stdout) == (0, "SchemaValidator\nFalse False\nValidationError 2\nTrue\n"), done.stderr
