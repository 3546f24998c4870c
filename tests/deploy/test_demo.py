"""The README's first command, end to end, on its own control plane and ports.

Must show (issue 5): the demo ends with the GongWebhook Ready and >= 30 rows in Snowflake, the
forged webhook refused and the duplicate not doubled; `down` leaves no process of it running.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

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
def test_demo_up_shows_the_whole_flow_and_down_leaves_nothing(tmp_path: Path) -> None:
    demo_dir, cluster_dir = tmp_path / "demo", tmp_path / "devcluster"
    env = dict(
        os.environ,
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
