"""Keyed limits (issue 20): ``key`` gives each distinct argument value its own counter, ``max_keys`` bounds how
many values a counter tracks. Same semantics in memory, SQLite and Redis; exact across processes."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_stores import Clock, RedisServer, _redis_binary

from mcp_guard.judge import Judge
from mcp_guard.limits import Charge, LimitRefusal, MemoryLimiter, Receipt
from mcp_guard.limits.scoped import ScopedLimiter
from mcp_guard.limits.sqlite import SqliteLimiter
from mcp_guard.limits.store import open_store
from mcp_guard.policy.decision import Allow, Deny
from mcp_guard.policy.engine import Engine, PolicyCompileError, key_value
from mcp_guard.policy.model import Policy


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(_redis_binary(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


Factory = Callable[..., Any]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Factory]]:
    made: list[Any] = []
    if request.param == "memory":
        shared = MemoryLimiter()  # one process: every "other limiter" is the same object

        def make_memory(clock: Callable[[], float]) -> Any:
            shared._clock = clock
            return shared

        yield "memory", make_memory
        return
    if request.param == "sqlite":

        def make_sqlite(clock: Callable[[], float]) -> Any:
            lim = SqliteLimiter(tmp_path / "counters.db", clock=clock)
            made.append(lim)
            return lim

        yield "sqlite", make_sqlite
    else:
        from mcp_guard.limits.redis import RedisLimiter

        server: RedisServer = request.getfixturevalue("redis_server")
        prefix = f"test-{uuid.uuid4().hex[:12]}:"

        def make_redis(clock: Callable[[], float]) -> Any:
            lim = RedisLimiter(server.url, prefix=prefix, clock=clock)
            made.append(lim)
            return lim

        yield "redis", make_redis
    for lim in made:
        lim.close()


def policy(limit: dict[str, Any]) -> Engine:
    return Engine(Policy.model_validate({"version": "1", "default": "allow", "tools": {"charge": {"limits": [limit]}}}))


PER_CUSTOMER = {"counter": "per_customer", "key": "args.customer_id", "window": 60, "max": 2}


def keyed(key: str, max_keys: int = 3, window: float = 60.0, max_: float = 2) -> Charge:
    return Charge(f"per[{key}]", window, max_, 1.0, "tools.charge.limits[0]", family="per", max_keys=max_keys)


# --- the engine: which counter a call charges -------------------------------------------------------


def test_each_key_value_charges_its_own_counter() -> None:
    engine = policy(PER_CUSTOMER)
    a = engine.decide("charge", {"customer_id": "cus_1"})
    b = engine.decide("charge", {"customer_id": "cus_2"})
    assert isinstance(a, Allow) and isinstance(b, Allow)
    assert a.charges[0].counter == 'per_customer["cus_1"]'
    assert b.charges[0].counter == 'per_customer["cus_2"]'
    assert a.charges[0].family == "per_customer" and a.charges[0].max_keys == 10000


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("x", '"x"'),
        (7, "7"),
        (7.0, "7"),
        (2.5, "2.5"),
        (True, "1"),
        (" 07 ", "7"),
        ("+7.0", "7"),
        ("cus_7", '"cus_7"'),
        ("ü", '"ü"'),
        ('a"b', '"a\\"b"'),
    ],
)
def test_key_values_have_one_canonical_text(value: Any, text: str) -> None:
    assert key_value(value) == text


def test_a_long_key_value_is_its_digest() -> None:
    text = key_value("x" * 1000)
    assert text is not None and text.startswith("sha256:") and len(text) == 7 + 64
    assert key_value("x" * 1000) == text and key_value("x" * 999) != text


@pytest.mark.parametrize(
    ("arguments", "shown"),
    [({}, "missing"), ({"customer_id": None}, "null"), ({"customer_id": [1]}, "list"), ({"customer_id": {}}, "dict")],
)
def test_missing_or_non_scalar_key_refuses_the_call(arguments: dict[str, Any], shown: str) -> None:
    decision = policy(PER_CUSTOMER).decide("charge", arguments)
    assert isinstance(decision, Deny)
    assert decision.kind == "invalid" and decision.rule == "tools.charge.limits[0]"
    assert "args.customer_id" in decision.reason and shown in decision.reason


def test_limits_sharing_a_counter_must_share_its_key() -> None:
    with pytest.raises(PolicyCompileError, match="must count per the same key"):
        Engine(
            Policy.model_validate(
                {
                    "version": "1",
                    "tools": {
                        "a": {"limits": [PER_CUSTOMER]},
                        "b": {"limits": [{"counter": "per_customer", "window": 60, "max": 2}]},
                    },
                }
            )
        )


def test_max_keys_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        Policy.model_validate(
            {"version": "1", "tools": {"a": {"limits": [{**PER_CUSTOMER, "max_keys": 0}]}}},
        )


# --- the stores ----------------------------------------------------------------------------------------


def test_keys_are_counted_apart(store: tuple[str, Factory]) -> None:
    clock = Clock()
    lim = store[1](clock)
    for _ in range(2):
        assert isinstance(lim.acquire([keyed("a")]), Receipt)
        assert isinstance(lim.acquire([keyed("b")]), Receipt)
    refused = lim.acquire([keyed("a")])
    assert isinstance(refused, LimitRefusal) and not refused.keys_full and refused.used == 2


def test_past_max_keys_new_keys_are_refused_and_tracked_ones_go_on(store: tuple[str, Factory]) -> None:
    clock = Clock()
    lim = store[1](clock)
    for key in ("a", "b", "c"):
        clock.now += 1
        assert isinstance(lim.acquire([keyed(key)]), Receipt)
    clock.now += 1
    refused = lim.acquire([keyed("d")])
    assert isinstance(refused, LimitRefusal) and refused.keys_full
    assert refused.used == 3
    assert refused.retry_after_s == pytest.approx(57.0)  # "a" was charged at 1001, its window ends at 1061
    assert isinstance(lim.acquire([keyed("b")]), Receipt)  # a tracked key keeps its own count
    assert isinstance(lim.acquire([keyed("b")]), LimitRefusal)
    # Another process sees the same keys.
    other = store[1](clock)
    assert isinstance(other.acquire([keyed("e")]), LimitRefusal)
    # Once "a"'s window is empty, forgetting it resets nothing: a new key fits.
    clock.now = 1001 + 60 + 0.5
    assert isinstance(other.acquire([keyed("d")]), Receipt)
    assert isinstance(other.acquire([keyed("e")]), LimitRefusal)


def test_a_refused_new_key_consumes_nothing(store: tuple[str, Factory]) -> None:
    clock = Clock()
    lim = store[1](clock)
    plain = Charge("plain", 60.0, 10, 1.0, "all_tools.limits[0]")
    assert isinstance(lim.acquire([keyed("a", max_keys=1), plain]), Receipt)
    assert isinstance(lim.acquire([plain, keyed("b", max_keys=1)]), LimitRefusal)
    assert lim.usage("plain", 60.0) == 1.0


def test_judge_says_why_a_new_key_is_refused() -> None:
    engine = policy({**PER_CUSTOMER, "max_keys": 1})
    judge = Judge(engine, MemoryLimiter())
    assert isinstance(judge.judge("charge", {"customer_id": "cus_1"}), Allow)
    refused = judge.judge("charge", {"customer_id": "cus_2"})
    assert isinstance(refused, Deny) and refused.kind == "limit"
    assert "'per_customer' already tracks its most distinct values (1, max_keys)" in refused.reason
    assert refused.details["max_keys"] == 1 and refused.details["tracked"] == 1
    judge.judge("charge", {"customer_id": "cus_1"})
    over = judge.judge("charge", {"customer_id": "cus_1"})
    assert isinstance(over, Deny) and 'per_customer["cus_1"]' in over.reason


def test_scoped_limiter_keys_the_family_by_scope(tmp_path: Path) -> None:
    shared = SqliteLimiter(tmp_path / "c.db")
    one = ScopedLimiter(MemoryLimiter(), shared, "mail")
    other = ScopedLimiter(MemoryLimiter(), SqliteLimiter(tmp_path / "c.db"), "bank")
    server_charge = Charge('per["a"]', 60.0, 5, 1.0, "r", scope="server", family="per", max_keys=1)
    assert isinstance(one.acquire([server_charge]), Receipt)
    # Another server's family is another family.
    assert isinstance(
        other.acquire([Charge('per["b"]', 60.0, 5, 1.0, "r", scope="server", family="per", max_keys=1)]), Receipt
    )
    refused = one.acquire([Charge('per["b"]', 60.0, 5, 1.0, "r", scope="server", family="per", max_keys=1)])
    assert isinstance(refused, LimitRefusal) and refused.keys_full
    assert refused.charge.family == "per"  # the policy's names, not the store's


def test_sqlite_forgets_expired_keys_whole(tmp_path: Path) -> None:
    import sqlite3

    clock = Clock()
    lim = SqliteLimiter(tmp_path / "c.db", clock=clock)
    for i in range(50):
        assert isinstance(lim.acquire([keyed(f"k{i}", max_keys=100, window=10)]), Receipt)
    clock.now += 11
    lim._sweep(lim._connection(), clock.now)  # what the periodic sweep does
    conn = sqlite3.connect(tmp_path / "c.db")
    assert conn.execute("SELECT count(*) FROM keyed").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM counters").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM stamps").fetchone()[0] == 0


# --- across processes -------------------------------------------------------------------------------------

PROCESSES = 6
KEYS_PER_PROCESS = 5
MAX_KEYS = 12
PER_KEY = 4


def _contend(url: str, start: int, barrier: Any, results: Any) -> None:
    try:
        lim = open_store(url)
        barrier.wait(60)
        admitted: list[str] = []
        # Every process tries its own new keys and one key they all share.
        for i in range(KEYS_PER_PROCESS):
            key = f"p{start}-{i}"
            if isinstance(lim.acquire([keyed(key, MAX_KEYS, 3600.0, PER_KEY)]), Receipt):
                admitted.append(key)
            for _ in range(3):
                if isinstance(lim.acquire([keyed("shared", MAX_KEYS, 3600.0, PER_KEY)]), Receipt):
                    admitted.append("shared")
        results.put(admitted)
    except BaseException as exc:
        results.put(f"{type(exc).__name__}: {exc}")
        raise


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_keyed_limits_are_exact_across_processes(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if kind == "sqlite":
        url = f"sqlite://{tmp_path / 'shared.db'}"
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        url = f"{server.url}?prefix=test-{uuid.uuid4().hex[:12]}:"
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(url, n, barrier, results)) for n in range(PROCESSES)]
    for proc in procs:
        proc.start()
    try:
        outcomes = [results.get(timeout=120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(30)
    assert all(isinstance(o, list) for o in outcomes), outcomes
    admitted = [key for o in outcomes for key in o]
    assert admitted.count("shared") == PER_KEY  # one key's count is exact across processes
    # The shared key took one of the MAX_KEYS slots (whoever came first); exactly the rest went to new keys.
    assert len(set(admitted)) == MAX_KEYS
    started = time.monotonic()
    assert isinstance(open_store(url).acquire([keyed("late", MAX_KEYS, 3600.0, PER_KEY)]), LimitRefusal)
    assert time.monotonic() - started < 5
