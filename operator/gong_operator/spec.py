"""The GongWebhook API, defined once: pydantic models for ``spec`` and ``status``.

The CRD's OpenAPI schema is generated from these models (see :mod:`gong_operator.crd`), so every
description, default, enum, minimum, pattern and CEL rule lives here. Validation that the API server
can do is expressed as schema (``x-kubernetes-validations`` CEL rules carry a message naming the
field); Python only re-parses a spec the server has already accepted, applying the same defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from gong_operator import derived_config
from webhook_app import contract

GROUP = "gong.sophia-ai.com"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "GongWebhook"
PLURAL = "gongwebhooks"
SINGULAR = "gongwebhook"
SHORT_NAMES = ("gw", "gongwh")
CATEGORIES = ("gong",)

# `extraConfig` may set every app setting the operator does not derive from typed spec fields (the
# derived ones are listed once, in derived_config).
EXTRA_CONFIG_KEYS: tuple[str, ...] = tuple(sorted(contract.CONFIG_KEYS - derived_config.DERIVED_CONFIG_KEYS))
SECRET_KEY_NAMES: tuple[str, ...] = tuple(sorted(contract.SECRET_KEYS))
DEFAULT_REQUIRED_KEYS: tuple[str, ...] = tuple(
    k for k in (contract.GONG_API_KEY, contract.GONG_API_SECRET, contract.SNOWFLAKE_ACCOUNT, contract.SNOWFLAKE_USER)
    if k in contract.SECRET_KEYS
)
AUTH_MODE_KEYS: dict[str, str] = {"jwt": contract.GONG_WEBHOOK_PUBLIC_KEYS, "urlKey": contract.GONG_WEBHOOK_SECRETS}

QUANTITY = r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"
DURATION = r"^([0-9]+(ms|s|m|h))+$"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
HOSTNAME = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$"
SF_IDENT = r"^[A-Za-z_][A-Za-z0-9_$]*$"
IMAGE = r"^[a-z0-9]+([._/:@-][a-zA-Z0-9_.-]+)*$"


def cel(rule: str, message: str, *, field_path: str | None = None, reason: str | None = None) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry; ``message`` must name the offending field."""
    out = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    if reason:
        out["reason"] = reason
    return out


def rules(*items: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(items)}


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


M = TypeVar("M", bound=_Model)


def _new(cls: type[M]) -> Callable[[], M]:
    """A default factory building the model from its own defaults."""
    return lambda: cls.model_validate({})


StrMap = dict[str, str]


def _map(description: str, *, max_props: int = 64) -> Any:
    return Field(
        default_factory=dict,
        description=description,
        json_schema_extra={"maxProperties": max_props, "propertyNames": {"maxLength": 253}},
    )


class ResourceList(_Model):
    cpu: str = Field("250m", description="CPU quantity, e.g. `250m` or `1`.", pattern=QUANTITY, max_length=32)
    memory: str = Field("512Mi", description="Memory quantity, e.g. `512Mi` or `2Gi`.", pattern=QUANTITY,
                        max_length=32)
    ephemeral_storage: str = Field(
        "128Mi", description="Node disk (the /tmp emptyDir and container logs), e.g. `128Mi`.", pattern=QUANTITY,
        max_length=32)


class ResourceLimits(_Model):
    cpu: str = Field("1", description="CPU quantity, e.g. `500m` or `1`.", pattern=QUANTITY, max_length=32)
    memory: str = Field("2Gi", description="Memory quantity, e.g. `1Gi` or `2Gi`.", pattern=QUANTITY,
                        max_length=32)
    ephemeral_storage: str = Field(
        "1Gi", description="Node disk a pod may use (the /tmp emptyDir and container logs) before the kubelet "
        "evicts it, e.g. `1Gi`.", pattern=QUANTITY, max_length=32)


