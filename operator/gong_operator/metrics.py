"""Prometheus metrics of the operator itself (served by ``gong-webhook-operator --metrics-port``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "gong_operator_reconciles_total", "Reconciles of GongWebhook objects.", ["trigger", "result"]
)
RECONCILE_ERRORS = Counter(
    "gong_operator_reconcile_errors_total", "Reconciles that failed, by stage.", ["stage"]
)
RECONCILE_DURATION = Histogram(
    "gong_operator_reconcile_duration_seconds", "Duration of one reconcile.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CHILDREN_APPLIED = Counter(
    "gong_operator_children_applied_total", "Child objects created, updated or deleted.", ["kind", "action"]
)
API_WRITES = Counter(
    "gong_operator_api_writes_total", "Write requests sent to the API server.", ["verb", "resource"]
)
SECRET_SYNCS = Counter(
    "gong_operator_secret_syncs_total", "Credential source reads, by source kind and result.", ["source", "result"]
)
QUEUE_DEPTH = Gauge("gong_operator_workqueue_depth", "Keys waiting in the reconcile queue.")
MANAGED = Gauge("gong_operator_managed_objects", "GongWebhook objects known to this replica.")
ACTIVE = Gauge("gong_operator_active", "1 while this replica is the active peer (or standalone).")
READY = Gauge(
    "gong_operator_gongwebhook_ready", "1 while the GongWebhook's Ready condition is True.",
    ["gongwebhook_namespace", "gongwebhook"],
)
# Computed at scrape time from the Controller (controller.Controller.start binds them); the same numbers
# the liveness probe judges.
HEALTHY = Gauge(
    "gong_operator_healthy",
    "1 while the liveness check passes: every worker and the resync loop run, no reconcile is stuck.",
)
WORKERS_ALIVE = Gauge("gong_operator_workers_alive", "Worker loops still running (equals --workers when healthy).")
OLDEST_RECONCILE = Gauge(
    "gong_operator_oldest_reconcile_seconds", "Age of the oldest reconcile in progress (0 when idle).",
)
PEERING_READY = Gauge(
    "gong_operator_peering_ready",
    "1 while Kopf's peering CRD and object exist (always with --standalone); 0 while the operator waits for them "
    "and reconciles nothing (the log says which is missing).",
)
