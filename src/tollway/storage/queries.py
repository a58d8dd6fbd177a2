"""Read side of the ledger, behind `GET /v1/records` and `GET /v1/stats`.

Everything is computed in SQL that runs unchanged on SQLite and Postgres: money sums are
integer nano-USD sums (exact), and latency percentiles are nearest-rank percentiles picked
with ROW_NUMBER() windows instead of PERCENTILE_CONT, which SQLite lacks.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tollway.storage.money import decimal_from_nanousd, format_usd
from tollway.storage.rows import api_row
from tollway.storage.schema import usage_records as t

MAX_LIMIT = 1000
PERCENTILES = (50, 95)


class InvalidQuery(ValueError):
    """A filter or cursor the caller sent is malformed (the API answers 400)."""


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
    team: str | None = None,
) -> list[ColumnElement[bool]]:
    """AND-ed conditions; a None argument does not filter."""
    conds: list[ColumnElement[bool]] = []
    for column, value in (
        (t.c.project, project),
        (t.c.source, source),
        (t.c.customer, customer),
        (t.c.key_id, key_id),
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
    team: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    after_seq: int | None = None,
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
        since=since, until=until, key_id=key_id, status=status, team=team,
    )  # fmt: skip
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


# -- stats ----------------------------------------------------------------------------------


def _aggregate(group: ColumnElement[Any] | None, conds: list[ColumnElement[bool]]) -> Any:
    """One SELECT: per group (or overall), counts and sums plus nearest-rank latency
    percentiles. The rank of percentile p over n values is ceil(p*n/100), picked without
    division as the row number rn with rn*100 >= p*n > (rn-1)*100."""
    partition = [group] if group is not None else None
    key = [group.label("k")] if group is not None else []
    ranked = (
        select(
            *key,
            t.c.status,
            t.c.error_type,
            t.c.input_tokens,
            t.c.output_tokens,
            t.c.cached_tokens,
            t.c.total_tokens,
            t.c.cost_nanousd,
            t.c.cache,
            t.c.cost_saved_nanousd,
            t.c.latency_ms,
            func.row_number()
            .over(partition_by=partition, order_by=t.c.latency_ms.asc().nulls_last())
            .label("lat_rn"),
            func.count(t.c.latency_ms).over(partition_by=partition).label("lat_n"),
        )
        .where(*conds)
        .subquery("ranked")
    )
    r = ranked.c
    errors = or_(r.status >= 400, r.error_type.is_not(None))

    def percentile(p: int) -> Any:
        hit = and_(r.lat_rn * 100 >= r.lat_n * p, (r.lat_rn - 1) * 100 < r.lat_n * p)
        return func.max(case((hit, r.latency_ms))).label(f"latency_ms_p{p}")

    stmt = select(
        *([r.k] if group is not None else []),
        func.count().label("requests"),
        func.sum(case((errors, 1), else_=0)).label("errors"),
        func.sum(r.input_tokens).label("input_tokens"),
        func.sum(r.output_tokens).label("output_tokens"),
        func.sum(r.cached_tokens).label("cached_tokens"),
        func.sum(r.total_tokens).label("total_tokens"),
        func.sum(r.cost_nanousd).label("cost_nanousd"),
        func.count(r.cost_nanousd).label("priced"),
        func.sum(case((r.cache.in_(("hit", "semantic_hit")), 1), else_=0)).label("cache_hits"),
        func.sum(r.cost_saved_nanousd).label("cost_saved_nanousd"),
        *(percentile(p) for p in PERCENTILES),
    )
    return stmt.group_by(r.k) if group is not None else stmt


def _entry(row: Mapping[str, Any], key_name: str | None) -> dict[str, Any]:
    requests = int(row["requests"] or 0)
    entry: dict[str, Any] = {key_name: row["k"]} if key_name else {}
    entry.update(
        requests=requests,
        errors=int(row["errors"] or 0),
        input_tokens=int(row["input_tokens"] or 0),
        output_tokens=int(row["output_tokens"] or 0),
        cached_tokens=int(row["cached_tokens"] or 0),
        total_tokens=int(row["total_tokens"] or 0),
        # Sum of the known costs; `unpriced` says how many calls it leaves out.
        cost_usd=format_usd(decimal_from_nanousd(row["cost_nanousd"] or 0)),
        unpriced=requests - int(row["priced"] or 0),
        # answered from the response cache (cost 0), and what those answers cost when they were made
        cache_hits=int(row["cache_hits"] or 0),
        cost_saved_usd=format_usd(decimal_from_nanousd(row["cost_saved_nanousd"] or 0)),
        **{f"latency_ms_p{p}": row[f"latency_ms_p{p}"] for p in PERCENTILES},
    )
    return entry


async def _groups(
    conn: AsyncConnection, name: str, group: ColumnElement[Any], conds: list[ColumnElement[bool]]
) -> list[dict[str, Any]]:
    rows = (await conn.execute(_aggregate(group, conds))).mappings().all()
    entries = [_entry(row, name) for row in rows]
    entries.sort(key=lambda e: (-e["requests"], e[name] is None, e[name] or ""))
    return entries


async def stats(
    engine: AsyncEngine,
    *,
    project: str | None = None,
    source: str | None = None,
    customer: str | None = None,
    model: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> dict[str, Any]:
    """Totals and breakdowns by model (served, else requested), project and source.

    Each entry: requests, errors (status >= 400 or an error_type), input/output/cached/total
    tokens, cost_usd (exact decimal string, sum of known costs), unpriced (calls without a
    cost), cache_hits and cost_saved_usd (response cache), latency_ms_p50/p95 (nearest rank,
    null without latencies). Groups are sorted by
    requests, most first; a null key is its own group.
    """
    conds = _filters(
        project=project, source=source, customer=customer, model=model, since=since, until=until
    )
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":  # one snapshot for all four queries
            await conn.execution_options(isolation_level="REPEATABLE READ")
        totals_row = (await conn.execute(_aggregate(None, conds))).mappings().one()
        return {
            "totals": _entry(totals_row, None),
            "by_model": await _groups(
                conn, "model", func.coalesce(t.c.model_served, t.c.model_requested), conds
            ),
            "by_project": await _groups(conn, "project", t.c.project, conds),
            "by_source": await _groups(conn, "source", t.c.source, conds),
        }
