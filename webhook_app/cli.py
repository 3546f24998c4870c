"""Console entry point `gong-webhook-app`: serve the ingest API (and, by default, the loader)."""

from __future__ import annotations

import argparse
import sys

from webhook_app.settings import ConfigError, load_settings, require_loader_settings


def create_app_from_env() -> object:
    """uvicorn factory for WORKERS > 1: each worker process builds its app from the environment."""
    from webhook_app.ingest.api import create_app
    from webhook_app.logging_setup import setup_logging

    settings = load_settings()
    setup_logging(settings.log_level, settings.secret_values())
    return create_app(settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gong-webhook-app",
        description="Serves POST /webhooks/gong; also runs the Snowflake loader unless RUN_LOADER_IN_PROCESS=false.",
    )
    parser.add_argument("--check-config", action="store_true", help="validate the environment and exit")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        if settings.run_loader_in_process:
            require_loader_settings(settings)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if args.check_config:
        print("configuration ok", file=sys.stderr)
        return 0

    import uvicorn

    from webhook_app.ingest import http_limits
    from webhook_app.logging_setup import setup_logging

    setup_logging(settings.log_level, settings.secret_values())
    common: dict[str, object] = {
        "host": settings.host,
        "port": settings.port,
        "access_log": False,  # raw paths can hold the url key; the app logs requests itself
        "log_config": None,
        "timeout_graceful_shutdown": 30,
        "server_header": False,
        "http": http_limits.PROTOCOL,  # httptools with a cap on the request head
    }
    if settings.workers > 1:
        uvicorn.run("webhook_app.cli:create_app_from_env", factory=True, workers=settings.workers, **common)  # type: ignore[arg-type]
    else:
        from webhook_app.ingest.api import create_app

        uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
