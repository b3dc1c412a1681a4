"""The guard's command line inside a client's server entry: writing it, and recognising it.

A wrapped entry reads ``mcp-guard GUARD OPTIONS ORIGINAL_COMMAND ORIGINAL_ARGS...``: the
original command stays in the entry's own ``args``, which is exactly what the guard needs to
start the server anyway. The guard's options end at the first word that is neither an option nor
an option's value (:func:`mcp_guard.cli.split_command`), so no ``--`` is written where that
word is unambiguously the server's command: tools that split their own argv at the first ``--``
(the MCP Inspector's ``--config F --server S``) would cut the entry there. ``--`` is written
only when it is needed: a server command that starts with ``-``, or no guard options at all
(the first word would then be read as a possible subcommand name).
"""

from __future__ import annotations

import ntpath
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

GUARD_NAME = "mcp-guard"
GUARD_MODULE = "mcp_guard"


@dataclass(frozen=True)
class GuardLaunch:
    """How a wrapped entry starts the guard: ``command`` and the args before the server's command."""

    command: str
    prefix: tuple[str, ...]  # without ``--``: see :meth:`before`

    @property
    def options(self) -> tuple[str, ...]:
        """The guard's own options (``--policy FILE``), without the interpreter part."""
        start = 2 if self.prefix[:2] == ("-m", GUARD_MODULE) else 0
        return self.prefix[start:]

    def before(self, server_command: str) -> tuple[str, ...]:
        """The args to put before the server's command: the prefix, then ``--`` only where it is needed."""
        return (*self.prefix, *(("--",) if needs_separator(self.options, server_command) else ()))


def needs_separator(options: Sequence[str], server_command: str) -> bool:
    """Whether ``--`` must separate the guard's ``options`` from a server command starting with this word.

    Without options the word would be the guard's first argument, which may name a subcommand (or be
    refused as a typo of one); a word starting with ``-`` would be read as an option. Otherwise the
    guard's options (all of which the guard writes with their values) end right before it.
    """
    return not options or server_command.startswith("-")


def find_guard_command() -> list[str]:
    """An absolute command that starts mcp-guard, so a client with a minimal PATH finds it.

    The console script next to this interpreter (a venv's ``bin/``, or ``Scripts\\`` on
    Windows), else ``mcp-guard`` on PATH, else ``python -m mcp_guard`` with this interpreter.
    """
    name = f"{GUARD_NAME}.exe" if sys.platform == "win32" else GUARD_NAME
    if sys.executable:
        here = Path(sys.executable).parent
        for candidate in (here / name, here / "Scripts" / name):
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return [os.path.abspath(candidate)]
    found = shutil.which(GUARD_NAME)
    if found:
        return [os.path.abspath(found)]
    return [os.path.abspath(sys.executable), "-m", GUARD_MODULE]


def guard_launch(
    policy: str | None,
    guard_command: Sequence[str] | None = None,
    policy_sha256: str | None = None,
    lock: str | None = None,
) -> GuardLaunch:
    """The launch to write; ``policy`` and ``lock`` should already be absolute."""
    command = list(guard_command) if guard_command is not None else find_guard_command()
    options = ["--policy", policy] if policy is not None else []
    if policy_sha256 is not None:
        options += ["--policy-sha256", policy_sha256]
    if lock is not None:
        options += ["--lock", lock]
    return GuardLaunch(command[0], (*command[1:], *options))


def _guard_start(command: str, args: Sequence[str]) -> int | None:
    """Where the guard's own argv starts in ``args`` if the entry runs the guard, else None."""
    base = ntpath.basename(command).lower()  # ntpath splits on both / and \
    for suffix in (".exe", ".cmd", ".bat"):
        base = base.removesuffix(suffix)
    if base == GUARD_NAME:
        return 0
    if list(args[:2]) == ["-m", GUARD_MODULE]:
        return 2
    return None


def split_guard_args(command: str, args: Sequence[str]) -> tuple[list[str], int] | None:
    """For an entry that runs the guard: its options and the index of the server's command in args.

    Reads the guard's argv exactly as the guard itself will (:func:`mcp_guard.cli.split_command`).
    Returns None for an entry that does not run the guard; raises ``ValueError`` for one
    that runs it without a server command.
    """
    start = _guard_start(command, args)
    if start is None:
        return None
    from mcp_guard.cli import split_command

    options, server = split_command(args[start:])
    if not server:
        raise ValueError("it runs mcp-guard but no server command follows")
    return options, len(args) - len(server)
