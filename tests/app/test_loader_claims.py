"""Pending entries and who may load them (issue 10 #5, #6f).

* A loader keeps the entries of the batch it is loading claimed while the MERGE runs, so a MERGE
  slower than LOADER_CLAIM_IDLE_MS is not taken over and sent a second time by another loader (two
  concurrent MERGEs of the same events can both insert on Snowflake).
* A loader restarted under its old consumer name (a container restarted in its pod: same hostname,
  PID 1) reads its own pending entries at once instead of waiting for claim-idle."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import orjson

from tests.support.gong import call_payload
from tests.support.waiting import wait_for
from webhook_app import streams
from webhook_app.ingest.enqueue import Enqueuer, Event
from webhook_app.loader.loader import Loader
from webhook_app.metrics import Metrics
from webhook_app.redis_conn import make_client
from webhook_app.snowflake_sink import SnowflakeSink


async def _enqueue(settings, call_ids: list[str]) -> None:
    client = make_client(settings)
    enq = Enqueuer(client, settings.redis_stream, settings.dedup_ttl_seconds)
    for call_id in call_ids:
        assert await enq.enqueue(Event(
            settings.event_id(call_id), call_id, False, "2026-12-01T10:00:00+00:00", "rid",
            orjson.dumps(call_payload(call_id)),
        ))
    await client.aclose()


async def _wait(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await asyncio.to_thread(predicate):
        assert time.monotonic() < deadline, f"timed out after {seconds}s waiting for {what}"
        await asyncio.sleep(0.1)


async def test_a_merge_slower_than_claim_idle_is_not_taken_over(
    make_settings, snowflake_spy, redis_server, event_count, assert_no_duplicates
):
    # Claim idle far below the MERGE's duration on purpose (load_settings alone does not apply the
    # loader's "claim idle > 2 x timeout" rule, which would make this configuration impossible): the
    # heartbeat alone must keep the batch from being taken over.
    settings = make_settings(SNOWFLAKE_PORT=str(snowflake_spy.port), LOADER_CLAIM_IDLE_MS="1000",
                             LOADER_BATCH_SIZE="10")
    n = 30
    await _enqueue(settings, [f"6100{i:02d}" for i in range(n)])
    stalled: list[str] = []

    def stall(sql: str) -> float:
        if sql.lstrip().upper().startswith("MERGE") and not stalled:
            stalled.append(sql)
            return 4.0  # four claim-idle periods; still below the connector's 10 s socket timeout
        return 0.0

    snowflake_spy.stall = stall
    stop = asyncio.Event()
    clients = [make_client(settings, block_ms=settings.loader_block_ms) for _ in range(2)]
    sinks = [SnowflakeSink(settings) for _ in range(2)]
    loaders = [Loader(settings, c, s, Metrics(), consumer=f"loader-{k}")
               for k, (c, s) in enumerate(zip(clients, sinks, strict=True))]
    tasks = [asyncio.create_task(loader.run(stop)) for loader in loaders]
    r = redis_server.client()
    try:
        await _wait(lambda: event_count(settings) >= n and r.xlen(settings.redis_stream) == 0, 30, "all events loaded")
        await asyncio.sleep(1.5)  # a late second MERGE of the stalled batch would show up now
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for sink in sinks:
            sink.close()
        for client in clients:
            await client.aclose()
    assert stalled, "the MERGE was not stalled"
    sent = Counter(
        v for m in snowflake_spy.merges() for v in m.bound_values()
        if isinstance(v, str) and v.startswith(settings.event_scope + "/")
    )
    assert len(sent) == n
    twice = sorted(e for e, c in sent.items() if c > 1)
    assert twice == [], f"{len(twice)} events sent in two MERGEs, e.g. {twice[:3]}"
    assert assert_no_duplicates(settings) == n
    for loader in loaders:
        assert loader._metrics.snowflake_errors.labels(kind="data")._value.get() == 0


async def test_a_restarted_loader_reads_its_own_pending_entries_at_once(make_settings, redis_server, event_count):
    settings = make_settings()  # claim idle: the default, 3 x SNOWFLAKE_TIMEOUT_SECONDS = 30 s
    assert settings.loader_claim_idle_ms == 30_000
    await _enqueue(settings, [f"6200{i}" for i in range(5)])
    r = redis_server.client()
    r.xgroup_create(settings.redis_stream, streams.LOADER_GROUP, id="0", mkstream=True)
    # What the previous incarnation had been delivered when it was killed, before its MERGE.
    delivered = r.xreadgroup(streams.LOADER_GROUP, "pod-a-1", {settings.redis_stream: ">"}, count=10)
    assert len(delivered[0][1]) == 5
    stop = asyncio.Event()
    client = make_client(settings, block_ms=settings.loader_block_ms)
    sink = SnowflakeSink(settings)
    task = asyncio.create_task(Loader(settings, client, sink, Metrics(), consumer="pod-a-1").run(stop))
    started = time.monotonic()
    try:
        await _wait(lambda: event_count(settings) >= 5, 10, "the pending entries loaded (claim idle is 30 s)")
        took = time.monotonic() - started
        await _wait(lambda: r.xpending(settings.redis_stream, streams.LOADER_GROUP)["pending"] == 0, 10, "acks")
    finally:
        stop.set()
        await task
        sink.close()
        await client.aclose()
    assert took < 10
    wait_for(lambda: r.xlen(settings.redis_stream) == 0, 5, what="entries deleted after the ack")
