"""One consumer of a Redis stream consumer group, the layer the loader and the enricher both read through.

What every reader of a group needs, in one place: its own pending entries first (after a restart under
the same name they are read back at once instead of after claim-idle), XREADGROUP for new entries,
XAUTOCLAIM for entries another consumer left idle, keeping the entries in hand claimed while they wait
(``webhook_app.claims``), the run loop that outlives Redis outages and bugs, back-off, a sleep that ends
on stop, and decoding the client's bytes.

Shared layer: no Snowflake, no Gong, no HTTP; what an entry means is the caller's business.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from webhook_app.claims import ClaimKeeper

# Pause after a failed iteration of the run loop (Redis away, or a bug).
RETRY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Entry:
    entry_id: str
    fields: dict[bytes, bytes]


def consumer_name() -> str:
    # Unique among live processes (several uvicorn workers share a pod's hostname). In a container
    # the app is PID 1, so a container restarted in the same pod gets its old name back and reads its
    # own pending entries at once (StreamConsumer.next_own); a new pod or process waits for
    # LOADER_CLAIM_IDLE_MS like any take-over.
    return f"{socket.gethostname()}-{os.getpid()}"


def as_str(value: Any) -> str:
    """An id or name from the Redis client (bytes, as this app's clients do not decode) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


async def sleep_until_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less when ``stop`` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


class Backoff:
    """A retry delay that doubles after each use, up to a cap the caller names."""

    def __init__(self, first: float) -> None:
        self.delay = first

    def grow(self, cap: float) -> None:
        self.delay = min(self.delay * 2, cap)


@dataclass(eq=False)
class StreamConsumer:
    """``consumer`` in ``group`` of ``stream``; ``role`` names it in log lines ("loader", "enricher")."""

    client: aioredis.Redis
    stream: str
    group: str
    consumer: str
    _: KW_ONLY
    batch_size: int
    block_ms: int
    role: str
    log: logging.Logger
    # Where this consumer name's own pending entries are read from (XREADGROUP history); None once
    # they are all read.
    _own_cursor: str | None = field(default="0", init=False)
    _claims: ClaimKeeper = field(init=False)

    def __post_init__(self) -> None:
        self._claims = ClaimKeeper(self.client)

    async def run(
        self, stop: asyncio.Event, step: Callable[[], Awaitable[None]], on_redis_error: Callable[[], None] | None = None
    ) -> None:
        """Run ``step`` until ``stop``: Redis being away or a bug must not end the work while ingest keeps
        accepting. Log and go on; whatever was in flight stays pending and is read again or reclaimed."""
        while not stop.is_set():
            try:
                await step()
            except RedisError as exc:
                self.log.warning(f"redis unavailable, {self.role} waits", extra={"error": type(exc).__name__})
                if on_redis_error is not None:
                    on_redis_error()
                await sleep_until_stop(stop, RETRY_SECONDS)
            except Exception:
                self.log.exception(f"{self.role} iteration failed")
                await sleep_until_stop(stop, RETRY_SECONDS)

    def reread_own(self) -> None:
        """Read this consumer name's pending entries from the start again (``next_own``)."""
        self._own_cursor = "0"

    async def next_own(self) -> list[Entry] | None:
        """The next batch of entries this consumer name was delivered and has not acknowledged (XREADGROUP
        from its history); None once there are no more, until ``reread_own``."""
        if self._own_cursor is None:
            return None
        reply: Any = await self.client.xreadgroup(
            self.group, self.consumer, {self.stream: self._own_cursor}, count=self.batch_size,
        )
        items = _items(reply)
        if not items:
            self._own_cursor = None
            return None
        self._own_cursor = items[-1].entry_id
        return items

    async def read_new(self) -> list[Entry]:
        """Entries never delivered to the group (XREADGROUP ``>``), blocking up to ``block_ms``."""
        reply: Any = await self.client.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=self.batch_size, block=self.block_ms,
        )
        return _items(reply)

    async def reclaim(self, min_idle_ms: int, start: str = "0-0") -> tuple[list[Entry], str]:
        """Take over entries idle longer than ``min_idle_ms`` (XAUTOCLAIM from ``start``); returns them
        and where the next scan starts ("0-0" once the whole pending list was scanned)."""
        reply: Any = await self.client.xautoclaim(
            self.stream, self.group, self.consumer, min_idle_ms, start_id=start, count=self.batch_size,
        )
        return [Entry(as_str(i), f or {}) for i, f in reply[1]], as_str(reply[0])

    async def ack(self, ids: list[str]) -> None:
        """Acknowledge and delete ``ids`` (XACK + XDEL in one MULTI)."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, self.group, *ids)
            pipe.xdel(self.stream, *ids)
            await pipe.execute()

    async def keep_claimed(self, ids: list[str]) -> list[str]:
        """Reset the idle time of the ``ids`` this consumer still owns; returns those it no longer owns.
        Best effort: while Redis is away nothing is kept and nothing is reported lost."""
        try:
            return await self._claims.keep(self.stream, self.group, self.consumer, ids)
        except RedisError:
            return []

    async def hold(
        self, stop: asyncio.Event, seconds: float, every: float, keep: Callable[[], Awaitable[object]]
    ) -> None:
        """Wait ``seconds`` (less on stop), calling ``keep`` (a heartbeat such as ``keep_claimed``) at
        least every ``every`` seconds, so the entries in hand are neither taken over nor dead-lettered."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not stop.is_set() and (left := deadline - loop.time()) > 0:
            await keep()
            await sleep_until_stop(stop, min(left, every))


def _items(reply: Any) -> list[Entry]:
    return [Entry(as_str(i), f or {}) for _, entries in reply or [] for i, f in entries]
