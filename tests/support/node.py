"""The real dev node (scripts/devcluster): namespaces that run on it, and the services its pods use.

Pods run on the real node ``gwo-node`` only in namespaces carrying the annotations below (the API
server's PodNodeSelector and PodTolerationRestriction admission add the node selector and the
toleration of the node's taint to every pod there), so manifests such as config/samples are applied
unchanged. Those namespaces also enforce the ``restricted`` Pod Security Standard.

In-cluster services, the way a user's would be: Redis as a Deployment + Service ``redis`` (the
image scripts/images builds from Debian's redis-server, AOF ``always``), and the Snowflake stand-in
(fakesnow) behind a selector-less Service ``snowflake`` whose EndpointSlice points at it in the
devcluster's stand-in network (``WAN_NETNS``), on 443: traffic to it leaves the node as traffic to
Snowflake would, under the NetworkPolicy the operator renders (kube-router enforces it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import yaml

from tests import secret_scan
from tests.support.servers import FakesnowServer
from webhook_app.settings import AppSettings, load_settings
from webhook_app.snowflake_sink import SnowflakeSink

ROOT = Path(__file__).resolve().parents[2]
REAL_NODE = "gwo-node"
NODE_KEY, NODE_VALUE = "gong.dev/node", "real"
GATEWAY = "10.88.0.1"  # the host as pods see it (scripts/devcluster GATEWAY)
# scripts/devcluster WAN_*: a network namespace routed through the host, the "internet" of SaaS stand-ins.
WAN_NETNS = "gwo-wan"
SNOWFLAKE_ADDRESS, GONG_API_ADDRESS = "10.89.0.2", "10.89.0.3"
HTTPS_PORT = 443  # what the operator's NetworkPolicy allows for the Snowflake and Gong APIs
NODE_ANNOTATIONS = {
    "scheduler.alpha.kubernetes.io/node-selector": f"{NODE_KEY}={NODE_VALUE}",
    "scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps(
        [{"key": NODE_KEY, "operator": "Equal", "value": NODE_VALUE, "effect": "NoSchedule"}]),
}
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": "latest"}
REDIS_IMAGE = "localhost/gwo-redis:7"
APP_IMAGE = "ghcr.io/sophia-ai/gong-webhook:0.1.0"
OPERATOR_IMAGE = "ghcr.io/gong-webhook-operator/gong-webhook-operator:0.1.0"


class Kubectl(Protocol):
    def kubectl(self, *args: str, check: bool = ..., input: str | None = ...,
                timeout: float = ...) -> subprocess.CompletedProcess[str]: ...


def get_json(cluster: Kubectl, *args: str) -> Any:
    proc = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def apply(cluster: Kubectl, namespace: str | None, docs: list[dict[str, Any]]) -> None:
    ns = ["-n", namespace] if namespace else []
    cluster.kubectl("apply", *ns, "-f", "-", input=yaml.safe_dump_all(docs))


def node_namespace(cluster: Kubectl, name: str) -> None:
    """A namespace whose pods run on the real node, under the restricted Pod Security Standard."""
    apply(cluster, None, [{"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": name, "labels": dict(RESTRICTED), "annotations": NODE_ANNOTATIONS}}])


def real_node(cluster: Kubectl) -> dict[str, Any]:
    node = get_json(cluster, "node", REAL_NODE)
    assert node is not None, (
        f"node {REAL_NODE} does not exist: the real node did not start (scripts/devcluster up with the default "
        "DEVCLUSTER_NODE=real; see .devcluster/logs/kubelet.log)")
    return dict(node)


def deploy_redis(cluster: Kubectl, namespace: str) -> None:
    """Redis the way the sample CR expects it: Service ``redis`` on 6379, durable AOF, restricted pod."""
    labels = {"app.kubernetes.io/name": "redis"}
    apply(cluster, namespace, [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "redis"},
         "spec": {"selector": {"matchLabels": labels}, "strategy": {"type": "Recreate"},
                  "template": {"metadata": {"labels": labels}, "spec": {
                      "automountServiceAccountToken": False,
                      "securityContext": {"runAsNonRoot": True, "runAsUser": 999, "runAsGroup": 999,
                                          "fsGroup": 999, "seccompProfile": {"type": "RuntimeDefault"}},
                      "containers": [{
                          "name": "redis", "image": REDIS_IMAGE, "imagePullPolicy": "Never",
                          "ports": [{"name": "redis", "containerPort": 6379}],
                          "readinessProbe": {"exec": {"command": ["redis-cli", "ping"]}, "periodSeconds": 2},
                          "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                        "limits": {"cpu": "500m", "memory": "256Mi"}},
                          "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                              "capabilities": {"drop": ["ALL"]}},
                          "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                      "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "256Mi"}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "redis"},
         "spec": {"selector": labels, "ports": [{"name": "redis", "port": 6379, "targetPort": "redis"}]}},
    ])
    cluster.kubectl("rollout", "status", "-n", namespace, "deployment/redis", "--timeout=120s", timeout=150)


def snowflake_service(cluster: Kubectl, namespace: str, address: str = SNOWFLAKE_ADDRESS,
                      port: int = HTTPS_PORT) -> None:
    """Service ``snowflake`` (port 80) in front of the fakesnow process in the stand-in network."""
    apply(cluster, namespace, [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "snowflake"},
         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port, "protocol": "TCP"}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "snowflake-external", "labels": {"kubernetes.io/service-name": "snowflake"}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
         "endpoints": [{"addresses": [address], "conditions": {"ready": True}}]},
    ])


def pods(cluster: Kubectl, namespace: str, selector: str) -> list[dict[str, Any]]:
    got = get_json(cluster, "pods", "-n", namespace, "-l", selector)
    return list((got or {}).get("items") or [])


def ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def describe(cluster: Kubectl, namespace: str) -> str:
    """What to print when a wait fails: objects, pod states and the last events."""
    out = cluster.kubectl("get", "gw,deploy,rs,pods", "-n", namespace, "-o", "wide", check=False).stdout
    events = cluster.kubectl("get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False).stdout
    return out + "\n" + "\n".join(events.splitlines()[-25:])


def deploy_operator(cluster: Kubectl) -> None:
    """The operator in-cluster from its image, via config/without-monitoring as documented (2 replicas,
    one active through Kopf peering; the oldest replica outranks the newer ones)."""
    # The namespace exists before its pods, with the annotations that put them on the real node.
    cluster.kubectl("create", "namespace", "gong-system", check=False)
    cluster.kubectl("annotate", "--overwrite", "namespace", "gong-system",
                    *(f"{k}={v}" for k, v in NODE_ANNOTATIONS.items()))
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "config" / "without-monitoring"))
    cluster.kubectl("rollout", "status", "-n", "gong-system", "deployment/gong-webhook-operator",
                    "--timeout=180s", timeout=200)


def remove_operator(cluster: Kubectl) -> None:
    cluster.kubectl("delete", "deployment", "-n", "gong-system", "gong-webhook-operator", "--wait=true",
                    "--timeout=60s", check=False, timeout=90)


def load_images() -> None:
    """Rebuild what changed since `up` and load it into the node (seconds when nothing changed)."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "devcluster"), "images"], check=True)


