"""The billing outbox table: events enter with their usage records, senders claim them in batches.

`write()` runs inside the ledger's transaction (see `storage.ledger`), so an event exists if
and only if its usage record was stored. It adds one row per sink and batch of records (at
most the sink's `batch_size` events a row), whose payload is the events' JSON already joined
as the sender posts it, zlib-compressed (level 1: ~12x smaller for ~0.6 µs of CPU an event,
so that the backlog of a long sink outage stays small): a row costs its events a share of one
INSERT, and the sender handles rows, never events. A record replayed from the spool after it
had in fact been stored is not given to `write()` again (the ledger passes only the records
it really added).

A sender works a batch in two statements, on a connection of its own in autocommit mode (each
statement is atomic by itself):
- `claim()`: one UPDATE .. RETURNING takes the oldest due rows of a sink, as many as fit in
  `batch_size` events (a window sum; at least one row), pushes their `next_attempt_at` past
  the send timeout (a lease: a sender that dies leaves them to be taken again) and stamps
  them with a claim token. On Postgres the rows are picked FOR UPDATE SKIP LOCKED, so
  concurrent senders (workers, instances) take disjoint batches without waiting.
- `delivered()` deletes the claimed rows, or `failed()` counts the attempt and parks rows that
  reached `max_attempts`, both by claim token, one statement each. While batches come full,
  the sender passes a delivered one to its next `claim()`, which deletes it first.
A crash between the POST and `delivered()` leaves the rows to be sent again when the lease
runs out: delivery is at least once, and receivers count each event id once.

Statements are SQLAlchemy Core, compiled once for the store's dialect and run as driver SQL
with plain tuples.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Float, Integer, and_, bindparam, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tollway.billing.events import Clock, SinkPlan, billed_cost, event_json
from tollway.config import BillingSinkSettings
from tollway.storage.schema import billing_outbox as t
from tollway.usage import UsageRecord

PENDING, PARKED = "pending", "parked"
# `claim` of a row no sender holds: as long as a claim token (uuid4 hex, which it can never
# equal), so that claiming a row leaves its size as it was and SQLite overwrites it in place
# instead of writing the row (and its payload's overflow pages) anew.
NO_CLAIM = "0" * 32
COLUMNS = ("event_id", "sink", "state", "attempts", "next_attempt_at", "claim", "events", "created_at",
           "trace_id", "last_error", "event_ids", "payload")

_CLAIM = """
UPDATE billing_outbox SET next_attempt_at = :until, claim = :claim
WHERE event_id IN (
  SELECT event_id FROM (
    SELECT event_id, events, sum(events) OVER (ORDER BY next_attempt_at ROWS UNBOUNDED PRECEDING) AS upto
    FROM (SELECT event_id, events, next_attempt_at FROM billing_outbox
          WHERE state = 'pending' AND next_attempt_at <= :now AND sink = :sink
          ORDER BY next_attempt_at LIMIT :rows{lock}) AS due
  ) AS pick WHERE upto <= :limit OR upto = events)
RETURNING event_id, event_ids, events, attempts, payload, created_at
"""

_FAILED = """
UPDATE billing_outbox SET attempts = attempts + 1, claim = :no_claim, last_error = :error,
  state = CASE WHEN attempts + 1 >= :max THEN 'parked' ELSE 'pending' END,
  next_attempt_at = CASE WHEN attempts + 1 >= :max THEN :now ELSE :next END
