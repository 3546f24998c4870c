"""Dead-letter stream: entries that failed LOADER_MAX_DELIVERIES times, and their replay."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from webhook_app import streams

# Fields the DLQ adds on top of the original entry; stripped again on replay.
_DLQ_FIELDS = (b"dlq_error", b"dlq_source_id", b"dlq_deliveries")


async def dead_letter(
    client: aioredis.Redis, stream: str, entry_id: str, fields: dict[bytes, bytes], error: str, deliveries: int
) -> None:
    """Move one pending entry to the DLQ: XADD there, XACK + XDEL here, in one transaction."""
    record = {k: v for k, v in fields.items() if k not in _DLQ_FIELDS}
    record[b"dlq_error"] = error.encode()
    record[b"dlq_source_id"] = entry_id.encode()
    record[b"dlq_deliveries"] = str(deliveries).encode()
    async with client.pipeline(transaction=True) as pipe:
        pipe.xadd(streams.dlq_stream(stream), record)  # type: ignore[arg-type]
        pipe.xack(stream, streams.LOADER_GROUP, entry_id)
        pipe.xdel(stream, entry_id)
        pipe.hdel(streams.errors_hash(stream), entry_id)
        await pipe.execute()


async def replay(client: aioredis.Redis, stream: str, limit: int | None = None) -> int:
    """Move DLQ entries back to the main stream (oldest first); returns how many moved."""
    dlq = streams.dlq_stream(stream)
    moved = 0
    start = "-"
    while limit is None or moved < limit:
        count = 100 if limit is None else min(100, limit - moved)
        batch: Any = await client.xrange(dlq, min=start, max="+", count=count)
        if not batch:
            break
        for raw_id, fields in batch:
            entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            original = {k: v for k, v in fields.items() if k not in _DLQ_FIELDS}
            async with client.pipeline(transaction=True) as pipe:
                pipe.xadd(stream, original)
                pipe.xdel(dlq, entry_id)
                await pipe.execute()
            moved += 1
        start = "(" + entry_id
    return moved
