"""Rollups: the ledger writer keeps `usage_rollup` current, in the same transaction as the rows.

For each batch of stored rows, `aggregate()` sums them per hour and every dimension (the "all"
face), then derives the smaller faces ("total", and one per dimension) and the day grain from
those sums, not from each row again: per record it costs one dict update. `RollupWriter.add()`
upserts the result with `ON CONFLICT DO UPDATE SET x = x + excluded.x` (SQLite and Postgres
alike); rows are written in key order so two instances on one Postgres cannot deadlock.
Only rows really stored in this transaction are counted (the writer leaves out replayed rows
that were already there), so a total is never counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from operator import add
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from tollway.storage.histogram import NBINS, bin_of
from tollway.storage.schema import (
    LATENCY_BINS,
    ROLLUP_DIMS,
    ROLLUP_MAXES,
    ROLLUP_MINS,
    ROLLUP_SUMS,
    TTFT_BINS,
    usage_rollup,
)

GRAINS: tuple[tuple[str, int], ...] = (("h", 3600), ("d", 86400))
# face -> index of the dimension it keeps in ROLLUP_DIMS (None: none; "all" keeps every one)
FACES: dict[str, int | None] = {"all": None, "total": None, "model": 0, "project": 2, "source": 3,
                                "customer": 4, "key": 5, "provider": 6}
# what each face answers: the dimensions a query may filter or group by on it
FACE_DIMS: dict[str, frozenset[str]] = {
    "all": frozenset(ROLLUP_DIMS), "total": frozenset(),
    **{f: frozenset({ROLLUP_DIMS[i]}) for f, i in FACES.items() if i is not None}}
COLUMNS: tuple[str, ...] = ("grain", "face", "bucket", *ROLLUP_DIMS, "status", "error", *ROLLUP_SUMS, *ROLLUP_MINS,
                            *ROLLUP_MAXES, *LATENCY_BINS, *TTFT_BINS)
KEY_COLUMNS: tuple[str, ...] = ("grain", "face", "bucket", *ROLLUP_DIMS, "status", "error")
_NS = len(ROLLUP_SUMS)
_EMPTY_DIMS = ("",) * len(ROLLUP_DIMS)


class _Acc:
    """Sums, min/max and sparse histograms of one rollup row being built."""

    __slots__ = ("sums", "lmin", "tmin", "lmax", "tmax", "last", "lat", "ttft")

    def __init__(self) -> None:
        self.sums: list[Any] = [0] * _NS
        self.lmin: float | None = None
        self.tmin: float | None = None
        self.lmax: float | None = None
        self.tmax: float | None = None
        self.last = 0.0
        self.lat: dict[int, int] = {}
        self.ttft: dict[int, int] = {}

    def merge(self, o: "_Acc") -> None:
        self.sums = list(map(add, self.sums, o.sums))
        self.lmin = _lo(self.lmin, o.lmin)
        self.tmin = _lo(self.tmin, o.tmin)
        self.lmax = _hi(self.lmax, o.lmax)
        self.tmax = _hi(self.tmax, o.tmax)
        self.last = max(self.last, o.last)
        for src, dst in ((o.lat, self.lat), (o.ttft, self.ttft)):
            for b, n in src.items():
                dst[b] = dst.get(b, 0) + n


def _lo(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _hi(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def is_error(status: int, error_type: str | None) -> int:
    return 1 if status >= 400 or error_type is not None else 0


def _by_hour(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[Any, ...], _Acc]:
    out: dict[tuple[Any, ...], _Acc] = {}
    for r in rows:
        ts = r["ts"]
        status = r["status"]
        key = (int(ts // 3600) * 3600, r["model_served"] or r["model_requested"] or "", r["model_requested"] or "",
               r["project"] or "", r["source"] or "", r["customer"] or "", r["key_id"] or "", r["provider"] or "",
               status, is_error(status, r["error_type"]))
        acc = out.get(key)
        if acc is None:
            acc = out[key] = _Acc()
        s = acc.sums
        s[0] += 1
        s[1] += r["input_tokens"] or 0
        s[2] += r["output_tokens"] or 0
        s[3] += r["cached_tokens"] or 0
        s[4] += r["cache_creation_tokens"] or 0
        s[5] += r["reasoning_tokens"] or 0
        s[6] += r["total_tokens"] or 0
        cost = r["cost_nanousd"]
        if cost is not None:
            s[7] += cost
            s[8] += 1
        lat = r["latency_ms"]
        if lat is not None:
            s[9] += 1
            s[10] += lat
            acc.lmin = lat if acc.lmin is None or lat < acc.lmin else acc.lmin
            acc.lmax = lat if acc.lmax is None or lat > acc.lmax else acc.lmax
            b = bin_of(lat)
            acc.lat[b] = acc.lat.get(b, 0) + 1
        ttft = r["ttft_ms"]
        if ttft is not None:
            s[11] += 1
            s[12] += ttft
            acc.tmin = ttft if acc.tmin is None or ttft < acc.tmin else acc.tmin
            acc.tmax = ttft if acc.tmax is None or ttft > acc.tmax else acc.tmax
            b = bin_of(ttft)
            acc.ttft[b] = acc.ttft.get(b, 0) + 1
        if ts > acc.last:
            acc.last = ts
    return out


def aggregate(rows: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Rollup rows (tuples in COLUMNS order, sorted by key) for a batch of usage_records rows."""
    hourly = _by_hour(rows)
    out: dict[tuple[Any, ...], _Acc] = {}
    for (hour, *rest), acc in hourly.items():
        dims, status, err = tuple(rest[:-2]), rest[-2], rest[-1]
        for face, keep in FACES.items():
            if face == "all":
                fdims = dims
            elif keep is None:
                fdims = _EMPTY_DIMS
            else:
                fdims = tuple(d if i == keep else "" for i, d in enumerate(dims))
            for grain, secs in GRAINS:
                key = (grain, face, hour - hour % secs, *fdims, status, err)
                got = out.get(key)
                if got is None:
                    got = out[key] = _Acc()
                got.merge(acc)
    result = []
    for key in sorted(out):
        a = out[key]
        lat = [0] * NBINS
        for b, n in a.lat.items():
            lat[b] = n
        ttft = [0] * NBINS
        for b, n in a.ttft.items():
            ttft[b] = n
        result.append((*key, *a.sums, a.lmin, a.tmin, a.lmax, a.tmax, a.last, *lat, *ttft))
    return result


