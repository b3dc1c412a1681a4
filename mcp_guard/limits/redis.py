"""Exact sliding-log limiter in Redis, shared by every guard that can reach the server.

Each counter is a sorted set ``<prefix>log:<counter>``: one member per admitted
call, scored by the Redis server's clock in integer microseconds, the member
reading ``<sequence>:<before>:<cost>`` -- a 16-hex-digit call number from
``<prefix>seq`` (unique, and ordering calls stamped in the same microsecond), the
counter's running total before the call, and the call's cost. The cost recorded
within ``[now - window, now]`` is the newest member's ``before + cost`` minus the
first in-window member's ``before``: two O(log n) lookups, however many calls the
window holds. The check and the record are one Lua script, which Redis runs
atomically; ``redis.call('TIME')`` inside it is the only clock, so guards on
machines whose clocks disagree still agree on every window.

Stamps older than the longest window ever seen on a counter (``<prefix>windows``,
a hash of counter key to microseconds, one field per counter name) are removed
as calls arrive, and each sorted set expires when its newest stamp has left its
longest window, so idle counters cost nothing. A counter's time never runs
backwards: a stamp is dated no earlier than the counter's newest one.

Redis 5 or later (scripts replicate their effects, so reading ``TIME`` before a
write is allowed). One Redis server or a primary with replicas; not Redis Cluster
(a call's keys live in several hash slots).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mcp_guard.limits.base import Charge, LimitRefusal, Receipt, StoreUnavailable

_LUA_HELPERS = """
local function fmt(x) return string.format('%.17g', x) end
local function parse(m)
  local tag, before, cost = string.match(m, '^(%x+):([^:]+):([^:]+)$')
  return tag, tonumber(before), tonumber(cost)
end
"""

ACQUIRE_LUA = (
    _LUA_HELPERS
    + """
-- KEYS[1]: hash of each counter's longest window (us); KEYS[2]: the call sequence;
-- KEYS[2 + i], i = 1..u: counter i's sorted set; KEYS[2 + u + f]: keyed family f's sorted set
-- (its key counters, scored by when each expires, in us).
-- ARGV[1]: the number of charges n; ARGV[2]: '' to use the server's clock (else a time in us, for tests);
-- ARGV[3]: the number of counters u;
-- then 5 values per charge: counter index, window (us), max, cost, max_keys (0: not keyed);
-- then 3 values per counter: the cost recorded on it, the longest window among its charges (us),
-- its family index (0: not keyed).
-- Returns {1, now, tag} when admitted, {0, charge number, used, retry_after (us) or '', 'keys' or ''}
-- when not ('keys': a new key of a family that tracks max_keys keys already).
local clock = tonumber(ARGV[2])
if not clock then
  local t = redis.call('TIME')
  clock = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local now = clock
local n = tonumber(ARGV[1])
local u = tonumber(ARGV[3])
local total = {}
for i = 1, u do
  local newest = redis.call('ZRANGE', KEYS[2 + i], -1, -1, 'WITHSCORES')
  if newest[1] then
    local _, before, cost = parse(newest[1])
    total[i] = before + cost
    local at = tonumber(newest[2])
    if at > now then now = at end
  else
    total[i] = false
  end
