"""Retention: raw records older than `[store] retention_days` are deleted in small batches,
in the background; the rollups (and so /v1/stats, the portal and `tollway usage`) keep them.

Each batch is its own short transaction (a few thousand rows, oldest first, by the ts index)
with a pause after it, so the ledger writer and readers are never held up for long. On SQLite
the freed pages go back to the file system with `PRAGMA incremental_vacuum` (new stores are
created with auto_vacuum = INCREMENTAL; an older file is converted once, with one VACUUM, the
first time retention runs). Several instances on one Postgres may all run it: deletes by
primary key of rows below a horizon are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.storage.schema import usage_records as t
from tollway.tasks import cancel_and_wait

log = logging.getLogger("tollway")


class Retention:
    def __init__(self, engine: AsyncEngine, days: float, *, batch: int = 2000, pause: float = 0.2,
                 interval: float = 600.0) -> None:
        self._engine = engine
        self.days = days
        self._batch = batch
        self._pause = pause
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._vacuum_checked = False
        self.deleted = 0

    def horizon(self, now: float | None = None) -> float:
        """Records before this time may be gone (stats count those hours whole, from rollups)."""
        return (time.time() if now is None else now) - self.days * 86400

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tollway-retention")

    async def stop(self) -> None:
        self._stop.set()
        await cancel_and_wait(self._task, swallow_errors=True)
        self._task = None

    async def run_once(self) -> int:
        """Delete everything before the horizon, batch by batch; returns how many rows went."""
        sqlite = self._engine.dialect.name == "sqlite"
        if sqlite and not self._vacuum_checked:
            await self._ensure_incremental_vacuum()
        cut = self.horizon()
        total = 0
        while not self._stop.is_set():
            oldest = select(t.c.trace_id).where(t.c.ts < cut).order_by(t.c.ts).limit(self._batch)
            async with self._engine.begin() as conn:
                n = (await conn.execute(delete(t).where(t.c.trace_id.in_(oldest)))).rowcount or 0
            total += n
            if sqlite and n:
                async with self._engine.connect() as conn:
                    await conn.exec_driver_sql("PRAGMA incremental_vacuum(2000)")
            if n < self._batch:
                break
            await asyncio.sleep(self._pause)
        self.deleted += total
        if total:
            log.info("retention: deleted %d record(s) older than %g day(s) (rollups keep their totals)",
                     total, self.days)
        return total

    async def _ensure_incremental_vacuum(self) -> None:
        self._vacuum_checked = True
        async with self._engine.connect() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA auto_vacuum")).scalar()
            if mode == 2:
                return
            log.warning("retention: converting the SQLite store to incremental vacuum (one VACUUM; writes wait)")
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("PRAGMA auto_vacuum = INCREMENTAL")
            await conn.execute(text("VACUUM"))

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("retention: a delete batch failed; trying again later")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._stop.wait()
