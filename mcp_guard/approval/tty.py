"""The ``tty`` channel: ask on the controlling terminal of the guard.

stdin and stdout are the MCP protocol, so the question goes to ``/dev/tty``, the terminal
the client (and so the guard) was started from, if there is one. Clients started from a
desktop have none: the answer is then ``"unavailable"`` and the next channel is tried.

Input typed before the question appeared is discarded (a stray ``y`` must not approve a
call nobody has read yet), and only ``y`` or ``yes`` approves. Everything shown goes
through :func:`~mcp_guard.approval.request.printable`, so a tool name or argument cannot
send escape sequences to the terminal. One question at a time per process: concurrent
asks wait their turn (their wait counts against their timeout).

Caveat: a full-screen client that owns the same terminal (reading it in raw mode) competes
for the keystrokes; use ``tty`` with clients that leave the terminal alone, or run the
guard under one that does. Not supported on Windows (no ``/dev/tty``, and console input
cannot be waited on with a timeout the same way): the answer there is ``"unavailable"``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
import time
from typing import Literal

from mcp_guard.approval.request import ApprovalRequest, describe_identity, printable

TtyOutcome = Literal["approved", "declined", "timeout", "unavailable"]
PROMPT = "Approve this call? [y/N] "

_LOCK = threading.Lock()
_MAX_LINE = 1024


def ask_tty(request: ApprovalRequest, timeout_s: float, tty_path: str = "/dev/tty") -> TtyOutcome:
    """Ask on the terminal at ``tty_path``; never raises."""
    if os.name == "nt":
        return "unavailable"
    deadline = time.monotonic() + max(timeout_s, 0.0)
    if not _LOCK.acquire(timeout=max(timeout_s, 0.0)):
        return "timeout"
    try:
        try:
            fd = os.open(tty_path, os.O_RDWR | os.O_NOCTTY)
        except OSError:
            return "unavailable"
        try:
            if not os.isatty(fd):
                return "unavailable"
            return _ask(fd, request, deadline)
        except OSError:
            return "unavailable"
        finally:
            os.close(fd)
    finally:
        _LOCK.release()


def question(request: ApprovalRequest) -> str:
    """The question shown: every argument, or what was cut and how to see it all (``approvals show ID``)."""
    expires = dt.datetime.fromtimestamp(request.expires).strftime("%H:%M:%S")
    started = ""
    if request.server_identity and not request.server_identity.startswith("name:"):
        started = f"  command:   {describe_identity(request.server_identity)}\n"
    return (
        f"\nmcp-guard: a call needs your approval ({request.id}, until {expires})\n"
        f"  server:    {printable(request.server)}\n"
        f"{started}"
        f"  tool:      {printable(request.tool)}\n"
        f"  arguments: {request.readable_arguments or '(none)'}\n"
        f"  rule:      {printable(request.rule)}\n"
        f"  reason:    {printable(request.reason)}\n"
        f"{PROMPT}"
    )


def _ask(fd: int, request: ApprovalRequest, deadline: float) -> TtyOutcome:
    import select
    import termios

    with contextlib.suppress(termios.error):
        termios.tcflush(fd, termios.TCIFLUSH)  # forget keys typed before the question was shown
    _write(fd, question(request))
    line = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            _write(fd, "\nmcp-guard: no answer in time: the call is not approved\n")
            return "timeout"
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(fd, 256)
        if not chunk:  # end of input (Ctrl-D, or the terminal hung up)
            _write(fd, "\n")
            return "declined"
        line += chunk
        # A terminal in canonical mode hands over whole lines; one in raw mode sends \r for Enter.
        for end in (b"\n", b"\r"):
            if end in line:
                line = line[: line.index(end)]
                break
        else:
            if len(line) < _MAX_LINE:
                continue
        answer = line.decode(errors="replace").strip().lower()
        approved = answer in ("y", "yes")
        _write(fd, "mcp-guard: approved\n" if approved else "mcp-guard: not approved\n")
        return "approved" if approved else "declined"


def _write(fd: int, text: str) -> None:
    data = text.encode(errors="replace")
    while data:
        data = data[os.write(fd, data) :]
