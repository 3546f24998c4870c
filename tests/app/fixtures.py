"""Fixtures of the webhook app tests, shared by tests/app and tests/faults (registered for the whole
suite by `pytest_plugins` in tests/conftest.py; pytest allows that only in the root conftest).

One real redis-server and one fakesnow server per session; per-test isolation comes from a unique
stream name and Snowflake schema. Both servers start only when a test asks for them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests import secret_scan
from tests.support.app import AppProcess, migrate
from tests.support.gong import GongSigner, new_private_key, public_key_b64
from tests.support.gong_api_standin import GONG_ACCESS_KEY, GONG_ACCESS_SECRET, GongApiStandIn
from tests.support.net import free_port
from tests.support.servers import FakesnowServer, RedisServer, ThreadedServer
from tests.support.snowflake_spy import SnowflakeSpy
from webhook_app.ingest.api import create_app
from webhook_app.metrics import Metrics
from webhook_app.settings import AppSettings, load_settings

PUBLIC_URL = "https://hooks.example.com/webhooks/gong"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fakesnow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakesnowServer]:
    server = FakesnowServer(tmp_path_factory.mktemp("fakesnow"), create_database="SOPHIA_AI")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gong_key() -> Any:
    return new_private_key()


@pytest.fixture(scope="session")
def other_key() -> Any:
    return new_private_key()


@pytest.fixture(scope="session")
def signer(gong_key: Any) -> GongSigner:
    return GongSigner(gong_key, PUBLIC_URL)


@pytest.fixture
def app_env(
    redis_server: RedisServer, fakesnow_server: FakesnowServer, gong_key: Any, other_key: Any
) -> dict[str, str]:
    """Environment for one test: its own stream and Snowflake schema, short loader timings."""
    suffix = uuid.uuid4().hex[:10]
    return {
        "REDIS_URL": redis_server.url,
        "REDIS_STREAM": f"gong:test:{suffix}",
        "GONG_WEBHOOK_AUTH_MODE": "jwt",
        # Two keys configured, as during a rotation: Gong's current key is the second one.
        "GONG_WEBHOOK_PUBLIC_KEYS": public_key_b64(other_key) + "\n" + public_key_b64(gong_key),
        "GONG_WEBHOOK_PUBLIC_URL": PUBLIC_URL,
        "EVENT_SCOPE": "sales/gong-prod",
        "SNOWFLAKE_ACCOUNT": "test-account",
        "SNOWFLAKE_USER": "loader",
        "SNOWFLAKE_PASSWORD": "sf-password-Zq81",
        "SNOWFLAKE_DATABASE": "SOPHIA_AI",
        "SNOWFLAKE_SCHEMA": f"GW_{suffix.upper()}",
        "SNOWFLAKE_HOST": "localhost",
        "SNOWFLAKE_PORT": str(fakesnow_server.port),
        "SNOWFLAKE_PROTOCOL": "http",
        # LOADER_CLAIM_IDLE_MS: the default, 3 x the timeout (the loader refuses less than 2 x).
        "SNOWFLAKE_TIMEOUT_SECONDS": "10",
        "LOADER_BLOCK_MS": "200",
        "LOADER_METRICS_PORT": "0",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def make_settings(app_env: dict[str, str]) -> Callable[..., AppSettings]:
    """Settings of one test; by default its Snowflake schema is migrated first, as in a deployment."""

    def make(*, migrate_schema: bool = True, **overrides: str) -> AppSettings:
        settings = load_settings({**app_env, **overrides})
        secret_scan.register_settings(settings)
        if migrate_schema:
            migrate(settings)
        return settings

    return make


@pytest.fixture
def snowflake_spy(fakesnow_server: FakesnowServer) -> Iterator[SnowflakeSpy]:
    spy = SnowflakeSpy(fakesnow_server.port)
    yield spy
    spy.stop()


class RunningApp:
    def __init__(self, settings: AppSettings, run_loader: bool) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.server = ThreadedServer(create_app(settings, self.metrics, run_loader=run_loader))
        self.url = self.server.url
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def post(self, body: bytes, headers: dict[str, str], path: str = "/webhooks/gong") -> httpx.Response:
        return self.client.post(path, content=body, headers=headers)

    def stop(self) -> None:
        self.client.close()
        self.server.stop()


@pytest.fixture
def start_app() -> Iterator[Callable[..., RunningApp]]:
    apps: list[RunningApp] = []

    def start(settings: AppSettings, run_loader: bool = True) -> RunningApp:
        app = RunningApp(settings, run_loader)
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()


@pytest.fixture
def sf_query(fakesnow_server: FakesnowServer) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
    conn = fakesnow_server.connect()

    def query(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        cur = conn.cursor()
        try:
            cur.execute(sql, params)
            return list(cur.fetchall())
        except Exception as exc:
            if "does not exist" in str(exc):
                return []  # table not created yet by the loader
            raise

    yield query
    conn.close()


@pytest.fixture
def event_count(sf_query: Callable[..., list[tuple[Any, ...]]]) -> Callable[[AppSettings], int]:
    def count(settings: AppSettings) -> int:
        rows = sf_query(f"SELECT COUNT(*) FROM SOPHIA_AI.{settings.snowflake_schema}.GONG_WEBHOOK_EVENTS")
        return int(rows[0][0]) if rows else 0

    return count


@pytest.fixture
def assert_no_duplicates(sf_query: Callable[..., list[tuple[Any, ...]]]) -> Callable[[AppSettings], int]:
    """Rows against distinct EVENT_IDs of the test's events table (the tables have no enforced key,
    as on Snowflake, so a duplicate the loader sent would be a second row); returns the row count."""

    def check(settings: AppSettings) -> int:
        table = f"SOPHIA_AI.{settings.snowflake_schema}.GONG_WEBHOOK_EVENTS"
        total, distinct = sf_query(f"SELECT COUNT(*), COUNT(DISTINCT EVENT_ID) FROM {table}")[0]
        assert total == distinct, f"{total - distinct} duplicated rows in {table}"
        return int(total)

    return check



@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    yield
    while AppProcess.started:
        proc = AppProcess.started.pop()
        if proc.proc.poll() is None:
            proc.kill()


@pytest.fixture
def gong_standin() -> Iterator[Callable[..., tuple[GongApiStandIn, str]]]:
    """Starts local Gong API stand-ins (keyword arguments go to GongApiStandIn); all stopped after the test."""
    secret_scan.register_secret(GONG_ACCESS_SECRET)
    servers: list[GongApiStandIn] = []

    def start(**kwargs: Any) -> tuple[GongApiStandIn, str]:
        server = GongApiStandIn(GONG_ACCESS_KEY, GONG_ACCESS_SECRET, **kwargs)
        url = server.start(free_port())
        servers.append(server)
        return server, url

    yield start
    for server in servers:
        server.stop()
