"""Cached answers in Redis (`[cache] backend = "redis"`): shared by every Tollway instance.

Answers are plain strings with a TTL (`SET ... PX`); semantic vector lists are Redis lists of
fixed-size records (`RPUSH` + `LTRIM` to the newest `max_records` + `PEXPIRE`, one pipeline).
A lookup is one round trip: `GET`, or `GET` + `LRANGE` pipelined for the semantic cache. Memory
is bounded by the TTLs and by Redis's own `maxmemory` policy (`allkeys-lru` suits a cache).

Redis errors never fail a request: a lookup that fails is a miss, a write that fails is
skipped, and both are logged (at most once every 10 seconds, without the URL).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.exceptions import RedisError

from tollway.redis_client import describe

log = logging.getLogger("tollway")


class RedisStore:
    name = "redis"

    def __init__(self, client: Any, prefix: str) -> None:
        self._r = client
        self._prefix = (prefix + "cache:").encode()
        self._logged = 0.0

    def _warn(self, what: str, e: BaseException) -> None:
        now = time.monotonic()
        if now - self._logged > 10:
            self._logged = now
            log.warning("cache: Redis %s failed (%s); the request goes on without the cache", what, describe(e))

    def _k(self, key: bytes) -> bytes:
        return self._prefix + key.hex().encode()

    async def get(self, key: bytes) -> bytes | None:
        try:
            return await self._r.get(self._k(key))
        except (RedisError, OSError) as e:
            self._warn("lookup", e)
            return None

    async def get2(self, key: bytes, list_key: bytes) -> tuple[bytes | None, bytes | None]:
        try:
            async with self._r.pipeline(transaction=False) as p:
                p.get(self._k(key))
                p.lrange(self._k(list_key), 0, -1)
                value, records = await p.execute()
        except (RedisError, OSError) as e:
            self._warn("lookup", e)
            return None, None
        return value, (b"".join(records) if records else None)

    async def put(self, key: bytes, value: bytes, ttl_s: float) -> None:
        try:
            await self._r.set(self._k(key), value, px=max(1, int(ttl_s * 1000)))
        except (RedisError, OSError) as e:
            self._warn("write", e)

    async def append(self, list_key: bytes, record: bytes, max_records: int, ttl_s: float) -> None:
        k = self._k(list_key)
        try:
            async with self._r.pipeline(transaction=True) as p:
                p.rpush(k, record)
                p.ltrim(k, -max_records, -1)
                p.pexpire(k, max(1, int(ttl_s * 1000)))
                await p.execute()
        except (RedisError, OSError) as e:
            self._warn("write", e)

    async def close(self) -> None:
        return None  # the client belongs to AppState