class Resources(_Model):
    model_config = ConfigDict(
        json_schema_extra=rules(
            cel("quantity(self.requests.cpu).compareTo(quantity(self.limits.cpu)) <= 0",
                "spec.resources.requests.cpu must not exceed spec.resources.limits.cpu",
                field_path=".requests.cpu"),
            cel("quantity(self.requests.memory).compareTo(quantity(self.limits.memory)) <= 0",
                "spec.resources.requests.memory must not exceed spec.resources.limits.memory",
                field_path=".requests.memory"),
            cel("quantity(self.requests.ephemeralStorage).compareTo(quantity(self.limits.ephemeralStorage)) <= 0",
                "spec.resources.requests.ephemeralStorage must not exceed spec.resources.limits.ephemeralStorage",
                field_path=".requests.ephemeralStorage"),
            cel("quantity(self.tmpSizeLimit).compareTo(quantity(self.limits.ephemeralStorage)) <= 0",
                "spec.resources.tmpSizeLimit must not exceed spec.resources.limits.ephemeralStorage (the emptyDir "
                "counts against it)", field_path=".tmpSizeLimit"),
        )
    )
    requests: ResourceList = Field(
        default_factory=_new(ResourceList),
        description="Guaranteed resources per pod (default 250m CPU, 512Mi memory, 128Mi ephemeral storage).")
    limits: ResourceLimits = Field(
        default_factory=_new(ResourceLimits),
        description="Resource ceiling per pod (default 1 CPU, 2Gi memory, 1Gi ephemeral storage).")
    tmp_size_limit: str = Field(
        "256Mi", description="sizeLimit of the /tmp emptyDir (the root filesystem is read-only); a pod writing "
        "more is evicted.", pattern=QUANTITY, max_length=32)


class ScaleUp(_Model):
    percent: int = Field(100, ge=1, le=1000, description="Scale up by at most this percentage per period.")
    pods: int = Field(2, ge=1, le=100, description="Or by at most this many pods per period (the larger wins).")
    period_seconds: int = Field(60, ge=1, le=1800, description="Length of a scale-up period in seconds.")


class ScaleDown(_Model):
    percent: int = Field(10, ge=1, le=100, description="Scale down by at most this percentage per period.")
    period_seconds: int = Field(60, ge=1, le=1800, description="Length of a scale-down period in seconds.")
    stabilization_window_seconds: int = Field(
        300, ge=0, le=3600, description="Scale down only to the highest recommendation of this window (seconds)."
    )


class Autoscaling(_Model):
    model_config = ConfigDict(
        json_schema_extra=rules(
            cel("self.minReplicas <= self.maxReplicas",
                "spec.autoscaling.minReplicas must be less than or equal to spec.autoscaling.maxReplicas",
                field_path=".minReplicas"),
        )
    )
    enabled: bool = Field(True, description="Create a HorizontalPodAutoscaler (autoscaling/v2) for the Deployment.")
    min_replicas: int = Field(3, ge=1, le=100, description="Lowest replica count the autoscaler may choose.")
    max_replicas: int = Field(10, ge=1, le=100, description="Highest replica count the autoscaler may choose.")
    target_cpu_utilization_percentage: int = Field(70, ge=1, le=100, description="Average CPU utilisation target (%).")
    target_memory_utilization_percentage: int = Field(80, ge=1, le=100,
                                                      description="Average memory utilisation target (%).")
    scale_up: ScaleUp = Field(default_factory=_new(ScaleUp), description="Scale-up rate limits.")
    scale_down: ScaleDown = Field(default_factory=_new(ScaleDown),
                                  description="Scale-down rate limits and stabilisation.")


class ServiceSpec(_Model):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field("ClusterIP", description="Kubernetes Service type.")
    port: int = Field(80, ge=1, le=65535, description="Service port; traffic goes to container port 8080.")
    session_affinity: Literal["None", "ClientIP"] = Field("None", description="Service session affinity.")
    annotations: StrMap = _map("Extra annotations for the Service.")


class IngressSpec(_Model):
    model_config = ConfigDict(
        json_schema_extra=rules(
            cel("!self.enabled || (has(self.host) && self.host != '')",
                "spec.ingress.host is required when spec.ingress.enabled is true", field_path=".host"),
            cel("!has(self.tlsSecretName) || self.tlsSecretName == '' || (has(self.host) && self.host != '')",
                "spec.ingress.tlsSecretName needs spec.ingress.host", field_path=".tlsSecretName"),
        )
    )
    enabled: bool = Field(False, description="Create an Ingress routing the public host to the Service.")
    host: str | None = Field(None, description="Public host name (required when enabled).", pattern=HOSTNAME,
                             max_length=253)
    class_name: str | None = Field(None, description="IngressClass name, e.g. `nginx`.", pattern=DNS_SUBDOMAIN,
                                   max_length=253)
    tls_secret_name: str | None = Field(None, description="Secret with the TLS certificate for the host.",
                                        pattern=DNS_SUBDOMAIN, max_length=253)
    path: str | None = Field(
        None,
        description="Path prefix routed to the service; must start with `/`. Unset (or `/`, the former default): "
        "only the webhook path, `/webhooks/gong` (Exact in jwt mode, Prefix in urlKey mode for "
        "`/webhooks/gong/<key>`), so /metrics, /health and /ready are not published.",
        pattern=r"^/\S*$", max_length=512)
    rate_limit_rps: int = Field(
        50, ge=1, le=100000,
        description="Requests per second per client IP, written as `nginx.ingress.kubernetes.io/limit-rps`.",
    )
    annotations: StrMap = _map("Extra annotations for the Ingress (controller-specific options).")


