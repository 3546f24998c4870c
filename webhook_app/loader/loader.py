"""Consumer-group loader: Redis stream → one idempotent MERGE per batch → XACK.

Exactly-once comes from three rules: the MERGE is keyed by EVENT_ID (a redelivered event
matches and inserts nothing), an entry is acknowledged only after its MERGE committed, and an
entry is never acknowledged otherwise except by moving it to the dead-letter stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from webhook_app import streams
from webhook_app.consumer import Backoff, Entry, StreamConsumer, as_str, consumer_name, sleep_until_stop
from webhook_app.loader import dlq
from webhook_app.metrics import Metrics
from webhook_app.settings import AppSettings
from webhook_app.snowflake_sink import EventRow, MissingTables, SinkError, SnowflakeSink

log = logging.getLogger("webhook_app.loader")  # the name it logged under before the regroup

# Above this many payload bytes a batch is split into several MERGEs: Snowflake caps the
# size of one request's binds, and one huge statement holds the whole batch hostage.
MAX_MERGE_BYTES = 8 * 1024 * 1024
CONSUMER_FORGET_IDLE_MS = 3_600_000
# While tables are missing nothing can load; checking more often than this only adds queries.
SCHEMA_RECHECK_SECONDS = 30.0
# The ERROR line about missing tables is repeated at this rate while the condition lasts.
SCHEMA_LOG_EVERY_SECONDS = 300.0
# How long the /ready detail about missing tables outlives the last loader that reported it.
SCHEMA_STATUS_TTL_SECONDS = 120


class EntryError(Exception):
    """An entry that can never load as it is (undecodable fields)."""


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _timestamp(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    # Without an offset the instant is ambiguous; Snowflake would apply the session time zone.
    return parsed.isoformat() if parsed.tzinfo is not None else None


def to_row(entry: Entry, event_scope: str) -> EventRow:
    f = entry.fields
    try:
        event_id = f[b"event_id"].decode()
        call_id = f[b"call_id"].decode()
        doc = orjson.loads(f[b"body"])
        received_at = f[b"received_at"].decode()
    except (KeyError, UnicodeDecodeError, orjson.JSONDecodeError) as exc:
        raise EntryError(f"undecodable stream entry: {type(exc).__name__}") from None
    meta = (doc.get("callData") or {}).get("metaData") if isinstance(doc, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    duration = meta.get("duration")
    return EventRow(
        event_id=event_id,
        call_id=call_id,
        event_scope=event_scope,
        is_test=f.get(b"is_test") == b"1",
        title=_text(meta.get("title")),
        started=_timestamp(meta.get("started")),
        duration_seconds=duration if isinstance(duration, int) and not isinstance(duration, bool) else None,
        primary_user_id=_text(meta.get("primaryUserId")),
        stream_entry_id=entry.entry_id,
        received_at=received_at,
        # The bytes Gong signed, unchanged: re-serialising would round integers beyond 64 bits
        # and reformat numbers. (The API already refused bodies that are not UTF-8 JSON.)
        payload_json=f[b"body"].decode(),
    )


def _chunks(rows: Sequence[tuple[Entry, EventRow]]) -> list[list[tuple[Entry, EventRow]]]:
    chunks: list[list[tuple[Entry, EventRow]]] = [[]]
    size = 0
    for item in rows:
        n = len(item[1].payload_json)
        if chunks[-1] and size + n > MAX_MERGE_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += n
    return chunks


class Loader:
    def __init__(
        self,
        settings: AppSettings,
        client: aioredis.Redis,
        sink: SnowflakeSink,
        metrics: Metrics,
        consumer: str | None = None,
    ) -> None:
        self._s = settings
        self._redis = client
        self._sink = sink
        self._metrics = metrics
        self._stream = settings.redis_stream
        self.consumer = consumer or consumer_name()
        self._reader = StreamConsumer(
            client, self._stream, streams.LOADER_GROUP, self.consumer,
            batch_size=settings.loader_batch_size, block_ms=settings.loader_block_ms, role="loader", log=log,
        )
        self._claim_cursor = "0-0"
        self._claim_interval = max(0.1, settings.loader_claim_idle_ms / 2000)
        self._next_claim = 0.0
        self._reread_own = False
        # Several heartbeats per claim-idle period, so one slow Redis round trip cannot let the
        # entries of a MERGE in flight look idle to other loaders.
        self._heartbeat_seconds = max(0.05, settings.loader_claim_idle_ms / 4000)
        # Entries of the batch in hand that are not acknowledged yet; kept claimed while it loads.
        self._held: dict[str, Entry] = {}
        self._missing_tables: list[str] = []
        self._missing_logged_at = 0.0

    async def ensure_group(self) -> None:
        for stream, group in self._groups():
            try:
                await self._redis.xgroup_create(stream, group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def _groups(self) -> list[tuple[str, str]]:
        groups = [(self._stream, streams.LOADER_GROUP)]
        if self._s.gong_enrichment_enabled:
            groups.append((streams.enrich_stream(self._stream), streams.ENRICH_GROUP))
        return groups

    async def run(self, stop: asyncio.Event) -> None:
        log.info("loader started", extra={"consumer": self.consumer, "stream": self._stream})
        await self._until_ok(stop, self.ensure_group)
        await self._wait_for_tables(stop)
        await self._until_ok(stop, lambda: self._load_own_pending(stop))
        self._next_claim = 0.0
        self._reread_own = False
        await self._reader.run(stop, lambda: self._step(stop), on_redis_error=self._after_redis_error)
        log.info("loader stopped", extra={"consumer": self.consumer})

    async def _step(self, stop: asyncio.Event) -> None:
        if self._reread_own:
            # A batch whose ack failed while Redis was away is still ours: load it again
            # now (the MERGE absorbs it) rather than after claim-idle.
            await self._load_own_pending(stop)
            self._reread_own = False
        if time.monotonic() >= self._next_claim:
            self._next_claim = time.monotonic() + self._claim_interval
            claimed = await self.reclaim()
            if claimed:
                await self.process(claimed, stop)
                return
        entries = await self.read()
        if entries:
            await self.process(entries, stop)

    def _after_redis_error(self) -> None:
        self._reread_own = True

    async def _until_ok(self, stop: asyncio.Event, action: Callable[[], Awaitable[None]]) -> None:
        backoff = Backoff(0.5)
        while not stop.is_set():
            try:
                await action()
                return
            except (RedisError, SinkError) as exc:
                log.warning("loader start-up step failed, retrying", extra={"error": str(exc)[:300]})
                await sleep_until_stop(stop, backoff.delay)
                backoff.grow(10.0)

    async def _wait_for_tables(self, stop: asyncio.Event) -> None:
        """Until the tables exist: the loader runs no DDL, it only checks (one query per connection)."""
        backoff = Backoff(0.5)
        while not stop.is_set():
            try:
                await asyncio.to_thread(self._sink.check_tables)
            except MissingTables as exc:
                await self._report_missing_tables(exc)
                await sleep_until_stop(stop, SCHEMA_RECHECK_SECONDS)
                continue
            except SinkError as exc:
                self._metrics.snowflake_errors.labels(kind="transient").inc()
                log.warning("loader start-up step failed, retrying", extra={"error": str(exc)[:300]})
                await sleep_until_stop(stop, backoff.delay)
                backoff.grow(10.0)
                continue
            await self._tables_present()
            return

    async def _report_missing_tables(self, exc: MissingTables) -> None:
        self._metrics.snowflake_missing_tables.set(len(exc.missing))
        now = time.monotonic()
        if exc.missing != self._missing_tables or now - self._missing_logged_at >= SCHEMA_LOG_EVERY_SECONDS:
            self._missing_logged_at = now
            log.error("snowflake tables missing, loading paused", extra={"error": str(exc), "missing": exc.missing})
        self._missing_tables = exc.missing
        try:
            await self._redis.set(
                streams.snowflake_status_key(self._stream),
                orjson.dumps({"missing_tables": exc.missing, "consumer": self.consumer}),
                ex=SCHEMA_STATUS_TTL_SECONDS,
            )
        except RedisError:
            pass  # the log line and the metric still say it

    async def _tables_present(self) -> None:
        self._metrics.snowflake_missing_tables.set(0)
        if self._missing_tables:
            log.info("snowflake tables present, loading resumes")
            self._missing_tables = []
        try:
            await self._redis.delete(streams.snowflake_status_key(self._stream))
        except RedisError:
            pass

    async def _load_own_pending(self, stop: asyncio.Event) -> None:
        """Entries this consumer name was delivered before a restart and never acknowledged: read
        them back at once (XREADGROUP from id 0) instead of waiting for LOADER_CLAIM_IDLE_MS."""
        self._reader.reread_own()
        while not stop.is_set():
            items = await self._reader.next_own()
            if items is None:
                return
            entries = await self._without_exhausted([e for e in items if e.fields])
            if entries:
                log.info("loading own pending entries after restart", extra={"events": len(entries)})
                await self.process(entries, stop)

    async def read(self) -> list[Entry]:
        return [e for e in await self._reader.read_new() if e.fields]

    async def reclaim(self) -> list[Entry]:
        """Take over entries idle longer than LOADER_CLAIM_IDLE_MS (a dead consumer's, or our own
        failed ones); dead-letter those already delivered LOADER_MAX_DELIVERIES times."""
        items, self._claim_cursor = await self._reader.reclaim(self._s.loader_claim_idle_ms, self._claim_cursor)
        if self._claim_cursor == "0-0":
            await self._forget_idle_consumers()
        return await self._without_exhausted([e for e in items if e.fields])

    async def _without_exhausted(self, entries: list[Entry]) -> list[Entry]:
        """Dead-letter the entries delivered more than LOADER_MAX_DELIVERIES times; return the rest."""
        if not entries:
            return []
        counts = await self._delivery_counts([e.entry_id for e in entries])
        live: list[Entry] = []
        for entry in entries:
            deliveries = counts.get(entry.entry_id, 0)
            if deliveries > self._s.loader_max_deliveries:
                error: Any = await self._redis.hget(streams.errors_hash(self._stream), entry.entry_id)
                reason = error.decode() if error else "no error recorded (consumer died while loading)"
                await dlq.dead_letter(self._redis, self._stream, entry.entry_id, entry.fields, reason, deliveries)
                self._metrics.dead_lettered.inc()
                log.error(
                    "event moved to dead-letter stream",
                    extra={"entry_id": entry.entry_id, "deliveries": deliveries, "error": reason},
                )
            else:
                live.append(entry)
        return live

    async def _forget_idle_consumers(self) -> None:
        # Every pod/process restart adds a consumer name to the group; drop the ones that own
        # nothing and have been silent for an hour (DELCONSUMER on an empty PEL loses nothing).
        consumers: Any = await self._redis.xinfo_consumers(self._stream, streams.LOADER_GROUP)
        for consumer in consumers:
            name = as_str(consumer.get("name"))
            if name != self.consumer and int(consumer.get("pending") or 0) == 0 and int(
                consumer.get("idle") or 0
            ) > CONSUMER_FORGET_IDLE_MS:
                await self._redis.xgroup_delconsumer(self._stream, streams.LOADER_GROUP, name)

    async def _delivery_counts(self, ids: list[str]) -> dict[str, int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.xpending_range(self._stream, streams.LOADER_GROUP, min=entry_id, max=entry_id, count=1)
            replies = await pipe.execute()
        counts: dict[str, int] = {}
        for reply in replies:
            for item in reply:
                counts[as_str(item["message_id"])] = int(item["times_delivered"])
        return counts

    async def process(self, entries: list[Entry], stop: asyncio.Event) -> None:
        started = time.perf_counter()
        self._held = {e.entry_id: e for e in entries}
        try:
            await self._process(entries, stop)
        finally:
            self._held = {}
        self._metrics.loader_batch_seconds.observe(time.perf_counter() - started)

    async def _process(self, entries: list[Entry], stop: asyncio.Event) -> None:
        rows: list[tuple[Entry, EventRow]] = []
        for entry in entries:
            try:
                rows.append((entry, to_row(entry, self._s.event_scope)))
            except EntryError as exc:
                await self._record_failure([entry], str(exc))
        # A MERGE source must not hold a key twice; later copies are acked with the first.
        first: dict[str, tuple[Entry, EventRow]] = {}
        extra: dict[str, list[Entry]] = {}
        for entry, row in rows:
            if row.event_id in first:
                extra.setdefault(row.event_id, []).append(entry)
            else:
                first[row.event_id] = (entry, row)
        for chunk in _chunks(list(first.values())):
            if chunk:
                await self._load(chunk, extra, stop)

    async def _load(
        self, chunk: list[tuple[Entry, EventRow]], extra: dict[str, list[Entry]], stop: asyncio.Event
    ) -> None:
        backoff = Backoff(0.5)
        while True:
            try:
                await self._merge([row for _, row in chunk])
                break
            except MissingTables as exc:
                # Not the rows' fault: hold the batch (claimed) until the tables are back, instead
                # of bisecting it into the dead-letter stream.
                await self._report_missing_tables(exc)
                if stop.is_set():
                    return
                await self._hold(stop, SCHEMA_RECHECK_SECONDS)
                continue
            except SinkError as exc:
                kind = "transient" if exc.transient else "data"
                self._metrics.snowflake_errors.labels(kind=kind).inc()
                if not exc.transient:
                    await self._isolate(chunk, extra, str(exc), stop)
                    return
                log.warning(
                    "snowflake unavailable, holding batch",
                    extra={"events": len(chunk), "error": str(exc)[:300], "retry_in": backoff.delay},
                )
                if stop.is_set():
                    return  # left pending; another consumer (or our restart) reclaims it
                await self._hold(stop, backoff.delay)
                backoff.grow(10.0)
        if self._missing_tables:
            await self._tables_present()
        self._metrics.loader_batch_size.observe(len(chunk))
        acked = [e for e, _ in chunk] + [d for e, row in chunk for d in extra.get(row.event_id, [])]
        await self._ack(acked, [row.call_id for _, row in chunk])

    async def _isolate(
        self, chunk: list[tuple[Entry, EventRow]], extra: dict[str, list[Entry]], error: str, stop: asyncio.Event
    ) -> None:
        """Snowflake refused the statement: split until the refused events are alone, so the
        rest of the batch loads and only the culprits stay pending (and reach the DLQ)."""
        if len(chunk) == 1:
            entry, row = chunk[0]
            await self._record_failure([entry, *extra.get(row.event_id, [])], error)
            log.warning("event refused by snowflake", extra={"entry_id": entry.entry_id, "error": error[:300]})
            return
        mid = len(chunk) // 2
        await self._load(chunk[:mid], extra, stop)
        await self._load(chunk[mid:], extra, stop)

    async def _record_failure(self, entries: list[Entry], error: str) -> None:
        await self._redis.hset(
            streams.errors_hash(self._stream), mapping={e.entry_id: error[:1000] for e in entries}
        )

    async def _merge(self, rows: list[EventRow]) -> None:
        """One MERGE in a worker thread, while the batch's entries are kept claimed: a MERGE slower
        than LOADER_CLAIM_IDLE_MS must not let another loader take the same entries and MERGE them
        concurrently (two NOT MATCHED inserts of one event can both land in Snowflake)."""
        call = asyncio.ensure_future(asyncio.to_thread(self._sink.merge_events, rows))
        while True:
            done, _ = await asyncio.wait({call}, timeout=self._heartbeat_seconds)
            if done:
                call.result()
                return
            await self._keep_claimed()

    async def _hold(self, stop: asyncio.Event, seconds: float) -> None:
        """Wait while keeping the batch claimed, so it is neither taken over nor pushed to the DLQ."""
        await self._reader.hold(stop, seconds, self._heartbeat_seconds, self._keep_claimed)

    async def _keep_claimed(self) -> None:
        # Best effort: while Redis is away the next heartbeat tries again well within claim-idle.
        lost = await self._reader.keep_claimed(list(self._held))
        if lost:
            # Only possible when Redis was unreachable for longer than claim-idle. The MERGE in
            # flight cannot be recalled; the one who took them over MERGEs them too, and the
            # second MERGE matches and inserts nothing unless both run at the same time.
            log.warning("pending entries were taken over by another loader", extra={"events": len(lost)})
            for entry_id in lost:
                self._held.pop(entry_id, None)

    async def _ack(self, entries: list[Entry], call_ids: list[str]) -> None:
        ids = [e.entry_id for e in entries]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(self._stream, streams.LOADER_GROUP, *ids)
            pipe.xdel(self._stream, *ids)
            pipe.hdel(streams.errors_hash(self._stream), *ids)
            if self._s.gong_enrichment_enabled:
                for call_id in call_ids:
                    pipe.xadd(streams.enrich_stream(self._stream), {"call_id": call_id})
            await pipe.execute()
        for entry_id in ids:
            self._held.pop(entry_id, None)
        self._metrics.loaded_events.inc(len(ids))
