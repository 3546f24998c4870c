"""Atomic dedup + durable append of an accepted webhook to the Redis stream.

The "seen" marker and the stream entry are written by one Lua script, so Redis applies both
or neither (and the AOF records them as one unit): a marker without its event would silently
drop a retry, an event without a marker would let a retry enqueue a second copy.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

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
    """Runs the script once per event; events that arrive in the same event-loop iteration share
    one pipelined round trip (EVALSHA each, no MULTI). Every event is still its own atomic script
    run, and each caller is answered only after Redis replied to *its* script, i.e. after the AOF
    write (and, with appendfsync always, the fsync) that Redis does before replying."""

    def __init__(self, client: aioredis.Redis, stream: str, dedup_ttl_seconds: int) -> None:
        self._client = client
        self._stream = stream
        self._ttl = dedup_ttl_seconds
        self._script = client.register_script(_SCRIPT)
        self._pending: list[tuple[Event, asyncio.Future[str | None]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def enqueue(self, event: Event) -> str | None:
        """Return the new stream entry id, or None when the event was already accepted."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str | None] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((event, future))
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[Event, asyncio.Future[str | None]]]) -> None:
        try:
            results = await self._execute([event for event, _ in batch])
        except BaseException as exc:  # connection errors: every caller in the batch gets the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RedisError(repr(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller went away (cancelled)
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            elif result is None:
                future.set_result(None)
            else:
                future.set_result(result.decode() if isinstance(result, bytes) else str(result))

    async def _execute(self, events: list[Event]) -> list[Any]:
        results = await self._pipeline(events)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            # Redis restarted or SCRIPT FLUSH: a NOSCRIPT reply means nothing ran, so loading the
            # script and re-running exactly those events is safe.
            await self._client.script_load(_SCRIPT)
            retried = await self._pipeline([events[i] for i in missing])
            for i, result in zip(missing, retried, strict=True):
                results[i] = result
        return results

    async def _pipeline(self, events: list[Event]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.evalsha(
                    self._script.sha, 2, seen_key(self._stream, event.event_id), self._stream,
                    self._ttl, event.event_id, event.call_id, "1" if event.is_test else "0",
                    event.received_at, event.request_id, event.body,
                )
            results: list[Any] = await pipe.execute(raise_on_error=False)
        return results
