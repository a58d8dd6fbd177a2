"""The stores: the in-memory LRU (bytes, not entries; TTL) and Redis shared by instances."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.cache.clients import ask
from tests.cache.conftest import cache_config, unique, upstream_count
from tests.fakes.provider import FakeProvider
from tests.harness import TEAM_KEY, Tollway, free_port
from tollway.cache.store import ENTRY_OVERHEAD, MemoryStore


def test_memory_store_is_bounded_by_bytes_and_evicts_the_least_recently_used() -> None:
    async def run() -> None:
        s = MemoryStore(max_bytes=3 * (16 + 1000 + ENTRY_OVERHEAD))
        keys = [bytes([i]) * 16 for i in range(4)]
        for k in keys[:3]:
            await s.put(k, b"x" * 1000, 60)
        assert await s.get(keys[0]) is not None  # 0 is now the most recently used
        await s.put(keys[3], b"x" * 1000, 60)
        assert await s.get(keys[1]) is None  # the least recently used went
        assert all([await s.get(k) is not None for k in (keys[0], keys[2], keys[3])])
        assert s.bytes <= s.max_bytes and len(s) == 3
        await s.put(b"b" * 16, b"y" * 2000, 60)  # one big entry pushes out two small ones
        assert len(s) == 2 and s.bytes <= s.max_bytes
        await s.put(b"h" * 16, b"z" * 10_000, 60)  # larger than the whole store: not stored
        assert await s.get(b"h" * 16) is None and s.bytes <= s.max_bytes

    asyncio.run(run())


def test_memory_store_ttl_and_vector_lists() -> None:
    async def run() -> None:
        s = MemoryStore(max_bytes=1 << 20)
        await s.put(b"k" * 16, b"v", 0.05)
        assert await s.get(b"k" * 16) == b"v"
        await asyncio.sleep(0.08)
        assert await s.get(b"k" * 16) is None and s.bytes == 0
        for i in range(5):
            await s.append(b"l" * 16, bytes([i]) * 4, max_records=3, ttl_s=60)
        assert (await s.get2(b"none", b"l" * 16))[1] == b"\x02" * 4 + b"\x03" * 4 + b"\x04" * 4

    asyncio.run(run())


def test_max_bytes_evicts_answers_of_a_running_tollway(fake: FakeProvider, tmp_path_factory) -> None:
    tw = Tollway(tmp_path_factory.mktemp("cache-small"), cache_config(fake.url, {"max_bytes": 1024}))
    try:
        prompts = [unique() for _ in range(12)]
        for p in prompts:
            assert ask(tw, "openai_chat", p).cache == "miss"
        assert ask(tw, "openai_chat", prompts[-1]).cache == "hit"  # the newest is kept
        assert ask(tw, "openai_chat", prompts[0]).cache == "miss"  # the oldest was evicted
        assert upstream_count(fake, prompts[0]) == 2
    finally:
        tw.stop()


def test_ttl_expires_answers(fake: FakeProvider, tmp_path_factory) -> None:
    tw = Tollway(tmp_path_factory.mktemp("cache-ttl"), cache_config(fake.url, {"ttl_secs": 1.0}))
    try:
        p = unique()
        assert [ask(tw, "anthropic", p).cache for _ in range(2)] == ["miss", "hit"]
        time.sleep(1.2)
        assert ask(tw, "anthropic", p).cache == "miss"
    finally:
        tw.stop()


# -- Redis ------------------------------------------------------------------------------------------

REDIS_HOST, REDIS_PORT = "127.0.0.1", int(os.environ.get("TOLLWAY_TEST_REDIS_PORT", "6379"))


def _redis_up() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards (never a FLUSH)."""
    if not _redis_up():
        if os.environ.get("TOLLWAY_REQUIRE_SERVICES") == "1":
            pytest.fail(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT} (TOLLWAY_REQUIRE_SERVICES=1)")
        pytest.skip(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT}")
    import redis

    prefix = f"tollway-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    r = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    keys = list(r.scan_iter(match=prefix + "*", count=500))
    if keys:
        r.delete(*keys)
    r.close()


def _redis_config(fake_url: str, prefix: str, **cache: object) -> dict:
    cfg = cache_config(fake_url, {"backend": "redis", **cache})
    cfg["redis"] = {"url": f"redis://{REDIS_HOST}:{REDIS_PORT}/0", "prefix": prefix}
    return cfg