def sample_cr(schema: str) -> dict[str, Any]:
    """config/samples/gongwebhook.yaml pointed at this namespace's Snowflake stand-in (extraConfig) and
    with enrichment off (the Gong API cannot be reached from here)."""
    cr: dict[str, Any] = yaml.safe_load((ROOT / "config" / "samples" / "gongwebhook.yaml").read_text())
    spec = cr["spec"]
    spec["snowflake"]["schema"] = schema
    spec["gong"]["enrichmentEnabled"] = False
    spec["extraConfig"] = {"SNOWFLAKE_HOST": "snowflake", "SNOWFLAKE_PORT": "80", "SNOWFLAKE_PROTOCOL": "http",
                           "SNOWFLAKE_TIMEOUT_SECONDS": "10", "LOADER_BLOCK_MS": "200"}
    return cr


def source_secret(public_keys: str, password: str) -> dict[str, Any]:
    secret_scan.register_secret("node-secret-Hx3", password)
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gong-source-credentials"}, "type": "Opaque",
            "stringData": {"GONG_API_KEY": "node-key", "GONG_API_SECRET": "node-secret-Hx3",
                           "GONG_WEBHOOK_PUBLIC_KEYS": public_keys, "SNOWFLAKE_ACCOUNT": "node-account",
                           "SNOWFLAKE_USER": "loader", "SNOWFLAKE_PASSWORD": password}}


def loader_settings(fakesnow: FakesnowServer, schema: str) -> AppSettings:
    """The admin's `gong-webhook-loader migrate` settings, from the host (the loader creates no tables)."""
    return load_settings({"SNOWFLAKE_ACCOUNT": "node-account", "SNOWFLAKE_USER": "admin", "SNOWFLAKE_PASSWORD": "x",
                          "SNOWFLAKE_DATABASE": "SOPHIA_AI", "SNOWFLAKE_SCHEMA": schema,
                          "SNOWFLAKE_HOST": fakesnow.host, "SNOWFLAKE_PORT": str(fakesnow.port),
                          "SNOWFLAKE_PROTOCOL": "http"}, for_ingest=False)


def migrate_schema(fakesnow: FakesnowServer, schema: str) -> AppSettings:
    """Create the schema's tables as the admin does before the first CR (`gong-webhook-loader migrate`)."""
    settings = loader_settings(fakesnow, schema)
    sink = SnowflakeSink(settings)
    try:
        sink.migrate()
    finally:
        sink.close()
    return settings


def sf_query(fakesnow: FakesnowServer) -> Callable[[str], list[tuple[Any, ...]]]:
    def query(sql: str) -> list[tuple[Any, ...]]:
        conn = fakesnow.connect()
        try:
            return list(conn.cursor().execute(sql).fetchall())
        finally:
            conn.close()
    return query
