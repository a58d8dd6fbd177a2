"""The counter stores, memory and Redis (real, on a prefix of the test's own), against the
same rules: all-or-nothing acquire, budgets never over their limit under concurrency, leases
that expire, idempotent settlement, GCRA rates, FIFO-free slots."""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
import time
from collections.abc import AsyncIterator

import pytest
import redis

from tests.harness import free_port

from tests.services import REDIS_URL, redis_prefix  # noqa: F401  (fixture)
from tollway.counters.base import Admission, BudgetHold, CountersUnavailable, RateCharge, Settlement, SlotHold
from tollway.counters.memory import MemoryCounters
from tollway.counters.redis import RedisCounters


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[MemoryCounters | RedisCounters]:
    if request.param == "memory":
        yield MemoryCounters()
        return
    prefix = request.getfixturevalue("redis_prefix")
    s = RedisCounters(REDIS_URL, prefix, 2000)
    await s.start()
    assert s.healthy, s.last_error
    yield s
    await s.close()


def adm(trace: str, *, budget: tuple[str, int, int] | None = None, rate: RateCharge | None = None,
        slot: SlotHold | None = None, lease_ms: int = 60_000) -> Admission:
    a = Admission(trace, lease_ms)
    if budget is not None:
        key, limit, amount = budget
        a.budgets.append(BudgetHold(key, limit, amount, 3600, None))
    if rate is not None:
        a.rates.append(rate)
    a.slot = slot
    return a


async def test_concurrent_reservations_never_exceed_the_budget(store) -> None:
    limit, worst = 1_000_000, 70_000
    admissions = [adm(f"t{i}", budget=("b:x:total", limit, worst)) for i in range(60)]
    results = await asyncio.gather(*(store.acquire(a) for a in admissions))
    admitted = [a for a, r in zip(admissions, results, strict=True) if r is None]
    assert len(admitted) == limit // worst  # 14 fit, every other one is refused
    assert all(r.kind == "budget" for r in results if r is not None)
    # each costs a random part of its worst case; settle, then the freed room admits more
    spent = 0
    for a in admitted:
        cost = random.randint(0, worst)
        spent += cost
        store.settle(Settlement(a, cost, None))
    await store.flush()
    assert await store.budget_states(["b:x:total"]) == [(spent, 0)]
    more = [adm(f"u{i}", budget=("b:x:total", limit, worst)) for i in range(60)]
    again = await asyncio.gather(*(store.acquire(a) for a in more))
    assert sum(r is None for r in again) == (limit - spent) // worst


async def test_refused_only_when_spent_plus_reserved_plus_worst_exceeds(store) -> None:
    a = adm("a", budget=("b:y:total", 100, 60))
    assert await store.acquire(a) is None
    assert (await store.acquire(adm("b", budget=("b:y:total", 100, 41)))).kind == "budget"  # 60 + 41 > 100
    c = adm("c", budget=("b:y:total", 100, 40))
    assert await store.acquire(c) is None  # 60 + 40 = 100: fits exactly
    store.settle(Settlement(a, 10, None))
    await store.flush()
    assert await store.budget_states(["b:y:total"]) == [(10, 40)]
    assert await store.acquire(adm("d", budget=("b:y:total", 100, 50))) is None  # 10 + 40 + 50


async def test_settlement_is_idempotent(store) -> None:
    a = adm("once", budget=("b:z:total", 1000, 100))
    assert await store.acquire(a) is None
    s = Settlement(a, 30, None)
    store.settle(s)
    store.settle(s)
    a.settled = False  # even a retried settlement (e.g. after a lost reply) applies once
    store.settle(s)
    await store.flush()
    assert await store.budget_states(["b:z:total"]) == [(30, 0)]


async def test_a_lease_ends_a_reservation_and_a_late_settlement_still_counts(store) -> None:
    a = adm("hung", budget=("b:l:total", 100, 90), lease_ms=300)
    assert await store.acquire(a) is None
    assert (await store.acquire(adm("x", budget=("b:l:total", 100, 20)))).kind == "budget"
    await asyncio.sleep(0.4)
    assert await store.budget_states(["b:l:total"]) == [(0, 0)]  # the lease ran out: no false 429s
    b = adm("after", budget=("b:l:total", 100, 20))
    assert await store.acquire(b) is None
    store.settle(Settlement(a, 25, None))  # the hung call finished after all: its spend is real
    await store.flush()
    assert await store.budget_states(["b:l:total"]) == [(25, 20)]


async def test_gcra_rate_allows_a_burst_then_refills(store) -> None:
    def charge() -> RateCharge:
        return RateCharge("r:key:k", 5, 1000, 1, False, "key k requests per second")

    results = [await store.acquire(adm(f"r{i}", rate=charge())) for i in range(7)]
    assert [r is None for r in results] == [True] * 5 + [False] * 2
    refused = results[5]
    assert refused.kind == "rate" and 0 < refused.retry_after_ms <= 200
    await asyncio.sleep(refused.retry_after_ms / 1000 + 0.02)
    a = adm("r-late", rate=charge())
    assert await store.acquire(a) is None
    assert a.rate_remaining == [0]


