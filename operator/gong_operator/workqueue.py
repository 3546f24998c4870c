"""A coalescing work queue (client-go style) for reconcile keys.

* A key added while already queued is not queued twice (events coalesce).
* A key is never processed by two workers at once; added while in flight, it runs once more after.
* ``add_after`` re-queues with a delay (retries with backoff, periodic refresh).
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._dirty: dict[K, str] = {}
        self._processing: set[K] = set()
        self._timers: dict[K, asyncio.TimerHandle] = {}

    def add(self, key: K, trigger: str = "event") -> None:
        if key in self._dirty:
            return
        self._dirty[key] = trigger
        if key in self._processing:
            return
        self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float, trigger: str = "retry") -> None:
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(delay, self._fire, key, trigger)

    def _fire(self, key: K, trigger: str) -> None:
        self._timers.pop(key, None)
        self.add(key, trigger)

    async def get(self) -> tuple[K, str]:
        key = await self._queue.get()
        trigger = self._dirty.pop(key, "event")
        self._processing.add(key)
        return key, trigger

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.put_nowait(key)

    def forget(self, key: K) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def __len__(self) -> int:
        return self._queue.qsize()

    def pending_timers(self) -> int:
        return len(self._timers)