WHERE claim = :claim AND state = 'pending'
RETURNING state, events
"""


@dataclass(slots=True)
class Batch:
    """Events claimed by one sender: what it posts and how it reports the outcome."""

    claim: str
    ids: str  # the event ids, comma-separated, in payload order
    count: int
    payload: bytes  # the events' JSON, comma-joined: the inside of the posted array
    attempts: int  # the most attempts any of its rows had

    def event_ids(self) -> list[str]:
        return self.ids.split(",")


class Outbox:
    def __init__(self, engine: AsyncEngine, sinks: list[BillingSinkSettings]) -> None:
        self._engine = engine
        self.sinks = sinks
        dialect = {"sqlite": sqlite, "postgresql": postgresql}[engine.dialect.name]
        insert = dialect.insert(t).on_conflict_do_nothing(index_elements=["event_id"])
        compiled = insert.compile(dialect=engine.dialect)
        if tuple(compiled.positiontup or ()) != COLUMNS:  # pragma: no cover - schema and COLUMNS disagree
            raise RuntimeError("billing_outbox columns changed: update outbox.COLUMNS")
        self._insert_sql = str(compiled)
        lock = " FOR UPDATE SKIP LOCKED" if engine.dialect.name == "postgresql" else ""
        self._claim = _driver(engine, text(_CLAIM.format(lock=lock)))
        # typed, so that Postgres does not take a bare parameter in a CASE for text
        self._failed = _driver(engine, text(_FAILED).bindparams(
            bindparam("now", type_=Float), bindparam("next", type_=Float), bindparam("max", type_=Integer)))
        self._delivered = _driver(engine, text("DELETE FROM billing_outbox WHERE claim = :claim AND state = 'pending'"))
        self._plans = [SinkPlan(s) for s in sinks]
        self._sizes = [s.batch_size for s in sinks]
        self._clock = Clock()
        self._conn: AsyncConnection | None = None  # the sender's (see _connection)
        self._lock = asyncio.Lock()
        self._per_row: dict[str, int] = {}  # per sink: events a row, at the last claim

    # -- in the ledger's transaction --------------------------------------------------------------
    def rows_for(self, records: Sequence[UsageRecord],
                 stored: Sequence[dict[str, Any]] | None = None) -> list[tuple[Any, ...]]:
        """The outbox rows of `records` (batches, one sink each), as tuples in `COLUMNS` order.
        `stored`: their usage_records rows, in the same order, whose cost_nanousd is reused."""
        plans, clock, sizes = self._plans, self._clock, self._sizes
        ids: list[list[str]] = [[] for _ in plans]
        bodies: list[list[bytes]] = [[] for _ in plans]
        firsts: list[list[UsageRecord]] = [[] for _ in plans]
        for n, r in enumerate(records):
            if not r.customer:  # the common case, decided without a call
                continue
            if stored is None:
                bill, cost = billed_cost(r)
            else:
                cost = stored[n]["cost_nanousd"]
                bill = bool(r.usage.total_tokens) or (cost is not None and cost > 0)
            if not bill:
                continue
            for i, plan in enumerate(plans):
                eid = r.trace_id + plan.suffix
                body = event_json(r, plan, eid, cost, clock)
                if body is not None:
                    if len(ids[i]) % sizes[i] == 0:
                        firsts[i].append(r)
                    ids[i].append(eid)
                    bodies[i].append(body)
        rows: list[tuple[Any, ...]] = []
        now = time.time()
        for i, plan in enumerate(plans):
            size = self._sizes[i]
            for n, first in enumerate(firsts[i]):
                part = slice(n * size, (n + 1) * size)
                chunk = ids[i][part]
                # due at once: next_attempt_at is the record's time (a float, as the lease's)
                rows.append((chunk[0], plan.id, PENDING, 0, min(first.ts, now), NO_CLAIM, len(chunk), first.ts,
                             first.trace_id, None, ",".join(chunk), zlib.compress(b",".join(bodies[i][part]), 1)))
        return rows

    async def write(self, conn: AsyncConnection, records: Sequence[UsageRecord],
                    stored: Sequence[dict[str, Any]] | None = None) -> int:
        rows = self.rows_for(records, stored)
        if rows:
            await conn.exec_driver_sql(self._insert_sql, rows)
        return sum(r[6] for r in rows)

    # -- the sender -------------------------------------------------------------------------------
    async def _connection(self) -> AsyncConnection:
        """The sender's own connection, held open in autocommit mode: each of its statements is
        atomic by itself, and a transaction or a pool checkout around it would cost more CPU
        than the statement (each is a round trip to aiosqlite's thread)."""
        if self._conn is None:
            conn = await self._engine.connect()
            self._conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    async def _run(self, stmt: tuple[str, tuple[str, ...]], params: dict[str, Any]) -> list[Any]:
        sql, keys = stmt
        async with self._lock:  # one statement at a time on the connection
            conn = await self._connection()
            try:
                result = await conn.exec_driver_sql(sql, tuple(params[k] for k in keys))
                return result.all() if result.returns_rows else []
            except BaseException:
                await self._drop(broken=True)  # a fresh connection next time (the store may have restarted)
                raise

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def _drop(self, broken: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                if broken:
                    await conn.invalidate()
                await conn.close()
            except Exception:  # noqa: S110 - closing a broken connection
                pass

    async def claim(self, sink: str, limit: int, lease_secs: float, done: Batch | None = None) -> Batch | None:
        """Up to `limit` due events of `sink` (whole rows; at least one row), or None. `done`: a
        batch delivered since, deleted first."""
        if done is not None:
            await self.delivered(done)
        now = time.time()
        token = uuid.uuid4().hex
        # rows to look at: enough for `limit` events at the last claim's events a row (each row
        # looked at costs a read), all of them when rows were small
        per_row = self._per_row.get(sink, 1)
        look = min(limit, -(-limit // per_row) + 1)
        rows = await self._run(self._claim, {"sink": sink, "now": now, "rows": look, "limit": limit,
                                             "until": now + lease_secs, "claim": token})
        if not rows:
            self._per_row.pop(sink, None)
            return None
        self._per_row[sink] = max(1, sum(r[2] for r in rows) // len(rows))
        rows.sort(key=lambda r: (r[5], r[0]))
        return Batch(token, ",".join(r[1] or r[0] for r in rows), sum(r[2] for r in rows),
                     b",".join(events_json(r[4]) for r in rows), max(r[3] for r in rows))

    async def delivered(self, batch: Batch) -> None:
        await self._run(self._delivered, {"claim": batch.claim})

    async def failed(self, batch: Batch, error: str, max_attempts: int,
                     delay_for: Callable[[int], float]) -> tuple[int, int]:
        """Count a failed attempt; park what reached max_attempts. Returns events (retrying, parked)."""
        now = time.time()
        rows = await self._run(self._failed, {"claim": batch.claim, "no_claim": NO_CLAIM, "error": error[:500],
                                              "max": max_attempts,
                                              "now": now, "next": now + delay_for(batch.attempts + 1)})
        parked = sum(r[1] for r in rows if r[0] == PARKED)
        return sum(r[1] for r in rows) - parked, parked

    async def pending_count(self) -> dict[str, int]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(t.c.sink, func.sum(t.c.events)).where(t.c.state == PENDING)
                                       .group_by(t.c.sink))).all()
        return {r[0]: int(r[1] or 0) for r in rows}

    # -- operators --------------------------------------------------------------------------------
    async def parked(self, sink: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Parked events, oldest first, one dict each (rows are batches: they are taken apart)."""
        q = select(t).where(t.c.state == PARKED)
        if sink:
            q = q.where(t.c.sink == sink)
        q = q.order_by(t.c.created_at, t.c.event_id)
        out: list[dict[str, Any]] = []
        async with self._engine.connect() as conn:
            result = await conn.stream(q)
            async for r in result.mappings():
                ids = (r["event_ids"] or r["event_id"]).split(",")
                events = orjson.loads(b"[" + events_json(r["payload"]) + b"]")
                cut = len(r["sink"]) + 1
                for eid, event in zip(ids, events, strict=True):
                    out.append({"event_id": eid, "sink": r["sink"], "trace_id": eid[:-cut],
                                "created_at": r["created_at"], "attempts": r["attempts"],
                                "last_error": r["last_error"], "failed_at": r["next_attempt_at"], "event": event})
                    if len(out) >= limit:
                        await result.close()
                        return out
        return out

    async def retry(self, event_ids: list[str] | None = None, sink: str | None = None) -> int:
        """Parked events back to pending, due now, with a fresh attempt count. Returns how many.
        A row holding some of `event_ids` and others is split: only those asked for go."""
        now = time.time()
        back = {"state": PENDING, "attempts": 0, "next_attempt_at": now, "claim": NO_CLAIM}
        cond = t.c.state == PARKED
        if sink:
            cond = and_(cond, t.c.sink == sink)
        async with self._engine.begin() as conn:
            if event_ids is None:
                rows = (await conn.execute(update(t).where(cond).values(**back).returning(t.c.events))).all()
                return sum(r[0] for r in rows)
            wanted = set(event_ids)
            found = 0
            rows = (await conn.execute(select(t.c.event_id, t.c.event_ids, t.c.sink).where(cond))).all()
            for row_id, joined, row_sink in rows:
                ids = (joined or row_id).split(",")
                take = [i for i, eid in enumerate(ids) if eid in wanted]
                if not take:
                    continue
                found += len(take)
                if len(take) == len(ids):
                    await conn.execute(update(t).where(t.c.event_id == row_id).values(**back))
                    continue
                full = (await conn.execute(select(t).where(t.c.event_id == row_id))).mappings().one()
                events = orjson.loads(b"[" + events_json(full["payload"]) + b"]")
                chosen = set(take)
                keep = [i for i in range(len(ids)) if i not in chosen]

                await conn.execute(update(t).where(t.c.event_id == row_id).values(**_part(ids, events, keep)))
                first = ids[take[0]]
                await conn.execute(t.insert().values(
                    event_id=f"retry-{uuid.uuid4().hex}", sink=row_sink, trace_id=first[:-len(row_sink) - 1],
                    created_at=full["created_at"], last_error=full["last_error"], **back, **_part(ids, events, take)))
        return found


def _part(ids: list[str], events: list[Any], idx: list[int]) -> dict[str, Any]:
    """The payload, event_ids and events columns of a row holding events `idx` of a batch."""
    return {"payload": zlib.compress(b",".join(orjson.dumps(events[i]) for i in idx), 1),
            "event_ids": ",".join(ids[i] for i in idx), "events": len(idx)}


def _driver(engine: AsyncEngine, stmt: Any) -> tuple[str, tuple[str, ...]]:
    """A statement compiled once for the engine's dialect: its SQL and its parameters' order,
    run with exec_driver_sql (SQLAlchemy's per-execution work cost more than these statements)."""
    compiled = stmt.compile(dialect=engine.dialect)
    return str(compiled), tuple(compiled.positiontup or ())


def events_json(payload: bytes | str) -> bytes:
    """A row's payload as the events' JSON, comma-joined: zlib-compressed, or (rows from before
    migration 0011) the JSON itself."""
    if isinstance(payload, str):
        return payload.encode()
    payload = bytes(payload)
    return payload if payload[:1] == b"{" else zlib.decompress(payload)
