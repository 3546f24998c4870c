"""Periodic sampling of stream length, consumer lag, pending entries and DLQ depth into gauges."""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from webhook_app import streams
from webhook_app.metrics import Metrics

log = logging.getLogger(__name__)


async def sample(client: aioredis.Redis, stream: str, metrics: Metrics) -> None:
    async with client.pipeline(transaction=False) as pipe:
        pipe.xlen(stream)
        pipe.xlen(streams.dlq_stream(stream))
        pipe.exists(stream)
        length, dlq_length, exists = await pipe.execute()
    metrics.stream_length.set(length)
    metrics.dlq_depth.set(dlq_length)
    if not exists:
        return
    for group in await client.xinfo_groups(stream):
        name = group.get("name")
        if (name.decode() if isinstance(name, bytes) else name) == streams.LOADER_GROUP:
            metrics.pending.set(int(group.get("pending") or 0))
            lag = group.get("lag")
            # Redis reports lag as nil when it cannot compute it (after XDEL of undelivered entries).
            metrics.consumer_lag.set(int(lag) if lag is not None else length - int(group.get("pending") or 0))


async def run(client: aioredis.Redis, stream: str, metrics: Metrics, stop: asyncio.Event, every: float = 5.0) -> None:
    while not stop.is_set():
        try:
            await sample(client, stream, metrics)
        except RedisError as exc:
            log.debug("stream stats unavailable", extra={"error": type(exc).__name__})
        try:
            await asyncio.wait_for(stop.wait(), timeout=every)
        except TimeoutError:
            pass
