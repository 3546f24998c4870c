"""Atomic dedup + durable append of an accepted webhook to the Redis stream.

The "seen" marker and the stream entry are written by one Lua script, so Redis applies both
or neither (and the AOF records them as one unit): a marker without its event would silently
drop a retry, an event without a marker would let a retry enqueue a second copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

# "#!lua" (no flags) makes Redis 7 refuse the script up front when it is out of memory, instead
# of failing halfway. XADD runs before SET: if XADD fails nothing has been written.
_SCRIPT = """#!lua
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local id = redis.call('XADD', KEYS[2], '*',
  'event_id', ARGV[2], 'call_id', ARGV[3], 'is_test', ARGV[4],
  'received_at', ARGV[5], 'request_id', ARGV[6], 'body', ARGV[7])
redis.call('SET', KEYS[1], id, 'EX', ARGV[1])
return id
"""


def seen_key(stream: str, event_id: str) -> str:
    return f"{stream}:seen:{event_id}"


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    call_id: str
    is_test: bool
    received_at: str
    request_id: str
    body: bytes


class Enqueuer:
    def __init__(self, client: aioredis.Redis, stream: str, dedup_ttl_seconds: int) -> None:
        self._stream = stream
        self._ttl = dedup_ttl_seconds
        self._script = client.register_script(_SCRIPT)

    async def enqueue(self, event: Event) -> str | None:
        """Return the new stream entry id, or None when the event was already accepted."""
        result = await self._script(
            keys=[seen_key(self._stream, event.event_id), self._stream],
            args=[
                self._ttl, event.event_id, event.call_id, "1" if event.is_test else "0",
                event.received_at, event.request_id, event.body,
            ],
        )
        if result is None:
            return None
        return result.decode() if isinstance(result, bytes) else str(result)
