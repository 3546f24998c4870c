"""Operator fault scenarios against the real local control plane: SIGKILL mid-reconcile then restart,
and two replicas (only one acts; the other takes over). Both use the session's operator process
(tests/conftest.py), which runs as its ServiceAccount."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest

from tests import secret_scan
from tests.support.cluster import (
    RESYNC_SECONDS,
    apply_yaml,
    condition,
    gongwebhook,
    kube_json,
    no_terminating_namespaces,
    source_secret,
    wait_for,
    wait_ready,
)
from tests.support.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster
FIXED = {"autoscaling": {"enabled": False}, "replicas": 2, "disruptionBudget": {"minAvailable": 1}}


def _gw(cluster: Any, ns: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] | None = kube_json(cluster, "-n", ns, "gongwebhook", name)
    assert obj is not None
    return obj


def test_killed_mid_reconcile_converges_after_restart(cluster, operator, namespace):
    wait_for(lambda: no_terminating_namespaces(cluster), 90, 1, "earlier test namespaces to be gone")
    apply_yaml(cluster, namespace, source_secret())
    mark = len(operator.log.read_text(errors="replace"))
    apply_yaml(cluster, namespace, [gongwebhook(f"crash-{i}") for i in range(3)])
    # Kill as soon as the first child of this namespace has been created, i.e. mid-reconcile.
    wait_for(lambda: namespace in operator.log.read_text(errors="replace")[mark:], 30, 0.05,
             what="the first apply in this namespace")
    operator.stop(signal.SIGKILL)
    operator.start()
    for i in range(3):
        wait_ready(cluster, namespace, f"crash-{i}")
    for kind in ("deployment", "service", "configmap", "hpa", "networkpolicy", "pdb"):
        items = json.loads(cluster.kubectl("get", kind, "-n", namespace, "-l",
                                           "app.kubernetes.io/managed-by=gong-webhook-operator",
                                           "-o", "json").stdout)["items"]
        assert len(items) == 3, f"{kind}: {[x['metadata']['name'] for x in items]}"
    for i in range(3):
        rs = json.loads(cluster.kubectl("get", "rs", "-n", namespace, "-l", f"app.kubernetes.io/instance=crash-{i}",
                                        "-o", "json").stdout)["items"]
        assert len(rs) == 1, "a restart must not roll the pods"
        conds = _gw(cluster, namespace, f"crash-{i}")["status"]["conditions"]
        assert len(conds) == len({c["type"] for c in conds}) == 5
        assert condition(_gw(cluster, namespace, f"crash-{i}"), "Degraded")["status"] == "False"
    log = operator.log.read_text(errors="replace")
    assert f"reconcile of {namespace}/" not in log, "the restarted operator hit errors on these objects"
    assert "crashed" not in log and "Traceback" not in log and '"severity": "error"' not in log


def test_peering_keeps_one_replica_active_and_fails_over(cluster, operator, namespace, tmp_path):
    standby = OperatorProcess(operator.kubeconfig, tmp_path, RESYNC_SECONDS, name="standby",
                              on_new_log=lambda log: secret_scan.register_log(log, "operator"))
    standby.priority = operator.priority - 1001  # start() adds 1: lower than the running replica
    standby.start()
    try:
        apply_yaml(cluster, namespace, [source_secret(), gongwebhook("ha-1", **FIXED)])
        wait_ready(cluster, namespace, "ha-1")
        time.sleep(RESYNC_SECONDS + 2)  # a resync window: the standby must not act either
        assert standby.metric_sum("gong_operator_reconciles_total") == 0
        assert standby.metric_sum("gong_operator_api_writes_total") == 0
        operator.stop()  # graceful: the active replica removes its keep-alive
        apply_yaml(cluster, namespace, gongwebhook("ha-2", **FIXED))
        wait_ready(cluster, namespace, "ha-2", timeout=60)
        assert standby.metric_sum("gong_operator_reconciles_total", result="success") > 0
        assert standby.metric_sum("gong_operator_active") == 1
    finally:
        standby.stop()
        operator.start()
    assert "Traceback" not in standby.all_logs()
