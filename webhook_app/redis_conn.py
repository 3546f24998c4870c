"""Redis clients with timeouts, so an unreachable Redis turns into an error instead of a hang."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from webhook_app.settings import AppSettings

log = logging.getLogger(__name__)


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


async def warn_if_not_durable(client: aioredis.Redis) -> None:
    """Log (once, at start) when Redis is set up so that a 202 could still be lost or evicted.

    Managed Redis often forbids CONFIG; then nothing can be checked and nothing is logged.
    """
    try:
        config = await client.config_get("*")
    except (RedisError, OSError):
        return
    values = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
              for k, v in config.items()}
    if values.get("appendonly") != "yes":
        log.warning("redis appendonly is off: accepted webhooks since the last snapshot can be lost on a crash")
    elif values.get("appendfsync") != "always":
        log.warning("redis appendfsync is not 'always': about a second of accepted webhooks can be lost on a crash",
                    extra={"appendfsync": values.get("appendfsync")})
    policy = values.get("maxmemory-policy")
    if policy and policy != "noeviction":
        log.warning("redis maxmemory-policy is not noeviction: queued webhooks can be evicted",
                    extra={"maxmemory_policy": policy})
