"""``mcp-guard wrap`` / ``unwrap`` and :mod:`mcp_guard.clients`: every config lives under tmp_path.

HOME, USERPROFILE, APPDATA and XDG_CONFIG_HOME point into tmp_path for every test, so the
real user's client configs are never read or written.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO_SERVER, PYTHON
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sandboxes import Sandbox, enter_sandbox, write
from sandboxes import main_captured as cli

from mcp_guard.cli import main
from mcp_guard.clients.edit import unwrap_text, wrap_text
from mcp_guard.clients.files import ConfigError, read_config, write_config
from mcp_guard.clients.known import client_config_paths
from mcp_guard.clients.launch import find_guard_command, guard_launch
from mcp_guard.jsonpos import JObject, parse

GUARD = find_guard_command()
BACKUP = re.compile(r"\.bak-\d{8}-\d{6}(-\d+)?$")


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    return enter_sandbox(tmp_path, monkeypatch)


def policy_file(sandbox: Sandbox, name: str = "policy.json") -> Path:
    return write(sandbox.root / name, json.dumps({"version": "1", "default": "allow"}) + "\n")


def backups(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(path.name + ".bak-"))


def servers_of(path: Path, key: str = "mcpServers") -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    servers = data[key]
    assert isinstance(servers, dict)
    return servers


def wrapped_args(policy: Path | None, command: str, args: list[str]) -> list[str]:
    options = ["--policy", str(policy)] if policy is not None else []
    # "--" only where the guard could not tell its options from the command without it.
    separator = ["--"] if not options or command.startswith("-") else []
    return [*GUARD[1:], *options, *separator, command, *args]


DESKTOP = """\
{
  "mcpServers": {
    "filesystem": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"],
      "env": {"ROOT": "/tmp", "TOKEN": "s3cr3t"}
    },
    "memory": {
      "command": "npx",
      "args": [
        "-y",
        "@modelcontextprotocol/server-memory"
      ]
    },
    "plain": {
      "command": "/usr/local/bin/plain-server"
    },
    "remote": {
      "type": "http",
      "url": "https://example.com/mcp"
    },
    "events": {
      "type": "sse",
      "url": "https://example.com/sse"
    }
  },
  "globalShortcut": "Ctrl+Space"
}
"""


# --------------------------------------------------------------------------- wrap / unwrap round trips


def test_wrap_claude_desktop(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(sandbox.desktop_config, DESKTOP)
    policy = policy_file(sandbox)
    code, _, err = cli(capsys, "wrap", "--client", "claude-desktop", "--policy", str(policy))
    assert code == 0, err
    servers = servers_of(config)
    assert list(servers) == ["filesystem", "memory", "plain", "remote", "events"]
    fs = servers["filesystem"]
    assert list(fs) == ["command", "args", "env"]
    assert fs["command"] == GUARD[0]
    assert os.path.isabs(fs["command"])
    assert fs["args"] == wrapped_args(
        policy, "npx", ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"]
    )
    assert fs["env"] == {"ROOT": "/tmp", "TOKEN": "s3cr3t"}
    assert servers["memory"]["args"] == wrapped_args(policy, "npx", ["-y", "@modelcontextprotocol/server-memory"])
    assert servers["plain"] == {"command": GUARD[0], "args": wrapped_args(policy, "/usr/local/bin/plain-server", [])}
    assert servers["remote"] == {"type": "http", "url": "https://example.com/mcp"}
    assert servers["events"] == {"type": "sse", "url": "https://example.com/sse"}
    assert json.loads(config.read_text())["globalShortcut"] == "Ctrl+Space"
    assert "mcpServers.remote: skipped (remote server" in err
    assert "mcpServers.events: skipped (remote server" in err
    # One backup, holding the original bytes.
    [backup] = backups(config)
    assert BACKUP.search(backup.name)
    assert backup.read_bytes() == DESKTOP.encode()


def test_wrap_twice_changes_nothing(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(sandbox.desktop_config, DESKTOP)
    policy = policy_file(sandbox)
    assert cli(capsys, "wrap", "--client", "claude-desktop", "--policy", str(policy))[0] == 0
    once = config.read_bytes()
    code, _, err = cli(capsys, "wrap", "--client", "claude-desktop", "--policy", str(policy))
    assert code == 0
    assert config.read_bytes() == once
    assert len(backups(config)) == 1  # no write, so no second backup
    assert "already wrapped, unchanged" in err
    assert "nothing to change" in err
    # Without --policy an already-wrapped entry keeps the policy it has.
    assert cli(capsys, "wrap", "--client", "claude-desktop")[0] == 0
    assert config.read_bytes() == once


def test_unwrap_restores_identical_bytes(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(sandbox.desktop_config, DESKTOP)
    policy = policy_file(sandbox)
    assert cli(capsys, "wrap", "--client", "claude-desktop", "--policy", str(policy))[0] == 0
    assert config.read_bytes() != DESKTOP.encode()
    code, _, err = cli(capsys, "unwrap", "--client", "claude-desktop")
    assert code == 0, err
    assert config.read_bytes() == DESKTOP.encode()
    assert len(backups(config)) == 2
    # Unwrapping again is a no-op.
    assert cli(capsys, "unwrap", "--client", "claude-desktop")[0] == 0
    assert config.read_bytes() == DESKTOP.encode()


def test_server_selection(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(sandbox.desktop_config, DESKTOP)
    code, _, err = cli(capsys, "wrap", "--client", "claude-desktop", "--server", "memory", "--server", "plain")
    assert code == 0, err
    servers = servers_of(config)
    assert servers["filesystem"]["command"] == "npx"
    assert servers["memory"]["command"] == GUARD[0]
    assert servers["plain"]["command"] == GUARD[0]
    assert servers["memory"]["args"] == wrapped_args(None, "npx", ["-y", "@modelcontextprotocol/server-memory"])
    # Unwrap just one of them.
    assert cli(capsys, "unwrap", "--client", "claude-desktop", "--server", "memory")[0] == 0
    servers = servers_of(config)
    assert servers["memory"]["command"] == "npx"
    assert servers["plain"]["command"] == GUARD[0]
    assert cli(capsys, "unwrap", "--client", "claude-desktop")[0] == 0
    assert config.read_bytes() == DESKTOP.encode()


def test_unknown_server_name_writes_nothing(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(sandbox.desktop_config, DESKTOP)
    code, _, err = cli(capsys, "wrap", "--client", "claude-desktop", "--server", "memory", "--server", "nope")
    assert code == 1
    assert "no server named 'nope'" in err
    assert config.read_bytes() == DESKTOP.encode()
    assert backups(config) == []


def test_dry_run_writes_nothing(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(sandbox.desktop_config, DESKTOP)
    policy = policy_file(sandbox)
    code, out, err = cli(capsys, "wrap", "--client", "claude-desktop", "--policy", str(policy), "--dry-run")
    assert code == 0
    assert config.read_bytes() == DESKTOP.encode()
    assert backups(config) == []
    assert out.startswith(f"--- {config}\n+++ {config} (new)\n")
    assert '-      "command": "npx",\n' in out
    assert f'+      "command": {json.dumps(GUARD[0])},\n' in out
    assert "dry run: nothing written" in err


def test_invalid_policy_refused(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(sandbox.desktop_config, DESKTOP)
    bad = write(sandbox.root / "bad.json", '{"version": "1", "defualt": "deny"}\n')
    code, _, err = cli(capsys, "wrap", "--client", "claude-desktop", "--policy", str(bad))
    assert code == 1
    assert "defualt" in err
    missing = cli(capsys, "wrap", "--client", "claude-desktop", "--policy", str(sandbox.root / "missing.json"))
    assert missing[0] == 1
    assert config.read_bytes() == DESKTOP.encode()


def test_policy_written_absolute(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(sandbox.desktop_config, DESKTOP)
    policy_file(sandbox, "rel-policy.json")
    monkeypatch.chdir(sandbox.root)
    assert cli(capsys, "wrap", "--client", "claude-desktop", "--policy", "rel-policy.json")[0] == 0
    args = servers_of(config)["plain"]["args"]
    assert args[args.index("--policy") + 1] == str(sandbox.root / "rel-policy.json")


def test_rewrap_with_another_policy(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(sandbox.desktop_config, DESKTOP)
    first, second = policy_file(sandbox, "one.json"), policy_file(sandbox, "two.json")
    assert cli(capsys, "wrap", "--client", "claude-desktop", "--policy", str(first))[0] == 0
    code, _, err = cli(capsys, "wrap", "--client", "claude-desktop", "--policy", str(second))
    assert code == 0
    assert "wrapped again" in err
    servers = servers_of(config)
    assert servers["filesystem"]["args"][:2] == ["--policy", str(second)]
    assert str(first) not in config.read_text()
    assert servers["memory"]["args"].count("--policy") == 1  # never double-wrapped
    assert cli(capsys, "unwrap", "--client", "claude-desktop")[0] == 0
    assert config.read_bytes() == DESKTOP.encode()


def test_env_and_other_keys_preserved(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    text = """\
{
  "mcpServers": {
    "db": {
      "type": "stdio",
      "command": "uvx",
      "args": ["mcp-server-postgres", "${DATABASE_URL}"],
      "env": {"PGPASSWORD": "p\\u00e4ss", "EMPTY": "", "PATH": "/opt/bin:/usr/bin"},
      "cwd": "/srv/db",
      "disabled": false,
      "alwaysAllow": ["query"]
    }
  }
}
"""
    config = write(sandbox.root / "custom-name.json", text)
    before = servers_of(config)["db"]
    assert cli(capsys, "wrap", "--config", str(config))[0] == 0
    after = servers_of(config)["db"]
    assert list(after) == list(before)
    for key in ("type", "env", "cwd", "disabled", "alwaysAllow"):
        assert after[key] == before[key]
    assert "p\\u00e4ss" in config.read_text()  # the escape is kept as written
    assert after["args"][-3:] == ["uvx", "mcp-server-postgres", "${DATABASE_URL}"]
    assert cli(capsys, "unwrap", "--config", str(config))[0] == 0
    assert config.read_bytes() == text.encode()


def test_unicode_and_four_space_indent(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    text = """\
{
    "mcpServers": {
        "notes": {
            "command": "/Users/zoë/bin/notes-mcp",
            "args": [
                "--vault",
                "/Users/zoë/Documents/Zettelkästen 📝"
            ],
            "env": {
                "GREETING": "こんにちは"
            }
        },
        "bare": {
            "command": "srv"
        }
    },
    "preferences": {"théme": "dark"}
}"""  # no trailing newline
    config = write(sandbox.desktop_config, text)
    assert cli(capsys, "wrap", "--client", "claude-desktop")[0] == 0
    wrapped = config.read_text(encoding="utf-8")
    assert "/Users/zoë/Documents/Zettelkästen 📝" in wrapped  # not \u-escaped
    assert "こんにちは" in wrapped
    assert not wrapped.endswith("\n")
    # The inserted args follow the file's four-space indentation.
    assert '        "bare": {\n            "command": ' in wrapped
    items = "".join(f"                {json.dumps(a)},\n" for a in [*GUARD[1:], "--"])
    assert f'            "args": [\n{items}                "srv"\n            ]\n' in wrapped
    notes = servers_of(config)["notes"]
    assert notes["args"] == wrapped_args(
        None, "/Users/zoë/bin/notes-mcp", ["--vault", "/Users/zoë/Documents/Zettelkästen 📝"]
    )
    assert cli(capsys, "unwrap", "--client", "claude-desktop")[0] == 0
    assert config.read_bytes() == text.encode("utf-8")


@pytest.mark.parametrize(
    "text",
    [
        # tabs, CRLF line endings
        '{\r\n\t"mcpServers": {\r\n\t\t"a": {\r\n\t\t\t"command": "x",\r\n\t\t\t"args": [\r\n\t\t\t\t"1"\r\n\t\t\t]\r\n'
        '\t\t},\r\n\t\t"b": {\r\n\t\t\t"command": "y"\r\n\t\t}\r\n\t}\r\n}\r\n',
        # one line, compact separators
        '{"mcpServers":{"a":{"command":"x","args":["1","2"]},"b":{"command":"y"}}}',
        # a UTF-8 byte order mark, args before command, empty args in a multi-line entry
        '\ufeff{\n  "mcpServers": {\n    "a": {\n      "args": [],\n      "command": "x"\n    },\n'
        '    "b": {\n      "command": "y",\n      "args": []\n    }\n  }\n}\n',
        # JSONC (VS Code, Cursor): comments and trailing commas
        '{\n  // my servers\n  "servers": {\n    "a": { /* fast */ "command": "x", "args": ["1", /* two */ "2",], },\n'
        '    "b": {\n      "command": "y", // no args\n    },\n  },\n}\n',
        # a multi-line empty array and odd spacing
        '{ "mcpServers" : { "a" : { "command" : "x" , "args" : [\n      ] } } }',
    ],
    ids=["tabs-crlf", "one-line", "bom-args-first", "jsonc", "odd-spacing"],
)
def test_round_trip_layouts(sandbox: Sandbox, capsys: pytest.CaptureFixture[str], text: str) -> None:
    config = write(sandbox.root / "mcp.json", text)
    code, _, err = cli(capsys, "wrap", "--config", str(config), "--policy", str(policy_file(sandbox)))
    assert code == 0, err
    wrapped = read_config(config)[1]
    assert wrapped != text
    root = parse(wrapped, jsonc=True)
    assert isinstance(root, JObject)
    assert cli(capsys, "wrap", "--config", str(config))[0] == 0
    assert read_config(config)[1] == wrapped
    assert cli(capsys, "unwrap", "--config", str(config))[0] == 0
    assert config.read_bytes() == text.encode("utf-8")


def test_one_line_entry_with_empty_args_comes_back_without_them(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """The one documented case that is restored by meaning, not byte for byte."""
    text = '{"mcpServers": {"a": {"command": "x", "args": []}}}\n'
    config = write(sandbox.root / "mcp.json", text)
    assert cli(capsys, "wrap", "--config", str(config))[0] == 0
    assert cli(capsys, "unwrap", "--config", str(config))[0] == 0
    assert config.read_text() == '{"mcpServers": {"a": {"command": "x"}}}\n'


def test_vscode_servers_key(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    text = """\
{
  "inputs": [
    {"type": "promptString", "id": "token", "description": "API token", "password": true}
  ],
  "servers": {
    // local GitHub server
    "github": {
      "type": "stdio",
      "command": "docker",
      "args": ["run", "-i", "--rm", "-e", "GITHUB_TOKEN", "ghcr.io/github/github-mcp-server"],
      "env": {"GITHUB_TOKEN": "${input:token}"}
    },
    "remote": {"type": "http", "url": "https://api.example.com/mcp"}
  }
}
"""
    config = write(sandbox.project / ".vscode" / "mcp.json", text)
    code, _, err = cli(capsys, "wrap", "--client", "vscode")
    assert code == 0, err
    wrapped = read_config(config)[1]
    assert "// local GitHub server" in wrapped
    root = parse(wrapped, jsonc=True)
    assert isinstance(root, JObject)
    assert "servers.github: wrapped" in err
    assert "servers.remote: skipped" in err
    assert '"type": "stdio",\n      "command": ' + json.dumps(GUARD[0]) in wrapped
    assert cli(capsys, "unwrap", "--client", "vscode")[0] == 0
    assert config.read_bytes() == text.encode()


def test_claude_code_files(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    project_json = '{\n  "mcpServers": {\n    "proj": {"command": "proj-server", "args": ["--x"]}\n  }\n}\n'
    user = {
        "numStartups": 12,
        "mcpServers": {"user-level": {"type": "stdio", "command": "user-server", "args": [], "env": {}}},
        "projects": {
            str(sandbox.project): {
                "allowedTools": [],
                "mcpServers": {"local": {"type": "stdio", "command": "local-server", "args": ["a"], "env": {}}},
            },
            "/some/other/project": {"mcpServers": {"elsewhere": {"command": "other-server"}}},
        },
        "userID": "abc",
    }
    user_text = json.dumps(user, indent=2)
    mcp_json = write(sandbox.project / ".mcp.json", project_json)
    claude_json = write(sandbox.home / ".claude.json", user_text)
    code, _, err = cli(capsys, "wrap", "--client", "claude-code")
    assert code == 0, err
    assert servers_of(mcp_json)["proj"]["args"] == wrapped_args(None, "proj-server", ["--x"])
    data = json.loads(claude_json.read_text())
    assert data["mcpServers"]["user-level"]["args"] == wrapped_args(None, "user-server", [])
    assert data["projects"][str(sandbox.project)]["mcpServers"]["local"]["args"] == wrapped_args(
        None, "local-server", ["a"]
    )
    assert data["projects"]["/some/other/project"] == {"mcpServers": {"elsewhere": {"command": "other-server"}}}
    assert "1 other project(s)" in err
    assert "Claude Code rewrites this file" in err
    assert cli(capsys, "unwrap", "--client", "claude-code")[0] == 0
    assert mcp_json.read_bytes() == project_json.encode()
    assert claude_json.read_bytes() == user_text.encode()


def test_claude_code_other_project_via_project_option(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    other = sandbox.root / "other"
    other.mkdir()
    user_text = json.dumps({"projects": {str(other): {"mcpServers": {"o": {"command": "o-server"}}}}}, indent=2)
    claude_json = write(sandbox.home / ".claude.json", user_text)
    assert cli(capsys, "wrap", "--client", "claude-code")[0] == 0  # nothing for this project
    assert claude_json.read_bytes() == user_text.encode()
    assert cli(capsys, "wrap", "--client", "claude-code", "--project", str(other))[0] == 0
    assert json.loads(claude_json.read_text())["projects"][str(other)]["mcpServers"]["o"]["command"] == GUARD[0]


def test_cursor_user_and_project_files(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    text = '{\n  "mcpServers": {\n    "s": {\n      "command": "s"\n    }\n  }\n}\n'
    user = write(sandbox.home / ".cursor" / "mcp.json", text)
    project = write(sandbox.project / ".cursor" / "mcp.json", text)
    assert cli(capsys, "wrap", "--client", "cursor")[0] == 0
    assert servers_of(user)["s"]["command"] == GUARD[0]
    assert servers_of(project)["s"]["command"] == GUARD[0]
    assert cli(capsys, "unwrap", "--client", "cursor")[0] == 0
    assert user.read_bytes() == text.encode()
    assert project.read_bytes() == text.encode()


def test_missing_client_config(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "wrap", "--client", "claude-desktop")
    assert code == 1
    assert "no Claude Desktop config file found" in err
    assert str(sandbox.desktop_config) in err


def test_invalid_json_reported_with_position(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(sandbox.root / "broken.json", '{\n  "mcpServers": {\n    "a": {"command": "x",}\n    "b": 1\n}\n')
    code, _, err = cli(capsys, "wrap", "--config", str(config))
    assert code == 1
    assert f"{config}:4:5: expected ',' or '}}'" in err


def test_recognises_entries_wrapped_by_hand(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    text = """\
{
  "mcpServers": {
    "bare-name": {"command": "mcp-guard", "args": ["--policy", "/p.json", "--", "npx", "-y", "pkg"]},
    "windows": {"command": "C:\\\\Tools\\\\mcp-guard.exe", "args": ["--", "node", "server.js"]},
    "module": {"command": "/usr/bin/python3", "args": ["-m", "mcp_guard", "--", "srv", "--flag"]},
    "no-dashes": {"command": "mcp-guard", "args": ["--policy", "/p.json", "srv"]},
    "broken": {"command": "mcp-guard", "args": ["--policy", "/p.json"]}
  }
}
"""
    config = write(sandbox.root / "mcp.json", text)
    code, _, err = cli(capsys, "wrap", "--config", str(config))
    assert code == 0
    assert config.read_bytes() == text.encode()
    assert err.count("already wrapped") == 4
    assert "mcpServers.broken: skipped (it runs mcp-guard but no server command follows)" in err
    assert cli(capsys, "unwrap", "--config", str(config))[0] == 0
    servers = servers_of(config)
    assert servers["bare-name"] == {"command": "npx", "args": ["-y", "pkg"]}
    assert servers["windows"] == {"command": "node", "args": ["server.js"]}
    assert servers["module"] == {"command": "srv", "args": ["--flag"]}
    # Nothing is left in args, and this one-line layout is the one wrap uses when it adds args.
    assert servers["no-dashes"] == {"command": "srv"}


def test_reads_wrapped_entries_with_the_guards_own_options(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every option of the guard that takes a value is skipped with its value, in each spelling, without `--`."""
    text = """\
{
  "mcpServers": {
    "store": {"command": "mcp-guard", "args": ["--approval-store", "/a.db", "srv", "x"]},
    "new-store": {"command": "mcp-guard", "args": ["--store", "/a.db", "--no-audit", "srv"]},
    "pins": {"command": "mcp-guard", "args": ["--pins", "/L.json", "srv", "--", "y"]},
    "lock-equals": {"command": "mcp-guard", "args": ["--lock=/L.json", "srv"]},
    "hash": {"command": "mcp-guard", "args": ["--policy-sha256", "ab12", "--monitor", "srv", "z"]}
  }
}
"""
    config = write(sandbox.root / "mcp.json", text)
    code, _, err = cli(capsys, "wrap", "--config", str(config))
    assert code == 0, err
    assert config.read_bytes() == text.encode()
    assert err.count("already wrapped") == 5
    assert cli(capsys, "unwrap", "--config", str(config))[0] == 0
    servers = servers_of(config)
    assert servers["store"] == {"command": "srv", "args": ["x"]}
    assert servers["new-store"] == {"command": "srv"}
    assert servers["pins"] == {"command": "srv", "args": ["--", "y"]}
    assert servers["lock-equals"] == {"command": "srv"}
    assert servers["hash"] == {"command": "srv", "args": ["z"]}


