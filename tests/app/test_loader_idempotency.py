"""Exactly-once at the Snowflake end, independent of Redis dedup: a redelivered or re-added
entry (dedup marker expired, DLQ replay of an already-loaded event) matches by EVENT_ID and
inserts nothing; duplicates inside one batch are collapsed before the MERGE.

The tables have no enforced key, as on Snowflake (a PRIMARY KEY there is informational only), so a
duplicate the loader sent would show up as a second row here instead of a constraint error that the
loader's bisection absorbs; and no statement may have been refused (data errors counted 0)."""

from __future__ import annotations

import subprocess

from tests.support.app import wait_rows
from tests.support.gong import call_payload
from tests.support.servers import VENV_BIN
from tests.support.waiting import wait_for


def test_re_added_entries_do_not_duplicate_rows(
    make_settings, start_app, signer, redis_server, event_count, assert_no_duplicates
):
    settings = make_settings()
    ingest = start_app(settings, run_loader=False)
    body, headers = signer.signed(call_payload("123123"))
    assert ingest.post(body, headers).status_code == 202
    r = redis_server.client()
    stream = settings.redis_stream
    (_, fields), = r.xrange(stream)
    # Two more copies of the same event in the same batch, bypassing the API's dedup.
    r.xadd(stream, fields)
    r.xadd(stream, fields)
    loader = start_app(settings, run_loader=True)
    wait_rows(event_count, settings, 1)
    wait_for(lambda: r.xlen(stream) == 0, 10, what="all three copies acknowledged")
    # And once more, in a later batch, after the first copy was committed.
    r.xadd(stream, fields)
    wait_for(lambda: r.xlen(stream) == 0, 10, what="late copy acknowledged")
    assert assert_no_duplicates(settings) == 1
    metrics = loader.client.get("/metrics").text
    assert "gong_webhook_loaded_events_total 4.0" in metrics
    assert 'gong_webhook_snowflake_errors_total{kind="data"} 0.0' in metrics


def test_migrate_subcommand_creates_tables_idempotently(app_env, make_settings, sf_query):
    settings = make_settings(migrate_schema=False)
    env = {**app_env, "PATH": "/usr/bin:/bin"}
    for _ in range(2):
        result = subprocess.run([str(VENV_BIN / "gong-webhook-loader"), "migrate"], env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    schema = f"SOPHIA_AI.{settings.snowflake_schema}"
    assert sf_query(f"SELECT COUNT(*) FROM {schema}.GONG_WEBHOOK_EVENTS") == [(0,)]
    assert sf_query(f"SELECT COUNT(*) FROM {schema}.GONG_CALL_TRANSCRIPTS") == [(0,)]
