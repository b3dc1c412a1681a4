"""The README's quick start: the demo command must work and show what the README promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, isolated_env


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_demo_runs_through_the_guard(tmp_path: Path, mode: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--mode", mode],
        capture_output=True,
        text=True,
        env=isolated_env(tmp_path),
        cwd=tmp_path,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "  ..............................xxxxx" in out
    assert "Rate limit reached: at most 30 calls per minute (counter 'track_behavior_event_rate')" in out
    assert "OK: the guard allowed 30 events, refused the next 5 and denied the charge." in out


def test_dev_script_lists_its_commands() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "dev.py"), "help"], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0 and "demo|test|lint|bench" in done.stdout


# --- `python3 dev.py test` installs what it can and says what is missing (issue 18, trap 12) -------------------


def _dev_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checkout(tmp_path: Path) -> Path:
    """A checkout's tests/node without node_modules."""
    root = tmp_path / "checkout"
    (root / "tests" / "node").mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        (root / "tests" / "node" / name).write_bytes((ROOT / "tests" / "node" / name).read_bytes())
    return root


def _fake(bin_dir: Path, name: str, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    program = bin_dir / name
    program.write_text(f"#!/bin/sh\n{script}\n")
    program.chmod(0o755)


@pytest.mark.skipif(os.name != "posix", reason="shell scripts stand in for npm, redis-server and go")
def test_dev_test_installs_the_node_servers_when_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev = _dev_module()
    root = _checkout(tmp_path)
    calls = tmp_path / "npm-calls"
    bin_dir = tmp_path / "bin"
    # A stand-in for npm: records its arguments and "installs" by creating node_modules.
    _fake(bin_dir, "npm", f'echo "$@" >> "{calls}"\nmkdir -p "{root}/tests/node/node_modules"')
    _fake(bin_dir, "redis-server", "exit 0")
    _fake(bin_dir, "go", "exit 0")

    dev.prepare_tests(root, str(bin_dir))
    node_dir = root / "tests" / "node"
    assert calls.read_text().splitlines() == [f"ci --prefix {node_dir} --no-audit --no-fund --loglevel=error"]
    assert capsys.readouterr().err == "dev.py: installing the Node test servers: npm ci --prefix tests/node\n"

    dev.prepare_tests(root, str(bin_dir))  # installed and current: nothing to do, nothing said
    assert len(calls.read_text().splitlines()) == 1
    assert capsys.readouterr().err == ""

    (node_dir / "package-lock.json").write_text("{}\n")  # the lock changed since: install again
    dev.prepare_tests(root, str(bin_dir))
    assert len(calls.read_text().splitlines()) == 2


def test_dev_test_says_what_is_missing_and_how_to_get_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev = _dev_module()
    root = _checkout(tmp_path)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    dev.prepare_tests(root, str(empty))
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[1].strip() for line in err] == [
        "npm not found, so the Node test servers (tests/node) cannot be installed",
        "redis-server not found",
        "go not found",
    ]
    assert "Install Node.js 20 or newer" in err[0]
    assert "apt-get install redis-server" in err[1] and "skipped" in err[1]
    assert "apt-get install golang-go" in err[2] and "will fail" in err[2]
    assert not (root / "tests" / "node" / "node_modules").exists()
