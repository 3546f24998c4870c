"""Every 202 survives a Redis crash: SIGKILL redis-server right after the answers, restart it on
the same AOF directory, and every accepted event (and its dedup marker) is there. While Redis is
down the app answers 503 with Retry-After; after the restart it accepts again."""

from __future__ import annotations

import signal
import subprocess

import redis

from tests.app.app_support import RedisServer, wait_for, wait_port
from webhook_app.testing.gong_sim import call_payload


def test_accepted_events_survive_redis_sigkill(make_settings, start_app, signer, tmp_path):
    server = RedisServer(tmp_path / "redis-crash")
    try:
        settings = make_settings(REDIS_URL=server.url)
        app = start_app(settings, run_loader=False)
        accepted = []
        for i in range(30):
            response = app.post(*signer.signed(call_payload(f"9{i:03d}")))
            assert response.status_code == 202
            accepted.append(response.json()["eventId"])
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)

        down = app.post(*signer.signed(call_payload("9999")))
        assert down.status_code == 503 and down.headers["Retry-After"]

        # Same port, same directory: Redis replays its append-only file.
        server.proc = subprocess.Popen(server.proc.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(server.port)
        r = server.client()

        def loaded() -> bool:
            try:
                return bool(r.ping())
            except redis.BusyLoadingError:
                return False

        wait_for(loaded, 10, 0.05, "redis to replay its AOF")
        entries = r.xrange(settings.redis_stream)
        assert sorted(f[b"event_id"].decode() for _, f in entries) == sorted(accepted)
        assert all(r.exists(f"{settings.redis_stream}:seen:{event_id}") for event_id in accepted)
        again = app.post(*signer.signed(call_payload("9000")))
        assert again.status_code == 200  # the dedup marker survived with the event
        assert app.post(*signer.signed(call_payload("9999"))).status_code == 202
    finally:
        server.stop()
