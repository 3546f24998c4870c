"""Redis (AOF on, appendfsync always) crashes and restarts under load: SIGKILL redis-server while
clients keep posting, restart it on the same AOF directory. While it is down the app answers 503 with
Retry-After; every event answered 2xx (and its dedup marker) survives the crash, and after Gong's
retries and the loader's drain each event is in Snowflake exactly once."""

from __future__ import annotations

import signal
import subprocess

import httpx
import redis

from tests.support.app import AppProcess
from tests.support.load import WebhookLoad, app_ready, assert_exactly_once, assert_no_data_errors, wait_loaded
from tests.support.net import free_port, wait_port
from tests.support.servers import RedisServer
from tests.support.waiting import wait_for


def _restart(server: RedisServer) -> None:
    """Same binary, port and directory: Redis replays its append-only file."""
    server.proc = subprocess.Popen(server.proc.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(server.port)
    client = server.client()

    def loaded() -> bool:
        try:
            return bool(client.ping())
        except (redis.BusyLoadingError, redis.ConnectionError):
            return False

    wait_for(loaded, 30, 0.05, "redis to replay its AOF")


def test_redis_sigkill_under_load_keeps_every_accepted_event_once(
    app_env, make_settings, signer, sf_query, tmp_path
):
    server = RedisServer(tmp_path / "redis-crash")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**app_env, "REDIS_URL": server.url, "HOST": "127.0.0.1", "PORT": str(port), "LOADER_BATCH_SIZE": "50"}
    settings = make_settings(REDIS_URL=server.url)
    app = AppProcess("gong-webhook-app", env, log=tmp_path / "app.log")
    try:
        wait_for(lambda: app_ready(base), 30, 0.1, "app ready")
        with WebhookLoad(base, signer, prefix="8", threads=4, rate=150) as load:
            load.wait_accepted(300, 60)
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait(10)
            accepted_before_crash = dict(load.accepted)
            # Answers while Redis is down: 503 with Retry-After, so Gong retries later.
            wait_for(lambda: load.retry_after_seen >= 150, 30, 0.05, "503 answers while redis is down")
            _restart(server)
            load.wait_accepted(len(load.accepted) + 300, 60)

        r = server.client()
        with httpx.Client(base_url=base, timeout=10) as client:
            # Dedup markers came back from the AOF with their events: a repeat is a duplicate (200).
            for call_id in sorted(accepted_before_crash)[-20:]:
                assert load.post(client, call_id)[1] == 200, call_id
        unanswered = set(load.failed)
        load.retry_failed()
        sent = load.sent
        wait_loaded(sf_query, settings, len(sent), timeout=120)
        wait_for(lambda: r.xlen(settings.redis_stream) == 0, 30, 0.2, "stream drained")
        assert r.xpending(settings.redis_stream, "snowflake-loader")["pending"] == 0
        assert r.xlen(f"{settings.redis_stream}:dlq") == 0
        assert_no_data_errors([base])
    finally:
        assert app.stop() in (0, -signal.SIGTERM), app.output()[-3000:]
        server.stop()
    assert_no_data_errors(logs=[app.output()])

    assert unanswered, "the crash did not hit any request: not a test under load"
    assert set(accepted_before_crash) <= sent and len(load.accepted) == len(sent)
    assert_exactly_once(sf_query, settings, sent)
    print(f"accepted before crash {len(accepted_before_crash)}, without answer {len(unanswered)}, "
          f"total {len(sent)}; outcomes {dict(load.statuses)}")
