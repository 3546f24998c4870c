"""The operator's rendered configuration is what the app accepts.

The app reads exactly the ConfigMap and Secret the operator renders (envFrom), so every spec
value the CRD admits must produce settings the app starts with. A mismatch here once shipped:
the CRD's `authMode: urlKey` reached the app verbatim while the app expects `url-key`.
"""

from __future__ import annotations

from typing import Any

import pytest

from gong_operator import children as ch
from tests.operator.conftest import make_spec
from webhook_app import contract
from webhook_app.settings import AppSettings


def _app_settings(spec_overrides: dict[str, Any], secret: dict[str, str]) -> AppSettings:
    spec = make_spec(**spec_overrides)
    env = {**ch.config_data(spec), **secret}
    return AppSettings.model_validate(env)


@pytest.mark.parametrize(("mode", "key", "expected"), [
    ("jwt", contract.GONG_WEBHOOK_PUBLIC_KEYS, "jwt"),
    ("urlKey", contract.GONG_WEBHOOK_SECRETS, "url-key"),
])
def test_every_auth_mode_renders_a_value_the_app_accepts(mode: str, key: str, expected: str) -> None:
    settings = _app_settings({"gong": {"authMode": mode}}, {key: "k1"})
    assert settings.gong_webhook_auth_mode == expected


def test_typed_fields_reach_the_app_unchanged() -> None:
    settings = _app_settings(
        {
            "gong": {"rateLimit": 1.5, "burst": 4, "dailyLimit": 500, "enrichmentEnabled": False,
                     "enrichmentExtensive": True, "publicUrl": "https://hooks.example.com/webhooks/gong"},
            "redis": {"url": "redis://r:6380/2", "stream": "gong:x"},
            "snowflake": {"warehouse": "WH", "database": "DB", "schema": "SC", "role": "LOADER"},
            "extraConfig": {"SNOWFLAKE_HOST": "localhost", "SNOWFLAKE_PORT": "8443", "SNOWFLAKE_PROTOCOL": "http"},
        },
        {},
    )
    assert (settings.gong_api_rate_limit, settings.gong_api_burst_limit) == (1.5, 4)
    assert settings.gong_api_daily_limit == 500
    assert settings.gong_enrichment_enabled is False
    assert settings.gong_enrichment_extensive is True
    assert settings.gong_webhook_public_url == "https://hooks.example.com/webhooks/gong"
    assert (settings.redis_url, settings.redis_stream) == ("redis://r:6380/2", "gong:x")
    assert (settings.snowflake_warehouse, settings.snowflake_database, settings.snowflake_schema,
            settings.snowflake_role) == ("WH", "DB", "SC", "LOADER")
    endpoint = (settings.snowflake_host, settings.snowflake_port, settings.snowflake_protocol)
    assert endpoint == ("localhost", 8443, "http")


def test_defaults_render_the_app_defaults_for_the_gong_api_budget() -> None:
    # Existing GongWebhooks (no dailyLimit / enrichmentExtensive) get Gong's quota and no extensive fetch.
    settings = _app_settings({"extraConfig": {"GONG_API_DAY_START_SECONDS": "28800"}}, {})
    assert settings.gong_api_daily_limit == 10000
    assert settings.gong_enrichment_extensive is False
    assert settings.gong_api_day_start_seconds == 28800


def test_rendered_keys_are_all_contract_names() -> None:
    data = ch.config_data(make_spec(extraConfig={"NOT_A_SETTING": "x", "LOADER_BATCH_SIZE": "200"}))
    assert set(data) <= contract.CONFIG_KEYS
    assert data["LOADER_BATCH_SIZE"] == "200"
