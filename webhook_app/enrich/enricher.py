"""Enrichment worker: call ids of loaded events → Gong transcripts (and, optionally, extensive call
data) → GONG_CALL_TRANSCRIPTS / GONG_CALLS_EXTENSIVE.

The loader adds a call id to the enrichment stream in the same transaction that acknowledges
the event, so enrichment runs at Gong's pace without slowing the event load down. An entry is
acknowledged only after every step for it has been merged or given up on for good; while the
daily API budget is spent the batch stays pending (and claimed) until the next day.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from webhook_app import streams
from webhook_app.claims import ClaimKeeper
from webhook_app.enrich.gong_client import GongApiError, GongClient
from webhook_app.enrich.rate_limit import AcquireInterrupted, DailyBudgetExhausted
from webhook_app.loader.loader import _sleep, consumer_name
from webhook_app.metrics import Metrics
from webhook_app.settings import AppSettings
from webhook_app.snowflake_sink import ExtensiveRow, MissingTables, SinkError, SnowflakeSink, TranscriptRow

log = logging.getLogger("webhook_app.enrich")  # the name it logged under before the regroup

ENRICH_CLAIM_IDLE_MS = 120_000
# A batch waiting for the next day is re-claimed once per slice, so the slice must stay well
# below ENRICH_CLAIM_IDLE_MS or another enricher would take the batch and fetch it a second time.
BUDGET_WAIT_SLICE_SECONDS = 30.0
# Back-off while Gong refuses the credentials or Snowflake tables are missing: both last until a
# person fixes them, so retries slow down to this, and the ERROR line repeats at most this often.
HOLD_MAX_SECONDS = 300.0

Step = Callable[[list[str]], Awaitable[None]]


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
        self._budget_warned = False
        self._claims = ClaimKeeper(client)
        self._auth_failing_since: float | None = None
        self._auth_logged_at = 0.0
        # Where this consumer name's own pending entries are read from (XREADGROUP history) at
        # start; None once they are all read. Same reason as Loader.read_own_pending.
        self._own_cursor: str | None = "0"

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
        if self._own_cursor is not None:
            own: Any = await self._redis.xreadgroup(
                streams.ENRICH_GROUP, self.consumer, {self._stream: self._own_cursor},
                count=self._s.gong_enrichment_batch_size,
            )
            items = [item for _, entries in own or [] for item in entries]
            if items:
                last = items[-1][0]
                self._own_cursor = last.decode() if isinstance(last, bytes) else str(last)
                return self._batch(items)
            self._own_cursor = None
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
        return self._batch(items)

    @staticmethod
    def _batch(items: list[Any]) -> list[tuple[str, str]]:
        batch = []
        for raw_id, fields in items:
            if fields and b"call_id" in fields:
                entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                batch.append((entry_id, fields[b"call_id"].decode()))
        return batch

    async def _enrich(self, batch: list[tuple[str, str]], stop: asyncio.Event) -> None:
        call_ids = sorted({call_id for _, call_id in batch})
        ids = [entry_id for entry_id, _ in batch]
        steps: list[Step] = [self._load_transcripts]
        if self._s.gong_enrichment_extensive:
            steps.append(self._load_extensive)
        for step in steps:
            if not await self._until_done(step, call_ids, ids, stop):
                return  # stopping: the batch stays pending for whoever runs next
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(self._stream, streams.ENRICH_GROUP, *ids)
            pipe.xdel(self._stream, *ids)
            await pipe.execute()

    async def _until_done(self, step: Step, call_ids: list[str], ids: list[str], stop: asyncio.Event) -> bool:
        """Run one fetch-and-merge step until it succeeds or fails for good; False when stopping."""
        delay = 1.0
        while not stop.is_set():
            try:
                await step(call_ids)
            except DailyBudgetExhausted as exc:
                await self._wait_for_next_day(exc.retry_in, ids, stop)
                continue
            except AcquireInterrupted:
                return False
            except GongApiError as exc:
                if exc.auth:
                    # Giving up would acknowledge every call's enrichment for as long as the key is
                    # wrong; instead the batch stays pending (claimed) and later ones stay unread.
                    self._auth_refused(str(exc))
                    await self._hold(ids, stop, delay)
                    delay = min(delay * 2, HOLD_MAX_SECONDS)
                    continue
                if not exc.transient:
                    # The event itself is loaded; only this optional detail is given up on.
                    log.error("enrichment failed permanently", extra={"calls": call_ids, "error": str(exc)})
                    return True
                log.warning("enrichment failed, retrying", extra={"error": str(exc)[:300], "retry_in": delay})
                await _sleep(stop, delay)
                delay = min(delay * 2, 30.0)
                continue
            except MissingTables as exc:
                # The loader reports this too (log, metric, /ready); the batch waits for migrate.
                log.warning("enrichment waits for missing Snowflake tables", extra={"missing": exc.missing})
                await self._hold(ids, stop, delay)
                delay = min(delay * 2, HOLD_MAX_SECONDS)
                continue
            except SinkError as exc:
                self._metrics.snowflake_errors.labels(kind="transient" if exc.transient else "data").inc()
                if not exc.transient:
                    # The event itself is loaded; only this optional detail is given up on.
                    log.error("enrichment failed permanently", extra={"calls": call_ids, "error": str(exc)})
                    return True
                log.warning("enrichment failed, retrying", extra={"error": str(exc)[:300], "retry_in": delay})
                await _sleep(stop, delay)
                delay = min(delay * 2, 30.0)
                continue
            if self._budget_warned:
                self._budget_warned = False
                log.info("Gong API daily budget available again, enrichment resumes")
            if self._auth_failing_since is not None:
                self._auth_failing_since = None
                log.info("Gong API accepts the credentials again, enrichment resumes")
            return True
        return False

    def _auth_refused(self, error: str) -> None:
        now = time.monotonic()
        if self._auth_failing_since is None:
            self._auth_failing_since = now
        if now - self._auth_logged_at >= HOLD_MAX_SECONDS or self._auth_logged_at == 0.0:
            self._auth_logged_at = now
            log.error(
                "Gong API refuses the credentials, enrichment holds its batch",
                extra={"error": error, "failing_for_s": round(now - self._auth_failing_since)},
            )

    async def _hold(self, ids: list[str], stop: asyncio.Event, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not stop.is_set() and (left := deadline - loop.time()) > 0:
            await self._keep_claimed(ids)
            await _sleep(stop, min(left, BUDGET_WAIT_SLICE_SECONDS))

    async def _load_transcripts(self, call_ids: list[str]) -> None:
        transcripts = await self._gong.transcripts(call_ids)
        fetched_at = datetime.now(UTC).isoformat()
        rows = [TranscriptRow(call_id, fetched_at, orjson.dumps(doc).decode()) for call_id, doc in transcripts.items()]
        await asyncio.to_thread(self._sink.merge_transcripts, rows)
        self._metrics.transcripts_loaded.inc(len(rows))
        missing = set(call_ids) - transcripts.keys()
        if missing:
            log.info("no transcript available", extra={"calls": len(missing)})

    async def _load_extensive(self, call_ids: list[str]) -> None:
        calls = await self._gong.extensive(call_ids)
        fetched_at = datetime.now(UTC).isoformat()
        rows = [ExtensiveRow(call_id, fetched_at, orjson.dumps(doc).decode()) for call_id, doc in calls.items()]
        await asyncio.to_thread(self._sink.merge_extensive, rows)
        self._metrics.extensive_calls_loaded.inc(len(rows))
        missing = set(call_ids) - calls.keys()
        if missing:
            log.info("no extensive call data available", extra={"calls": len(missing)})

    async def _wait_for_next_day(self, retry_in: float, ids: list[str], stop: asyncio.Event) -> None:
        self._metrics.gong_api_budget_deferrals.inc()
        if not self._budget_warned:
            # One line per process and day, not one per batch or attempt.
            self._budget_warned = True
            log.warning(
                "Gong API daily budget spent, enrichment waits for the next day",
                extra={"daily_limit": self._s.gong_api_daily_limit, "next_day_in_s": round(retry_in)},
            )
        loop = asyncio.get_running_loop()
        # A little past the boundary, so Redis' clock is surely in the new day when we ask again.
        deadline = loop.time() + retry_in + 0.05
        while not stop.is_set() and (left := deadline - loop.time()) > 0:
            await self._keep_claimed(ids)
            await _sleep(stop, min(left, BUDGET_WAIT_SLICE_SECONDS))

    async def _keep_claimed(self, ids: list[str]) -> None:
        # Other enrichers must not take over a batch that is only waiting (budget, credentials):
        # they would spend API budget on a second fetch.
        try:
            await self._claims.keep(self._stream, streams.ENRICH_GROUP, self.consumer, ids)
        except RedisError:
            pass  # best effort: at worst another enricher fetches the batch again, and the MERGE is idempotent
