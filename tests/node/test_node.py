"""The real node itself: a kubelet of the control plane's version on containerd, tainted so that only
pods that ask for it run there, with the cluster DNS answering Service names."""

from __future__ import annotations

import json
from typing import Any

from tests.support import node as n
from tests.support.cluster import wait_for


def test_real_node_runs_kubelet_on_containerd(cluster: Any, real_node: dict[str, Any]) -> None:
    version = cluster.kubectl("version", "-o", "json").stdout
    info = real_node["status"]["nodeInfo"]
    assert f'"gitVersion": "{info["kubeletVersion"]}"' in version, (info, version)
    assert info["containerRuntimeVersion"].startswith("containerd://"), info
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in real_node["status"]["conditions"])
    assert {"key": n.NODE_KEY, "value": n.NODE_VALUE, "effect": "NoSchedule"} in real_node["spec"]["taints"]
    assert real_node["metadata"]["labels"][n.NODE_KEY] == n.NODE_VALUE
    wide = cluster.kubectl("get", "nodes", "-o", "wide").stdout
    assert any(line.startswith(n.REAL_NODE) and "containerd://" in line for line in wide.splitlines()), wide


def test_cluster_dns_resolves_services_inside_pods(cluster: Any, node_namespace: str) -> None:
    """CoreDNS answers the short and the full name of a Service with its ClusterIP, from a pod."""
    ns = node_namespace
    ip = n.get_json(cluster, "service", "redis", "-n", ns)["spec"]["clusterIP"]
    script = ("import socket; print(socket.gethostbyname('redis'), "
              f"socket.gethostbyname('redis.{ns}.svc.cluster.local'), socket.gethostbyname('kubernetes.default'))")
    overrides = {"spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                          "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                              "seccompProfile": {"type": "RuntimeDefault"}},
                          "containers": [{"name": "dns", "image": n.APP_IMAGE, "command": ["python", "-c", script],
                                          "securityContext": {"allowPrivilegeEscalation": False,
                                                              "capabilities": {"drop": ["ALL"]}}}]}}
    cluster.kubectl("run", "dns", "-n", ns, f"--image={n.APP_IMAGE}", "--restart=Never",
                    f"--overrides={json.dumps(overrides)}")
    wait_for(lambda: (n.get_json(cluster, "pod", "dns", "-n", ns) or {}).get("status", {}).get("phase")
             in ("Succeeded", "Failed"), 60, what="the DNS probe pod to finish")
    out = cluster.kubectl("logs", "-n", ns, "dns").stdout.split()
    assert out == [ip, ip, "10.96.0.1"], out
