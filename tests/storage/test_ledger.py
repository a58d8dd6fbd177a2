"""LedgerWriter on both databases: round trip, batching, draining, outages, replay, dead
letters. Failures are real (locked SQLite, Postgres behind a proxy that goes down)."""

from __future__ import annotations

import json

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event

from tollway.storage import LedgerWriter, list_records, make_engine
from tollway.storage.rows import record_from_json
from tollway.storage.spool import Spool
from tollway.usage import Usage, UsageRecord

if TYPE_CHECKING:
    from tests.storage.conftest import Outage, Store

MakeRecord = Callable[..., UsageRecord]
Eventually = Callable[..., Awaitable[None]]


def expected_row(r: UsageRecord) -> dict[str, Any]:
    u = r.usage
    cost = None if r.cost_usd is None else f"{r.cost_usd.quantize(Decimal('1e-9')):f}"
    saved = None if r.cost_saved_usd is None else f"{r.cost_saved_usd.quantize(Decimal('1e-9')):f}"
    return {
        "trace_id": r.trace_id, "ts": r.ts, "route": r.route, "method": r.method,
        "path": r.path, "provider": r.provider, "model_requested": r.model_requested,
        "model_served": r.model_served, "stream": r.stream, "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens, "cached_tokens": u.cached_tokens,
        "cache_creation_tokens": u.cache_creation_tokens,
        "reasoning_tokens": u.reasoning_tokens, "total_tokens": u.total_tokens,
        "tokens_estimated": u.estimated, "cost_usd": cost, "cost_note": r.cost_note,
        "latency_ms": r.latency_ms, "ttft_ms": r.ttft_ms, "status": r.status,
        "error_type": r.error_type, "cancelled": r.cancelled, "key_id": r.key_id,
        "project": r.project, "source": r.source, "customer": r.customer, "team": r.team,
        "guard_findings": r.guard_findings, "cache": r.cache, "cost_saved_usd": saved,
        "deployment": r.deployment, "attempts": r.attempts, "failure": r.failure,
        "attempt_errors": json.loads(r.attempt_errors) if r.attempt_errors else [],
    }  # fmt: skip


async def test_round_trip_keeps_every_field_and_exact_money(
    store: Store, spool_dir: Path, make_record: MakeRecord
) -> None:
    records = [
        make_record(1, deployment="anthropic:claude-x", attempts=2, failure="mitigated",
                    attempt_errors='["openai:gpt-4o: 503 (overloaded)"]'),
        make_record(
            2, cost_usd=None, cost_note="unknown model price", usage=Usage(), latency_ms=None,
            ttft_ms=None, status=502, error_type="upstream_error", cancelled=True,
            provider=None, model_served=None, key_id=None, project=None, source=None,
            customer=None,
        ),  # fmt: skip
        make_record(3, cost_usd=Decimal("1234567.890123456")),
        make_record(4, cost_usd=Decimal("0.0000000015")),  # rounds half-even to 2 nano
        make_record(5, cost_usd=Decimal("0")),
        make_record(6, cost_usd=Decimal("0"), cache="hit", cost_saved_usd=Decimal("0.000012345")),
    ]
    writer = LedgerWriter(store.engine, spool_dir)
    for r in records:
        writer.put(r)
    await writer.flush()
    assert (writer.written, writer.spooled, writer.pending) == (6, 0, 0)

    got = {row["trace_id"]: row for row in (await list_records(store.engine))["data"]}
    seqs = []
    for r in records:
        row = got[r.trace_id]
        assert row.pop("time").endswith("Z")
        seqs.append(row.pop("seq"))
        assert row == expected_row(r)
    assert all(isinstance(s, int) for s in seqs) and seqs == sorted(set(seqs))  # insertion order
    assert got["trace-000003"]["cost_usd"] == "1234567.890123456"
    assert got["trace-000004"]["cost_usd"] == "0.000000002"
    assert got["trace-000005"]["cost_usd"] == "0.000000000"
    assert got["trace-000002"]["cost_usd"] is None
    assert (await store.raw("trace-000001"))["cost_nanousd"] == 24690
    await writer.stop(5)


