"""Gong API limits kept in Redis, shared by every replica and loader process.

Gong's API limit is per company, not per client (about 3 calls/s and 10,000 calls/day), so a
per-process limiter would multiply the allowed rate by the number of replicas. One Lua script
checks both the per-second token bucket and the daily budget and takes from both at once, so
concurrent processes can never together exceed either. It uses Redis' clock (TIME), so replicas
with skewed clocks still agree on the rate and on when a day starts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import redis.asyncio as aioredis

DAY_MS = 86_400_000
# Longest single sleep while waiting for a token: a Retry-After penalty may be minutes long, and
# waking now and then lets a stop request end the wait without waiting for the whole of it.
WAIT_SLICE_SECONDS = 5.0

# KEYS[1] bucket hash {tokens, ts}; KEYS[2] daily budget hash {day, used}.
# ARGV: rate/s, burst, daily limit (0: none), start of the budget's day in ms after 00:00 UTC.
# Returns {wait_ms, state, remaining}: state 0 = token taken, 1 = wait for the rate,
# 2 = today's budget is spent (wait_ms until the next day starts); remaining = -1 without a budget.
_ACQUIRE = """#!lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local day_start = tonumber(ARGV[4])
local day_ms = 86400000
local day = math.floor((now - day_start) / day_ms)
local next_day = (day + 1) * day_ms + day_start
local used = 0
if limit > 0 then
  local d = redis.call('HMGET', KEYS[2], 'day', 'used')
  if tonumber(d[1]) == day then
    used = tonumber(d[2]) or 0
  end
  if used >= limit then
    return {next_day - now, 2, 0}
  end
end
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1]) or burst
local ts = tonumber(data[2]) or now
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
  ts = now
end
local wait = 0
local state = 0
if tokens >= 1 then
  tokens = tokens - 1
  if limit > 0 then
    used = used + 1
    redis.call('HSET', KEYS[2], 'day', tostring(day), 'used', tostring(used))
    redis.call('PEXPIRE', KEYS[2], next_day - now + 3600000)
  end
else
  wait = math.ceil((1 - tokens) * 1000 / rate) + (ts - now)
  state = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + (ts - now) + 1000)
local remaining = -1
if limit > 0 then
  remaining = limit - used
end
return {wait, state, remaining}
"""

# After a 429 nobody may call until Retry-After has passed: the refill clock is moved into the
# future and the bucket emptied, which the acquire script above turns into a wait for everyone.
_PENALISE = """#!lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
local data = redis.call('HMGET', KEYS[1], 'ts')
local ts = tonumber(data[1]) or 0
if until_ms > ts then
  redis.call('HSET', KEYS[1], 'tokens', '0', 'ts', tostring(until_ms))
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) + 60000)
end
return 0
"""


class DailyBudgetExhausted(Exception):
    """Today's budget is spent; ``retry_in`` seconds until the next day starts (by Redis' clock)."""

    def __init__(self, retry_in: float) -> None:
        super().__init__(f"Gong API daily budget exhausted; next day starts in {retry_in:.0f}s")
        self.retry_in = retry_in


class AcquireInterrupted(Exception):
    """Stop was requested while waiting for a token; no token was taken."""


@dataclass(frozen=True, slots=True)
class Attempt:
    wait: float  # seconds; 0 means a token was taken
    budget_exhausted: bool
    remaining: int | None  # calls left today, None without a daily budget


@dataclass(frozen=True, slots=True)
class DailyBudget:
    key: str
    limit: int
    day_start_seconds: int = 0  # the budget's day starts this long after 00:00 UTC

    def __post_init__(self) -> None:
        if self.limit < 1 or not 0 <= self.day_start_seconds < DAY_MS // 1000:
            raise ValueError("daily limit must be at least 1 and the day start within one day")


class RedisTokenBucket:
    def __init__(
        self, client: aioredis.Redis, key: str, rate_per_second: float, burst: int,
        daily: DailyBudget | None = None,
    ) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._key = key
        self._rate = rate_per_second
        self._burst = burst
        self._daily = daily
        self._acquire = client.register_script(_ACQUIRE)
        self._penalise = client.register_script(_PENALISE)

    async def try_acquire(self) -> Attempt:
        """Take a token if one is free and today's budget allows it; never waits."""
        daily = self._daily
        keys = [self._key, daily.key if daily else f"{self._key}:unused"]
        args: list[str | int] = [
            repr(self._rate), self._burst, daily.limit if daily else 0, daily.day_start_seconds * 1000 if daily else 0,
        ]
        wait_ms, state, remaining = await self._acquire(keys=keys, args=args)
        return Attempt(
            wait=max(0.0, int(wait_ms) / 1000) if int(state) else 0.0,
            budget_exhausted=int(state) == 2,
            remaining=None if int(remaining) < 0 else int(remaining),
        )

    async def acquire(self, stop: asyncio.Event | None = None) -> int | None:
        """Wait for a token (in slices, so ``stop`` ends the wait) and return the calls left today.

        Raises DailyBudgetExhausted instead of waiting for the next day: that wait is hours long
        and the caller knows what else must happen meanwhile. Raises AcquireInterrupted on stop.
        """
        while True:
            attempt = await self.try_acquire()
            if attempt.budget_exhausted:
                raise DailyBudgetExhausted(attempt.wait)
            if attempt.wait <= 0:
                return attempt.remaining
            if await _stopped_within(stop, min(attempt.wait, WAIT_SLICE_SECONDS)):
                raise AcquireInterrupted

    async def penalise(self, seconds: float) -> None:
        await self._penalise(keys=[self._key], args=[max(0, int(seconds * 1000))])


async def _stopped_within(stop: asyncio.Event | None, seconds: float) -> bool:
    # The state lives in Redis, shared with other processes: there is no local event to wait on
    # except the stop request itself.
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
