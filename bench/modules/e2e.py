"""e2e: sustained fixed-rate load through the app and its in-process loader into the local
Snowflake server (fakesnow + the real connector), counted from real rows.

Latency = first time a poller sees the row in Snowflake minus the time the 202 reached the
client (both wall clock on this machine). The poller queries every ``POLL_S``, so each value is
late by up to one poll interval plus the query time. Lost = accepted (202) events without a row
after the drain; duplicated = COUNT(*) - COUNT(DISTINCT EVENT_ID) of the table, which (like
Snowflake's) has no enforced key, so a duplicate the loader sent is a row here, not a refused
statement; data_errors = the loader's refused statements (gong_webhook_snowflake_errors_total
{kind="data"}), which must be 0 as well. The schema is created first by the admin's step
(``gong-webhook-loader migrate``, here ``SnowflakeSink.migrate``): the loader runs no DDL.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import httpx

from bench.common import AppServer, app_env, percentile, pinned, read_pool
from webhook_app.settings import load_settings
from webhook_app.snowflake_sink import SnowflakeSink

NAME = "e2e"
KEYS = ["p50_ms", "p99_ms", "lost", "duplicated", "data_errors"]
POLL_S = 0.1
DRAIN_TIMEOUT_S = 60


def available(ctx: Any) -> str | None:
    return None


class Poller(threading.Thread):
    def __init__(self, ctx: Any, table: str) -> None:
        super().__init__(daemon=True)
        self.conn = ctx.fakesnow.connect()
        self.table = table
        self.seen: dict[str, float] = {}
        self.stop_event = threading.Event()
        self.queries = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._poll()
        except BaseException as exc:
            self.error = exc
            raise

    def _poll(self) -> None:
        cur = self.conn.cursor()
        low = "0"
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                cur.execute(f"SELECT EVENT_ID, STREAM_ENTRY_ID FROM {self.table} WHERE STREAM_ENTRY_ID >= %s", [low])
                rows = cur.fetchall()
            except Exception as exc:
                if "does not exist" not in str(exc):
                    raise
                rows = []
            now = time.time()
            self.queries += 1
            newest = 0
            for event_id, entry_id in rows:
                self.seen.setdefault(event_id, now)
                newest = max(newest, int(str(entry_id).split("-")[0]))
            if newest:
                low = str(max(int(low.split("-")[0]), newest - 10_000))
            self.stop_event.wait(max(0.0, POLL_S - (time.monotonic() - started)))

    def final_counts(self) -> dict[str, int]:
        cur = self.conn.cursor()
        cur.execute(f"SELECT EVENT_ID, COUNT(*) FROM {self.table} GROUP BY EVENT_ID")
        return {row[0]: int(row[1]) for row in cur.fetchall()}

    def duplicated(self) -> int:
        cur = self.conn.cursor()
        cur.execute(f"SELECT COUNT(*) - COUNT(DISTINCT EVENT_ID) FROM {self.table}")
        return int(cur.fetchone()[0])


def _data_errors(url: str) -> float | None:
    try:
        text = httpx.get(url + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith('gong_webhook_snowflake_errors_total{kind="data"} '):
            return float(line.rsplit(" ", 1)[1])
    return None


def run(ctx: Any) -> dict[str, Any]:
    rate, duration = ctx.cfg.e2e_rate, ctx.cfg.e2e_duration
    count = int(rate * duration)
    suffix = uuid.uuid4().hex[:8]
    schema = f"BENCH_E2E_{suffix.upper()}"
    env = app_env(
        ctx.redis.url, ctx.pool.public_key_b64, f"bench:e2e:{suffix}", workers=1,
        RUN_LOADER_IN_PROCESS="true", SNOWFLAKE_ACCOUNT="bench", SNOWFLAKE_USER="bench",
        SNOWFLAKE_PASSWORD="bench-password", SNOWFLAKE_DATABASE="SOPHIA_AI", SNOWFLAKE_SCHEMA=schema,
        SNOWFLAKE_HOST="localhost", SNOWFLAKE_PORT=str(ctx.fakesnow.port), SNOWFLAKE_PROTOCOL="http",
    )
    table = f"SOPHIA_AI.{schema}.GONG_WEBHOOK_EVENTS"
    sink = SnowflakeSink(load_settings(env, for_ingest=False))
    try:
        sink.migrate()
    finally:
        sink.close()
    server = AppServer(env, ctx.workdir / "app-e2e.log", cpus="0").start()
    poller = Poller(ctx, table)
    try:
        poller.start()
        out = ctx.workdir / "openloop-e2e.json"
        subprocess.run(
            pinned([sys.executable, "-m", "bench.loadgen", "--port", str(server.port), "--pool", str(ctx.pool.path),
                    "--rate", str(rate), "--duration", str(duration), "--out", str(out)], "1"),
            check=True, cwd=ctx.root, timeout=duration + 120,
        )
        results = json.loads(out.read_text())["results"]
        ids = [f"sales/gong-prod/{json.loads(body)['callData']['metaData']['id']}"
               for _, body in read_pool(ctx.pool.path, 0, count)]
        accepted = {ids[i]: r[3] for i, r in enumerate(results) if r[2] == 202}
        refused = sum(1 for r in results if r[2] != 202)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline and not all(e in poller.seen for e in accepted):
            if poller.error is not None:
                raise RuntimeError(f"row poller failed: {poller.error!r}")
            time.sleep(0.2)
        drained_after = round(DRAIN_TIMEOUT_S - (deadline - time.monotonic()), 1)
        data_errors = _data_errors(server.url)
    finally:
        poller.stop_event.set()
        poller.join(10)
        server.stop()
    counts = poller.final_counts()
    duplicated = poller.duplicated()
    poller.conn.close()
    lat = [(poller.seen[e] - t) * 1000 for e, t in accepted.items() if e in poller.seen]
    accept_lat = [r[1] * 1000 for r in results]
    return {
        "offered_rps": rate,
        "duration_s": duration,
        "sent": len(results),
        "accepted": len(accepted),
        "not_accepted": refused,
        "rows": sum(counts.values()),
        "p50_ms": _r(percentile(lat, 50)),
        "p99_ms": _r(percentile(lat, 99)),
        "max_ms": _r(max(lat) if lat else None),
        "http_p99_ms": _r(percentile(accept_lat, 99)),
        "lost": sum(1 for e in accepted if counts.get(e, 0) == 0),
        "duplicated": duplicated,
        "data_errors": data_errors,
        "unexpected_rows": sum(1 for e in counts if e not in accepted),
        "drain_s_after_load": drained_after,
        "poll_interval_ms": int(POLL_S * 1000),
        "loader": "in-process (RUN_LOADER_IN_PROCESS=true, LOADER_BATCH_SIZE=500, LOADER_BLOCK_MS=1000 defaults)",
    }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 1)
