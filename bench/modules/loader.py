"""loader: rows/s of the loader's batched MERGE (``SnowflakeSink.merge_events``, the code the loader
runs) against one INSERT statement per event, same events, same fakesnow server, same connector
settings. The MERGE is measured at several batch sizes (the curve); the ratio uses the loader's
default batch size (LOADER_BATCH_SIZE=500)."""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from bench.common import bench_payload
from webhook_app.settings import load_settings
from webhook_app.snowflake_sink import EVENTS_TABLE, EventRow, SnowflakeSink

NAME = "loader"
KEYS = ["ratio"]
DEFAULT_BATCH = 500

_INSERT = """INSERT INTO {fq}.{table}
  (EVENT_ID, CALL_ID, EVENT_SCOPE, IS_TEST, TITLE, STARTED, DURATION_SECONDS, PRIMARY_USER_ID,
   STREAM_ENTRY_ID, RECEIVED_AT, LOADED_AT, PAYLOAD)
SELECT column1, column2, column3, column4, column5, column6::TIMESTAMP_TZ, column7, column8, column9,
       column10::TIMESTAMP_TZ, CURRENT_TIMESTAMP(), PARSE_JSON(column11)
FROM VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""


def available(ctx: Any) -> str | None:
    return None


def _rows(n: int, prefix: str) -> list[EventRow]:
    rng = random.Random(7)
    now = datetime.now(UTC).isoformat()
    rows = []
    for i in range(n):
        call_id = f"{prefix}{i:08d}"
        doc = bench_payload(call_id, rng)
        meta = doc["callData"]["metaData"]
        rows.append(EventRow(
            event_id=f"sales/gong-prod/{call_id}", call_id=call_id, event_scope="sales/gong-prod", is_test=False,
            title=meta["title"], started=meta["started"], duration_seconds=meta["duration"],
            primary_user_id=meta["primaryUserId"], stream_entry_id=f"{1_700_000_000_000 + i}-0", received_at=now,
            payload_json=orjson.dumps(doc).decode(),
        ))
    return rows


def _sink(ctx: Any, schema: str) -> SnowflakeSink:
    settings = load_settings({
        "SNOWFLAKE_ACCOUNT": "bench", "SNOWFLAKE_USER": "bench", "SNOWFLAKE_PASSWORD": "bench-password",
        "SNOWFLAKE_DATABASE": "SOPHIA_AI", "SNOWFLAKE_SCHEMA": schema, "SNOWFLAKE_HOST": "localhost",
        "SNOWFLAKE_PORT": str(ctx.fakesnow.port), "SNOWFLAKE_PROTOCOL": "http",
    }, for_ingest=False)
    sink = SnowflakeSink(settings)
    sink.migrate()
    return sink


def _count(sink: SnowflakeSink, schema: str) -> int:
    return int(sink._run(lambda cur: cur.execute(
        f"SELECT COUNT(*) FROM SOPHIA_AI.{schema}.{EVENTS_TABLE}").fetchone()[0]))


def _row_by_row(ctx: Any, rows: list[EventRow], budget_s: float) -> dict[str, Any]:
    schema = f"BENCH_LR_{uuid.uuid4().hex[:8].upper()}"
    sink = _sink(ctx, schema)
    sql = _INSERT.format(fq=f"SOPHIA_AI.{schema}", table=EVENTS_TABLE)
    try:
        done = 0
        started = time.perf_counter()
        for r in rows:
            params = [r.event_id, r.call_id, r.event_scope, r.is_test, r.title, r.started, r.duration_seconds,
                      r.primary_user_id, r.stream_entry_id, r.received_at, r.payload_json]
            sink._run(lambda cur, p=params: cur.execute(sql, p))
            done += 1
            if time.perf_counter() - started > budget_s:
                break
        elapsed = time.perf_counter() - started
        landed = _count(sink, schema)
    finally:
        sink.close()
    return {"rows": done, "seconds": round(elapsed, 3), "rows_per_s": round(done / elapsed, 1), "rows_landed": landed}


def _merge(ctx: Any, rows: list[EventRow], batch: int, budget_s: float) -> dict[str, Any]:
    schema = f"BENCH_LM_{uuid.uuid4().hex[:8].upper()}"
    sink = _sink(ctx, schema)
    try:
        done = 0
        started = time.perf_counter()
        for i in range(0, len(rows), batch):
            chunk = rows[i:i + batch]
            sink.merge_events(chunk)
            done += len(chunk)
            if time.perf_counter() - started > budget_s:
                break
        elapsed = time.perf_counter() - started
        landed = _count(sink, schema)
    finally:
        sink.close()
    return {"batch_size": batch, "rows": done, "seconds": round(elapsed, 3), "rows_per_s": round(done / elapsed, 1),
            "rows_landed": landed}


def run(ctx: Any) -> dict[str, Any]:
    cfg = ctx.cfg
    rows = _rows(max(cfg.loader_batches) * cfg.loader_batches_per_point, f"{random.randrange(10**6, 10**7)}")
    single = _row_by_row(ctx, rows[: cfg.loader_row_by_row_max], cfg.loader_budget_s)
    curve = [
        _merge(ctx, rows[: max(b * cfg.loader_batches_per_point, cfg.loader_row_by_row_max)], b, cfg.loader_budget_s)
        for b in cfg.loader_batches
    ]
    default = next((c for c in curve if c["batch_size"] == DEFAULT_BATCH), curve[-1])
    for point in [single, *curve]:
        if point["rows_landed"] != point["rows"]:
            ctx.warn(f"loader: {point['rows']} rows written but {point['rows_landed']} counted")
    return {
        "row_by_row_rps": single["rows_per_s"],
        "merge_rps": default["rows_per_s"],
        "merge_batch_size": default["batch_size"],
        "ratio": round(default["rows_per_s"] / single["rows_per_s"], 1) if single["rows_per_s"] else None,
        "row_by_row": single,
        "batch_curve": curve,
    }
