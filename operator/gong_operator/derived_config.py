"""The app settings the operator derives from the spec into the ConfigMap, listed once. Pure.

Each row is a key of :mod:`webhook_app.contract` and how its value is derived from the spec (None:
the key is not written for this spec). Read by ``spec`` (which keys ``spec.extraConfig`` may not
set, a CEL rule of the CRD), ``children.config_data`` (the ConfigMap) and ``reference_docs`` (the
"set by the operator" column). This module imports no other ``gong_operator`` module at run time
(the spec model only for type checking), since ``spec`` needs the key list to define its CEL rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from webhook_app import contract

if TYPE_CHECKING:
    from gong_operator.spec import GongWebhookSpec


@dataclass(frozen=True)
class DerivedKey:
    key: str
    derive: Callable[[GongWebhookSpec], str | None]
    # Whether spec.extraConfig may still name the key (the derived value wins). Only METRICS_PORT:
    # it was never added to the CEL list, and refusing it now would change the CRD (a change of its own).
    extra_config_allowed: bool = False


def public_url(spec: GongWebhookSpec) -> str | None:
    """The URL Gong calls from outside: ``gong.publicUrl``, else the Ingress host's webhook URL, else
    none (a CEL rule refuses JWT mode without one: the app cannot check the token's URL claim)."""
    if spec.gong.public_url:
        return str(spec.gong.public_url)
    if spec.ingress.enabled and spec.ingress.host:
        scheme = "https" if spec.ingress.tls_secret_name else "http"
        return f"{scheme}://{spec.ingress.host}{contract.WEBHOOK_PATH}"
    return None


def _flag(value: bool) -> str:
    return "true" if value else "false"


# In the order the ConfigMap lists them (the content hash that rolls the pods covers the data as is).
DERIVED_CONFIG: tuple[DerivedKey, ...] = (
    DerivedKey(contract.HOST, lambda spec: "0.0.0.0"),  # the pod's listener: all interfaces
    DerivedKey(contract.PORT, lambda spec: str(contract.CONTAINER_PORT)),
    DerivedKey(contract.METRICS_PORT, lambda spec: str(contract.METRICS_CONTAINER_PORT), extra_config_allowed=True),
    DerivedKey(contract.LOG_LEVEL, lambda spec: spec.log_level),
    DerivedKey(contract.REDIS_URL, lambda spec: spec.redis.url),
    DerivedKey(contract.REDIS_STREAM, lambda spec: spec.redis.stream),
    DerivedKey(contract.GONG_API_BASE_URL, lambda spec: spec.gong.api_base_url),
    DerivedKey(contract.GONG_API_RATE_LIMIT, lambda spec: repr(spec.gong.rate_limit)),
    DerivedKey(contract.GONG_API_BURST_LIMIT, lambda spec: str(spec.gong.burst)),
    DerivedKey(contract.GONG_WEBHOOK_AUTH_MODE, lambda spec: contract.AUTH_MODES[spec.gong.auth_mode]),
    DerivedKey(contract.GONG_ENRICHMENT_ENABLED, lambda spec: _flag(spec.gong.enrichment_enabled)),
    DerivedKey(contract.GONG_API_DAILY_LIMIT, lambda spec: str(spec.gong.daily_limit)),
    DerivedKey(contract.GONG_ENRICHMENT_EXTENSIVE, lambda spec: _flag(spec.gong.enrichment_extensive)),
    DerivedKey(contract.SNOWFLAKE_WAREHOUSE, lambda spec: spec.snowflake.warehouse),
    DerivedKey(contract.SNOWFLAKE_DATABASE, lambda spec: spec.snowflake.database),
    DerivedKey(contract.SNOWFLAKE_SCHEMA, lambda spec: spec.snowflake.schema_),
    # In JWT mode the app compares the token's `webhook_url` claim with this; Gong signs the URL it
    # calls, which is the public endpoint (the same one status.endpoint reports).
    DerivedKey(contract.GONG_WEBHOOK_PUBLIC_URL, lambda spec: public_url(spec) or None),
    DerivedKey(contract.SNOWFLAKE_ROLE, lambda spec: spec.snowflake.role or None),
)

# Every key the operator may write from typed fields (what the reference docs call "rendered from spec").
RENDERED_KEYS: frozenset[str] = frozenset(row.key for row in DERIVED_CONFIG) & contract.CONFIG_KEYS
# The keys spec.extraConfig may not set.
DERIVED_CONFIG_KEYS: frozenset[str] = frozenset(
    row.key for row in DERIVED_CONFIG if not row.extra_config_allowed) & contract.CONFIG_KEYS


def derive(spec: GongWebhookSpec) -> dict[str, str]:
    """The derived keys with a value for this spec, in table order."""
    out: dict[str, str] = {}
    for row in DERIVED_CONFIG:
        value = row.derive(spec)
        if value is not None:
            out[row.key] = value
    return out