async def test_token_rate_is_corrected_at_settlement(store) -> None:
    def charge(cost: int) -> RateCharge:
        return RateCharge("t:key:k", 1000, 60_000, cost, True, "key k tokens per minute")

    a = adm("t1", rate=charge(900))
    assert await store.acquire(a) is None
    assert (await store.acquire(adm("t2", rate=charge(200)))).kind == "rate"
    store.settle(Settlement(a, 0, 100))  # it used 100 tokens, not 900
    await store.flush()
    b = adm("t3", rate=charge(800))
    assert await store.acquire(b) is None
    assert (await store.acquire(adm("t4", rate=charge(5000)))).kind == "too_large"


async def test_all_or_nothing(store) -> None:
    ok = adm("n1", budget=("b:n:total", 100, 100), rate=RateCharge("r:key:n", 10, 60_000, 1, False, "n"))
    assert await store.acquire(ok) is None
    # the budget refuses: the rate must not be charged
    for i in range(5):
        assert (await store.acquire(adm(f"n{i + 2}", budget=("b:n:total", 100, 1),
                                        rate=RateCharge("r:key:n", 10, 60_000, 1, False, "n")))).kind == "budget"
    probe = adm("probe", rate=RateCharge("r:key:n", 10, 60_000, 1, False, "n"))
    assert await store.acquire(probe) is None
    assert probe.rate_remaining == [8]


async def test_slots_hold_until_settled_or_lease_end(store) -> None:
    first = adm("s1", slot=SlotHold("c:k", 2))
    second = adm("s2", slot=SlotHold("c:k", 2), lease_ms=200)
    assert await store.acquire(first) is None and await store.acquire(second) is None
    assert (await store.acquire(adm("s3", slot=SlotHold("c:k", 2)))).kind == "slot"
    store.settle(Settlement(first, 0, None))
    await store.flush()
    assert await store.acquire(adm("s4", slot=SlotHold("c:k", 2))) is None
    assert (await store.acquire(adm("s5", slot=SlotHold("c:k", 2)))).kind == "slot"
    await asyncio.sleep(0.3)  # s2 never settles (a dead instance): its lease frees the slot
    assert await store.acquire(adm("s6", slot=SlotHold("c:k", 2))) is None


async def test_seed_sets_only_an_empty_window(store) -> None:
    await store.seed([("b:s:total", 500, 0)])
    await store.seed([("b:s:total", 900, 0)])
    assert await store.budget_states(["b:s:total"]) == [(500, 0)]


def _redis_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            redis.Redis(port=port, socket_timeout=0.5).ping()
            return proc
        except redis.RedisError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


async def test_redis_outage_is_seen_and_recovered_from_without_losing_settlements() -> None:
    """Our own redis-server (never the shared one): CLIENT PAUSE makes it stop answering for a
    while, as a network partition would, keeping its data."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    server = _redis_server(port)
    s = RedisCounters(f"redis://127.0.0.1:{port}/0", "t:", 300)
    await s.start()
    admin = redis.Redis(port=port)
    try:
        a = adm("before", budget=("b:o:total", 1000, 100))
        assert await s.acquire(a) is None
        admin.execute_command("CLIENT", "PAUSE", "3000", "ALL")
        with pytest.raises(CountersUnavailable):  # one slow answer fails that call only ...
            await s.acquire(adm("during", budget=("b:o:total", 1000, 100)))
        assert s.healthy
        for i in range(2):  # ... three in a row mean Redis is down
            with pytest.raises(CountersUnavailable):
                await s.acquire(adm(f"during-{i}", budget=("b:o:total", 1000, 100)))
        assert s.status()["ok"] is False and s.status()["down_since"] is not None
        generation = s.generation
        s.settle(Settlement(a, 70, None))  # queued while Redis does not answer
        t0 = time.monotonic()
        with pytest.raises(CountersUnavailable):  # no waiting on a dead store: refused at once
            await s.acquire(adm("during-3", budget=("b:o:total", 1000, 100)))
        assert time.monotonic() - t0 < 0.1
        assert await _until(lambda: s.healthy, 6), "did not recover"
        assert s.generation == generation + 1
        await asyncio.wait_for(s.flush(), 5)
        assert await s.budget_states(["b:o:total"]) == [(70, 0)]
        assert await s.acquire(adm("after", budget=("b:o:total", 1000, 100))) is None
    finally:
        await s.close()
        admin.close()
        server.kill()
        server.wait(5)


async def _until(cond, secs: float) -> bool:
    for _ in range(int(secs / 0.05)):
        if cond():
            return True
        await asyncio.sleep(0.05)
    return cond()
