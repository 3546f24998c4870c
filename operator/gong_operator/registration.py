"""Kopf wiring: Kopf's settings spelled out, and the handlers attached to an explicit registry.

Kopf owns the watches (GongWebhooks, the owned child kinds, Secrets), peering, liveness and login;
each handler only hands its event to the :class:`~gong_operator.controller.Controller`; the startup
handler also takes SIGTERM/SIGINT over from Kopf (:mod:`gong_operator.shutdown`: drain, then stop). No
change-detecting handlers, timers or daemons are used, so Kopf never adds a finalizer or annotations
to a GongWebhook: deleting one is left to the garbage collector. No module-level registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from gong_operator import children, spec
from gong_operator.controller import Controller
from gong_operator.settings import OperatorSettings
from gong_operator.shutdown import GracefulStop

MANAGED_SELECTOR = {"app.kubernetes.io/managed-by": children.MANAGER}
OWNED_RESOURCES: tuple[tuple[str, str, str], ...] = (
    ("", "v1", "configmaps"),
    ("", "v1", "services"),
    ("apps", "v1", "deployments"),
    ("networking.k8s.io", "v1", "ingresses"),
    ("networking.k8s.io", "v1", "networkpolicies"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("policy", "v1", "poddisruptionbudgets"),
)


def kopf_settings(settings: OperatorSettings) -> kopf.OperatorSettings:
    """Kopf's own settings object, spelled out."""
    ks = kopf.OperatorSettings()
    ks.posting.enabled = False  # the operator posts its own Events; Kopf's would echo log lines
    ks.scanning.disabled = True  # no CRD/namespace watching: no cluster-wide read on CRDs/namespaces needed
    ks.networking.request_timeout = settings.api_timeout_seconds * 2
    ks.watching.server_timeout = 300
    ks.peering.standalone = settings.standalone
    ks.peering.name = settings.peering_name
    ks.peering.priority = settings.priority
    # Written into this replica's keep-alive; peers (and PeeringGate) judge it by this value, not theirs.
    ks.peering.lifetime = settings.peering_lifetime
    ks.peering.mandatory = not settings.standalone
    ks.peering.clusterwide = settings.clusterwide
    return ks


def register(registry: kopf.OperatorRegistry, controller: Controller, settings: OperatorSettings,
             graceful: GracefulStop | None = None) -> None:
    """Attach the watch handlers to an explicit registry (no module-level global state). With
    ``graceful``, the startup handler replaces Kopf's signal handlers with its drain."""

    @kopf.on.login(registry=registry)
    def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # In-cluster ServiceAccount token or $KUBECONFIG, via the official client (client certs too).
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def _startup(**_: Any) -> None:
        controller.start()
        if graceful is not None:
            await graceful.take_over_signals()

    @kopf.on.cleanup(registry=registry)
    async def _cleanup(**_: Any) -> None:
        await controller.stop()

    # Kopf answers the liveness endpoint with these results (HTTP 200 and JSON), and with HTTP 500 when
    # a probe handler fails. It must fail with PermanentError: any other exception counts as temporary
    # and Kopf retries the handler after its backoff (60 s) inside the same HTTP request. Kopf caches a
    # success for 10 s and never caches a failure, so a failure shows at the latest 10 s after it starts.
    @kopf.on.probe(id="workers", registry=registry)
    async def _workers(**_: Any) -> dict[str, Any]:
        health = controller.health()
        if not health.ok:
            raise kopf.PermanentError("; ".join(health.problems))
        return health.as_dict()

    @kopf.on.event(spec.GROUP, spec.VERSION, spec.PLURAL, registry=registry)
    async def _gongwebhook(event: Mapping[str, Any], body: Mapping[str, Any], **_: Any) -> None:
        controller.on_gongwebhook(event.get("type"), body)

    for group, version, plural in OWNED_RESOURCES:

        @kopf.on.event(group, version, plural, labels=MANAGED_SELECTOR, registry=registry,
                       id=f"child-{plural}")
        async def _child(body: Mapping[str, Any], **_: Any) -> None:
            controller.on_child(body)

    @kopf.on.event("", "v1", "secrets", registry=registry)
    async def _secret(body: Mapping[str, Any], **_: Any) -> None:
        controller.on_secret(body)
