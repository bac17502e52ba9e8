"""Budgets and rate limits of API keys, atomic across gateway replicas.

A budget is a ledger per key and period (UTC day or month) in nano-USD integers (exact sums)::

    {prefix}:budget:{<key>|<period>}:ledger   hash  spent, reserved, requests, expired
    {prefix}:budget:{<key>|<period>}:holds    zset  reservation id → expiry (ms, Redis clock)
    {prefix}:budget:{<key>|<period>}:amounts  hash  reservation id → reserved nano-USD

Before a cascade call the gateway **reserves** the request's estimated cost: one Lua script first
reclaims reservations whose replica never settled them (expired), then refuses when
``spent + reserved + estimate > budget``, else adds the estimate to ``reserved``. After the call it
**settles**: another script releases the reservation and adds the real cost to ``spent`` (even if
the reservation had expired meanwhile — money spent is counted). No counter lives in a replica, so
there is nothing to sync, re-seed or drift; a replica killed mid-request holds its reservation for
``hold_s`` at most. The ``{hash tag}`` keeps a ledger's keys in one Redis Cluster slot.

Rate limits are a sliding-window log per key (a sorted set of request times, Redis clock): at most
``requests`` in any ``window_s``; a refused request learns when the oldest one leaves the window.

:class:`MemoryLimits` is the same for one process (no Redis configured).
"""

from __future__ import annotations

import calendar
import math
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol, runtime_checkable

from ecocascade.gateway._redis import RedisConnection, Script, part

__all__ = [
    "BudgetUsage",
    "Hold",
    "Limits",
    "MemoryLimits",
    "RateDecision",
    "RedisLimits",
    "period_bounds",
]

NANO = 1_000_000_000
Period = Literal["day", "month"]


def to_nano(usd: float) -> int:
    """USD as nano-USD, rounded up (a reservation or cost is never under-counted)."""
    return max(0, math.ceil(usd * NANO - 1e-6))


def period_bounds(kind: Period, now: float | None = None) -> tuple[str, float]:
    """The name of the UTC day/month containing ``now`` and the epoch second it ends."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    if kind == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%d"), start.timestamp() + 86_400
    days = calendar.monthrange(moment.year, moment.month)[1]
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start.strftime("%Y-%m"), start.timestamp() + days * 86_400


@dataclass(frozen=True, slots=True)
class Hold:
    """A reservation of ``estimate_usd`` against ``key_id``'s budget for ``period``."""

    key_id: str
    period: str
    id: str
    estimate_usd: float


@dataclass(frozen=True, slots=True)
class BudgetUsage:
    """A ledger as one script saw it; ``ok`` is whether the reservation was made."""

    ok: bool
    spent_usd: float
    reserved_usd: float
    budget_usd: float | None = None


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    remaining: int
    retry_after_s: float = 0.0


@runtime_checkable
class Limits(Protocol):
    """Where budgets and rate-limit windows live (Redis for replicas, memory for one process)."""

    async def reserve(
        self, key_id: str, period: str, *, budget_usd: float, estimate_usd: float, hold_s: float
    ) -> tuple[Hold | None, BudgetUsage]: ...

    async def settle(self, hold: Hold, actual_usd: float) -> BudgetUsage: ...

    async def usage(self, key_id: str, period: str) -> BudgetUsage: ...

    async def hit(self, key_id: str, *, requests: int, window_s: float) -> RateDecision: ...


# Redis 7 replicates a script's effects, so TIME (one clock for every replica) is allowed; on 5/6
# replicate_commands() asks for the same.
_NOW = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: ledger, holds, amounts. ARGV: budget, estimate, hold id, hold ms, keep ms (all integers).
_RESERVE = Script(
    _NOW
    + """
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(stale) do
  local amount = tonumber(redis.call('HGET', KEYS[3], id) or '0')
  redis.call('HINCRBY', KEYS[1], 'reserved', -amount)
  redis.call('HINCRBY', KEYS[1], 'expired', 1)
  redis.call('HDEL', KEYS[3], id)
  redis.call('ZREM', KEYS[2], id)
end
local budget = tonumber(ARGV[1])
local estimate = tonumber(ARGV[2])
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
if spent + reserved + estimate > budget then
  return {0, spent, reserved}
end
redis.call('HINCRBY', KEYS[1], 'reserved', estimate)
redis.call('HSET', KEYS[3], ARGV[3], estimate)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[3])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
return {1, spent, reserved + estimate}
"""
)

# KEYS: ledger, holds, amounts. ARGV: hold id, actual cost, keep ms.
_SETTLE = Script(
    """
local amount = redis.call('HGET', KEYS[3], ARGV[1])
if amount then
  redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(amount))
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
local spent = redis.call('HINCRBY', KEYS[1], 'spent', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'requests', 1)
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
return {amount and 1 or 0, spent, tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')}
"""
)

# KEYS: the window's sorted set. ARGV: limit, window ms, a unique member.
_HIT = Script(
    _NOW
    + """
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, 0, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return {1, tonumber(ARGV[1]) - n - 1, 0}
"""
)

_KEEP_S = 40 * 86_400  # a ledger outlives its month, so the dashboard can show it


