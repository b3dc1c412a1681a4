#!/usr/bin/env python3
"""Developer entry points that install what they need: ``python3 dev.py demo|test|lint|bench``.

Each command creates ``.venv`` beside this file on first use and installs the
project into it (editable, with test and dev extras), so a fresh machine with
Python 3.10+ needs nothing else. ``test`` also installs the Node test servers
(``npm ci --prefix tests/node``) when they are missing and npm is there, and says
on stderr what else the tests need that is not installed (redis-server, go).
"""

from __future__ import annotations

import hashlib
import os
import shutil
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


def say(message: str) -> None:
    print(f"dev.py: {message}", file=sys.stderr, flush=True)


def prepare_tests(root: Path = ROOT, path: str | None = None) -> None:
    """Install what the tests need beside Python where that can be done here, and say what is missing.

    ``path``: where to look for programs (default: PATH). The Node test servers are installed from
    tests/node/package-lock.json when node_modules is missing, or when this function installed them from
    a lock file that has changed since (its stamp in node_modules says which; an install made by hand or
    by .ci/run is left alone, and tests/test_transcripts.py checks the installed version itself).
    redis-server and go come from the system's package manager, so only how to get them is said: the
    Redis tests start their own redis-server and are skipped without one (they fail under CI); the
    differential tests build their Go reader and fail without go, as they do without the Node modules.
    """
    node_dir = root / "tests" / "node"
    modules = node_dir / "node_modules"
    lock = node_dir / "package-lock.json"
    stamp = modules / ".installed-by-dev-py"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else ""
    stale = stamp.is_file() and stamp.read_text().strip() != digest
    if lock.is_file() and (not modules.is_dir() or stale):
        npm = shutil.which("npm", path=path)
        if npm is None:
            say(
                "npm not found, so the Node test servers (tests/node) cannot be installed: the tests against the "
                "Node reference server are skipped and the TypeScript reader's differential tests fail. "
                "Install Node.js 20 or newer (https://nodejs.org, or apt-get install nodejs npm) and run again"
            )
        else:
            say(f"installing the Node test servers: npm ci --prefix {node_dir.relative_to(root)}")
            done = subprocess.run(
                [npm, "ci", "--prefix", str(node_dir), "--no-audit", "--no-fund", "--loglevel=error"],
                check=False,
                cwd=root,
            )
            if done.returncode != 0:
                say(f"npm ci failed (exit {done.returncode}); the tests that need tests/node will say what is missing")
            elif modules.is_dir():
                stamp.write_text(digest + "\n")
    if shutil.which("redis-server", path=path) is None:
        say(
            "redis-server not found: the Redis counter-store tests are skipped (they start their own server "
            "once it is installed: apt-get install redis-server, or brew install redis)"
        )
    if shutil.which("go", path=path) is None:
        say(
            "go not found: the differential tests that build the Go reader (tests/go) will fail; "
            "install Go (apt-get install golang-go, or brew install go)"
        )


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
        prepare_tests()
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
