"""Snowflake unavailable → ingest keeps accepting, nothing is lost or doubled, everything loads once
it is back. Two faults: the Snowflake server (fakesnow, its data on disk) stopped for 30 s under a
steady webhook load, then started again; and a network cut between the loader process and the server
(a TCP proxy that refuses and aborts connections)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import snowflake.connector

from tests.support.app import AppProcess, wait_rows
from tests.support.gong import call_payload
from tests.support.load import WebhookLoad, app_ready, assert_exactly_once, assert_no_data_errors, metric, wait_loaded
from tests.support.net import free_port, wait_port
from tests.support.servers import TcpProxy
from tests.support.waiting import wait_for

OUTAGE_SECONDS = 30
TRANSIENT_ERRORS = 'gong_webhook_snowflake_errors_total{kind="transient"}'


class FakesnowOnDisk:
    """A fakesnow server whose databases live in files (fakesnow_on_disk.py): it can be stopped and
    started again on the same port with its committed rows intact, as a real warehouse would be."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        (workdir / "db").mkdir(parents=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with open(self.workdir / "fakesnow.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("fakesnow_on_disk.py")), str(self.port),
                 str(self.workdir / "db")], stdout=log, stderr=subprocess.STDOUT,
            )
        wait_port(self.port, 60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        conn = snowflake.connector.connect(
            host="localhost", port=self.port, protocol="http", account="test", user="test", password="test",
            login_timeout=10, network_timeout=10,
        )
        try:
            cur = conn.cursor()
            try:
                cur.execute(sql)
            except snowflake.connector.errors.ProgrammingError as exc:
                if "does not exist" in str(exc):
                    return []  # the loader has not created its table yet
                raise
            return list(cur.fetchall())
        finally:
            conn.close()


def test_snowflake_server_down_30s_under_load_loses_nothing(app_env, make_settings, signer, redis_server, tmp_path):
    warehouse = FakesnowOnDisk(tmp_path / "snowflake")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**app_env, "HOST": "127.0.0.1", "PORT": str(port), "SNOWFLAKE_PORT": str(warehouse.port),
           "SNOWFLAKE_TIMEOUT_SECONDS": "3", "LOADER_BATCH_SIZE": "50"}
    settings = make_settings(SNOWFLAKE_PORT=str(warehouse.port))
    r = redis_server.client()
    app = AppProcess("gong-webhook-app", env, log=tmp_path / "app.log")
    try:
        warehouse.query("CREATE DATABASE IF NOT EXISTS SOPHIA_AI")
        wait_for(lambda: app_ready(base), 30, 0.1, "app ready")
        with WebhookLoad(base, signer, prefix="6", threads=2, rate=25) as load:
            wait_loaded(warehouse.query, settings, 40, timeout=60)
            warehouse.stop()
            down_at = time.monotonic()
            # The loader notices, holds its batch and retries; ingest is not affected at all.
            wait_for(lambda: metric(base, TRANSIENT_ERRORS) >= 1, OUTAGE_SECONDS, 0.2, "the loader to hit the outage")
            time.sleep(max(0.0, down_at + OUTAGE_SECONDS - time.monotonic()))
            backlog = r.xlen(settings.redis_stream)
            errors_during_outage = metric(base, TRANSIENT_ERRORS)
            warehouse.start()
            outage = time.monotonic() - down_at
            time.sleep(3)
        assert load.count_failed() == 0, dict(load.statuses)
        sent = load.sent
        wait_loaded(warehouse.query, settings, len(sent), timeout=90)
        wait_for(lambda: r.xlen(settings.redis_stream) == 0, 30, 0.2, "stream drained")
        assert_exactly_once(warehouse.query, settings, sent)
        assert_no_data_errors([base])
        assert r.xpending(settings.redis_stream, "snowflake-loader")["pending"] == 0
        assert r.xlen(f"{settings.redis_stream}:dlq") == 0
    finally:
        assert app.stop() in (0, -signal.SIGTERM), app.output()[-3000:]
        warehouse.stop()
    assert outage >= OUTAGE_SECONDS
    # About 30 s of webhooks at 25/s built up in Redis and were held, not dropped or dead-lettered.
    assert backlog >= OUTAGE_SECONDS * 25 * 0.5, backlog
    assert errors_during_outage >= 2
    print(f"outage {outage:.1f} s, backlog at its end {backlog}, transient errors {errors_during_outage:.0f}, "
          f"total events {len(sent)}")


def test_network_cut_to_snowflake_loses_nothing(
    app_env, make_settings, start_app, signer, redis_server, fakesnow_server, event_count, sf_query, tmp_path
):
    proxy = TcpProxy(fakesnow_server.port)
    metrics_port = free_port()
    env = {**app_env, "SNOWFLAKE_PORT": str(proxy.port), "SNOWFLAKE_TIMEOUT_SECONDS": "3",
           "LOADER_BATCH_SIZE": "20", "LOADER_METRICS_PORT": str(metrics_port)}
    settings = make_settings()
    ingest = start_app(settings, run_loader=False)
    loader = AppProcess("gong-webhook-loader", env, ["run"], log=tmp_path / "loader.log")
    try:
        for i in range(10):
            assert ingest.post(*signer.signed(call_payload(f"100{i}"))).status_code == 202
        wait_rows(event_count, settings, 10, timeout=30)

        proxy.down()
        for i in range(40):
            assert ingest.post(*signer.signed(call_payload(f"200{i}"))).status_code == 202
        r = redis_server.client()

        def transient_errors() -> float:
            try:
                text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
            except httpx.HTTPError:
                return 0.0
            for line in text.splitlines():
                if line.startswith('gong_webhook_snowflake_errors_total{kind="transient"}'):
                    return float(line.split()[-1])
            return 0.0

        # The loader has noticed the outage and is holding its batch, not dropping or dead-lettering it.
        wait_for(lambda: transient_errors() >= 1, 30, 0.2, "the loader to hit the outage")
        time.sleep(2)
        assert event_count(settings) == 10
        assert r.xlen(settings.redis_stream) == 40
        assert r.xlen(f"{settings.redis_stream}:dlq") == 0

        proxy.up()
        wait_rows(event_count, settings, 50, timeout=60)
        wait_for(lambda: r.xlen(settings.redis_stream) == 0, 10, what="stream drained")
        assert_no_data_errors([f"http://127.0.0.1:{metrics_port}"])
    finally:
        assert loader.stop() == 0, loader.output()
        proxy.close()
    assert_no_data_errors(logs=[loader.output()])
    table = f"SOPHIA_AI.{settings.snowflake_schema}.GONG_WEBHOOK_EVENTS"
    assert sf_query(f"SELECT COUNT(*), COUNT(DISTINCT EVENT_ID), COUNT(DISTINCT CALL_ID) FROM {table}")[0] == (
        50, 50, 50)
    assert r.xlen(f"{settings.redis_stream}:dlq") == 0
