"""The HorizontalPodAutoscaler the operator renders, acting on real metrics: metrics-server reads the
kubelet's resource metrics of the real node, the HPA controller scales the Deployment up under
webhook load as the rendered scale-up policy allows, and back down once the load stops and the
(shortened) stabilization window passes. The operator never writes spec.replicas meanwhile.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from tests.support import node as n
from tests.support.cluster import wait_for
from tests.support.gong import GongSigner, new_private_key, public_key_pem
from tests.support.load import WebhookLoad
from tests.support.servers import FakesnowServer

PUBLIC_URL = "https://gong-webhooks.example.com/webhooks/gong"
AUTOSCALING = {
    "enabled": True, "minReplicas": 1, "maxReplicas": 3, "targetCpuUtilizationPercentage": 40,
    "scaleUp": {"pods": 1, "percent": 100, "periodSeconds": 15},
    "scaleDown": {"percent": 100, "periodSeconds": 15, "stabilizationWindowSeconds": 30},
}


class Sampler:
    """Replicas over time: the HPA's view (current CPU, desired) and the Deployment's (spec, ready)."""

    def __init__(self, cluster: Any, namespace: str, every: float = 5) -> None:
        self.cluster, self.namespace, self.every = cluster, namespace, every
        self.rows: list[dict[str, Any]] = []
        self.t0 = time.monotonic()
        self.phase = "idle"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            hpa = n.get_json(self.cluster, "hpa", "gong", "-n", self.namespace) or {}
            dep = n.get_json(self.cluster, "deployment", "gong", "-n", self.namespace) or {}
            cpu = next((m["resource"]["current"].get("averageUtilization")
                        for m in (hpa.get("status") or {}).get("currentMetrics") or []
                        if m.get("type") == "Resource" and m["resource"]["name"] == "cpu"), None)
            self.rows.append({"t": round(time.monotonic() - self.t0), "phase": self.phase, "cpu_pct": cpu,
                              "desired": (hpa.get("status") or {}).get("desiredReplicas"),
                              "replicas": (dep.get("spec") or {}).get("replicas"),
                              "ready": (dep.get("status") or {}).get("readyReplicas", 0)})
            self._stop.wait(self.every)

    def table(self) -> str:
        lines = ["  t(s)  phase    cpu%  desired  spec  ready"]
        lines += [f"  {r['t']:>4}  {r['phase']:<7} {r['cpu_pct']!s:>5}  {r['desired']!s:>7}  "
                  f"{r['replicas']!s:>4}  {r['ready']:>5}" for r in self.rows]
        return "\n".join(lines)


@pytest.fixture
def autoscaled(cluster: Any, node_operator: None, node_namespace: str, node_fakesnow: FakesnowServer) -> dict[str, Any]:
    ns = node_namespace
    schema = f"GW_{uuid.uuid4().hex[:8].upper()}"
    n.migrate_schema(node_fakesnow, schema)
    key = new_private_key()
    cr = n.sample_cr(schema)
    cr["spec"]["autoscaling"] = AUTOSCALING
    cr["spec"]["disruptionBudget"] = {"minAvailable": 0}
    n.apply(cluster, ns, [n.source_secret(public_key_pem(key), "pw-hpa-2Lm"), cr])
    proc = cluster.kubectl("wait", "--for=condition=Ready", "--timeout=240s", "-n", ns, "gongwebhook/gong",
                           check=False, timeout=260)
    assert proc.returncode == 0, n.describe(cluster, ns)
    svc = n.get_json(cluster, "service", "gong", "-n", ns)
    return {"ns": ns, "key": key, "base_url": f"http://{svc['spec']['clusterIP']}:80"}


def _operator_owns_replicas(dep: dict[str, Any]) -> list[str]:
    return [f["manager"] for f in dep["metadata"].get("managedFields") or []
            if "f:replicas" in ((f.get("fieldsV1") or {}).get("f:spec") or {})
            and f["manager"].startswith("gong-webhook-operator") and not f["manager"].endswith("handover")]


def test_the_hpa_scales_up_under_load_and_back_down_after_it(cluster: Any, autoscaled: dict[str, Any]) -> None:
    ns = autoscaled["ns"]
    hpa = n.get_json(cluster, "hpa", "gong", "-n", ns)
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 30
    # The metric is real before any load: the HPA reads the pods' CPU (AbleToScale, ScalingActive).
    wait_for(lambda: any(c["type"] == "ScalingActive" and c["status"] == "True"
                         for c in (n.get_json(cluster, "hpa", "gong", "-n", ns).get("status") or {})
                         .get("conditions") or []), 90, what="the HPA to read the pods' CPU (metrics-server)")
    signer = GongSigner(autoscaled["key"], PUBLIC_URL)
    with Sampler(cluster, ns) as sampler:
        time.sleep(10)
        sampler.phase = "load"
        with WebhookLoad(autoscaled["base_url"], signer, "hpa-", threads=6, rate=400) as load:
            wait_for(lambda: (n.get_json(cluster, "deployment", "gong", "-n", ns)["spec"]["replicas"] or 0) >= 2,
                     180, what="the HPA to scale the Deployment up under load")
            # A reconcile while autoscaled above the minimum (a spec edit the operator applies, the
            # Deployment included) leaves spec.replicas to the HPA.
            before = n.get_json(cluster, "deployment", "gong", "-n", ns)["spec"]["replicas"]
            cluster.kubectl("patch", "gongwebhook", "gong", "-n", ns, "--type=merge",
                            "-p", '{"spec": {"service": {"annotations": {"hpa-test": "edited"}}}}')
            wait_for(lambda: (n.get_json(cluster, "service", "gong", "-n", ns)["metadata"].get("annotations") or {})
                     .get("hpa-test") == "edited", 60, what="the operator to apply the edit")
            after = n.get_json(cluster, "deployment", "gong", "-n", ns)["spec"]["replicas"]
            time.sleep(20)
        sampler.phase = "after"
        wait_for(lambda: n.get_json(cluster, "deployment", "gong", "-n", ns)["spec"]["replicas"] == 1, 240,
                 what="the HPA to scale back down to minReplicas after the load")
        time.sleep(5)
    table = sampler.table()
    print(f"\nreplicas over time (load: {len(load.accepted)} webhooks accepted, {dict(load.statuses)}):\n{table}")
    peak = max(r["replicas"] or 0 for r in sampler.rows)
    assert peak >= 2, table
    assert after >= before, f"a reconcile lowered spec.replicas from {before} to {after}"
    # The rendered scale-up policy (1 pod or 100 % per 15 s): never more than +1 between two samples
    # 5 s apart, and never above maxReplicas.
    steps = [b["replicas"] - a["replicas"] for a, b in zip(sampler.rows, sampler.rows[1:])
             if a["replicas"] is not None and b["replicas"] is not None]
    assert max(steps) <= 2 and peak <= AUTOSCALING["maxReplicas"], table
    dep = n.get_json(cluster, "deployment", "gong", "-n", ns)
    assert not _operator_owns_replicas(dep), dep["metadata"]["managedFields"]