end
local b = 4 + 5 * n
for k = 1, n do
  local a = 4 + 5 * (k - 1)
  local i = tonumber(ARGV[a])
  local window, max, cost = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local key = KEYS[2 + i]
  local f = tonumber(ARGV[b + 3 * (i - 1) + 2])
  if f > 0 then
    -- A key is tracked while its window holds a call; a new one needs room under max_keys.
    local family = KEYS[2 + u + f]
    local expires = redis.call('ZSCORE', family, key)
    if not expires or tonumber(expires) < now then
      redis.call('ZREMRANGEBYSCORE', family, '-inf', '(' .. fmt(now))
      local tracked = redis.call('ZCARD', family)
      if tracked >= tonumber(ARGV[a + 4]) then
        local soonest = tonumber(redis.call('ZRANGE', family, 0, 0, 'WITHSCORES')[2])
        return {0, k, fmt(tracked), fmt(math.max(0, soonest - now)), 'keys'}
      end
    end
  end
  local used, first = 0, false
  if total[i] then
    -- The window is closed: a stamp at exactly now - window still counts (with a
    -- nanosecond of slack against rounding, as in the in-memory limiter).
    first = redis.call('ZRANGEBYSCORE', key, fmt(now - window - 0.001), '+inf', 'LIMIT', 0, 1)[1]
    if first then
      local _, before = parse(first)
      used = total[i] - before
    end
  end
  if used + cost > max then
    if cost > max or not first then return {0, k, fmt(used), '', ''} end
    -- The first stamp j (from the window's start) whose running total reaches
    -- total + cost - max: once it leaves the window, what remains plus cost fits.
    local need = total[i] + cost - max
    local lo = redis.call('ZRANK', key, first)
    local hi = redis.call('ZCARD', key) - 1
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      local _, before, c = parse(redis.call('ZRANGE', key, mid, mid)[1])
      if before + c >= need then hi = mid else lo = mid + 1 end
    end
    local at = tonumber(redis.call('ZRANGE', key, lo, lo, 'WITHSCORES')[2])
    local retry = at + window - now
    if retry < 0 then retry = 0 end
    return {0, k, fmt(used), fmt(retry), ''}
  end
end
local tag = string.format('%016x', redis.call('INCR', KEYS[2]))
for i = 1, u do
  local key = KEYS[2 + i]
  local cost = tonumber(ARGV[b + 3 * (i - 1)])
  local longest = tonumber(ARGV[b + 3 * (i - 1) + 1])
  local f = tonumber(ARGV[b + 3 * (i - 1) + 2])
  local known = tonumber(redis.call('HGET', KEYS[1], key) or '0')
  if known >= longest then
    longest = known
  else
    redis.call('HSET', KEYS[1], key, fmt(longest))
  end
  local before = 0
  if total[i] then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. fmt(now - longest))
    -- An emptied counter starts its running total again from zero.
    if redis.call('ZCARD', key) > 0 then before = total[i] end
  end
  redis.call('ZADD', key, fmt(now), tag .. ':' .. fmt(before) .. ':' .. fmt(cost))
  redis.call('PEXPIRE', key, math.ceil((now - clock + longest) / 1000) + 1)
  if f > 0 then
    local family = KEYS[2 + u + f]
    redis.call('ZADD', family, fmt(now + longest), key)
    local ttl = math.ceil((now - clock + longest) / 1000) + 1
    if redis.call('PTTL', family) < ttl then redis.call('PEXPIRE', family, ttl) end
  end
end
return {1, fmt(now), tag}
"""
)

REFUND_LUA = (
    _LUA_HELPERS
    + """
