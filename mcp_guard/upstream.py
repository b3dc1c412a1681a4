"""Spawning the upstream server and ending it (and everything it started) cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

IS_WINDOWS = sys.platform == "win32"
IS_LINUX = sys.platform.startswith("linux")

# The shutdown order's waits. MCP clients close the server's stdin, wait 2 s, then SIGTERM it (here: the
# guard); the server's group runs out of their reach, so it must be gone within that 2 s: stdin closed ->
# GRACE_S -> SIGTERM -> TERM_S -> SIGKILL.
GRACE_S = 0.5
TERM_S = 1.0
# After SIGKILL, how long to wait for the kernel to have ended the group.
KILL_WAIT_S = 1.0
_POLL_S = 0.02


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


def _die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` that has Linux SIGKILL the child when the guard dies, even by SIGKILL.

    Everything is looked up here, in the parent: between fork and exec the child only makes two
    system calls, so it cannot block on a lock another of the guard's threads held at fork.
    """
    import ctypes

    prctl = ctypes.CDLL(None).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    pr_set_pdeathsig, sigkill, parent = 1, int(signal.SIGKILL), os.getpid()
    getppid, exit_now = os.getppid, os._exit

    def preexec() -> None:
        prctl(pr_set_pdeathsig, sigkill, 0, 0, 0)
        # The guard died between fork and prctl: the signal will never come, so end here.
        if getppid() != parent:
            exit_now(1)

    return preexec


class Upstream:
    """The upstream process, in a process group of its own.

    Its own group (a new session on POSIX) lets shutdown signal every process it
    started, so ``npx``-spawned grandchildren do not outlive the guard, and keeps
    a terminal's Ctrl-C from reaching it before the guard has closed its stdin.

    On Linux the server is also killed when the guard dies outright. The kernel sends
    that signal when the *thread* that spawned the server ends, so create this on the
    main thread.
    """

    def __init__(self, argv: Sequence[str]) -> None:
        kwargs: dict[str, object] = {}
        if IS_WINDOWS:
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        else:
            kwargs["start_new_session"] = True
        if IS_LINUX:
            kwargs["preexec_fn"] = _die_with_parent()
        # stderr is inherited: the server's logs reach the client's log file unchanged and unbuffered.
        self.process: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, bufsize=0, **kwargs
        )
        self.pid: int = self.process.pid
        self._hurry = threading.Event()

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

    def kill_group(self) -> None:
        if IS_WINDOWS:
            self.signal_group(signal.SIGTERM)
        else:
            self.signal_group(signal.SIGKILL)

    def kill_now(self) -> None:
        """Escalate: SIGKILL the group at once, and end every wait of a shutdown under way.

        Safe to call from any thread, and again.
        """
        self._hurry.set()
        self.kill_group()

    @property
    def hurried(self) -> bool:
        return self._hurry.is_set()

    def group_alive(self) -> bool:
        """Whether a process of the upstream's group still runs."""
        if IS_WINDOWS:
            return self.process.poll() is None
        try:
            os.killpg(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        # Zombies still count for killpg, but they have ended: only their reaping is left, which a
        # container's init may do late or never. Waiting on them would only delay the shutdown.
        return not IS_LINUX or _running_in_group(self.pid)

    def shutdown(self, grace_s: float = GRACE_S, term_s: float = TERM_S) -> int | None:
        """The MCP stdio shutdown order: close stdin, wait, SIGTERM, wait, SIGKILL.

        Applies to the process group, so helpers the server started go too. Blocks
        for at most ``grace_s + term_s + KILL_WAIT_S``; after :meth:`kill_now`, at
        most ``KILL_WAIT_S``.
        """
        self.close_stdin()
        if self._group_gone_within(grace_s):
            return self.process.poll()
        if not self.hurried:
            self.signal_group(signal.SIGTERM)
            if self._group_gone_within(term_s):
                return self.process.poll()
        self.kill_group()
        self._group_gone_within(KILL_WAIT_S, patient=True)
        return self.process.poll()

    def _group_gone_within(self, seconds: float, patient: bool = False) -> bool:
        """Whether the whole group ended within ``seconds``; unless ``patient``, :meth:`kill_now` ends the wait."""
        deadline = time.monotonic() + seconds
        while True:
            self.process.poll()
            if not self.group_alive():
                return True
            if time.monotonic() >= deadline or (self.hurried and not patient):
                return False
            if patient:
                time.sleep(_POLL_S)
            else:
                self._hurry.wait(_POLL_S)


def _running_in_group(pgid: int) -> bool:
    """Whether a process of group ``pgid`` other than a zombie exists (Linux: from /proc).

    The group's leader is looked at first: while it runs, one read answers.
    """
    if _running_member(str(pgid), pgid):
        return True
    try:
        names = os.listdir("/proc")
    except OSError:
        return True
    return any(name.isdigit() and _running_member(name, pgid) for name in names)


def _running_member(pid: str, pgid: int) -> bool:
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:  # it ended while we looked
        return False
    try:
        text = os.read(fd, 1024)
    except OSError:
        return False
    finally:
        os.close(fd)
    # After the command name, which may hold anything but ends at the last ')': state, ppid, pgrp.
    state, _, group = text[text.rindex(b")") + 2 :].split(maxsplit=3)[:3]
    return int(group) == pgid and state not in (b"Z", b"X")


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
