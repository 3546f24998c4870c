"""The loader runs no DDL (issue 10 #3): `gong-webhook-loader migrate` (the admin's step) creates
schema and tables; the loader checks at connect that its tables exist and, if not, pauses loading
and says so (ERROR log, gauge, /ready detail) instead of retrying DDL its role may not be allowed.

What Snowflake receives is observed through SnowflakeSpy, an HTTP proxy in front of fakesnow that
records every statement the connector sends."""

from __future__ import annotations

import logging

import httpx
from snowflake.connector import errors as sf_errors

from tests.support.app import migrate, wait_rows
from tests.support.gong import call_payload
from tests.support.snowflake_spy import DDL
from tests.support.waiting import wait_for
from webhook_app.loader import loader as loader_module
from webhook_app.snowflake_sink import MissingTables, SnowflakeSink


def _ready(app) -> dict:
    response = app.client.get("/ready")
    assert response.status_code == 200, response.text
    return response.json()


def _sample(app, name: str) -> float:
    for line in app.client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported")


def test_loader_sends_no_ddl_against_an_existing_schema(make_settings, snowflake_spy, start_app, signer, event_count):
    make_settings()  # migrated straight against fakesnow, before the spy starts to listen
    settings = make_settings(migrate_schema=False, SNOWFLAKE_PORT=str(snowflake_spy.port))
    app = start_app(settings)
    for i in range(5):
        assert app.post(*signer.signed(call_payload(f"5100{i}"))).status_code == 202
    wait_rows(event_count, settings, 5)
    app.stop()
    sent = snowflake_spy.sql()
    assert snowflake_spy.ddl() == []
    assert any("INFORMATION_SCHEMA.TABLES" in s for s in sent), sent
    assert snowflake_spy.merges(), sent


def test_migrate_creates_what_is_missing_and_a_rerun_sends_no_ddl(make_settings, snowflake_spy, sf_query):
    settings = make_settings(migrate_schema=False, SNOWFLAKE_PORT=str(snowflake_spy.port))
    created = migrate(settings)
    first_run = snowflake_spy.ddl()
    before = len(snowflake_spy.statements)
    # On an existing schema nothing needs a CREATE privilege (Snowflake checks CREATE SCHEMA even
    # for CREATE SCHEMA IF NOT EXISTS on an existing schema).
    rerun_created = migrate(settings)
    rerun = [s.sql for s in snowflake_spy.statements[before:]]
    assert rerun and [s for s in rerun if DDL.match(s)] == []
    assert rerun_created == []
    schema = f"SOPHIA_AI.{settings.snowflake_schema}"
    # (fakesnow creates the schema named at login, so CREATE SCHEMA is not needed here; on Snowflake
    # migrate sends it when INFORMATION_SCHEMA.SCHEMATA does not list the schema.)
    assert created[-3:] == [f"{schema}.GONG_WEBHOOK_EVENTS", f"{schema}.GONG_CALL_TRANSCRIPTS",
                            f"{schema}.GONG_CALLS_EXTENSIVE"]
    assert len(first_run) == len(created)
    assert sf_query(f"SELECT COUNT(*) FROM {schema}.GONG_WEBHOOK_EVENTS") == [(0,)]