class RedisLimits:
    """Budgets and rate-limit windows in Redis at ``url``, shared by every replica."""

    def __init__(
        self, url: str, *, prefix: str = "ecocascade:gw", socket_timeout_s: float = 2.0
    ) -> None:
        self.connection = RedisConnection(url, prefix=prefix, socket_timeout_s=socket_timeout_s)
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"RedisLimits({self.connection.location!r}, prefix={self.prefix!r})"

    def _ledger(self, key_id: str, period: str) -> list[str]:
        tag = f"{self.prefix}:budget:{{{part(key_id)}|{part(period)}}}"
        return [f"{tag}:ledger", f"{tag}:holds", f"{tag}:amounts"]

    async def reserve(
        self, key_id: str, period: str, *, budget_usd: float, estimate_usd: float, hold_s: float
    ) -> tuple[Hold | None, BudgetUsage]:
        client = await self.connection.client()
        hold_id = uuid.uuid4().hex
        ok, spent, reserved = await _RESERVE(
            client,
            self._ledger(key_id, period),
            [
                math.floor(budget_usd * NANO),
                to_nano(estimate_usd),
                hold_id,
                math.ceil(hold_s * 1000),
                _KEEP_S * 1000,
            ],
        )
        usage = BudgetUsage(bool(ok), int(spent) / NANO, int(reserved) / NANO, budget_usd)
        if not ok:
            return None, usage
        return Hold(key_id, period, hold_id, estimate_usd), usage

    async def settle(self, hold: Hold, actual_usd: float) -> BudgetUsage:
        client = await self.connection.client()
        _, spent, reserved = await _SETTLE(
            client,
            self._ledger(hold.key_id, hold.period),
            [hold.id, to_nano(actual_usd), _KEEP_S * 1000],
        )
        return BudgetUsage(True, int(spent) / NANO, int(reserved) / NANO)

    async def usage(self, key_id: str, period: str) -> BudgetUsage:
        client = await self.connection.client()
        spent, reserved = await client.hmget(self._ledger(key_id, period)[0], "spent", "reserved")
        return BudgetUsage(True, int(spent or 0) / NANO, int(reserved or 0) / NANO)

    async def hit(self, key_id: str, *, requests: int, window_s: float) -> RateDecision:
        client = await self.connection.client()
        allowed, remaining, retry_ms = await _HIT(
            client,
            [f"{self.prefix}:rate:{{{part(key_id)}}}"],
            [requests, math.ceil(window_s * 1000), uuid.uuid4().hex],
        )
        return RateDecision(bool(allowed), int(remaining), max(0, int(retry_ms)) / 1000)

    async def close(self) -> None:
        await self.connection.close()


@dataclass(slots=True)
class _Ledger:
    spent: int = 0
    holds: dict[str, tuple[int, float]] = field(default_factory=dict)  # id → (amount, expiry)

    def reclaim(self, now: float) -> None:
        for hold_id in [h for h, (_, expiry) in self.holds.items() if expiry <= now]:
            del self.holds[hold_id]

    @property
    def reserved(self) -> int:
        return sum(amount for amount, _ in self.holds.values())


class MemoryLimits:
    """Budgets and rate-limit windows of one process (no awaits inside: atomic in its loop).

    Spend is forgotten when the process exits; run the gateway on Redis to keep it."""

    def __init__(self) -> None:
        self._ledgers: dict[tuple[str, str], _Ledger] = {}
        self._windows: dict[str, deque[float]] = {}

    async def reserve(
        self, key_id: str, period: str, *, budget_usd: float, estimate_usd: float, hold_s: float
    ) -> tuple[Hold | None, BudgetUsage]:
        now = time.monotonic()
        ledger = self._ledgers.setdefault((key_id, period), _Ledger())
        ledger.reclaim(now)
        estimate = to_nano(estimate_usd)
        if ledger.spent + ledger.reserved + estimate > math.floor(budget_usd * NANO):
            return None, BudgetUsage(False, ledger.spent / NANO, ledger.reserved / NANO, budget_usd)
        hold = Hold(key_id, period, uuid.uuid4().hex, estimate_usd)
        ledger.holds[hold.id] = (estimate, now + hold_s)
        return hold, BudgetUsage(True, ledger.spent / NANO, ledger.reserved / NANO, budget_usd)

    async def settle(self, hold: Hold, actual_usd: float) -> BudgetUsage:
        ledger = self._ledgers.setdefault((hold.key_id, hold.period), _Ledger())
        ledger.holds.pop(hold.id, None)
        ledger.spent += to_nano(actual_usd)
        return BudgetUsage(True, ledger.spent / NANO, ledger.reserved / NANO)

    async def usage(self, key_id: str, period: str) -> BudgetUsage:
        ledger = self._ledgers.get((key_id, period))
        if ledger is None:
            return BudgetUsage(True, 0.0, 0.0)
        ledger.reclaim(time.monotonic())
        return BudgetUsage(True, ledger.spent / NANO, ledger.reserved / NANO)

    async def hit(self, key_id: str, *, requests: int, window_s: float) -> RateDecision:
        now = time.monotonic()
        window = self._windows.setdefault(key_id, deque())
        while window and window[0] <= now - window_s:
            window.popleft()
        if len(window) >= requests:
            return RateDecision(False, 0, window[0] + window_s - now)
        window.append(now)
        return RateDecision(True, requests - len(window))

    async def close(self) -> None:
        return None