def upsert_statement(dialect: Dialect) -> Any:
    """INSERT .. ON CONFLICT (key) DO UPDATE adding sums and merging min/max, for this dialect."""
    mod = {"sqlite": sqlite, "postgresql": postgresql}.get(dialect.name)
    if mod is None:
        raise ValueError(f"unsupported store dialect: {dialect.name}")
    stmt = mod.insert(usage_rollup)
    ex, t = stmt.excluded, usage_rollup.c
    sets: dict[str, Any] = {c: t[c] + ex[c] for c in (*ROLLUP_SUMS, *LATENCY_BINS, *TTFT_BINS)}
    for c in ROLLUP_MINS:
        sets[c] = (func.min(func.coalesce(t[c], ex[c]), func.coalesce(ex[c], t[c])) if dialect.name == "sqlite"
                   else func.least(t[c], ex[c]))
    for c in ROLLUP_MAXES:
        sets[c] = (func.max(func.coalesce(t[c], ex[c]), func.coalesce(ex[c], t[c])) if dialect.name == "sqlite"
                   else func.greatest(t[c], ex[c]))
    return stmt.on_conflict_do_update(index_elements=list(KEY_COLUMNS), set_=sets)


class RollupWriter:
    """The ledger writer's batch hook (see LedgerWriter): adds stored rows to the rollups."""

    def __init__(self, dialect: Dialect) -> None:
        self._stmt = upsert_statement(dialect)
        self._driver: tuple[str, tuple[int, ...]] | None = None
        if dialect.name == "sqlite":
            # compiled once; executed with plain tuples (SQLAlchemy's per-row processing of
            # 140 parameters would cost more than the upsert itself)
            compiled = self._stmt.compile(dialect=dialect)
            order = {c: i for i, c in enumerate(COLUMNS)}
            self._driver = str(compiled), tuple(order[name] for name in compiled.positiontup)

    async def add(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        agg = aggregate(rows)
        if self._driver is not None:
            sql, idx = self._driver
            await conn.exec_driver_sql(sql, [tuple(r[i] for i in idx) for r in agg])
        else:
            await conn.execute(self._stmt, [dict(zip(COLUMNS, r, strict=True)) for r in agg])
