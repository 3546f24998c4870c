"""Must-show 9: /metrics carries the promised series, and configured secret values never appear
in the log output of the real console script (url-key mode with enrichment, then JWT mode)."""

from __future__ import annotations

import re
import signal

import httpx
import orjson
import pytest

from tests.support.app import AppProcess, migrate
from tests.support.gong import call_payload
from tests.support.gong_api_standin import GongApiStandIn
from tests.support.net import free_port
from tests.support.servers import RedisServer
from tests.support.waiting import wait_for
from webhook_app.settings import load_settings

METRIC_NAMES = [
    "gong_webhook_http_requests_total",
    "gong_webhook_verification_failures_total",
    "gong_webhook_events_total",
    "gong_webhook_enqueue_seconds",
    "gong_webhook_stream_length",
    "gong_webhook_consumer_lag",
    "gong_webhook_pending_entries",
    "gong_webhook_dlq_depth",
    "gong_webhook_loader_batch_size",
    "gong_webhook_loader_batch_seconds",
    "gong_webhook_loaded_events_total",
    "gong_webhook_snowflake_errors_total",
    "gong_webhook_dead_lettered_total",
    "gong_webhook_gong_api_requests_total",
    "gong_webhook_gong_api_throttled_total",
    "gong_webhook_transcripts_loaded_total",
    "gong_webhook_extensive_calls_loaded_total",
    "gong_webhook_gong_api_daily_budget_remaining",
    "gong_webhook_gong_api_budget_deferrals_total",
]

URL_KEY = "url-key-Hq7vX2kP9mW4"
SECRETS = {
    "GONG_WEBHOOK_SECRETS": f"{URL_KEY},url-key-second-Zr5tY8",
    "SNOWFLAKE_PASSWORD": "snowflake-pw-Lk3jH6gF",
    "GONG_API_KEY": "gong-api-key-Tn4bV7cX",
    "GONG_API_SECRET": "gong-api-secret-Qs2wE5rT",
    "REDIS_PASSWORD": "redis-pw-Mn8bV1cZ",
}


@pytest.fixture
def password_redis(tmp_path):
    server = RedisServer(tmp_path / "redis-pw", password=SECRETS["REDIS_PASSWORD"])
    yield server
    server.stop()


def _sample(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{labels} missing"
    return float(match.group(1))


def test_metrics_series_and_no_secrets_in_logs(app_env, password_redis, sf_query, tmp_path):
    api = GongApiStandIn(SECRETS["GONG_API_KEY"], SECRETS["GONG_API_SECRET"], rate_per_second=10, burst=10)
    api_url = api.start(free_port())
    port = free_port()
    env = {
        **app_env, **SECRETS, "PORT": str(port), "HOST": "127.0.0.1", "LOG_LEVEL": "DEBUG",
        "REDIS_URL": password_redis.url, "GONG_WEBHOOK_AUTH_MODE": "url-key",
        "GONG_ENRICHMENT_ENABLED": "true", "GONG_API_BASE_URL": api_url,
    }
    migrate(load_settings(env))
    app = AppProcess("gong-webhook-app", env, log=tmp_path / "app.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get(base + "/ready") == 200, 30, 0.1, "app ready")
        with httpx.Client(base_url=base, timeout=10) as client:
            body = orjson.dumps(call_payload("31337"))
            assert client.post(f"/webhooks/gong/{URL_KEY}", content=body).status_code == 202
            assert client.post(f"/webhooks/gong/{URL_KEY}", content=body).status_code == 200
            assert client.post("/webhooks/gong/not-the-key", content=body).status_code == 401
            # A key-bearing path that does not match a route must not leak it either.
            assert client.get(f"/webhooks/gong/{URL_KEY}/x").status_code in (404, 405)
            assert client.post(f"/webhooks/gong/{URL_KEY}", content=b"{oops").status_code == 400

            table = f"SOPHIA_AI.{app_env['SNOWFLAKE_SCHEMA']}.GONG_CALL_TRANSCRIPTS"
            wait_for(lambda: sf_query(f"SELECT COUNT(*) FROM {table}") == [(1,)], 20, 0.2, "transcript")

            def scraped() -> str:
                text = client.get("/metrics").text
                return text if _has(text, "gong_webhook_transcripts_loaded_total", 1) else ""

            text = wait_for(scraped, 10, 0.2, "metrics after enrichment")
        for name in METRIC_NAMES:
            assert f"# TYPE {name} " in text, name
        assert _sample(text, "gong_webhook_http_requests_total", '{route="/webhooks/gong/{key}",status="202"}') == 1
        assert _sample(text, "gong_webhook_verification_failures_total", '{reason="wrong_url_key"}') == 1
        assert _sample(text, "gong_webhook_events_total", '{outcome="duplicate"}') == 1
        assert _sample(text, "gong_webhook_enqueue_seconds_count") == 2
        assert _sample(text, "gong_webhook_loaded_events_total") == 1
        assert _sample(text, "gong_webhook_gong_api_requests_total",
                       '{endpoint="/v2/calls/transcript",status="200"}') == 1
        assert _sample(text, "gong_webhook_gong_api_daily_budget_remaining") == 10_000 - 1  # the default budget
        assert URL_KEY not in text
    finally:
        app.signal(signal.SIGTERM)
        code = app.proc.wait(30)
        api.stop()
    output = app.output()
    # Graceful: uvicorn drains, the loader stops after its batch, then uvicorn re-raises SIGTERM.
    assert code in (0, -signal.SIGTERM)
    assert "loader stopped" in output and "Application shutdown complete" in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) > 5
    for line in lines:
        orjson.loads(line)  # every line is a JSON object
    assert any('"request_id"' in line for line in lines)
    for name, value in SECRETS.items():
        for part in value.split(","):
            assert part not in output, f"{name} leaked into the logs"


def test_tokens_and_bodies_not_logged_in_jwt_mode(app_env, signer, tmp_path):
    port = free_port()
    env = {**app_env, "PORT": str(port), "HOST": "127.0.0.1", "LOG_LEVEL": "DEBUG",
           "RUN_LOADER_IN_PROCESS": "false"}
    app = AppProcess("gong-webhook-app", env, log=tmp_path / "app.log")
    base = f"http://127.0.0.1:{port}"
    marker = "BODY-MARKER-8d7f6e"
    try:
        wait_for(lambda: _get(base + "/ready") == 200, 30, 0.1, "app ready")
        body = orjson.dumps(call_payload("4242", title=marker))
        token = signer.token(body)
        forged = signer.token(body + b" ")
        with httpx.Client(base_url=base, timeout=10) as client:
            assert client.post("/webhooks/gong", content=body, headers={"Authorization": token}).status_code == 202
            assert client.post("/webhooks/gong", content=body, headers={"Authorization": forged}).status_code == 401
    finally:
        assert app.stop() in (0, -signal.SIGTERM)
    output = app.output()
    assert '"status":202' in output.replace(" ", "")
    for secret in (token, forged, token.split(".")[2], marker):
        assert secret not in output


def _has(text: str, name: str, at_least: float) -> bool:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return bool(match and float(match.group(1)) >= at_least)


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0
