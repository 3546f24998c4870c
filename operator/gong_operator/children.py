"""Desired child manifests: one pure function per kind, spec in, plain dict out.

Nothing here talks to Kubernetes. Builders emit exactly the fields the operator owns (server-side
apply removes fields the operator stops sending) and never emit ``None``; each manifest carries the
ownerReference (controller=true) to its GongWebhook and the ``app.kubernetes.io/*`` labels.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gong_operator import derived_config
from gong_operator.derived_config import public_url
from gong_operator.hashing import stable_hash
from gong_operator.spec import API_VERSION, GROUP, KIND, GongWebhookSpec
from webhook_app import contract

MANAGER = "gong-webhook-operator"
APP_NAME = "gong-webhook"
HASH_ANNOTATION = f"{GROUP}/config-hash"
DESIRED_HASH_ANNOTATION = f"{GROUP}/desired-hash"
PORT_NAME = "http"
PRESTOP_SLEEP_SECONDS = 5
METRICS_PORT_NAME = "metrics"

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Owner:
    name: str
    namespace: str
    uid: str

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Owner:
        meta = body["metadata"]
        return cls(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def config_name(owner: Owner) -> str:
    return f"{owner.name}-config"


def credentials_name(owner: Owner) -> str:
    return f"{owner.name}-credentials"


def selector_labels(owner: Owner) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/instance": owner.name}


def labels(owner: Owner) -> dict[str, str]:
    return {
        **selector_labels(owner),
        "app.kubernetes.io/component": "webhook",
        "app.kubernetes.io/part-of": "gong-webhook-operator",
        "app.kubernetes.io/managed-by": MANAGER,
    }


def _meta(owner: Owner, name: str, *, extra_labels: Mapping[str, str] | None = None,
          annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": owner.namespace,
        "labels": {**(extra_labels or {}), **labels(owner)},
        "ownerReferences": [owner.reference()],
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def finalize(manifest: Manifest) -> Manifest:
    """Stamp the hash of the desired manifest, so removed fields are noticed without a diff engine."""
    digest = stable_hash(manifest)[:20]
    meta = manifest["metadata"]
    meta["annotations"] = {**meta.get("annotations", {}), DESIRED_HASH_ANNOTATION: digest}
    return manifest


# ----------------------------------------------------------------------------- config & secret


def config_data(spec: GongWebhookSpec) -> dict[str, str]:
    """The app's non-sensitive settings, keyed by the names in webhook_app.contract: the derived keys
    (:data:`gong_operator.derived_config.DERIVED_CONFIG`), then ``spec.extraConfig`` for the others."""
    derived = derived_config.derive(spec)
    extra = {k: v for k, v in spec.extra_config.items() if k in contract.CONFIG_KEYS and k not in derived}
    return {k: v for k, v in {**extra, **derived}.items() if k in contract.CONFIG_KEYS}


def configmap(spec: GongWebhookSpec, owner: Owner) -> Manifest:
    return finalize({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(owner, config_name(owner)),
        "data": config_data(spec),
    })


def credentials_secret(owner: Owner, data: Mapping[str, bytes]) -> Manifest:
    # The desired-hash covers base64 values; it is a SHA-256 and reveals nothing.
    return finalize({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(owner, credentials_name(owner)),
        "type": "Opaque",
        "data": {k: base64.b64encode(v).decode() for k, v in sorted(data.items())},
    })


# ----------------------------------------------------------------------------- workload


def deployment(spec: GongWebhookSpec, owner: Owner, *, content_hash: str) -> Manifest:
    sel = selector_labels(owner)
    pod = spec.pod
    pod_labels = {**pod.labels, **labels(owner)}
    annotations = {**pod.annotations, HASH_ANNOTATION: content_hash}
    env_from: list[dict[str, Any]] = [
        {"configMapRef": {"name": config_name(owner)}},
        {"secretRef": {"name": credentials_name(owner)}},
        *({"configMapRef": {"name": n}} for n in pod.env_from_config_maps),
    ]
    probe_common = {"periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3}
    container: dict[str, Any] = {
        "name": "webhook",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "ports": [{"name": PORT_NAME, "containerPort": contract.CONTAINER_PORT, "protocol": "TCP"},
                  {"name": METRICS_PORT_NAME, "containerPort": contract.METRICS_CONTAINER_PORT, "protocol": "TCP"}],
        "envFrom": env_from,
        "resources": {
            # ephemeral-storage bounds the /tmp emptyDir and the container logs together: without it one
            # pod could fill the node's disk and get every pod on the node evicted.
            "requests": {"cpu": spec.resources.requests.cpu, "memory": spec.resources.requests.memory,
                         "ephemeral-storage": spec.resources.requests.ephemeral_storage},
            "limits": {"cpu": spec.resources.limits.cpu, "memory": spec.resources.limits.memory,
                       "ephemeral-storage": spec.resources.limits.ephemeral_storage},
        },
        "livenessProbe": {"httpGet": {"path": contract.HEALTH_PATH, "port": PORT_NAME},
                          "initialDelaySeconds": 10, **probe_common},
        "readinessProbe": {"httpGet": {"path": contract.READY_PATH, "port": PORT_NAME},
                           "initialDelaySeconds": 2, **probe_common},
        # A terminating pod leaves the Service's endpoints only once kube-proxy (or the CNI's service
        # proxy) on every node has seen the EndpointSlice change; uvicorn stops accepting at SIGTERM,
        # so without this pause new connections in that window are refused (measured on the real
        # node: 7 of 963 webhooks got a connection error during a rollout). The kubelet's built-in
        # sleep needs no binary in the image.
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_SECONDS}}},
        # A container that exits at start (configuration error, exit 2) shows its last log lines as the
        # termination message, which the operator reports in the GongWebhook's status.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - an emptyDir, not a shared /tmp
    }
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        # Service links would add <SERVICE>_PORT=tcp://... for every Service in the namespace; names like
        # SNOWFLAKE_PORT or LOADER_METRICS_PORT are app settings, and the app would refuse the value.
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "fsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 100,
                     "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                         "labelSelector": {"matchLabels": sel}}}
                ]
            }
        },
        # The preStop pause, then uvicorn's graceful shutdown (up to 30 s for requests in flight).
        "terminationGracePeriodSeconds": PRESTOP_SLEEP_SECONDS + 30,
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": spec.resources.tmp_size_limit}}],
    }
    if pod.service_account_name:
        pod_spec["serviceAccountName"] = pod.service_account_name
    if pod.node_selector:
        pod_spec["nodeSelector"] = dict(pod.node_selector)
    if pod.tolerations:
        pod_spec["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in pod.tolerations]
    if pod.priority_class_name:
        pod_spec["priorityClassName"] = pod.priority_class_name
    dep_spec: dict[str, Any] = {
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": sel},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {"metadata": {"labels": pod_labels, "annotations": annotations}, "spec": pod_spec},
    }
    if not spec.autoscaling.enabled:
        dep_spec["replicas"] = 0 if spec.suspend else spec.effective_replicas
    return finalize({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(owner, owner.name),
        "spec": dep_spec,
    })


def service(spec: GongWebhookSpec, owner: Owner) -> Manifest:
    svc: dict[str, Any] = {
        "type": spec.service.type,
        "selector": selector_labels(owner),
        "ports": [{"name": PORT_NAME, "port": spec.service.port, "targetPort": PORT_NAME, "protocol": "TCP"},
                  {"name": METRICS_PORT_NAME, "port": contract.METRICS_CONTAINER_PORT,
                   "targetPort": METRICS_PORT_NAME, "protocol": "TCP"}],
        "sessionAffinity": spec.service.session_affinity,
    }
    return finalize({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(owner, owner.name, annotations=spec.service.annotations),
        "spec": svc,
    })


def ingress_path(spec: GongWebhookSpec) -> tuple[str, str]:
    """(path, pathType) the Ingress routes: only what Gong calls, so /metrics, /health and /ready stay
    inside the cluster. JWT mode is the one URL; url-key mode is ``/webhooks/gong/<key>`` (Prefix
    matches whole path segments). ``/``, the former default, is still stored in objects created before
    and means the default; another explicit path is routed as a prefix, as before."""
    path = spec.ingress.path
    if path and path != "/":
        return path, "Prefix"
    return contract.WEBHOOK_PATH, "Exact" if spec.gong.auth_mode == "jwt" else "Prefix"


def ingress(spec: GongWebhookSpec, owner: Owner) -> Manifest:
    ing = spec.ingress
    annotations = {**ing.annotations, "nginx.ingress.kubernetes.io/limit-rps": str(ing.rate_limit_rps)}
    path, path_type = ingress_path(spec)
    body: dict[str, Any] = {
        "rules": [{
            "host": ing.host,
            "http": {"paths": [{
                "path": path,
                "pathType": path_type,
                "backend": {"service": {"name": owner.name, "port": {"name": PORT_NAME}}},
            }]},
        }],
    }
    if ing.class_name:
        body["ingressClassName"] = ing.class_name
    if ing.tls_secret_name:
        body["tls"] = [{"hosts": [ing.host], "secretName": ing.tls_secret_name}]
    return finalize({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _meta(owner, owner.name, annotations=annotations),
        "spec": body,
    })


def hpa(spec: GongWebhookSpec, owner: Owner) -> Manifest:
    a = spec.autoscaling

    def util(resource: str, pct: int) -> dict[str, Any]:
        return {"type": "Resource",
                "resource": {"name": resource, "target": {"type": "Utilization", "averageUtilization": pct}}}

    return finalize({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(owner, owner.name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": owner.name},
            "minReplicas": a.min_replicas,
            "maxReplicas": a.max_replicas,
            "metrics": [util("cpu", a.target_cpu_utilization_percentage),
                        util("memory", a.target_memory_utilization_percentage)],
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "selectPolicy": "Max",
                    "policies": [
                        {"type": "Percent", "value": a.scale_up.percent, "periodSeconds": a.scale_up.period_seconds},
                        {"type": "Pods", "value": a.scale_up.pods, "periodSeconds": a.scale_up.period_seconds},
                    ],
                },
                "scaleDown": {
                    "stabilizationWindowSeconds": a.scale_down.stabilization_window_seconds,
                    "selectPolicy": "Max",
                    "policies": [{"type": "Percent", "value": a.scale_down.percent,
                                  "periodSeconds": a.scale_down.period_seconds}],
                },
            },
        },
    })


def _ns_peers(names: list[str]) -> list[dict[str, Any]]:
    return [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": n}}} for n in names]


def network_policy(spec: GongWebhookSpec, owner: Owner) -> Manifest:
    np = spec.network_policy
    # One rule per audience and port: rules are OR-ed and each admits its peers to its ports only, so the
    # ingress controller cannot scrape and the scrapers cannot post webhooks. (Kubelet probes are not
    # subject to NetworkPolicy.)
    ingress_rules: list[dict[str, Any]] = []
    for namespaces, port in ((np.ingress_namespaces, contract.CONTAINER_PORT),
                             (np.monitoring_namespaces, contract.METRICS_CONTAINER_PORT)):
        if namespaces:
            ingress_rules.append({"from": _ns_peers(list(dict.fromkeys(namespaces))),
                                  "ports": [{"protocol": "TCP", "port": port}]})
    egress: list[dict[str, Any]] = []
    if np.allow_dns:
        egress.append({"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]})
    egress.append({"ports": [{"protocol": "TCP", "port": np.redis_port}]})
    if np.allow_https:
        egress.append({"ports": [{"protocol": "TCP", "port": 443}]})
    body: dict[str, Any] = {
        "podSelector": {"matchLabels": selector_labels(owner)},
        "policyTypes": ["Ingress", "Egress"],
        "egress": egress,
    }
    if ingress_rules:
        body["ingress"] = ingress_rules
    return finalize({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(owner, owner.name),
        "spec": body,
    })


def pdb(spec: GongWebhookSpec, owner: Owner) -> Manifest:
    return finalize({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(owner, owner.name),
        "spec": {"minAvailable": spec.disruption_budget.min_available,
                 "selector": {"matchLabels": selector_labels(owner)},
                 # /ready fails while Redis is unreachable. With the default policy (IfHealthyBudget) such
                 # pods still count against minAvailable, so a Redis outage would block every node drain
                 # and cluster upgrade; they serve nothing anyway, so evicting them costs nothing.
                 "unhealthyPodEvictionPolicy": "AlwaysAllow"},
    })


def service_monitor(spec: GongWebhookSpec, owner: Owner) -> Manifest:
    sm = spec.monitoring.service_monitor
    return finalize({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _meta(owner, owner.name, extra_labels=sm.labels),
        "spec": {
            "selector": {"matchLabels": selector_labels(owner)},
            "namespaceSelector": {"matchNames": [owner.namespace]},
            "endpoints": [{"port": METRICS_PORT_NAME, "path": contract.METRICS_PATH, "interval": sm.interval,
                           "scrapeTimeout": sm.scrape_timeout}],
        },
    })


# ----------------------------------------------------------------------------- the set


OPTIONAL_KINDS = ("Ingress", "HorizontalPodAutoscaler", "NetworkPolicy", "PodDisruptionBudget", "ServiceMonitor")


def endpoint(spec: GongWebhookSpec, owner: Owner) -> str:
    """The URL Gong must call: the public one, or the Service's in-cluster URL when there is none."""
    url = public_url(spec)
    if url:
        return url
    port = "" if spec.service.port == 80 else f":{spec.service.port}"
    return f"http://{owner.name}.{owner.namespace}.svc{port}{contract.WEBHOOK_PATH}"


