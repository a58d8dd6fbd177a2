"""Real Redis and Postgres for tests: isolated per test (a random Redis key prefix, removed
afterwards with SCAN + DEL of that prefix only; a fresh Postgres database, dropped). They skip
when the server is absent, unless TOLLWAY_REQUIRE_SERVICES=1 (CI), where they fail instead."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
import redis

REDIS_URL = os.environ.get("TOLLWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_DSN = os.environ.get("TOLLWAY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _unavailable(what: str, e: BaseException) -> None:
    if os.environ.get("TOLLWAY_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} is required (TOLLWAY_REQUIRE_SERVICES=1): {e}", pytrace=False)
    pytest.skip(f"{what} is not reachable: {e}")


def drop_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        batch = []
        for key in client.scan_iter(match=prefix + "*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                client.delete(*batch)
                batch = []
        if batch:
            client.delete(*batch)
    finally:
        client.close()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the shared Redis."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as e:
        _unavailable(f"Redis at {REDIS_URL}", e)
    prefix = f"tw-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    drop_prefix(REDIS_URL, prefix)


async def _pg(sql: str) -> None:
    conn = await asyncpg.connect(PG_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def pg_store_url() -> Iterator[str]:
    """A fresh Postgres database for this test (SQLAlchemy URL)."""
    name = f"tollway_keys_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as e:
        _unavailable(f"Postgres at {PG_DSN}", e)
    base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    yield f"{base}/{name}"
    asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
