"""Must-show 7: two loader processes with enrichment on stay under the Gong API stand-in's rate
limit (a shared Redis token bucket), and every transcript lands in GONG_CALL_TRANSCRIPTS.
Also: 429 answers are honoured (Retry-After) by everyone sharing the bucket, and with
GONG_ENRICHMENT_EXTENSIVE the extensive call data lands in GONG_CALLS_EXTENSIVE once per call."""

from __future__ import annotations

import asyncio

import orjson

from tests.support.app import AppProcess
from tests.support.gong import call_payload
from tests.support.gong_api_standin import EXTENSIVE_PATH, GONG_ACCESS_KEY, GONG_ACCESS_SECRET, TRANSCRIPT_PATH
from tests.support.waiting import wait_for
from webhook_app import streams
from webhook_app.enrich.gong_client import GongClient
from webhook_app.enrich.rate_limit import RedisTokenBucket
from webhook_app.metrics import Metrics
from webhook_app.redis_conn import make_client
from webhook_app.snowflake_sink import ExtensiveRow, SnowflakeSink


def test_two_loaders_with_enrichment_respect_the_rate_limit(
    app_env, make_settings, start_app, signer, gong_standin, sf_query, event_count, tmp_path
):
    api, api_url = gong_standin(rate_per_second=4.0, burst=4)
    env = {
        **app_env, "GONG_ENRICHMENT_ENABLED": "true", "GONG_API_BASE_URL": api_url,
        "GONG_API_KEY": GONG_ACCESS_KEY, "GONG_API_SECRET": GONG_ACCESS_SECRET,
        "GONG_API_RATE_LIMIT": "3", "GONG_API_BURST_LIMIT": "3",
        # One call per request, so the number of requests (not their size) is what is limited.
        "GONG_ENRICHMENT_BATCH_SIZE": "1", "LOADER_BATCH_SIZE": "5",
    }
    settings = make_settings(**env)
    ingest = start_app(settings, run_loader=False)
    loaders = [AppProcess("gong-webhook-loader", env, ["run"], log=tmp_path / f"loader{i}.log") for i in range(2)]
    n = 16
    try:
        for i in range(n):
            assert ingest.post(*signer.signed(call_payload(f"8800{i:02d}"))).status_code == 202
        table = f"SOPHIA_AI.{settings.snowflake_schema}.GONG_CALL_TRANSCRIPTS"

        def transcripts() -> int:
            rows = sf_query(f"SELECT COUNT(*) FROM {table}")
            return int(rows[0][0]) if rows else 0

        wait_for(lambda: transcripts() >= n, 60, 0.25, "all transcripts")
    finally:
        for loader in loaders:
            assert loader.stop() == 0, loader.output()
    assert api.log.throttled == [], "a loader exceeded the Gong API rate limit"
    assert api.log.unauthorised == 0
    assert len(api.log.requests) == n
    span = api.log.requests[-1] - api.log.requests[0]
    assert span >= (n - 3) / 3 - 0.5  # burst 3, then 3/s: the bucket really paced the calls
    rows = sf_query(
        f"SELECT CALL_ID, TRANSCRIPT[0]:sentences[0]:text::string FROM {table} ORDER BY CALL_ID"
    )
    assert [r[0] for r in rows] == [f"8800{i:02d}" for i in range(n)]
    assert rows[0][1] == "Thanks for joining call 880000."
    assert event_count(settings) == n
    for loader in loaders:
        assert '"level":"ERROR"' not in loader.output()


async def test_429_retry_after_is_honoured_by_everyone_sharing_the_bucket(make_settings, gong_standin):
    api, api_url = gong_standin(rate_per_second=2.0, burst=2, page_size=3)
    settings = make_settings()
    client = make_client(settings)
    metrics = Metrics()
    # Deliberately looser than the stand-in, so Gong's 429 is what slows the clients down.
    bucket = RedisTokenBucket(client, f"{settings.redis_stream}:bucket", 50.0, 50)
    gongs = [GongClient(api_url, GONG_ACCESS_KEY, GONG_ACCESS_SECRET, bucket, metrics) for _ in range(3)]
    try:
        ids = [[f"{k}{i}" for i in range(7)] for k in range(3)]  # 7 ids, page size 3 → 3 pages each
        results = await asyncio.gather(*(g.transcripts(c) for g, c in zip(gongs, ids, strict=True)))
    finally:
        for g in gongs:
            await g.close()
        await client.aclose()
    for got, wanted in zip(results, ids, strict=True):
        assert sorted(got) == sorted(wanted)
    assert api.log.throttled, "the test needs at least one 429 to mean anything"
    throttled_metric = metrics.gong_api_throttled._value.get()
    assert throttled_metric == len(api.log.throttled)
    arrivals = sorted(api.log.requests + [t for t, _ in api.log.throttled])
    for t, wait in api.log.throttled:
        quiet_until = t + max(1, wait) - 0.1
        # Requests already in flight may land right after the 429; nothing new may follow until Retry-After.
        assert not [a for a in arrivals if t + 0.2 < a < quiet_until], (t, wait)