class NetworkPolicySpec(_Model):
    enabled: bool = Field(True, description="Create a NetworkPolicy restricting ingress and egress of the pods.")
    ingress_namespaces: list[str] = Field(
        default_factory=lambda: ["ingress-nginx"],
        description="Namespaces (by name) whose pods may call the webhook port (the ingress controller).",
        json_schema_extra={"maxItems": 32, "items": {"pattern": DNS_LABEL, "maxLength": 63}},
    )
    monitoring_namespaces: list[str] = Field(
        default_factory=lambda: ["monitoring"],
        description="Namespaces (by name) whose pods may scrape the metrics endpoint.",
        json_schema_extra={"maxItems": 32, "items": {"pattern": DNS_LABEL, "maxLength": 63}},
    )
    allow_dns: bool = Field(True, description="Allow egress to DNS (UDP/TCP 53).")
    allow_https: bool = Field(True, description="Allow egress to HTTPS (TCP 443) for the Gong and Snowflake APIs.")
    redis_port: int = Field(6379, ge=1, le=65535, description="Allow egress to Redis on this TCP port.")


class DisruptionBudgetSpec(_Model):
    enabled: bool = Field(True, description="Create a PodDisruptionBudget (policy/v1).")
    min_available: int = Field(2, ge=0, le=100, description="Pods that must stay available during disruptions.")


class ServiceMonitorSpec(_Model):
    model_config = ConfigDict(
        json_schema_extra=rules(
            cel("duration(self.scrapeTimeout) <= duration(self.interval)",
                "spec.monitoring.serviceMonitor.scrapeTimeout must not exceed spec.monitoring.serviceMonitor.interval",
                field_path=".scrapeTimeout"),
        )
    )
    enabled: bool = Field(True, description="Create a monitoring.coreos.com/v1 ServiceMonitor when that CRD exists.")
    interval: str = Field("30s", description="Scrape interval (Go duration).", pattern=DURATION, max_length=32)
    scrape_timeout: str = Field("10s", description="Scrape timeout (Go duration).", pattern=DURATION, max_length=32)
    labels: StrMap = _map("Extra labels on the ServiceMonitor (e.g. the Prometheus `release` selector).")


class MonitoringSpec(_Model):
    service_monitor: ServiceMonitorSpec = Field(default_factory=_new(ServiceMonitorSpec),
                                                description="Prometheus Operator ServiceMonitor settings.")


class GongSpec(_Model):
    api_base_url: str = Field("https://api.gong.io", description="Gong API base URL (https only).",
                              pattern=r"^https://[^\s/]+(/\S*)?$", max_length=2048)
    rate_limit: float = Field(2.5, gt=0, le=100, description="Gong API calls per second.")
    burst: int = Field(10, ge=1, le=1000, description="Gong API burst size.")
    daily_limit: int = Field(
        10000, ge=1, le=10_000_000,
        description="Gong API calls per day, shared by all replicas through Redis (Gong's default company quota is "
        "10,000). When it is spent, enrichment waits for the next day (00:00 UTC unless extraConfig "
        "GONG_API_DAY_START_SECONDS moves it); nothing is lost.",
    )
    auth_mode: Literal["jwt", "urlKey"] = Field(
        "jwt", description="How incoming webhooks are authenticated: `jwt` (signed, public keys) or `urlKey`."
    )
    public_url: str | None = Field(
        None,
        description="The URL Gong is configured to call; reported as status.endpoint and rendered as "
        "GONG_WEBHOOK_PUBLIC_URL (the JWT's webhook_url claim must match it). Derived from the ingress when unset "
        "(`http(s)://<ingress.host>/webhooks/gong`); required in jwt mode without an ingress.",
        pattern=r"^https?://\S+$", max_length=2048,
    )
    enrichment_enabled: bool = Field(True, description="Fetch call details from the Gong API for each webhook.")
    enrichment_extensive: bool = Field(
        False,
        description="With enrichment on, also fetch extensive call data (parties, topics, trackers, interaction "
        "stats) into GONG_CALLS_EXTENSIVE; one more API call per batch.",
    )


