"""The Redis connection Tollway features share (`[redis] url`): one redis-py asyncio client per
process, opened only when some feature needs it, closed at shutdown.

Every key a feature writes starts with `[redis] prefix`, so several Tollways (or tests) can share
one server; nothing here ever flushes a database.
"""

from __future__ import annotations

from typing import Any

from tollway.config import RedisSettings


def describe(e: BaseException) -> str:
    """An error message without the URL (it may hold a password)."""
    return f"{type(e).__name__}: {str(e).split(' url=')[0][:200]}"


def open_redis(settings: RedisSettings) -> Any:
    import redis.asyncio as aioredis

    if settings.url is None:
        raise RuntimeError("[redis] url is not set")
    t = settings.timeout_ms / 1000.0
    return aioredis.Redis.from_url(settings.url.get_secret_value(), socket_timeout=t, socket_connect_timeout=t,
                                   max_connections=256, decode_responses=False)
