"""The ledger writer: takes usage records off the request path and batches them into the store.

`put()` is the only call on the hot path: one deque append and a length check. A background
task turns records into rows and writes them with one executemany INSERT per batch.

When the store fails, batches go to a local spool (see `spool.py`) and the writer stops
trying the store: every later batch goes straight to the spool until a replay succeeds, so a
dead database costs one failed attempt, not one per batch. A replay task moves the spool back
into the store at start() and every `replay_interval` seconds with
INSERT .. ON CONFLICT (trace_id) DO NOTHING, so a batch that was in fact committed before its
failure was reported is never stored twice. Records the store refuses on their own merits
(integrity or data errors) are found by retrying the batch row by row and are dead-lettered
instead of blocking the rest.

Rows get their insertion-order `seq` from the store (schema.py). Inserts of one process go
one at a time (the writer's batches and replay's), and on Postgres each batch's transaction
first takes an advisory lock, so sequence numbers are assigned in commit order across
instances too: an exporter reading `seq > N` never skips a row that commits later.

In the transaction that stores a batch, the rollups (`rollup.py`, read by the stats) are
updated with the rows it really added. An optional `outbox` (billing events, see
`tollway.billing.outbox`) writes its rows in the same transaction as each batch, for the
records that batch really added (a replay skips the already stored), so an event exists
exactly when its record was stored, once.

Everything here runs on the event loop thread; `put()` must be called from that thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import insert, literal_column, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert

from tollway.storage.rollup import RollupWriter
from tollway.storage.rows import ROW_COLUMNS, row_from_record
from tollway.storage.schema import usage_records
from tollway.storage.spool import Spool
from tollway.usage import UsageRecord

log = logging.getLogger(__name__)

_BAD_VALUE = (TypeError, ValueError, AttributeError, OverflowError)

# Serialises batch inserts of every instance on one Postgres, so `seq` follows commit order.
_PG_INSERT_LOCK = 7_316_401_203_118_771_778
# SQLite has no sequences: the next `seq`, computed inside the (serialised) insert.
_SQLITE_NEXT_SEQ = literal_column("(SELECT COALESCE(MAX(seq), 0) + 1 FROM usage_records)")


class CompanionRows(Protocol):
    """Rows written in the same transaction as a batch of records (the billing outbox)."""

    async def write(self, conn: Any, records: Sequence[UsageRecord],
                    stored: Sequence[dict[str, Any]] | None = None) -> int:
        """`stored`: the records' usage_records rows, in the same order."""
        ...


def _is_row_error(exc: BaseException) -> bool:
    """True when the failure is about the data (retrying cannot help), not the store."""
    if isinstance(exc, (IntegrityError, DataError)):
        return True
    # asyncpg errors reach us as plain DBAPIError; SQLSTATE classes 22 (data exception) and
    # 23 (integrity violation) are about the row.
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if isinstance(code, str) and code[:2] in ("22", "23"):
        return True
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        return isinstance(exc.orig, _BAD_VALUE)  # a bind parameter could not be converted
    return isinstance(exc, _BAD_VALUE)


def _plain_insert(engine: AsyncEngine) -> Insert:
    stmt = insert(usage_records)
    return stmt.values(seq=_SQLITE_NEXT_SEQ) if engine.dialect.name == "sqlite" else stmt


def _idempotent_insert(engine: AsyncEngine) -> Insert:
    dialect = {"sqlite": sqlite, "postgresql": postgresql}.get(engine.dialect.name)
    if dialect is None:
        raise ValueError(f"unsupported store dialect: {engine.dialect.name}")
    stmt = dialect.insert(usage_records)
    if engine.dialect.name == "sqlite":
        stmt = stmt.values(seq=_SQLITE_NEXT_SEQ)
    return stmt.on_conflict_do_nothing(index_elements=["trace_id"])


def _driver_statement(engine: AsyncEngine, stmt: Insert) -> tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]]] | None:
    """SQLite only: the statement compiled once to its SQL, and what makes a row its parameters.

    Executing the compiled SQL with plain tuples skips SQLAlchemy's per-row parameter
    processing, which cost more than the insert itself at thousands of rows per second.
    """
    if engine.dialect.name != "sqlite":
        return None
    compiled = stmt.compile(dialect=engine.dialect, column_keys=list(ROW_COLUMNS))
    if not compiled.positiontup or len(compiled.positiontup) < 2:
        return None
    return str(compiled), itemgetter(*compiled.positiontup)  # several keys: a tuple, made in C


