"""Enrichment worker: call ids of loaded events → Gong transcripts → GONG_CALL_TRANSCRIPTS.

The loader adds a call id to the enrichment stream in the same transaction that acknowledges
the event, so enrichment runs at Gong's pace without slowing the event load down.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from webhook_app import streams
from webhook_app.gong_client import GongApiError, GongClient
from webhook_app.loader import _sleep, consumer_name
from webhook_app.metrics import Metrics
from webhook_app.settings import AppSettings
from webhook_app.snowflake_sink import SinkError, SnowflakeSink, TranscriptRow

log = logging.getLogger(__name__)

ENRICH_CLAIM_IDLE_MS = 120_000


class Enricher:
    def __init__(
        self,
        settings: AppSettings,
        client: aioredis.Redis,
        gong: GongClient,
        sink: SnowflakeSink,
        metrics: Metrics,
        consumer: str | None = None,
    ) -> None:
        self._s = settings
        self._redis = client
        self._gong = gong
        self._sink = sink
        self._metrics = metrics
        self._stream = streams.enrich_stream(settings.redis_stream)
        self.consumer = consumer or consumer_name()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                batch = await self._next_batch()
                if batch:
                    await self._enrich(batch, stop)
            except RedisError as exc:
                log.warning("redis unavailable, enricher waits", extra={"error": type(exc).__name__})
                await _sleep(stop, 1.0)
            except Exception:
                log.exception("enricher iteration failed")
                await _sleep(stop, 1.0)

    async def _next_batch(self) -> list[tuple[str, str]]:
        # Entries a dead enricher left behind come first. A live enricher can hold an entry for a
        # long time while it waits for a rate-limit token, so the idle threshold is much longer
        # than the loader's: stealing it would spend API budget on a second fetch.
        claimed: Any = await self._redis.xautoclaim(
            self._stream, streams.ENRICH_GROUP, self.consumer, max(self._s.loader_claim_idle_ms, ENRICH_CLAIM_IDLE_MS),
            start_id="0-0", count=self._s.gong_enrichment_batch_size,
        )
        items = claimed[1]
        if not items:
            reply: Any = await self._redis.xreadgroup(
                streams.ENRICH_GROUP, self.consumer, {self._stream: ">"},
                count=self._s.gong_enrichment_batch_size, block=self._s.loader_block_ms,
            )
            items = [item for _, entries in reply or [] for item in entries]
        batch = []
        for raw_id, fields in items:
            if fields and b"call_id" in fields:
                entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                batch.append((entry_id, fields[b"call_id"].decode()))
        return batch

    async def _enrich(self, batch: list[tuple[str, str]], stop: asyncio.Event) -> None:
        call_ids = sorted({call_id for _, call_id in batch})
        delay = 1.0
        while True:
            try:
                transcripts = await self._gong.transcripts(call_ids)
                fetched_at = datetime.now(UTC).isoformat()
                rows = [
                    TranscriptRow(call_id, fetched_at, orjson.dumps(transcript).decode())
                    for call_id, transcript in transcripts.items()
                ]
                await asyncio.to_thread(self._sink.merge_transcripts, rows)
                self._metrics.transcripts_loaded.inc(len(rows))
                missing = set(call_ids) - transcripts.keys()
                if missing:
                    log.info("no transcript available", extra={"calls": len(missing)})
                break
            except (GongApiError, SinkError) as exc:
                if isinstance(exc, SinkError):
                    self._metrics.snowflake_errors.labels(kind="transient" if exc.transient else "data").inc()
                if not exc.transient:
                    # The event itself is loaded; only its optional transcript is given up on.
                    log.error("enrichment failed permanently", extra={"calls": call_ids, "error": str(exc)})
                    break
                log.warning("enrichment failed, retrying", extra={"error": str(exc)[:300], "retry_in": delay})
                if stop.is_set():
                    return
                await _sleep(stop, delay)
                delay = min(delay * 2, 30.0)
        ids = [entry_id for entry_id, _ in batch]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(self._stream, streams.ENRICH_GROUP, *ids)
            pipe.xdel(self._stream, *ids)
            await pipe.execute()
