#!/usr/bin/env python3
"""Developer entry points that install what they need: ``python3 dev.py demo|test|lint|bench``.

Each command creates ``.venv`` beside this file on first use and installs the
project into it (editable, with test and dev extras), so a fresh machine with
Python 3.10+ needs nothing else.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".installed"


def ensure_env() -> None:
    if not PY.exists():
        print(f"dev.py: creating {VENV}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pyproject = ROOT / "pyproject.toml"
    if not STAMP.exists() or STAMP.stat().st_mtime < pyproject.stat().st_mtime:
        print("dev.py: installing mcp-guard and its test tools into .venv", file=sys.stderr)
        subprocess.run(
            [str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", f"{ROOT}[dev]"],
            check=True,
        )
        STAMP.touch()
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"


def pytest_args(rest: list[str]) -> list[str]:
    """``rest``, spread over every core (pytest-xdist) unless the caller chose otherwise.

    The suite spends most of its time starting servers that import the MCP SDK, one process at a
    time, so a second worker roughly halves it on two cores. ``-n 0`` runs everything in this process
    (what ``--pdb`` and ``-s`` want). ``--dist loadfile`` keeps each module on one worker, so module
    fixtures (a guard, the differential readers, Redis) start once. (``loadgroup`` would group finer,
    but it does not group at all with pytest 9 and pytest-xdist 3.8.)
    """
    chosen = any(
        arg in ("-n", "--numprocesses", "--pdb", "--trace", "no:xdist", "-pno:xdist")
        or arg.startswith(("-n", "--numprocesses=", "--dist"))
        for arg in rest
    )
    return rest if chosen else ["-n", "auto", "--dist", "loadfile", *rest]


def run(*args: str) -> int:
    return subprocess.run(list(args), check=False, cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "help"
    rest = argv[1:]
    if command == "demo":
        ensure_env()
        return run(str(PY), "examples/demo.py", *rest)
    if command == "test":
        ensure_env()
        return run(str(PY), "-m", "pytest", *pytest_args(rest))
    if command == "lint":
        ensure_env()
        for step in (
            (str(PY), "-m", "ruff", "check", "."),
            (str(PY), "-m", "ruff", "format", "--check", "."),
            (str(PY), "-m", "mypy"),
        ):
            code = run(*step)
            if code:
                return code
        return 0
    if command == "bench":
        ensure_env()
        return run(str(PY), "benchmarks/run_all.py", *rest)
    print(__doc__.strip())
    return 0 if command == "help" else 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
