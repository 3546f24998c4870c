"""Issue 10 #2 on the real control plane: `gong-webhook-operator` with peering on, where Kopf's peering
CRD or object is missing, used to log "starting" and nothing else while reconciling nothing. Within
10 s of its start it must log one ERROR line naming what is missing and both remedies (apply
config/peering, or --standalone), fail /healthz with the same text, and export
gong_operator_peering_ready 0.

The real console script runs as its ServiceAccount. The CRD case deletes kopfpeerings.kopf.dev (the
namespaced peering CRD, which no other test's operator uses: the shared one runs cluster-wide on
clusterkopfpeerings) and restores it afterwards; the cluster-wide case names a ClusterKopfPeering
that does not exist.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import secret_scan
from tests.support.cluster import wait_for
from tests.support.operator_process import SA_NAMESPACE, OperatorProcess, sa_kubeconfig

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
WITHIN_SECONDS = 10


@pytest.fixture
def operator_kubeconfig(cluster: Any, gw_crd: None, tmp_path: Path) -> Path:
    cluster.kubectl("create", "namespace", SA_NAMESPACE, check=False)
    cluster.kubectl("apply", "-k", str(ROOT / "config" / "rbac"))
    return sa_kubeconfig(cluster, tmp_path / "kubeconfig")


@pytest.fixture
def process(operator_kubeconfig: Path, tmp_path: Path) -> Iterator[Any]:
    started: list[OperatorProcess] = []

    def start(*, scope: tuple[str, ...] = ("--all-namespaces",), extra: tuple[str, ...] = ()) -> OperatorProcess:
        op = OperatorProcess(operator_kubeconfig, tmp_path, 10, name="peering-missing", scope=scope,
                             extra_args=extra, on_new_log=lambda log: secret_scan.register_log(log, "operator"))
        started.append(op)
        return op.start(wait_healthy=False)

    yield start
    for op in started:
        op.stop()


def _error_lines(op: OperatorProcess) -> list[str]:
    out = []
    for line in op.log.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("severity") == "error":  # Kopf's JSON log format
            out.append(str(rec.get("message", "")))
    return out


def _reported(op: OperatorProcess, what: str) -> tuple[float, str]:
    """Seconds from start to the first ERROR line containing `what`, and that line."""
    line = wait_for(lambda: next((m for m in _error_lines(op) if what in m), None), WITHIN_SECONDS + 5, 0.2,
                    f"an ERROR line naming {what}")
    return time.monotonic() - op.started_at, str(line)


def _check_reported(op: OperatorProcess, what: str) -> None:
    took, line = _reported(op, what)
    assert took <= WITHIN_SECONDS, f"reported after {took:.1f}s"
    assert "kubectl apply -k config/peering" in line and "--standalone" in line, line
    assert len([m for m in _error_lines(op) if what in m]) == 1, "one line, not one per check"
    wait_for(lambda: op.healthz()[0] == 500, 15, 0.5, "/healthz 500")
    # Kopf answers a failed probe with a bare 500 and logs the reason (the probe handler's message).
    wait_for(lambda: any("Activity 'workers' failed permanently" in m and what in m for m in _error_lines(op)),
             10, 0.2, "the probe failure naming the problem")
    assert op.metric_sum("gong_operator_peering_ready") == 0.0


def test_missing_cluster_peering_object_is_reported(process: Any) -> None:
    name = f"missing-{uuid.uuid4().hex[:6]}"
    op = process(extra=("--peering", name))
    _check_reported(op, f"ClusterKopfPeering {name} does not exist")


def test_missing_peering_crd_is_reported(cluster: Any, process: Any, namespace: str) -> None:
    crd = "kopfpeerings.kopf.dev"
    cluster.kubectl("delete", "crd", crd, "--wait=true", "--timeout=60s", check=False)
    try:
        wait_for(lambda: cluster.kubectl("get", "crd", crd, check=False).returncode != 0, 30, 0.5, "CRD gone")
        op = process(scope=("--namespace", namespace))
        _check_reported(op, f"{crd} is not installed")
    finally:
        cluster.kubectl("apply", "-f", str(ROOT / "config" / "peering" / "crds.yaml"))
