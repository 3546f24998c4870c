"""The app's configuration, read from exactly the environment names in ``contract``.

Errors are reported as one line naming the setting; pydantic's own messages echo the
input value, which for a Secret-sourced setting would leak it, so they are rewritten here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from webhook_app import contract
from webhook_app.keys import PublicKeyError, load_private_key, parse_public_keys, parse_public_url


class ConfigError(Exception):
    """A setting is missing or malformed. The message names the setting, never its value."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"configuration error: {setting}: {reason}")
        self.setting = setting
        self.reason = reason


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


PositiveInt = Annotated[int, Field(gt=0)]

# A statement may wait in the warehouse queue for up to SNOWFLAKE_TIMEOUT_SECONDS and then run for
# as long again (both are set as session parameters, so Snowflake cancels it after that). A loader
# that died mid-MERGE leaves such a statement behind; another loader may take its entries over only
# once that statement has surely ended, or both MERGEs' NOT MATCHED inserts could land. Hence claim
# idle > 2 x timeout, and by default one more timeout of margin.
CLAIM_IDLE_MIN_TIMEOUT_MULTIPLE = 2
CLAIM_IDLE_TIMEOUT_MULTIPLE = 3


class AppSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", populate_by_name=False)

    host: str = Field("0.0.0.0", validation_alias=_env(contract.HOST))
    port: int = Field(8080, ge=1, le=65535, validation_alias=_env(contract.PORT))
    workers: int = Field(1, ge=1, le=64, validation_alias=_env(contract.WORKERS))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias=_env(contract.LOG_LEVEL)
    )

    redis_url: str = Field("redis://localhost:6379/0", validation_alias=_env(contract.REDIS_URL))
    redis_password: SecretStr | None = Field(None, validation_alias=_env(contract.REDIS_PASSWORD))
    redis_stream: str = Field("gong:webhooks", min_length=1, validation_alias=_env(contract.REDIS_STREAM))

    gong_webhook_auth_mode: Literal["jwt", "url-key"] = Field(
        "jwt", validation_alias=_env(contract.GONG_WEBHOOK_AUTH_MODE)
    )
    gong_webhook_public_keys: SecretStr | None = Field(
        None, validation_alias=_env(contract.GONG_WEBHOOK_PUBLIC_KEYS)
    )
    gong_webhook_secrets: SecretStr | None = Field(None, validation_alias=_env(contract.GONG_WEBHOOK_SECRETS))
    gong_webhook_public_url: str | None = Field(None, validation_alias=_env(contract.GONG_WEBHOOK_PUBLIC_URL))
    event_scope: str = Field("", validation_alias=_env(contract.EVENT_SCOPE))

    max_body_bytes: PositiveInt = Field(10 * 1024 * 1024, validation_alias=_env(contract.MAX_BODY_BYTES))
    dedup_ttl_seconds: PositiveInt = Field(7 * 24 * 3600, validation_alias=_env(contract.DEDUP_TTL_SECONDS))
    run_loader_in_process: bool = Field(True, validation_alias=_env(contract.RUN_LOADER_IN_PROCESS))

    loader_batch_size: int = Field(500, ge=1, le=10_000, validation_alias=_env(contract.LOADER_BATCH_SIZE))
    loader_block_ms: int = Field(1000, ge=1, validation_alias=_env(contract.LOADER_BLOCK_MS))
    loader_max_deliveries: PositiveInt = Field(5, validation_alias=_env(contract.LOADER_MAX_DELIVERIES))
    # None: CLAIM_IDLE_TIMEOUT_MULTIPLE x SNOWFLAKE_TIMEOUT_SECONDS (see loader_claim_idle_ms below).
    loader_claim_idle_ms_setting: int | None = Field(
        None, gt=0, validation_alias=_env(contract.LOADER_CLAIM_IDLE_MS)
    )
    loader_metrics_port: int = Field(9091, ge=0, le=65535, validation_alias=_env(contract.LOADER_METRICS_PORT))
    metrics_port: int = Field(0, ge=0, le=65535, validation_alias=_env(contract.METRICS_PORT))

    gong_enrichment_enabled: bool = Field(False, validation_alias=_env(contract.GONG_ENRICHMENT_ENABLED))
    gong_enrichment_extensive: bool = Field(False, validation_alias=_env(contract.GONG_ENRICHMENT_EXTENSIVE))
    gong_enrichment_batch_size: int = Field(
        50, ge=1, le=100, validation_alias=_env(contract.GONG_ENRICHMENT_BATCH_SIZE)
    )
    gong_api_base_url: str = Field("https://api.gong.io", validation_alias=_env(contract.GONG_API_BASE_URL))
    gong_api_rate_limit: float = Field(2.5, gt=0, validation_alias=_env(contract.GONG_API_RATE_LIMIT))
    gong_api_burst_limit: int = Field(10, ge=1, validation_alias=_env(contract.GONG_API_BURST_LIMIT))
    gong_api_daily_limit: int = Field(10_000, ge=1, validation_alias=_env(contract.GONG_API_DAILY_LIMIT))
    gong_api_day_start_seconds: int = Field(
        0, ge=0, le=86_399, validation_alias=_env(contract.GONG_API_DAY_START_SECONDS)
    )
    gong_api_key: SecretStr | None = Field(None, validation_alias=_env(contract.GONG_API_KEY))
    gong_api_secret: SecretStr | None = Field(None, validation_alias=_env(contract.GONG_API_SECRET))

    snowflake_account: SecretStr | None = Field(None, validation_alias=_env(contract.SNOWFLAKE_ACCOUNT))
    snowflake_user: SecretStr | None = Field(None, validation_alias=_env(contract.SNOWFLAKE_USER))
    snowflake_password: SecretStr | None = Field(None, validation_alias=_env(contract.SNOWFLAKE_PASSWORD))
    snowflake_private_key: SecretStr | None = Field(
        None, validation_alias=_env(contract.SNOWFLAKE_PRIVATE_KEY)
    )
    snowflake_role: str | None = Field(None, validation_alias=_env(contract.SNOWFLAKE_ROLE))
    snowflake_warehouse: str = Field("COMPUTE_WH", validation_alias=_env(contract.SNOWFLAKE_WAREHOUSE))
    snowflake_database: str = Field("SOPHIA_AI", min_length=1, validation_alias=_env(contract.SNOWFLAKE_DATABASE))
    snowflake_schema: str = Field("GONG_WEBHOOKS", min_length=1, validation_alias=_env(contract.SNOWFLAKE_SCHEMA))
    snowflake_host: str | None = Field(None, validation_alias=_env(contract.SNOWFLAKE_HOST))
    snowflake_port: int | None = Field(None, ge=1, le=65535, validation_alias=_env(contract.SNOWFLAKE_PORT))
    snowflake_protocol: Literal["https", "http"] = Field(
        "https", validation_alias=_env(contract.SNOWFLAKE_PROTOCOL)
    )
    snowflake_timeout_seconds: PositiveInt = Field(
        60, validation_alias=_env(contract.SNOWFLAKE_TIMEOUT_SECONDS)
    )

    @property
    def loader_claim_idle_ms(self) -> int:
        """How long a pending entry must be idle before another loader may take it over."""
        if self.loader_claim_idle_ms_setting is not None:
            return self.loader_claim_idle_ms_setting
        return CLAIM_IDLE_TIMEOUT_MULTIPLE * self.snowflake_timeout_seconds * 1000

    @field_validator(
        "gong_webhook_public_url", "snowflake_role", "snowflake_host", "gong_api_key", "gong_api_secret",
        "gong_webhook_public_keys", "gong_webhook_secrets", "snowflake_account", "snowflake_user",
        "snowflake_password", "snowflake_private_key", "redis_password", "snowflake_port",
        "loader_claim_idle_ms_setting", mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # The operator renders every key; an empty value means "not configured".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("snowflake_database", "snowflake_schema")
    @classmethod
    def _sql_identifier(cls, value: str) -> str:
        # Interpolated into SQL as an unquoted identifier, so only plain identifiers are allowed.
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", value):
            raise ValueError("must be a plain identifier (letters, digits, '_', '$')")
        return value

    @field_validator("redis_stream")
    @classmethod
    def _stream_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_:.{}-]+", value):
            raise ValueError("may contain only letters, digits and '_:.{}-'")
        return value

    def secret_values(self) -> list[str]:
        """Every configured credential, for log redaction."""
        values: list[str] = []
        for secret in (
            self.redis_password, self.gong_webhook_secrets, self.gong_api_key, self.gong_api_secret,
            self.snowflake_password, self.snowflake_private_key,
        ):
            if secret is not None:
                raw = secret.get_secret_value()
                values.append(raw)
                if secret is self.gong_webhook_secrets:
                    values.extend(split_list(raw))
        # REDIS_URL lives in the ConfigMap, but people still write redis://:password@host.
        url_password = urlsplit(self.redis_url).password
        if url_password:
            values.append(url_password)
        return [v for v in values if len(v) >= 4]

    def url_keys(self) -> list[str]:
        return split_list(self.gong_webhook_secrets.get_secret_value()) if self.gong_webhook_secrets else []

    def event_id(self, call_id: str) -> str:
        return f"{self.event_scope}/{call_id}" if self.event_scope else call_id


