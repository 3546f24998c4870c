"""The README's first command, end to end.

Must show (issue 5): the demo ends with the GongWebhook Ready and >= 30 rows in Snowflake, the
forged webhook refused and the duplicate not doubled; `down` leaves no process of it running.
Issue 11: on the real node the app runs as pods of its image and the operator in-cluster; the
kwok-only fallback (own control plane, DEVCLUSTER_NODE=none) still works and says loudly what it is.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _pids(*dirs: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dirs:
        for f in (d / "pids").glob("*.pid"):
            out[f"{d.name}/{f.stem}"] = int(f.read_text())
    return out


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its exit status waits to be collected


@pytest.mark.cluster
def test_demo_runs_real_pods_on_the_real_node(cluster: Any, operator: Any, tmp_path: Path) -> None:
    """On the session's cluster (the one with the real node): the demo's operator is the in-cluster one,
    so the session's operator process pauses meanwhile; `down` removes what the demo made and leaves the
    cluster it did not start."""
    if os.environ.get("DEVCLUSTER_NODE") == "none":
        pytest.skip("DEVCLUSTER_NODE=none: this cluster was started without the real node")
    demo_dir = tmp_path / "demo"
    env = dict(os.environ, DEMO_DIR=str(demo_dir), DEMO_FAKESNOW_PORT="56581", DEMO_WEBHOOKS="30")
    operator.stop()
    try:
        up = subprocess.run([str(ROOT / "scripts" / "demo"), "up"], env=env, capture_output=True, text=True,
                            timeout=600)
        out = up.stdout
        assert up.returncode == 0, out + up.stderr
        assert "FALLING BACK" not in out
        assert "real node gwo-node: kubelet v1.37.2, containerd://" in out
        assert "ServiceAccount gong-webhook-operator, Ready" in out
        assert "gongwebhook/demo Ready=True" in out and "Ready by their probes on the real node" in out
        assert out.count("on gwo-node: ready=True restarts=0 containerd://") == 3, out
        assert "30 x signed -> 202" in out
        assert "1 x forged (other key) -> 401" in out
        assert "1 x duplicate of the first -> 200 duplicate" in out
        assert "GONG_WEBHOOK_EVENTS: 30 rows" in out
        assert "duplicate call ids: 0" in out
        assert 'gong_webhook_events_total{outcome="accepted"} 30.0' in out  # over 3 pods; duplicates apart
    finally:
        started = _pids(demo_dir)
        down = subprocess.run([str(ROOT / "scripts" / "demo"), "down"], env=env, capture_output=True, text=True,
                              timeout=180)
        operator.start()
    assert down.returncode == 0, down.stderr
    assert "demo/fakesnow" in started
    assert not {name for name, pid in started.items() if _running(pid)}
    assert not demo_dir.exists()
    assert cluster.kubectl("get", "namespace", "gong-demo", check=False).returncode != 0
    assert cluster.kubectl("get", "deployment", "-n", "gong-system", "gong-webhook-operator",
                           check=False).returncode != 0
    assert cluster.kubectl("get", "--raw", "/readyz").stdout == "ok"  # the session's cluster stays up


@pytest.mark.cluster
def test_demo_falls_back_to_kwok_without_the_real_node_and_down_leaves_nothing(tmp_path: Path) -> None:
    demo_dir, cluster_dir = tmp_path / "demo", tmp_path / "devcluster"
    env = dict(
        os.environ,
        DEVCLUSTER_NODE="none",  # one real node per machine: the session's cluster has it
        DEMO_DIR=str(demo_dir), DEVCLUSTER_DIR=str(cluster_dir),
        DEVCLUSTER_API_PORT="56443", DEVCLUSTER_ETCD_PORT="52379",
        DEMO_REDIS_PORT="56380", DEMO_FAKESNOW_PORT="56580", DEMO_APP_PORT="56088",
        DEMO_OPERATOR_METRICS_PORT="56089", DEMO_WEBHOOKS="30",
    )
    try:
        up = subprocess.run([str(ROOT / "scripts" / "demo"), "up"], env=env, capture_output=True, text=True,
                            timeout=600)
        out = up.stdout
        assert up.returncode == 0, out + up.stderr
        assert "FALLING BACK to kwok" in out
        assert "gongwebhook/demo Ready=True" in out
        assert "30 x signed -> 202" in out
        assert "1 x forged (other key) -> 401" in out
        assert "1 x duplicate of the first -> 200 duplicate" in out
        assert "GONG_WEBHOOK_EVENTS: 30 rows" in out
        assert "duplicate call ids: 0" in out
        assert "stop with: scripts/demo down" in out
        # The app ran from what the operator rendered, not from settings of the demo's own.
        assert "settings from configmap/demo-config" in out and "keys from secret/demo-credentials" in out
    finally:
        started = _pids(demo_dir, cluster_dir)
        down = subprocess.run([str(ROOT / "scripts" / "demo"), "down"], env=env, capture_output=True, text=True,
                              timeout=120)
    assert down.returncode == 0, down.stderr
    assert {"demo/app", "demo/operator", "demo/redis", "demo/fakesnow", "devcluster/kube-apiserver",
            "devcluster/etcd", "devcluster/kwok"} <= set(started)
    deadline = time.monotonic() + 10
    while any(_running(p) for p in started.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not {name for name, pid in started.items() if _running(pid)}
    assert not demo_dir.exists() and not cluster_dir.exists()