def test_keeps_mode_and_writes_through_symlinks(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    if sys.platform == "win32":
        pytest.skip("POSIX permissions and symlinks")
    real = write(sandbox.root / "dotfiles" / "claude_desktop_config.json", DESKTOP)
    real.chmod(0o600)
    link = sandbox.desktop_config
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    assert cli(capsys, "wrap", "--client", "claude-desktop")[0] == 0
    assert link.is_symlink()
    assert servers_of(real)["plain"]["command"] == GUARD[0]
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    [backup] = backups(real)
    assert backup.read_bytes() == DESKTOP.encode()
    assert not list(real.parent.glob(".*.tmp"))


def test_backup_names_do_not_collide(tmp_path: Path) -> None:
    from datetime import datetime

    config = write(tmp_path / "c.json", '{"mcpServers": {}}')
    now = datetime(2026, 1, 2, 3, 4, 5)
    first = write_config(config, config.read_bytes(), '{"mcpServers": {"a": 1}}', now)
    second = write_config(config, config.read_bytes(), '{"mcpServers": {"b": 2}}', now)
    assert first.name == "c.json.bak-20260102-030405"
    assert second.name == "c.json.bak-20260102-030405-2"
    assert first.read_text() == '{"mcpServers": {}}'
    assert second.read_text() == '{"mcpServers": {"a": 1}}'


def test_write_refuses_a_file_changed_meanwhile(tmp_path: Path) -> None:
    config = write(tmp_path / "c.json", '{"mcpServers": {}}')
    with pytest.raises(ConfigError, match="changed while"):
        write_config(config, b"something else", "{}")
    assert config.read_text() == '{"mcpServers": {}}'


def test_client_paths_per_platform(tmp_path: Path) -> None:
    home, project = tmp_path / "h", tmp_path / "p"
    env = {"APPDATA": str(tmp_path / "roaming")}
    paths = client_config_paths
    assert paths("claude-desktop", project_dir=project, home=home, environ={}, platform="darwin") == [
        home / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json"
    ]
    assert paths("claude-desktop", project_dir=project, home=home, environ=env, platform="win32") == [
        tmp_path / "roaming" / "Claude" / "claude_desktop_config.json"
    ]
    assert paths("claude-desktop", project_dir=project, home=home, environ={}, platform="linux") == [
        home / ".config" / "Claude" / "claude_desktop_config.json"
    ]
    assert paths("claude-code", project_dir=project, home=home, environ={}, platform="linux") == [
        home / ".claude.json",
        project / ".mcp.json",
    ]
    assert paths("cursor", project_dir=project, home=home, environ={}, platform="linux") == [
        home / ".cursor" / "mcp.json",
        project / ".cursor" / "mcp.json",
    ]
    assert paths("vscode", project_dir=project, home=home, environ={}, platform="linux") == [
        home / ".config" / "Code" / "User" / "mcp.json",
        project / ".vscode" / "mcp.json",
    ]


def test_guard_command_is_absolute() -> None:
    assert os.path.isabs(GUARD[0])
    launch = guard_launch("/abs/policy.json")
    assert launch.command == GUARD[0]
    assert launch.options == ("--policy", "/abs/policy.json")
    assert launch.prefix[-1] == "/abs/policy.json"
    assert launch.before("npx") == launch.prefix
    assert launch.before("-weird") == (*launch.prefix, "--")
    assert guard_launch(None).before("npx")[-1] == "--"  # the first word could name a subcommand


# --------------------------------------------------------------------------- the wrapped entry really runs


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_wrapped_entry_starts_the_server_behind_the_guard(sandbox: Sandbox) -> None:
    from mcp import Client, StdioServerParameters

    text = json.dumps(
        {"mcpServers": {"demo": {"command": PYTHON, "args": [str(DEMO_SERVER)], "env": {"DEMO": "1"}}}}, indent=2
    )
    config = write(sandbox.desktop_config, text)
    policy = write(
        sandbox.root / "deny-charges.json",
        json.dumps({"version": "1", "default": "allow", "tools": {"create_charge": {"action": "deny"}}}),
    )
    # No capsys here: the SDK hands sys.stderr to the child process, which needs a real file.
    assert main(["wrap", "--client", "claude-desktop", "--policy", str(policy)]) == 0
    entry = servers_of(config)["demo"]
    env = {**os.environ, **entry["env"], "PATH": os.fspath(sandbox.root / "empty-path")}  # no PATH lookups
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=env)
    async with Client(params, mode="auto") as client:
        listed = await client.list_tools()
        assert "create_charge" in {t.name for t in listed.tools}
        charge = {"amount": 1, "currency": "EUR", "customer_id": "cus_001"}
        refused = await client.call_tool("create_charge", charge)
        assert refused.is_error
        ok = await client.call_tool("list_customers", {})
        assert not ok.is_error


