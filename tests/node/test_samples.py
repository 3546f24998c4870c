"""config/samples applied as documented runs on the real node: Ready by the app's own probes."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import node as n
from tests.support.cluster import condition

ROOT = n.ROOT


def test_samples_run_ready_on_the_real_node(cluster: Any, node_operator: None, node_namespace: str) -> None:
    ns = node_namespace
    cluster.kubectl("apply", "-n", ns, "-f", str(ROOT / "config" / "samples"))
    proc = cluster.kubectl("wait", "--for=condition=Ready", "--timeout=240s", "-n", ns, "gongwebhook/gong",
                           check=False, timeout=260)
    gw = n.get_json(cluster, "gongwebhook", "gong", "-n", ns)
    assert proc.returncode == 0, f"sample not Ready: {gw and gw.get('status')}\n{n.describe(cluster, ns)}"
    assert condition(gw, "Degraded")["status"] == "False"

    pods = n.pods(cluster, ns, "app.kubernetes.io/instance=gong")
    running = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert len(running) == 3, n.describe(cluster, ns)  # the sample's autoscaling.minReplicas
    for pod in running:
        name = pod["metadata"]["name"]
        assert pod["spec"]["nodeName"] == n.REAL_NODE, name
        assert n.ready(pod), f"{name} not Ready by its probes"
        (cs,) = pod["status"]["containerStatuses"]
        assert cs["containerID"].startswith("containerd://"), cs
        assert cs["restartCount"] == 0, f"{name} restarted {cs['restartCount']} times: {cs.get('lastState')}"
        assert "running" in cs["state"], cs["state"]
        # What the process really runs as, and that its root filesystem refuses writes.
        probe = cluster.kubectl(
            "exec", "-n", ns, name, "-c", "webhook", "--", "python", "-c",
            "import os\ntry:\n open('/probe', 'w')\n w = 'writable'\nexcept OSError as e:\n w = e.strerror\n"
            "print(os.getuid(), os.getgid(), w)")
        assert probe.stdout.split(None, 2) == ["1000", "1000", "Read-only file system\n"], probe.stdout

    # The pods' readiness endpoint answers through the Service (from the node, which the policy admits)...
    svc = n.get_json(cluster, "service", "gong", "-n", ns)
    ready = httpx.get(f"http://{svc['spec']['clusterIP']}/ready", timeout=5)
    assert '"redis":true' in ready.text.replace(" ", ""), ready.text
    # ...but not from inside the namespace: the sample's NetworkPolicy admits only ingress-nginx to the
    # webhook port, even the app's own pods (kube-router enforces it on the real node).
    inside = cluster.kubectl(
        "exec", "-n", ns, running[0]["metadata"]["name"], "-c", "webhook", "--", "python", "-c",
        "import urllib.request as u\ntry:\n u.urlopen('http://gong/ready', timeout=5); print('open')\n"
        "except OSError as e:\n print('refused', e)", check=False)
    assert inside.stdout.startswith("refused"), inside.stdout + inside.stderr
    namespace = n.get_json(cluster, "namespace", ns)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
