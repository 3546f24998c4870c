"""Redis clients with timeouts, so an unreachable Redis turns into an error instead of a hang."""

from __future__ import annotations

import redis.asyncio as aioredis

from webhook_app.settings import AppSettings


def make_client(settings: AppSettings, *, block_ms: int = 0) -> aioredis.Redis:
    # A blocking XREADGROUP must outlive its own BLOCK time before the socket timeout fires.
    timeout = 5.0 + block_ms / 1000
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    client: aioredis.Redis = aioredis.Redis.from_url(
        settings.redis_url,
        password=password,
        socket_timeout=timeout,
        socket_connect_timeout=2.0,
        decode_responses=False,
    )
    return client
