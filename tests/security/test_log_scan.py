"""No configured secret value in the output of a full run.

The session-wide scan (tests/conftest.py + tests/secret_scan.py) checks every log the app, loader and
operator processes wrote during the session, the in-process log records (unredacted) and every test's
captured output, at the end of the session. This module makes sure there is a full run to scan even when
it is run alone: the real `gong-webhook-app` (url-key mode) and a separate `gong-webhook-loader` with every
kind of credential configured - url keys, Redis password (as a variable for the app, inside REDIS_URL for
the loader), Snowflake key-pair private key, Gong API key and secret for enrichment - driven through
accepted, replayed, forged and malformed requests and a Snowflake outage (connector errors are where
credentials tend to leak). The scanner itself is checked on planted values first, so a pass is not a scan
that could not find anything.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization

from tests import secret_scan
from tests.support.app import AppProcess
from tests.support.gong import call_payload, new_private_key
from tests.support.gong_api_standin import GongApiStandIn
from tests.support.net import free_port
from tests.support.servers import RedisServer, TcpProxy
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.snowflake]

URL_KEYS = ("urlkey-first-Pq81Zt4n", "urlkey-second-Wd27Kc9m")
REDIS_PASSWORD = "redis-pass-Jh5Lq2Rv"
GONG_API_KEY = "gong-access-key-Ty6Nb3"
GONG_API_SECRET = "gong-access-secret-Fm8Vx1"


def _pem() -> str:
    return new_private_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()).decode()


def test_scanner_finds_planted_values_and_reports_only_fingerprints(tmp_path: Path):
    pem = _pem()
    values = [v for v in [*secret_scan.variants(pem), "planted-secret-Xy12"] if len(v) >= secret_scan.MIN_LENGTH]
    middle_line = pem.splitlines()[10]
    text = f'{{"msg": "connect failed", "error": "bad key {middle_line}"}}\nplanted-secret-Xy12 here'
    findings = secret_scan.find_in_text(text, "planted.log", values)
    assert len(findings) == 2  # the whole PEM is absent, one of its lines and the plain value are found
    report = "\n".join(map(str, findings))
    assert middle_line not in report and "planted-secret-Xy12" not in report
    assert all(f.fingerprint.startswith("sha256:") for f in findings)
    redacted = secret_scan.find_in_text('{"msg": "password=[REDACTED]"}', "r.log", [])
    assert [f.fingerprint for f in redacted] == ["redacted by the log formatter (1x)"]


def _post(client: httpx.Client, path: str, body: bytes) -> int:
    return client.post(path, content=body, headers={"Content-Type": "application/json"}).status_code


def test_full_run_logs_hold_no_configured_secret(app_env: dict[str, str], fakesnow_server: Any, sf_query: Any,
                                                 tmp_path: Path):
    redis = RedisServer(tmp_path / "redis", password=REDIS_PASSWORD)
    api = GongApiStandIn(GONG_API_KEY, GONG_API_SECRET, rate_per_second=20, burst=20)
    api_url = api.start(free_port())
    proxy = TcpProxy(fakesnow_server.port)
    private_key = _pem()
    port = free_port()
    common = {
        **{k: v for k, v in app_env.items() if k not in ("SNOWFLAKE_PASSWORD", "REDIS_URL")},
        "LOG_LEVEL": "DEBUG", "GONG_WEBHOOK_AUTH_MODE": "url-key", "GONG_WEBHOOK_SECRETS": ",".join(URL_KEYS),
        "GONG_ENRICHMENT_ENABLED": "true", "GONG_API_BASE_URL": api_url,
        "GONG_API_KEY": GONG_API_KEY, "GONG_API_SECRET": GONG_API_SECRET,
    }
    app_only = {**common, "PORT": str(port), "HOST": "127.0.0.1", "RUN_LOADER_IN_PROCESS": "false",
                "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0", "REDIS_PASSWORD": REDIS_PASSWORD,
                "SNOWFLAKE_PASSWORD": "app-side-sf-pw-Ke4Hs"}
    loader_only = {**common, "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:{redis.port}/0",
                   "SNOWFLAKE_PRIVATE_KEY": private_key, "SNOWFLAKE_PORT": str(proxy.port),
                   "SNOWFLAKE_TIMEOUT_SECONDS": "3"}
    # The admin's step first (its log is scanned too): the loader creates no tables.
    migrate = AppProcess("gong-webhook-loader", loader_only, ["migrate"], log=tmp_path / "migrate.log")
    migrate.proc.wait(60)
    assert migrate.stop() == 0, migrate.output()
    app = AppProcess("gong-webhook-app", app_only, log=tmp_path / "app.log")
    loader = AppProcess("gong-webhook-loader", loader_only, ["run"], log=tmp_path / "loader.log")
    table = f"SOPHIA_AI.{app_env['SNOWFLAKE_SCHEMA']}"
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(base + "/ready", timeout=2).status_code == 200 if _up(base) else False, 30, 0.2,
                 "app ready")
        with httpx.Client(base_url=base, timeout=10) as client:
            bodies = [orjson.dumps(call_payload(f"777{i}")) for i in range(6)]
            for i, body in enumerate(bodies[:4]):
                assert _post(client, f"/webhooks/gong/{URL_KEYS[i % 2]}", body) == 202
            assert _post(client, f"/webhooks/gong/{URL_KEYS[0]}", bodies[0]) == 200  # replay: a duplicate
            assert _post(client, f"/webhooks/gong/{URL_KEYS[0][:-1]}", bodies[5]) == 401
            assert _post(client, f"/webhooks/gong/{URL_KEYS[1]}", b"{not json") == 400
            assert client.get(f"/webhooks/gong/{URL_KEYS[1]}/x").status_code in (404, 405)
            wait_for(lambda: _count(sf_query, f"{table}.GONG_WEBHOOK_EVENTS") == 4, 40, 0.3, "4 rows")

            proxy.down()  # Snowflake unreachable: the loader's connector errors are logged
            for body in bodies[4:]:
                assert _post(client, f"/webhooks/gong/{URL_KEYS[1]}", body) == 202
            wait_for(lambda: "error" in (tmp_path / "loader.log").read_text().lower(), 30, 0.3,
                     "the loader to log the outage")
            proxy.up()
            wait_for(lambda: _count(sf_query, f"{table}.GONG_WEBHOOK_EVENTS") == 6, 60, 0.3, "6 rows")
            wait_for(lambda: _count(sf_query, f"{table}.GONG_CALL_TRANSCRIPTS") == 6, 60, 0.3, "6 transcripts")
        rows = sf_query(f"SELECT COUNT(*), COUNT(DISTINCT CALL_ID) FROM {table}.GONG_WEBHOOK_EVENTS")
        assert rows[0] == (6, 6), "a replayed request became a second row"
    finally:
        app.signal(signal.SIGTERM)
        loader.signal(signal.SIGTERM)
        app.proc.wait(30)
        loader.proc.wait(30)
        proxy.close()
        api.stop()
        redis.stop()

    outputs = {"app": app.output(), "loader": loader.output()}
    assert "webhook accepted" in outputs["app"] and "webhook refused" in outputs["app"]
    assert len(outputs["loader"].splitlines()) > 5
    configured = [*URL_KEYS, REDIS_PASSWORD, GONG_API_KEY, GONG_API_SECRET, *secret_scan.variants(private_key)]
    assert set(v for v in configured if len(v) >= secret_scan.MIN_LENGTH) <= secret_scan.secrets(), \
        "the processes' secrets were not registered for the session scan"
    for name, text in outputs.items():
        findings = secret_scan.find_in_text(text, name)
        assert findings == [], "\n".join(map(str, findings))
    # Everything else registered so far in this session (operator logs included) as well.
    findings, read = secret_scan.scan_logs()
    assert read >= 2 and findings == [], "\n".join(map(str, findings))


def _up(base: str) -> bool:
    try:
        httpx.get(base + "/health", timeout=1)
        return True
    except httpx.HTTPError:
        return False


def _count(sf_query: Any, table: str) -> int:
    rows = sf_query(f"SELECT COUNT(*) FROM {table}")
    return int(rows[0][0]) if rows else 0
