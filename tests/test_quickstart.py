"""The README's quick start: the demo command must work and show what the README promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
