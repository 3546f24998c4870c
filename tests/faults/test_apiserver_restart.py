"""kube-apiserver restart while the operator reconciles: GongWebhooks applied, the API server restarted
(`scripts/devcluster restart kube-apiserver`: SIGTERM, start, wait for /readyz) while their children
are being created, one more applied afterwards. Every GongWebhook converges to Ready with exactly one
set of children, and the operator process rides the outage out (same process, still healthy)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.support.cluster import apply_yaml, condition, gongwebhook, kube_json, source_secret, wait_for, wait_ready

pytestmark = pytest.mark.cluster
N = 5
CHILD_KINDS = ("deployment", "service", "configmap", "hpa", "networkpolicy", "pdb")


def _ready_count(cluster: Any, namespace: str) -> int:
    items = (kube_json(cluster, "-n", namespace, "gongwebhooks") or {}).get("items") or []
    return sum(1 for gw in items if (condition(gw, "Ready") or {}).get("status") == "True")


def test_apiserver_restart_mid_reconcile_converges_without_duplicates(cluster, operator, namespace):
    process, generation = operator.proc, operator.generation
    apply_yaml(cluster, namespace, source_secret())
    mark = len(operator.log.read_text(errors="replace"))
    apply_yaml(cluster, namespace, [gongwebhook(f"api-{i}") for i in range(N)])
    wait_for(lambda: namespace in operator.log.read_text(errors="replace")[mark:], 30, 0.05,
             what="the operator's first write in this namespace")
    ready_at_restart = _ready_count(cluster, namespace)
    started = time.monotonic()
    cluster.devcluster("restart", "kube-apiserver")
    restart_seconds = time.monotonic() - started
    # Created after the restart: only a re-established watch sees it (the resync timer only
    # revisits objects the operator already knows).
    apply_yaml(cluster, namespace, gongwebhook(f"api-{N}"))

    for i in range(N + 1):
        wait_ready(cluster, namespace, f"api-{i}", timeout=120)
    assert ready_at_restart < N, "every GongWebhook was Ready before the restart: nothing was mid-reconcile"
    assert operator.proc is process and operator.generation == generation
    assert process.poll() is None, "the operator exited during the API server restart"
    assert operator.metric_sum("gong_operator_active") == 1

    for kind in CHILD_KINDS:
        items = json.loads(cluster.kubectl("get", kind, "-n", namespace, "-l",
                                           "app.kubernetes.io/managed-by=gong-webhook-operator",
                                           "-o", "json").stdout)["items"]
        owners = sorted(x["metadata"]["labels"]["app.kubernetes.io/instance"] for x in items)
        assert owners == sorted(f"api-{i}" for i in range(N + 1)), f"{kind}: one per GongWebhook, got {owners}"
    for i in range(N + 1):
        rs = json.loads(cluster.kubectl("get", "rs", "-n", namespace, "-l", f"app.kubernetes.io/instance=api-{i}",
                                        "-o", "json").stdout)["items"]
        assert len(rs) == 1, f"api-{i}: {len(rs)} ReplicaSets (the restart must not roll the pods)"
        gw = kube_json(cluster, "-n", namespace, "gongwebhook", f"api-{i}")
        conds = gw["status"]["conditions"]
        assert len(conds) == len({c["type"] for c in conds})
        assert condition(gw, "Degraded")["status"] == "False"
    print(f"restart took {restart_seconds:.1f} s; Ready at restart: {ready_at_restart}/{N}")
