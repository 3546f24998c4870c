"""Must-show 4: SIGKILL of the loader mid-batch, then a restart → every event exactly once."""

from __future__ import annotations

import asyncio
import time

import orjson
import redis

from tests.support.app import AppProcess
from tests.support.gong import call_payload
from tests.support.load import assert_no_data_errors
from tests.support.net import free_port
from tests.support.waiting import wait_for
from webhook_app.ingest.enqueue import Enqueuer, Event
from webhook_app.redis_conn import make_client

N = 400


async def _enqueue(settings, n: int) -> None:
    client = make_client(settings)
    enq = Enqueuer(client, settings.redis_stream, settings.dedup_ttl_seconds)
    for i in range(n):
        call_id = f"{i:06d}"
        assert await enq.enqueue(Event(
            settings.event_id(call_id), call_id, False, "2026-11-28T10:00:00+00:00", "rid",
            orjson.dumps(call_payload(call_id)),
        ))
    await client.aclose()


def test_sigkill_mid_batch_then_restart_loads_each_event_once(
    app_env, make_settings, redis_server, sf_query, event_count, tmp_path
):
    settings = make_settings()

    # The events were accepted (same Lua enqueue the API uses) before any loader runs.
    asyncio.run(_enqueue(settings, N))
    # Claim idle just above the floor the loader accepts (2 x SNOWFLAKE_TIMEOUT_SECONDS): the restarted
    # loader runs under a new pid, i.e. a new consumer name, so it takes the batch over after that.
    metrics_port = free_port()
    env = {**app_env, "LOADER_BATCH_SIZE": "50", "SNOWFLAKE_TIMEOUT_SECONDS": "2", "LOADER_CLAIM_IDLE_MS": "4100"}
    r = redis_server.client()

    def pending() -> int:
        try:
            return int(r.xpending(settings.redis_stream, "snowflake-loader")["pending"])
        except redis.ResponseError:  # the loader has not created its group yet
            return 0

    # Kill as soon as some rows are committed and a batch is delivered but not acknowledged. The
    # check and the kill are not atomic, so an unlucky kill right after an ack is tried again.
    for attempt in range(5):
        first = AppProcess("gong-webhook-loader", env, ["run"], log=tmp_path / f"loader1-{attempt}.log")
        wait_for(lambda: event_count(settings) > 0 and pending() > 0, 60, 0.005,
                 "a loaded batch and a batch in flight")
        first.kill()
        if pending() > 0:
            break
    loaded_at_kill = event_count(settings)
    assert 0 < loaded_at_kill < N, first.output()
    assert pending() > 0

    second = AppProcess("gong-webhook-loader", {**env, "LOADER_METRICS_PORT": str(metrics_port)}, ["run"],
                        log=tmp_path / "loader2.log")
    try:
        wait_for(lambda: event_count(settings) >= N and r.xlen(settings.redis_stream) == 0, 90, 0.25,
                 "all events loaded after restart")
        time.sleep(1.0)
        assert_no_data_errors([f"http://127.0.0.1:{metrics_port}"])
    finally:
        second.stop()
    assert_no_data_errors(logs=[first.output(), second.output()])
    table = f"SOPHIA_AI.{settings.snowflake_schema}.GONG_WEBHOOK_EVENTS"
    total, distinct = sf_query(f"SELECT COUNT(*), COUNT(DISTINCT EVENT_ID) FROM {table}")[0]
    assert (total, distinct) == (N, N)
    assert r.xpending(settings.redis_stream, "snowflake-loader")["pending"] == 0
    assert r.xlen(f"{settings.redis_stream}:dlq") == 0
