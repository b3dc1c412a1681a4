"""The command and tty approval channels: a program's exit status, timeouts that kill what it started,
the Linux dialog script (with stand-in zenity/kdialog), and questions on a pseudo-terminal."""

from __future__ import annotations

import json
import os
import select
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

from mcp_guard.approval.command import ask_command
from mcp_guard.approval.request import ApprovalRequest
from mcp_guard.approval.tty import PROMPT, ask_tty

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX process groups and terminals")

EXAMPLES = ROOT / "examples" / "approval"


def request(**kw: Any) -> ApprovalRequest:
    now = time.time()
    base: dict[str, Any] = {
        "id": "ap-7k3m9q",
        "server": "payments",
        "tool": "create_charge",
        "arguments": {"amount": 1500, "currency": "USD", "to": "acct_123"},
        "args_sha256": "0" * 64,
        "rule": "tools.create_charge.approve_if[0]",
        "reason": "Charges over 1000 need a person's approval.",
        "created": now,
        "expires": now + 600,
    }
    base.update(kw)
    return ApprovalRequest(**base)


def script(tmp_path: Path, name: str, body: str) -> str:
    """A Python script run by this interpreter, as a command line."""
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(path))}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (killed, not yet reaped by its parent) counts as gone.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return True  # no /proc (macOS): kill(0) succeeded


# --- command channel -----------------------------------------------------------------------------


def test_command_that_approves_gets_the_request_on_stdin(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    seen = tmp_path / "seen.json"
    command = script(
        tmp_path,
        "approve.py",
        f"import sys\nopen({str(seen)!r}, 'w').write(sys.stdin.read())\nprint('LEAKED TO STDOUT')\nsys.exit(0)\n",
    )
    assert ask_command(command, request(), timeout_s=30) == "approved"
    payload = json.loads(seen.read_text())
    assert set(payload) == {"id", "server", "tool", "arguments", "readable_arguments", "rule", "reason", "expires"}
    assert payload["id"] == "ap-7k3m9q" and payload["server"] == "payments" and payload["tool"] == "create_charge"
    assert payload["arguments"] == {"amount": 1500, "currency": "USD", "to": "acct_123"}
    assert payload["readable_arguments"] == 'amount: 1500, currency: "USD", to: "acct_123"'
    assert payload["rule"] == "tools.create_charge.approve_if[0]"
    assert payload["expires"].endswith("+00:00")
    assert "LEAKED" not in capfd.readouterr().out  # the guard's stdout is the protocol


def test_command_that_denies(tmp_path: Path) -> None:
    command = script(tmp_path, "deny.py", "import sys\nsys.stdin.read()\nsys.exit(1)\n")
    assert ask_command(command, request(), timeout_s=30) == "declined"
    crash = script(tmp_path, "crash.py", "raise SystemExit('dialog failed')\n")
    assert ask_command(crash, request(), timeout_s=30) == "declined"


def test_command_that_ignores_a_large_request_still_answers(tmp_path: Path) -> None:
    command = script(tmp_path, "quick.py", "import sys\nsys.exit(0)\n")
    big = request(arguments={"blob": "x" * 2_000_000})
    assert ask_command(command, big, timeout_s=30) == "approved"


@posix_only
def test_command_that_hangs_is_killed_with_what_it_started(tmp_path: Path) -> None:
    child_pid = tmp_path / "child.pid"
    command = script(
        tmp_path,
        "hang.py",
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(child_pid)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(120)\n",
    )
    warnings: list[str] = []
    started = time.monotonic()
    assert ask_command(command, request(), timeout_s=1.0, warn=warnings.append) == "timeout"
    assert time.monotonic() - started < 10
    assert warnings and "gave no answer within 1s" in warnings[0]
    deadline = time.monotonic() + 10
    pid = int(child_pid.read_text())
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid), "the dialog the command started is still running"


def test_command_that_cannot_run_is_an_error(tmp_path: Path) -> None:
    warnings: list[str] = []
    assert ask_command(str(tmp_path / "no-such-program"), request(), 5, warn=warnings.append) == "error"
    assert "could not be started" in warnings[-1]
    assert ask_command("", request(), 5, warn=warnings.append) == "error"
    assert warnings[-1] == "the approval command is empty"
    if os.name == "posix":
        assert ask_command("'unbalanced", request(), 5, warn=warnings.append) == "error"
        assert "cannot be split into words" in warnings[-1]
        not_executable = tmp_path / "plain.txt"
        not_executable.write_text("hello")
        assert ask_command(str(not_executable), request(), 5, warn=warnings.append) == "error"


