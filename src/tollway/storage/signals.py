"""Quality feedback signals: insert one, summarise per model (joined with the call's record)."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.storage.schema import signals, usage_records


async def add_signal(engine: AsyncEngine, trace_id: str, score: float, label: str | None,
                     key_id: str | None) -> dict[str, Any]:
    row = {"trace_id": trace_id, "ts": time.time(), "score": score, "label": label, "key_id": key_id}
    async with engine.begin() as conn:
        await conn.execute(signals.insert().values(**row))
    return row


async def quality_by_model(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Per (provider, served model): mean score, count, and the labels' counts."""
    s, r = signals, usage_records
    model = sa.func.coalesce(r.c.model_served, r.c.model_requested)
    q = (sa.select(r.c.provider, model.label("model"), sa.func.avg(s.c.score).label("score"),
                   sa.func.count().label("count"), sa.func.sum(sa.case((s.c.score >= 0.5, 1), else_=0)).label("up"))
         .select_from(s.join(r, r.c.trace_id == s.c.trace_id))
         .group_by(r.c.provider, model))
    async with engine.connect() as conn:
        rows = (await conn.execute(q)).mappings().all()
    return [{"provider": row["provider"], "model": row["model"], "score": float(row["score"]),
             "count": int(row["count"]), "positive": int(row["up"] or 0)} for row in rows]


async def pending_count(engine: AsyncEngine) -> int:
    """Signals whose call has no record (yet): not in the summary."""
    s, r = signals, usage_records
    q = sa.select(sa.func.count()).select_from(s.outerjoin(r, r.c.trace_id == s.c.trace_id)).where(
        r.c.trace_id.is_(None))
    async with engine.connect() as conn:
        return int((await conn.execute(q)).scalar() or 0)
