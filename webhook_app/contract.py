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
GONG_API_DAILY_LIMIT: Final = "GONG_API_DAILY_LIMIT"
GONG_WEBHOOK_AUTH_MODE: Final = "GONG_WEBHOOK_AUTH_MODE"
GONG_WEBHOOK_PUBLIC_URL: Final = "GONG_WEBHOOK_PUBLIC_URL"
GONG_ENRICHMENT_ENABLED: Final = "GONG_ENRICHMENT_ENABLED"
GONG_ENRICHMENT_EXTENSIVE: Final = "GONG_ENRICHMENT_EXTENSIVE"
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
GONG_API_DAY_START_SECONDS: Final = "GONG_API_DAY_START_SECONDS"
METRICS_PORT: Final = "METRICS_PORT"

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
        SNOWFLAKE_TIMEOUT_SECONDS, GONG_API_DAILY_LIMIT, GONG_ENRICHMENT_EXTENSIVE, GONG_API_DAY_START_SECONDS,
        METRICS_PORT,
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
# The Deployment's METRICS_PORT: a port of its own, so a NetworkPolicy can admit scrapers to it alone.
METRICS_CONTAINER_PORT: Final = 9090

# What each name means, for people: rendered into docs/configuration.md by
# `python -m gong_operator.reference_docs --write`; a test keeps it complete.
DESCRIPTIONS: Final[dict[str, str]] = {
    HOST: "Listen address of the HTTP server.",
    PORT: "Listen port of the HTTP server (the operator's Deployment uses 8080).",
    WORKERS: "uvicorn worker processes; each builds its own app (and in-process loader) from the environment.",
    LOG_LEVEL: "Log level: DEBUG, INFO, WARNING or ERROR. Logs are JSON lines with secrets redacted.",
    REDIS_URL: "Redis URL (`redis://` or `rediss://`). A password belongs in REDIS_PASSWORD, not here.",
    REDIS_STREAM: "Redis stream the app appends accepted events to; the loader's consumer group reads it. "
                  "The dead-letter stream is `<stream>:dlq`.",
    GONG_API_BASE_URL: "Gong REST API base URL used by enrichment.",
    GONG_API_RATE_LIMIT: "Gong API calls per second, shared by all loaders through a Redis token bucket.",
    GONG_API_BURST_LIMIT: "Gong API token-bucket size.",
    GONG_API_DAILY_LIMIT: "Gong API calls per day, shared by all loaders through a counter in Redis (Gong's company "
                          "quota is 10,000/day). When it is spent, enrichment waits for the next day; nothing is lost.",
    GONG_API_DAY_START_SECONDS: "When the daily budget's day starts, in seconds after 00:00 UTC (0-86399; by Redis' "
                                "clock). Set it if your Gong quota resets at another time.",
    GONG_WEBHOOK_AUTH_MODE: "`jwt` (verify Gong's signed JWT header, RS256) or `url-key` (a secret key in the URL "
                            "path `/webhooks/gong/<key>`).",
    GONG_WEBHOOK_PUBLIC_URL: "The exact URL configured in the Gong automation rule; the JWT's `webhook_url` claim "
                             "must match it (compared normalised). Required in `jwt` mode.",
    GONG_ENRICHMENT_ENABLED: "Fetch call details from the Gong API for each loaded call (needs GONG_API_KEY/SECRET).",
    GONG_ENRICHMENT_EXTENSIVE: "With enrichment on, also fetch extensive call data (POST /v2/calls/extensive: parties, "
                               "topics, trackers, interaction stats, ...) into GONG_CALLS_EXTENSIVE; one more API call "
                               "per batch.",
    SNOWFLAKE_ROLE: "Snowflake role for the loader's session (optional).",
    SNOWFLAKE_WAREHOUSE: "Snowflake warehouse.",
    SNOWFLAKE_DATABASE: "Snowflake database (plain identifier).",
    SNOWFLAKE_SCHEMA: "Snowflake schema (plain identifier) of the tables; `gong-webhook-loader migrate` creates "
                      "them, the loader only checks they exist.",
    SNOWFLAKE_HOST: "Snowflake host override (PrivateLink, or a local test server); default: derived from the account.",
    SNOWFLAKE_PORT: "Snowflake port override.",
    SNOWFLAKE_PROTOCOL: "`https` (default) or `http` (local test servers only).",
    EVENT_SCOPE: "Prefix of event ids (`<scope>/<callId>`), so several Gong rules can share one table.",
    MAX_BODY_BYTES: "Largest accepted webhook body; larger ones get 413 before they are read in full.",
    DEDUP_TTL_SECONDS: "How long a call id is remembered for de-duplication at ingest (the MERGE de-duplicates "
                       "forever).",
    RUN_LOADER_IN_PROCESS: "Run the loader inside the app process (default). Set false and run "
                           "`gong-webhook-loader` separately to scale them apart.",
    LOADER_BATCH_SIZE: "Events per Snowflake MERGE.",
    LOADER_BLOCK_MS: "How long one XREADGROUP waits for new events.",
    LOADER_MAX_DELIVERIES: "Deliveries of one event before it is moved to the dead-letter stream.",
    LOADER_CLAIM_IDLE_MS: "Pending events idle this long (a crashed loader's) are claimed by a live loader. Default "
                          "3 x SNOWFLAKE_TIMEOUT_SECONDS; must exceed 2 x it (a dead loader's MERGE may still be "
                          "queued and running that long). A live loader keeps its batch claimed while it loads.",
    LOADER_METRICS_PORT: "Metrics port of a standalone `gong-webhook-loader` (0: off).",
    METRICS_PORT: "A second listener serving only `/metrics` (0: off; `/metrics` stays on PORT too). The "
                  "operator sets 9090 so its NetworkPolicy can admit the monitoring namespaces to metrics alone.",
    GONG_ENRICHMENT_BATCH_SIZE: "Call ids per Gong API request during enrichment.",
    SNOWFLAKE_TIMEOUT_SECONDS: "Login and network timeout of Snowflake calls; also the session's "
                               "STATEMENT_TIMEOUT_IN_SECONDS and STATEMENT_QUEUED_TIMEOUT_IN_SECONDS.",
    GONG_API_KEY: "Gong API access key (enrichment).",
    GONG_API_SECRET: "Gong API access key secret (enrichment).",
    GONG_WEBHOOK_PUBLIC_KEYS: "Public key(s) of the Gong automation rule: bare base64 DER as Gong shows it, or PEM; "
                              "several (rotation) separated by commas or newlines.",
    GONG_WEBHOOK_SECRETS: "URL keys accepted in `url-key` mode, comma or newline separated (rotation).",
    SNOWFLAKE_ACCOUNT: "Snowflake account identifier.",
    SNOWFLAKE_USER: "Snowflake user of the loader.",
    SNOWFLAKE_PASSWORD: "Snowflake password (or use SNOWFLAKE_PRIVATE_KEY).",
    SNOWFLAKE_PRIVATE_KEY: "Snowflake key-pair authentication: unencrypted PEM private key.",
    REDIS_PASSWORD: "Redis password (AUTH).",
}
