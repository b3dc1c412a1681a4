"""The approval store: requests, dedupe, decisions, grants (single-use, --for, remember), denials,
expiry, pruning, concurrency between processes, and the approvals/approve/deny commands end to end."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli, guard_command

from mcp_guard.approval.request import (
    ID_ALPHABET,
    ApprovalRequest,
    call_fingerprint,
    duration_words,
    normalize_id,
    printable,
    readable_arguments,
    short_duration,
)
from mcp_guard.approval.store import (
    GRANT_TTL_S,
    HISTORY_S,
    MIN_DENIAL_S,
    REQUEST_TTL_S,
    AlreadyDecided,
    ApprovalDenied,
    ApprovalExpired,
    ApprovalStore,
    ApprovalStoreUnavailable,
    Grant,
    TooManyPending,
    UnknownApproval,
)
from mcp_guard.audit import arguments_sha256

CHARGE = {"amount": 1500, "currency": "USD", "to": "acct_123"}
RULE = "tools.create_charge.approve_if[0]"
REASON = "Charges over 1000 need a person's approval."
ID_PATTERN = re.compile(rf"ap-[{ID_ALPHABET}]{{6}}\Z")


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The installation secret and state of these tests live under tmp_path, never in the user's own."""
    for var in ("XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> ApprovalStore:
    return ApprovalStore(tmp_path / "approvals.db", clock=clock)


def ask(store: ApprovalStore, arguments: dict[str, Any] | None = None, **kw: Any) -> ApprovalRequest:
    server = kw.pop("server", "payments")
    tool = kw.pop("tool", "create_charge")
    return store.pending_for(server, tool, CHARGE if arguments is None else arguments, RULE, REASON, **kw)


def consume(store: ApprovalStore, arguments: dict[str, Any] | None = None, **kw: Any) -> Grant | None:
    return store.consume_grant(
        kw.get("server", "payments"), kw.get("tool", "create_charge"), CHARGE if arguments is None else arguments
    )


# --- request.py -----------------------------------------------------------------------------


def test_readable_arguments_shows_values_compactly() -> None:
    assert readable_arguments(CHARGE) == 'amount: 1500, currency: "USD", to: "acct_123"'
    assert readable_arguments({}) == ""
    assert (
        readable_arguments({"items": [{"sku": "a", "n": 2}], "ok": True, "none": None, "rate": 0.5})
        == 'items: [{"sku":"a","n":2}], ok: true, none: null, rate: 0.5'
    )
    assert readable_arguments({"odd key": 1, "quote": 'say "hi"\n'}) == '"odd key": 1, quote: "say \\"hi\\"\\n"'


def test_readable_arguments_cuts_long_values_but_keeps_the_rest_in_sight() -> None:
    see_all = " … (cut; mcp-guard approvals show ap-7k3m9q shows all)"
    text = readable_arguments({"memo": "x" * 500, "amount": 1500, "to": "acct_123"}, approval_id="ap-7k3m9q")
    assert text == 'memo: "' + "x" * 77 + '…", amount: 1500, to: "acct_123"' + see_all
    nested = readable_arguments({"data": {"k": list(range(100))}}, approval_id="ap-7k3m9q")
    assert nested.endswith("…" + see_all) and len(nested) == len("data: ") + 80 + len(see_all)
    many = readable_arguments({f"k{i}": "v" * 70 for i in range(20)}, approval_id="ap-7k3m9q")
    assert many.endswith(", (+13 more)" + see_all) and len(many) < 700
    # Without an approval id nothing could show the rest, so nothing is cut.
    assert readable_arguments({"memo": "x" * 500}) == 'memo: "' + "x" * 500 + '"'


def test_readable_arguments_escapes_terminal_tricks() -> None:
    text = readable_arguments({"to": "acct\x1b[2J\u202e321", "\x07bell": 1})
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert text == 'to: "acct\\x1b[2J\\u202e321", "\\x07bell": 1'
    # A cut never leaves half an escape behind.
    cut = readable_arguments({"s": "a" * 74 + "\x1b" * 10}, approval_id="ap-7k3m9q")
    assert cut == 's: "' + "a" * 74 + '…" … (cut; mcp-guard approvals show ap-7k3m9q shows all)'
    assert printable("tool\rname") == "tool\\x0dname"
    assert printable("café ok") == "café ok"


def test_fingerprint_is_canonical_and_unambiguous() -> None:
    assert call_fingerprint("s", "t", {"a": 1, "b": 2}) == call_fingerprint("s", "t", {"b": 2, "a": 1})
    assert call_fingerprint("s", "t", {"a": 1}) != call_fingerprint("s", "t", {"a": 2})
    assert call_fingerprint("s", "t", {"a": 1}) != call_fingerprint("s2", "t", {"a": 1})
    assert call_fingerprint("ab", "c", {}) != call_fingerprint("a", "bc", {})


def test_ids_and_words() -> None:
    assert normalize_id(" AP-7K3M9Q ") == "ap-7k3m9q"
    assert normalize_id("7k3m9q") == "ap-7k3m9q"
    assert normalize_id("nonsense") == "nonsense"
    assert not set("01ilo") & set(ID_ALPHABET)
    assert duration_words(600) == "10 minutes"
    assert duration_words(1) == "1 second"
    assert duration_words(90) == "1 minute 30 seconds"
    assert duration_words(5400) == "1 hour 30 minutes"
    assert duration_words(7200) == "2 hours"
    assert duration_words(86400 * 3) == "3 days"
    assert [short_duration(s) for s in (12, 588, 3900, 90000)] == ["12s", "9m48s", "1h05m", "1d01h"]


# --- requests ---------------------------------------------------------------------------------


def test_request_is_created_once_per_identical_call(store: ApprovalStore, clock: Clock) -> None:
    first = ask(store)
    assert ID_PATTERN.match(first.id)
    assert (first.server, first.tool, first.arguments, first.rule, first.reason) == (
        "payments",
        "create_charge",
        CHARGE,
        RULE,
        REASON,
    )
    assert first.args_sha256 == arguments_sha256(CHARGE)
    assert (first.created, first.expires, first.state) == (clock.now, clock.now + REQUEST_TTL_S, "pending")
    clock.advance(30)
    assert ask(store, dict(reversed(CHARGE.items()))).id == first.id  # same call, keys in another order
    assert ask(store, {**CHARGE, "amount": 1501}).id != first.id
    assert ask(store, server="other").id != first.id
    assert ask(store, tool="refund").id != first.id
    assert store.list_pending()[0].id == first.id
    assert len(store.list_pending()) == 4


def test_arguments_keep_their_order_for_people(store: ApprovalStore) -> None:
    request = ask(store, {"to": "acct_1", "amount": 5})
    assert store.status(request.id).readable_arguments == 'to: "acct_1", amount: 5'
    assert request.describe() == 'create_charge(to: "acct_1", amount: 5) on payments'


def test_requests_expire(store: ApprovalStore, clock: Clock) -> None:
    first = ask(store)
    clock.advance(REQUEST_TTL_S + 1)
    assert store.list_pending() == []
    assert store.status(first.id).state == "expired"
    with pytest.raises(ApprovalExpired) as caught:
        store.decide(first.id, True)
    assert str(caught.value) == (
        f"approval {first.id} expired 1 second ago (requests expire after 10 minutes); "
        "the agent must make the call again to ask anew"
    )
    second = ask(store)
    assert second.id != first.id and store.status(second.id).state == "pending"


def test_custom_request_lifetime(store: ApprovalStore, clock: Clock) -> None:
    request = ask(store, ttl_s=60)
    assert request.expires == clock.now + 60
    clock.advance(61)
    with pytest.raises(ApprovalExpired, match="requests expire after 1 minute\\)"):
        store.decide(request.id, True)


def test_unknown_ids(store: ApprovalStore) -> None:
    for typed, shown in (("ap-zzzzzz", "ap-zzzzzz"), ("ZZZZZZ", "ap-zzzzzz"), ("bogus", "bogus")):
        with pytest.raises(UnknownApproval) as caught:
            store.decide(typed, True)
        assert str(caught.value) == (
            f"no pending approval {shown} (it may have expired: requests expire after 10 minutes)"
        )
        with pytest.raises(UnknownApproval):
            store.status(typed)


def test_too_many_pending(tmp_path: Path, clock: Clock) -> None:
    store = ApprovalStore(tmp_path / "a.db", clock=clock, max_pending=3)
    for n in range(3):
        ask(store, {"n": n})
    assert ask(store, {"n": 0}).id  # asking again for a waiting call is fine
    with pytest.raises(TooManyPending, match="3 approvals are already waiting"):
        ask(store, {"n": 3})
    clock.advance(REQUEST_TTL_S + 1)
    ask(store, {"n": 3})


# --- approving and grants ----------------------------------------------------------------------


def test_approval_is_single_use_for_the_identical_call(store: ApprovalStore, clock: Clock) -> None:
    request = ask(store)
    assert consume(store) is None
    decided = store.decide(request.id.upper(), True, by="alice")
    assert (decided.state, decided.decided_by, decided.single_use) == ("approved", "alice", True)
    assert decided.until == clock.now + GRANT_TTL_S
    assert store.list_pending() == []
    assert consume(store, {**CHARGE, "amount": 9999}) is None  # not this call
    assert consume(store, server="other") is None
    clock.advance(5)
    grant = consume(store, dict(reversed(CHARGE.items())))
    assert grant == Grant(request.id, "alice", clock.now - 5, clock.now - 5 + GRANT_TTL_S, single_use=True, uses=1)
    assert consume(store) is None
    assert store.status(request.id).state == "used"
    # The next identical call asks again, with a new id.
    assert ask(store).id != request.id


def test_unused_approval_lapses(store: ApprovalStore, clock: Clock) -> None:
    store.decide(ask(store).id, True)
    clock.advance(GRANT_TTL_S + 1)
    assert consume(store) is None


def test_approval_for_a_while_is_reusable_until_it_ends(store: ApprovalStore, clock: Clock) -> None:
    request = ask(store)
    decided = store.decide(request.id, True, 3600, by="bob")
    assert (decided.single_use, decided.until) == (False, clock.now + 3600)
    uses = []
    for _ in range(3):
        clock.advance(600)
        grant = consume(store)
        assert grant is not None and not grant.single_use
        uses.append(grant.uses)
    assert uses == [1, 2, 3]
    clock.advance(1801)
    assert consume(store) is None
    assert store.status(request.id).state == "approved"


def test_remember_records_a_grant_without_a_request(store: ApprovalStore, clock: Clock) -> None:
    grant = store.remember("payments", "create_charge", CHARGE, 600, "client")
    assert ID_PATTERN.match(grant.id)
    assert (grant.source, grant.until, grant.single_use, grant.uses) == ("client", clock.now + 600, False, 0)
    used = consume(store)
    assert used is not None and (used.id, used.source, used.uses) == (grant.id, "client", 1)
    assert consume(store) is not None
    assert consume(store, {"amount": 1}) is None
    clock.advance(601)
    assert consume(store) is None
    with pytest.raises(ValueError):
        store.remember("payments", "create_charge", CHARGE, 0, "client")


def test_reusable_grant_is_used_before_a_single_use_one(store: ApprovalStore) -> None:
    store.decide(ask(store).id, True)
    remembered = store.remember("payments", "create_charge", CHARGE, 600, "client")
    for _ in range(3):
        grant = consume(store)
        assert grant is not None and grant.id == remembered.id


def test_already_decided(store: ApprovalStore, clock: Clock) -> None:
    approved = ask(store).id
    store.decide(approved, True, by="alice")
    clock.advance(120)
    with pytest.raises(AlreadyDecided) as caught:
        store.decide(approved, False)
    assert str(caught.value) == f"approval {approved} was already approved (2 minutes ago, by alice)"
    consume(store)
    with pytest.raises(AlreadyDecided, match="was already approved and used"):
        store.decide(approved, True)
    denied = ask(store, {"n": 1}).id
    store.decide(denied, False, by="carol")
    with pytest.raises(AlreadyDecided, match=f"approval {denied} was already denied \\(0 seconds ago, by carol\\)"):
        store.decide(denied, True)


# --- denying ------------------------------------------------------------------------------------


def test_denied_call_is_refused_on_retry_while_recent(store: ApprovalStore, clock: Clock) -> None:
    request = ask(store)
    clock.advance(60)
    decided = store.decide(request.id, False, by="alice")
    assert (decided.state, decided.until) == ("denied", request.expires)
    assert consume(store) is None
    clock.advance(120)
    with pytest.raises(ApprovalDenied) as caught:
        ask(store)
    assert str(caught.value) == (
        f"A person denied this call ({request.id}, 2 minutes ago): do not retry it unchanged; "
        "ask the user how to proceed."
    )
    assert caught.value.request.id == request.id and caught.value.request.decided_by == "alice"
    assert ask(store, {**CHARGE, "amount": 100}).state == "pending"  # another call is asked about normally
    clock.advance(request.expires - clock.now + 1)
    fresh = ask(store)
    assert fresh.id != request.id and fresh.state == "pending"


def test_late_denial_still_holds_for_a_while(store: ApprovalStore, clock: Clock) -> None:
    request = ask(store)
    clock.advance(REQUEST_TTL_S - 5)
    decided = store.decide(request.id, False)
    assert decided.until == clock.now + MIN_DENIAL_S
    clock.advance(MIN_DENIAL_S - 1)
    with pytest.raises(ApprovalDenied):
        ask(store)
    clock.advance(2)
    assert ask(store).id != request.id


# --- pruning, the file, failures -------------------------------------------------------------------


def test_old_rows_are_pruned(store: ApprovalStore, clock: Clock, tmp_path: Path) -> None:
    for n in range(50):
        ask(store, {"n": n})
    kept = ask(store, {"keep": True})
    store.decide(kept.id, True, 3 * 3600)
    clock.advance(REQUEST_TTL_S + HISTORY_S + 1)
    assert store.status(kept.id).state == "approved"
    assert store.expire_old() == 50
    assert store.expire_old() == 0
    clock.advance(3 * 3600)
    assert store.expire_old() == 2  # the request and its grant
    with pytest.raises(UnknownApproval):
        store.status(kept.id)
    # Pruning also happens as requests are made.
    for n in range(10):
        ask(store, {"m": n})
    clock.advance(REQUEST_TTL_S + HISTORY_S + 1)
    ask(store, {"new": 1})
    assert store.expire_old() == 0


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "approvals.db"
    ask(ApprovalStore(path))
    assert path.stat().st_mode & 0o777 == 0o600
    loose = tmp_path / "loose.db"
    loose.touch(mode=0o644)
    os.chmod(loose, 0o644)
    ask(ApprovalStore(loose))
    assert loose.stat().st_mode & 0o777 == 0o600


def test_default_path_is_in_the_user_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import platformdirs

    monkeypatch.setattr(platformdirs, "user_state_dir", lambda *a, **k: str(tmp_path / "state"))
    assert ApprovalStore().path == tmp_path / "state" / "approvals.db"


def test_unusable_store_fails_closed(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    store = ApprovalStore(tmp_path / "dir.db")
    with pytest.raises(ApprovalStoreUnavailable, match=r"the approval store .*dir\.db cannot be used"):
        ask(store)
    with pytest.raises(ApprovalStoreUnavailable):
        consume(store)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    with pytest.raises(ApprovalStoreUnavailable):
        ApprovalStore(garbage).list_pending()


def test_two_guards_share_one_file(tmp_path: Path) -> None:
    one, two, person = (ApprovalStore(tmp_path / "a.db") for _ in range(3))
    request = ask(one)
    assert ask(two).id == request.id
    assert [r.id for r in person.list_pending()] == [request.id]
    person.decide(request.id, True)
    grants = [consume(one), consume(two)]
    assert sorted(g is None for g in grants) == [False, True]


def test_threads_share_one_store(store: ApprovalStore) -> None:
    store.decide(ask(store).id, True)
    results: list[Grant | None] = []
    threads = [threading.Thread(target=lambda: results.append(consume(store))) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(g is not None for g in results) == 1


def _race_consume(path: str, start: Any, results: Any) -> None:
    store = ApprovalStore(Path(path), busy_timeout_s=30)
    store.list_pending()  # open the connection before the start signal
    start.wait(60)
    grant = store.consume_grant("payments", "create_charge", CHARGE)
    results.put(None if grant is None else grant.id)


def _race_ask(path: str, start: Any, results: Any) -> None:
    store = ApprovalStore(Path(path), busy_timeout_s=30)
    store.list_pending()
    start.wait(60)
    results.put(store.pending_for("payments", "create_charge", CHARGE, RULE, REASON).id)


def _race(target: Any, path: Path, n: int) -> list[str | None]:
    # Fork where there is one: the racers are separate processes with their own connections either way,
    # without each importing the test modules again (about half a second each under spawn).
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    # Every process imports and opens the store, then all go at once (however long the imports take).
    start = ctx.Barrier(n)
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(str(path), start, results)) for _ in range(n)]
    for p in procs:
        p.start()
    out = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return out


def test_processes_racing_for_one_single_use_grant(tmp_path: Path) -> None:
    path = tmp_path / "approvals.db"
    store = ApprovalStore(path)
    request = ask(store)
    store.decide(request.id, True)
    store.close()
    results = _race(_race_consume, path, 8)
    assert results.count(request.id) == 1
    assert results.count(None) == 7


def test_processes_asking_at_once_get_one_request(tmp_path: Path) -> None:
    path = tmp_path / "approvals.db"
    results = _race(_race_ask, path, 6)
    assert len(set(results)) == 1
    assert len(ApprovalStore(path).list_pending()) == 1


# --- the commands, as a person runs them ---------------------------------------------------------------


def cli_process(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed script; the other tests run the commands in this process (``conftest.cli``)."""
    return subprocess.run([*guard_command(), *args], capture_output=True, text=True, timeout=60, check=False)


def test_approvals_lists_pending_requests(tmp_path: Path, cli: Cli) -> None:
    db = str(tmp_path / "approvals.db")
    empty = cli("approvals", "--store", db)
    assert (empty.returncode, empty.stdout, empty.stderr) == (0, "no pending approvals\n", "")
    store = ApprovalStore(Path(db))
    charge = ask(store)
    delete = store.pending_for("files", "delete_file", {"path": "/etc/hosts"}, "tools.delete_file.action", "Deletes.")
    result = cli("approvals", "--store", db)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"id +server +tool +arguments +rule +reason +age +expires in", lines[0])
    assert re.fullmatch(
        rf"{charge.id}  payments  create_charge  amount: 1500, currency: \"USD\", to: \"acct_123\"  "
        rf"{re.escape(RULE)}  {re.escape(REASON)}  \d+s +9m5\ds",
        lines[1],
    ), lines[1]
    assert re.fullmatch(
        rf"{delete.id}  files     delete_file    path: \"/etc/hosts\" +tools\.delete_file\.action +Deletes\. "
        r"+\d+s +9m5\ds",
        lines[2],
    ), lines[2]
    assert lines[3:] == [
        "",
        "approve with `mcp-guard approve ID` (add --for 10m to allow identical calls for a while), "
        "or refuse with `mcp-guard deny ID`",
    ]
    as_json = cli("approvals", "--store", db, "--json")
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [r["id"] for r in records] == [charge.id, delete.id]
    first = records[0]
    assert first["arguments"] == CHARGE and first["readable_arguments"] == charge.readable_arguments
    assert (first["server"], first["tool"], first["rule"], first["reason"]) == (
        "payments",
        "create_charge",
        RULE,
        REASON,
    )
    assert first["args_sha256"] == arguments_sha256(CHARGE)
    assert 0 <= first["age_s"] < 30 and 570 < first["expires_in_s"] <= 600
    assert first["expires"].endswith("+00:00")


def test_approve_and_deny_end_to_end(tmp_path: Path, cli: Cli) -> None:
    db = str(tmp_path / "approvals.db")
    store = ApprovalStore(Path(db))
    request = ask(store)

    approved = cli("approve", request.id.upper(), "--store", db)
    assert (approved.returncode, approved.stderr) == (0, "")
    assert approved.stdout == (
        f'approved {request.id}: create_charge(amount: 1500, currency: "USD", to: "acct_123") on payments; '
        "the agent may retry the identical call once (within 10 minutes)\n"
    )
    grant = consume(store)
    assert grant is not None and grant.id == request.id and grant.source.endswith(" via mcp-guard")
    assert consume(store) is None

    again = cli("approve", request.id, "--store", db)
    assert again.returncode == 1 and again.stdout == ""
    assert re.fullmatch(
        rf"mcp-guard: approval {request.id} was already approved and used \(\d+ seconds? ago, by .+ via mcp-guard\)\n",
        again.stderr,
    ), again.stderr

    reusable = ask(store, {"amount": 20})
    approved_for = cli("approve", reusable.id, "--for", "2h", "--store", db)
    assert approved_for.returncode == 0, approved_for.stderr
    assert approved_for.stdout == (
        f"approved {reusable.id}: create_charge(amount: 20) on payments; "
        "identical calls pass without asking for the next 2 hours\n"
    )
    assert all(consume(store, {"amount": 20}) is not None for _ in range(3))

    denied_request = ask(store, {"amount": 5000})
    denied = cli("deny", denied_request.id, "--store", db)
    assert (denied.returncode, denied.stderr) == (0, "")
    # Refused until the request would have expired: 10 minutes after it was asked, so a little less
    # when the command starts slowly.
    assert re.fullmatch(
        rf"denied {denied_request.id}: create_charge\(amount: 5000\) on payments; the agent is told a person "
        r"denied it, and identical calls are refused for the next (10 minutes|9 minutes \d+ seconds?)\n",
        denied.stdout,
    ), denied.stdout
    with pytest.raises(ApprovalDenied):
        ask(store, {"amount": 5000})
    approve_denied = cli("approve", denied_request.id, "--store", db)
    assert approve_denied.returncode == 1
    assert f"approval {denied_request.id} was already denied" in approve_denied.stderr


def test_commands_report_unknown_expired_and_bad_input(tmp_path: Path, cli: Cli) -> None:
    db = str(tmp_path / "approvals.db")
    for command in ("approve", "deny"):
        result = cli(command, "ap-zzzzzz", "--store", db)
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (
            "mcp-guard: no pending approval ap-zzzzzz (it may have expired: requests expire after 10 minutes)\n"
        )
    past = ApprovalStore(Path(db), clock=lambda: time.time() - REQUEST_TTL_S - 90)
    old = ask(past)
    expired = cli("deny", old.id, "--store", db)
    assert expired.returncode == 1
    assert re.fullmatch(
        rf"mcp-guard: approval {old.id} expired 1 minute 3\d seconds ago \(requests expire after 10 minutes\); "
        "the agent must make the call again to ask anew\n",
        expired.stderr,
    ), expired.stderr
    bad_for = cli("approve", old.id, "--for", "soon", "--store", db)
    assert bad_for.returncode == 2
    assert bad_for.stderr == "mcp-guard: --for 'soon': expected a duration such as 90s, 10m, 2h or 1d\n"
    no_id = cli("approve", "--store", db)
    assert no_id.returncode == 2 and "the following arguments are required: id" in no_id.stderr
    (tmp_path / "dir.db").mkdir()
    broken = cli("approvals", "--store", str(tmp_path / "dir.db"))
    assert broken.returncode == 1 and broken.stderr.startswith("mcp-guard: the approval store ")


def test_commands_are_listed_in_help() -> None:
    result = cli_process("--help")
    # approve/deny are the older spellings of approvals approve/deny, listed as such.
    assert "mcp-guard approvals" in result.stdout and "approve = approvals approve" in result.stdout
    assert "deny = approvals deny" in result.stdout


# --- answers from other channels ------------------------------------------------------------------------


def test_settle_approved_uses_the_grant_at_once(store: ApprovalStore, clock: Clock) -> None:
    request = ask(store)
    grant = store.settle(request, True, by="tty")
    assert grant == Grant(request.id, "tty", clock.now, clock.now + GRANT_TTL_S, single_use=True, uses=1)
    assert consume(store) is None  # nothing left lying around for a later identical call
    assert store.status(request.id).state == "used"
    assert store.list_pending() == []
    with pytest.raises(AlreadyDecided):
        store.decide(request.id, False)


def test_settle_approved_with_remember(store: ApprovalStore, clock: Clock) -> None:
    request = ask(store)
    grant = store.settle(request, True, by="client", remember_s=600)
    assert grant is not None and (grant.single_use, grant.uses, grant.until) == (False, 1, clock.now + 600)
    clock.advance(300)
    again = consume(store)
    assert again is not None and (again.id, again.uses) == (request.id, 2)
    clock.advance(301)
    assert consume(store) is None


def test_settle_declined_refuses_retries(store: ApprovalStore) -> None:
    request = ask(store)
    assert store.settle(request, False, by="command") is None
    with pytest.raises(ApprovalDenied):
        ask(store)
    assert store.status(request.id).decided_by == "command"


def test_settle_after_someone_answered_with_the_cli(store: ApprovalStore, clock: Clock) -> None:
    denied = ask(store, {"n": 1})
    store.decide(denied.id, False, by="alice")
    assert store.settle(denied, True, by="tty") is None  # a denial stands

    approved = ask(store, {"n": 2})
    store.decide(approved.id, True, by="alice")
    grant = store.settle(approved, True, by="tty")
    assert grant is not None and (grant.id, grant.source, grant.uses) == (approved.id, "alice", 1)
    assert consume(store, {"n": 2}) is None

    expired = ask(store, {"n": 3})
    clock.advance(REQUEST_TTL_S + 1)
    late = store.settle(expired, True, by="tty")
    assert late is not None and late.id != expired.id and late.uses == 1
    assert consume(store, {"n": 3}) is None
    assert store.settle(expired, False, by="tty") is None