class RedisSpec(_Model):
    model_config = ConfigDict(
        json_schema_extra=rules(
            cel("self.stream == oldSelf.stream",
                "spec.redis.stream is immutable: unconsumed events would be orphaned; create a new GongWebhook",
                field_path=".stream"),
        )
    )
    url: str = Field("redis://redis:6379/0", description="Redis URL (password comes from the synced Secret).",
                     pattern=r"^rediss?://\S+$", max_length=2048)
    stream: str = Field("gong:webhooks", min_length=1, max_length=256, description="Redis stream the app writes to.")


class SnowflakeSpec(_Model):
    warehouse: str = Field("COMPUTE_WH", description="Snowflake warehouse.", pattern=SF_IDENT, max_length=255)
    database: str = Field("SOPHIA_AI", description="Snowflake database.", pattern=SF_IDENT, max_length=255)
    schema_: str = Field("GONG_WEBHOOKS", alias="schema", description="Snowflake schema.", pattern=SF_IDENT,
                         max_length=255)
    role: str | None = Field(None, description="Snowflake role (optional).", pattern=SF_IDENT, max_length=255)


class SecretRef(_Model):
    name: str = Field(..., description="Name of the source Secret.", pattern=DNS_SUBDOMAIN, max_length=253)
    namespace: str | None = Field(
        None, description="Namespace of the source Secret (default: the GongWebhook's). A Secret in another "
        "namespace is synced only if its annotation `gong.sophia-ai.com/allow-sync-to` (comma-separated "
        "namespace names) lists the GongWebhook's namespace; otherwise SecretsSynced=False, reason SourceNotShared.",
        pattern=DNS_LABEL, max_length=63)


class SecretKeyRef(_Model):
    name: str = Field(..., description="Secret name (in the GongWebhook's namespace).", pattern=DNS_SUBDOMAIN,
                      max_length=253)
    key: str = Field("accessToken", description="Key holding the value.", pattern=r"^[-._a-zA-Z0-9]+$",
                     max_length=253)


class PulumiEscSpec(_Model):
    organization: str = Field(..., description="Pulumi organization.", pattern=r"^[A-Za-z0-9][-_.A-Za-z0-9]*$",
                              max_length=100)
    project: str = Field("default", description="ESC project.", pattern=r"^[A-Za-z0-9][-_.A-Za-z0-9]*$",
                         max_length=100)
    environment: str = Field(..., description="ESC environment name.", pattern=r"^[A-Za-z0-9][-_.A-Za-z0-9]*$",
                             max_length=100)
    access_token_secret_ref: SecretKeyRef = Field(..., description="Secret holding the Pulumi access token.")
    api_url: str = Field(
        "https://api.pulumi.com",
        description="Pulumi Cloud API URL (https only). The operator sends the access token there, so its host must "
        "also be on the operator's allowlist (`--esc-allowed-host`, default api.pulumi.com); otherwise "
        "SecretsSynced=False, reason PulumiEscUrlNotAllowed.",
        pattern=r"^https://[^\s/]+(/\S*)?$", max_length=2048)


class SecretsSpec(_Model):
    model_config = ConfigDict(
        json_schema_extra=rules(
            cel("has(self.sourceRef) != has(self.pulumiEsc)",
                "exactly one of spec.secrets.sourceRef and spec.secrets.pulumiEsc must be set",
                field_path=".sourceRef"),
        )
    )
    source_ref: SecretRef | None = Field(None, description="An existing Secret holding the credentials.")
    pulumi_esc: PulumiEscSpec | None = Field(None, description="A Pulumi ESC environment holding the credentials.")
    required_keys: list[str] = Field(
        default_factory=lambda: list(DEFAULT_REQUIRED_KEYS),
        description="Keys that must be present before pods are (re)deployed; the key for `gong.authMode` is "
        "always required in addition.",
        json_schema_extra={"maxItems": len(SECRET_KEY_NAMES), "items": {"enum": list(SECRET_KEY_NAMES)},
                           "x-kubernetes-list-type": "set"},
    )
    refresh_interval: str = Field("5m", description="Re-read the source at least this often (Go duration).",
                                  pattern=DURATION, max_length=32)

    @field_validator("required_keys")
    @classmethod
    def _known_keys(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - contract.SECRET_KEYS)
        if unknown:
            raise ValueError(f"unknown secret keys: {unknown}")
        return value


