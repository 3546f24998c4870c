"""SIGKILL of `gong-webhook-app` under load: every webhook answered 2xx before, during or after the
crash is in Snowflake exactly once, once the app is restarted, Gong's retries of the unanswered ones
are in and the (in-process) loader has drained the stream."""

from __future__ import annotations

from tests.support.app import AppProcess
from tests.support.load import WebhookLoad, app_ready, assert_exactly_once, assert_no_data_errors, wait_loaded
from tests.support.net import free_port
from tests.support.waiting import wait_for


def test_app_sigkill_under_load_keeps_every_accepted_event_once(
    app_env, make_settings, signer, redis_server, sf_query, tmp_path
):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The app runs as deployed: ingest and the loader in one process, both die with the SIGKILL.
    env = {**app_env, "HOST": "127.0.0.1", "PORT": str(port), "LOADER_BATCH_SIZE": "50"}
    settings = make_settings()
    first = AppProcess("gong-webhook-app", env, log=tmp_path / "app-1.log")
    wait_for(lambda: app_ready(base), 30, 0.1, "app ready")

    with WebhookLoad(base, signer, prefix="7", threads=4, rate=150) as load:
        load.wait_accepted(300, 60)
        first.kill()
        accepted_before_kill = dict(load.accepted)
        # The clients keep sending into the dead port for a moment, as Gong would.
        load.wait_failed(len(load.failed) + 20, 20)
        second = AppProcess("gong-webhook-app", env, log=tmp_path / "app-2.log")
        wait_for(lambda: app_ready(base), 30, 0.1, "restarted app ready")
        load.wait_accepted(len(load.accepted) + 300, 60)
    try:
        unanswered = set(load.failed)
        retries = load.retry_failed()
        sent = load.sent
        wait_loaded(sf_query, settings, len(sent), timeout=120)
        r = redis_server.client()
        wait_for(lambda: r.xlen(settings.redis_stream) == 0, 30, 0.2, "stream drained")
        assert_no_data_errors([base])
    finally:
        assert second.stop() in (0, -15), second.output()[-3000:]
    assert_no_data_errors(logs=[first.output(), second.output()])

    assert unanswered, "the kill did not hit any request: not a test under load"
    assert set(accepted_before_kill) <= sent and len(load.accepted) == len(sent)
    assert_exactly_once(sf_query, settings, sent)
    assert r.xpending(settings.redis_stream, "snowflake-loader")["pending"] == 0
    assert r.xlen(f"{settings.redis_stream}:dlq") == 0
    print(f"accepted before kill {len(accepted_before_kill)}, without answer {len(unanswered)} "
          f"(of which stored before the kill: {sum(1 for s in retries.values() if s == 200)}), "
          f"total {len(sent)}; outcomes {dict(load.statuses)}")