async def _not_stored_yet(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of a replayed batch that the store does not have yet (ON CONFLICT DO NOTHING
    will skip the others, and the batch hooks must not count them again)."""
    ids = [r["trace_id"] for r in rows]
    stored = set((await conn.execute(select(usage_records.c.trace_id).where(usage_records.c.trace_id.in_(ids))))
                 .scalars())
    fresh: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["trace_id"] not in stored:
            fresh.setdefault(r["trace_id"], r)  # a record spooled twice is stored once
    return list(fresh.values())


def _records_of(records: Sequence[UsageRecord], rows: list[dict[str, Any]]) -> list[UsageRecord]:
    """The records whose rows are `rows`, each trace once, in the same order (as
    `_not_stored_yet`, the first of a trace's copies)."""
    keep = {r["trace_id"] for r in rows}
    out = []
    for record in records:
        if record.trace_id in keep:
            keep.discard(record.trace_id)
            out.append(record)
    return out


class LedgerWriter:
    """Background, batching, never-losing writer of `UsageRecord`s.

    Counters: `written` (records stored, replays included), `replayed` (of those, how many
    came from the spool), `spooled` (records ever appended to the spool), `rejected`
    (dead-lettered), `lost` (only when both the store and the spool disk failed at stop),
    `write_errors` (failed store writes), `pending` (queued or in flight now), `batch_fallbacks` (batches the store refused whole
    and that were retried row by row), and from the spool, `unreplayable` (spool lines that
    could not be read back, e.g. cut by a crash: dead-lettered, never silently dropped).
    `last_write` is the unix time of the last successful store write.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        spool_dir: Path,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.25,
        max_queue: int = 100_000,
        replay_interval: float = 5.0,
        outbox: CompanionRows | None = None,
    ) -> None:
        self._engine = engine
        self._outbox = outbox
        self._spool = Spool(spool_dir)
        self._batch_size = max(1, batch_size)
        self._flush_interval = flush_interval
        self._max_queue = max(1, max_queue)
        self._replay_interval = replay_interval
        self._insert = _plain_insert(engine)
        self._replay_insert = _idempotent_insert(engine)
        self._pg = engine.dialect.name == "postgresql"
        self._insert_lock = asyncio.Lock()  # one insert transaction at a time: seq in commit order
        self._write_started: float | None = None  # monotonic start of the insert in flight
        self._driver_sql = {
            id(st): _driver_statement(engine, st) for st in (self._insert, self._replay_insert)
        }
        self._rollups = RollupWriter(engine.dialect)

        self._queue: deque[UsageRecord] = deque()
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()  # one batch in flight: the writer task's or flush()'s
        self._replay_lock = asyncio.Lock()
        self._inflight: list[UsageRecord] | None = None  # the batch being written now
        self._store_ok = True
        self._closing = False  # stop() has begun: drain, then exit
        self._stop_event = asyncio.Event()  # wakes the replay loop's sleep at stop()
        self._closed = False  # stop() is done: put() goes straight to the spool
        self._writer: asyncio.Task[None] | None = None
        self._replayer: asyncio.Task[None] | None = None

        self.written = 0
        self.replayed = 0
        self.spooled = 0
        self.rejected = 0
        self.lost = 0
        self.batch_fallbacks = 0
        self.last_write: float | None = None
        self.write_errors = 0

    # -- public API -------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._queue) + (len(self._inflight) if self._inflight else 0)

    @property
    def store_ok(self) -> bool:
        """False from a failed write until a replay or probe gets through (for health)."""
        return self._store_ok

    @property
    def spool_dir(self) -> Path:
        return self._spool.directory

    @property
    def unreplayable(self) -> int:
        return self._spool.unreadable

    @property
    def write_stalled_secs(self) -> float:
        """How long the store write in flight has been running (0 when none is)."""
        started = self._write_started
        return 0.0 if started is None else time.monotonic() - started

    def spool_bytes(self) -> int:
        """Bytes waiting in the spool for the store (dead letters not included)."""
        return self._spool.size()

    def dead_letter_bytes(self) -> int:
        return self._spool.rejected_size()

    def put(self, record: UsageRecord) -> None:
        """Queue a record. Never blocks on the store and never raises."""
        queue = self._queue
        if len(queue) < self._max_queue and not self._closed:
            queue.append(record)
            if len(queue) >= self._batch_size:
                self._wake.set()
            return
        self._overflow(record)

    async def start(self) -> None:
        """Start the writer and the replay task (which replays any spool right away)."""
        if self._writer is not None or self._closed:
            return
        self._writer = asyncio.create_task(self._run(), name="tollway-ledger-writer")
        self._replayer = asyncio.create_task(self._replay_loop(), name="tollway-ledger-replay")

    async def flush(self) -> None:
        """Write (or spool) everything queued at the time of the call, in-flight included."""
        if self._closed:  # stop() spooled everything; an abandoned write may hold the lock
            return
        remaining = len(self._queue)
        async with self._write_lock:  # waits for a batch the writer task has in flight
            pass
        while remaining > 0 and self._queue:
            async with self._write_lock:
                batch = self._take(remaining)
                remaining -= len(batch)
                await self._write(batch)

    async def replay(self) -> int:
        """Move spooled records into the store; returns how many were stored. Stops at the
        first store failure, leaving the rest in the spool for the next try."""
        async with self._replay_lock:
            stored = 0
            try:
                segments = self._spool.seal()
            except OSError:
                log.exception("ledger: cannot read spool in %s", self._spool.directory)
                return 0
            for segment in segments:
                done, n = await self._replay_segment(segment)
                stored += n
                if not done:
                    return stored
            # Every segment went through, so the store takes writes again.
            self._store_ok = True if segments else self._store_ok or await self._probe()
            return stored

    async def stop(self, drain_secs: float = 10.0) -> None:
        """Drain the queue into the store within `drain_secs` seconds; spool what is left.

        When the store does not answer in time, the batch being written is spooled too and
        the write is abandoned, not cancelled: it finishes (or fails) on its own shortly
        after, and if it did commit, replay's ON CONFLICT DO NOTHING keeps the rows single.
        (Cancelling a query mid-flight can wedge aiosqlite's worker thread and with it
        the event loop's shutdown.) A replay in progress stops after its current batch.
        """
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        self._stop_event.set()
        writer = self._writer or asyncio.create_task(self._run(), name="tollway-ledger-drain")
        tasks = {writer} if self._replayer is None else {writer, self._replayer}
        await asyncio.wait(tasks, timeout=max(0.0, drain_secs))
        self._closed = True
        leftover = (self._inflight or []) + list(self._queue)
        self._inflight = None  # taken over: the abandoned write will not spool it again
        self._queue.clear()
        if not leftover:
            return
        if self._spool_records(leftover):
            log.warning("ledger: store did not take %d record(s) within %.1fs; spooled to %s",
                        len(leftover), drain_secs, self._spool.directory)
        else:
            self.lost += len(leftover)
            log.critical("ledger: LOST %d record(s): store and spool both failed; trace ids: %s",
                         len(leftover), ", ".join(r.trace_id for r in leftover))

    # -- writer -----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._closing and len(self._queue) < self._batch_size:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._flush_interval):
                        await self._wake.wait()
            progressed = await self._drain()
            if self._closing and not self._queue:
                return
            if not progressed:  # store and spool both failing: don't spin
                await asyncio.sleep(1.0)

    async def _drain(self) -> bool:
        while self._queue:
            async with self._write_lock:
                if not await self._write(self._take(self._batch_size)):
                    return False
        return True

    def _take(self, limit: int) -> list[UsageRecord]:
        queue = self._queue
        batch = [queue.popleft() for _ in range(min(limit, self._batch_size, len(queue)))]
        self._inflight = batch
        return batch

    async def _write(self, batch: list[UsageRecord]) -> bool:
        """Store or spool one batch. False when it could do neither (batch requeued)."""
        try:
            if not batch:
                return True
            if not self._store_ok:
                return self._spool_or_requeue(batch)
            try:
                stopped_at = await self._store(self._insert, batch)
            except asyncio.CancelledError:
                # Possibly half stored (row by row): spool it whole; replay skips what is
                # already there. Unless stop() has taken the batch over already.
                if self._inflight is batch:
                    self._spool_or_requeue(batch)
                raise
            if stopped_at is None or self._inflight is not batch:  # done, or taken over
                return True
            return self._spool_or_requeue(batch[stopped_at:])
        finally:
            if self._inflight is batch:
                self._inflight = None

    async def _store(self, stmt: Insert, records: Sequence[UsageRecord]) -> int | None:
        """Insert records in one executemany. If the store refuses the batch because of its
        data, go row by row and dead-letter the bad rows. Returns None when every record was
        stored or dead-lettered, else the index from which the store failed (not stored)."""
        try:
            await self._insert_records(stmt, records)
        except Exception as exc:
            if not _is_row_error(exc):
                self._store_down(exc)
                return 0
        else:
            self.written += len(records)
            return None
        self.batch_fallbacks += 1
        for i, record in enumerate(records):
            try:
                await self._insert_records(stmt, [record])
            except Exception as exc:
                if not _is_row_error(exc):
                    self._store_down(exc)
                    return i
                self._reject([record], exc)
            else:
                self.written += 1
        return None

    async def _insert_records(self, stmt: Insert, records: Sequence[UsageRecord]) -> None:
        rows = [row_from_record(r) for r in records]
        driver = self._driver_sql.get(id(stmt))
        async with self._insert_lock:
            self._write_started = time.monotonic()
            try:
                async with self._engine.begin() as conn:
                    if self._pg:
                        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_INSERT_LOCK})
                    fresh = rows if stmt is self._insert else await _not_stored_yet(conn, rows)
                    if driver is None:
                        await conn.execute(stmt, rows)
                    else:
                        sql, params = driver
                        await conn.exec_driver_sql(sql, [params(row) for row in rows])
                    await self._rollups.add(conn, fresh)  # rows a replay found already stored count once
                    if self._outbox is not None:  # the events of the records really added, once each
                        if fresh is rows:
                            await self._outbox.write(conn, records, rows)
                        else:
                            await self._outbox.write(conn, _records_of(records, fresh), fresh)
            finally:
                self._write_started = None
        self.last_write = time.time()

    def _store_down(self, exc: BaseException) -> None:
        self.write_errors += 1
        if self._store_ok:
            log.warning("ledger: store write failed, spooling to %s until it recovers: %s",
                        self._spool.directory, exc)
        self._store_ok = False

    # -- spool ------------------------------------------------------------------------------

    def _spool_records(self, records: list[UsageRecord]) -> bool:
        try:
            self.spooled += self._spool.append(records)
            return True
        except OSError:
            log.exception("ledger: cannot write spool in %s", self._spool.directory)
            return False

    def _spool_or_requeue(self, batch: list[UsageRecord]) -> bool:
        if self._spool_records(batch):
            return True
        self._queue.extendleft(reversed(batch))  # keep them in memory and try again later
        return False

    def _overflow(self, record: UsageRecord) -> None:
        """put() when the queue is full or the writer has stopped: spool this one record."""
        try:
            if self._spool_records([record]):
                return
            if not self._closed:
                self._queue.append(record)  # memory over losing it
                return
            self.lost += 1
            log.critical("ledger: LOST record %s: writer stopped and spool failed", record.trace_id)
        except Exception:  # put() must never raise
            log.exception("ledger: cannot queue record %s", getattr(record, "trace_id", "?"))

    def _reject(self, records: list[UsageRecord], exc: BaseException) -> None:
        self.rejected += len(records)
        try:
            self._spool.reject_records(records, f"{type(exc).__name__}: {exc}")
        except OSError:
            self.lost += len(records)
            log.exception("ledger: LOST rejected record(s) %s", [r.trace_id for r in records])

    # -- replay -----------------------------------------------------------------------------

    async def _replay_loop(self) -> None:
        while not self._closing:
            try:
                if not self._store_ok or self._spool.has_data():
                    n = await self.replay()
                    if n:
                        log.info("ledger: replayed %d spooled record(s)", n)
            except Exception:
                log.exception("ledger: replay failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._replay_interval):
                    await self._stop_event.wait()

    async def _replay_segment(self, segment: Path) -> tuple[bool, int]:
        """Replay one segment: (finished?, records stored)."""
        stored = 0
        offset = 0
        try:
            for batch in self._spool.read(segment, self._batch_size):
                offset = batch[0][0]
                if self._closing:  # shutting down: leave the rest for the next start
                    self._spool.keep_from(segment, offset)
                    return False, stored
                before = self.written
                stopped_at = await self._store(self._replay_insert, [r for _, r in batch])
                stored += self.written - before
                self.replayed += self.written - before
                if stopped_at is not None:
                    self._spool.keep_from(segment, batch[stopped_at][0])
                    return False, stored
        except asyncio.CancelledError:
            self._spool.keep_from(segment, offset)  # what is not yet stored stays spooled
            raise
        except OSError:
            log.exception("ledger: cannot replay spool segment %s", segment)
            return False, stored
        self._spool.remove(segment)
        return True, stored

    async def _probe(self) -> bool:
        try:
            async with self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True
