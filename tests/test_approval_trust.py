"""Approvals can be trusted: rows the guard did not write are never honoured, a grant is bound to the
server that asked, and what a person approves is what they see, in every channel."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli, guard_command

from mcp_guard.approval.command import ask_command
from mcp_guard.approval.request import ApprovalRequest, printable, readable_arguments
from mcp_guard.approval.store import ApprovalStore, UnknownApproval
from mcp_guard.approval.tty import question
from mcp_guard.audit import server_identity

CHARGE = {"amount": 1500, "currency": "USD", "to": "acct_123"}
EVIL = {"amount": 999_999, "currency": "USD", "to": "acct_evil"}
RULE = "tools.create_charge.approve_if[0]"
REASON = "Charges over 1000 need a person's approval."
NOW = 1_800_000_000.0
CUT = "(cut; mcp-guard approvals show {} shows all)"


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The installation secret and state of these tests live under tmp_path, never in the user's own."""
    for var in ("XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "approvals.db"


@pytest.fixture
def store(db: Path) -> ApprovalStore:
    return ApprovalStore(db, clock=lambda: NOW)


def ask(store: ApprovalStore, arguments: dict[str, Any] = CHARGE, **kw: Any) -> ApprovalRequest:
    return store.pending_for("payments", "create_charge", arguments, RULE, REASON, **kw)


def consume(store: ApprovalStore, arguments: dict[str, Any] = CHARGE, **kw: Any) -> Any:
    return store.consume_grant("payments", "create_charge", arguments, **kw)


def sql(db: Path, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """What any program with write access to the file can do, bypassing the guard."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        return conn.execute(statement, params).fetchall()
    finally:
        conn.close()


def fingerprint_of(db: Path, request_id: str) -> str:
    return str(sql(db, "SELECT fingerprint FROM requests WHERE id = ?", request_id)[0][0])


def forge_grant(db: Path, fingerprint: str, **values: Any) -> None:
    """A grant row written with plain SQL, filling whatever columns the table has."""
    columns = [row[1] for row in sql(db, "PRAGMA table_info(grants)")]
    defaults: dict[str, Any] = {
        "id": "ap-zzzzzz",
        "fingerprint": fingerprint,
        "server": "payments",
        "server_identity": server_identity([], "payments"),
        "tool": "create_charge",
        "args_sha256": "0" * 64,
        "source": "attacker",
        "approved_at": NOW,
        "until": NOW + 3600,
        "single_use": 0,
        "used_at": None,
        "uses": 0,
        "forget_at": NOW + 7200,
        "mac": "0" * 64,
    }
    defaults.update(values)
    row = [defaults.get(c) for c in columns]
    sql(db, f"INSERT INTO grants ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})", *row)  # noqa: S608


# --- rows written by anything but the guard -----------------------------------------------------------


def test_grant_inserted_with_sqlite_is_not_honoured(store: ApprovalStore, db: Path) -> None:
    request = ask(store, EVIL)  # the attacker reads the call's fingerprint from the guard's own request
    forge_grant(db, fingerprint_of(db, request.id))
    assert consume(store, EVIL) is None


def test_grant_with_a_mac_copied_from_a_real_row_is_not_honoured(store: ApprovalStore, db: Path) -> None:
    small = ask(store)
    store.decide(small.id, True, 3600)
    evil = ask(store, EVIL)
    sql(db, "UPDATE grants SET fingerprint = ? WHERE id = ?", fingerprint_of(db, evil.id), small.id)
    assert consume(store, EVIL) is None
    assert consume(store) is None  # the altered row is no longer good for the approved call either


def test_used_grant_reset_with_sqlite_is_not_honoured(store: ApprovalStore, db: Path) -> None:
    store.decide(ask(store).id, True)
    assert consume(store) is not None
    sql(db, "UPDATE grants SET used_at = NULL, uses = 0")
    assert consume(store) is None


def test_lapsed_grant_extended_with_sqlite_is_not_honoured(tmp_path: Path, db: Path) -> None:
    now = [NOW]
    store = ApprovalStore(db, clock=lambda: now[0])
    store.remember("payments", "create_charge", CHARGE, 60, "client")
    now[0] += 120
    sql(db, "UPDATE grants SET until = until + 100000, forget_at = forget_at + 100000")
    assert consume(store) is None
    # The same number written as text: SQLite then compares it as greater than any time.
    sql(db, "UPDATE grants SET until = ?, forget_at = forget_at - 100000", f"{NOW + 60:_}")
    assert sql(db, "SELECT typeof(until) FROM grants") == [("text",)]
    assert consume(store) is None


def test_a_store_from_before_seals_is_emptied(db: Path) -> None:
    sql(db, "CREATE TABLE requests (id TEXT PRIMARY KEY, fingerprint TEXT)")
    sql(db, "CREATE TABLE grants (id TEXT PRIMARY KEY, fingerprint TEXT, until REAL)")
    sql(db, "INSERT INTO grants VALUES ('ap-zzzzzz', 'x', 9e99)")
    sql(db, "PRAGMA user_version = 1")
    store = ApprovalStore(db, clock=lambda: NOW)
    assert consume(store) is None and store.list_pending() == []
    assert sql(db, "SELECT count(*) FROM grants") == [(0,)]
    assert ask(store).state == "pending"


def test_request_altered_to_look_harmless_cannot_be_approved(store: ApprovalStore, db: Path) -> None:
    """The person sees the stored arguments; the grant is for the stored fingerprint: both are sealed."""
    evil = ask(store, EVIL)
    sql(db, "UPDATE requests SET arguments = ? WHERE id = ?", json.dumps(CHARGE), evil.id)
    assert [r.id for r in store.list_pending()] == []
    with pytest.raises(UnknownApproval, match="not written by mcp-guard"):
        store.decide(evil.id, True)
    assert consume(store, EVIL) is None


def test_status_set_to_approved_with_sqlite_is_not_honoured(store: ApprovalStore, db: Path) -> None:
    request = ask(store, EVIL)
    sql(
        db, "UPDATE requests SET state = 'approved', decided_at = ?, until = ? WHERE id = ?", NOW, NOW + 600, request.id
    )
    forge_grant(db, fingerprint_of(db, request.id), id=request.id, single_use=1)
    assert consume(store, EVIL) is None
    assert store.settle(request, True, by="tty") is not None  # the person's own answer still counts
    assert consume(store, EVIL) is None  # and is used by the held call at once


def test_forged_pending_request_is_not_listed_and_cannot_be_approved(store: ApprovalStore, db: Path) -> None:
    real = ask(store)
    columns = [row[1] for row in sql(db, "PRAGMA table_info(requests)")]
    row = dict(zip(columns, sql(db, "SELECT * FROM requests WHERE id = ?", real.id)[0], strict=True))
    row["id"] = "ap-zzzzzz"
    sql(db, f"INSERT INTO requests ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", *row.values())  # noqa: S608
    assert [r.id for r in store.list_pending()] == [real.id]
    with pytest.raises(UnknownApproval, match="ap-zzzzzz was not written by mcp-guard"):
        store.decide("ap-zzzzzz", True)


def test_rows_that_do_not_verify_are_reported(db: Path) -> None:
    warnings: list[str] = []
    store = ApprovalStore(db, clock=lambda: NOW, warn=warnings.append)
    request = ask(store, EVIL)
    forge_grant(db, fingerprint_of(db, request.id))
    assert consume(store, EVIL) is None
    assert consume(store, EVIL) is None
    assert warnings == [
        f"approval store {db}: grant ap-zzzzzz was not written by mcp-guard (its seal does not verify with this "
        "installation's secret); it is ignored"
    ]


def test_a_store_written_with_another_secret_is_not_trusted(db: Path, tmp_path: Path) -> None:
    ours = ApprovalStore(db, clock=lambda: NOW, key=b"a" * 32)
    ours.decide(ask(ours).id, True, 3600)
    theirs = ApprovalStore(db, clock=lambda: NOW, key=b"b" * 32, warn=lambda m: None)
    assert consume(theirs) is None
    assert consume(ours) is not None


# --- the server that asked -----------------------------------------------------------------------------


HERE = ["python3", "/home/me/payments/server.py"]
THERE = ["python3", "/tmp/other/server.py"]  # the same display name: "server"


def test_server_identity_is_the_whole_command_line_or_the_name() -> None:
    assert server_identity(HERE, None) != server_identity(THERE, None)
    assert server_identity(["a b"], None) != server_identity(["a", "b"], None)
    assert server_identity(HERE, "payments") == server_identity(THERE, "payments")
    assert server_identity(HERE, "payments") != server_identity(["payments"], None)
    assert server_identity([], '["x"]') != server_identity(["x"], None)
    assert server_identity(["srv\udc80"], None).encode()  # an undecodable argv byte is no error


def test_grants_bind_to_the_server_identity_not_its_display_name(store: ApprovalStore) -> None:
    here, there = server_identity(HERE, None), server_identity(THERE, None)
    store.remember("server", "create_charge", CHARGE, 600, "client", identity=here)
    assert store.consume_grant("server", "create_charge", CHARGE, identity=there) is None
    assert store.consume_grant("server", "create_charge", CHARGE) is None
    assert store.consume_grant("server", "create_charge", CHARGE, identity=here) is not None

    first = store.pending_for("server", "create_charge", CHARGE, RULE, REASON, identity=here)
    second = store.pending_for("server", "create_charge", CHARGE, RULE, REASON, identity=there)
    assert first.id != second.id
    assert (first.server, first.server_identity) == ("server", here)
    store.decide(first.id, True)
    assert store.consume_grant("server", "create_charge", CHARGE, identity=there) is None
    assert store.consume_grant("server", "create_charge", CHARGE, identity=here) is not None


def test_settle_grants_for_the_identity_of_the_request(store: ApprovalStore) -> None:
    here, there = server_identity(HERE, None), server_identity(THERE, None)
    request = store.pending_for("server", "create_charge", CHARGE, RULE, REASON, identity=here)
    assert store.settle(request, True, by="tty", remember_s=600) is not None
    assert store.consume_grant("server", "create_charge", CHARGE, identity=there) is None
    assert store.consume_grant("server", "create_charge", CHARGE, identity=here) is not None


# --- what a person sees ----------------------------------------------------------------------------------


def request(**kw: Any) -> ApprovalRequest:
    base: dict[str, Any] = {
        "id": "ap-7k3m9q",
        "server": "payments",
        "tool": "create_charge",
        "arguments": CHARGE,
        "args_sha256": "0" * 64,
        "rule": RULE,
        "reason": REASON,
        "created": time.time(),
        "expires": time.time() + 600,
    }
    base.update(kw)
    return ApprovalRequest(**base)


LONG = {
    "memo": "x" * 500,
    "to": "acct_" + "9" * 300,
    "amount": 10**40,
    "command": "echo " + "a" * 400 + "; rm -rf ~",
}


def test_amounts_recipients_and_commands_are_never_cut() -> None:
    shown = request(arguments=LONG).readable_arguments
    assert '"acct_' + "9" * 300 + '"' in shown
    assert "amount: " + str(10**40) in shown
    assert "; rm -rf ~" in shown
    assert 'memo: "' + "x" * 77 + '…"' in shown
    assert shown.endswith("… " + CUT.format("ap-7k3m9q"))


def test_keys_past_the_budget_are_counted_but_the_amount_is_shown() -> None:
    arguments: dict[str, Any] = {f"note{i}": "v" * 70 for i in range(20)}
    arguments["amount"] = 4711
    arguments["recipientEmail"] = "eve@example.com"
    shown = request(arguments=arguments).readable_arguments
    assert "amount: 4711" in shown and 'recipientEmail: "eve@example.com"' in shown
    assert "(+13 more)" in shown and shown.endswith(CUT.format("ap-7k3m9q"))


def test_nested_amounts_are_never_cut() -> None:
    arguments = {"payment": {"details": {"amount": 5, "iban": "DE" + "1" * 200}}}
    shown = request(arguments=arguments).readable_arguments
    assert shown == 'payment: {"details":{"amount":5,"iban":"DE' + "1" * 200 + '"}}'


def test_nothing_is_cut_where_no_approval_id_can_be_shown() -> None:
    assert readable_arguments(LONG) == (
        'memo: "'
        + "x" * 500
        + '", to: "acct_'
        + "9" * 300
        + f'", amount: {10**40}, command: "echo '
        + "a" * 400
        + '; rm -rf ~"'
    )


def test_uncut_arguments_carry_no_note() -> None:
    assert request().readable_arguments == 'amount: 1500, currency: "USD", to: "acct_123"'


def test_control_bidi_and_tag_characters_are_shown_escaped() -> None:
    tricky = {"to": "acct\x1b[2J\u202e321\U000e0041", "\x07bell": 1, "c1": "\x9b\x7f", "lone": "\ud800"}
    assert readable_arguments(tricky) == (
        'to: "acct\\x1b[2J\\u202e321\\U000e0041", "\\x07bell": 1, c1: "\\x9b\\x7f", lone: "\\ud800"'
    )
    assert readable_arguments({"deep": [{"k\u2066": "\x1b"}]}) == 'deep: [{"k\\u2066":"\\x1b"}]'
    assert printable("tool\rname\u202e\U000e0041\x7f") == "tool\\x0dname\\u202e\\U000e0041\\x7f"
    assert printable("café ok") == "café ok"


def test_tty_question_points_to_the_full_arguments() -> None:
    text = question(request(arguments=LONG, tool="wipe\x1b[2J"))
    assert "\x1b" not in text and "tool:      wipe\\x1b[2J" in text
    assert CUT.format("ap-7k3m9q") in text and "; rm -rf ~" in text


def test_command_channel_gets_json_even_with_lone_surrogates(tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    program = tmp_path / "approve.py"
    program.write_text(f"import sys\nopen({str(seen)!r}, 'wb').write(sys.stdin.buffer.read())\n")
    tricky = request(arguments={"to": "acct\ud800", "memo": "\u202e"})
    assert ask_command(f"{sys.executable} {program}", tricky, timeout_s=30) == "approved"
    payload = json.loads(seen.read_bytes())
    assert payload["arguments"] == {"to": "acct\ud800", "memo": "\u202e"}
    assert payload["readable_arguments"] == 'to: "acct\\ud800", memo: "\\u202e"'
    assert b"\xe2\x80\xae" not in seen.read_bytes()  # the override itself is sent as a JSON escape


# --- the commands ---------------------------------------------------------------------------------------


def cli_process(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed script; the other tests run the commands in this process (``conftest.cli``)."""
    return subprocess.run([*guard_command(), *args], capture_output=True, text=True, timeout=60, check=False)


def test_approvals_show_prints_every_argument_in_full(db: Path, cli: Cli) -> None:
    store = ApprovalStore(db)
    tricky = {**LONG, "note": "\x1b]0;title\x07\u202e", "lone\udc80": True}
    pending = store.pending_for("server", "create_charge", tricky, RULE, REASON, identity=server_identity(HERE, None))
    listed = cli("approvals", "--store", str(db))
    assert listed.returncode == 0, listed.stderr
    assert CUT.format(pending.id) in listed.stdout and "\x1b" not in listed.stdout

    shown = cli("approvals", "show", pending.id.upper(), "--store", str(db))
    assert (shown.returncode, shown.stderr) == (0, "")
    out = shown.stdout
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    for line in (
        f"approval {pending.id} (pending)",
        "  server:    server",
        "  command:   python3 /home/me/payments/server.py",
        "  tool:      create_charge",
        f"  rule:      {RULE}",
        f"  reason:    {REASON}",
        '    memo: "' + "x" * 500 + '"',
        '    note: "\\x1b]0;title\\x07\\u202e"',
        '    "lone\\udc80": true',
        f"approve with `mcp-guard approve {pending.id}`, or refuse with `mcp-guard deny {pending.id}`",
    ):
        assert line in out.splitlines(), (line, out)

    as_json = cli("approvals", "show", pending.id, "--store", str(db), "--json")
    assert as_json.returncode == 0, as_json.stderr
    record = json.loads(as_json.stdout)
    assert record["arguments"] == tricky and record["server_identity"] == server_identity(HERE, None)

    missing = cli("approvals", "show", "ap-zzzzzz", "--store", str(db))
    assert missing.returncode == 1 and missing.stderr.startswith("mcp-guard: no pending approval ap-zzzzzz")


def test_approvals_listing_takes_lone_surrogates(db: Path, cli: Cli) -> None:
    store = ApprovalStore(db)
    pending = store.pending_for("pay\ud800", "create\udc00", {"to\udfff": "x\ud800"}, RULE, REASON)
    table = cli("approvals", "--store", str(db))
    assert table.returncode == 0, table.stderr
    assert f'{pending.id}  pay\\ud800  create\\udc00  "to\\udfff": "x\\ud800"' in table.stdout
    as_json = cli("approvals", "--store", str(db), "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["arguments"] == {"to\udfff": "x\ud800"}


def test_approvals_list_approve_and_deny_spellings(db: Path) -> None:
    store = ApprovalStore(db)
    one, two = ask(store), ask(store, EVIL)
    listed = cli_process("approvals", "list", "--store", str(db), "--json")
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [one.id, two.id]
    assert cli_process("approvals", "approve", one.id, "--store", str(db)).returncode == 0
    assert cli_process("approvals", "deny", two.id, "--store", str(db)).returncode == 0
    assert (store.status(one.id).state, store.status(two.id).state) == ("approved", "denied")
