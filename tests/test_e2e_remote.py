"""A remote (Streamable HTTP) server guarded through ``wrap --remote``, end to end.

A real MCP client (the SDK's ``stdio_client``) launches exactly the command ``wrap --remote``
wrote into a client config: the guard, with a policy, in front of ``npx -y mcp-remote URL
--header ...``, which connects to a Streamable HTTP server built with the Python SDK
(tests/servers/http_server.py) on a loopback port. mcp-remote is the version pinned in
tests/node/package.json: npx runs from tests/node with npm offline, so it can only use that copy.

mcp-remote keeps OAuth state in ``~/.mcp-auth`` unless ``MCP_REMOTE_CONFIG_DIR`` says
otherwise, and npm writes under HOME: both point into tmp_path here, and the test checks
that mcp-remote wrote where it was told.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import PYTHON, ROOT, isolated_env, write_policy

from mcp_guard.cli import main

pytestmark = pytest.mark.timeout(120)

NODE_DIR = ROOT / "tests" / "node"
MCP_REMOTE_PACKAGE = NODE_DIR / "node_modules" / "mcp-remote" / "package.json"
HTTP_SERVER = ROOT / "tests" / "servers" / "http_server.py"
START_TIMEOUT_S = 20.0


def require_mcp_remote() -> None:
    """Fail, never skip, when the bridge is not installed: the remote path would go untested unnoticed."""
    if shutil.which("npx") is None:
        pytest.fail("wrap --remote runs mcp-remote with npx: install Node.js (npx on PATH)")
    if not MCP_REMOTE_PACKAGE.is_file():
        pytest.fail(f"{MCP_REMOTE_PACKAGE.parent} is missing: run `npm ci --prefix tests/node` (.ci/run does)")
    installed = json.loads(MCP_REMOTE_PACKAGE.read_text())["version"]
    pinned = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["mcp-remote"]
    assert installed == pinned, f"installed mcp-remote {installed}, pinned {pinned}: rerun npm ci --prefix tests/node"


class HttpServer:
    def __init__(self, tmp_path: Path, env: dict[str, str], *, sse: bool = False) -> None:
        self.calls = tmp_path / "calls.jsonl"
        self.port_file = tmp_path / "port"
        self.log = (tmp_path / "http-server.log").open("wb")
        self.proc = subprocess.Popen(
            [PYTHON, str(HTTP_SERVER), str(self.port_file), str(self.calls), *(["--sse"] if sse else [])],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.url = f"http://127.0.0.1:{self._port()}/{'sse' if sse else 'mcp'}"

    def _port(self) -> int:
        import time

        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = Path(self.log.name).read_text(errors="replace")
                raise AssertionError(f"the HTTP test server did not start:\n{log}")
            time.sleep(0.02)
        return int(self.port_file.read_text())

    def recorded(self) -> list[dict[str, object]]:
        if not self.calls.exists():
            return []
        return [json.loads(line) for line in self.calls.read_text().splitlines()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.fixture
def http_servers(tmp_path: Path) -> Iterator[Callable[[bool], HttpServer]]:
    """``start(sse)``: the test server on a free loopback port, stopped after the test."""
    started: list[HttpServer] = []

    def start(sse: bool) -> HttpServer:
        started.append(HttpServer(tmp_path, isolated_env(tmp_path), sse=sse))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def http_server(http_servers: Callable[[bool], HttpServer]) -> HttpServer:
    return http_servers(False)


# Claude Code's .mcp.json: a Streamable HTTP server.
CLAUDE_CODE = """\
{{
  "mcpServers": {{
    "tickets": {{
      "type": "http",
      "url": "{url}",
      "headers": {{
        "Authorization": "Bearer ${{TICKETS_TOKEN}}",
        "X-Tenant": "acme"
      }}
    }}
  }}
}}
"""

# VS Code's .vscode/mcp.json (JSONC): an HTTP+SSE server.
VSCODE_SSE = """\
{{
  "servers": {{
    // the ticket tracker, still on SSE
    "tickets": {{
      "type": "sse",
      "url": "{url}",
      "headers": {{"Authorization": "Bearer ${{TICKETS_TOKEN}}", "X-Tenant": "acme"}},
    }},
  }},
}}
"""


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("shape", "container", "sse"),
    [(CLAUDE_CODE, "mcpServers", False), (VSCODE_SSE, "servers", True)],
    ids=["claude-code-streamable-http", "vscode-sse"],
)
async def test_wrapped_remote_server_is_guarded(
    tmp_path: Path, http_servers: Callable[[bool], HttpServer], shape: str, container: str, sse: bool
) -> None:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    from mcp_guard.clients.remote import plain
    from mcp_guard.jsonpos import parse

    require_mcp_remote()
    http_server = http_servers(sse)
    text = shape.format(url=http_server.url)
    config = tmp_path / "mcp.json"
    config.write_text(text, encoding="utf-8")
    policy = write_policy(
        tmp_path,
        {
            "version": "1",
            "default": "allow",
            "tools": {"delete_everything": {"action": "deny", "reason": "Deleting everything is not allowed."}},
        },
    )
    # No capsys: the SDK hands the child a real file for stderr.
    assert main(["wrap", "--config", str(config), "--remote", "--policy", str(policy)]) == 0
    entry = plain(parse(config.read_text(encoding="utf-8"), jsonc=True))[container]["tickets"]
    assert entry["type"] == "stdio"
    assert "--" not in entry["args"]  # the guard's options end at the server's command without it
    assert entry["args"][entry["args"].index("npx") :] == [
        "npx",
        "-y",
        "mcp-remote",
        http_server.url,
        "--header",
        "Authorization: Bearer ${TICKETS_TOKEN}",
        "--header",
        "X-Tenant: acme",
        *(["--transport", "sse-only"] if sse else []),
    ]

    env = isolated_env(tmp_path)
    home = Path(env["HOME"])
    auth_dir = tmp_path / "mcp-auth"
    env = {
        **env,
        "MCP_REMOTE_CONFIG_DIR": str(auth_dir),
        # Claude Code would expand ${TICKETS_TOKEN} itself; a client that does not leaves it to mcp-remote,
        # which expands it from its environment (the entry's env, passed on by the guard). This tests that path.
        "TICKETS_TOKEN": "t0ken",
        "npm_config_offline": "true",  # the pinned copy in tests/node or nothing
        "npm_config_update_notifier": "false",
    }
    stderr_path = tmp_path / "client-stderr.log"
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=env, cwd=NODE_DIR)
    with stderr_path.open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
            listed = await client.list_tools()
            assert {tool.name for tool in listed.tools} == {"echo", "whoami", "delete_everything"}

            echoed = await client.call_tool("echo", {"text": "hello"})
            assert not echoed.is_error
            assert [c.text for c in echoed.content if c.type == "text"] == ["hello"]

            refused = await client.call_tool("delete_everything", {})
            assert refused.is_error
            assert [c.text for c in refused.content if c.type == "text"] == [
                "mcp-guard refused this call to 'delete_everything' (policy rule tools.delete_everything.action): "
                "Deleting everything is not allowed. The call was not sent to the server."
            ]

            who = await client.call_tool("whoami", {})
            assert not who.is_error
            assert [c.text for c in who.content if c.type == "text"] == [
                json.dumps({"authorization": "Bearer t0ken", "x-tenant": "acme"}, sort_keys=True)
            ]
    stderr = stderr_path.read_text(errors="replace")

    # The refused call never reached the server; the others did, with the entry's headers.
    headers = {"authorization": "Bearer t0ken", "x-tenant": "acme"}
    assert http_server.recorded() == [{"tool": "echo", "headers": headers}, {"tool": "whoami", "headers": headers}]
    # mcp-remote connected without any sign-in (no browser), and kept its state where it was told to.
    transport = "SSEClientTransport" if sse else "StreamableHTTPClientTransport"
    assert f"Connected to remote server using {transport}" in stderr, stderr
    assert "Authentication required" not in stderr and "authorize" not in stderr.lower(), stderr
    assert (auth_dir / "mcp-remote-v1").is_dir()
    assert not (home / ".mcp-auth").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".mcp-auth")) == []

    assert main(["unwrap", "--config", str(config)]) == 0
    assert config.read_bytes() == text.encode("utf-8")


def test_missing_bridge_fails_loudly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The remote test fails, not skips, on a machine without npx or without tests/node installed."""
    import test_e2e_remote as me

    monkeypatch.setattr(me, "MCP_REMOTE_PACKAGE", tmp_path / "absent" / "package.json")
    with pytest.raises(pytest.fail.Exception, match=r"npm ci --prefix tests/node"):
        me.require_mcp_remote()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match=r"install Node.js"):
        me.require_mcp_remote()


def test_http_server_answers_directly(http_server: HttpServer) -> None:
    """The test server itself, without guard or bridge: what the guarded run is compared with."""
    import anyio
    from mcp import Client

    async def direct() -> str:
        async with Client(http_server.url) as client:
            result = await client.call_tool("echo", {"text": "direct"})
            return "".join(c.text for c in result.content if c.type == "text")

    assert anyio.run(direct) == "direct"
    assert http_server.recorded() == [{"tool": "echo", "headers": {}}]