class Toleration(_Model):
    """A pod toleration (core/v1 Toleration subset)."""

    key: str | None = Field(None, description="Taint key.", max_length=316)
    operator: Literal["Exists", "Equal"] = Field("Equal", description="`Exists` or `Equal`.")
    value: str | None = Field(None, description="Taint value for `Equal`.", max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(None, description="Taint effect.")
    toleration_seconds: int | None = Field(None, ge=0, description="For NoExecute: how long to stay bound.")


class PodSpecExtras(_Model):
    node_selector: StrMap = _map("Node labels the pods must match.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Pod tolerations.",
                                          json_schema_extra={"maxItems": 32})
    priority_class_name: str | None = Field(None, description="PriorityClass of the pods.", pattern=DNS_SUBDOMAIN,
                                            max_length=253)
    service_account_name: str | None = Field(None, description="ServiceAccount the pods run as (default: `default`).",
                                             pattern=DNS_SUBDOMAIN, max_length=253)
    annotations: StrMap = _map("Extra pod-template annotations.")
    labels: StrMap = _map("Extra pod-template labels.")
    env_from_config_maps: list[str] = Field(
        default_factory=list, description="Extra ConfigMaps loaded as environment (after the operator's own).",
        json_schema_extra={"maxItems": 16, "items": {"pattern": DNS_SUBDOMAIN, "maxLength": 253}},
    )


class GongWebhookSpec(_Model):
    model_config = ConfigDict(
        json_schema_extra=rules(
            cel("!self.autoscaling.enabled || !has(self.replicas)",
                "spec.replicas must not be set when spec.autoscaling.enabled is true (the HPA owns the replica "
                "count; use spec.autoscaling.minReplicas)", field_path=".replicas"),
            cel("!self.disruptionBudget.enabled || self.disruptionBudget.minAvailable < "
                "(self.autoscaling.enabled ? self.autoscaling.minReplicas : (has(self.replicas) ? self.replicas : 3))",
                "spec.disruptionBudget.minAvailable must be lower than the replica count (spec.replicas or "
                "spec.autoscaling.minReplicas), or no pod could ever be evicted",
                field_path=".disruptionBudget.minAvailable"),
            # The app verifies the JWT's `webhook_url` claim against the URL Gong calls; without one it
            # refuses to start, so such a CR is refused here instead of rendering a crash loop.
            cel("self.gong.authMode != 'jwt' || (has(self.gong.publicUrl) && self.gong.publicUrl != '') || "
                "(self.ingress.enabled && has(self.ingress.host) && self.ingress.host != '')",
                "spec.gong.publicUrl is required when spec.gong.authMode is jwt and spec.ingress is not enabled: "
                "set spec.gong.publicUrl to the URL configured in the Gong automation rule (Gong signs it into the "
                "JWT's webhook_url claim), or enable spec.ingress with a host (the URL is then "
                "http(s)://<host>" + contract.WEBHOOK_PATH + ")", field_path=".gong.publicUrl"),
            cel("!has(self.extraConfig) || self.extraConfig.all(k, k in "
                + repr(list(EXTRA_CONFIG_KEYS)).replace('"', "'") + ")",
                "spec.extraConfig keys must be app settings not derived from typed fields: "
                + ", ".join(EXTRA_CONFIG_KEYS), field_path=".extraConfig"),
        )
    )
    image: str = Field("ghcr.io/sophia-ai/gong-webhook:0.1.0", description="Container image of the webhook app.",
                       pattern=IMAGE, max_length=512)
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field("IfNotPresent",
                                                                         description="Image pull policy.")
    replicas: int | None = Field(
        None, ge=0, le=100,
        description="Fixed replica count when autoscaling is disabled (default 3). Must be unset while "
        "spec.autoscaling.enabled is true.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="App log level.")
    resources: Resources = Field(default_factory=_new(Resources), description="Container resources.")
    autoscaling: Autoscaling = Field(default_factory=_new(Autoscaling), description="HorizontalPodAutoscaler settings.")
    service: ServiceSpec = Field(default_factory=_new(ServiceSpec), description="Service settings.")
    ingress: IngressSpec = Field(default_factory=_new(IngressSpec), description="Ingress settings.")
    network_policy: NetworkPolicySpec = Field(default_factory=_new(NetworkPolicySpec),
                                              description="NetworkPolicy settings.")
    disruption_budget: DisruptionBudgetSpec = Field(default_factory=_new(DisruptionBudgetSpec),
                                                    description="PodDisruptionBudget settings.")
    monitoring: MonitoringSpec = Field(default_factory=_new(MonitoringSpec), description="Prometheus monitoring.")
    gong: GongSpec = Field(default_factory=_new(GongSpec), description="Gong API and webhook settings.")
    redis: RedisSpec = Field(default_factory=_new(RedisSpec), description="Redis stream settings.")
    snowflake: SnowflakeSpec = Field(default_factory=_new(SnowflakeSpec), description="Snowflake target.")
    secrets: SecretsSpec = Field(..., description="Where the credentials come from.")
    extra_config: StrMap = _map("Extra app settings (ConfigMap keys) not covered by typed fields.")
    pod: PodSpecExtras = Field(default_factory=_new(PodSpecExtras),
                               description="Pod-level scheduling and metadata extras.")
    suspend: bool = Field(
        False, description="Scale to zero and stop reconciling other changes until set back to false."
    )

    @property
    def effective_replicas(self) -> int:
        return 3 if self.replicas is None else self.replicas

    @property
    def required_secret_keys(self) -> tuple[str, ...]:
        keys = set(self.secrets.required_keys)
        auth_key = AUTH_MODE_KEYS.get(self.gong.auth_mode)
        if auth_key and auth_key in contract.SECRET_KEYS:
            keys.add(auth_key)
        return tuple(sorted(keys))


# ------------------------------------------------------------------------------------------ status


class ConditionState(_Model):
    """What a condition says (the part the operator decides; :class:`Condition` adds when and for which
    generation). ``gong_operator.status.Cond`` is this model with positional arguments."""

    type: str = Field(..., description="Condition type.", max_length=316)
    status: Literal["True", "False", "Unknown"] = Field(..., description="True, False or Unknown.")
    reason: str = Field(..., description="CamelCase reason for the last transition.", max_length=1024)
    message: str = Field("", description="Human-readable detail.", max_length=32768)


class Condition(ConditionState):
    """A condition in the metav1.Condition shape."""

    last_transition_time: str = Field(..., description="When the status last changed (RFC 3339).")
    observed_generation: int = Field(0, ge=0, description="metadata.generation this condition was set for.")


class ChildRef(_Model):
    """A child object the operator manages."""

    api_version: str = Field(..., description="apiVersion of the child.")
    kind: str = Field(..., description="Kind of the child.")
    name: str = Field(..., description="Name of the child.")


# ``.status`` as the operator writes it: the CRD's status schema is generated from this model and every
# status write is this model dumped (``status.to_json``), so the two cannot drift. (A comment, not a
# docstring: a docstring would become the schema's description.)
class GongWebhookStatus(_Model):
    observed_generation: int = Field(0, description="metadata.generation the status was computed for.")
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready, Progressing, Degraded, SecretsSynced, MonitoringConfigured.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    replicas: int = Field(0, description="Desired replicas of the Deployment.")
    ready_replicas: int = Field(0, description="Ready replicas of the Deployment.")
    updated_replicas: int = Field(0, description="Replicas running the current pod template.")
    replicas_summary: str = Field("", description="`ready/desired`, for the REPLICAS printer column.")
    selector: str = Field("", description="Pod label selector (for the scale subresource).")
    endpoint: str = Field("", description="The URL Gong must send webhooks to.")
    secrets: str = Field("", description="`Synced`, or why the credentials are not synced (printer column).")
    secret_hash: str = Field("", description="Short hash of the synced credentials and config (rolls the pods).")
    suspended: bool = Field(False, description="Whether the GongWebhook is suspended.")
    children: list[ChildRef] = Field(default_factory=list, description="Child objects the operator manages.")
