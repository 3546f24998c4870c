"""Must-show 5: Snowflake unreachable for a while → ingest keeps accepting, nothing is lost,
everything loads once it is back. The outage is a real network cut between the loader process
and the fakesnow server (a TCP proxy that refuses and aborts connections)."""

from __future__ import annotations

import time

import httpx

from tests.app.app_support import AppProcess, TcpProxy, free_port, wait_for, wait_rows
from webhook_app.testing.gong_sim import call_payload


def test_snowflake_outage_loses_nothing(
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
    finally:
        assert loader.stop() == 0, loader.output()
        proxy.close()
    table = f"SOPHIA_AI.{settings.snowflake_schema}.GONG_WEBHOOK_EVENTS"
    assert sf_query(f"SELECT COUNT(*), COUNT(DISTINCT CALL_ID) FROM {table}")[0] == (50, 50)
    assert r.xlen(f"{settings.redis_stream}:dlq") == 0
