"""HA failover when the active replica dies silently: two replicas with `--peering-lifetime 10`, the
active one gets SIGKILL (it cannot remove its keep-alive), and the standby must take over once that
keep-alive is older than its lifetime — not before (the peering still protects against two active
replicas) and not much later (the stale entry must not block it).

The session operator (tests/conftest.py) steps aside for the duration: a graceful stop removes its
keep-alive, and it is started again at the end with a higher priority than both replicas here.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import time
from typing import Any

import pytest

from tests import secret_scan
from tests.support.cluster import RESYNC_SECONDS, apply_yaml, gongwebhook, source_secret, wait_for, wait_ready
from tests.support.operator_process import OperatorProcess, metric_total

pytestmark = pytest.mark.cluster
LIFETIME = 10
# From the keep-alive's expiry to the standby's first reconcile of a new object: Kopf wakes at the
# expiry, re-lists, and one reconcile runs (measured about 1-2 s on the 2-core machine).
TAKEOVER_MARGIN = 10
FIXED = {"autoscaling": {"enabled": False}, "replicas": 2, "disruptionBudget": {"minAvailable": 1}}
PEERING = "gong-webhook-operator"


def _peers(cluster: Any) -> dict[str, Any]:
    obj = json.loads(cluster.kubectl("get", "clusterkopfpeering", PEERING, "-o", "json").stdout)
    peers: dict[str, Any] = obj.get("status") or {}
    return peers


def _reconciled(op: OperatorProcess, namespace: str, name: str) -> float | None:
    """The replica's gauge for this GongWebhook (set after each of its reconciles), or None if it never
    reconciled it."""
    samples = op.metrics()
    key = f'gong_operator_gongwebhook_ready{{gongwebhook="{name}",gongwebhook_namespace="{namespace}"}}'
    return samples.get(key)


def test_standby_takes_over_from_a_sigkilled_replica_within_the_peering_lifetime(
        cluster, operator, namespace, tmp_path):
    def replica(name: str, below: int) -> OperatorProcess:
        op = OperatorProcess(operator.kubeconfig, tmp_path, RESYNC_SECONDS, name=name,
                             on_new_log=lambda log: secret_scan.register_log(log, "operator"),
                             extra_args=("--peering-lifetime", str(LIFETIME)))
        op.priority = operator.priority - below  # start() adds 1; below the session operator's restart
        return op

    operator.stop()  # graceful: its keep-alive is removed, so it does not pause the replicas below
    active, standby = replica("active", 1000), replica("standby", 2000)
    try:
        active.start()
        standby.start()
        assert active.proc is not None
        active_id = f"active-1@{active.proc.pid}"
        apply_yaml(cluster, namespace, [source_secret(), gongwebhook("ha-1", **FIXED)])
        wait_ready(cluster, namespace, "ha-1")
        wait_for(lambda: _reconciled(active, namespace, "ha-1") == 1, 30, what="the active replica's reconcile")
        peers = _peers(cluster)
        assert peers[active_id]["lifetime"] == LIFETIME, peers
        assert {p["lifetime"] for p in peers.values()} == {LIFETIME}, peers
        time.sleep(RESYNC_SECONDS + 2)  # a resync window: the standby must not act
        assert standby.metric_sum("gong_operator_reconciles_total") == 0
        assert standby.metric_sum("gong_operator_api_writes_total") == 0

        active.stop(signal.SIGKILL)  # no chance to remove its keep-alive
        killed = time.monotonic()
        stale = _peers(cluster)[active_id]
        expires = dt.datetime.fromisoformat(stale["lastseen"]).replace(tzinfo=dt.UTC) + dt.timedelta(
            seconds=stale["lifetime"])
        apply_yaml(cluster, namespace, gongwebhook("ha-2", **FIXED))

        wait_for(lambda: _reconciled(standby, namespace, "ha-2") is not None, LIFETIME + TAKEOVER_MARGIN + 20, 0.2,
                 "the standby's first reconcile of ha-2")
        took = time.monotonic() - killed
        now = dt.datetime.now(dt.UTC)
        early = (expires - now).total_seconds()
        assert early <= 1, f"the standby acted {early:.1f}s before the dead replica's keep-alive expired"
        assert took <= LIFETIME + TAKEOVER_MARGIN, f"takeover took {took:.1f}s (lifetime {LIFETIME}s)"
        wait_ready(cluster, namespace, "ha-2", timeout=60)
        wait_for(lambda: _reconciled(standby, namespace, "ha-2") == 1, 30, what="the standby to see ha-2 Ready")
        samples = standby.metrics()
        assert metric_total(samples, "gong_operator_active") == 1
        assert metric_total(samples, "gong_operator_reconciles_total", result="success") > 0
        # Kopf on the standby deletes expired entries from the peering object once it sees them.
        wait_for(lambda: active_id not in _peers(cluster), 10, what="the dead replica's entry to be removed")
        print(f"standby reconciled a new GongWebhook {took:.1f}s after the active replica's SIGKILL "
              f"(keep-alive lifetime {LIFETIME}s, it expired {-early:.1f}s before)")
    finally:
        active.stop(signal.SIGKILL)
        standby.stop()
        operator.start()
    logs = standby.all_logs()
    assert "Traceback" not in logs and "Forbidden" not in logs
