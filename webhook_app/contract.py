"""The configuration contract between the operator and the webhook app.

The operator renders a ConfigMap (non-sensitive settings) and a Secret (credentials)
whose keys are exactly these environment variable names; the app reads the same names
through ``webhook_app.settings``. Keeping the names in one module means a rename breaks
both sides at once instead of silently desynchronising them.
"""

from __future__ import annotations

from typing import Final

# Non-sensitive settings: rendered into the ConfigMap `<name>-config`.
HOST: Final = "HOST"
PORT: Final = "PORT"
WORKERS: Final = "WORKERS"
LOG_LEVEL: Final = "LOG_LEVEL"
REDIS_URL: Final = "REDIS_URL"
REDIS_STREAM: Final = "REDIS_STREAM"
GONG_API_BASE_URL: Final = "GONG_API_BASE_URL"
GONG_API_RATE_LIMIT: Final = "GONG_API_RATE_LIMIT"
GONG_API_BURST_LIMIT: Final = "GONG_API_BURST_LIMIT"
GONG_WEBHOOK_AUTH_MODE: Final = "GONG_WEBHOOK_AUTH_MODE"
GONG_WEBHOOK_PUBLIC_URL: Final = "GONG_WEBHOOK_PUBLIC_URL"
GONG_ENRICHMENT_ENABLED: Final = "GONG_ENRICHMENT_ENABLED"
SNOWFLAKE_ROLE: Final = "SNOWFLAKE_ROLE"
SNOWFLAKE_WAREHOUSE: Final = "SNOWFLAKE_WAREHOUSE"
SNOWFLAKE_DATABASE: Final = "SNOWFLAKE_DATABASE"
SNOWFLAKE_SCHEMA: Final = "SNOWFLAKE_SCHEMA"
SNOWFLAKE_HOST: Final = "SNOWFLAKE_HOST"
SNOWFLAKE_PORT: Final = "SNOWFLAKE_PORT"
SNOWFLAKE_PROTOCOL: Final = "SNOWFLAKE_PROTOCOL"
EVENT_SCOPE: Final = "EVENT_SCOPE"
# Tuning knobs added by the app (issue 4); all have defaults, so the operator may omit them.
MAX_BODY_BYTES: Final = "MAX_BODY_BYTES"
DEDUP_TTL_SECONDS: Final = "DEDUP_TTL_SECONDS"
RUN_LOADER_IN_PROCESS: Final = "RUN_LOADER_IN_PROCESS"
LOADER_BATCH_SIZE: Final = "LOADER_BATCH_SIZE"
LOADER_BLOCK_MS: Final = "LOADER_BLOCK_MS"
LOADER_MAX_DELIVERIES: Final = "LOADER_MAX_DELIVERIES"
LOADER_CLAIM_IDLE_MS: Final = "LOADER_CLAIM_IDLE_MS"
LOADER_METRICS_PORT: Final = "LOADER_METRICS_PORT"
GONG_ENRICHMENT_BATCH_SIZE: Final = "GONG_ENRICHMENT_BATCH_SIZE"
SNOWFLAKE_TIMEOUT_SECONDS: Final = "SNOWFLAKE_TIMEOUT_SECONDS"

# Credentials: rendered into the synced Secret `<name>-credentials`.
GONG_API_KEY: Final = "GONG_API_KEY"
GONG_API_SECRET: Final = "GONG_API_SECRET"
GONG_WEBHOOK_PUBLIC_KEYS: Final = "GONG_WEBHOOK_PUBLIC_KEYS"
GONG_WEBHOOK_SECRETS: Final = "GONG_WEBHOOK_SECRETS"
SNOWFLAKE_ACCOUNT: Final = "SNOWFLAKE_ACCOUNT"
SNOWFLAKE_USER: Final = "SNOWFLAKE_USER"
SNOWFLAKE_PASSWORD: Final = "SNOWFLAKE_PASSWORD"
SNOWFLAKE_PRIVATE_KEY: Final = "SNOWFLAKE_PRIVATE_KEY"
REDIS_PASSWORD: Final = "REDIS_PASSWORD"

CONFIG_KEYS: Final[frozenset[str]] = frozenset(
    {
        HOST, PORT, WORKERS, LOG_LEVEL, REDIS_URL, REDIS_STREAM, GONG_API_BASE_URL,
        GONG_API_RATE_LIMIT, GONG_API_BURST_LIMIT, GONG_WEBHOOK_AUTH_MODE, GONG_WEBHOOK_PUBLIC_URL,
        GONG_ENRICHMENT_ENABLED, SNOWFLAKE_ROLE, SNOWFLAKE_WAREHOUSE, SNOWFLAKE_DATABASE,
        SNOWFLAKE_SCHEMA, SNOWFLAKE_HOST, SNOWFLAKE_PORT, SNOWFLAKE_PROTOCOL, EVENT_SCOPE,
        MAX_BODY_BYTES, DEDUP_TTL_SECONDS, RUN_LOADER_IN_PROCESS, LOADER_BATCH_SIZE, LOADER_BLOCK_MS,
        LOADER_MAX_DELIVERIES, LOADER_CLAIM_IDLE_MS, LOADER_METRICS_PORT, GONG_ENRICHMENT_BATCH_SIZE,
        SNOWFLAKE_TIMEOUT_SECONDS,
    }
)
SECRET_KEYS: Final[frozenset[str]] = frozenset(
    {
        GONG_API_KEY, GONG_API_SECRET, GONG_WEBHOOK_PUBLIC_KEYS, GONG_WEBHOOK_SECRETS,
        SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, SNOWFLAKE_PASSWORD, SNOWFLAKE_PRIVATE_KEY, REDIS_PASSWORD,
    }
)

# Values of GONG_WEBHOOK_AUTH_MODE as the app reads them, keyed by the CRD's spec.gong.authMode
# (camelCase there, per Kubernetes API conventions).
AUTH_MODES: Final[dict[str, str]] = {"jwt": "jwt", "urlKey": "url-key"}

# HTTP routes the Deployment's probes and the Service rely on.
HEALTH_PATH: Final = "/health"
READY_PATH: Final = "/ready"
METRICS_PATH: Final = "/metrics"
WEBHOOK_PATH: Final = "/webhooks/gong"
CONTAINER_PORT: Final = 8080