def test_missing_tables_pause_loading_and_are_reported(
    make_settings, start_app, signer, redis_server, event_count, sf_query, caplog, monkeypatch
):
    monkeypatch.setattr(loader_module, "SCHEMA_RECHECK_SECONDS", 0.3, raising=False)
    settings = make_settings(migrate_schema=False)
    r = redis_server.client()
    with caplog.at_level(logging.INFO, logger="webhook_app"):
        app = start_app(settings)
        assert app.post(*signer.signed(call_payload("52001"))).status_code == 202
        wait_for(lambda: _ready(app).get("snowflake_missing_tables") == ["GONG_WEBHOOK_EVENTS"], 20,
                 what="the missing table on /ready")
        assert _sample(app, "gong_webhook_snowflake_missing_tables") == 1.0
        errors = [rec for rec in caplog.records if rec.getMessage() == "snowflake tables missing, loading paused"]
        assert errors and errors[0].levelno == logging.ERROR
        assert "gong-webhook-loader migrate" in errors[0].__dict__["error"]
        # Nothing was taken from the stream, so nothing drifts towards the dead-letter stream.
        assert r.xlen(settings.redis_stream) == 1
        assert r.xpending(settings.redis_stream, "snowflake-loader")["pending"] == 0
        assert _sample(app, 'gong_webhook_snowflake_errors_total{kind="data"}') == 0.0

        migrate(settings)
        wait_rows(event_count, settings, 1)
        wait_for(lambda: _ready(app).get("snowflake_missing_tables") == [], 10, what="/ready clear again")
        assert _sample(app, "gong_webhook_snowflake_missing_tables") == 0.0
        assert any(rec.getMessage() == "snowflake tables present, loading resumes" for rec in caplog.records)

        # Dropped while running: the batch is held (not bisected into the DLQ) until it is back.
        table = f"SOPHIA_AI.{settings.snowflake_schema}.GONG_WEBHOOK_EVENTS"
        sf_query(f"DROP TABLE {table}")
        assert app.post(*signer.signed(call_payload("52002"))).status_code == 202
        wait_for(lambda: _ready(app).get("snowflake_missing_tables") == ["GONG_WEBHOOK_EVENTS"], 20,
                 what="the dropped table on /ready")
        assert r.xlen(f"{settings.redis_stream}:dlq") == 0
        migrate(settings)
        wait_rows(event_count, settings, 1)
        wait_for(lambda: r.xlen(settings.redis_stream) == 0, 20, what="the held event loaded and acknowledged")
        assert sf_query(f"SELECT CALL_ID FROM {table}") == [("52002",)]
        assert _sample(app, 'gong_webhook_snowflake_errors_total{kind="data"}') == 0.0
        assert r.xlen(f"{settings.redis_stream}:dlq") == 0


def test_ready_reports_tables_a_standalone_loader_found_missing(make_settings, start_app, redis_server):
    """/ready reads the report from Redis, so it also shows what a separate gong-webhook-loader found."""
    settings = make_settings(migrate_schema=False)
    app = start_app(settings, run_loader=False)
    assert _ready(app)["snowflake_missing_tables"] == []
    redis_server.client().set(f"{settings.redis_stream}:snowflake-status",
                              b'{"missing_tables":["GONG_CALL_TRANSCRIPTS"],"consumer":"x"}', ex=60)
    body = httpx.get(app.url + "/ready").json()
    assert body["status"] == "ready" and body["snowflake_missing_tables"] == ["GONG_CALL_TRANSCRIPTS"]


def test_a_missing_database_is_reported_as_missing_tables(make_settings):
    """Snowflake answers 002003 "Database ... does not exist or not authorized" to the table check when
    the role cannot use the database: not transient either, so it counts as every table missing
    instead of being retried as an outage. (fakesnow creates the database named at login, so it
    cannot produce this answer; the cursor below gives the connector's own error object.)"""

    class RefusingCursor:
        def execute(self, sql: str, params: object = None) -> None:
            raise sf_errors.ProgrammingError(
                msg="Database 'NO_SUCH_DB' does not exist or not authorized.", errno=2003, sqlstate="02000")

    settings = make_settings(migrate_schema=False, SNOWFLAKE_DATABASE="NO_SUCH_DB")
    sink = SnowflakeSink(settings)
    assert sink._missing_tables(RefusingCursor(), ["GONG_WEBHOOK_EVENTS"]) == ["GONG_WEBHOOK_EVENTS"]
    err = MissingTables("NO_SUCH_DB.GONG_WEBHOOKS", ["GONG_WEBHOOK_EVENTS"])
    assert err.transient is False and "gong-webhook-loader migrate" in str(err)


def test_a_statement_timeout_holds_the_batch_instead_of_blaming_the_rows():
    """The loader sets STATEMENT_TIMEOUT_IN_SECONDS / STATEMENT_QUEUED_TIMEOUT_IN_SECONDS; Snowflake's
    cancellation (000630) is about the warehouse, so it is transient: held and retried, never bisected
    into the dead-letter stream."""
    from webhook_app.snowflake_sink import _classify

    err = sf_errors.ProgrammingError(
        msg="Statement reached its statement or warehouse timeout of 60 second(s) and was canceled.",
        errno=630, sqlstate="57014")
    assert _classify(err).transient is True
    refused = sf_errors.ProgrammingError(msg="Numeric value 'x' is not recognized", errno=100038, sqlstate="22018")
    assert _classify(refused).transient is False
