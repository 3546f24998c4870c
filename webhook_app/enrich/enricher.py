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
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis
from prometheus_client import Counter

from webhook_app import streams
from webhook_app.consumer import Backoff, Entry, StreamConsumer, consumer_name, sleep_until_stop
from webhook_app.enrich.gong_client import GongApiError, GongClient
from webhook_app.enrich.rate_limit import AcquireInterrupted, DailyBudgetExhausted
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
# Back-off cap for other transient failures (Gong 5xx, network, Snowflake unavailable).
RETRY_MAX_SECONDS = 30.0

Step = Callable[[list[str]], Awaitable[None]]
Row = TypeVar("Row", TranscriptRow, ExtensiveRow)


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
        self.consumer = consumer or consumer_name()
        self._reader = StreamConsumer(
            client, streams.enrich_stream(settings.redis_stream), streams.ENRICH_GROUP, self.consumer,
            batch_size=settings.gong_enrichment_batch_size, block_ms=settings.loader_block_ms, role="enricher",
            log=log,
        )
        # Entries a dead enricher left behind are taken over after this long (see _next_batch).
        self._claim_idle_ms = max(settings.loader_claim_idle_ms, ENRICH_CLAIM_IDLE_MS)
        self._extensive = settings.gong_enrichment_extensive
        self._daily_limit = settings.gong_api_daily_limit
        self._gong = gong
        self._sink = sink
        self._metrics = metrics
        self._budget_warned = False
        self._auth_failing_since: float | None = None
        self._auth_logged_at = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        await self._reader.run(stop, lambda: self._step(stop))

    async def _step(self, stop: asyncio.Event) -> None:
        batch = await self._next_batch()
        if batch:
            await self._enrich(batch, stop)

    async def _next_batch(self) -> list[tuple[str, str]]:
        # This consumer name's own pending entries first (same reason as the loader's).
        own = await self._reader.next_own()
        if own is not None:
            return self._batch(own)
        # Entries a dead enricher left behind come first. A live enricher can hold an entry for a
        # long time while it waits for a rate-limit token, so the idle threshold is much longer
        # than the loader's: stealing it would spend API budget on a second fetch.
        items, _ = await self._reader.reclaim(self._claim_idle_ms)
        if not items:
            items = await self._reader.read_new()
        return self._batch(items)

    @staticmethod
    def _batch(items: list[Entry]) -> list[tuple[str, str]]:
        return [(e.entry_id, e.fields[b"call_id"].decode()) for e in items if e.fields and b"call_id" in e.fields]

    async def _enrich(self, batch: list[tuple[str, str]], stop: asyncio.Event) -> None:
        call_ids = sorted({call_id for _, call_id in batch})
        ids = [entry_id for entry_id, _ in batch]
        steps: list[Step] = [self._load_transcripts]
        if self._extensive:
            steps.append(self._load_extensive)
        for step in steps:
            if not await self._until_done(step, call_ids, ids, stop):
                return  # stopping: the batch stays pending for whoever runs next
        await self._reader.ack(ids)

    async def _until_done(self, step: Step, call_ids: list[str], ids: list[str], stop: asyncio.Event) -> bool:
        """Run one fetch-and-merge step until it succeeds or fails for good; False when stopping."""
        backoff = Backoff(1.0)
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
                    await self._hold(ids, stop, backoff.delay)
                    backoff.grow(HOLD_MAX_SECONDS)
                    continue
                failure: GongApiError | SinkError = exc
            except MissingTables as exc:
                # The loader reports this too (log, metric, /ready); the batch waits for migrate.
                log.warning("enrichment waits for missing Snowflake tables", extra={"missing": exc.missing})
                await self._hold(ids, stop, backoff.delay)
                backoff.grow(HOLD_MAX_SECONDS)
                continue
            except SinkError as exc:
                self._metrics.snowflake_errors.labels(kind="transient" if exc.transient else "data").inc()
                failure = exc
            else:
                self._resumed()
                return True
            if not failure.transient:
                # The event itself is loaded; only this optional detail is given up on.
                log.error("enrichment failed permanently", extra={"calls": call_ids, "error": str(failure)})
                return True
            log.warning("enrichment failed, retrying", extra={"error": str(failure)[:300], "retry_in": backoff.delay})
            await sleep_until_stop(stop, backoff.delay)
            backoff.grow(RETRY_MAX_SECONDS)
        return False

    def _resumed(self) -> None:
        if self._budget_warned:
            self._budget_warned = False
            log.info("Gong API daily budget available again, enrichment resumes")
        if self._auth_failing_since is not None:
            self._auth_failing_since = None
            log.info("Gong API accepts the credentials again, enrichment resumes")

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
        # Other enrichers must not take over a batch that is only waiting (budget, credentials,
        # tables): they would spend API budget on a second fetch. Keeping it claimed is best effort:
        # at worst another enricher fetches the batch again, and the MERGE is idempotent.
        await self._reader.hold(stop, seconds, BUDGET_WAIT_SLICE_SECONDS, lambda: self._reader.keep_claimed(ids))

    async def _load_transcripts(self, call_ids: list[str]) -> None:
        await self._fetch_and_merge(
            call_ids, self._gong.transcripts, TranscriptRow, self._sink.merge_transcripts,
            self._metrics.transcripts_loaded, "no transcript available",
        )

    async def _load_extensive(self, call_ids: list[str]) -> None:
        await self._fetch_and_merge(
            call_ids, self._gong.extensive, ExtensiveRow, self._sink.merge_extensive,
            self._metrics.extensive_calls_loaded, "no extensive call data available",
        )

    async def _fetch_and_merge(
        self,
        call_ids: list[str],
        fetch: Callable[[list[str]], Awaitable[dict[str, Any]]],
        row: Callable[[str, str, str], Row],
        merge: Callable[[Sequence[Row]], int],
        loaded: Counter,
        none_available: str,
    ) -> None:
        """One Gong document per call id → one row per call id, MERGEd; calls Gong has nothing for are logged."""
        docs = await fetch(call_ids)
        fetched_at = datetime.now(UTC).isoformat()
        rows = [row(call_id, fetched_at, orjson.dumps(doc).decode()) for call_id, doc in docs.items()]
        await asyncio.to_thread(merge, rows)
        loaded.inc(len(rows))
        missing = set(call_ids) - docs.keys()
        if missing:
            log.info(none_available, extra={"calls": len(missing)})

    async def _wait_for_next_day(self, retry_in: float, ids: list[str], stop: asyncio.Event) -> None:
        self._metrics.gong_api_budget_deferrals.inc()
        if not self._budget_warned:
            # One line per process and day, not one per batch or attempt.
            self._budget_warned = True
            log.warning(
                "Gong API daily budget spent, enrichment waits for the next day",
                extra={"daily_limit": self._daily_limit, "next_day_in_s": round(retry_in)},
            )
        # A little past the boundary, so Redis' clock is surely in the new day when we ask again.
        await self._hold(ids, stop, retry_in + 0.05)
