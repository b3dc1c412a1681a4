"""Spawning the upstream server and ending it (and everything it started) cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

IS_WINDOWS = sys.platform == "win32"


class CommandNotFound(Exception):
    def __init__(self, command: str) -> None:
        super().__init__(command)
        self.command = command


def resolve_command(argv: Sequence[str]) -> list[str]:
    """The argv to execute, with the program found on PATH the way a shell would.

    On Windows ``npx`` is really ``npx.cmd``, which CreateProcess does not find by
    itself; ``shutil.which`` applies PATHEXT. On POSIX the lookup only serves a
    clear error message before spawning.
    """
    program = argv[0]
    found = shutil.which(program)
    if found is None:
        if (os.sep in program or (os.altsep and os.altsep in program)) and os.path.exists(program):
            raise PermissionError(program)
        raise CommandNotFound(program)
    return [found if IS_WINDOWS else program, *argv[1:]]


class Upstream:
    """The upstream process, in a process group of its own.

    Its own group (a new session on POSIX) lets shutdown signal every process it
    started, so ``npx``-spawned grandchildren do not outlive the guard, and keeps
    a terminal's Ctrl-C from reaching it before the guard has closed its stdin.
    """

    def __init__(self, argv: Sequence[str]) -> None:
        kwargs: dict[str, object] = {}
        if IS_WINDOWS:
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        else:
            kwargs["start_new_session"] = True
        # stderr is inherited: the server's logs reach the client's log file unchanged and unbuffered.
        self.process: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, bufsize=0, **kwargs
        )
        self.pid: int = self.process.pid

    @property
    def stdin_fd(self) -> int:
        assert self.process.stdin is not None  # noqa: S101
        return self.process.stdin.fileno()

    @property
    def stdout_fd(self) -> int:
        assert self.process.stdout is not None  # noqa: S101
        return self.process.stdout.fileno()

    def close_stdin(self) -> None:
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
        except OSError:
            pass

    def poll(self) -> int | None:
        return self.process.poll()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal_group(self, sig: int) -> bool:
        """Send ``sig`` to the upstream's whole process group; False if nothing was left to signal."""
        if IS_WINDOWS:
            if self.process.poll() is not None:
                return False
            if sig == signal.SIGTERM:
                self.process.terminate()
            else:
                self.process.kill()
            return True
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def group_alive(self) -> bool:
        if IS_WINDOWS:
            return self.process.poll() is None
        try:
            os.killpg(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def shutdown(self, grace_s: float = 2.0, term_s: float = 2.0) -> int | None:
        """The MCP stdio shutdown order: close stdin, wait, SIGTERM, wait, SIGKILL.

        Applies to the process group, so helpers the server started go too. Blocks
        for at most ``grace_s + term_s`` seconds plus a moment for SIGKILL.
        """
        self.close_stdin()
        code = self.wait(grace_s)
        if self._group_gone_within(0.0 if code is None else 0.2):
            return code if code is not None else self.process.poll()
        self.signal_group(signal.SIGTERM)
        if self._group_gone_within(term_s):
            return self.process.poll()
        self.signal_group(signal.SIGKILL if not IS_WINDOWS else signal.SIGTERM)
        self._group_gone_within(1.0)
        return self.process.poll()

    def _group_gone_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            self.process.poll()
            if not self.group_alive():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


def exit_status(code: int | None) -> int:
    """The guard's own exit status for an upstream that ended with ``code`` (shell convention for signals)."""
    if code is None:
        return 1
    return 128 - code if code < 0 else code
