"""Prometheus series of the ingest service and the loader (one registry per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "gong_webhook_http_requests_total", "HTTP requests by route template and status code.",
            ["route", "status"], registry=r,
        )
        self.verification_failures = Counter(
            "gong_webhook_verification_failures_total", "Webhook authentication failures by reason.",
            ["reason"], registry=r,
        )
        self.events = Counter(
            "gong_webhook_events_total", "Authenticated webhooks by outcome (accepted, duplicate, rejected).",
            ["outcome"], registry=r,
        )
        self.enqueue_seconds = Histogram(
            "gong_webhook_enqueue_seconds", "Latency of the atomic dedup + XADD to Redis.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.stream_length = Gauge(
            "gong_webhook_stream_length", "Entries in the Redis stream (acked entries are deleted).",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "gong_webhook_consumer_lag", "Entries not yet delivered to the loader consumer group.", registry=r,
        )
        self.pending = Gauge(
            "gong_webhook_pending_entries", "Entries delivered to a loader but not yet acknowledged.",
            registry=r,
        )
        self.dlq_depth = Gauge("gong_webhook_dlq_depth", "Entries in the dead-letter stream.", registry=r)
        self.loader_batch_size = Histogram(
            "gong_webhook_loader_batch_size", "Events per Snowflake MERGE.",
            buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000), registry=r,
        )
        self.loader_batch_seconds = Histogram(
            "gong_webhook_loader_batch_seconds", "Duration of one loader batch (MERGE + commit + ack).",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r,
        )
        self.loaded_events = Counter(
            "gong_webhook_loaded_events_total", "Events acknowledged after a committed MERGE.", registry=r,
        )
        self.snowflake_errors = Counter(
            "gong_webhook_snowflake_errors_total",
            "Failed Snowflake statements by kind (transient: connection; data: the statement was refused).",
            ["kind"], registry=r,
        )
        self.snowflake_missing_tables = Gauge(
            "gong_webhook_snowflake_missing_tables",
            "Snowflake tables this loader writes that do not exist or its role cannot see, as last checked "
            "(0: all there). Loading is paused while it is above 0; run gong-webhook-loader migrate.",
            registry=r,
        )
        self.dead_lettered = Counter(
            "gong_webhook_dead_lettered_total", "Events moved to the dead-letter stream.", registry=r,
        )
        self.gong_api_requests = Counter(
            "gong_webhook_gong_api_requests_total", "Gong REST API requests by endpoint and status code.",
            ["endpoint", "status"], registry=r,
        )
        self.gong_api_throttled = Counter(
            "gong_webhook_gong_api_throttled_total", "Gong REST API answers 429 (rate limited).", registry=r,
        )
        self.transcripts_loaded = Counter(
            "gong_webhook_transcripts_loaded_total", "Call transcripts merged into Snowflake.", registry=r,
        )
        self.extensive_calls_loaded = Counter(
            "gong_webhook_extensive_calls_loaded_total",
            "Extensive call objects (/v2/calls/extensive) merged into Snowflake.", registry=r,
        )
        self.gong_api_auth_failures = Counter(
            "gong_webhook_gong_api_auth_failures_total",
            "Gong REST API answers 401/403 (credentials or scope refused); enrichment holds its batch meanwhile.",
            registry=r,
        )
        self.gong_api_auth_failing = Gauge(
            "gong_webhook_gong_api_auth_failing",
            "1 while the Gong REST API refuses this process's credentials (its last answer was 401/403), else 0.",
            registry=r,
        )
        self.gong_api_daily_budget_remaining = Gauge(
            "gong_webhook_gong_api_daily_budget_remaining",
            "Gong API calls left today in the budget shared through Redis, as this process last saw it "
            "(NaN until it has asked).", registry=r,
        )
        # NaN rather than 0 before the first request: a process that never enriches must not look
        # like one whose budget is spent.
        self.gong_api_daily_budget_remaining.set(float("nan"))
        self.gong_api_budget_deferrals = Counter(
            "gong_webhook_gong_api_budget_deferrals_total",
            "Enrichment batches put off until the next day because the daily Gong API budget was spent.",
            registry=r,
        )
        # Known label values start at 0, so rate() and absent-series alerts work from the first scrape.
        for outcome in ("accepted", "duplicate", "rejected"):
            self.events.labels(outcome=outcome)
        for kind in ("transient", "data"):
            self.snowflake_errors.labels(kind=kind)
