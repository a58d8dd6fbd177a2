"""Request and response bodies in the ledger (`[store] log_bodies`, per key or project).

Off by default: the ledger keeps metadata only. When on for a call, `BodyCapture` keeps the
request as forwarded (after the sanitizer's redactions) and the bytes sent back to the
client, each capped at `[store] body_max_bytes` (the rest is dropped and the row says so).
`BodyStore` takes them off the request path: a background task redacts credentials (and PII
when the call's policy redacts PII) from both, whatever the call's own sanitization was, and
inserts them in batches into `record_bodies`; another deletes rows older than
`body_retention_days`, a few hundred at a time, so retention never locks the table for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.storage.rows import storable_text
from tollway.storage.schema import record_bodies

if TYPE_CHECKING:
    from tollway.api.asgi import Send
    from tollway.guard.sanitizer import Guard

log = logging.getLogger(__name__)

DELETE_BATCH = 500
OFF_LOOP_BYTES = 64 * 1024  # bodies larger than this are redacted in a worker thread (body_max_bytes goes to 16 MB)


@dataclass(slots=True)
class BodyCapture:
    cap: int
    pii: bool  # the call's policy redacts PII: stored bodies lose it too
    response: bytearray = field(default_factory=bytearray)
    response_truncated: bool = False

    def wrap(self, send: "Send") -> "Send":
        """`send` that also keeps what it sends (up to the cap)."""

        async def capturing(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                self.add(message.get("body") or b"")
            await send(message)

        return capturing

    def add(self, chunk: bytes) -> None:
        room = self.cap - len(self.response)
        if len(chunk) > room:
            self.response_truncated = True
            chunk = chunk[:max(room, 0)]
        if chunk:
            self.response += chunk


@dataclass(slots=True)
class _Pending:
    trace_id: str
    ts: float
    request: bytes
    request_truncated: bool
    response: bytes
    response_truncated: bool
    pii: bool


def _text(b: bytes) -> str:
    # NUL is valid UTF-8 but Postgres refuses it in text: one such body would cost its whole batch
    return storable_text(b.decode("utf-8", "replace"))


class BodyStore:
    def __init__(self, engine: AsyncEngine, guard: "Guard", *, cap: int, retention_days: float,
                 flush_interval: float = 0.25, sweep_interval: float = 300.0) -> None:
        self._engine = engine
        self._guard = guard
        self.cap = cap
        self._retention = retention_days * 86400.0
        self._flush_interval = flush_interval
        self._sweep_interval = sweep_interval
        self._queue: deque[_Pending] = deque()
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    def capture(self, pii: bool) -> BodyCapture:
        return BodyCapture(self.cap, pii)

    def put(self, trace_id: str, ts: float, request: bytes, capture: BodyCapture) -> None:
        """Hot-path side: one append. Bounded: past 10,000 waiting bodies, new ones are dropped."""
        if len(self._queue) >= 10_000:
            log.warning("bodies: queue full, body of trace %s not stored", trace_id)
            return
        req_trunc = len(request) > self.cap
        self._queue.append(_Pending(trace_id, ts, request[:self.cap], req_trunc, bytes(capture.response),
                                    capture.response_truncated, capture.pii))

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._writer()), asyncio.create_task(self._sweeper())]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(200, len(self._queue)))]
                rows = []
                for p in batch:  # scanning is CPU work: let requests run between bodies, large ones off the loop
                    if len(p.request) + len(p.response) > OFF_LOOP_BYTES:
                        rows.append(await asyncio.to_thread(self._row, p))
                    else:
                        rows.append(self._row(p))
                        await asyncio.sleep(0)
                try:
                    async with self._engine.begin() as conn:
                        await conn.execute(insert(record_bodies), rows)
                except Exception:
                    log.exception("bodies: %d bodies could not be stored", len(rows))

    def _row(self, p: _Pending) -> dict[str, Any]:
        redact = self._guard.redact_for_storage
        return {"trace_id": p.trace_id, "ts": p.ts, "request": _text(redact(p.request, p.pii)),
                "response": _text(redact(p.response, p.pii)), "request_truncated": p.request_truncated,
                "response_truncated": p.response_truncated}

    async def _writer(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            if self._queue:
                await self.flush()

    async def _sweeper(self) -> None:
        while True:
            try:
                await self.sweep(time.time() - self._retention)
            except Exception:
                log.exception("bodies: retention sweep failed")
            await asyncio.sleep(self._sweep_interval)

    async def sweep(self, cutoff: float) -> int:
        """Delete bodies older than `cutoff`, DELETE_BATCH rows per transaction. Returns how many."""
        total = 0
        while True:
            old = select(record_bodies.c.trace_id).where(record_bodies.c.ts < cutoff).limit(DELETE_BATCH)
            async with self._engine.begin() as conn:
                n = (await conn.execute(delete(record_bodies).where(
                    record_bodies.c.trace_id.in_(old.scalar_subquery())))).rowcount or 0
            total += n
            if n < DELETE_BATCH:
                return total
            await asyncio.sleep(0)

    async def get(self, trace_id: str) -> dict[str, Any] | None:
        await self.flush()
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(record_bodies).where(record_bodies.c.trace_id == trace_id))).first()
        if row is None:
            return None
        m = row._mapping
        return {"request": m["request"], "response": m["response"],
                "request_truncated": m["request_truncated"], "response_truncated": m["response_truncated"]}
