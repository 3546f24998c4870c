"""A token bucket kept in Redis, shared by every replica and loader process.

Gong's API limit is per company, not per client, so a per-process limiter would multiply the
allowed rate by the number of replicas. The bucket uses Redis' clock (TIME) so replicas with
skewed clocks still agree.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

_ACQUIRE = """#!lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1]) or burst
local ts = tonumber(data[2]) or now
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
  ts = now
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate) + (ts - now)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + (ts - now) + 1000)
return wait
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


class RedisTokenBucket:
    def __init__(self, client: aioredis.Redis, key: str, rate_per_second: float, burst: int) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._key = key
        self._rate = rate_per_second
        self._burst = burst
        self._acquire = client.register_script(_ACQUIRE)
        self._penalise = client.register_script(_PENALISE)

    async def try_acquire(self) -> float:
        """Take a token if one is free; otherwise return the seconds to wait before trying again."""
        wait_ms = await self._acquire(keys=[self._key], args=[repr(self._rate), self._burst])
        return max(0.0, int(wait_ms) / 1000)

    async def acquire(self) -> None:
        # The state lives in Redis, shared with other processes: there is no local event to wait on.
        while (wait := await self.try_acquire()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)

    async def penalise(self, seconds: float) -> None:
        await self._penalise(keys=[self._key], args=[max(0, int(seconds * 1000))])
