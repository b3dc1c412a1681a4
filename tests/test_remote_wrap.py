"""``mcp-guard wrap --remote`` / ``unwrap`` on remote (``url``) entries: every config lives under tmp_path.

The end-to-end run of a wrapped remote entry (a real client, mcp-remote, an HTTP server) is in
tests/test_e2e_remote.py; these check the edits themselves, for each client's config shape.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sandboxes import enter_sandbox, write
from sandboxes import main_captured as cli

from mcp_guard.cli import split_command
from mcp_guard.clients.edit import unwrap_text, wrap_text
from mcp_guard.clients.launch import find_guard_command, guard_launch
from mcp_guard.clients.remote import plain
from mcp_guard.jsonpos import JObject, parse

GUARD = find_guard_command()
BRIDGE = ["npx", "-y", "mcp-remote"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return enter_sandbox(tmp_path, monkeypatch).home


def entry_text(text: str, container: str, name: str) -> str:
    """The exact text of one entry's value, as wrap records it."""
    root = parse(text, jsonc=True)
    assert isinstance(root, JObject)
    servers = root.get(container)
    assert servers is not None and isinstance(servers.value, JObject)
    member = servers.value.get(name)
    assert member is not None
    return text[member.value.start : member.value.end]


def servers_of(path: Path, key: str = "mcpServers") -> dict[str, Any]:
    root = parse(path.read_text(encoding="utf-8"), jsonc=True)
    assert isinstance(root, JObject)
    member = root.get(key)
    assert member is not None
    servers = plain(member.value)
    assert isinstance(servers, dict)
    return servers


def remote_args(record: str, url: str, *extra: str, options: tuple[str, ...] = ()) -> list[str]:
    return [*GUARD[1:], *options, "--remote-entry", record, *BRIDGE, url, *extra]


# --------------------------------------------------------------------------- each client's shape, there and back

CLAUDE_CODE = """\
{
  "mcpServers": {
    "local": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-everything"]},
    "docs": {
      "type": "http",
      "url": "https://mcp.example.com/mcp",
      "headers": {
        "Authorization": "Bearer ${DOCS_TOKEN}",
        "X-Tenant": "acme"
      }
    },
    "events": {
      "type": "sse",
      "url": "https://events.example.com/sse"
    }
  }
}
"""

CURSOR = """\
{
  "mcpServers": {
    "linear": {
      "url": "https://mcp.linear.app/mcp",
      "headers": {"Authorization": "Bearer ${env:LINEAR_TOKEN}"}
    }
  }
}
"""

VSCODE = """\
{
  "inputs": [
    {"type": "promptString", "id": "api-key", "description": "API key", "password": true}
  ],
  "servers": {
    // the hosted one
    "hosted": {
      "type": "http",
      "url": "https://api.example.com/mcp", // production
      "headers": {
        "X-Api-Key": "${input:api-key}",
      },
      "dev": {"watch": "src/**"},
    },
  },
}
"""

DESKTOP = """\
{
  "mcpServers": {
    "remote": {"url": "http://localhost:8765/mcp"}
  },
  "globalShortcut": "Ctrl+Space"
}
"""


