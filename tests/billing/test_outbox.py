"""The billing outbox on SQLite and Postgres: events are written with their records (and only
then), a replayed record never enqueues its events twice, claims never overlap, a delivered
batch is gone, a failing one backs off and parks, and an operator's retry brings back exactly
the events asked for."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.billing.outbox import Outbox
from tollway.config import BillingSinkSettings
from tollway.storage.ledger import LedgerWriter
from tollway.storage.rows import row_from_record
from tollway.storage.schema import billing_outbox
from tollway.storage.spool import Spool
from tollway.usage import Usage, UsageRecord

SINKS = [BillingSinkSettings(id="a", url="http://127.0.0.1:9/a", secret="s", batch_size=7),
         BillingSinkSettings(id="b", url="http://127.0.0.1:9/b", secret="s", format="stripe_meter")]


@pytest.fixture
async def outbox(engine: AsyncEngine) -> Outbox:
    async with engine.begin() as conn:
        await conn.execute(delete(billing_outbox))
    box = Outbox(engine, SINKS)
    yield box
    await box.close()


async def event_ids(engine: AsyncEngine, state: str | None = None) -> list[str]:
    q = select(billing_outbox.c.event_id, billing_outbox.c.event_ids)
    if state:
        q = q.where(billing_outbox.c.state == state)
    async with engine.connect() as conn:
        rows = (await conn.execute(q)).all()
    return sorted(i for row_id, ids in rows for i in (ids or row_id).split(","))


def expected(records: list[UsageRecord], sinks: tuple[str, ...] = ("a", "b")) -> list[str]:
    return sorted(f"{r.trace_id}:{s}" for r in records for s in sinks)


async def test_events_are_written_with_their_records_only_for_billable_customers(
        engine: AsyncEngine, outbox: Outbox, spool_dir: Path, make_record: Callable[..., UsageRecord]) -> None:
    writer = LedgerWriter(engine, spool_dir, batch_size=20, outbox=outbox)
    billed = [make_record(i) for i in range(20)]
    unbilled = [make_record(100, customer=None), make_record(101, usage=Usage(), cost_usd=None, status=500)]
    for r in billed + unbilled:
        writer.put(r)
    await writer.flush()
    assert await event_ids(engine) == expected(billed)
    async with engine.connect() as conn:
        sizes = sorted((await conn.execute(select(billing_outbox.c.sink, billing_outbox.c.events))).all())
    # one row a batch of at most the sink's batch_size events
    assert sizes == [("a", 6), ("a", 7), ("a", 7), ("b", 20)]


async def test_rows_reuse_the_ledgers_cost_and_come_out_the_same(
        outbox: Outbox, make_record: Callable[..., UsageRecord]) -> None:
    records = [make_record(i) for i in range(10)] + [make_record(10, customer=None)]
    rows = outbox.rows_for(records)
    assert outbox.rows_for(records, [row_from_record(r) for r in records]) == rows and len(rows) == 3


async def test_replayed_records_enqueue_their_events_exactly_once(
        engine: AsyncEngine, outbox: Outbox, spool_dir: Path, make_record: Callable[..., UsageRecord]) -> None:
    writer = LedgerWriter(engine, spool_dir, batch_size=30, outbox=outbox)
    stored = [make_record(i) for i in range(10)]
    for r in stored:
        writer.put(r)
    await writer.flush()
    done = None
    while (batch := await outbox.claim("a", 100, lease_secs=30, done=done)) is not None:
        done = batch
    await outbox.delivered(done)  # every event of "a" delivered: its rows are gone
    assert await event_ids(engine) == expected(stored, ("b",))
    # As if those writes had committed but reported failure: spooled as well, with 10 new ones
    # (one of them spooled twice).
    fresh = [make_record(i) for i in range(10, 20)]
    Spool(spool_dir).append(stored + fresh + fresh[:1])
    await writer.replay()
    await writer.replay()
    assert await event_ids(engine) == sorted(expected(stored, ("b",)) + expected(fresh))
    got = []
    while (batch := await outbox.claim("a", 100, lease_secs=30)) is not None:
        got += batch.event_ids()
    assert sorted(got) == sorted(f"{r.trace_id}:a" for r in fresh)


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


async def test_concurrent_senders_never_claim_an_event_twice(
        engine: AsyncEngine, outbox: Outbox, spool_dir: Path, make_record: Callable[..., UsageRecord]) -> None:
    writer = LedgerWriter(engine, spool_dir, batch_size=100, outbox=outbox)
    for i in range(60):
        writer.put(make_record(i))
    await writer.flush()
    senders = [Outbox(engine, SINKS) for _ in range(4)]  # as four workers
    try:
        batches: list = []
        for _ in range(20):  # Postgres: a claim skips rows another holds locked, so go on until dry
            got = await asyncio.gather(*(s.claim("a", 7, lease_secs=30) for s in senders))
            batches += got
            if not any(got) and sum(b.count for b in batches if b) == 60:
                break
        ids = [i for b in batches if b is not None for i in b.event_ids()]
        assert len(ids) == len(set(ids)) == 60
        assert all(b is None or b.count == 7 or b.count == 4 for b in batches)
        assert await senders[0].claim("a", 7, lease_secs=30) is None  # all claimed
    finally:
        for s in senders:
            await s.close()


async def test_a_claim_takes_whole_rows_up_to_the_limit_and_a_lapsed_lease_is_taken_again(
        engine: AsyncEngine, outbox: Outbox, spool_dir: Path, make_record: Callable[..., UsageRecord]) -> None:
    writer = LedgerWriter(engine, spool_dir, batch_size=3, outbox=outbox)
    for i in range(9):  # three ledger batches: three rows of 3 events for "a"
        writer.put(make_record(i))
        if i % 3 == 2:
            await writer.flush()
    first = await outbox.claim("a", 7, lease_secs=30)
    assert first is not None and first.count == 6  # two rows: a third would pass 7
    second = await outbox.claim("a", 2, lease_secs=30)
    assert second is not None and second.count == 3  # at least one row, however large
    assert await outbox.claim("a", 7, lease_secs=30) is None
    async with engine.begin() as conn:  # the first sender died: its lease runs out
        await conn.execute(update(billing_outbox).where(billing_outbox.c.claim == first.claim)
                           .values(next_attempt_at=0.5))
    again = await outbox.claim("a", 7, lease_secs=30)
    assert again is not None and again.event_ids() == first.event_ids()
    await outbox.delivered(first)  # the dead sender's token no longer holds anything
    assert await outbox.pending_count() == {"a": 9, "b": 9}
    await outbox.delivered(again)
    assert await outbox.pending_count() == {"a": 3, "b": 9}


async def test_failed_events_back_off_then_park_and_retry_brings_back_those_asked_for(
        engine: AsyncEngine, outbox: Outbox, spool_dir: Path, make_record: Callable[..., UsageRecord]) -> None:
    writer = LedgerWriter(engine, spool_dir, outbox=outbox)
    for i in range(3):
        writer.put(make_record(i))
    await writer.flush()
    batch = await outbox.claim("a", 10, lease_secs=30)
    assert await outbox.failed(batch, "HTTP 500", max_attempts=2, delay_for=lambda n: 0.0) == (3, 0)
    batch = await outbox.claim("a", 10, lease_secs=30)
    assert batch.attempts == 1 and batch.count == 3
    assert await outbox.failed(batch, "HTTP 500", max_attempts=2, delay_for=lambda n: 0.0) == (0, 3)
    assert await outbox.claim("a", 10, lease_secs=30) is None
    parked = await outbox.parked("a")
    assert [p["last_error"] for p in parked] == ["HTTP 500"] * 3
    assert all(p["event"]["id"] == p["event_id"] and p["trace_id"] == p["event"]["trace_id"] for p in parked)
    assert [p["attempts"] for p in parked] == [2, 2, 2]
    assert len(await outbox.parked("a", limit=2)) == 2
    # one event of the parked batch: only it goes back
    assert await outbox.retry([parked[1]["event_id"], "nope:a"]) == 1
    back = await outbox.claim("a", 10, lease_secs=30)
    assert back.event_ids() == [parked[1]["event_id"]] and back.attempts == 0
    assert back.payload == orjson.dumps(parked[1]["event"])
    assert [p["event_id"] for p in await outbox.parked("a")] == [parked[0]["event_id"], parked[2]["event_id"]]
    assert await outbox.retry(sink="a") == 2
    assert await outbox.parked() == []
