"""The local control plane is a real Kubernetes: readiness, versions, nodes, controllers, GC, RBAC."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster, wait_for

pytestmark = pytest.mark.cluster


def test_readyz_and_server_version(cluster: Cluster) -> None:
    assert cluster.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    server = version["serverVersion"]
    assert server["gitVersion"].startswith("v1.") and server["gitVersion"] != "v0.0.0-master+$Format:%H$"
    assert int(server["minor"]) > 0
    # client and server come from the same module version
    assert version["clientVersion"]["gitVersion"] == server["gitVersion"]


def test_two_kwok_nodes_ready(cluster: Cluster) -> None:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    ready = [
        n["metadata"]["name"]
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
    ]
    assert len(ready) >= 2, ready


def test_deployment_becomes_available(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("-n", namespace, "create", "deployment", "web", "--image=example.invalid/web:1", "--replicas=2")

    def status() -> dict[str, Any] | None:
        d = json.loads(cluster.kubectl("-n", namespace, "get", "deployment", "web", "-o", "json").stdout)
        st = d.get("status", {})
        avail = any(c["type"] == "Available" and c["status"] == "True" for c in st.get("conditions", []))
        return st if avail and st.get("readyReplicas") == 2 else None

    st = wait_for(status, 60, what="deployment web available with 2 ready replicas")
    assert st["readyReplicas"] == 2
    pods = json.loads(cluster.kubectl("-n", namespace, "get", "pods", "-o", "json").stdout)["items"]
    assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods)
    assert all(p["spec"].get("nodeName", "").startswith("kwok-node-") for p in pods)


def test_garbage_collector_removes_owned_child(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("-n", namespace, "create", "configmap", "parent", "--from-literal=a=b")
    uid = cluster.kubectl("-n", namespace, "get", "configmap", "parent", "-o", "jsonpath={.metadata.uid}").stdout
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "namespace": namespace,
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "parent", "uid": uid}],
        },
        "data": {"x": "y"},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(child))
    cluster.kubectl("-n", namespace, "delete", "configmap", "parent")

    def gone() -> bool:
        proc = cluster.kubectl("-n", namespace, "get", "configmap", "child", check=False)
        return proc.returncode != 0 and "NotFound" in proc.stderr

    wait_for(gone, 30, what="child ConfigMap garbage-collected")


def test_rbac_denies_serviceaccount_without_binding(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    cluster.kubectl("-n", namespace, "create", "serviceaccount", "nobody")
    token = cluster.kubectl("-n", namespace, "create", "token", "nobody", "--duration=10m").stdout.strip()
    assert token.count(".") == 2
    kc = cluster.token_kubeconfig(token, tmp_path / "nobody.kubeconfig")
    who = cluster.as_kubeconfig(kc, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout
    assert who == f"system:serviceaccount:{namespace}:nobody"
    proc = cluster.as_kubeconfig(kc, "-n", namespace, "get", "secrets", check=False)
    assert proc.returncode != 0
    assert "Forbidden" in proc.stderr and f"system:serviceaccount:{namespace}:nobody" in proc.stderr
    # the same call as admin works, so the 403 is RBAC, not a broken API
    cluster.kubectl("-n", namespace, "get", "secrets")
    # and binding a Role makes it allowed: RBAC is evaluated, not hard-wired
    cluster.kubectl("-n", namespace, "create", "role", "read-secrets", "--verb=list", "--resource=secrets")
    cluster.kubectl("-n", namespace, "create", "rolebinding", "nobody-read", "--role=read-secrets",
                    f"--serviceaccount={namespace}:nobody")
    wait_for(
        lambda: cluster.as_kubeconfig(kc, "-n", namespace, "get", "secrets", check=False).returncode == 0,
        15,
        what="rolebinding to take effect",
    )