-- KEYS[i]: a counter's sorted set; ARGV[2i - 1], ARGV[2i]: the score and tag of the member a call added.
-- Removes those members and takes their cost out of the running totals of later members.
local removed = 0
for i = 1, #KEYS do
  local key, score, tag = KEYS[i], ARGV[2 * i - 1], ARGV[2 * i]
  local found = false
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', key, score, score)) do
    if string.sub(m, 1, #tag + 1) == tag .. ':' then found = m break end
  end
  if found then
    local rank = redis.call('ZRANK', key, found)
    local _, _, cost = parse(found)
    redis.call('ZREM', key, found)
    local later = redis.call('ZRANGE', key, rank, -1, 'WITHSCORES')
    for j = 1, #later, 2 do
      local other, before, c = parse(later[j])
      redis.call('ZREM', key, later[j])
      redis.call('ZADD', key, later[j + 1], other .. ':' .. fmt(before - cost) .. ':' .. fmt(c))
    end
    removed = removed + 1
  end
end
return removed
"""
)

USAGE_LUA = (
    _LUA_HELPERS
    + """
-- KEYS[1]: a counter's sorted set; ARGV[1]: the window (us); ARGV[2]: '' or a time (us).
-- Returns the cost recorded within the window.
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if not newest[1] then return '0' end
if tonumber(newest[2]) > now then now = tonumber(newest[2]) end
local first = redis.call('ZRANGEBYSCORE', KEYS[1], fmt(now - tonumber(ARGV[1]) - 0.001), '+inf', 'LIMIT', 0, 1)[1]
if not first then return '0' end
local _, last_before, last_cost = parse(newest[1])
local _, before = parse(first)
return fmt(last_before + last_cost - before)
"""
)


@dataclass(slots=True)
class RedisReceipt(Receipt):
    """A receipt that also names the members it added: ``(counter, score, tag)`` per counter."""

    members: tuple[tuple[str, str, str], ...] = ()

    def refundable(self) -> Receipt | None:
        keep = tuple(c for c in self.charges if c.refund_on_error)
        if not keep:
            return None
        counters = {c.counter for c in keep}
        return RedisReceipt(keep, self.at, tuple(m for m in self.members if m[0] in counters))


def _num(value: float) -> str:
    return repr(float(value))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def redacted(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


class RedisLimiter:
    """A :class:`~mcp_guard.limits.base.Limiter` over a Redis server.

    Uses redis-py's synchronous client: the guard judges calls on a blocking pump
    thread, and the client's connection pool is thread-safe. Nothing connects until
    the first call. Connection errors and timeouts (``timeout_s`` for connecting
    and for each reply) raise :class:`StoreUnavailable`; a broken connection is
    dropped and the next call opens a new one, so a restarted server is picked up
    without recreating the limiter. A call that fails on a pooled connection the
    server has closed is retried once on a fresh one. ``clock`` replaces the
    server's clock, for tests only: production guards must share the server's.
    """

    def __init__(
        self, url: str, prefix: str = "mcp-guard:", timeout_s: float = 2.0, clock: Callable[[], float] | None = None
    ) -> None:
        try:
            redis = importlib.import_module("redis")
            backoff = importlib.import_module("redis.backoff")
            retry = importlib.import_module("redis.retry")
        except ImportError as exc:
            raise ImportError(
                "the redis store needs the redis package in mcp-guard's environment: pipx inject mcp-guard redis, "
                "uv tool install --with redis . (in a checkout of mcp-guard), or pip install redis",
            ) from exc
        self.url = url
        self.prefix = prefix
        self.timeout_s = timeout_s
        self._clock = clock
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError,)
        self._client: Any = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=retry.Retry(backoff.NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        )
        self._acquire_script: Any = self._client.register_script(ACQUIRE_LUA)
        self._refund_script: Any = self._client.register_script(REFUND_LUA)
        self._usage_script: Any = self._client.register_script(USAGE_LUA)

    def _now_us(self) -> str:
        return "" if self._clock is None else _num(self._clock() * 1e6)

    def key(self, counter: str) -> str:
        """The sorted set holding ``counter``'s stamps."""
        return f"{self.prefix}log:{counter}"

    def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return script(keys=keys, args=args)
        except self._errors as exc:
            raise StoreUnavailable(f"counter store {redacted(self.url)}: {exc}") from exc

    def acquire(self, charges: Sequence[Charge]) -> LimitRefusal | Receipt:
        if not charges:
            return RedisReceipt((), 0.0, ())
        counters = list(dict.fromkeys(c.counter for c in charges))
        index = {counter: i + 1 for i, counter in enumerate(counters)}
        families = list(dict.fromkeys(c.family for c in charges if c.family is not None))
        family_index = {family: i + 1 for i, family in enumerate(families)}
        args: list[Any] = [len(charges), self._now_us(), len(counters)]
        for c in charges:
            keyed = c.max_keys if c.family is not None else 0
            args += [index[c.counter], _num(c.window_s * 1e6), _num(c.max), _num(c.cost), keyed]
        for counter in counters:
            # One stamp per counter per call, costing what its first charge costs and
            # kept as long as the longest window among the charges naming it needs.
            naming = [c for c in charges if c.counter == counter]
            family = naming[0].family
            args += [
                _num(naming[0].cost),
                _num(max(c.window_s for c in naming) * 1e6),
                family_index[family] if family is not None else 0,
            ]
        keys = [
            f"{self.prefix}windows",
            f"{self.prefix}seq",
            *(self.key(c) for c in counters),
            *(f"{self.prefix}keys:{f}" for f in families),
        ]
        reply = self._call(self._acquire_script, keys, args)
        if int(reply[0]) == 1:
            now = _text(reply[1])
            tag = _text(reply[2])
            return RedisReceipt(tuple(charges), float(now) / 1e6, tuple((c, now, tag) for c in counters))
        retry = _text(reply[3])
        return LimitRefusal(
            charges[int(reply[1]) - 1],
            float(reply[2]),
            float(retry) / 1e6 if retry else None,
            keys_full=_text(reply[4]) == "keys",
        )

    def refund(self, receipt: Receipt) -> None:
        """Remove the members ``receipt`` added; receipts from other stores name none, so nothing happens."""
        if not isinstance(receipt, RedisReceipt) or not receipt.members:
            return
        args: list[Any] = []
        for _, score, tag in receipt.members:
            args += [score, tag]
        self._call(self._refund_script, [self.key(m[0]) for m in receipt.members], args)

    def usage(self, counter: str, window_s: float) -> float:
        return float(self._call(self._usage_script, [self.key(counter)], [_num(window_s * 1e6), self._now_us()]))

    def close(self) -> None:
        self._client.close()
