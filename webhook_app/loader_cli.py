"""Console entry point `gong-webhook-loader`: the loader alone, DLQ replay, schema migration."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from webhook_app.settings import AppSettings, ConfigError, load_settings, require_loader_settings

log = logging.getLogger("webhook_app.loader_cli")


async def _run(settings: AppSettings) -> None:
    from prometheus_client import start_http_server

    from webhook_app.metrics import Metrics
    from webhook_app.worker import run_loader

    metrics = Metrics()
    if settings.loader_metrics_port:
        start_http_server(settings.loader_metrics_port, registry=metrics.registry)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_loader(settings, metrics, stop)


async def _replay(settings: AppSettings, limit: int | None) -> int:
    from webhook_app.loader import dlq
    from webhook_app.redis_conn import make_client

    client = make_client(settings)
    try:
        return await dlq.replay(client, settings.redis_stream, limit)
    finally:
        await client.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gong-webhook-loader", description="Loads Gong webhooks into Snowflake.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the loader (default)")
    replay = sub.add_parser("replay-dlq", help="move dead-lettered events back to the stream")
    replay.add_argument("--limit", type=int, default=None, help="move at most this many (oldest first)")
    sub.add_parser(
        "migrate",
        help="create the Snowflake schema and tables if missing (run once per schema with the admin role; "
             "the loader itself runs no DDL)",
    )
    args = parser.parse_args(argv)
    command = args.command or "run"

    try:
        settings = load_settings(for_ingest=False)
        if command != "replay-dlq":
            require_loader_settings(settings)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2

    from webhook_app.logging_setup import setup_logging

    setup_logging(settings.log_level, settings.secret_values())
    if command == "replay-dlq":
        moved = asyncio.run(_replay(settings, args.limit))
        log.info("dead-letter replay done", extra={"moved": moved})
        print(moved)
        return 0
    if command == "migrate":
        from webhook_app.snowflake_sink import SinkError, SnowflakeSink

        sink = SnowflakeSink(settings)
        try:
            created = sink.migrate()
        except SinkError as exc:
            log.error("migration failed", extra={"error": str(exc)})
            return 1
        finally:
            sink.close()
        log.info("migration done", extra={"created_objects": created})
        return 0
    asyncio.run(_run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
