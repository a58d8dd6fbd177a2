"""Rollups: the ledger writer keeps them current, in the same transaction as the rows it stores.

For a batch of stored rows, `aggregate()` first sums the rows that agree on the hour and every
attribute (identical traffic collapses to a handful of sums here: one dict update per record),
then spreads those sums over their facet rows (hour, day, week and month; total and one per attribute;
pairs of a project or team and another attribute, days and months), the all-attribute day rows,
and the facets' histogram bins (schema.py). `RollupWriter.add()` upserts
them with `ON CONFLICT DO UPDATE SET x = x + excluded.x` (SQLite and Postgres alike), in key
order so that two instances on one Postgres cannot deadlock. Only rows really stored in this
transaction are counted (the writer leaves out replayed rows that were already there).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from tollway.storage.histogram import bin_of
from tollway.storage.schema import (
    MEASURES,
    ROLLUP_DIMS,
    ROLLUP_MAXES,
    ROLLUP_MINS,
    ROLLUP_SUMS,
    usage_daily,
    usage_facets,
    usage_latency,
    pair_value,
)

HOUR, DAY = 3600, 86400
# facet -> index in ROLLUP_DIMS of the attribute it keeps (None: "total", no attribute)
FACETS: dict[str, int | None] = {"total": None, "model": 0, "project": 2, "source": 3, "customer": 4, "key": 5,
                                 "provider": 6, "team": 7}
FACET_OF_DIM: dict[str, str] = {ROLLUP_DIMS[i]: f for f, i in FACETS.items() if i is not None}
# pair facets: "<scope>.<other>" -> (index of the scope's attribute, index of the other's)
PAIR_SCOPES = ("project", "team")
PAIRS: dict[str, tuple[int, int]] = {f"{a}.{b}": (FACETS[a], FACETS[b])  # type: ignore[misc]
                                     for a in PAIR_SCOPES for b in FACETS if b not in ("total", a)}


def month_of(ts: float) -> int:
    """Unix seconds of the start of the UTC month holding `ts`."""
    d = datetime.fromtimestamp(ts, UTC)
    return int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp())


def week_of(ts: float) -> int:
    """Unix seconds of the start of the week (Monday, UTC) holding `ts` (1970-01-01 was a Thursday)."""
    day = int(ts // DAY)
    return (day - (day + 3) % 7) * DAY


def next_month(month: int) -> int:
    d = datetime.fromtimestamp(month, UTC)
    y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return int(datetime(y, m, 1, tzinfo=UTC).timestamp())
_NS = len(ROLLUP_SUMS)
# positions in a row's values: the sums (ROLLUP_SUMS order), then min/max and the last time
_LMIN, _TMIN, _LMAX, _TMAX, _LAST = _NS, _NS + 1, _NS + 2, _NS + 3, _NS + 4
_CACHE_HITS = frozenset({"hit", "semantic_hit"})


class _Acc:
    """Sums, min/max, last time of one rollup row being built; histograms as sparse dicts."""

    __slots__ = ("v", "lat", "ttft")

    def __init__(self) -> None:
        # ROLLUP_SUMS..., latency_min, ttft_min, latency_max, ttft_max, last_ts
        self.v: list[Any] = [0] * _NS + [None, None, None, None, 0.0]
        self.lat: dict[int, int] = {}
        self.ttft: dict[int, int] = {}


def is_error(status: int, error_type: str | None) -> int:
    return 1 if status >= 400 or error_type is not None else 0


def _by_hour(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[Any, ...], _Acc]:
    """Rows summed per (hour, every attribute, status, error)."""
    out: dict[tuple[Any, ...], _Acc] = {}
    for r in rows:
        ts = r["ts"]
        status = r["status"]
        key = (int(ts // HOUR) * HOUR, r["model_served"] or r["model_requested"] or "", r["model_requested"] or "",
               r["project"] or "", r["source"] or "", r["customer"] or "", r["key_id"] or "", r["provider"] or "",
               r.get("team") or "", status, is_error(status, r["error_type"]))
        acc = out.get(key)
        if acc is None:
            acc = out[key] = _Acc()
        v = acc.v
        v[0] += 1
        v[1] += r["input_tokens"] or 0
        v[2] += r["output_tokens"] or 0
        v[3] += r["cached_tokens"] or 0
        v[4] += r["cache_creation_tokens"] or 0
        v[5] += r["reasoning_tokens"] or 0
        v[6] += r["total_tokens"] or 0
        cost = r["cost_nanousd"]
        if cost is not None:
            v[7] += cost
            v[8] += 1
        lat = r["latency_ms"]
        if lat is not None:
            v[9] += 1
            v[10] += lat
            if v[_LMIN] is None or lat < v[_LMIN]:
                v[_LMIN] = lat
            if v[_LMAX] is None or lat > v[_LMAX]:
                v[_LMAX] = lat
            b = bin_of(lat)
            acc.lat[b] = acc.lat.get(b, 0) + 1
        ttft = r["ttft_ms"]
        if ttft is not None:
            v[11] += 1
            v[12] += ttft
            if v[_TMIN] is None or ttft < v[_TMIN]:
                v[_TMIN] = ttft
            if v[_TMAX] is None or ttft > v[_TMAX]:
                v[_TMAX] = ttft
            b = bin_of(ttft)
            acc.ttft[b] = acc.ttft.get(b, 0) + 1
        if r.get("cache") in _CACHE_HITS:  # answered from the response cache
            v[13] += 1
        v[14] += r.get("cost_saved_nanousd") or 0
        if ts > v[_LAST]:
            v[_LAST] = ts
    return out


@dataclass(slots=True)
class RollupBatch:
    facets: list[tuple[Any, ...]]  # usage_facets rows, column order, sorted
    daily: list[tuple[Any, ...]]  # usage_daily rows
    latency: list[tuple[Any, ...]]  # usage_latency rows


def _merge_values(a: list[Any], b: list[Any]) -> None:
    for i in range(_NS):
        a[i] += b[i]
    for i in (_LMIN, _TMIN):
        if b[i] is not None and (a[i] is None or b[i] < a[i]):
            a[i] = b[i]
    for i in (_LMAX, _TMAX, _LAST):
        if b[i] is not None and (a[i] is None or b[i] > a[i]):
            a[i] = b[i]


def _merge_hist(dst: dict[int, int], src: dict[int, int]) -> None:
    for k, n in src.items():
        dst[k] = dst.get(k, 0) + n


def aggregate(rows: Iterable[Mapping[str, Any]]) -> RollupBatch:
    """The rollup rows to add for a batch of stored usage_records rows.

    Diverse traffic makes most targets receive one source: a target is a copy of its first
    source (C-level list and dict copies) and merges only from the second on."""
    facets: dict[tuple[Any, ...], list[Any]] = {}  # key -> [values, latency bins | None, ttft bins | None]
    daily: dict[tuple[Any, ...], list[Any]] = {}
    months: dict[int, tuple[int, int]] = {}  # day -> (its month, its week)

    def add(fkey: tuple[Any, ...], acc: _Acc, hist: bool) -> None:
        target = facets.get(fkey)
        if target is None:
            facets[fkey] = [acc.v.copy(), dict(acc.lat) if hist else None, dict(acc.ttft) if hist else None]
            return
        _merge_values(target[0], acc.v)
        if hist:
            _merge_hist(target[1], acc.lat)
            _merge_hist(target[2], acc.ttft)

    for (hour, *rest), acc in _by_hour(rows).items():
        dims, status, err = rest[:-2], rest[-2], rest[-1]
        day = hour - hour % DAY
        got_month = months.get(day)
        if got_month is None:
            got_month = months[day] = (month_of(day), week_of(day))
        month, week = got_month
        dkey = (day, *dims, status, err)
        got = daily.get(dkey)
        if got is None:
            daily[dkey] = acc.v.copy()
        else:
            _merge_values(got, acc.v)
        for facet, idx in FACETS.items():
            value = "" if idx is None else dims[idx]
            # histograms: per day, week and month, and per hour for the total
            add(("h", facet, hour, value, status, err), acc, idx is None)
            add(("d", facet, day, value, status, err), acc, True)
            add(("w", facet, week, value, status, err), acc, True)
            add(("m", facet, month, value, status, err), acc, True)
        for pair, (ia, ib) in PAIRS.items():  # sums only (their percentiles come from the records)
            value = pair_value(dims[ia], dims[ib])
            add(("d", pair, day, value, status, err), acc, False)
            add(("m", pair, month, value, status, err), acc, False)
    latency: list[tuple[Any, ...]] = []
    out_facets: list[tuple[Any, ...]] = []
    for fkey in sorted(facets):
        values, lat, ttft = facets[fkey]
        out_facets.append((*fkey, *values))
        if lat:
            latency.extend((*fkey, "l", b, n) for b, n in sorted(lat.items()))
        if ttft:
            latency.extend((*fkey, "t", b, n) for b, n in sorted(ttft.items()))
    return RollupBatch(facets=out_facets, daily=[(*k, *daily[k]) for k in sorted(daily)], latency=latency)


def upsert_statement(table: Table, dialect: Dialect) -> Any:
    """INSERT .. ON CONFLICT (key) DO UPDATE adding sums and merging min/max, for this dialect."""
    mod = {"sqlite": sqlite, "postgresql": postgresql}.get(dialect.name)
    if mod is None:
        raise ValueError(f"unsupported store dialect: {dialect.name}")
    stmt = mod.insert(table)
    ex, t = stmt.excluded, table.c
    key = [c.name for c in table.primary_key.columns]
    sums = ("n",) if table is usage_latency else ROLLUP_SUMS
    sets: dict[str, Any] = {c: t[c] + ex[c] for c in sums}
    if table is not usage_latency:
        lite = dialect.name == "sqlite"
        for c in ROLLUP_MINS:
            sets[c] = (func.min(func.coalesce(t[c], ex[c]), func.coalesce(ex[c], t[c])) if lite
                       else func.least(t[c], ex[c]))
        for c in ROLLUP_MAXES:
            sets[c] = (func.max(func.coalesce(t[c], ex[c]), func.coalesce(ex[c], t[c])) if lite
                       else func.greatest(t[c], ex[c]))
    return stmt.on_conflict_do_update(index_elements=key, set_=sets)


COLUMNS: dict[str, tuple[str, ...]] = {
    "usage_facets": ("grain", "facet", "bucket", "value", "status", "error", *MEASURES),
    "usage_daily": ("day", *ROLLUP_DIMS, "status", "error", *MEASURES),
    "usage_latency": ("grain", "facet", "bucket", "value", "status", "error", "metric", "bin", "n"),
}


class _Upsert:
    """One table's upsert: on SQLite compiled once and run with plain tuples (SQLAlchemy's
    per-row parameter processing costs more than the upsert itself)."""

    def __init__(self, table: Table, dialect: Dialect) -> None:
        self.stmt = upsert_statement(table, dialect)
        self.columns = COLUMNS[table.name]
        self.driver: tuple[str, tuple[int, ...]] | None = None
        if dialect.name == "sqlite":
            compiled = self.stmt.compile(dialect=dialect)
            order = {c: i for i, c in enumerate(self.columns)}
            self.driver = str(compiled), tuple(order[name] for name in compiled.positiontup)

    async def run(self, conn: Any, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.driver is not None:
            sql, idx = self.driver
            if list(idx) == list(range(len(idx))):
                await conn.exec_driver_sql(sql, list(rows))
            else:
                await conn.exec_driver_sql(sql, [tuple(r[i] for i in idx) for r in rows])
        else:
            await conn.execute(self.stmt, [dict(zip(self.columns, r, strict=True)) for r in rows])


class RollupWriter:
    """The ledger writer's batch hook (see LedgerWriter): adds stored rows to the rollups."""

    def __init__(self, dialect: Dialect) -> None:
        self._facets = _Upsert(usage_facets, dialect)
        self._daily = _Upsert(usage_daily, dialect)
        self._latency = _Upsert(usage_latency, dialect)

    async def add(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        batch = aggregate(rows)
        await self._facets.run(conn, batch.facets)
        await self._daily.run(conn, batch.daily)
        await self._latency.run(conn, batch.latency)
