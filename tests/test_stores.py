"""The shared counter stores (SQLite file, Redis server): exactness against the in-memory reference,
atomicity across processes, refunds, restarts, bounded growth, and an unreachable store.

Redis tests run against a real ``redis-server`` started here on a free local port. Without
``redis-server`` (or the ``redis`` package) they are skipped, unless the ``CI`` environment
variable is set: then they fail, so CI never passes without having run them.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_guard.limits import Charge, LimitRefusal, MemoryLimiter, Receipt, StoreUnavailable
from mcp_guard.limits.sqlite import SqliteLimiter, SqliteReceipt
from mcp_guard.limits.store import describe_store, open_store, sqlite_path

STORES = ["sqlite", "redis"]


def ok(result: LimitRefusal | Receipt) -> bool:
    return isinstance(result, Receipt)


def charge(
    counter: str = "c", window: float = 60.0, max_: float = 3, cost: float = 1.0, refund: bool = False
) -> Charge:
    return Charge(counter, window, max_, cost, f"rule.{counter}.{window:g}", refund_on_error=refund)


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI is set, so the Redis store tests must run)")
    pytest.skip(what)


# --- a real redis-server ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, without persistence; stopped by its pid."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / f"redis-{self.port}.log", "ab")  # noqa: SIM115 - owned by the process
        # No persistence (--save "" --appendonly no), reachable only from this machine.
        options = {"port": str(self.port), "bind": "127.0.0.1", "save": "", "appendonly": "no", "daemonize": "no"}
        argv = [self.binary, "--dir", str(self.workdir)]
        for name, value in options.items():
            argv += [f"--{name}", value]
        self.proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = (self.workdir / f"redis-{self.port}.log").read_text(errors="replace")
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}:\n{text}")
            if self.ping():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not answer PING within 15 s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


def _redis_package() -> None:
    try:
        import redis  # noqa: F401
    except ImportError:
        _missing("the redis package is not installed (pip install redis)")


def _redis_binary() -> str:
    _redis_package()
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server is not installed (apt-get install redis-server)")
    assert binary is not None
    return binary


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(_redis_binary(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _redis_url(server: RedisServer) -> str:
    """A URL with a fresh key prefix, so tests sharing the server share no counters."""
    return f"{server.url}?prefix=test-{uuid.uuid4().hex[:12]}:"


# --- one factory per store ------------------------------------------------------------------

Factory = Callable[..., Any]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Factory]]:
    """``(kind, make)``: ``make(clock=None)`` opens another limiter on the same shared store."""
    made: list[Any] = []
    if request.param == "sqlite":
        path = tmp_path / "counters.db"

        def make_sqlite(clock: Callable[[], float] | None = None) -> SqliteLimiter:
            lim = SqliteLimiter(path, clock=clock or time.time)
            made.append(lim)
            return lim

        yield "sqlite", make_sqlite
    else:
        from mcp_guard.limits.redis import RedisLimiter

        server: RedisServer = request.getfixturevalue("redis_server")
        prefix = f"test-{uuid.uuid4().hex[:12]}:"

        def make_redis(clock: Callable[[], float] | None = None) -> RedisLimiter:
            lim = RedisLimiter(server.url, prefix=prefix, clock=clock)
            made.append(lim)
            return lim

        yield "redis", make_redis
    for lim in made:
        lim.close()


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- the semantics, store by store ------------------------------------------------------------


def test_admits_max_then_refuses_with_retry_after(store: tuple[str, Factory]) -> None:
    clock = Clock()
    lim = store[1](clock)
    for t in (0.0, 1.0, 2.0):
        clock.now = 1000.0 + t
        assert ok(lim.acquire([charge()]))
    clock.now = 1010.0
    refusal = lim.acquire([charge()])
    assert isinstance(refusal, LimitRefusal)
    assert refusal.used == 3
    assert refusal.retry_after_s == pytest.approx(50.0)
    clock.now = 1060.0  # [1000, 1060] still holds the first call: the window is closed
    assert not ok(lim.acquire([charge()]))
    clock.now = 1060.25
    assert ok(lim.acquire([charge()]))


def test_real_clock_admits_max_then_frees_a_slot(store: tuple[str, Factory]) -> None:
    lim = store[1]()
    small = charge(window=1.0, max_=2)
    results = [lim.acquire([small]) for _ in range(2)]
    while ok(results[-1]) and len(results) < 10:  # a stalled machine may let the window slide meanwhile
        results.append(lim.acquire([small]))
    refusal = results[-1]
    assert isinstance(refusal, LimitRefusal) and refusal.retry_after_s is not None
    assert 0.0 < refusal.retry_after_s <= 1.0
    time.sleep(refusal.retry_after_s + 0.05)
    assert ok(lim.acquire([small]))


def test_refused_call_consumes_nothing_on_any_limit(store: tuple[str, Factory]) -> None:
    lim = store[1](Clock())
    tight = charge("tight", max_=1)
    loose = charge("loose", max_=100)
    assert ok(lim.acquire([loose, tight]))
    refusal = lim.acquire([loose, tight])
    assert isinstance(refusal, LimitRefusal) and refusal.charge == tight
    assert lim.usage("loose", 60.0) == 1


def test_limits_naming_one_counter_share_it_and_record_once(store: tuple[str, Factory]) -> None:
    clock = Clock()
    lim = store[1](clock)
    per_second = charge("shared", window=1.0, max_=2)
    per_minute = charge("shared", window=60.0, max_=5)
    for t in (0.0, 0.25, 2.0, 2.25, 4.0):
        clock.now = 1000.0 + t
        assert ok(lim.acquire([per_second, per_minute]))
    clock.now = 1004.25
    refused = lim.acquire([per_second, per_minute])
    # The shorter window came first in the call, yet the minute limit still sees all five calls.
    assert isinstance(refused, LimitRefusal) and refused.charge == per_minute
    assert refused.used == 5 and refused.retry_after_s == pytest.approx(55.75)
    assert lim.usage("shared", 60.0) == 5


def test_spend_cap_sums_costs_and_retry_after_is_exact(store: tuple[str, Factory]) -> None:
    clock = Clock()
    lim = store[1](clock)
    cap = 500.0
    assert ok(lim.acquire([charge("spend", window=3600, max_=cap, cost=300)]))
    clock.now += 1
    refusal = lim.acquire([charge("spend", window=3600, max_=cap, cost=250)])
    assert isinstance(refusal, LimitRefusal) and refusal.used == 300
    assert refusal.retry_after_s == pytest.approx(3599.0)
    clock.now += 1
    assert ok(lim.acquire([charge("spend", window=3600, max_=cap, cost=200)]))
    assert lim.usage("spend", 3600) == 500
    # Needs 450 free: the 300 leaving (t=3600) frees only 300, the 200 leaving (t=3602) frees enough.
    refusal = lim.acquire([charge("spend", window=3600, max_=cap, cost=450)])
    assert isinstance(refusal, LimitRefusal) and refusal.retry_after_s == pytest.approx(3600.0)


def test_cost_above_max_can_never_fit(store: tuple[str, Factory]) -> None:
    lim = store[1](Clock())
    refusal = lim.acquire([charge(max_=10, cost=11)])
    assert isinstance(refusal, LimitRefusal) and refusal.retry_after_s is None and refusal.used == 0


def test_refund_takes_back_exactly_that_call(store: tuple[str, Factory]) -> None:
    clock = Clock()
    lim = store[1](clock)
    receipts = []
    for cost in (3.0, 4.0, 2.0):
        result = lim.acquire([charge("spend", window=60, max_=10, cost=cost, refund=True)])
        assert isinstance(result, Receipt)
        receipts.append(result)
        clock.now += 1
    assert lim.usage("spend", 60) == 9
    middle = receipts[1].refundable()
    assert middle is not None
    lim.refund(middle)
    assert lim.usage("spend", 60) == 5
    # The window sums after the refunded call are still right: [1000.5, 1003] holds only the last call.
    assert lim.usage("spend", 2.5) == 2 and lim.usage("spend", 3.0) == 5
    lim.refund(middle)  # a second refund of the same receipt takes nothing more
    assert lim.usage("spend", 60) == 5
    assert ok(lim.acquire([charge("spend", window=60, max_=10, cost=5)]))
    refusal = lim.acquire([charge("spend", window=60, max_=10, cost=3)])
    # Needs 3 free: the t=0 call (3) leaving the window is enough.
    assert isinstance(refusal, LimitRefusal) and refusal.used == 10
    assert refusal.retry_after_s == pytest.approx(57.0)


def test_refundable_keeps_only_refund_on_error_counters(store: tuple[str, Factory]) -> None:
    lim = store[1](Clock())
    result = lim.acquire([charge("kept", cost=1, refund=False), charge("given_back", cost=1, refund=True)])
    assert isinstance(result, Receipt)
    part = result.refundable()
    assert part is not None and [c.counter for c in part.charges] == ["given_back"]
    lim.refund(part)
    assert lim.usage("kept", 60) == 1 and lim.usage("given_back", 60) == 0
    again = lim.acquire([charge("kept")])
    assert isinstance(again, Receipt) and again.refundable() is None


def test_counters_survive_a_restart(store: tuple[str, Factory]) -> None:
    clock = Clock()
    first = store[1](clock)
    daily = charge("daily", window=86400, max_=100)
    for _ in range(100):
        assert ok(first.acquire([daily]))
        clock.now += 1
    first.close()
    clock.now += 3600
    second = store[1](clock)  # a new limiter, as after a restart of the guard
    refusal = second.acquire([daily])
    assert isinstance(refusal, LimitRefusal) and refusal.used == 100
    assert second.usage("daily", 86400) == 100


def test_clock_stepping_back_never_loosens_a_limit(store: tuple[str, Factory]) -> None:
    clock = Clock()
    lim = store[1](clock)
    for _ in range(3):
        assert ok(lim.acquire([charge(window=10, max_=3)]))
    clock.now -= 3600  # the wall clock was set back an hour
    assert not ok(lim.acquire([charge(window=10, max_=3)]))
    clock.now += 3600 + 10.5
    assert ok(lim.acquire([charge(window=10, max_=3)]))


# --- exactness against the in-memory reference --------------------------------------------------

LIMITS = [
    ("a", 10.0, 6.0),
    ("a", 2.5, 3.0),
    ("a", 1.0, 2.0),
    ("b", 2.5, 5.0),
    ("b", 1.0, 3.0),
]


def steps(gaps: list[float]) -> st.SearchStrategy[list[Any]]:
    step = st.one_of(
        st.tuples(
            st.just("call"),
            st.sampled_from(gaps),
            st.lists(st.sampled_from(range(len(LIMITS))), min_size=1, max_size=3, unique=True),
            st.integers(min_value=0, max_value=3),  # the cost: 1 is a rate limit, others a spend cap
            st.booleans(),  # whether this call's charges say refund_on_error
        ),
        st.tuples(st.just("refund"), st.integers(min_value=0, max_value=50)),
    )
    return st.lists(step, min_size=1, max_size=60)


DYADIC_GAPS = [0.0, 0.25, 0.5, 1.0, 1.25, 2.5, 3.0]  # exact in binary and in microseconds: boundaries are hit exactly
DECIMAL_GAPS = [0.0, 0.1, 0.3, 0.7, 1.1, 2.4]  # rounding as real clocks have it


def replay_against_reference(lim: Any, clock: Clock, script: list[Any]) -> None:
    """Run ``script`` on ``lim`` and on a MemoryLimiter with the same clock; every answer must be identical."""
    reference = MemoryLimiter(clock=clock)
    receipts: list[tuple[Receipt, Receipt]] = []
    for item in script:
        if item[0] == "refund":
            if receipts:  # each call is refunded at most once, as the session does
                mine, theirs = receipts.pop(item[1] % len(receipts))
                lim.refund(mine)
                reference.refund(theirs)
        else:
            _, dt, picks, cost, refund = item
            clock.now += dt
            # Longest window first within a counter (see test_limits_naming_one_counter_share_it...).
            chosen = sorted((LIMITS[i] for i in picks), key=lambda lim_: -lim_[1])
            charges = [Charge(c, w, m, float(cost), f"{c}/{w}", refund_on_error=refund) for c, w, m in chosen]
            got = lim.acquire(charges)
            want = reference.acquire(charges)
            assert ok(got) == ok(want), (got, want)
            if isinstance(got, LimitRefusal):
                assert isinstance(want, LimitRefusal)
                assert (got.charge, got.used, got.retry_after_s) == (want.charge, want.used, want.retry_after_s)
            else:
                assert isinstance(want, Receipt)
                assert got.at == want.at
                receipts.append((got, want))
        for counter, window, _ in LIMITS:
            assert lim.usage(counter, window) == reference.usage(counter, window)


@pytest.mark.parametrize("kind", STORES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=steps(DYADIC_GAPS))
def test_matches_the_memory_reference(kind: str, script: list[Any], request: pytest.FixtureRequest) -> None:
    clock = Clock(10_000.0)
    tmp = tempfile.mkdtemp()
    if kind == "sqlite":
        lim: Any = SqliteLimiter(Path(tmp) / "c.db", clock=clock)
    else:
        from mcp_guard.limits.redis import RedisLimiter

        server: RedisServer = request.getfixturevalue("redis_server")
        lim = RedisLimiter(server.url, prefix=f"prop-{uuid.uuid4().hex}:", clock=clock)
    try:
        replay_against_reference(lim, clock, script)
    finally:
        lim.close()
        shutil.rmtree(tmp)


@settings(max_examples=60, deadline=None)
@given(script=steps(DECIMAL_GAPS))
def test_sqlite_matches_the_memory_reference_with_rounding_times(script: list[Any]) -> None:
    # SQLite keeps the same float seconds as the reference, so even rounded sums of gaps agree.
    # (Redis keeps integer microseconds of its own clock: exact, but a different rounding.)
    clock = Clock(1_790_000_000.0)
    tmp = tempfile.mkdtemp()
    lim = SqliteLimiter(Path(tmp) / "c.db", clock=clock)
    try:
        replay_against_reference(lim, clock, script)
    finally:
        lim.close()
        shutil.rmtree(tmp)


# --- many processes, one counter ------------------------------------------------------------------

PROCESSES = 8
ATTEMPTS = 50
CONTENDED_MAX = 37


def _contend(url: str, barrier: Any, results: Any) -> None:
    try:
        lim = open_store(url)
        contended = Charge("global:contended", 3600.0, CONTENDED_MAX, 1.0, "limits[0]")
        barrier.wait(60)
        admitted = 0
        for _ in range(ATTEMPTS):
            if isinstance(lim.acquire([contended]), Receipt):
                admitted += 1
        results.put(admitted)
    except BaseException as exc:  # report it rather than leave the parent waiting
        results.put(f"{type(exc).__name__}: {exc}")
        raise


def _run_contenders(url: str) -> list[int]:
    # Fork where there is one: separate processes with their own connections either way, without each
    # importing the test modules again (about half a second each under spawn).
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(url, barrier, results)) for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    try:
        counts = [results.get(timeout=120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.terminate()
    assert all(isinstance(c, int) for c in counts), counts
    assert all(proc.exitcode == 0 for proc in procs)
    return counts


@pytest.mark.parametrize("kind", STORES)
def test_concurrent_processes_admit_exactly_max(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if kind == "sqlite":
        url = f"sqlite://{tmp_path / 'shared.db'}"
    else:
        url = _redis_url(request.getfixturevalue("redis_server"))
    counts = _run_contenders(url)
    assert sum(counts) == CONTENDED_MAX, counts
    assert open_store(url).usage("global:contended", 3600.0) == CONTENDED_MAX


@pytest.mark.parametrize("kind", STORES)
def test_concurrent_threads_on_one_limiter_admit_exactly_max(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite://{tmp_path / 't.db'}" if kind == "sqlite" else _redis_url(request.getfixturevalue("redis_server"))
    lim = open_store(url)
    contended = Charge("global:threads", 3600.0, CONTENDED_MAX, 1.0, "limits[0]")
    barrier = threading.Barrier(PROCESSES)
    counts: list[int] = []

    def run() -> None:
        barrier.wait(30)
        counts.append(sum(ok(lim.acquire([contended])) for _ in range(ATTEMPTS)))

    threads = [threading.Thread(target=run) for _ in range(PROCESSES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(counts) == CONTENDED_MAX


# --- bounded growth ---------------------------------------------------------------------------------


def test_sqlite_rows_stay_within_the_longest_window(tmp_path: Path) -> None:
    clock = Clock()
    lim = SqliteLimiter(tmp_path / "g.db", clock=clock)
    for _ in range(3000):
        clock.now += 0.05
        assert ok(lim.acquire([charge("busy", window=1.0, max_=1000)]))
    assert lim.stamp_count() <= 21  # the calls in the last second, and nothing older
    # Counters that stop being charged are swept too, within SWEEP_EVERY calls.
    for i in range(50):
        lim.acquire([charge(f"once{i}", window=1.0, max_=10)])
    from mcp_guard.limits.sqlite import SWEEP_EVERY

    for _ in range(SWEEP_EVERY):
        clock.now += 0.05
        lim.acquire([charge("busy", window=1.0, max_=1000)])
    assert lim.stamp_count() <= 21
    size = (tmp_path / "g.db").stat().st_size
    assert size < 512 * 1024


def test_redis_keys_stay_small_and_expire(redis_server: RedisServer) -> None:
    import redis

    from mcp_guard.limits.redis import RedisLimiter

    prefix = f"grow-{uuid.uuid4().hex[:8]}:"
    lim = RedisLimiter(redis_server.url, prefix=prefix)
    client = redis.Redis.from_url(redis_server.url)
    clock = Clock()
    fake = RedisLimiter(redis_server.url, prefix=prefix + "fake:", clock=clock)
    for _ in range(3000):
        clock.now += 0.05
        assert ok(fake.acquire([charge("busy", window=1.0, max_=1000)]))
    assert client.zcard(fake.key("busy")) <= 21
    # With the server's clock: the key lives only as long as its longest window.
    assert ok(lim.acquire([charge("brief", window=0.5, max_=10)]))
    ttl = client.pttl(lim.key("brief"))
    assert 0 < ttl <= 502
    time.sleep(0.6)
    assert client.exists(lim.key("brief")) == 0
    client.close()


# --- the store going away ----------------------------------------------------------------------------


def test_sqlite_unusable_path_raises_store_unavailable_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    lim = SqliteLimiter(blocker / "counters.db")
    with pytest.raises(StoreUnavailable, match=r"not-a-dir/counters\.db"):
        lim.acquire([charge()])
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreUnavailable, match=r"garbage\.db"):
        SqliteLimiter(garbage).acquire([charge()])


def test_sqlite_locked_past_the_busy_timeout_then_usable_again(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    lim = SqliteLimiter(path, busy_timeout_s=0.2)
    assert ok(lim.acquire([charge()]))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=r"locked\.db.*locked"):
        lim.acquire([charge()])
    assert time.monotonic() - started >= 0.15
    other.execute("ROLLBACK")
    other.close()
    assert ok(lim.acquire([charge()]))  # the same limiter object, working again
    assert lim.usage("c", 60) == 2


def test_sqlite_waits_for_a_briefly_held_lock(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    lim = SqliteLimiter(path, busy_timeout_s=5.0)
    assert ok(lim.acquire([charge()]))
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    assert ok(lim.acquire([charge()]))  # waited for the writer instead of failing
    release.join()
    other.close()


def test_sqlite_file_replaced_under_a_running_guard_is_reopened(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    lim = SqliteLimiter(path)
    assert ok(lim.acquire([charge(max_=1)]))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    # The old connection would still write to the unlinked file; the limiter notices and follows the path.
    assert ok(lim.acquire([charge(max_=1)]))
    assert SqliteLimiter(path).usage("c", 60) == 1


def test_sqlite_file_is_private_and_its_directory_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "counters.db"
    lim = SqliteLimiter(path)
    assert ok(lim.acquire([charge()]))
    for name in ("counters.db", "counters.db-wal", "counters.db-shm"):
        mode = (path.parent / name).stat().st_mode & 0o777
        assert mode == 0o600, (name, oct(mode))
    result = lim.acquire([charge()])
    assert isinstance(result, SqliteReceipt) and len(result.rows) == 1


def test_sqlite_limiter_works_after_fork(tmp_path: Path) -> None:
    lim = SqliteLimiter(tmp_path / "f.db")
    assert ok(lim.acquire([charge(max_=2)]))
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    proc = ctx.Process(target=lambda: results.put(ok(lim.acquire([charge(max_=2)]))))
    proc.start()
    assert results.get(timeout=30) is True
    proc.join(30)
    assert not ok(lim.acquire([charge(max_=2)]))  # the child's call counted, and the parent's connection is fine


def test_redis_down_then_back_without_recreating_the_limiter(tmp_path: Path) -> None:
    from mcp_guard.limits.redis import RedisLimiter

    server = RedisServer(_redis_binary(), tmp_path / "own-redis")
    server.start()
    try:
        lim = RedisLimiter(server.url, timeout_s=0.5)
        assert ok(lim.acquire([charge()]))
        server.stop()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{server.port}"):
            lim.acquire([charge()])
        with pytest.raises(StoreUnavailable):
            lim.usage("c", 60)
        assert time.monotonic() - started < 3
        server.start()  # same port; no persistence, so the counts start again
        assert ok(lim.acquire([charge()]))
        assert lim.usage("c", 60) == 1
    finally:
        server.stop()


def test_redis_never_reachable_raises_store_unavailable_quickly() -> None:
    _redis_package()
    from mcp_guard.limits.redis import RedisLimiter

    lim = RedisLimiter(f"redis://:hunter2@127.0.0.1:{_free_port()}/0", timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as info:
        lim.acquire([charge()])
    assert time.monotonic() - started < 2
    assert "hunter2" not in str(info.value) and "***" in str(info.value)


# --- URLs ----------------------------------------------------------------------------------------------


def test_open_store_forms(tmp_path: Path) -> None:
    assert isinstance(open_store("memory:"), MemoryLimiter)
    absolute = open_store(f"sqlite://{tmp_path / 'a.db'}")
    assert isinstance(absolute, SqliteLimiter) and absolute.path == tmp_path / "a.db"
    assert sqlite_path("sqlite:counters.db", base_dir=tmp_path) == tmp_path / "counters.db"
    assert sqlite_path("sqlite:sub/c.db", base_dir=tmp_path) == tmp_path / "sub" / "c.db"
    assert sqlite_path(f"sqlite:////{tmp_path}/b.db") == tmp_path / "b.db"
    assert sqlite_path("sqlite:~/x.db") == Path.home() / "x.db"
    relative = sqlite_path("sqlite:counters.db")
    assert relative.is_absolute() and relative.name == "counters.db" and "mcp-guard" in str(relative)
    for bad in ("sqlite:", "sqlite://otherhost/x.db", "postgres://x", "counters.db", "memory:x", "redis:x", ""):
        with pytest.raises(ValueError, match=r"sqlite|memory|redis") as info:
            open_store(bad)
        assert str(info.value)
    with pytest.raises(ValueError, match=r"accepted: memory:, sqlite:///.*redis://.*rediss://"):
        open_store("ftp://example")


def test_open_store_redis_forms() -> None:
    _redis_package()
    from mcp_guard.limits.redis import RedisLimiter

    lim = open_store("redis://:pw@127.0.0.1:6390/2?prefix=team-a:")
    assert isinstance(lim, RedisLimiter) and lim.prefix == "team-a:" and lim.url == "redis://:pw@127.0.0.1:6390/2"
    tls = open_store("rediss://127.0.0.1:6390/0")
    assert isinstance(tls, RedisLimiter) and tls.prefix == "mcp-guard:"
    assert describe_store("redis://:pw@h:6379/0?prefix=x:") == "redis://:***@h:6379/0?prefix=x:"
    assert describe_store("rediss://user:pw@h/1") == "rediss://user:***@h/1"
    assert describe_store("memory:") == "memory:"
    assert describe_store("sqlite:///var/c.db") == "sqlite:///var/c.db"
    assert describe_store("sqlite:c.db", base_dir=Path("/srv")) == "sqlite:///srv/c.db"


def test_redis_prefix_names_the_keys(redis_server: RedisServer) -> None:
    import redis

    prefix = f"pfx-{uuid.uuid4().hex[:8]}:"
    lim = open_store(f"{redis_server.url}?prefix={prefix}")
    assert ok(lim.acquire([charge("global:x")]))
    client = redis.Redis.from_url(redis_server.url)
    keys = sorted(k.decode() for k in client.keys(f"{prefix}*"))
    assert keys == [f"{prefix}log:global:x", f"{prefix}seq", f"{prefix}windows"]
    client.close()