def test_claude_code_project_file(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(Path.cwd() / ".mcp.json", CLAUDE_CODE)
    code, _, err = cli(capsys, "wrap", "--client", "claude-code", "--remote")
    assert code == 0, err
    assert "mcpServers.docs: wrapped (remote, through mcp-remote)" in err
    assert "mcpServers.events: wrapped (remote, through mcp-remote)" in err
    assert "mcpServers.local: wrapped\n" in err
    assert "opens the sign-in page in your browser" in err and "~/.mcp-auth" in err
    servers = servers_of(config)
    assert servers["docs"] == {
        "type": "stdio",
        "command": GUARD[0],
        "args": remote_args(
            entry_text(CLAUDE_CODE, "mcpServers", "docs"),
            "https://mcp.example.com/mcp",
            "--header",
            "Authorization: Bearer ${DOCS_TOKEN}",
            "--header",
            "X-Tenant: acme",
        ),
    }
    assert servers["events"] == {
        "type": "stdio",
        "command": GUARD[0],
        "args": remote_args(
            entry_text(CLAUDE_CODE, "mcpServers", "events"),
            "https://events.example.com/sse",
            "--transport",
            "sse-only",
        ),
    }
    # The layout follows the file: one item per line, indented like the entry's keys.
    wrapped = config.read_text(encoding="utf-8")
    assert '      "type": "stdio",\n      "command": ' in wrapped
    assert '      "args": [\n        ' in wrapped
    assert cli(capsys, "wrap", "--client", "claude-code", "--remote")[2].count("already wrapped") == 3
    assert config.read_text(encoding="utf-8") == wrapped
    code, _, err = cli(capsys, "unwrap", "--client", "claude-code")
    assert code == 0, err
    assert "mcpServers.docs: unwrapped (back to the remote entry it was)" in err
    assert config.read_bytes() == CLAUDE_CODE.encode()


def test_cursor_user_file(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(home / ".cursor" / "mcp.json", CURSOR)
    assert cli(capsys, "wrap", "--client", "cursor", "--remote")[0] == 0
    assert servers_of(config)["linear"] == {
        "command": GUARD[0],
        "args": remote_args(
            entry_text(CURSOR, "mcpServers", "linear"),
            "https://mcp.linear.app/mcp",
            "--header",
            "Authorization: Bearer ${env:LINEAR_TOKEN}",
        ),
    }
    assert cli(capsys, "unwrap", "--client", "cursor")[0] == 0
    assert config.read_bytes() == CURSOR.encode()


def test_vscode_jsonc_with_inputs(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(Path.cwd() / ".vscode" / "mcp.json", VSCODE)
    code, _, err = cli(capsys, "wrap", "--client", "vscode", "--remote")
    assert code == 0, err
    wrapped = config.read_text(encoding="utf-8")
    assert "// the hosted one" in wrapped
    hosted = servers_of(config, "servers")["hosted"]
    assert hosted == {
        "type": "stdio",
        "command": GUARD[0],
        "args": remote_args(
            entry_text(VSCODE, "servers", "hosted"),
            "https://api.example.com/mcp",
            "--header",
            "X-Api-Key: ${input:api-key}",
        ),
        "dev": {"watch": "src/**"},
    }
    assert "credentials" not in err  # a ${input:...} value is not on any command line
    assert cli(capsys, "unwrap", "--client", "vscode")[0] == 0
    assert config.read_bytes() == VSCODE.encode()


def test_claude_desktop_and_loopback_http(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(home / ".config" / "Claude" / "claude_desktop_config.json", DESKTOP)
    assert cli(capsys, "wrap", "--client", "claude-desktop", "--remote")[0] == 0
    entry = entry_text(DESKTOP, "mcpServers", "remote")
    # Plain http to localhost is what mcp-remote allows without --allow-http.
    assert servers_of(config)["remote"] == {
        "command": GUARD[0],
        "args": remote_args(entry, "http://localhost:8765/mcp"),
    }
    # A one-line entry stays on one line.
    assert '"remote": {"command": ' in config.read_text(encoding="utf-8")
    assert cli(capsys, "unwrap", "--client", "claude-desktop")[0] == 0
    assert config.read_bytes() == DESKTOP.encode()


def test_claude_code_user_file_per_project(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = str(Path.cwd())
    text = json.dumps(
        {
            "numStartups": 3,
            "mcpServers": {"user-remote": {"type": "http", "url": "https://u.example.com/mcp"}},
            "projects": {project: {"mcpServers": {"p": {"type": "sse", "url": "https://p.example.com/sse"}}}},
        },
        indent=2,
    )
    config = write(home / ".claude.json", text)
    code, _, err = cli(capsys, "wrap", "--client", "claude-code", "--remote")
    assert code == 0, err
    data = json.loads(config.read_text())
    assert data["mcpServers"]["user-remote"]["args"][-2:] == ["mcp-remote", "https://u.example.com/mcp"]
    assert data["projects"][project]["mcpServers"]["p"]["args"][-3:] == [
        "https://p.example.com/sse",
        "--transport",
        "sse-only",
    ]
    assert cli(capsys, "unwrap", "--client", "claude-code")[0] == 0
    assert config.read_text() == text


# --------------------------------------------------------------------------- without --remote; what cannot be wrapped


def test_without_remote_flag_says_how(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(home / "mcp.json", CLAUDE_CODE)
    code, _, err = cli(capsys, "wrap", "--config", str(config))
    assert code == 0, err
    assert "mcpServers.docs: skipped (remote server with a 'url'; add --remote to guard it through mcp-remote)" in err
    assert "mcpServers.events: skipped (remote server with a 'url'; add --remote to guard it through mcp-remote)" in err
    servers = servers_of(config)
    assert servers["docs"]["url"] == "https://mcp.example.com/mcp"
    assert servers["local"]["command"] == GUARD[0]
    # unwrap leaves remote entries alone and says so
    code, _, err = cli(capsys, "unwrap", "--config", str(config))
    assert "mcpServers.docs: not wrapped, unchanged" in err
    assert config.read_bytes() == CLAUDE_CODE.encode()


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"type": "ws", "url": "wss://x.example.com"}, "mcp-remote does not connect over WebSocket"),
        ({"url": "https://x.example.com", "headers": {"X.Dotted": "1"}}, "header names made of A-Z a-z 0-9 _ -"),
        ({"url": "https://x.example.com", "headers": {"A": "1\nB: 2"}}, "header 'A' spans lines"),
        ({"url": "https://x.example.com", "headers": {"A": 1}}, "header 'A' is not a string"),
        ({"url": "https://x.example.com", "headers": ["A: 1"]}, "'headers' is not an object"),
        ({"url": "https://x.example.com", "oauth": {"clientId": "c"}}, "its 'oauth' is the client's own sign-in"),
        ({"url": "https://x.example.com", "headersHelper": "/bin/h"}, "its 'headersHelper'"),
        ({"url": "https://x.example.com", "command": "srv"}, "it has both 'url' and 'command'"),
        ({"url": "ftp://x.example.com"}, "is not an http(s) URL"),
        ({"url": 3}, "'url' is not a string"),
        ({"type": "sse"}, "no 'url' string"),
    ],
)
def test_entries_mcp_remote_cannot_stand_in_for(
    home: Path, capsys: pytest.CaptureFixture[str], entry: dict[str, Any], reason: str
) -> None:
    text = json.dumps({"mcpServers": {"r": entry}}, indent=2) + "\n"
    config = write(home / "mcp.json", text)
    code, _, err = cli(capsys, "wrap", "--config", str(config), "--remote")
    assert code == 0, err
    assert "mcpServers.r: skipped (remote server" in err
    assert reason in err
    assert config.read_bytes() == text.encode()


def test_duplicate_keys_are_not_wrapped() -> None:
    text = '{"mcpServers": {"r": {"url": "https://a.example.com", "url": "https://b.example.com"}}}'
    outcome = wrap_text(text, guard_launch(None, ["/opt/bin/mcp-guard"]), remote=True)
    assert not outcome.changed
    assert outcome.entries[0].detail == "remote server with a 'url'; not wrapped: key 'url' appears twice"


@pytest.mark.parametrize(
    ("url", "extra"),
    [
        ("http://10.1.2.3:8080/mcp", ["--allow-http"]),  # mcp-remote refuses this without the flag
        ("http://[::1]:9000/mcp", ["--allow-http"]),  # mcp-remote's loopback list is localhost and 127.0.0.1 only
        ("http://127.0.0.1:9000/mcp", []),
        ("HTTPS://EXAMPLE.COM/mcp", []),
        ("${BASE_URL}/mcp", []),  # filled in by the client; mcp-remote checks what it gets
    ],
)
def test_plain_http_keeps_working(url: str, extra: list[str]) -> None:
    text = json.dumps({"mcpServers": {"r": {"url": url}}})
    wrapped = wrap_text(text, guard_launch(None, ["/opt/bin/mcp-guard"]), remote=True).new_text
    args = json.loads(wrapped)["mcpServers"]["r"]["args"]
    assert args == ["--remote-entry", json.dumps({"url": url}), *BRIDGE, url, *extra]


def test_literal_credentials_are_pointed_out(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = json.dumps(
        {
            "mcpServers": {
                "r": {"url": "https://x.example.com", "headers": {"Authorization": "Bearer abc", "X-Tenant": "acme"}},
                "s": {"url": "https://y.example.com", "headers": {"X-Api-Key": "${KEY}"}},
            }
        }
    )
    config = write(home / "mcp.json", text)
    err = cli(capsys, "wrap", "--config", str(config), "--remote")[2]
    assert "other users of this machine can read in the process list: r: Authorization;" in err


# --------------------------------------------------------------------------- options, edits after wrapping


def test_rewrap_with_another_policy_keeps_the_original(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(home / "mcp.json", CLAUDE_CODE)
    first = write(tmp_path / "a.json", '{"version": "1", "default": "allow"}\n')
    second = write(tmp_path / "b.json", '{"version": "1", "default": "deny"}\n')
    assert cli(capsys, "wrap", "--config", str(config), "--remote", "--policy", str(first))[0] == 0
    # --remote is not needed again: an entry wrap --remote made is wrapped again the same way.
    code, _, err = cli(capsys, "wrap", "--config", str(config), "--policy", str(second))
    assert code == 0, err
    assert "mcpServers.docs: wrapped again" in err
    docs = servers_of(config)["docs"]
    assert docs["args"] == remote_args(
        entry_text(CLAUDE_CODE, "mcpServers", "docs"),
        "https://mcp.example.com/mcp",
        "--header",
        "Authorization: Bearer ${DOCS_TOKEN}",
        "--header",
        "X-Tenant: acme",
        options=("--policy", str(second)),
    )
    assert cli(capsys, "unwrap", "--config", str(config))[0] == 0
    assert config.read_bytes() == CLAUDE_CODE.encode()


def test_unwrap_keeps_edits_made_after_wrapping(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = json.dumps({"mcpServers": {"r": {"type": "http", "url": "https://old.example.com/mcp"}}}, indent=2)
    config = write(home / "mcp.json", text)
    assert cli(capsys, "wrap", "--config", str(config), "--remote")[0] == 0
    edited = config.read_text().replace('"https://old.example.com/mcp"\n', '"https://new.example.com/mcp"\n')
    assert edited != config.read_text()
    config.write_text(edited)
    code, _, err = cli(capsys, "unwrap", "--config", str(config))
    assert code == 0, err
    assert "its mcp-remote arguments changed after wrapping, so it keeps running mcp-remote, unguarded" in err
    assert servers_of(config)["r"] == {
        "type": "stdio",
        "command": "npx",
        "args": ["-y", "mcp-remote", "https://new.example.com/mcp"],
    }


def test_unwrap_keeps_keys_added_after_wrapping() -> None:
    text = json.dumps({"mcpServers": {"r": {"url": "https://x.example.com/mcp"}}})
    wrapped = wrap_text(text, guard_launch(None, ["/opt/bin/mcp-guard"]), remote=True).new_text
    data = json.loads(wrapped)
    data["mcpServers"]["r"]["env"] = {"A": "1"}
    outcome = unwrap_text(json.dumps(data))
    assert outcome.entries[0].detail.startswith("its other keys changed after wrapping")
    assert json.loads(outcome.new_text)["mcpServers"]["r"] == {
        "command": "npx",
        "args": ["-y", "mcp-remote", "https://x.example.com/mcp"],
        "env": {"A": "1"},
    }


def test_unwrap_accepts_a_pinned_bridge() -> None:
    """Pinning mcp-remote's version (or running it another way) by hand still unwraps exactly."""
    text = '{"mcpServers": {"r": {"url": "https://x.example.com/mcp"}}}'
    wrapped = wrap_text(text, guard_launch(None, ["/opt/bin/mcp-guard"]), remote=True).new_text
    pinned = wrapped.replace('"npx", "-y", "mcp-remote"', '"npx", "-y", "mcp-remote@0.15.1"')
    assert pinned != wrapped
    assert unwrap_text(pinned).new_text == text


def test_the_guard_reads_and_ignores_the_kept_entry() -> None:
    record = '{\n  "url": "https://x.example.com", "headers": {"A": "-- b"}\n}'
    argv = ["--policy", "/p.json", "--remote-entry", record, "--", *BRIDGE, "https://x.example.com"]
    assert split_command(argv) == (argv[:4], [*BRIDGE, "https://x.example.com"])
    # Without `--` too: the kept entry is the option's value, not the server's command.
    assert split_command(argv[2:4] + argv[5:]) == (argv[2:4], [*BRIDGE, "https://x.example.com"])


def test_dry_run_and_server_selection(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(home / "mcp.json", CLAUDE_CODE)
    code, out, err = cli(capsys, "wrap", "--config", str(config), "--remote", "--server", "events", "--dry-run")
    assert code == 0, err
    assert '-      "type": "sse",\n' in out and '+      "type": "stdio",\n' in out
    assert '-      "url": "https://mcp.example.com/mcp",\n' not in out  # docs was not chosen
    assert config.read_bytes() == CLAUDE_CODE.encode()


# --------------------------------------------------------------------------- property: wrap --remote, unwrap: identity

_header_names = st.from_regex(r"[A-Za-z0-9_-]{1,10}", fullmatch=True)
_values = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12)
_remote_entry = st.fixed_dictionaries(
    {"url": st.sampled_from(["https://a.example.com/mcp", "http://localhost:3000/sse", "http://h.example:1/x"])},
    optional={
        "type": st.sampled_from(["http", "sse", "streamable-http", "HTTP"]),
        "headers": st.dictionaries(_header_names, _values, max_size=3).filter(
            lambda h: len({k.lower() for k in h}) == len(h)
        ),
        "disabled": st.booleans(),
        "description": _values,
    },
)


@st.composite
def _shuffled(draw: st.DrawFn, entries: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """An entry with its keys in any order (``url`` need not come first, nor ``headers`` last)."""
    entry = draw(entries)
    return {key: entry[key] for key in draw(st.permutations(list(entry)))}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    servers=st.dictionaries(st.text(min_size=1, max_size=6), _shuffled(_remote_entry), min_size=1, max_size=3),
    indent=st.sampled_from([None, 2, 4, "\t"]),
    ensure_ascii=st.booleans(),
    policy=st.sampled_from([None, "/abs/pölicy.json"]),
)
def test_wrap_remote_then_unwrap_is_identity(
    servers: dict[str, dict[str, Any]], indent: int | str | None, ensure_ascii: bool, policy: str | None
) -> None:
    text = json.dumps({"mcpServers": servers, "other": [1]}, indent=indent, ensure_ascii=ensure_ascii)
    launch = guard_launch(policy, ["/opt/guard/bin/mcp-guard"])
    wrapped = wrap_text(text, launch, remote=True).new_text
    data = json.loads(wrapped)
    for name, entry in servers.items():
        got = data["mcpServers"][name]
        assert got["command"] == "/opt/guard/bin/mcp-guard"
        args = got["args"]
        cut = args.index("--remote-entry") + 2
        assert "--" not in args[:cut]
        assert args[: cut - 2] == list(launch.options)
        assert args[cut - 2] == "--remote-entry" and json.loads(args[cut - 1]) == entry
        headers = [a for name, value in entry.get("headers", {}).items() for a in ("--header", f"{name}: {value}")]
        transport = ["--transport", "sse-only"] if entry.get("type") == "sse" else []
        allow_http = ["--allow-http"] if entry["url"].startswith("http://h.example") else []
        assert args[cut:] == [*BRIDGE, entry["url"], *headers, *transport, *allow_http]
        assert {k: v for k, v in got.items() if k not in ("command", "args", "type")} == {
            k: v for k, v in entry.items() if k not in ("url", "headers", "type")
        }
        assert got.get("type") == ("stdio" if "type" in entry else None)
    assert wrap_text(wrapped, launch, remote=True).new_text == wrapped
    assert unwrap_text(wrapped).new_text == text


def test_warns_when_npx_is_missing(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(home / "mcp.json", CURSOR)
    (tmp_path / "empty-path").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    code, _, err = cli(capsys, "wrap", "--config", str(config), "--remote")
    assert code == 0, err
    assert "note: npx is not on PATH here; the wrapped remote servers start mcp-remote with it" in err
    # Stdio-only wraps say nothing about it.
    config = write(home / "stdio.json", '{"mcpServers": {"a": {"command": "srv"}}}')
    err = cli(capsys, "wrap", "--config", str(config), "--remote")[2]
    assert "not on PATH" not in err and "mcp-remote" not in err, err