def split_list(raw: str) -> list[str]:
    return [part.strip() for part in raw.replace("\n", ",").split(",") if part.strip()]


def _check_auth(settings: AppSettings) -> None:
    if settings.gong_webhook_auth_mode == "jwt":
        if settings.gong_webhook_public_keys is None:
            raise ConfigError(contract.GONG_WEBHOOK_PUBLIC_KEYS, "required when GONG_WEBHOOK_AUTH_MODE=jwt")
        if settings.gong_webhook_public_url is None:
            raise ConfigError(contract.GONG_WEBHOOK_PUBLIC_URL, "required when GONG_WEBHOOK_AUTH_MODE=jwt")
        try:
            parse_public_keys(settings.gong_webhook_public_keys.get_secret_value())
        except PublicKeyError as exc:
            raise ConfigError(contract.GONG_WEBHOOK_PUBLIC_KEYS, str(exc)) from None
        try:
            parse_public_url(settings.gong_webhook_public_url)
        except ValueError as exc:
            raise ConfigError(contract.GONG_WEBHOOK_PUBLIC_URL, str(exc)) from None
    elif not settings.url_keys():
        raise ConfigError(contract.GONG_WEBHOOK_SECRETS, "required when GONG_WEBHOOK_AUTH_MODE=url-key")