# --------------------------------------------------------------------------- property: wrap then unwrap is identity

_names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=8)
_words = st.text(st.characters(codec="utf-8"), max_size=12)
# A command named like the guard itself (any case, any folder) reads as an entry already wrapped.
_commands = _words.filter(lambda word: "mcp-guard" not in word.lower())
_entry = st.fixed_dictionaries(
    {"command": _commands},
    optional={
        "args": st.lists(_words, max_size=4),
        "env": st.dictionaries(_names, _words, max_size=3),
        "type": st.just("stdio"),
        "disabled": st.booleans(),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    servers=st.dictionaries(_names, _entry, min_size=1, max_size=4),
    indent=st.sampled_from([None, 2, 4, "\t"]),
    ensure_ascii=st.booleans(),
    trailing_newline=st.booleans(),
    policy=st.sampled_from([None, "/abs/pölicy.json"]),
)
def test_wrap_then_unwrap_is_identity(
    servers: dict[str, dict[str, Any]],
    indent: int | str | None,
    ensure_ascii: bool,
    trailing_newline: bool,
    policy: str | None,
) -> None:
    if indent is None:
        # The documented exception: a one-line entry with "args": [] comes back without it.
        for entry in servers.values():
            if entry.get("args") == []:
                entry.pop("args")
    text = json.dumps({"mcpServers": servers, "other": [1, 2]}, indent=indent, ensure_ascii=ensure_ascii)
    text += "\n" if trailing_newline else ""
    launch = guard_launch(policy, ["/opt/guard/bin/mcp-guard"])
    wrapped = wrap_text(text, launch).new_text
    data = json.loads(wrapped)
    for name, entry in servers.items():
        got = data["mcpServers"][name]
        assert got["command"] == "/opt/guard/bin/mcp-guard"
        assert got["args"] == [*launch.before(entry["command"]), entry["command"], *entry.get("args", [])]
        assert {k: v for k, v in got.items() if k not in ("command", "args")} == {
            k: v for k, v in entry.items() if k not in ("command", "args")
        }
    assert wrap_text(wrapped, launch).new_text == wrapped
    assert unwrap_text(wrapped).new_text == text


def test_top_level_must_be_an_object(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(sandbox.root / "list.json", "[1, 2]\n")
    code, _, err = cli(capsys, "wrap", "--config", str(config))
    assert code == 1
    assert f"{config}: expected a JSON object" in err


@pytest.mark.parametrize("flag", ["--pin-policy-hash", "--lock"])  # a bare --lock is the older spelling
def test_wrap_pins_the_policy_hash(tmp_path: Path, flag: str) -> None:
    import hashlib
    import subprocess
    import sys

    from mcp_guard.cli import main as _unused  # noqa: F401 - the package is importable

    config = tmp_path / "claude_desktop_config.json"
    config.write_text('{"mcpServers": {"pay": {"command": "npx", "args": ["-y", "pay-mcp"]}}}\n', encoding="utf-8")
    policy = tmp_path / "policy.json"
    policy.write_text('{"version": "1", "default": "deny"}\n', encoding="utf-8")
    digest = hashlib.sha256(policy.read_bytes()).hexdigest()
    guard = Path(sys.executable).parent / "mcp-guard"
    command = [str(guard)] if guard.exists() else [sys.executable, "-m", "mcp_guard"]
    done = subprocess.run(
        [*command, "wrap", "--config", str(config), "--policy", str(policy), flag],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    args = json.loads(config.read_text(encoding="utf-8"))["mcpServers"]["pay"]["args"]
    assert args[args.index("--policy-sha256") + 1] == digest
    assert args[args.index(digest) + 1 :] == ["npx", "-y", "pay-mcp"]
    again = subprocess.run(
        [*command, "unwrap", "--config", str(config)], capture_output=True, text=True, check=False, timeout=60
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(config.read_text(encoding="utf-8"))["mcpServers"]["pay"] == {
        "command": "npx",
        "args": ["-y", "pay-mcp"],
    }


def test_wrap_passes_a_lock_file_on(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    from mcp_guard.integrity.lockfile import LockFile

    lock = sandbox.root / "pins.lock.json"
    LockFile.from_tools([{"name": "echo", "inputSchema": {"type": "object"}}]).save(lock)
    config = write(sandbox.desktop_config, DESKTOP)
    policy = policy_file(sandbox)
    os.chdir(sandbox.root)
    # A lock pins one server: on all three servers it would hide the others' tools.
    wrap = ("wrap", "--client", "claude-desktop", "--policy", str(policy), "--lock", lock.name)
    code, _, err = cli(capsys, *wrap)
    assert code == 2
    assert "pass --server NAME for the one it was made for" in err
    assert config.read_text(encoding="utf-8") == DESKTOP
    code, _, err = cli(capsys, *wrap, "--server", "plain")
    assert code == 0, err
    assert "note: mcpServers.plain runs /usr/local/bin/plain-server, but the lock" in err
    args = servers_of(config)["plain"]["args"]
    assert args == [*GUARD[1:], "--policy", str(policy), "--lock", str(lock), "/usr/local/bin/plain-server"]
    assert servers_of(config)["memory"]["command"] == "npx"
    assert cli(capsys, "unwrap", "--client", "claude-desktop")[0] == 0
    assert config.read_text(encoding="utf-8") == DESKTOP


def test_wrap_refuses_a_lock_file_the_guard_cannot_use(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(sandbox.desktop_config, DESKTOP)
    broken = write(sandbox.root / "broken.lock.json", '{"version": 1, "tools": [}')
    code, _, err = cli(capsys, "wrap", "--client", "claude-desktop", "--lock", str(broken))
    assert code == 1
    assert "not wrapping: the lock file would stop every wrapped server from starting" in err
    assert f"{broken}:1:26: invalid JSON" in err
    assert config.read_text(encoding="utf-8") == DESKTOP
    assert backups(config) == []


def inspector_split(args: list[str]) -> list[str]:
    """What a tool that splits its own argv at the first ``--`` keeps of an entry's args (the MCP Inspector's
    ``--config F --server S`` passes the entry's args through such a split)."""
    return args[: args.index("--")] if "--" in args else args


def test_wrapped_entries_survive_a_split_at_the_first_separator(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    from mcp_guard.clients.launch import split_guard_args

    config = write(sandbox.desktop_config, DESKTOP)
    policy = policy_file(sandbox)
    assert cli(capsys, "wrap", "--client", "claude-desktop", "--policy", str(policy))[0] == 0
    servers = servers_of(config)
    for name, server in (
        ("filesystem", ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"]),
        ("memory", ["npx", "-y", "@modelcontextprotocol/server-memory"]),
        ("plain", ["/usr/local/bin/plain-server"]),
    ):
        args = servers[name]["args"]
        assert inspector_split(args) == args, name
        split = split_guard_args(servers[name]["command"], args)  # read back as the guard reads it
        assert split is not None and split[0][-2:] == ["--policy", str(policy)] and args[split[1] :] == server
    assert cli(capsys, "unwrap", "--client", "claude-desktop")[0] == 0
    assert config.read_bytes() == DESKTOP.encode()


def test_separator_is_kept_where_the_command_would_read_as_an_option(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    odd, test = '"odd": {"command": "-odd-server", "args": ["x"]}', '"test": {"command": "test", "args": ["-v"]}'
    text = '{"mcpServers": {' + odd + ", " + test + "}}"
    config = write(sandbox.desktop_config, text)
    policy = policy_file(sandbox)
    assert cli(capsys, "wrap", "--client", "claude-desktop", "--policy", str(policy))[0] == 0
    assert servers_of(config)["odd"]["args"][-3:] == ["--", "-odd-server", "x"]
    # "test" names a subcommand, but after the guard's options it can only be the server's command.
    assert servers_of(config)["test"]["args"][-4:] == ["--policy", str(policy), "test", "-v"]
    assert cli(capsys, "unwrap", "--client", "claude-desktop")[0] == 0
    assert config.read_bytes() == text.encode()
