"""Operator settings: one explicit object, built from the CLI (and environment), passed everywhere."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gong_operator.pulumi_esc import DEFAULT_ALLOWED_HOSTS


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GONG_OPERATOR_", frozen=True)

    namespaces: tuple[str, ...] = Field((), description="Namespaces to serve; empty means all (cluster-wide).")
    field_manager: str = Field("gong-webhook-operator", description="Server-side apply field manager.")
    resync_seconds: float = Field(60.0, gt=0, description="Re-reconcile every object at least this often.")
    workers: int = Field(2, ge=1, le=32, description="Concurrent reconciles (never two for one object).")
    retry_base_seconds: float = Field(1.0, gt=0, description="First retry delay after a failed reconcile.")
    retry_max_seconds: float = Field(60.0, gt=0, description="Longest retry delay.")
    metrics_port: int = Field(8080, ge=0, le=65535, description="Prometheus port (0: off).")
    liveness_endpoint: str | None = Field("http://0.0.0.0:8081/healthz", description="Kopf liveness endpoint.")
    standalone: bool = Field(False, description="No peering: this process is always active.")
    peering_name: str = Field("gong-webhook-operator", description="Kopf peering object name.")
    priority: int = Field(
        0, description="Kopf peering priority; the highest live priority is active (the CLI's default: "
                       "gong_operator.peering.default_priority, the oldest replica wins).")
    peering_lifetime: int = Field(
        60, ge=10, le=3600,
        description="Seconds a keep-alive counts; a replica that dies silently is replaced after at most this.")
    log_format: str = Field("json", pattern="^(json|plain|full)$", description="Log format.")
    verbose: bool = Field(False, description="Debug logging.")
    api_timeout_seconds: float = Field(
        30.0, gt=0, description="Kubernetes API requests: connect timeout, then the longest silence while reading.")
    esc_deadline_seconds: float = Field(
        30.0, gt=0, description="Total deadline of one Pulumi ESC read (open + read), however the server trickles.")
    esc_allowed_hosts: tuple[str, ...] = Field(
        DEFAULT_ALLOWED_HOSTS, description="Hosts (or host:port) the operator may send Pulumi ESC access tokens to.")
    exit_grace_seconds: float = Field(
        5.0, ge=0, description="SIGTERM/SIGINT: how long (from the signal) to wait for running reconciles, first "
                               "before Kopf stops and hands the peering over, then before exiting without them.")
    stuck_reconcile_seconds: float = Field(
        300.0, gt=0, description="The liveness probe fails while one reconcile has run longer than this.")

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces
