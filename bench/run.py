"""Entry point of ``scripts/bench [--quick]``: runs every benchmark module, writes
``bench/results/latest.json``, prints a markdown table and saves the charts.

Modules are registered in ``MODULES``; each returns a dict merged into ``latest.json`` under its
name. A module that is not available, or fails, gets its keys written as null and the reason
printed in the table: no number is ever made up.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import common
from bench.modules import e2e, ingest, loader, operator
from tests.support.servers import FakesnowServer, RedisServer

MODULES: list[ModuleType] = [ingest, e2e, loader, operator]
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Config:
    mode: str
    max_duration: float
    rates: list[int]
    rate_duration: float
    workers: list[int]
    e2e_rate: int
    e2e_duration: float
    loader_batches: list[int]
    loader_batches_per_point: int
    loader_row_by_row_max: int
    loader_budget_s: float
    pool_size: int
    # operator (bench/modules/operator.py): see bench/README.md
    op_apply_samples: int = 30
    op_converge_crs: int = 300
    op_converge_namespaces: int = 30
    op_converge_timeout_s: float = 600
    op_idle_resync_s: float = 15
    op_idle_passes: int = 2
    op_converge_floor: bool = True


# Quick: < 3 minutes for all four modules on the 2-core box (rate_duration was 4 s before the operator
# module joined; 3 s still gives 1 500 samples for p99 at 500 req/s).
QUICK = Config("quick", max_duration=5, rates=[100, 500, 1000], rate_duration=3, workers=[1, 2], e2e_rate=200,
               e2e_duration=15, loader_batches=[1, 10, 100, 500], loader_batches_per_point=3,
               loader_row_by_row_max=150, loader_budget_s=4, pool_size=25_000,
               op_apply_samples=5, op_converge_crs=30, op_converge_namespaces=3, op_converge_timeout_s=120,
               op_idle_resync_s=1.5, op_idle_passes=2, op_converge_floor=False)
FULL = Config("full", max_duration=20, rates=[100, 250, 500, 750, 1000], rate_duration=15, workers=[1, 2],
              e2e_rate=200, e2e_duration=60, loader_batches=[1, 10, 50, 100, 250, 500, 1000, 2000],
              loader_batches_per_point=5, loader_row_by_row_max=1000, loader_budget_s=15, pool_size=140_000)

# Seconds-long shape check for tests/bench (numbers meaningless). The pool must outlast the 1 s wrk
# warm-up plus the 1 s measurement of the full path (~2-3k requests on a quiet box): with 2 000 a fast
# moment left only duplicates (200, not counted) for the measurement and full_rps read 0.
TINY = Config("tiny", max_duration=1, rates=[50], rate_duration=1, workers=[1], e2e_rate=50, e2e_duration=2,
              loader_batches=[1, 10], loader_batches_per_point=2, loader_row_by_row_max=10, loader_budget_s=1,
              pool_size=6_000, op_apply_samples=2, op_converge_crs=4, op_converge_namespaces=2,
              op_converge_timeout_s=60, op_idle_resync_s=1, op_idle_passes=1, op_converge_floor=False)


@dataclass
class Context:
    cfg: Config
    workdir: Path
    root: Path = common.ROOT
    redis: RedisServer | None = None
    fakesnow: FakesnowServer | None = None
    pool: common.RequestPool | None = None
    warnings: list[str] = field(default_factory=list)

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        print(f"WARNING: {text}", file=sys.stderr, flush=True)

    def redis_xlen(self, stream: str) -> int:
        import redis

        assert self.redis is not None
        client = redis.Redis.from_url(self.redis.url)
        try:
            return int(client.xlen(stream))
        finally:
            client.close()


def _pool(cfg: Config, workdir: Path) -> common.RequestPool:
    """Pre-signed requests, cached in bench/results/pool*.tmp (git-ignored) while the tokens stay valid:
    signing ~1 ms each is the slowest part of preparing a run."""
    base = workdir if cfg.mode == "tiny" else RESULTS
    cache, meta_path = base / "pool.tmp", base / "pool-meta.tmp"
    if cache.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        fresh = time.time() - meta["created"] < common.TOKEN_TTL_SECONDS - 1800
        if fresh and meta["count"] >= cfg.pool_size:
            return common.RequestPool(cache, meta["count"], meta["public_key_b64"], meta["body_bytes"])
    started = time.monotonic()
    pool = common.make_request_pool(cache, cfg.pool_size)
    meta_path.write_text(json.dumps({"created": time.time(), "count": pool.count,
                                     "public_key_b64": pool.public_key_b64, "body_bytes": pool.body_bytes}))
    print(f"signed {pool.count} requests in {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
    return pool


def _get(d: dict[str, Any], dotted: str) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


TABLE: list[tuple[str, str, str]] = [
    # key, label, goal
    ("ingest.bare_rps", "ingest: bare FastAPI max req/s (1 worker)", ""),
    ("ingest.full_rps", "ingest: full path max req/s (1 worker)", ""),
    ("ingest.ratio", "ingest: full / bare (1 worker)", "≥ 0.5"),
    ("ingest.p50_ms_at_500rps", "ingest: full p50 ms @ 500 req/s", ""),
    ("ingest.p99_ms_at_500rps", "ingest: full p99 ms @ 500 req/s", "≤ 25"),
    ("ingest.bare_p99_ms_at_500rps", "ingest: bare p99 ms @ 500 req/s", ""),
    ("ingest.bare_rps_2w", "ingest: bare max req/s (2 workers)", ""),
    ("ingest.full_rps_2w", "ingest: full max req/s (2 workers)", ""),
    ("ingest.ratio_2w", "ingest: full / bare (2 workers)", ""),
    ("ingest.p99_ms_at_500rps_2w", "ingest: full p99 ms @ 500 req/s (2 workers)", ""),
    ("e2e.p50_ms", "e2e: accept → row visible p50 ms", ""),
    ("e2e.p99_ms", "e2e: accept → row visible p99 ms", ""),
    ("e2e.lost", "e2e: lost events", "0"),
    ("e2e.duplicated", "e2e: duplicated rows", "0"),
    ("e2e.data_errors", "e2e: statements Snowflake refused", "0"),
    ("loader.row_by_row_rps", "loader: row-by-row INSERT rows/s", ""),
    ("loader.merge_rps", "loader: batched MERGE rows/s (batch 500)", ""),
    ("loader.ratio", "loader: MERGE / row-by-row", "≥ 20"),
    ("operator.apply_p50_ms", "operator: CR apply → all 5 children p50 ms", ""),
    ("operator.apply_p95_ms", "operator: CR apply → all 5 children p95 ms", ""),
    ("operator.apply_floor_p50_ms", "operator: baseline kubectl apply of the same Deployment p50 ms", ""),
    ("operator.apply_overhead_ratio", "operator: apply p50 / baseline p50", ""),
    ("operator.converge_300_s", "operator: {crs} CRs in {ns} namespaces → all Ready s", ""),
    ("operator.converge_floor_s", "operator: baseline {crs} same Deployments via kubectl → all ready s", ""),
    ("operator.converge_ratio", "operator: converge / baseline", ""),
    ("operator.idle_resync_writes", "operator: writes during idle resync of all {idle} CRs", "0"),
    ("operator.idle_reads_per_reconcile", "operator: API reads per idle reconcile", ""),
    ("operator.rss_mib", "operator: RSS MiB @ {idle} CRs", "≤ 200"),
]


def _label(result: dict[str, Any], label: str) -> str:
    """Operator labels carry the counts of the run (quick mode converges fewer CRs)."""
    if "{" not in label:
        return label
    counts = {"crs": _get(result, "operator.converge_crs"), "ns": _get(result, "operator.converge_namespaces"),
              "idle": _get(result, "operator.idle_crs")}
    return label.format(**{k: "?" if v is None else v for k, v in counts.items()})


def markdown(result: dict[str, Any]) -> str:
    lines = ["| metric | value | goal |", "|---|---:|---:|"]
    reasons = result.get("not_measured", {})
    for key, label, goal in TABLE:
        value = _get(result, key)
        module = key.split(".")[0]
        if value is None:
            why = reasons.get(module) or (_get(result, f"{module}.null_reasons") or {}).get(key.split(".", 1)[1])
            shown = f"null ({why})" if why else "null"
        else:
            shown = f"{value:g}" if isinstance(value, float) else str(value)
        lines.append(f"| {_label(result, label)} | {shown} | {goal} |")
    m = result["machine"]
    lines.append("")
    lines.append(f"{result['run']['mode']} run {result['run']['finished']}, {result['run']['duration_s']} s; "
                 f"{m['cores']} cores ({m['cpu']}), {m['mem_gib']} GiB, Python {m['python']}, "
                 f"load average (1 min) at start {m['loadavg_1m_at_start']}, "
                 f"at end {result['run'].get('loadavg_1m_at_end', '?')}.")
    return "\n".join(lines)


def charts(result: dict[str, Any], outdir: Path, prefix: str = "") -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    saved: list[Path] = []
    configs = _get(result, "ingest.configs")
    if configs:
        fig, ax = plt.subplots(figsize=(8, 5))
        styles = {"bare_1w": ("tab:gray", "--"), "full_1w": ("tab:blue", "-"),
                  "bare_2w": ("tab:olive", "--"), "full_2w": ("tab:red", "-")}
        for name, entry in configs.items():
            pts = entry["fixed_rate"]
            rates = [p["offered_rps"] for p in pts]
            color, ls = styles.get(name, ("black", "-"))
            ax.plot(rates, [p["p50_ms"] for p in pts], marker="o", color=color, linestyle=ls, alpha=0.5,
                    label=f"{name} p50")
            ax.plot(rates, [p["p99_ms"] for p in pts], marker="^", color=color, linestyle=ls, label=f"{name} p99")
        ax.axhline(25, color="tab:green", linewidth=0.8, linestyle=":", label="goal p99 ≤ 25 ms")
        ax.set_xlabel("offered rate (req/s, open loop)")
        ax.set_ylabel("latency (ms)")
        ax.set_yscale("log")
        ax.set_title(f"ingest latency vs offered rate ({result['run']['mode']} run)")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        path = outdir / f"{prefix}ingest_latency.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        saved.append(path)
    curve = _get(result, "loader.batch_curve")
    if curve:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.plot([c["batch_size"] for c in curve], [c["rows_per_s"] for c in curve], marker="o", label="batched MERGE")
        rbr = _get(result, "loader.row_by_row_rps")
        if rbr:
            ax.axhline(rbr, color="tab:red", linestyle="--", label="row-by-row INSERT")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("batch size (events per MERGE)")
        ax.set_ylabel("rows/s into fakesnow")
        ax.set_title("loader throughput vs batch size")
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
        path = outdir / f"{prefix}loader_batch_curve.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        saved.append(path)
    for module in MODULES:
        extra = getattr(module, "charts", None)
        if extra is not None and result.get(module.NAME) and module.NAME not in result.get("not_measured", {}):
            saved.extend(extra(result[module.NAME], outdir, prefix))
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench")
    parser.add_argument("--quick", action="store_true", help="short spot check (< 3 minutes)")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only", action="append", default=[], help="run only this module (repeatable)")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the servers started below are stopped by the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cfg = TINY if args.tiny else QUICK if args.quick else FULL
    started = time.monotonic()
    started_at = datetime.now(UTC)
    RESULTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="gong-bench-"))
    ctx = Context(cfg, workdir)
    result: dict[str, Any] = {"machine": common.machine(), "not_measured": {}}
    try:
        ctx.redis = RedisServer(workdir / "redis")
        ctx.fakesnow = FakesnowServer(workdir / "fakesnow", create_database="SOPHIA_AI")
        ctx.pool = _pool(cfg, workdir)
        for module in MODULES:
            if args.only and module.NAME not in args.only:
                result[module.NAME] = dict.fromkeys(module.KEYS)
                result["not_measured"][module.NAME] = "skipped (--only)"
                continue
            reason = module.available(ctx)
            if reason is None:
                t = time.monotonic()
                print(f"== {module.NAME} ...", file=sys.stderr, flush=True)
                try:
                    result[module.NAME] = module.run(ctx)
                    result[module.NAME]["elapsed_s"] = round(time.monotonic() - t, 1)
                    continue
                except Exception as exc:
                    traceback.print_exc()
                    reason = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
            result[module.NAME] = dict.fromkeys(module.KEYS)
            result["not_measured"][module.NAME] = reason
    finally:
        for server in (ctx.redis, ctx.fakesnow):
            if server is not None:
                server.stop()
    result["run"] = {
        "mode": cfg.mode,
        "started": started_at.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - started, 1),
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        "warnings": ctx.warnings,
        "logs": str(workdir),
    }
    args.out.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    table = markdown(result)
    (args.out.parent / (args.out.stem + ".md")).write_text(table + "\n")
    prefix = "" if args.out.stem == "latest" else f"{args.out.stem}_"
    for path in charts(result, args.out.parent, prefix):
        print(f"chart: {path.relative_to(common.ROOT) if path.is_relative_to(common.ROOT) else path}",
              file=sys.stderr)
    print(table)
    print(f"server logs: {workdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
