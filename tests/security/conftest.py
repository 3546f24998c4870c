"""Fixtures for the security checks.

Cluster checks use the shared `cluster`, `gw_crd`, `operator` and `namespace` fixtures of tests/conftest.py;
`bare_namespace` makes namespaces *without* the operator's secrets-writer RoleBinding. App checks run the
real ASGI app under uvicorn against a real redis-server (helpers from tests/app/app_support.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import secret_scan
from tests.app.app_support import FakesnowServer, RedisServer, ThreadedServer
from webhook_app.api import create_app
from webhook_app.metrics import Metrics
from webhook_app.settings import AppSettings, load_settings
from webhook_app.testing.gong_sim import GongSigner, new_private_key, public_key_b64

PUBLIC_URL = "https://hooks.example.com/webhooks/gong"


@pytest.fixture
def bare_namespace(cluster: Any) -> Iterator[Callable[[str], str]]:
    """Factory of namespaces that no platform team has prepared for the operator."""
    made: list[str] = []

    def make(prefix: str) -> str:
        name = f"s-{prefix}-{uuid.uuid4().hex[:6]}"
        cluster.kubectl("create", "namespace", name)
        made.append(name)
        return name

    yield make
    for name in made:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


# ---------------------------------------------------------------------------------------- app


@pytest.fixture(scope="session")
def sec_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("sec-redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sec_fakesnow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakesnowServer]:
    server = FakesnowServer(tmp_path_factory.mktemp("sec-fakesnow"))
    conn = server.connect(database=None)  # type: ignore[arg-type]
    conn.cursor().execute("CREATE DATABASE IF NOT EXISTS SOPHIA_AI")
    conn.close()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gong_key() -> Any:
    return new_private_key()


@pytest.fixture(scope="session")
def signer(gong_key: Any) -> GongSigner:
    return GongSigner(gong_key, PUBLIC_URL)


@pytest.fixture
def app_env(sec_redis: RedisServer, gong_key: Any) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return {
        "REDIS_URL": sec_redis.url,
        "REDIS_STREAM": f"gong:sec:{suffix}",
        "GONG_WEBHOOK_AUTH_MODE": "jwt",
        "GONG_WEBHOOK_PUBLIC_KEYS": public_key_b64(gong_key),
        "GONG_WEBHOOK_PUBLIC_URL": PUBLIC_URL,
        "EVENT_SCOPE": "sales/gong-prod",
        "SNOWFLAKE_ACCOUNT": "test-account",
        "SNOWFLAKE_USER": "loader",
        "SNOWFLAKE_PASSWORD": "sec-sf-password-Vb71",
        "SNOWFLAKE_DATABASE": "SOPHIA_AI",
        "SNOWFLAKE_SCHEMA": f"GW_{suffix.upper()}",
        "SNOWFLAKE_HOST": "localhost",
        "SNOWFLAKE_PORT": "9",  # no loader runs in-process in these tests
        "SNOWFLAKE_PROTOCOL": "http",
        "LOG_LEVEL": "INFO",
    }


class App:
    """The real app (JWT mode) under uvicorn in a thread; loader off."""

    def __init__(self, settings: AppSettings) -> None:
        self.settings = settings
        self.server = ThreadedServer(create_app(settings, Metrics(), run_loader=False))
        self.url = self.server.url
        self.port = self.server.port
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return self.client.post("/webhooks/gong", content=body, headers=headers)

    def stop(self) -> None:
        self.client.close()
        self.server.stop()


@pytest.fixture
def app(app_env: dict[str, str]) -> Iterator[App]:
    settings = load_settings(app_env)
    secret_scan.register_settings(settings)
    running = App(settings)
    yield running
    running.stop()


def read_log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
