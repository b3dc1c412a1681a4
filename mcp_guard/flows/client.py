"""Who the MCP client is: the process that started this guard, so every guard it started shares one flow ledger.

A client such as Claude Desktop starts one guard per server, each as its own child: the guards' parent pid
names the client. A pid is reused once its process is gone, so the identity adds the parent's start time
(field 22 of ``/proc/<pid>/stat``, in clock ticks since boot) and, because that count restarts at boot, the
boot id: ``pid4242-123456@1a2b3c4d``. A reused pid is a new client, a reboot a new session.

Where there is no ``/proc`` (macOS), ``ps -o lstart=`` gives the start time. Where neither works, the pid
alone is used, and the guard says so.

Limits, said in the README: a client that starts servers through a shell (``sh -c``) or a launcher that
stays in between (``npx``, ``uv run``) gives each guard a different parent, so each would be its own client:
such clients must pass ``--client-id`` (or ``MCP_GUARD_CLIENT_ID``), the same for all of their guards.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

ENV = "MCP_GUARD_CLIENT_ID"


def linux_start_ticks(pid: int, proc: Path = Path("/proc")) -> str | None:
    """The start time of ``pid`` in clock ticks since boot, from ``/proc/<pid>/stat``; None if unreadable."""
    try:
        text = (proc / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ')': split after the last one.
    rest = text[text.rfind(")") + 2 :].split()
    # rest[0] is field 3 (state), so field 22 (starttime) is rest[19].
    return rest[19] if len(rest) > 19 and rest[19].isdigit() else None


def _boot_id(proc: Path) -> str:
    try:
        return (proc / "sys" / "kernel" / "random" / "boot_id").read_text().strip().replace("-", "")[:8]
    except OSError:
        return ""


def _ps_start(pid: int) -> str | None:
    try:
        out = subprocess.run(
            ["ps", "-o", "lstart=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return "".join(ch for ch in out if ch.isalnum()) or None


def process_identity(pid: int, proc: Path = Path("/proc")) -> tuple[str, bool]:
    """``pid``'s identity (pid plus start time), and whether the start time was found."""
    ticks = linux_start_ticks(pid, proc)
    if ticks is not None:
        boot = _boot_id(proc)
        return f"pid{pid}-{ticks}" + (f"@{boot}" if boot else ""), True
    started = _ps_start(pid)
    if started is not None:
        return f"pid{pid}-{started}", True
    return f"pid{pid}", False


def client_identity(explicit: str | None, environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """The client's identity and where it came from (for messages): ``--client-id``, ``$MCP_GUARD_CLIENT_ID``,
    or the parent process."""
    if explicit:
        return explicit, "--client-id"
    env = environ.get(ENV)
    if env:
        return env, f"${ENV}"
    ident, exact = process_identity(os.getppid())
    return ident, "the parent process" if exact else "the parent pid only (its start time could not be read)"
