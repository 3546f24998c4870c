"""Names of the Redis keys derived from REDIS_STREAM, in one place for the app, loader and tools."""

from __future__ import annotations

LOADER_GROUP = "snowflake-loader"
ENRICH_GROUP = "gong-enricher"


def dlq_stream(stream: str) -> str:
    return f"{stream}:dlq"


def errors_hash(stream: str) -> str:
    """Last load error per pending entry id, carried into the DLQ entry."""
    return f"{stream}:errors"


def enrich_stream(stream: str) -> str:
    return f"{stream}:enrich"


def rate_limit_key(stream: str) -> str:
    return f"{stream}:gong-api-bucket"


def daily_budget_key(stream: str) -> str:
    return f"{stream}:gong-api-daily"


def snowflake_status_key(stream: str) -> str:
    """Set by loaders while Snowflake tables are missing (JSON, with a TTL); read by /ready."""
    return f"{stream}:snowflake-status"