async def test_each_batch_is_one_insert(
    store: Store, spool_dir: Path, make_record: MakeRecord
) -> None:
    inserts: list[int] = []

    def on_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                   executemany: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO USAGE_RECORDS"):
            inserts.append(len(parameters) if executemany else 1)

    event.listen(store.engine.sync_engine, "before_cursor_execute", on_execute)
    writer = LedgerWriter(store.engine, spool_dir, batch_size=100)
    for i in range(250):
        writer.put(make_record(i))
    await writer.flush()
    event.remove(store.engine.sync_engine, "before_cursor_execute", on_execute)
    assert inserts == [100, 100, 50]
    assert writer.written == 250
    assert await store.count() == 250


async def test_writer_flushes_on_interval_and_on_full_batch(
    store: Store, spool_dir: Path, make_record: MakeRecord, eventually: Eventually
) -> None:
    writer = LedgerWriter(store.engine, spool_dir, batch_size=10, flush_interval=0.05)
    await writer.start()
    for i in range(3):
        writer.put(make_record(i))
    await eventually(lambda: writer.written == 3, within=3)
    await writer.stop(5)

    # With a long interval, only a full batch wakes the writer.
    writer = LedgerWriter(store.engine, spool_dir, batch_size=10, flush_interval=60)
    await writer.start()
    await asyncio.sleep(0.05)
    for i in range(10, 13):
        writer.put(make_record(i))
    await asyncio.sleep(0.2)
    assert writer.pending == 3  # not a full batch: waits for the interval
    for i in range(13, 23):
        writer.put(make_record(i))
    await eventually(lambda: writer.written == 13, within=3)  # woken: writes all queued
    await writer.stop(5)
    assert await store.count() == 16


async def test_stop_drains_everything(
    store: Store, spool_dir: Path, make_record: MakeRecord
) -> None:
    writer = LedgerWriter(store.engine, spool_dir, batch_size=100)
    await writer.start()
    for i in range(1234):
        writer.put(make_record(i))
    await writer.stop(10)
    assert (writer.written, writer.spooled, writer.pending) == (1234, 0, 0)
    assert await store.count() == 1234


async def test_stop_without_start_drains(
    store: Store, spool_dir: Path, make_record: MakeRecord
) -> None:
    writer = LedgerWriter(store.engine, spool_dir)
    for i in range(10):
        writer.put(make_record(i))
    await writer.stop(5)
    assert await store.count() == 10


async def test_put_after_stop_spools_and_next_start_replays(
    store: Store, spool_dir: Path, make_record: MakeRecord, eventually: Eventually
) -> None:
    writer = LedgerWriter(store.engine, spool_dir)
    await writer.start()
    await writer.stop(5)
    writer.put(make_record(1))  # a straggler after shutdown began: spooled, not lost
    assert (writer.spooled, writer.pending) == (1, 0)

    writer = LedgerWriter(store.engine, spool_dir)
    await writer.start()  # replays at start
    await eventually(lambda: writer.replayed == 1)
    await writer.stop(5)
    assert await store.ids() == ["trace-000001"]
    assert not Spool(spool_dir).has_data()


async def test_full_queue_spills_to_spool(
    store: Store, spool_dir: Path, make_record: MakeRecord, eventually: Eventually
) -> None:
    writer = LedgerWriter(store.engine, spool_dir, max_queue=10)
    for i in range(25):
        writer.put(make_record(i))
    assert (writer.pending, writer.spooled) == (10, 15)
    await writer.start()
    await eventually(lambda: writer.replayed == 15)
    await writer.stop(5)
    assert await store.ids() == [f"trace-{i:06d}" for i in range(25)]


