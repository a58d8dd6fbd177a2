"""Read side of the ledger: the records behind `GET /v1/records` (stats: see stats.py).

Everything is computed in SQL that runs unchanged on SQLite and Postgres.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.storage.rows import api_row
from tollway.storage.stats import InvalidStatsQuery, stats
from tollway.storage.schema import usage_records as t

MAX_LIMIT = 1000

__all__ = ["InvalidQuery", "get_record", "list_records", "stats"]

# A filter or cursor the caller sent is malformed (the API answers 400); stats raise it too.
InvalidQuery = InvalidStatsQuery


# -- filters --------------------------------------------------------------------------------


def _is_error() -> ColumnElement[bool]:
    # A 200 whose stream broke, or a call that never got a status, is still an error.
    return or_(t.c.status >= 400, t.c.error_type.is_not(None))


def _status_filter(status: int | str) -> ColumnElement[bool]:
    if isinstance(status, str):
        wanted = status.strip().lower()
        if wanted == "ok":
            return and_(t.c.status < 400, t.c.error_type.is_(None))
        if wanted == "error":
            return _is_error()
        if not (wanted.isascii() and wanted.isdigit() and len(wanted) <= 3):
            raise InvalidQuery(f"status must be an HTTP status code, 'ok' or 'error', not {status[:20]!r}")
        status = int(wanted)
    if isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= 999:
        raise InvalidQuery(f"status must be an HTTP status code, 'ok' or 'error', not {status!r}")
    return t.c.status == status


def _filters(
    *,
    project: str | None,
    source: str | None,
    customer: str | None,
    model: str | None,
    since: float | None,
    until: float | None,
    key_id: str | None = None,
    status: int | str | None = None,
    provider: str | None = None,
    team: str | None = None,
) -> list[ColumnElement[bool]]:
    """AND-ed conditions; a None argument does not filter."""
    conds: list[ColumnElement[bool]] = []
    for column, value in (
        (t.c.project, project),
        (t.c.source, source),
        (t.c.customer, customer),
        (t.c.key_id, key_id),
        (t.c.provider, provider),
        (t.c.team, team),
    ):
        if value is not None:
            conds.append(column == value)
    if model is not None:
        conds.append(or_(t.c.model_requested == model, t.c.model_served == model))
    if since is not None:
        conds.append(t.c.ts >= float(since))
    if until is not None:
        conds.append(t.c.ts < float(until))
    if status is not None:
        conds.append(_status_filter(status))
    return conds


# -- records --------------------------------------------------------------------------------


def encode_cursor(ts: float, trace_id: str) -> str:
    """Opaque position after the row (ts, trace_id) in newest-first order."""
    return base64.urlsafe_b64encode(orjson.dumps([ts, trace_id])).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, trace_id = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidQuery("invalid cursor") from exc
    if (not isinstance(ts, int | float) or isinstance(ts, bool) or not math.isfinite(ts)
            or not isinstance(trace_id, str) or len(trace_id) > 64 or "\x00" in trace_id):
        raise InvalidQuery("invalid cursor")
    return float(ts), trace_id


async def list_records(
    engine: AsyncEngine,
    *,
    project: str | None = None,
    source: str | None = None,
    customer: str | None = None,
    model: str | None = None,
    status: int | str | None = None,
    since: float | None = None,
    until: float | None = None,
    key_id: str | None = None,
    provider: str | None = None,
    team: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    after_seq: int | None = None,
    failure: str | None = None,
    deployment: str | None = None,
) -> dict[str, Any]:
    """Records newest first (ts desc, trace_id desc), keyset-paginated; or, with
    `after_seq`, in insertion order from the record after that `seq` on.

    `model` matches the requested or the served model; `status` is a code, "ok" or "error"
    (the same definition of error as `stats`); `since` is inclusive, `until` exclusive.
    The cursor is a position, not an offset, so pages stay stable while rows are inserted.
    `after_seq` is for exporters: `seq` grows with every row stored, in commit order, so
    polling with the last `next_after_seq` sees every record once, however long its call
    ran or however late a spool replay stored it (a `since` on start time cannot).
    Raises `InvalidQuery` for a bad status or cursor.
    """
    limit = max(1, min(MAX_LIMIT, int(limit)))
    conds = _filters(
        project=project, source=source, customer=customer, model=model,
        since=since, until=until, key_id=key_id, status=status, provider=provider, team=team,
    )  # fmt: skip
    if failure is not None:  # GET /v1/errors: "any", "customer" or "mitigated"
        conds.append(t.c.failure.is_not(None) if failure == "any" else t.c.failure == failure)
    if deployment is not None:
        conds.append(t.c.deployment == deployment)
    if after_seq is not None:
        stmt = select(t).where(t.c.seq > int(after_seq), *conds).order_by(t.c.seq.asc()).limit(limit)
        async with engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        last = rows[-1]["seq"] if rows else int(after_seq)
        return {"data": [api_row(r) for r in rows], "next_cursor": None, "next_after_seq": last}
    if cursor:
        ts, trace_id = decode_cursor(cursor)
        conds.append(or_(t.c.ts < ts, and_(t.c.ts == ts, t.c.trace_id < trace_id)))
    stmt = (
        select(t)
        .where(*conds)
        .order_by(t.c.ts.desc(), t.c.trace_id.desc())
        .limit(limit + 1)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).mappings().all()
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = encode_cursor(last["ts"], last["trace_id"])
    return {"data": [api_row(r) for r in page], "next_cursor": next_cursor, "next_after_seq": None}


async def get_record(engine: AsyncEngine, trace_id: str) -> dict[str, Any] | None:
    """One record in the `list_records` row format, or None when there is no such trace."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(t).where(t.c.trace_id == trace_id))).mappings().first()
    return None if row is None else api_row(row)
