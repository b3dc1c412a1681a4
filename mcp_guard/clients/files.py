"""Reading a client's config file, and writing it back: a backup first, then an atomic replace."""

from __future__ import annotations

import difflib
import os
import shutil
import stat
from datetime import datetime
from pathlib import Path

from mcp_guard import atomic


class ConfigError(Exception):
    """A config file that cannot be read or changed; ``str()`` says where and why."""


def read_config(path: Path) -> tuple[bytes, str]:
    """The file's bytes and their text (UTF-8, a BOM kept as part of the text)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    try:
        return data, data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def backup_path(path: Path, now: datetime | None = None) -> Path:
    """``NAME.bak-YYYYmmdd-HHMMSS`` next to ``path``; ``-2``, ``-3``… if that name is taken."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.bak-{stamp}")
    n = 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.bak-{stamp}-{n}")
    return candidate


def write_config(path: Path, expected: bytes, new_text: str, now: datetime | None = None) -> Path:
    """Back the file up, then replace it atomically with ``new_text``; returns the backup's path.

    A symlinked config is written through to its target. The file's permission bits are
    kept. If the file no longer holds ``expected`` (another program wrote it meanwhile),
    nothing is written.
    """
    real = Path(os.path.realpath(path))
    current = real.read_bytes()
    if current != expected:
        raise ConfigError(f"{path}: changed while mcp-guard was editing it; nothing written, try again")
    mode = stat.S_IMODE(real.stat().st_mode)
    backup = backup_path(real, now)
    shutil.copy2(real, backup)
    atomic.write(real, new_text.encode("utf-8"), mode)
    return backup


def unified_diff(path: Path, old: str, new: str) -> str:
    """A unified diff of the change, for ``--dry-run``."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=f"{path}", tofile=f"{path} (new)"
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
