"""The billing outbox table: events enter with their usage records, senders lease them out.

`write()` runs inside the ledger's transaction (see `storage.ledger`), so an event exists if
and only if its usage record was stored. It inserts with ON CONFLICT DO NOTHING on the
event id, and delivered events stay (as `delivered`) for `keep_delivered_days`: a record
replayed from the spool after it had in fact been stored cannot enqueue its events again.

Leasing is one UPDATE: due rows get `next_attempt_at` pushed past the send timeout and a
claim token, so another sender (worker, instance) skips them; a sender that dies leaves
them to be taken again once the lease runs out. On Postgres the rows are picked with
FOR UPDATE SKIP LOCKED, so concurrent senders take disjoint batches without waiting; SQLite
runs one writer at a time anyway.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tollway.billing.events import Clock, SinkPlan, payloads
from tollway.config import BillingSinkSettings
from tollway.storage.schema import billing_outbox as t
from tollway.usage import UsageRecord

PENDING, PARKED, DELIVERED = "pending", "parked", "delivered"
COLUMNS = ("event_id", "sink", "trace_id", "created_at", "state", "attempts", "next_attempt_at", "claim",
           "last_error", "payload")


@dataclass(slots=True)
class LeasedEvent:
    event_id: str
    attempts: int
    payload: str


class Outbox:
    def __init__(self, engine: AsyncEngine, sinks: list[BillingSinkSettings]) -> None:
        self._engine = engine
        self.sinks = sinks
        dialect = {"sqlite": sqlite, "postgresql": postgresql}[engine.dialect.name]
        self._insert = dialect.insert(t).on_conflict_do_nothing(index_elements=["event_id"])
        # The sender's statements, built once: building one per call (and its cache key) cost
        # more CPU than the UPDATE itself.
        due = and_(t.c.sink == bindparam("p_sink"), t.c.state == PENDING, t.c.next_attempt_at <= bindparam("p_now"))
        ids = (select(t.c.event_id).where(due).order_by(t.c.next_attempt_at).limit(bindparam("p_limit"))
               .with_for_update(skip_locked=True).scalar_subquery())
        self._lease = (update(t).where(t.c.event_id.in_(ids), due)
                       .values(next_attempt_at=bindparam("p_until"), claim=bindparam("p_claim"))
                       .returning(t.c.event_id, t.c.attempts, t.c.payload, t.c.created_at))
        self._delivered = (update(t).where(t.c.event_id.in_(bindparam("p_ids", expanding=True)), t.c.state == PENDING)
                           .values(state=DELIVERED, next_attempt_at=bindparam("p_now"), claim=None, last_error=None))
        self._plans = [SinkPlan(s) for s in sinks]
        self._clock = Clock()
        # SQLite: the INSERT compiled once, executed with plain tuples (as the ledger's own
        # insert; SQLAlchemy's per-row parameter handling cost more than building the events)
        self._driver_sql: str | None = None
        if engine.dialect.name == "sqlite":
            compiled = self._insert.compile(dialect=engine.dialect)
            if compiled.positiontup and tuple(compiled.positiontup) == COLUMNS:
                self._driver_sql = str(compiled)

    # -- in the ledger's transaction --------------------------------------------------------------
    def rows_for(self, records: Sequence[UsageRecord]) -> list[tuple[Any, ...]]:
        """The outbox rows of `records`, as tuples in `COLUMNS` order."""
        rows: list[tuple[Any, ...]] = []
        plans, clock = self._plans, self._clock
        for r in records:
            if not r.customer:  # the common case, decided without a call
                continue
            for plan, eid, payload in payloads(r, plans, clock):
                rows.append((eid, plan.id, r.trace_id, r.ts, PENDING, 0, 0.0, None, None, payload.decode()))
        return rows

    async def write(self, conn: AsyncConnection, records: Sequence[UsageRecord]) -> int:
        rows = self.rows_for(records)
        if rows:
            if self._driver_sql is not None:
                await conn.exec_driver_sql(self._driver_sql, rows)
            else:
                await conn.execute(self._insert, [dict(zip(COLUMNS, row, strict=True)) for row in rows])
        return len(rows)

    # -- the sender -------------------------------------------------------------------------------
    async def lease(self, sink: str, limit: int, lease_secs: float) -> list[LeasedEvent]:
        now = time.time()
        params = {"p_sink": sink, "p_now": now, "p_limit": limit, "p_until": now + lease_secs,
                  "p_claim": uuid.uuid4().hex}
        async with self._engine.begin() as conn:
            rows = (await conn.execute(self._lease, params)).all()
        rows.sort(key=lambda r: (r.created_at, r.event_id))
        return [LeasedEvent(r.event_id, r.attempts, r.payload) for r in rows]

    async def delivered(self, event_ids: list[str]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(self._delivered, {"p_ids": event_ids, "p_now": time.time()})

    async def failed(self, events: list[LeasedEvent], error: str, max_attempts: int,
                     delay_for: Any) -> tuple[int, int]:
        """Count a failed attempt; park what reached max_attempts. Returns (retrying, parked)."""
        now = time.time()
        retrying = parked = 0
        error = error[:500]
        async with self._engine.begin() as conn:
            for ev in events:
                attempts = ev.attempts + 1
                if attempts >= max_attempts:
                    values = {"state": PARKED, "attempts": attempts, "next_attempt_at": now, "claim": None,
                              "last_error": error}
                    parked += 1
                else:
                    values = {"attempts": attempts, "next_attempt_at": now + delay_for(attempts), "claim": None,
                              "last_error": error}
                    retrying += 1
                await conn.execute(update(t).where(t.c.event_id == ev.event_id, t.c.state == PENDING)
                                   .values(**values))
        return retrying, parked

    async def pending_count(self) -> dict[str, int]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(t.c.sink, func.count()).where(t.c.state == PENDING)
                                       .group_by(t.c.sink))).all()
        return {r[0]: int(r[1]) for r in rows}

    async def prune(self, older_than: float, batch: int = 500) -> int:
        """Forget delivered events older than `older_than` (unix seconds), a batch at a time."""
        ids = (select(t.c.event_id).where(t.c.state == DELIVERED, t.c.next_attempt_at < older_than)
               .limit(batch).scalar_subquery())
        async with self._engine.begin() as conn:
            result = await conn.execute(t.delete().where(t.c.event_id.in_(ids)))
        return int(result.rowcount or 0)

    # -- operators --------------------------------------------------------------------------------
    async def parked(self, sink: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        q = select(t).where(t.c.state == PARKED)
        if sink:
            q = q.where(t.c.sink == sink)
        q = q.order_by(t.c.created_at, t.c.event_id).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
        return [{"event_id": r["event_id"], "sink": r["sink"], "trace_id": r["trace_id"],
                 "created_at": r["created_at"], "attempts": r["attempts"], "last_error": r["last_error"],
                 "failed_at": r["next_attempt_at"], "event": orjson.loads(r["payload"])} for r in rows]

    async def retry(self, event_ids: list[str] | None = None, sink: str | None = None) -> int:
        """Parked events back to pending, due now, with a fresh attempt count."""
        cond = t.c.state == PARKED
        if event_ids is not None:
            cond = and_(cond, t.c.event_id.in_(event_ids))
        if sink:
            cond = and_(cond, t.c.sink == sink)
        async with self._engine.begin() as conn:
            result = await conn.execute(update(t).where(cond).values(state=PENDING, attempts=0,
                                                                     next_attempt_at=time.time(), claim=None))
        return int(result.rowcount or 0)
