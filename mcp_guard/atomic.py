"""Writing files so that a reader, a crash or a Ctrl-C never meets half of one.

Each new file is first written in full to a temporary file in the target's own folder
(:func:`stage`), then moved over the target with one rename (:func:`commit`). Several
files that belong together (a policy and its lock file, side by side) are moved in one
:func:`commit`, with SIGINT held until the last rename is done, so Ctrl-C leaves either all
of them or none. Temporary files never stay behind, whatever fails or is interrupted.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType


def stage(target: Path, data: bytes, mode: int | None = None) -> Path:
    """``data`` in a new temporary file beside ``target``, flushed to disk; the caller commits or discards it.

    ``mode``: the permission bits (default: what the umask allows for a new file).
    """
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    staged = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(staged, mode)
    except BaseException:
        discard([staged])
        raise
    return staged


def discard(staged: Sequence[Path]) -> None:
    for path in staged:
        try:
            os.unlink(path)
        except OSError:
            pass


def commit(moves: Sequence[tuple[Path, Path]]) -> None:
    """Rename each staged file over its target, in order; on an error the renames stop and the rest is removed."""
    try:
        with _sigint_held():
            for staged, target in moves:
                os.replace(staged, target)
    except BaseException:
        discard([staged for staged, _ in moves])
        raise
    for folder in {target.parent for _, target in moves}:
        _sync_dir(folder)


def write(target: Path, data: bytes, mode: int | None = None) -> None:
    """Replace ``target`` with ``data`` atomically."""
    commit([(stage(target, data, mode), target)])


@contextmanager
def _sigint_held() -> Iterator[None]:
    """Ctrl-C waits until the block is done, then interrupts as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be changed in the main thread, and only it gets KeyboardInterrupt
        return
    caught: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
    if caught:
        signal.raise_signal(signal.SIGINT)  # to whatever handles it now: usually KeyboardInterrupt


def _sync_dir(folder: Path) -> None:
    """Make the renames durable: without this a power cut can bring back the old file."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