def test_two_instances_share_the_redis_cache(fake: FakeProvider, tmp_path_factory, redis_prefix: str) -> None:
    a = Tollway(tmp_path_factory.mktemp("cache-redis-a"), _redis_config(fake.url, redis_prefix))
    b = Tollway(tmp_path_factory.mktemp("cache-redis-b"), _redis_config(fake.url, redis_prefix))
    try:
        for fmt in ("openai_chat", "responses", "anthropic", "gemini"):
            p = unique()
            assert ask(a, fmt, p).cache == "miss"
            hit = ask(b, fmt, p, stream=True)
            assert hit.cache == "hit" and hit.text == "Hello from the fake provider!"
            assert ask(b, fmt, p, key=TEAM_KEY).cache == "miss"  # another key: not shared
            assert upstream_count(fake, p) == 2
        import redis

        r = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
        stored = list(r.scan_iter(match=redis_prefix + "cache:*"))
        assert len(stored) == 8 and all(0 < r.pttl(k) <= 3_600_000 for k in stored)
        r.close()
    finally:
        a.stop()
        b.stop()


def test_redis_ttl(fake: FakeProvider, tmp_path_factory, redis_prefix: str) -> None:
    tw = Tollway(tmp_path_factory.mktemp("cache-redis-ttl"), _redis_config(fake.url, redis_prefix, ttl_secs=1.0))
    try:
        p = unique()
        assert [ask(tw, "openai_chat", p).cache for _ in range(2)] == ["miss", "hit"]
        time.sleep(1.2)
        assert ask(tw, "openai_chat", p).cache == "miss"
    finally:
        tw.stop()


def test_an_unreachable_redis_never_fails_a_request(fake: FakeProvider, tmp_path_factory) -> None:
    cfg = cache_config(fake.url, {"backend": "redis"})
    cfg["redis"] = {"url": f"redis://127.0.0.1:{free_port()}/0", "timeout_ms": 200}
    tw = Tollway(tmp_path_factory.mktemp("cache-redis-down"), cfg)
    try:
        p = unique()
        for stream in (False, True):
            got = ask(tw, "openai_chat", p, stream=stream)
            assert got.text == "Hello from the fake provider!" and got.cache == "miss"
        assert "cache: Redis" in tw.log()
    finally:
        tw.stop()


def test_two_instances_share_semantic_matches_through_redis(fake: FakeProvider, tmp_path_factory,
                                                            redis_prefix: str) -> None:
    a = Tollway(tmp_path_factory.mktemp("sem-redis-a"), _redis_config(fake.url, redis_prefix, mode="semantic"))
    b = Tollway(tmp_path_factory.mktemp("sem-redis-b"), _redis_config(fake.url, redis_prefix, mode="semantic"))
    try:
        assert ask(a, "openai_chat", "Should I take an umbrella today?").cache == "miss"
        hit = ask(b, "openai_chat", "Should I take an umbrella today")
        assert hit.cache == "hit" and float(hit.headers["x-tollway-cache-similarity"]) >= 0.95
        assert ask(b, "openai_chat", "What is the tallest mountain in Africa?").cache == "miss"
    finally:
        a.stop()
        b.stop()


def test_many_clients_on_two_instances_share_one_redis_cache(fake: FakeProvider, tmp_path_factory,
                                                             redis_prefix: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    a = Tollway(tmp_path_factory.mktemp("cache-hammer-a"), _redis_config(fake.url, redis_prefix))
    b = Tollway(tmp_path_factory.mktemp("cache-hammer-b"), _redis_config(fake.url, redis_prefix))
    try:
        prompts = [unique() for _ in range(6)]
        jobs = [(tw, fmt, p, stream) for tw in (a, b) for fmt in ("openai_chat", "anthropic") for p in prompts
                for stream in (False, True)]

        def run(job: tuple) -> tuple[str | None, str]:
            tw, fmt, p, stream = job
            got = ask(tw, fmt, p, stream=stream)
            return got.cache, got.text

        with ThreadPoolExecutor(max_workers=16) as pool:
            first = list(pool.map(run, jobs))
            second = list(pool.map(run, jobs))
        assert all(text == "Hello from the fake provider!" for _, text in first + second)
        assert {status for status, _ in first} <= {"hit", "miss"}
        assert all(status == "hit" for status, _ in second)  # every answer of the first wave was stored
        for p in prompts:  # at most one upstream call per concurrent first ask, none after
            assert 1 <= upstream_count(fake, p) <= 8
    finally:
        a.stop()
        b.stop()
