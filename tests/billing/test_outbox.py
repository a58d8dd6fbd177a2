"""The billing outbox on SQLite and Postgres: events are written with their records (and only
then), a replayed record never enqueues its events twice, and leases never overlap."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.billing.outbox import Outbox
from tollway.config import BillingSinkSettings
from tollway.storage.ledger import LedgerWriter
from tollway.storage.schema import billing_outbox
from tollway.storage.spool import Spool
from tollway.usage import Usage, UsageRecord

SINKS = [BillingSinkSettings(id="a", url="http://127.0.0.1:9/a", secret="s"),
         BillingSinkSettings(id="b", url="http://127.0.0.1:9/b", secret="s", format="stripe_meter")]


@pytest.fixture
async def outbox(engine: AsyncEngine) -> Outbox:
    async with engine.begin() as conn:
        await conn.execute(delete(billing_outbox))
    return Outbox(engine, SINKS)


async def event_ids(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return sorted((await conn.execute(select(billing_outbox.c.event_id))).scalars())


def expected(records: list[UsageRecord]) -> list[str]:
    return sorted(f"{r.trace_id}:{s}" for r in records for s in ("a", "b"))


async def test_events_are_written_with_their_records_only_for_billable_customers(
        engine: AsyncEngine, outbox: Outbox, spool_dir: Path, make_record: Callable[..., UsageRecord]) -> None:
    writer = LedgerWriter(engine, spool_dir, batch_size=7, outbox=outbox)
    billed = [make_record(i) for i in range(20)]
    unbilled = [make_record(100, customer=None), make_record(101, usage=Usage(), cost_usd=None, status=500)]
    for r in billed + unbilled:
        writer.put(r)
    await writer.flush()
    assert await event_ids(engine) == expected(billed)


async def test_replayed_records_enqueue_their_events_exactly_once(
        engine: AsyncEngine, outbox: Outbox, spool_dir: Path, make_record: Callable[..., UsageRecord]) -> None:
    writer = LedgerWriter(engine, spool_dir, batch_size=30, outbox=outbox)
    stored = [make_record(i) for i in range(10)]
    for r in stored:
        writer.put(r)
    await writer.flush()
    leased = await outbox.lease("a", 100, lease_secs=30)
    await outbox.delivered([e.event_id for e in leased])  # delivered: only tombstones remain for "a"
    # As if those writes had committed but reported failure: spooled as well, with 10 new ones.
    fresh = [make_record(i) for i in range(10, 20)]
    Spool(spool_dir).append(stored + fresh)
    await writer.replay()
    await writer.replay()
    assert await event_ids(engine) == expected(stored + fresh)
    again = await outbox.lease("a", 100, lease_secs=30)
    assert sorted(e.event_id for e in again) == sorted(f"{r.trace_id}:a" for r in fresh)


async def test_records_spooled_during_an_outage_produce_their_events_on_replay(
        outage, engine: AsyncEngine, spool_dir: Path, make_record: Callable[..., UsageRecord], eventually) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(billing_outbox))
    writer = LedgerWriter(outage.engine, spool_dir, batch_size=20, flush_interval=0.02, replay_interval=0.1,
                          outbox=Outbox(outage.engine, SINKS))
    await writer.start()
    await outage.begin()
    records = [make_record(i) for i in range(40)]
    for r in records:
        writer.put(r)
    await writer.flush()
    assert writer.spooled == 40
    await outage.end()
    await eventually(lambda: writer.replayed == 40 and writer.store_ok, within=15)
    await writer.stop(5)
    assert await event_ids(engine) == expected(records)


async def test_concurrent_leases_never_hand_out_an_event_twice(
        engine: AsyncEngine, outbox: Outbox, spool_dir: Path, make_record: Callable[..., UsageRecord]) -> None:
    writer = LedgerWriter(engine, spool_dir, batch_size=100, outbox=outbox)
    for i in range(60):
        writer.put(make_record(i))
    await writer.flush()
    batches = await asyncio.gather(*(outbox.lease("a", 7, lease_secs=30) for _ in range(12)))
    ids = [e.event_id for b in batches for e in b]
    assert len(ids) == len(set(ids)) == 60
    assert await outbox.lease("a", 7, lease_secs=30) == []  # all leased


async def test_failed_events_back_off_then_park_and_retry_brings_them_back(
        engine: AsyncEngine, outbox: Outbox, spool_dir: Path, make_record: Callable[..., UsageRecord]) -> None:
    writer = LedgerWriter(engine, spool_dir, outbox=outbox)
    for i in range(3):
        writer.put(make_record(i))
    await writer.flush()
    leased = await outbox.lease("a", 10, lease_secs=30)
    assert await outbox.failed(leased, "HTTP 500", max_attempts=2, delay_for=lambda n: 0.0) == (3, 0)
    leased = await outbox.lease("a", 10, lease_secs=30)
    assert [e.attempts for e in leased] == [1, 1, 1]
    assert await outbox.failed(leased, "HTTP 500", max_attempts=2, delay_for=lambda n: 0.0) == (0, 3)
    assert await outbox.lease("a", 10, lease_secs=30) == []
    parked = await outbox.parked("a")
    assert [p["last_error"] for p in parked] == ["HTTP 500"] * 3 and parked[0]["event"]["id"] == parked[0]["event_id"]
    assert await outbox.retry([parked[0]["event_id"]]) == 1
    assert [e.event_id for e in await outbox.lease("a", 10, lease_secs=30)] == [parked[0]["event_id"]]
    assert await outbox.retry(sink="a") == 2
