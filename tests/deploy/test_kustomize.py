"""config/default renders with kustomize and is accepted by the real API server (server-side dry run)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import Cluster

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
MONITORING_CRDS = Path(__file__).parent / "fixtures" / "monitoring-crds.yaml"


@pytest.fixture
def monitoring_crds(cluster: Cluster) -> Iterator[None]:
    """Install prometheus-operator CRDs for this test only: other tests need them absent."""
    existed = cluster.kubectl("get", "crd", "servicemonitors.monitoring.coreos.com", check=False).returncode == 0
    cluster.kubectl("apply", "-f", str(MONITORING_CRDS))
    for name in ("prometheusrules", "servicemonitors"):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}.monitoring.coreos.com", "--timeout=30s")
    yield
    if not existed:
        cluster.kubectl("delete", "-f", str(MONITORING_CRDS), "--wait=true", check=False)


def _install_prerequisites(cluster: Cluster, docs: list[dict[str, Any]]) -> None:
    """A dry run cannot create a namespace or a CRD that later objects need, so those go in for real
    (idempotent); then the whole rendering is applied with --dry-run=server."""
    real = [d for d in docs if d["kind"] in ("Namespace", "CustomResourceDefinition")]
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                    input="\n---\n".join(json.dumps(d) for d in real))
    for d in real:
        if d["kind"] == "CustomResourceDefinition":
            cluster.kubectl("wait", "--for=condition=Established", f"crd/{d['metadata']['name']}", "--timeout=30s")


def test_config_default_renders_and_server_dry_run_applies(cluster: Cluster, monitoring_crds: None) -> None:
    rendered = cluster.kubectl("kustomize", str(ROOT / "config" / "default")).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    kinds = {d["kind"] for d in docs}
    for kind in ("Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                 "Deployment", "Service", "ServiceMonitor", "PrometheusRule", "ConfigMap", "ClusterKopfPeering"):
        assert kind in kinds, f"config/default renders no {kind}"
    # Everything namespaced lands in gong-system
    for d in docs:
        if d["kind"] not in ("Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                             "ClusterKopfPeering"):
            assert d["metadata"].get("namespace") == "gong-system", (d["kind"], d["metadata"]["name"])
    _install_prerequisites(cluster, docs)
    deadline = time.monotonic() + 30
    while True:
        proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=rendered, check=False)
        # A just-established CRD can take a moment to show up in discovery.
        if proc.returncode == 0 or time.monotonic() > deadline or "no matches for kind" not in proc.stderr:
            break
        time.sleep(1)
    assert proc.returncode == 0, proc.stderr
    assert "(server dry run)" in proc.stdout
    assert proc.stdout.count("(server dry run)") == len(docs)


def test_without_monitoring_variant_applies_where_prometheus_operator_is_absent(cluster: Cluster) -> None:
    if cluster.kubectl("get", "crd", "servicemonitors.monitoring.coreos.com", check=False).returncode == 0:
        pytest.skip("monitoring CRDs are installed in this cluster; this variant is for clusters without them")
    rendered = cluster.kubectl("kustomize", str(ROOT / "config" / "without-monitoring")).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    assert not [d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")]
    assert {"Deployment", "ClusterRole", "CustomResourceDefinition"} <= {d["kind"] for d in docs}
    _install_prerequisites(cluster, docs)
    proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=rendered, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("(server dry run)") == len(docs)


OPERATOR_POD = {"app.kubernetes.io/name": "gong-webhook-operator", "app.kubernetes.io/component": "operator"}


@pytest.mark.parametrize("variant", ["default", "without-monitoring"])
def test_the_operators_own_pod_has_a_network_policy_and_a_disruption_budget(cluster: Cluster, variant: str) -> None:
    """Issue 10 #6: the most privileged pod (reads every Secret) had open egress, its metrics and health
    ports open cluster-wide, and nothing kept one replica up during a drain."""
    rendered = cluster.kubectl("kustomize", str(ROOT / "config" / variant)).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "gong-webhook-operator")
    assert dep["spec"]["template"]["metadata"]["labels"] == OPERATOR_POD
    ports = {p["name"]: p["containerPort"] for p in dep["spec"]["template"]["spec"]["containers"][0]["ports"]}

    (np,) = [d for d in docs if d["kind"] == "NetworkPolicy"]
    spec = np["spec"]
    assert np["metadata"]["namespace"] == "gong-system"
    assert spec["podSelector"] == {"matchLabels": OPERATOR_POD}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    # In: only metrics, only from the monitoring namespace. Health needs no rule: kubelet probes come
    # from the node and are not subject to NetworkPolicy.
    (rule,) = spec["ingress"]
    assert rule == {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                    "ports": [{"protocol": "TCP", "port": "metrics"}]}
    assert ports["metrics"] == 8080 and "health" in ports
    # Out: DNS, and HTTPS to the API server (443 via the kubernetes Service, 6443 on most endpoints) and
    # Pulumi ESC. Nothing else (no Redis, no Snowflake: the operator never talks to them).
    out = sorted((p["protocol"], p["port"]) for r in spec["egress"] for p in r["ports"])
    assert out == [("TCP", 53), ("TCP", 443), ("TCP", 6443), ("UDP", 53)]

    (pdb,) = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert pdb["spec"]["selector"] == {"matchLabels": OPERATOR_POD}
    assert pdb["spec"]["minAvailable"] == 1 and dep["spec"]["replicas"] == 2
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
