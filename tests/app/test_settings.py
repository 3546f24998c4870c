"""Configuration contract: names from contract.py, defaults from the issue, one clear error line."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.gong import new_private_key, public_key_b64, public_key_pem
from tests.support.servers import VENV_BIN
from webhook_app import contract
from webhook_app.settings import AppSettings, ConfigError, load_settings, require_loader_settings

KEY = new_private_key()
BASE = {
    "GONG_WEBHOOK_PUBLIC_KEYS": public_key_b64(KEY),
    "GONG_WEBHOOK_PUBLIC_URL": "https://hooks.example.com/webhooks/gong",
}


def test_defaults_match_the_issue():
    s = load_settings(BASE)
    assert (s.host, s.port, s.workers) == ("0.0.0.0", 8080, 1)
    assert (s.gong_api_rate_limit, s.gong_api_burst_limit) == (2.5, 10)
    # Gong's company quota; the budget's day starts at 00:00 UTC; extensive data is opt-in.
    assert (s.gong_api_daily_limit, s.gong_api_day_start_seconds) == (10_000, 0)
    assert s.gong_enrichment_extensive is False
    assert (s.snowflake_warehouse, s.snowflake_database, s.snowflake_schema) == (
        "COMPUTE_WH", "SOPHIA_AI", "GONG_WEBHOOKS"
    )
    assert s.max_body_bytes == 10 * 1024 * 1024
    assert s.gong_webhook_auth_mode == "jwt" and s.run_loader_in_process is True


def test_every_field_reads_a_contract_name():
    aliases = set()
    for field in AppSettings.model_fields.values():
        alias = field.validation_alias
        aliases.update(alias.choices)  # type: ignore[union-attr]
    assert aliases == contract.CONFIG_KEYS | contract.SECRET_KEYS


def test_keys_may_mix_pem_and_bare_base64_separated_by_commas_or_newlines():
    other = new_private_key()
    third = new_private_key()
    raw = public_key_pem(KEY) + "\n" + public_key_b64(other) + "," + public_key_b64(third)
    from webhook_app.keys import parse_public_keys

    assert len(parse_public_keys(raw)) == 3


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"PORT": "eighty-hunter2"}, "PORT"),
        ({"GONG_WEBHOOK_PUBLIC_KEYS": "c2VjcmV0LXZhbHVlLWhlcmU="}, "GONG_WEBHOOK_PUBLIC_KEYS"),
        ({"GONG_WEBHOOK_PUBLIC_KEYS": ""}, "GONG_WEBHOOK_PUBLIC_KEYS"),
        ({"GONG_WEBHOOK_PUBLIC_URL": "ftp://hunter2"}, "GONG_WEBHOOK_PUBLIC_URL"),
        ({"GONG_WEBHOOK_AUTH_MODE": "url-key"}, "GONG_WEBHOOK_SECRETS"),
        ({"GONG_WEBHOOK_AUTH_MODE": "basic-hunter2"}, "GONG_WEBHOOK_AUTH_MODE"),
        ({"SNOWFLAKE_SCHEMA": "x; DROP TABLE hunter2"}, "SNOWFLAKE_SCHEMA"),
        ({"GONG_API_RATE_LIMIT": "-1"}, "GONG_API_RATE_LIMIT"),
        ({"GONG_API_DAILY_LIMIT": "0"}, "GONG_API_DAILY_LIMIT"),
        ({"GONG_API_DAY_START_SECONDS": "86400"}, "GONG_API_DAY_START_SECONDS"),
        ({"GONG_ENRICHMENT_EXTENSIVE": "sometimes"}, "GONG_ENRICHMENT_EXTENSIVE"),
    ],
)
def test_bad_setting_names_the_setting_not_the_value(env, setting):
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, **env})
    message = str(info.value)
    assert setting in message and "\n" not in message
    for key, value in env.items():
        if key == setting and value:
            assert value not in message


def test_loader_requires_snowflake_credentials():
    with pytest.raises(ConfigError, match="SNOWFLAKE_ACCOUNT"):
        require_loader_settings(load_settings(BASE))
    s = load_settings({**BASE, "SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_USER": "u"})
    with pytest.raises(ConfigError, match="SNOWFLAKE_PASSWORD"):
        require_loader_settings(s)
    s = load_settings({**BASE, "SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_USER": "u", "SNOWFLAKE_PASSWORD": "p",
                       "GONG_ENRICHMENT_ENABLED": "true"})
    with pytest.raises(ConfigError, match="GONG_API_KEY"):
        require_loader_settings(s)


def test_console_script_stops_with_one_line_on_bad_config():
    env = {**BASE, "PATH": "/usr/bin:/bin", "SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_USER": "u",
           "SNOWFLAKE_PASSWORD": "p", "WORKERS": "many-hunter2"}
    result = subprocess.run([str(VENV_BIN / "gong-webhook-app")], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "WORKERS" in lines[0] and "hunter2" not in result.stderr


def test_secret_values_cover_credentials_for_redaction():
    s = load_settings({**BASE, "REDIS_URL": "redis://:inline-pw-123@redis:6379/0", "SNOWFLAKE_PASSWORD": "sfpw-9876",
                       "GONG_API_SECRET": "gsec-5432"})
    values = s.secret_values()
    assert {"inline-pw-123", "sfpw-9876", "gsec-5432"} <= set(values)
    from webhook_app.logging_setup import JsonFormatter

    assert JsonFormatter(values).redact("x inline-pw-123 sfpw-9876 y") == "x [REDACTED] [REDACTED] y"


def test_claim_idle_defaults_to_a_multiple_of_the_snowflake_timeout_and_must_exceed_twice_it():
    creds = {**BASE, "SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_USER": "u", "SNOWFLAKE_PASSWORD": "p"}
    s = load_settings(creds)
    assert (s.snowflake_timeout_seconds, s.loader_claim_idle_ms) == (60, 180_000)
    require_loader_settings(s)
    assert load_settings({**creds, "SNOWFLAKE_TIMEOUT_SECONDS": "10"}).loader_claim_idle_ms == 30_000
    # The old default (60 s, the same as the timeouts) let a take-over race a dead loader's MERGE.
    for claim_idle in ("60000", "120000"):
        with pytest.raises(ConfigError) as err:
            require_loader_settings(load_settings({**creds, "LOADER_CLAIM_IDLE_MS": claim_idle}))
        assert err.value.setting == "LOADER_CLAIM_IDLE_MS"
        assert "SNOWFLAKE_TIMEOUT_SECONDS" in str(err.value) and claim_idle not in str(err.value)
    require_loader_settings(load_settings({**creds, "LOADER_CLAIM_IDLE_MS": "120001"}))
