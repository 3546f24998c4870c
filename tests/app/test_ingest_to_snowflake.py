"""Must-show 1 and 3: a signed webhook lands in Snowflake; duplicates land once."""

from __future__ import annotations

import concurrent.futures
import time

import httpx

from tests.support.app import wait_rows
from tests.support.gong import call_payload
from tests.support.waiting import wait_for


def test_signed_webhook_is_queryable_in_snowflake_within_5s(make_settings, start_app, signer, sf_query, redis_server):
    settings = make_settings()
    app = start_app(settings)
    body, headers = signer.signed(call_payload("7782342274025937895", title="Renewal with ACME"))

    sent = time.monotonic()
    response = app.post(body, headers)
    assert response.status_code == 202
    assert response.json() == {
        "status": "accepted", "callId": "7782342274025937895", "eventId": "sales/gong-prod/7782342274025937895",
    }

    table = f"SOPHIA_AI.{settings.snowflake_schema}.GONG_WEBHOOK_EVENTS"
    rows = wait_for(
        lambda: sf_query(
            f"SELECT PAYLOAD:callData.metaData.title::string, EVENT_ID, CALL_ID, IS_TEST, TITLE, "
            f"DURATION_SECONDS, PRIMARY_USER_ID, RECEIVED_AT, LOADED_AT FROM {table}"
        ),
        5.0, 0.1, "the row in Snowflake",
    )
    assert time.monotonic() - sent < 5.0
    title, event_id, call_id, is_test, typed_title, duration, user, received_at, loaded_at = rows[0]
    assert title == "Renewal with ACME" == typed_title
    assert (event_id, call_id, is_test) == ("sales/gong-prod/7782342274025937895", "7782342274025937895", False)
    assert isinstance(duration, int) and user
    assert received_at is not None and loaded_at is not None and loaded_at >= received_at
    # Loaded and acknowledged: the entry has left the stream and nothing is pending.
    r = redis_server.client()
    wait_for(lambda: r.xlen(settings.redis_stream) == 0, 5, what="stream drained")
    assert r.xpending(settings.redis_stream, "snowflake-loader")["pending"] == 0


def test_bearer_prefix_and_pem_key_are_accepted(make_settings, start_app, signer, gong_key):
    from tests.support.gong import public_key_pem

    settings = make_settings(GONG_WEBHOOK_PUBLIC_KEYS=public_key_pem(gong_key))
    app = start_app(settings, run_loader=False)
    body = b'{"callData": {"metaData": {"id": "42"}}, "isTest": true}'
    response = app.post(body, signer.headers(body, bearer=True))
    assert response.status_code == 202, response.text


def test_same_call_twice_gives_one_row(make_settings, start_app, signer, event_count, redis_server):
    settings = make_settings()
    app = start_app(settings)
    payload = call_payload("1111")
    first = app.post(*signer.signed(payload))
    # Gong re-sends a fresh token with the same body on a retry.
    second = app.post(*signer.signed(payload))
    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json()["status"] == "duplicate"
    other = app.post(*signer.signed(call_payload("2222")))
    assert other.status_code == 202
    wait_rows(event_count, settings, 2)
    time.sleep(1.0)  # give a wrongly enqueued copy the time to load too
    assert event_count(settings) == 2


def test_fifty_concurrent_duplicates_give_one_row(make_settings, start_app, signer, event_count, redis_server):
    settings = make_settings()
    app = start_app(settings)
    payload = call_payload("5050505050")
    requests = [signer.signed(payload) for _ in range(50)]

    def post(item):
        with httpx.Client(base_url=app.url, timeout=30) as client:
            return client.post("/webhooks/gong", content=item[0], headers=item[1]).status_code

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(post, requests))
    assert sorted(statuses) == [200] * 49 + [202]
    wait_rows(event_count, settings, 1)
    time.sleep(1.0)
    assert event_count(settings) == 1
    r = redis_server.client()
    assert r.xlen(settings.redis_stream) == 0  # the single entry was loaded and removed
