"""A small synchronous Kubernetes REST client on top of the official client's ApiClient.

Only what the operator needs: GET, a LIST by labels (the pods of a rollout short of ready), server-side
apply, DELETE, merge-patch of status and scale, POST of Events and a served-API check. Every write is
counted in :mod:`gong_operator.metrics`. Errors become :class:`KubeError` carrying the HTTP status and
the API server's *message* (never a request body); the answers callers act on are typed once here
(:class:`NotFound`, :class:`Forbidden`, :class:`Conflict`), so callers write ``except NotFound:``.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config

from gong_operator import metrics


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True  # False: a cluster-scoped kind (its path has no namespaces/<ns> part)

    @property
    def group(self) -> str:
        return self.api_version.split("/")[0] if "/" in self.api_version else ""

    def base(self) -> str:
        return f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"

    def path(self, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
        """``namespace`` is None for a cluster-scoped kind (and required for a namespaced one)."""
        if self.namespaced != (namespace is not None):
            raise ValueError(f"{self.kind} is {'' if self.namespaced else 'not '}namespaced: namespace={namespace!r}")
        scope = f"/namespaces/{namespace}" if namespace is not None else ""
        out = f"{self.base()}{scope}/{self.plural}"
        if name:
            out += f"/{name}"
        if subresource:
            out += f"/{subresource}"
        return out


CONFIGMAP = Kind("v1", "ConfigMap", "configmaps")
SECRET = Kind("v1", "Secret", "secrets")
SERVICE = Kind("v1", "Service", "services")
EVENT = Kind("v1", "Event", "events")
POD = Kind("v1", "Pod", "pods")
DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")
INGRESS = Kind("networking.k8s.io/v1", "Ingress", "ingresses")
NETWORKPOLICY = Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies")
HPA = Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")
PDB = Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets")
SERVICEMONITOR = Kind("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors")

KINDS: dict[str, Kind] = {
    k.kind: k for k in (CONFIGMAP, SECRET, SERVICE, DEPLOYMENT, INGRESS, NETWORKPOLICY, HPA, PDB, SERVICEMONITOR)
}


class KubeError(Exception):
    """An API answer outside 2xx. Constructing one picks the typed subclass for its status, wherever it
    is raised (this client, or a test's stand-in of it): ``KubeError(404, ...)`` is a :class:`NotFound`."""

    def __new__(cls, status: int, reason: str, message: str) -> KubeError:
        typed = _BY_STATUS.get(status, cls) if cls is KubeError else cls
        return super().__new__(typed)

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def namespace_terminating(self) -> bool:
        return self.status == 403 and "being terminated" in self.message

    @property
    def transient(self) -> bool:
        """Worth a retry with backoff: the server is overloaded, restarting or rate-limiting."""
        return self.status >= 500 or self.status == 429


class NotFound(KubeError):
    """404: the object (or, for discovery, the API group) does not exist."""


class Forbidden(KubeError):
    """403: RBAC refuses the verb, or the namespace is being terminated (``namespace_terminating``)."""


class Conflict(KubeError):
    """409: the object exists already, or a write raced another."""


_BY_STATUS: dict[int, type[KubeError]] = {404: NotFound, 403: Forbidden, 409: Conflict}


def load_api_client() -> client.ApiClient:
    cfg = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    return client.ApiClient(cfg)


# How long a discovery answer ("is this kind served?") is reused. Every reconcile asks about the
# ServiceMonitor API; without the cache that is one GET per reconcile (300 per resync pass of 300
# GongWebhooks) for an answer that changes when someone installs a CRD. A CRD installed later is still
# picked up by the first reconcile after this many seconds (the periodic resync guarantees one).
DISCOVERY_TTL_SECONDS = 10.0


class Kube:
    def __init__(self, api: client.ApiClient, *, field_manager: str, timeout: float = 30.0,
                 discovery_ttl: float = DISCOVERY_TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.field_manager = field_manager
        self.timeout = timeout
        self.discovery_ttl = discovery_ttl
        self._clock = clock
        # Written by reconcile worker threads; a race only costs one extra discovery GET.
        self._served: dict[Kind, tuple[float, bool]] = {}

    # -------------------------------------------------------------- transport

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
        resource: str = "",
    ) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if query:
            path = path + "?" + urllib.parse.urlencode(query)
        m, url, hdrs, b, _ = self.api.param_serialize(
            method=method, resource_path=path, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        if method != "GET":
            metrics.API_WRITES.labels(verb=method if content_type != APPLY else "APPLY", resource=resource).inc()
        # urllib3 applies this timeout to the connect and then to each socket read, not to the whole
        # request, so a peer that kept sending a byte now and then could hold the call longer. No total
        # deadline is added here because the peer is the kube-apiserver, which ends every request the
        # operator makes itself: all of them are short (no watch, no log, no exec), and the server's
        # --request-timeout (default 60 s) answers 504 or aborts the stream when a request runs longer.
        # A silent or dead connection fails after `timeout` seconds. Whatever is left (e.g. a broken
        # proxy that trickles) is caught by the liveness probe's --stuck-reconcile-seconds.
        resp = self.api.call_api(m, url, header_params=hdrs, body=b, _request_timeout=self.timeout)
        data: bytes = resp.read()  # type: ignore[no-untyped-call]
        if not 200 <= resp.status < 300:
            message = ""
            reason = resp.reason or ""
            try:
                parsed = json.loads(data)
                message = str(parsed.get("message", ""))
                reason = str(parsed.get("reason", reason))
            except (ValueError, AttributeError):
                message = ""
            raise KubeError(resp.status, reason, message)
        return json.loads(data) if data else None

    # -------------------------------------------------------------- verbs

    def get(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object, or None when absent (``namespace`` None for a cluster-scoped kind)."""
        try:
            out: dict[str, Any] = self.request("GET", kind.path(namespace, name))
        except NotFound:
            return None
        return out

    def list_selected(self, kind: Kind, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """The objects of a kind in a namespace carrying all these labels (one LIST, one page: used for
        the pods of one Deployment, which are bounded by its replica count)."""
        selector = ",".join(f"{key}={value}" for key, value in labels.items())
        out = self.request("GET", kind.path(namespace), query={"labelSelector": selector})
        return list((out or {}).get("items") or [])

    def apply(self, manifest: dict[str, Any], *, field_manager: str | None = None) -> dict[str, Any]:
        """Server-side apply with the operator's field manager (or another one), forcing conflicts."""
        kind = KINDS[manifest["kind"]]
        meta = manifest["metadata"]
        out: dict[str, Any] = self.request(
            "PATCH",
            kind.path(meta["namespace"], meta["name"]),
            query={"fieldManager": field_manager or self.field_manager, "force": "true"},
            body=manifest,
            content_type=APPLY,
            resource=kind.plural,
        )
        return out

    def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        try:
            self.request("DELETE", kind.path(namespace, name), body={"propagationPolicy": "Background"},
                         content_type="application/json", resource=kind.plural)
        except NotFound:
            return False
        return True

    def merge_patch(self, kind: Kind, namespace: str, name: str, patch: dict[str, Any],
                    subresource: str | None = None) -> Any:
        return self.request("PATCH", kind.path(namespace, name, subresource), body=patch,
                            content_type="application/merge-patch+json",
                            resource=kind.plural + (f"/{subresource}" if subresource else ""))

    def create(self, kind: Kind, namespace: str, body: dict[str, Any]) -> Any:
        return self.request("POST", kind.path(namespace), body=body, content_type="application/json",
                            resource=kind.plural)

    def served(self, kind: Kind) -> bool:
        """Whether the API server serves this kind (e.g. a CRD installed after the operator), as of at
        most ``discovery_ttl`` seconds ago."""
        now = self._clock()
        hit = self._served.get(kind)
        if hit is not None and now - hit[0] < self.discovery_ttl:
            return hit[1]
        try:
            listing = self.request("GET", kind.base())
            found = any(r.get("name") == kind.plural for r in (listing or {}).get("resources", []))
        except NotFound:  # the group/version is not served at all
            found = False
        except KubeError as e:
            if e.status != 503:  # 503: an aggregated API whose backend is down
                raise
            found = False
        self._served[kind] = (now, found)
        return found


APPLY = "application/apply-patch+yaml"
