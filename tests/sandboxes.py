"""A home of the test's own for the commands that read and write client configs and policies.

``wrap``, ``unwrap``, ``init`` and ``pins`` find client configs and default policy folders from HOME,
APPDATA and the XDG variables; every test that runs them points those into ``tmp_path``: in this
process (:func:`enter_sandbox`, for ``main`` called directly), or in an environment for a subprocess
or the ``cli`` fixture (:func:`sandbox_env`). The conftest session check still guards the real ones.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import guard_command

from mcp_guard.cli import main

# Set by the user's shell, they would send a command to the user's own files.
UNSET = ("MCP_GUARD_POLICY", "CLAUDE_CONFIG_DIR")


def home_vars(home: Path) -> dict[str, str]:
    """The variables that place the user's folders, all under ``home`` (platformdirs' rules on Linux)."""
    return {
        "HOME": str(home),
        "USERPROFILE": str(home),
        "APPDATA": str(home / "AppData" / "Roaming"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
    }


def sandbox_env(tmp_path: Path) -> dict[str, str]:
    """This process's environment with HOME and every user folder inside ``tmp_path/home``."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(home_vars(home))
    return env


@dataclass
class Sandbox:
    root: Path
    home: Path
    project: Path

    @property
    def desktop_config(self) -> Path:
        return self.home / ".config" / "Claude" / "claude_desktop_config.json"


def enter_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """This process moved into ``tmp_path``: its home there, and ``tmp_path/project`` as working folder."""
    home = tmp_path / "home"
    project = tmp_path / "project"
    home.mkdir()
    project.mkdir()
    for name, value in home_vars(home).items():
        monkeypatch.setenv(name, value)
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(project)
    return Sandbox(tmp_path, home, project)


def write(path: Path, text: str) -> Path:
    """``text`` as UTF-8 bytes at ``path`` (folders made), exactly: no newline translation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def main_captured(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``mcp-guard ARGV`` through ``main`` in this process: exit code, stdout, stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def guard_process(
    tmp_path: Path, *argv: str, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 150
) -> subprocess.CompletedProcess[str]:
    """``mcp-guard ARGV`` run by the installed script in the sandbox of ``tmp_path``, as a client or shell would."""
    return subprocess.run(
        [*guard_command(), *argv],
        cwd=cwd or tmp_path,
        env=dict(env) if env is not None else sandbox_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
