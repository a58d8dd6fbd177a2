"""The health board: breakers per deployment and per credential, error rates, cool-downs,
EWMAs; and two boards (two instances) sharing breaker state through Redis."""

from __future__ import annotations

import asyncio
import time

from tests.routing.helpers import fail, make_router, succeed
from tests.services import REDIS_URL
from tollway.routing.health import MemoryHealth
from tollway.routing.health_sync import RedisHealthSync
from tollway.routing.outcome import Outcome
from tollway.routing.settings import BreakerSettings


def test_consecutive_failures_open_a_breaker_and_a_success_resets_the_count() -> None:
    r = make_router(routing={"breaker": {"failures": 3}})
    fail(r, "openai:gpt-4o", times=2)
    succeed(r, "openai:gpt-4o")
    fail(r, "openai:gpt-4o", times=2)
    assert r.health.available("openai:gpt-4o", time.time())
    fail(r, "openai:gpt-4o")
    assert not r.health.available("openai:gpt-4o", time.time())
    assert r.health.view("openai:gpt-4o", time.time())["state"] == "open"


def test_an_error_rate_over_the_minimum_requests_opens_a_breaker() -> None:
    r = make_router(routing={"breaker": {"failures": 100, "error_rate": 0.5, "min_requests": 10}})
    for _ in range(5):
        succeed(r, "openai:gpt-4o")
        fail(r, "openai:gpt-4o")
    assert not r.health.available("openai:gpt-4o", time.time())


def test_client_errors_do_not_count_and_401_counts_against_the_credential_only() -> None:
    r = make_router(routing={"breaker": {"failures": 2}})
    fail(r, "openai:gpt-4o", times=5, status=400)
    assert r.health.available("openai:gpt-4o", time.time())
    fail(r, "openai:gpt-4o", times=2, status=401, credential="primary")
    assert r.health.available("openai:gpt-4o", time.time())
    assert r.health.cooling("openai", "primary") and not r.health.cooling("openai", "backup")


def test_a_failed_probe_opens_the_breaker_again() -> None:
    r = make_router(routing={"breaker": {"failures": 1, "cooldown_secs": 0.1}})
    fail(r, "openai:gpt-4o")
    time.sleep(0.15)
    assert r.health.available("openai:gpt-4o", time.time())
    fail(r, "openai:gpt-4o")  # the probe
    assert not r.health.available("openai:gpt-4o", time.time())


def test_cool_honours_the_given_seconds() -> None:
    board = MemoryHealth(BreakerSettings())
    board.cool("openai", "primary", 0.1)
    assert board.cooling("openai", "primary")
    time.sleep(0.15)
    assert not board.cooling("openai", "primary")


def test_ewmas_and_in_flight() -> None:
    r = make_router(routing={"ewma_alpha": 0.5})
    succeed(r, "openai:gpt-4o", latency=1.0)
    succeed(r, "openai:gpt-4o", latency=3.0)
    v = r.health.view("openai:gpt-4o", time.time())
    assert v["latency_ewma_ms"] == 2000.0 and v["ttft_ewma_ms"] == 1000.0 and v["in_flight"] == 0


def test_a_finished_call_without_start_never_raises() -> None:
    r = make_router()
    dep = r.table.every_deployment()[0]
    r.health.finished(dep, None, Outcome(ok=True, status=200, error_type=None, latency_s=0.1))
    assert r.health.inflight(dep.name) == 0


def test_two_instances_share_breakers_and_cool_downs_through_redis(redis_prefix: str) -> None:
    import redis.asyncio as aioredis

    async def run() -> None:
        a, b = make_router(routing={"breaker": {"failures": 2}}), make_router(routing={"breaker": {"failures": 2}})
        ca, cb = aioredis.Redis.from_url(REDIS_URL), aioredis.Redis.from_url(REDIS_URL)
        sa = RedisHealthSync(a.health, ca, redis_prefix, interval=0.05)
        sb = RedisHealthSync(b.health, cb, redis_prefix, interval=0.05)
        sa.start()
        sb.start()
        try:
            fail(a, "openai:gpt-4o", times=2)
            a.health.cool("anthropic", "primary", 30)
            await _until(lambda: not b.health.available("openai:gpt-4o", time.time()))
            assert b.health.view("openai:gpt-4o", time.time())["state"] == "open"
            assert b.health.cooling("anthropic", "primary")
            # b's probe, after the cool-down, closes it for a as well
            dep = next(d for d in b.table.every_deployment() if d.name == "openai:gpt-4o")
            b.health.breakers["openai:gpt-4o"].until = time.time() - 1
            b.health.started(dep, None)
            b.health.finished(dep, None, Outcome(ok=True, status=200, error_type=None, latency_s=0.1))
            await _until(lambda: a.health.available("openai:gpt-4o", time.time()))
            assert a.health.view("openai:gpt-4o", time.time())["state"] == "closed"
        finally:
            await sa.stop()
            await sb.stop()
            await ca.aclose()
            await cb.aclose()

    asyncio.run(run())


async def _until(cond, within: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not cond():
        assert time.monotonic() < deadline, "the other instance never saw the change"
        await asyncio.sleep(0.02)


def test_two_instances_share_session_affinity_through_redis(redis_prefix: str) -> None:
    import redis.asyncio as aioredis

    async def run() -> None:
        a, b = make_router(), make_router()
        ca, cb = aioredis.Redis.from_url(REDIS_URL), aioredis.Redis.from_url(REDIS_URL)
        sa = RedisHealthSync(a.health, ca, redis_prefix, interval=0.05, affinity=a.affinity)
        sb = RedisHealthSync(b.health, cb, redis_prefix, interval=0.05, affinity=b.affinity)
        sa.start()
        sb.start()
        try:
            a.affinity.put("smart", "s:abc", "anthropic:claude-haiku-4-5")
            await asyncio.sleep(0.3)
            assert b.affinity.get("smart", "s:abc") is None  # unknown here: looked up in the background
            await _until(lambda: b.affinity.get("smart", "s:abc") == "anthropic:claude-haiku-4-5")
        finally:
            await sa.stop()
            await sb.stop()
            await ca.aclose()
            await cb.aclose()

    asyncio.run(run())