def test_command_never_raises_even_if_warn_does(tmp_path: Path) -> None:
    def broken_warn(message: str) -> None:
        raise RuntimeError("warn is broken")

    assert ask_command(str(tmp_path / "missing"), request(), 5, warn=broken_warn) == "error"


# --- the Linux dialog script, with stand-in dialog programs ---------------------------------------------

needs_sh_python3 = pytest.mark.skipif(
    os.name != "posix" or shutil.which("python3") is None or shutil.which("sh") is None,
    reason="needs sh and python3",
)


@pytest.fixture
def fake_desktop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A PATH where zenity/kdialog are stand-ins that record their arguments; a DISPLAY set."""
    if shutil.which("zenity") or shutil.which("kdialog"):
        pytest.skip("a real zenity or kdialog is installed; it would open a dialog")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    yield bin_dir


def stand_in(bin_dir: Path, name: str, exit_code: int) -> Path:
    record = bin_dir / f"{name}.args"
    program = bin_dir / name
    program.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(record)!r}, 'w').write(json.dumps(sys.argv[1:]))\nsys.exit({exit_code})\n"
    )
    program.chmod(0o755)
    return record


LINUX_SCRIPT = str(EXAMPLES / "approve-dialog-linux.sh")
TRICKY = request(tool="create_charge", reason="Charges <b>over</b> 1000 & more.")


@needs_sh_python3
def test_linux_dialog_with_zenity(fake_desktop: Path) -> None:
    record = stand_in(fake_desktop, "zenity", 0)
    assert ask_command(LINUX_SCRIPT, TRICKY, 30) == "approved"
    argv = json.loads(record.read_text())
    assert "--question" in argv and "--no-markup" in argv and "--default-cancel" in argv
    text = next(a for a in argv if a.startswith("--text="))
    for shown in (
        "Server:     payments",
        "Tool:       create_charge",
        'Arguments:  amount: 1500, currency: "USD", to: "acct_123"',
        "Rule:       tools.create_charge.approve_if[0]",
        "Reason:     Charges <b>over</b> 1000 & more.",
        "ap-7k3m9q",
    ):
        assert shown in text
    stand_in(fake_desktop, "zenity", 1)
    assert ask_command(LINUX_SCRIPT, TRICKY, 30) == "declined"


@needs_sh_python3
def test_linux_dialog_falls_back_to_kdialog(fake_desktop: Path) -> None:
    record = stand_in(fake_desktop, "kdialog", 0)
    assert ask_command(LINUX_SCRIPT, TRICKY, 30) == "approved"
    argv = json.loads(record.read_text())
    assert argv[argv.index("--yes-label") + 1] == "Approve"
    text = argv[argv.index("--warningyesno") + 1]
    assert text.startswith("<qt>") and "Charges &lt;b&gt;over&lt;/b&gt; 1000 &amp; more." in text
    assert "amount: 1500, currency: &quot;USD&quot;" in text
    stand_in(fake_desktop, "kdialog", 1)
    assert ask_command(LINUX_SCRIPT, TRICKY, 30) == "declined"


@needs_sh_python3
def test_linux_dialog_without_a_dialog_program_or_display_declines(
    fake_desktop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{fake_desktop}{os.pathsep}/usr/bin{os.pathsep}/bin")
    assert ask_command(LINUX_SCRIPT, TRICKY, 30) == "declined"
    stand_in(fake_desktop, "zenity", 0)
    monkeypatch.delenv("DISPLAY")
    assert ask_command(LINUX_SCRIPT, TRICKY, 30) == "declined"


def test_example_scripts_show_every_field() -> None:
    for name in ("approve-dialog-linux.sh", "approve-dialog-macos.sh", "approve-dialog-windows.ps1"):
        text = (EXAMPLES / name).read_text()
        for field in ("server", "tool", "readable_arguments", "rule", "reason"):
            assert field in text, (name, field)
    readme = (EXAMPLES / "README.md").read_text()
    assert "--approval-command" in readme and all(
        n in readme for n in ("approve-dialog-macos.sh", "approve-dialog-linux.sh", "approve-dialog-windows.ps1")
    )
    if os.name == "posix":
        assert os.access(EXAMPLES / "approve-dialog-linux.sh", os.X_OK)
        assert os.access(EXAMPLES / "approve-dialog-macos.sh", os.X_OK)


# --- tty channel ----------------------------------------------------------------------------------------


class Terminal:
    """A pseudo-terminal: the guard asks on the slave's path, the test reads and types on the master."""

    def __init__(self) -> None:
        import pty

        self.master, self.slave = pty.openpty()
        self.path = os.ttyname(self.slave)
        self.output = b""

    def read_until(self, text: str, timeout: float = 10.0, count: int = 1) -> str:
        deadline = time.monotonic() + timeout
        want = text.encode()
        while self.output.count(want) < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{text!r} never appeared; the terminal shows {self.output!r}"
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                self.output += os.read(self.master, 4096)
        return self.output.decode(errors="replace")

    def drain(self, seconds: float) -> None:
        """Read whatever the terminal shows within ``seconds``."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                self.output += os.read(self.master, 4096)

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    if os.name != "posix":
        pytest.skip("pseudo-terminals are POSIX")
    term = Terminal()
    yield term
    term.close()


class Asker(threading.Thread):
    def __init__(self, req: ApprovalRequest, timeout_s: float, tty_path: str) -> None:
        super().__init__(daemon=True)
        self.args = (req, timeout_s, tty_path)
        self.result: str | None = None

    def run(self) -> None:
        self.result = ask_tty(*self.args)

    def answer(self, timeout: float = 10.0) -> str | None:
        self.join(timeout)
        assert not self.is_alive(), "ask_tty did not return"
        return self.result


@pytest.mark.parametrize(("typed", "expected"), [("y\n", "approved"), ("YES\n", "approved"), ("n\n", "declined")])
def test_tty_asks_and_reads_the_answer(terminal: Terminal, typed: str, expected: str) -> None:
    asker = Asker(request(), 30, terminal.path)
    asker.start()
    shown = terminal.read_until(PROMPT)
    for line in (
        "ap-7k3m9q",
        "server:    payments",
        "tool:      create_charge",
        'arguments: amount: 1500, currency: "USD", to: "acct_123"',
        "rule:      tools.create_charge.approve_if[0]",
        "reason:    Charges over 1000 need a person's approval.",
    ):
        assert line in shown
    terminal.type(typed)
    assert asker.answer() == expected


def test_tty_enter_alone_declines(terminal: Terminal) -> None:
    asker = Asker(request(), 30, terminal.path)
    asker.start()
    terminal.read_until(PROMPT)
    terminal.type("\n")
    assert asker.answer() == "declined"


def test_tty_without_an_answer_times_out(terminal: Terminal) -> None:
    started = time.monotonic()
    asker = Asker(request(), 0.5, terminal.path)
    asker.start()
    terminal.read_until(PROMPT)
    assert asker.answer() == "timeout"
    assert time.monotonic() - started < 5
    assert "not approved" in terminal.read_until("not approved")


def test_tty_ignores_keys_typed_before_the_question(terminal: Terminal) -> None:
    terminal.type("y\n")
    time.sleep(0.3)  # let the pty deliver it to the input queue
    asker = Asker(request(), 1.0, terminal.path)
    asker.start()
    terminal.read_until(PROMPT)
    assert asker.answer() == "timeout"


def test_tty_shows_no_escape_sequences_from_the_call(terminal: Terminal) -> None:
    tricky = request(tool="wipe\x1b[2J\x1b]0;title\x07", arguments={"to": "acct\u202e321"})
    asker = Asker(tricky, 30, terminal.path)
    asker.start()
    shown = terminal.read_until(PROMPT)
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert "wipe\\x1b[2J" in shown
    terminal.type("n\n")
    assert asker.answer() == "declined"


def test_tty_asks_one_question_at_a_time(terminal: Terminal) -> None:
    first = Asker(request(id="ap-aaaaaa"), 30, terminal.path)
    second = Asker(request(id="ap-bbbbbb"), 30, terminal.path)
    first.start()
    terminal.read_until(PROMPT)
    second.start()
    terminal.drain(0.5)
    assert terminal.output.count(PROMPT.encode()) == 1 and b"ap-bbbbbb" not in terminal.output
    terminal.type("y\n")
    assert first.answer() == "approved"
    terminal.read_until(PROMPT, count=2)
    assert b"ap-bbbbbb" in terminal.output
    terminal.type("n\n")
    assert second.answer() == "declined"


def test_tty_unavailable(tmp_path: Path) -> None:
    assert ask_tty(request(), 1, str(tmp_path / "no-such-tty")) == "unavailable"
    plain = tmp_path / "file"
    plain.write_text("")
    assert ask_tty(request(), 1, str(plain)) == "unavailable"