async def test_outage_spools_then_replays_without_loss_or_duplicates(
    store: Store, outage: Outage, spool_dir: Path, make_record: MakeRecord, eventually: Eventually
) -> None:
    writer = LedgerWriter(
        outage.engine, spool_dir, batch_size=50, flush_interval=0.02, replay_interval=0.1
    )
    await writer.start()
    for i in range(100):
        writer.put(make_record(i))
    await writer.flush()
    assert writer.written == 100

    await outage.begin()
    for i in range(100, 400):
        writer.put(make_record(i))
        if i % 37 == 0:
            await asyncio.sleep(0)  # let the writer run mid-stream
    await writer.flush()
    assert (writer.spooled, writer.pending, writer.store_ok) == (300, 0, False)
    await asyncio.sleep(0.3)  # replays keep failing while the store is down
    assert writer.replayed == 0
    assert await store.count() == 100

    await outage.end()
    await eventually(lambda: writer.replayed == 300 and writer.store_ok, within=15)
    for i in range(400, 450):
        writer.put(make_record(i))
    await writer.stop(5)

    assert writer.spooled == 300 and writer.written == 450
    assert await store.ids() == [f"trace-{i:06d}" for i in range(450)]
    assert not Spool(spool_dir).has_data()


async def test_replay_after_partial_failure_never_duplicates(
    store: Store, spool_dir: Path, make_record: MakeRecord
) -> None:
    writer = LedgerWriter(store.engine, spool_dir, batch_size=30)
    stored = [make_record(i) for i in range(50)]
    for r in stored:
        writer.put(r)
    await writer.flush()
    # As if those writes had committed but reported failure: they are spooled as well,
    # along with 50 that really were not stored.
    Spool(spool_dir).append(stored + [make_record(i) for i in range(50, 100)])
    assert await writer.replay() == 100
    assert await writer.replay() == 0
    assert await store.ids() == [f"trace-{i:06d}" for i in range(100)]
    assert not Spool(spool_dir).has_data()


async def test_stop_with_hung_store_spools_within_timeout(
    store: Store, hang: Outage, spool_dir: Path, make_record: MakeRecord
) -> None:
    loop = asyncio.get_running_loop()
    writer = LedgerWriter(hang.engine, spool_dir, batch_size=20)
    await writer.start()
    for i in range(5):
        writer.put(make_record(i))
    await writer.flush()

    await hang.begin()
    for i in range(5, 55):
        writer.put(make_record(i))
    await asyncio.sleep(0.3)  # the writer is now stuck inside an INSERT
    assert writer.pending == 50
    started = loop.time()
    await writer.stop(drain_secs=0.5)
    assert loop.time() - started < 2.0
    assert (writer.pending, writer.spooled, writer.lost) == (0, 50, 0)
    await hang.end()

    replayer = LedgerWriter(store.engine, spool_dir)
    await replayer.replay()
    await replayer.stop(5)
    assert await store.ids() == [f"trace-{i:06d}" for i in range(55)]


async def test_bad_records_are_dead_lettered_and_do_not_block_the_batch(
    store: Store, spool_dir: Path, make_record: MakeRecord
) -> None:
    writer = LedgerWriter(store.engine, spool_dir, batch_size=10)
    writer.put(make_record(0))
    await writer.flush()
    batch = [make_record(i) for i in range(1, 5)]
    batch.append(make_record(0))  # duplicate trace_id: integrity error
    batch.append(make_record(5, usage=Usage(input_tokens=2**70)))  # no integer column holds it
    batch += [make_record(i) for i in range(6, 9)]
    for r in batch:
        writer.put(r)
    await writer.flush()

    assert (writer.rejected, writer.spooled, writer.store_ok) == (2, 0, True)
    assert await store.ids() == [f"trace-{i:06d}" for i in (0, 1, 2, 3, 4, 6, 7, 8)]
    lines = Spool(spool_dir).rejected_path.read_bytes().splitlines()
    rejected = sorted(record_from_json(line).trace_id for line in lines)
    assert rejected == ["trace-000000", "trace-000005"]
    await writer.stop(5)


