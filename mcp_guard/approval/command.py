"""The ``command`` channel: ask a person by running a program, such as a desktop dialog.

The program gets the request as one JSON object on stdin (``id``, ``server``, ``tool``,
``arguments``, ``readable_arguments``, ``rule``, ``reason``, ``expires``; control, bidi and
other invisible characters, and lone surrogates, written as ``\\uXXXX`` escapes), and answers
with its exit status: 0 approves, anything else declines. Its stdout is discarded (the
guard's own stdout is the protocol); its stderr goes to the guard's stderr, which MCP
clients keep in their server logs. If it has not answered within the timeout its whole
process group is killed and the answer is ``"timeout"``.

How the command line is split:

* POSIX: with :func:`shlex.split`, and run without a shell, so
  ``'/path/approve-dialog-linux.sh --flag'`` runs that script with that argument, and
  quoting works as in a shell. Shell syntax (pipes, ``$VAR``) is not interpreted: point at
  a script instead.
* Windows: the string is handed unchanged to ``CreateProcess`` (still no shell), which
  splits it the Windows way, so backslashes in paths stay as written:
  ``powershell -NoProfile -ExecutionPolicy Bypass -File C:\\path\\approve-dialog-windows.ps1``.
  ``shlex`` would eat the backslashes, and ``cmd.exe`` would add its own quoting rules and
  ``%VAR%`` expansion to a string that is configuration, not a shell script.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections.abc import Callable
from typing import Literal

from mcp_guard.approval.request import ApprovalRequest, json_for_people

CommandOutcome = Literal["approved", "declined", "timeout", "error"]


def split_command(command: str) -> list[str] | str:
    """What :class:`subprocess.Popen` gets: a list of words on POSIX, the string itself on Windows."""
    if os.name == "nt":
        return command
    return shlex.split(command)


def ask_command(
    command: str,
    request: ApprovalRequest,
    timeout_s: float,
    *,
    warn: Callable[[str], None] | None = None,
) -> CommandOutcome:
    """Run ``command`` with ``request`` as JSON on stdin; its exit status is the person's answer.

    Returns ``"approved"`` (exit 0), ``"declined"`` (any other exit, a signal included),
    ``"timeout"`` (killed after ``timeout_s``) or ``"error"`` (it could not be started: the
    reason goes to ``warn``). Never raises.
    """
    try:
        return _ask(command, request, timeout_s, warn)
    except Exception as exc:  # a channel must never take the relay down
        _say(warn, f"approval command {command!r} failed: {exc!r}")
        return "error"


def _ask(
    command: str, request: ApprovalRequest, timeout_s: float, warn: Callable[[str], None] | None
) -> CommandOutcome:
    try:
        argv = split_command(command)
    except ValueError as exc:
        _say(warn, f"approval command {command!r} cannot be split into words: {exc}")
        return "error"
    if not argv:
        _say(warn, "the approval command is empty")
        return "error"
    # Lone surrogates and characters that change how text is shown travel as JSON escapes: the
    # program reads the same value, and one that prints what it got cannot be tricked by it.
    payload = json_for_people(request.to_json()).encode() + b"\n"
    extra: dict[str, object] = {}
    if os.name == "nt":
        extra["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)
    else:
        extra["start_new_session"] = True  # its own process group, so a timeout kills dialogs it started too
    try:
        child = subprocess.Popen(  # the user's own configured approval program
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=None,
            close_fds=True,
            **extra,  # type: ignore[call-overload]
        )
    except OSError as exc:
        _say(warn, f"approval command {command!r} could not be started: {exc.strerror or exc}")
        return "error"
    try:
        child.communicate(payload, timeout=max(timeout_s, 0.0))
    except subprocess.TimeoutExpired:
        _kill(child)
        _say(warn, f"approval command {command!r} gave no answer within {timeout_s:g}s: not approved")
        return "timeout"
    except BaseException:
        _kill(child)
        raise
    return "approved" if child.returncode == 0 else "declined"


def _kill(child: subprocess.Popen[bytes]) -> None:
    if os.name == "nt":
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["taskkill", "/F", "/T", "/PID", str(child.pid)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=5,
                check=False,
            )
        with contextlib.suppress(OSError):
            child.kill()
    else:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except OSError:
            with contextlib.suppress(OSError):
                child.kill()
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        child.wait(timeout=5)
    if child.stdin is not None:
        with contextlib.suppress(OSError):
            child.stdin.close()


def _say(warn: Callable[[str], None] | None, message: str) -> None:
    if warn is not None:
        with contextlib.suppress(Exception):
            warn(message)