async def test_token_bucket_paces_calls(make_settings):
    settings = make_settings()
    client = make_client(settings)
    bucket = RedisTokenBucket(client, f"{settings.redis_stream}:bucket2", 10.0, 2)
    try:
        waits = [(await bucket.try_acquire()).wait for _ in range(3)]
    finally:
        await client.aclose()
    assert waits[0] == 0 and waits[1] == 0
    assert 0 < waits[2] <= 0.11  # third call must wait for one token at 10/s



def test_extensive_call_data_lands_once_per_call_through_the_loader(
    app_env, make_settings, start_app, signer, gong_standin, sf_query, event_count, redis_server
):
    api, api_url = gong_standin(rate_per_second=20.0, burst=20, page_size=2)  # 5 calls per request, 2 per page: paging
    settings = make_settings(**{
        **app_env, "GONG_ENRICHMENT_ENABLED": "true", "GONG_ENRICHMENT_EXTENSIVE": "true",
        "GONG_API_BASE_URL": api_url, "GONG_API_KEY": GONG_ACCESS_KEY, "GONG_API_SECRET": GONG_ACCESS_SECRET,
        "GONG_API_RATE_LIMIT": "20", "GONG_API_BURST_LIMIT": "20", "GONG_ENRICHMENT_BATCH_SIZE": "5",
    })
    app = start_app(settings)  # ingest + in-process loader + enricher
    ids = [f"5500{i:02d}" for i in range(7)]
    table = f"SOPHIA_AI.{settings.snowflake_schema}.GONG_CALLS_EXTENSIVE"

    def rows() -> int:
        got = sf_query(f"SELECT COUNT(*) FROM {table}")
        return int(got[0][0]) if got else 0

    for call_id in ids:
        assert app.post(*signer.signed(call_payload(call_id))).status_code == 202
    wait_for(lambda: rows() >= len(ids), 30, 0.25, "extensive call data")
    loaded = sf_query(
        f"SELECT CALL_ID, DATA:metaData.id::string, DATA:parties[1].affiliation::string, "
        f"DATA:content.topics[0].name::string, FETCHED_AT FROM {table} ORDER BY CALL_ID"
    )
    assert [r[0] for r in loaded] == ids
    assert all(r[1] == r[0] and r[2] == "External" and r[3] == "Pricing" for r in loaded)
    extensive_bodies = [b for b, e in zip(api.log.bodies, api.log.endpoints, strict=True) if e == EXTENSIVE_PATH]
    assert all(b["contentSelector"]["exposedFields"]["parties"] is True for b in extensive_bodies)
    assert any(b.get("cursor") for b in extensive_bodies), "the test needs a second page to mean anything"
    assert api.log.endpoints.count(TRANSCRIPT_PATH) == api.log.endpoints.count(EXTENSIVE_PATH)
    assert event_count(settings) == len(ids)

    # Enriching the same calls again (a redelivery, a replay) replaces their rows, never adds one.
    rc = redis_server.client()
    enrich = streams.enrich_stream(settings.redis_stream)
    loaded_before = app.metrics.extensive_calls_loaded._value.get()
    for call_id in ids:
        rc.xadd(enrich, {"call_id": call_id})
    wait_for(lambda: app.metrics.extensive_calls_loaded._value.get() >= loaded_before + len(ids), 30, 0.2,
             "the second fetch")
    wait_for(lambda: rc.xlen(enrich) == 0, 10, 0.1, "the second fetch acknowledged")
    again = sf_query(f"SELECT CALL_ID, FETCHED_AT FROM {table} ORDER BY CALL_ID")
    assert [r[0] for r in again] == ids
    assert all(new[1] > old[4] for new, old in zip(again, loaded, strict=True))

    sink = SnowflakeSink(settings)
    try:
        same = [ExtensiveRow(call_id, "2026-11-03T00:00:00+00:00", orjson.dumps({"metaData": {"id": call_id}}).decode())
                for call_id in ids[:3]]
        assert sink.merge_extensive(same) == 3
        assert sink.merge_extensive(same) == 3
    finally:
        sink.close()
    counts = sf_query(f"SELECT COUNT(*), COUNT(DISTINCT CALL_ID) FROM {table}")
    assert counts[0] == (len(ids), len(ids))
    replaced = sf_query(f"SELECT COUNT(*) FROM {table} WHERE DATA:parties IS NULL")
    assert replaced[0][0] == 3  # the later document replaced the earlier one
