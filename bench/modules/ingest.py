"""ingest: the full webhook path against a bare FastAPI endpoint, same server settings, same load.

Full path = the real ``gong-webhook-app`` entry point (JWT RS256 verify, atomic dedup + XADD by one
Lua script, Redis with AOF and appendfsync always, INFO logging as deployed). Baseline =
``bench.serve_bare`` (FastAPI route returning 202, same uvicorn options and worker count).
Both get the same pre-signed ~2 KB requests, each with its own call id, so the full path does real
work for every request (no duplicate short-cut): each worker configuration uses a fresh stream.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import Any

from bench.common import AppServer, app_env, percentile, pinned
from bench.loadgen import run_wrk

NAME = "ingest"
KEYS = ["bare_rps", "full_rps", "ratio", "p99_ms_at_500rps"]
SERVER_CPUS = "0"  # 1 worker: the server on core 0, load generator on core 1 (redis unpinned)
LOADGEN_CPUS = "1"
WRK_CONNECTIONS = 64


def available(ctx: Any) -> str | None:
    return None


def _fixed_rate(ctx: Any, port: int, offset: int, rate: int, duration: float) -> dict[str, Any]:
    out = ctx.workdir / f"openloop-{port}-{rate}.json"
    cmd = pinned([sys.executable, "-m", "bench.loadgen", "--port", str(port), "--pool", str(ctx.pool.path),
                  "--offset", str(offset), "--rate", str(rate), "--duration", str(duration), "--out", str(out)],
                 LOADGEN_CPUS)
    subprocess.run(cmd, check=True, cwd=ctx.root, timeout=duration + 120)
    data = json.loads(out.read_text())
    results = data["results"]
    lat = [r[1] * 1000 for r in results]
    statuses: dict[str, int] = {}
    for r in results:
        statuses[str(r[2])] = statuses.get(str(r[2]), 0) + 1
    return {
        "offered_rps": rate,
        "requests": len(results),
        "p50_ms": _r(percentile(lat, 50)),
        "p90_ms": _r(percentile(lat, 90)),
        "p99_ms": _r(percentile(lat, 99)),
        "max_ms": _r(max(lat) if lat else None),
        "statuses": statuses,
    }


def _r(v: float | None, nd: int = 2) -> float | None:
    return None if v is None else round(v, nd)


def _measure(ctx: Any, kind: str, workers: int) -> dict[str, Any]:
    stream = f"bench:{kind}:{workers}:{uuid.uuid4().hex[:8]}"
    env = app_env(ctx.redis.url, ctx.pool.public_key_b64, stream, workers=workers)
    cpus = SERVER_CPUS if workers == 1 else None
    log = ctx.workdir / f"app-{kind}-{workers}w.log"
    server = AppServer(env, log, bare=(kind == "bare"), cpus=cpus).start()
    try:
        # Warm-up (imports, connection pools, JIT-less but caches) on requests outside the measured range.
        offset = 0
        warm = run_wrk(server.port, ctx.pool.path, offset, 1, connections=8, cpus=LOADGEN_CPUS)
        offset += warm["requests"] + 8 + 1
        res = run_wrk(server.port, ctx.pool.path, offset, ctx.cfg.max_duration, WRK_CONNECTIONS, LOADGEN_CPUS)
        offset += res["requests"] + WRK_CONNECTIONS + 1
        seconds = res["duration_us"] / 1e6
        ok = res["statuses"].get("202", 0)
        other = {k: v for k, v in res["statuses"].items() if k != "202"}
        entry: dict[str, Any] = {
            "max_rps": round(ok / seconds, 1),
            "wrk_p50_ms": round(res["p50_us"] / 1000, 2),
            "wrk_p99_ms": round(res["p99_us"] / 1000, 2),
            "non_202": other,
            "pool_wrapped": res["wrapped"],
            "socket_errors": res["errors_connect"] + res["errors_read"] + res["errors_timeout"],
        }
        if kind == "full" and (res["wrapped"] or other):
            ctx.warn(f"ingest {kind} {workers}w: {other} non-202 responses, pool wrapped {res['wrapped']}x "
                     "(only 202s are counted)")
        rates = []
        for rate in ctx.cfg.rates:
            if offset + rate * ctx.cfg.rate_duration > ctx.pool.count:
                if kind == "full":
                    ctx.warn(f"ingest full {workers}w: request pool too small, {rate} req/s reuses call ids")
                offset = 0
            rates.append(_fixed_rate(ctx, server.port, offset, rate, ctx.cfg.rate_duration))
            offset += int(rate * ctx.cfg.rate_duration)
        entry["fixed_rate"] = rates
        if kind == "full":
            entry["stream_entries"] = ctx.redis_xlen(stream)
        return entry
    finally:
        server.stop()


def run(ctx: Any) -> dict[str, Any]:
    configs: dict[str, dict[str, Any]] = {}
    for workers in ctx.cfg.workers:
        for kind in ("bare", "full"):
            configs[f"{kind}_{workers}w"] = _measure(ctx, kind, workers)
    bare, full = configs["bare_1w"], configs["full_1w"]

    def at(entry: dict[str, Any], rate: int, key: str) -> float | None:
        return next((r[key] for r in entry["fixed_rate"] if r["offered_rps"] == rate), None)

    out: dict[str, Any] = {
        "bare_rps": bare["max_rps"],
        "full_rps": full["max_rps"],
        "ratio": round(full["max_rps"] / bare["max_rps"], 3) if bare["max_rps"] else None,
        "p50_ms_at_500rps": at(full, 500, "p50_ms"),
        "p99_ms_at_500rps": at(full, 500, "p99_ms"),
        "bare_p99_ms_at_500rps": at(bare, 500, "p99_ms"),
        "payload_bytes": ctx.pool.body_bytes,
        "load_generators": {
            "max_rps": f"wrk -t1 -c{WRK_CONNECTIONS} (closed loop), pinned to core {LOADGEN_CPUS}",
            "fixed_rate": f"bench.loadgen open loop (asyncio+uvloop), pinned to core {LOADGEN_CPUS}; "
                          "latency from each request's due time",
            "server": f"1 worker pinned to core {SERVER_CPUS}; 2 workers unpinned; redis-server unpinned",
        },
        "configs": configs,
    }
    if "full_2w" in configs:
        b2, f2 = configs["bare_2w"], configs["full_2w"]
        out["bare_rps_2w"] = b2["max_rps"]
        out["full_rps_2w"] = f2["max_rps"]
        out["ratio_2w"] = round(f2["max_rps"] / b2["max_rps"], 3) if b2["max_rps"] else None
        out["p99_ms_at_500rps_2w"] = at(f2, 500, "p99_ms")
    return out
