"""A per-installation secret, and keyed fingerprints of tool-call arguments.

A fingerprint lets the guard recognise the same arguments again (in the audit log, for
an approval given once) without writing the arguments down, and without letting anyone
who reads the log test guesses against it: it is HMAC-SHA-256 keyed with 32 random bytes
that never leave this machine's user data directory (``secret.key``, mode 0600).

The secret is created at first use, atomically: it is written in full to a temporary file
and then hard-linked into place, which fails if another process got there first; every
process then reads the one file that won. Where hard links are not available the file is
created with ``O_CREAT | O_EXCL`` and readers wait briefly for its 32 bytes.
"""

from __future__ import annotations

import errno
import hmac
import os
import secrets
import stat
import sys
import tempfile
import time
from hashlib import sha256
from pathlib import Path
from typing import Any

from mcp_guard.canonical import keyed_digest

SECRET_BYTES = 32
SECRET_FILE = "secret.key"  # noqa: S105 (a file name)
_WAIT_S = 2.0


class SecretError(RuntimeError):
    """The secret file cannot be created or read, or is not safe to use; the message says which and why."""


def default_secret_path() -> Path:
    """``secret.key`` in the platformdirs user data directory (``~/.local/share/mcp-guard`` on Linux)."""
    from mcp_guard import paths

    return paths.secret_path()


def load_or_create_secret(path: str | os.PathLike[str] | None = None) -> bytes:
    """The installation's secret, created (mode 0600, directory 0700) if it does not exist yet."""
    target = Path(path) if path is not None else default_secret_path()
    try:
        return _read(target)
    except FileNotFoundError:
        pass
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise SecretError(f"cannot create {target.parent}: {exc.strerror or exc}") from None
    _create(target)
    return _read(target)


def keyed_fingerprint(arguments: Any, key: bytes) -> str:
    """HMAC-SHA-256 (hex) of the canonical JSON of ``arguments`` (:func:`mcp_guard.canonical.canonical_json`)."""
    return keyed_digest(arguments, key)


def subkey(secret: bytes, purpose: str) -> bytes:
    """A key for one use of the secret (``"approval store"``), so that no two uses share a key."""
    return hmac.new(secret, f"mcp-guard {purpose}".encode(), sha256).digest()


def _create(target: Path) -> None:
    secret = secrets.token_bytes(SECRET_BYTES)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")  # mode 0600
    except OSError as exc:
        raise SecretError(f"cannot write in {target.parent}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(secret)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, target)  # fails with EEXIST if another process won: then its secret is the one
        except FileExistsError:
            return
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise SecretError(f"cannot create {target}: {exc.strerror or exc}") from None
            _create_exclusive(target, secret)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _create_exclusive(target: Path, secret: bytes) -> None:
    """No hard links here: create the file itself exclusively; readers wait for its bytes."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(target, flags, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise SecretError(f"cannot create {target}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as out:
        out.write(secret)
        out.flush()
        os.fsync(out.fileno())


def _read(target: Path) -> bytes:
    deadline = time.monotonic() + _WAIT_S
    while True:
        try:
            flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(target, flags)
        except FileNotFoundError:
            raise
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SecretError(f"{target} is a symbolic link; refusing to use it as the secret") from None
            raise SecretError(f"cannot read {target}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "rb") as source:
            info = os.fstat(source.fileno())
            data = source.read(SECRET_BYTES + 1)
        if not stat.S_ISREG(info.st_mode):
            raise SecretError(f"{target} is not a regular file")
        if sys.platform != "win32" and info.st_mode & 0o077:
            raise SecretError(
                f"{target} is accessible to other users (mode {stat.S_IMODE(info.st_mode):04o}); "
                f"run `chmod 600 {target}`"
            )
        if len(data) == SECRET_BYTES:
            return data
        fresh = time.time() - info.st_mtime < _WAIT_S
        if len(data) < SECRET_BYTES and fresh and time.monotonic() < deadline:
            time.sleep(0.01)  # just created with O_EXCL by another process, still being written
            continue
        raise SecretError(
            f"{target} holds {len(data) if len(data) <= SECRET_BYTES else 'more than ' + str(SECRET_BYTES)} bytes, "
            f"not {SECRET_BYTES}; it is not an mcp-guard secret (move it away and a new one is made)"
        )