def require_loader_settings(settings: AppSettings) -> None:
    """The loader needs Snowflake (and, with enrichment, Gong API) credentials; ingest alone does not."""
    floor_ms = CLAIM_IDLE_MIN_TIMEOUT_MULTIPLE * settings.snowflake_timeout_seconds * 1000
    if settings.loader_claim_idle_ms <= floor_ms:
        raise ConfigError(
            contract.LOADER_CLAIM_IDLE_MS,
            f"must be more than {CLAIM_IDLE_MIN_TIMEOUT_MULTIPLE} x {contract.SNOWFLAKE_TIMEOUT_SECONDS} "
            f"({floor_ms // 1000} s here): a crashed loader's MERGE may still be queued and running in Snowflake "
            "for that long, and a take-over before it ends could insert its events twice",
        )
    if settings.snowflake_account is None:
        raise ConfigError(contract.SNOWFLAKE_ACCOUNT, "required to run the loader")
    if settings.snowflake_user is None:
        raise ConfigError(contract.SNOWFLAKE_USER, "required to run the loader")
    if settings.snowflake_password is None and settings.snowflake_private_key is None:
        raise ConfigError(contract.SNOWFLAKE_PASSWORD, "SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY is required")
    if settings.snowflake_private_key is not None:
        try:
            load_private_key(settings.snowflake_private_key.get_secret_value())
        except ValueError:
            raise ConfigError(contract.SNOWFLAKE_PRIVATE_KEY, "not a PEM private key") from None
    if settings.gong_enrichment_enabled:
        if settings.gong_api_key is None:
            raise ConfigError(contract.GONG_API_KEY, "required when GONG_ENRICHMENT_ENABLED=true")
        if settings.gong_api_secret is None:
            raise ConfigError(contract.GONG_API_SECRET, "required when GONG_ENRICHMENT_ENABLED=true")


def load_settings(environ: Mapping[str, str] | None = None, *, for_ingest: bool = True) -> AppSettings:
    """Read and validate settings; raise ConfigError naming the first bad setting."""
    env = dict(os.environ if environ is None else environ)
    try:
        settings = AppSettings.model_validate(
            {k: v for k, v in env.items() if k in contract.CONFIG_KEYS or k in contract.SECRET_KEYS}
        )
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        name = str(first["loc"][0]) if first["loc"] else "settings"
        raise ConfigError(name, first["msg"]) from None
    if for_ingest:
        _check_auth(settings)
    return settings
