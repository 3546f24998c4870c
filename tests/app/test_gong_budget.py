"""Gong's API limit is per company: about 3 calls/s and 10,000 calls/day. The daily budget is a
counter in Redis, checked and taken in the same Lua script as the per-second token bucket, so
processes sharing it can never together exceed it. When it is spent nothing is sent and nothing is
lost: the enrichment entries wait in the `:enrich` stream until the next day starts.

The day boundary is moved close (GONG_API_DAY_START_SECONDS, keyed by Redis' own clock) instead of
waiting a day; Redis is real, its clock is not touched."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from tests.support.app import AppProcess
from tests.support.gong import call_payload
from tests.support.gong_api_standin import GONG_ACCESS_KEY, GONG_ACCESS_SECRET, TRANSCRIPT_PATH
from tests.support.net import free_port
from tests.support.waiting import wait_for
from webhook_app import streams
from webhook_app.enrich.enricher import Enricher
from webhook_app.enrich.gong_client import GongClient
from webhook_app.enrich.rate_limit import AcquireInterrupted, DailyBudget, RedisTokenBucket
from webhook_app.metrics import Metrics
from webhook_app.redis_conn import make_client
from webhook_app.settings import AppSettings
from webhook_app.snowflake_sink import SnowflakeSink

DAY = 86_400
BUDGET_WARNING = "Gong API daily budget spent, enrichment waits for the next day"


def _redis_now(redis_server: Any) -> float:
    seconds, micros = redis_server.client().time()
    return float(seconds) + micros / 1e6


def _day_start_for_boundary_in(redis_server: Any, seconds: int) -> tuple[int, float]:
    """GONG_API_DAY_START_SECONDS that puts the next day start `seconds` (±1) from now by Redis'
    clock, and that boundary as a Redis timestamp."""
    now = int(_redis_now(redis_server))
    return (now + seconds) % DAY, float(now + seconds)


def _enrich_env(app_env: dict[str, str], api_url: str, **extra: str) -> dict[str, str]:
    return {
        **app_env, "GONG_ENRICHMENT_ENABLED": "true", "GONG_API_BASE_URL": api_url,
        "GONG_API_KEY": GONG_ACCESS_KEY, "GONG_API_SECRET": GONG_ACCESS_SECRET,
        "GONG_API_RATE_LIMIT": "50", "GONG_API_BURST_LIMIT": "50",
        # One call per request, so the number of requests equals the number of calls enriched.
        "GONG_ENRICHMENT_BATCH_SIZE": "1", **extra,
    }


def _waiting(rc: Any, stream: str) -> set[str]:
    return {fields[b"call_id"].decode() for _, fields in rc.xrange(stream)}


def _scrape(port: int, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} missing"
    return float(match.group(1))


def test_two_loader_processes_never_exceed_the_shared_daily_budget(
    app_env, make_settings, start_app, signer, gong_standin, sf_query, event_count, redis_server, tmp_path
):
    api, api_url = gong_standin(rate_per_second=50, burst=50)
    day_start, _ = _day_start_for_boundary_in(redis_server, DAY // 2)  # the next day is 12 h away
    # Loaders must not take over each other's event batches here: a redelivered event queues its
    # call id for enrichment a second time, which would blur the count of waiting entries.
    env = _enrich_env(app_env, api_url, GONG_API_DAILY_LIMIT="5", GONG_API_DAY_START_SECONDS=str(day_start),
                      LOADER_BATCH_SIZE="3", LOADER_CLAIM_IDLE_MS="60000")
    settings = make_settings(**env)
    ingest = start_app(settings, run_loader=False)
    ports = [free_port(), free_port()]
    loaders = [
        AppProcess("gong-webhook-loader", {**env, "LOADER_METRICS_PORT": str(port)}, ["run"],
                   log=tmp_path / f"loader{i}.log")
        for i, port in enumerate(ports)
    ]
    enrich = streams.enrich_stream(settings.redis_stream)
    rc = redis_server.client()
    table = f"SOPHIA_AI.{settings.snowflake_schema}.GONG_CALL_TRANSCRIPTS"

    def transcripts() -> int:
        rows = sf_query(f"SELECT COUNT(*) FROM {table}")
        return int(rows[0][0]) if rows else 0

    n = 9
    ids = {f"7700{i:02d}" for i in range(n)}
    for call_id in sorted(ids):
        assert ingest.post(*signer.signed(call_payload(call_id))).status_code == 202
    wait_for(lambda: event_count(settings) == n, 30, 0.2, "every event loaded")
    wait_for(lambda: len(api.log.requests) >= 5, 30, 0.1, "the day's five requests")
    # Each loader now holds one entry it may not fetch today; the other entries were never delivered.
    wait_for(lambda: rc.xpending(enrich, streams.ENRICH_GROUP)["pending"] == 2, 20, 0.1, "both loaders waiting")
    wait_for(lambda: all(BUDGET_WARNING in p.output() for p in loaders), 10, 0.1, "the budget warning")
    wait_for(lambda: transcripts() == 5, 20, 0.2, "five transcripts")
    time.sleep(2.0)  # time enough for a leak past the budget to show

    assert len(api.log.requests) == 5, "the loaders together exceeded the daily budget"
    assert api.log.throttled == [] and api.log.unauthorised == 0
    assert set(api.log.endpoints) == {TRANSCRIPT_PATH}
    assert rc.xlen(enrich) == n - 5, "entries waiting for the next day must stay in the enrich stream"
    fetched = {r[0] for r in sf_query(f"SELECT CALL_ID FROM {table}")}
    assert len(fetched) == 5 and fetched | _waiting(rc, enrich) == ids  # every call either fetched or waiting
    assert int(rc.hget(streams.daily_budget_key(settings.redis_stream), "used")) == 5
    for port in ports:
        assert _scrape(port, "gong_webhook_gong_api_daily_budget_remaining") == 0
        assert _scrape(port, "gong_webhook_gong_api_budget_deferrals_total") == 1
    for loader in loaders:
        assert loader.output().count(BUDGET_WARNING) == 1, loader.output()

    # Waiting for the next day must not hold up a shutdown, and it acknowledges nothing.
    started = time.monotonic()
    for loader in loaders:
        assert loader.stop() == 0, loader.output()
    assert time.monotonic() - started < 15
    assert rc.xlen(enrich) == n - 5 and fetched | _waiting(rc, enrich) == ids
    assert transcripts() == 5 and event_count(settings) == n
    for loader in loaders:
        assert '"level":"ERROR"' not in loader.output()


async def _until(predicate: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


async def test_waiting_entries_are_fetched_when_the_next_day_starts(
    make_settings, gong_standin, redis_server, sf_query, caplog
):
    api, api_url = gong_standin(rate_per_second=50, burst=50)
    day_start, boundary = _day_start_for_boundary_in(redis_server, 6)
    settings: AppSettings = make_settings(**_enrich_env(
        {}, api_url, GONG_API_DAILY_LIMIT="3", GONG_API_DAY_START_SECONDS=str(day_start),
    ))
    enrich = streams.enrich_stream(settings.redis_stream)
    rc = redis_server.client()
    rc.xgroup_create(enrich, streams.ENRICH_GROUP, id="0", mkstream=True)
    n = 8
    for i in range(n):
        rc.xadd(enrich, {"call_id": f"6600{i:02d}"})

    stop = asyncio.Event()
    clients: list[aioredis.Redis] = []
    gongs: list[GongClient] = []
    sinks: list[SnowflakeSink] = []
    metrics: list[Metrics] = []
    enrichers: list[Enricher] = []
    for k in range(2):  # two enrichers, each with its own connection, bucket, client and sink
        client = make_client(settings, block_ms=settings.loader_block_ms)
        m = Metrics()
        bucket = RedisTokenBucket(
            client, streams.rate_limit_key(settings.redis_stream), 50.0, 50,
            DailyBudget(streams.daily_budget_key(settings.redis_stream), 3, day_start),
        )
        gong = GongClient(api_url, GONG_ACCESS_KEY, GONG_ACCESS_SECRET, bucket, m, stop=stop)
        sink = SnowflakeSink(settings)
        await asyncio.to_thread(sink.migrate)  # one after the other: the schema is new
        clients.append(client)
        gongs.append(gong)
        sinks.append(sink)
        metrics.append(m)
        enrichers.append(Enricher(settings, client, gong, sink, m, consumer=f"enricher-{k}"))
    tasks = [asyncio.create_task(e.run(stop)) for e in enrichers]
    caplog.set_level(logging.INFO, logger="webhook_app.enrich")
    try:
        await _until(lambda: len(api.log.requests) == 3 and rc.xlen(enrich) == n - 3, 5, "the first day's budget")
        await _until(lambda: all(m.gong_api_budget_deferrals._value.get() == 1 for m in metrics), 3, "both waiting")
        assert _redis_now(redis_server) < boundary - 0.3, "machine too slow: the first day ended before it was checked"
        assert [m.gong_api_daily_budget_remaining._value.get() for m in metrics] == [0, 0]
        first_day_requests = len(api.log.requests)
        boundary_mono = time.monotonic() + (boundary - _redis_now(redis_server))

        await _until(lambda: len(api.log.requests) == 6 and rc.xlen(enrich) == n - 6, 15, "the second day's budget")
        await _until(lambda: all(m.gong_api_budget_deferrals._value.get() == 2 for m in metrics), 3, "waiting again")
        assert first_day_requests == 3, "more requests than the first day's budget"
        assert min(api.log.requests[3:]) >= boundary_mono - 0.2, "a request was sent before the next day started"
        await asyncio.sleep(0.5)
        assert len(api.log.requests) == 6

        started = time.monotonic()
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        assert time.monotonic() - started < 2, "waiting for the budget did not end on stop"
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for gong in gongs:
            await gong.close()
        for client in clients:
            await client.aclose()
        for sink in sinks:
            await asyncio.to_thread(sink.close)

    assert rc.xlen(enrich) == n - 6 and rc.xpending(enrich, streams.ENRICH_GROUP)["pending"] == 2
    rows = sf_query(f"SELECT CALL_ID FROM SOPHIA_AI.{settings.snowflake_schema}.GONG_CALL_TRANSCRIPTS ORDER BY 1")
    assert len(rows) == 6 and len({r[0] for r in rows}) == 6
    warnings = [r for r in caplog.records if r.getMessage() == BUDGET_WARNING]
    assert len(warnings) == 4  # once per enricher and day, not once per attempt or batch
    assert all(r.levelno == logging.WARNING for r in warnings)


async def test_concurrent_clients_take_exactly_the_daily_budget(make_settings, redis_server):
    settings = make_settings()
    key = streams.daily_budget_key(settings.redis_stream)
    clients = [make_client(settings) for _ in range(4)]
    buckets = [
        RedisTokenBucket(c, f"{settings.redis_stream}:bucket", 10_000.0, 10_000, DailyBudget(key, 7)) for c in clients
    ]
    try:
        attempts = await asyncio.gather(*(b.try_acquire() for b in buckets for _ in range(25)))
    finally:
        for c in clients:
            await c.aclose()
    granted = [a for a in attempts if not a.budget_exhausted and a.wait == 0]
    refused = [a for a in attempts if a.budget_exhausted]
    assert len(granted) == 7 and len(refused) == 100 - 7
    assert sorted(a.remaining for a in granted) == [0, 1, 2, 3, 4, 5, 6]
    seconds_to_midnight = DAY - _redis_now(redis_server) % DAY
    assert all(abs(a.wait - seconds_to_midnight) < 5 for a in refused)  # default day: 00:00 UTC
    assert int(redis_server.client().hget(key, "used")) == 7


async def test_gong_daily_quota_429_penalises_everyone_and_stop_ends_the_wait(
    make_settings, gong_standin, redis_server
):
    day_start, _ = _day_start_for_boundary_in(redis_server, 3600)
    api, api_url = gong_standin(rate_per_second=50, burst=50, daily_limit=2, day_start_seconds=day_start)
    auth = (GONG_ACCESS_KEY, GONG_ACCESS_SECRET)
    async with httpx.AsyncClient(base_url=api_url, auth=auth) as http:
        answers = [await http.post(TRANSCRIPT_PATH, json={"filter": {"callIds": ["1"]}}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert 3590 <= int(answers[2].headers["Retry-After"]) <= 3602
    assert api.log.over_daily_quota == 1

    settings = make_settings()
    client = make_client(settings)
    stop = asyncio.Event()
    metrics = Metrics()
    # Our own budget is far larger: Gong's 429 (other integrations spent the company's quota) is what stops us.
    bucket = RedisTokenBucket(client, f"{settings.redis_stream}:bucket", 50.0, 50,
                              DailyBudget(f"{settings.redis_stream}:daily", 1000))
    gong = GongClient(api_url, GONG_ACCESS_KEY, GONG_ACCESS_SECRET, bucket, metrics, stop=stop)
    other = RedisTokenBucket(client, f"{settings.redis_stream}:bucket", 50.0, 50)
    try:
        fetch = asyncio.create_task(gong.transcripts(["42"]))
        await _until(lambda: api.log.over_daily_quota == 2, 5, "the 429")
        await asyncio.sleep(0.3)
        penalty = await other.try_acquire()  # another process sharing the bucket
        started = time.monotonic()
        stop.set()
        with pytest.raises(AcquireInterrupted):
            await asyncio.wait_for(fetch, 5)
        assert time.monotonic() - started < 1
    finally:
        await gong.close()
        await client.aclose()
    assert 290 <= penalty.wait <= 300  # Retry-After of an hour, capped at MAX_RETRY_AFTER
    assert api.log.over_daily_quota == 2 and len(api.log.requests) == 2  # no request after the 429
    assert metrics.gong_api_throttled._value.get() == 1
