"""Smoke test of the benchmark harness: a seconds-long run has the latest.json shape, real numbers,
nothing lost or duplicated, and real operator numbers from the local control plane (a few CRs). No
timing assertions: only that every number was measured and the counts add up."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.redis, pytest.mark.snowflake, pytest.mark.cluster]


@pytest.mark.skipif(shutil.which("wrk") is None or shutil.which("redis-server") is None, reason="needs wrk, redis")
def test_tiny_bench_run_writes_every_key(tmp_path, cluster):
    # `cluster` brings up the local control plane (tests/conftest.py); the bench finds it running through
    # the same DEVCLUSTER_* environment and leaves it as it was.
    out = tmp_path / "latest.json"
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--tiny", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    for key in ("bare_rps", "full_rps", "ratio", "p99_ms_at_500rps"):
        assert key in result["ingest"]
    assert result["ingest"]["full_rps"] > 0 and result["ingest"]["bare_rps"] > 0
    assert result["e2e"]["accepted"] > 0
    assert result["e2e"]["lost"] == 0
    assert result["e2e"]["duplicated"] == 0
    assert result["e2e"]["data_errors"] == 0
    assert result["loader"]["ratio"] is not None
    assert "operator" not in result["not_measured"], result["not_measured"]
    op = result["operator"]
    for key in ("apply_p50_ms", "apply_p95_ms", "apply_floor_p50_ms", "apply_overhead_ratio", "converge_300_s",
                "rss_mib", "idle_reads_per_reconcile"):
        assert isinstance(op[key], (int, float)) and op[key] > 0, (key, op[key])
    assert op["apply_samples"] == 2
    assert op["converge_crs"] == len(op["converge_curve_s"]) == 4
    assert op["idle_crs"] == 1 + op["apply_samples"] + op["converge_crs"]  # warm-up + samples + converge
    assert op["idle_resync_reconciles"] >= op["idle_crs"]  # the window held a full resync pass
    assert op["idle_resync_writes"] == 0  # the operator's own identity wrote nothing while idle
    assert op["idle_operator_counted_writes"] == 0
    assert (tmp_path / "operator_convergence.png").exists()
    assert "| operator: 4 CRs in 2 namespaces → all Ready s |" in proc.stdout
    assert {"cores", "python"} <= set(result["machine"])
    assert "| ingest: full / bare (1 worker) |" in proc.stdout
    assert (tmp_path / "latest_ingest_latency.png").exists() or (tmp_path / "ingest_latency.png").exists()
