"""Smoke test of the benchmark harness: a seconds-long run has the latest.json shape, real numbers,
nothing lost or duplicated, and the operator keys null with a reason. No timing assertions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.redis, pytest.mark.snowflake]


@pytest.mark.skipif(shutil.which("wrk") is None or shutil.which("redis-server") is None, reason="needs wrk, redis")
def test_tiny_bench_run_writes_every_key(tmp_path):
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
    assert result["loader"]["ratio"] is not None
    assert set(result["operator"]) >= {"apply_p50_ms", "converge_300_s", "idle_resync_writes", "rss_mib"}
    assert all(v is None for v in result["operator"].values())
    assert "operator" in result["not_measured"]
    assert {"cores", "python"} <= set(result["machine"])
    assert "| ingest: full / bare (1 worker) |" in proc.stdout
    assert (tmp_path / "latest_ingest_latency.png").exists() or (tmp_path / "ingest_latency.png").exists()