def wanted_optional(spec: GongWebhookSpec, *, service_monitor_served: bool) -> dict[str, bool]:
    """Which optional kinds the spec asks for (ServiceMonitor only when its CRD is served)."""
    return {
        "Ingress": spec.ingress.enabled,
        "HorizontalPodAutoscaler": spec.autoscaling.enabled,
        "NetworkPolicy": spec.network_policy.enabled,
        "PodDisruptionBudget": spec.disruption_budget.enabled,
        "ServiceMonitor": spec.monitoring.service_monitor.enabled and service_monitor_served,
    }


def desired_children(
    spec: GongWebhookSpec,
    owner: Owner,
    *,
    secret_data: Mapping[str, bytes] | None,
    content_hash: str,
    service_monitor_served: bool,
) -> list[Manifest]:
    """Every child the spec asks for. Without synced credentials (``secret_data is None``) the workload
    trio (ConfigMap, Secret, Deployment) is left out, so running pods are left exactly as they were."""
    out: list[Manifest] = []
    if secret_data is not None:
        out += [configmap(spec, owner), credentials_secret(owner, secret_data),
                deployment(spec, owner, content_hash=content_hash)]
    out.append(service(spec, owner))
    want = wanted_optional(spec, service_monitor_served=service_monitor_served)
    builders = {"Ingress": ingress, "HorizontalPodAutoscaler": hpa, "NetworkPolicy": network_policy,
                "PodDisruptionBudget": pdb, "ServiceMonitor": service_monitor}
    for kind in OPTIONAL_KINDS:
        if want[kind]:
            out.append(builders[kind](spec, owner))
    return out