async def test_unstorable_cost_is_kept_as_null_with_a_note(
    store: Store, spool_dir: Path, make_record: MakeRecord
) -> None:
    writer = LedgerWriter(store.engine, spool_dir)
    writer.put(make_record(1, cost_usd=Decimal("NaN")))
    await writer.stop(5)
    row = await store.raw("trace-000001")
    assert row["cost_nanousd"] is None
    assert row["cost_note"].startswith("invalid cost")


async def test_unreadable_spool_lines_are_dead_lettered(
    store: Store, spool_dir: Path, make_record: MakeRecord
) -> None:
    spool = Spool(spool_dir)
    spool.append([make_record(1), make_record(2)])
    with spool.active_path.open("ab") as f:
        f.write(b'{"trace_id": "half a line\n')
    spool.append([make_record(3)])

    writer = LedgerWriter(store.engine, spool_dir)
    assert await writer.replay() == 3
    assert await store.ids() == ["trace-000001", "trace-000002", "trace-000003"]
    assert spool.rejected_path.read_bytes() == b'{"trace_id": "half a line\n'
    assert not spool.has_data()
    assert writer.unreplayable == 1  # counted, not silently dropped


async def test_nul_and_lone_surrogates_never_cost_a_record_or_a_batch(
    store: Store, spool_dir: Path, make_record: MakeRecord
) -> None:
    """Postgres refuses NUL in text: such values are stored with U+FFFD, in one batch insert."""
    nasty = {"path": "/projects/a\x00b/v1/chat/completions", "model_requested": "gpt\x00-4o",
             "model_served": "x\ud800y", "project": "a\x00b", "source": "\x00", "customer": "c\x00",
             "key_id": "k\x00", "error_type": "e\x00", "cost_note": "n\x00", "provider": "p\x00"}
    records = [make_record(i, **(nasty if i % 3 == 0 else {})) for i in range(30)]
    writer = LedgerWriter(store.engine, spool_dir, batch_size=100)
    for r in records:
        writer.put(r)
    await writer.flush()
    assert (writer.written, writer.rejected, writer.spooled, writer.batch_fallbacks) == (30, 0, 0, 0)
    row = await store.raw("trace-000003")
    assert row["path"] == "/projects/a\ufffdb/v1/chat/completions" and row["project"] == "a\ufffdb"
    assert row["model_requested"] == "gpt\ufffd-4o" and row["model_served"] == "x\ufffdy"
    assert (row["source"], row["customer"], row["key_id"]) == ("\ufffd", "c\ufffd", "k\ufffd")
    assert (await store.raw("trace-000001"))["project"] == "alpha"  # others untouched
    await writer.stop(5)


async def test_seq_is_a_gapless_cursor_for_a_poller_while_two_writers_write(
    store: Store, spool_dir: Path, tmp_path: Path, make_record: MakeRecord
) -> None:
    """Two writers (two instances) write at once; a poller following after_seq sees every
    record exactly once: seq never lets a row commit behind the poller's position."""
    engines = [store.engine, make_engine(store.url)]
    writers = [LedgerWriter(e, tmp_path / f"spool{i}", batch_size=7, flush_interval=0.005)
               for i, e in enumerate(engines)]
    for w in writers:
        await w.start()
    seen: list[str] = []
    done = False

    async def poll() -> None:
        after = 0
        while True:
            finished = done
            page = await list_records(store.engine, after_seq=after, limit=50)
            seen.extend(r["trace_id"] for r in page["data"])
            assert page["next_after_seq"] >= after
            after = page["next_after_seq"]
            if finished and not page["data"]:
                return
            await asyncio.sleep(0)

    poller = asyncio.create_task(poll())
    for i in range(600):
        writers[i % 2].put(make_record(i))
        if i % 10 == 0:
            await asyncio.sleep(0.001)
    for w in writers:
        await w.stop(10)
    done = True
    await asyncio.wait_for(poller, 30)
    await engines[1].dispose()
    assert sorted(seen) == [f"trace-{i:06d}" for i in range(600)]  # all, and each once
