"""``within`` through the guard: the MCP Python SDK's client, the guard, and an SDK server that reads files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import PYTHON, ROOT, write_policy
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult, TextContent

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

FILES_SERVER = ROOT / "tests" / "servers" / "files_server.py"
VIOLATION = "mcp-guard/violation"


def text_of(result: CallToolResult) -> str:
    assert len(result.content) == 1
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


def refusal(result: CallToolResult) -> tuple[str, str]:
    assert result.is_error is True, result
    assert result.meta is not None
    meta: dict[str, Any] = result.meta[VIOLATION]
    return meta["rule"], meta["reason"]


@pytest.fixture
def home(tmp_path: Path, env: dict[str, str]) -> Path:
    """A home with ``data/ok.txt`` (readable under the policy) and ``secret.txt`` beside ``data``."""
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    (home / "data" / "ok.txt").write_text("ok", encoding="utf-8")
    (home / "secret.txt").write_text("secret", encoding="utf-8")
    env["HOME"] = str(home)
    return home


async def call(argv: list[str], env: dict[str, str], mode: str, calls: list[tuple[str, Any]]) -> list[CallToolResult]:
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(env))
    async with Client(params, mode=mode) as client:
        return [await client.call_tool(tool, args) for tool, args in calls]


async def test_the_attack_reads_the_secret_without_the_guard(env: dict[str, str], home: Path) -> None:
    data = home / "data"
    results = await call(
        [PYTHON, str(FILES_SERVER)], env, "auto", [("read_text", {"path": f"file://{data}/%2e%2e/secret.txt"})]
    )
    assert text_of(results[0]) == "secret"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_within_keeps_paths_inside(
    guard_cmd: list[str], env: dict[str, str], home: Path, tmp_path: Path, mode: str
) -> None:
    within = {"path": "args.path", "op": "within", "value": "~/data"}
    policy = write_policy(
        tmp_path,
        {
            "version": "1",
            "default": "deny",
            "tools": {
                "read_text": {"require": [within]},
                "read_many": {"require": [{**within, "path": "args.paths"}]},
            },
        },
    )
    data = home / "data"
    calls: list[tuple[str, Any]] = [
        ("read_text", {"path": str(data / "ok.txt")}),
        ("read_text", {"path": "~/data/ok.txt"}),
        ("read_text", {"path": f"file://{data}/ok.txt"}),
        ("read_many", {"paths": [str(data / "ok.txt"), "~/data/./ok.txt"]}),
        ("read_text", {"path": f"{data}/../secret.txt"}),
        ("read_text", {"path": f"file://{data}/%2e%2e/secret.txt"}),
        ("read_text", {"path": f"{data}/%2e%2e/secret.txt"}),
        ("read_text", {"path": "data/ok.txt"}),
        ("read_many", {"paths": [str(data / "ok.txt"), f"{data}/../secret.txt"]}),
    ]
    argv = [*guard_cmd, "--policy", str(policy), "--", PYTHON, str(FILES_SERVER)]
    results = await call(argv, env, mode, calls)

    assert [text_of(r) for r in results[:4]] == ["ok", "ok", "ok", "ok\nok"]
    assert all(r.is_error is False for r in results[:4])
    outside = ("tools.read_text.require[0]", 'This tool requires args.path within "~/data".')
    assert refusal(results[4]) == outside
    assert refusal(results[5]) == outside
    rule, reason = refusal(results[6])  # a literal name to this server, .. to others: refused
    assert rule == "tools.read_text.require[0]"
    assert reason.startswith("Cannot check this call against the policy: args.path: '/")
    assert reason.endswith(
        " can be read as different paths (percent-encoding, backslashes or letter case), some inside the "
        "directories and some not."
    )
    assert refusal(results[7]) == (
        "tools.read_text.require[0]",
        "Cannot check this call against the policy: args.path: 'data/ok.txt' is not an absolute path.",
    )
    assert refusal(results[8]) == (
        "tools.read_many.require[0]",
        "Cannot check this call against the policy: args.paths: the list holds paths both inside and outside the "
        "directories.",
    )
    assert not any("secret" in text_of(r) for r in results)
