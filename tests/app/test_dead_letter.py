"""Must-show 6: a poison event goes to the DLQ after N tries while the others load; after a fix,
`gong-webhook-loader replay-dlq` brings it back and it loads.

The poison is real schema drift: the events table was created with DURATION_SECONDS NUMBER(4,0),
so Snowflake refuses the one call whose duration does not fit. The fix is the DBA's ALTER TABLE."""

from __future__ import annotations

import subprocess

from tests.support.app import wait_rows
from tests.support.gong import call_payload
from tests.support.servers import VENV_BIN
from tests.support.waiting import wait_for


def test_poison_event_is_dead_lettered_then_replayed(
    app_env, make_settings, start_app, signer, redis_server, sf_query, event_count
):
    # Claim idle just above the floor the loader accepts (2 x SNOWFLAKE_TIMEOUT_SECONDS), so the
    # redeliveries of the refused event come quickly.
    env = {**app_env, "LOADER_MAX_DELIVERIES": "3", "SNOWFLAKE_TIMEOUT_SECONDS": "2", "LOADER_CLAIM_IDLE_MS": "4100",
           "LOADER_BATCH_SIZE": "100"}
    settings = make_settings(migrate_schema=False, **env)
    schema = f"SOPHIA_AI.{settings.snowflake_schema}"
    table = f"{schema}.GONG_WEBHOOK_EVENTS"
    sf_query(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    sf_query(
        f"CREATE TABLE {table} (EVENT_ID VARCHAR NOT NULL, CALL_ID VARCHAR NOT NULL, "
        "EVENT_SCOPE VARCHAR, IS_TEST BOOLEAN, TITLE VARCHAR, STARTED TIMESTAMP_TZ, DURATION_SECONDS NUMBER(4,0), "
        "PRIMARY_USER_ID VARCHAR, STREAM_ENTRY_ID VARCHAR, RECEIVED_AT TIMESTAMP_TZ, LOADED_AT TIMESTAMP_TZ, "
        "PAYLOAD VARIANT)"
    )
    # Stop the in-process loader from starting before all events are queued, so the poison
    # shares a batch with good events (the case where a naive loader would block them all).
    ingest = start_app(settings, run_loader=False)
    for i in range(10):
        assert ingest.post(*signer.signed(call_payload(f"300{i}", duration=60))).status_code == 202
    assert ingest.post(*signer.signed(call_payload("666", duration=123456))).status_code == 202
    for i in range(10):
        assert ingest.post(*signer.signed(call_payload(f"400{i}", duration=90))).status_code == 202

    app = start_app(settings, run_loader=True)
    r = redis_server.client()
    dlq = f"{settings.redis_stream}:dlq"
    wait_rows(event_count, settings, 20)
    wait_for(lambda: r.xlen(dlq) == 1, 60, 0.1, "the poison event in the DLQ")
    assert event_count(settings) == 20
    assert sf_query(f"SELECT COUNT(*) FROM {table} WHERE CALL_ID = '666'")[0][0] == 0
    (_, fields), = r.xrange(dlq)
    assert fields[b"call_id"] == b"666"
    assert int(fields[b"dlq_deliveries"]) == 4  # delivered 3 times, dead-lettered on the 4th claim
    assert b"DURATION_SECONDS" in fields[b"dlq_error"] or b"DECIMAL" in fields[b"dlq_error"]
    assert r.xlen(settings.redis_stream) == 0
    metrics = app.client.get("/metrics").text
    assert "gong_webhook_dead_lettered_total 1.0" in metrics

    sf_query(f"ALTER TABLE {table} ALTER COLUMN DURATION_SECONDS SET DATA TYPE NUMBER(38,0)")
    replay = subprocess.run(
        [str(VENV_BIN / "gong-webhook-loader"), "replay-dlq"], env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout.strip() == "1"
    assert r.xlen(dlq) == 0
    wait_rows(event_count, settings, 21)
    assert sf_query(f"SELECT DURATION_SECONDS FROM {table} WHERE CALL_ID = '666'") == [(123456,)]
    assert event_count(settings) == 21
