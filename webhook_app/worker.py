"""Wiring of the background work (loader, enricher, stream stats) shared by both console scripts."""

from __future__ import annotations

import asyncio
import logging

from webhook_app import stream_stats, streams
from webhook_app.enrich.enricher import Enricher
from webhook_app.enrich.gong_client import GongClient
from webhook_app.enrich.rate_limit import DailyBudget, RedisTokenBucket
from webhook_app.loader.loader import Loader
from webhook_app.metrics import Metrics
from webhook_app.redis_conn import make_client
from webhook_app.settings import AppSettings
from webhook_app.snowflake_sink import SnowflakeSink

log = logging.getLogger(__name__)


async def run_loader(settings: AppSettings, metrics: Metrics, stop: asyncio.Event, *, stats: bool = True) -> None:
    """Run until ``stop`` is set; the batch in flight is finished (or left pending) before return."""
    client = make_client(settings, block_ms=settings.loader_block_ms)
    sink = SnowflakeSink(settings)
    enrich_sink: SnowflakeSink | None = None
    gong: GongClient | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        loader = Loader(settings, client, sink, metrics)
        tasks.append(asyncio.create_task(loader.run(stop), name="loader"))
        if settings.gong_enrichment_enabled:
            assert settings.gong_api_key is not None and settings.gong_api_secret is not None
            limiter = RedisTokenBucket(
                client, streams.rate_limit_key(settings.redis_stream),
                settings.gong_api_rate_limit, settings.gong_api_burst_limit,
                DailyBudget(
                    streams.daily_budget_key(settings.redis_stream), settings.gong_api_daily_limit,
                    settings.gong_api_day_start_seconds,
                ),
            )
            gong = GongClient(
                settings.gong_api_base_url, settings.gong_api_key.get_secret_value(),
                settings.gong_api_secret.get_secret_value(), limiter, metrics, stop=stop,
            )
            # Its own connection: the connector is not safe for concurrent use from two threads.
            enrich_sink = SnowflakeSink(settings)
            enricher = Enricher(settings, client, gong, enrich_sink, metrics, consumer=loader.consumer)
            tasks.append(asyncio.create_task(_after_groups(loader, enricher, stop), name="enricher"))
        if stats:
            tasks.append(asyncio.create_task(stream_stats.run(client, settings.redis_stream, metrics, stop)))
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if gong is not None:
            await gong.close()
        await asyncio.to_thread(sink.close)
        if enrich_sink is not None:
            await asyncio.to_thread(enrich_sink.close)
        await client.aclose()


async def _after_groups(loader: Loader, enricher: Enricher, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await loader.ensure_group()
            break
        except Exception as exc:  # Redis not there yet; the loader logs the same condition
            log.debug("enricher waits for redis", extra={"error": type(exc).__name__})
            await asyncio.sleep(1.0)
    await enricher.run(stop)
