"""`/v1/stats`, the portal and `tollway usage`: totals and groups read from the rollups.

A time range [since, until) is cut into pieces, each read from the cheapest exact source:
whole UTC days from the day rollups, whole hours from the hour rollups, and the partial hours
at either end from the raw records (indexed by ts). All pieces share one column shape and are
summed in one `UNION ALL` query, so a total is exact to the request and the nano-dollar.
Unfiltered questions read a small face (one dimension or none); anything else the "all" face.

Latency and TTFT percentiles come from the rollups' histograms (see histogram.py): within
~12 % of the exact nearest-rank value. Before the retention horizon (`raw_from`) the records
are gone, so partial hours there count whole, from the hour rollups.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, cast, func, literal, literal_column, or_, select, union_all
from sqlalchemy import BigInteger as SaBigInteger
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.storage.histogram import EDGES, NBINS, percentile
from tollway.storage.money import decimal_from_nanousd, format_usd
from tollway.storage.rollup import FACE_DIMS
from tollway.storage.rows import iso_utc
from tollway.storage.schema import (
    LATENCY_BINS,
    ROLLUP_DIMS,
    ROLLUP_SUMS,
    TTFT_BINS,
    usage_records as t,
    usage_rollup as r,
)

HOUR, DAY = 3600, 86400
DIMENSION_GROUPS = {"model": "model", "project": "project", "source": "source", "customer": "customer",
                    "key": "key_id", "provider": "provider"}
TIME_GROUPS = ("hour", "day", "week", "month")
GROUPS = (*DIMENSION_GROUPS, *TIME_GROUPS, "status")
PERCENTILES = (50, 95)


class InvalidStatsQuery(ValueError):
    """A filter or group the caller sent is malformed (the API answers 400)."""


# -- the time plan ---------------------------------------------------------------------------


def _floor(x: float, unit: int) -> int:
    return int(x // unit) * unit


def _ceil(x: float, unit: int) -> int:
    return -int(-x // unit) * unit


def plan(since: float | None, until: float | None, *, finest: str = "d",
         raw_from: float | None = None) -> list[tuple[str, float | None, float | None]]:
    """[(source, lo, hi)]: source "raw" (records, lo <= ts < hi), "h" or "d" (rollup buckets
    lo <= bucket < hi); None is unbounded. `finest="h"` keeps hours whole (grouping by hour)."""
    out: list[tuple[str, float | None, float | None]] = []
    lo, hi = since, until
    if lo is not None and hi is not None and lo >= hi:
        return out
    tail: list[tuple[str, float | None, float | None]] = []
    if lo is not None and lo % HOUR:
        h1 = _ceil(lo, HOUR)
        out.append(("raw", lo, h1 if hi is None else min(h1, hi)))
        lo = h1
        if hi is not None and lo >= hi:
            return _honour_retention(out, raw_from)
    if hi is not None and hi % HOUR:
        h0 = _floor(hi, HOUR)
        tail.append(("raw", h0, hi))
        hi = h0
    if finest == "h":
        if lo is None or hi is None or lo < hi:
            out.append(("h", lo, hi))
        return _honour_retention(out + tail, raw_from)
    if lo is not None and lo % DAY:
        d1 = _ceil(lo, DAY)
        end = d1 if hi is None else min(d1, hi)
        if end > lo:
            out.append(("h", lo, end))
        lo = d1
    if hi is not None and hi % DAY:
        d0 = _floor(hi, DAY)
        start = d0 if lo is None else max(d0, lo)
        if hi > start:
            tail.insert(0, ("h", start, hi))
        hi = d0 if lo is None else max(d0, lo)
    if lo is None or hi is None or lo < hi:
        out.append(("d", lo, hi))
    return _honour_retention(out + tail, raw_from)


def _honour_retention(parts: list[tuple[str, float | None, float | None]],
                      raw_from: float | None) -> list[tuple[str, float | None, float | None]]:
    if raw_from is None:
        return parts
    out = []
    for src, lo, hi in parts:
        if src == "raw" and lo is not None and lo < raw_from:
            out.append(("h", _floor(lo, HOUR), _ceil(hi, HOUR) if hi is not None else None))
        else:
            out.append((src, lo, hi))
    return out


# -- the query -------------------------------------------------------------------------------

_SUMS = ROLLUP_SUMS
_BINS = (*LATENCY_BINS, *TTFT_BINS)


def _raw_bins(col: ColumnElement[Any]) -> list[ColumnElement[Any]]:
    out = []
    for i in range(NBINS):
        if i == 0:
            cond = col <= EDGES[0]
        elif i == NBINS - 1:
            cond = col > EDGES[-1]
        else:
            cond = and_(col > EDGES[i - 1], col <= EDGES[i])
        out.append(case((cond, 1), else_=0))
    return out


def _hour_of(dialect: str, ts: ColumnElement[Any]) -> ColumnElement[Any]:
    if dialect == "sqlite":
        return cast(ts / HOUR, SaBigInteger) * HOUR
    return cast(func.floor(ts / HOUR), SaBigInteger) * HOUR


def _raw_part(dialect: str, lo: float | None, hi: float | None, f: "Filters") -> Select[Any]:
    err = case((or_(t.c.status >= 400, t.c.error_type.is_not(None)), 1), else_=0)
    one = literal_column("1")
    zero = literal_column("0")
    cols: list[ColumnElement[Any]] = [
        _hour_of(dialect, t.c.ts).label("bucket"),
        func.coalesce(t.c.model_served, t.c.model_requested, "").label("model"),
        *(func.coalesce(t.c[d], "").label(d) for d in ROLLUP_DIMS[1:]),
        t.c.status.label("status"), err.label("error"),
        one.label("requests"),
        *(func.coalesce(t.c[c], 0).label(c) for c in ("input_tokens", "output_tokens", "cached_tokens",
                                                       "cache_creation_tokens", "reasoning_tokens", "total_tokens",
                                                       "cost_nanousd")),
        case((t.c.cost_nanousd.is_not(None), one), else_=zero).label("priced"),
        case((t.c.latency_ms.is_not(None), one), else_=zero).label("latency_n"),
        func.coalesce(t.c.latency_ms, 0.0).label("latency_sum"),
        case((t.c.ttft_ms.is_not(None), one), else_=zero).label("ttft_n"),
        func.coalesce(t.c.ttft_ms, 0.0).label("ttft_sum"),
        t.c.latency_ms.label("latency_min"), t.c.ttft_ms.label("ttft_min"),
        t.c.latency_ms.label("latency_max"), t.c.ttft_ms.label("ttft_max"), t.c.ts.label("last_ts"),
        *(b.label(n) for b, n in zip(_raw_bins(t.c.latency_ms), LATENCY_BINS, strict=True)),
        *(b.label(n) for b, n in zip(_raw_bins(t.c.ttft_ms), TTFT_BINS, strict=True)),
    ]
    conds = f.raw_conditions()
    if lo is not None:
        conds.append(t.c.ts >= lo)
    if hi is not None:
        conds.append(t.c.ts < hi)
    return select(*cols).where(*conds)


_ROLLUP_COLUMNS = ("bucket", *ROLLUP_DIMS, "status", "error", *_SUMS, "latency_min", "ttft_min", "latency_max",
                   "ttft_max", "last_ts", *_BINS)


def _rollup_part(grain: str, face: str, lo: float | None, hi: float | None, f: "Filters") -> Select[Any]:
    conds: list[ColumnElement[bool]] = [r.c.grain == grain, r.c.face == face, *f.rollup_conditions()]
    if lo is not None:
        conds.append(r.c.bucket >= int(lo))
    if hi is not None:
        conds.append(r.c.bucket < int(hi))
    return select(*(r.c[c] for c in _ROLLUP_COLUMNS)).where(*conds)


class Filters:
    """The AND-ed filters of a stats question, for raw records and for rollup rows alike."""

    def __init__(self, *, project: str | None = None, source: str | None = None, customer: str | None = None,
                 model: str | None = None, key_id: str | None = None, provider: str | None = None,
                 status: int | str | None = None) -> None:
        self.equal = {d: v for d, v in (("project", project), ("source", source), ("customer", customer),
                                         ("key_id", key_id), ("provider", provider)) if v is not None}
        self.model = model
        self.status: int | str | None = None
        if status is not None:
            if isinstance(status, str):
                s = status.strip().lower()
                if s not in ("ok", "error") and not s.isdigit():
                    raise InvalidStatsQuery(f"status must be an integer, 'ok' or 'error', not {status!r}")
                self.status = int(s) if s.isdigit() else s
            elif isinstance(status, bool) or not isinstance(status, int):
                raise InvalidStatsQuery(f"status must be an integer, 'ok' or 'error', not {status!r}")
            else:
                self.status = status

    def dims(self) -> set[str]:
        out = set(self.equal)
        if self.model is not None:
            out |= {"model", "model_requested"}
        return out

    def raw_conditions(self) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = [t.c[d] == v for d, v in self.equal.items()]
        if self.model is not None:
            conds.append(or_(t.c.model_requested == self.model, t.c.model_served == self.model))
        if self.status == "ok":
            conds.append(and_(t.c.status < 400, t.c.error_type.is_(None)))
        elif self.status == "error":
            conds.append(or_(t.c.status >= 400, t.c.error_type.is_not(None)))
        elif self.status is not None:
            conds.append(t.c.status == self.status)
        return conds

    def rollup_conditions(self) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = [r.c[d] == v for d, v in self.equal.items()]
        if self.model is not None:
            conds.append(or_(r.c.model_requested == self.model, r.c.model == self.model))
        if self.status == "ok":
            conds.append(r.c.error == 0)
        elif self.status == "error":
            conds.append(r.c.error == 1)
        elif self.status is not None:
            conds.append(r.c.status == self.status)
        return conds


def pick_face(needed: set[str]) -> str:
    for face, dims in FACE_DIMS.items():
        if face != "all" and needed == dims:
            return face
    return "all"


def _query(dialect: str, f: Filters, group: str | None, since: float | None, until: float | None,
           raw_from: float | None) -> Select[Any] | None:
    gdim = DIMENSION_GROUPS.get(group or "")
    face = pick_face(f.dims() | ({gdim} if gdim else set()))
    parts = [(_raw_part(dialect, lo, hi, f) if src == "raw" else _rollup_part(src, face, lo, hi, f))
             for src, lo, hi in plan(since, until, finest="h" if group == "hour" else "d", raw_from=raw_from)]
    if not parts:
        return None
    u = union_all(*parts).subquery("u") if len(parts) > 1 else parts[0].subquery("u")
    if gdim:
        key: ColumnElement[Any] | None = u.c[gdim]
    elif group == "hour":
        key = u.c.bucket
    elif group in ("day", "week", "month"):
        key = u.c.bucket - u.c.bucket % DAY
    elif group == "status":
        key = u.c.status
    else:
        key = None
    cols: list[ColumnElement[Any]] = [
        (key if key is not None else literal(None)).label("k"),
        func.sum(u.c.requests).label("requests"),
        func.sum(case((u.c.error == 1, u.c.requests), else_=0)).label("errors"),
        *(func.sum(u.c[c]).label(c) for c in _SUMS[1:]),
        func.min(u.c.latency_min).label("latency_min"), func.min(u.c.ttft_min).label("ttft_min"),
        func.max(u.c.latency_max).label("latency_max"), func.max(u.c.ttft_max).label("ttft_max"),
        func.max(u.c.last_ts).label("last_ts"),
        *(func.sum(u.c[c]).label(c) for c in _BINS),
    ]
    q = select(*cols)
    return q.group_by(key) if key is not None else q


# -- results ---------------------------------------------------------------------------------


class Aggregate:
    """One group's sums, mergeable (totals are the merge of a partition's groups)."""

    __slots__ = ("requests", "errors", "sums", "lmin", "tmin", "lmax", "tmax", "last", "lat", "ttft")

    def __init__(self, row: Mapping[str, Any] | None = None) -> None:
        if row is None:
            self.requests = self.errors = 0
            self.sums = dict.fromkeys(_SUMS[1:], 0)
            self.lmin = self.tmin = self.lmax = self.tmax = self.last = None
            self.lat, self.ttft = [0] * NBINS, [0] * NBINS
            return
        self.requests = int(row["requests"] or 0)
        self.errors = int(row["errors"] or 0)
        # Postgres sums BIGINTs as NUMERIC: back to int (and the float sums to float)
        self.sums = {c: float(row[c] or 0) if c.endswith("_sum") else int(row[c] or 0) for c in _SUMS[1:]}
        self.lmin, self.tmin, self.lmax, self.tmax = row["latency_min"], row["ttft_min"], row["latency_max"], \
            row["ttft_max"]
        self.last = row["last_ts"]
        self.lat = [int(row[c] or 0) for c in LATENCY_BINS]
        self.ttft = [int(row[c] or 0) for c in TTFT_BINS]

    def merge(self, o: "Aggregate") -> None:
        self.requests += o.requests
        self.errors += o.errors
        for c in self.sums:
            self.sums[c] += o.sums[c]
        self.lmin = _opt(min, self.lmin, o.lmin)
        self.tmin = _opt(min, self.tmin, o.tmin)
        self.lmax = _opt(max, self.lmax, o.lmax)
        self.tmax = _opt(max, self.tmax, o.tmax)
        self.last = _opt(max, self.last, o.last)
        self.lat = [a + b for a, b in zip(self.lat, o.lat, strict=True)]
        self.ttft = [a + b for a, b in zip(self.ttft, o.ttft, strict=True)]

    @property
    def cost_nanousd(self) -> int:
        return int(self.sums["cost_nanousd"])

    def entry(self) -> dict[str, Any]:
        s = self.sums
        out: dict[str, Any] = {
            "requests": self.requests, "errors": self.errors,
            **{c: int(s[c]) for c in ("input_tokens", "output_tokens", "cached_tokens", "cache_creation_tokens",
                                      "reasoning_tokens", "total_tokens")},
            # the sum of the known costs; `unpriced` says how many calls it leaves out
            "cost_usd": format_usd(decimal_from_nanousd(self.cost_nanousd)),
            "unpriced": self.requests - int(s["priced"]),
        }
        for p in PERCENTILES:
            out[f"latency_ms_p{p}"] = percentile(self.lat, p, self.lmin, self.lmax)
        for p in PERCENTILES:
            out[f"ttft_ms_p{p}"] = percentile(self.ttft, p, self.tmin, self.tmax)
        out["latency_ms_avg"] = round(s["latency_sum"] / s["latency_n"], 3) if s["latency_n"] else None
        out["last_seen"] = iso_utc(self.last) if self.last else None
        return out


def _opt(fn: Any, a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else fn(a, b)


def _time_key(group: str, day_ts: int) -> int:
    if group == "week":
        return day_ts - ((day_ts // DAY + 3) % 7) * DAY  # Monday (1970-01-01 was a Thursday)
    if group == "month":
        d = datetime.fromtimestamp(day_ts, UTC)
        return int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp())
    return day_ts


async def _grouped(engine: AsyncEngine, f: Filters, group: str | None, since: float | None, until: float | None,
                   raw_from: float | None) -> list[tuple[Any, Aggregate]]:
    q = _query(engine.dialect.name, f, group, since, until, raw_from)
    if q is None:
        return []
    async with engine.connect() as conn:
        rows = (await conn.execute(q)).mappings().all()
    out: dict[Any, Aggregate] = {}
    for row in rows:
        if not row["requests"]:
            continue
        k = row["k"]
        if group in ("week", "month"):
            k = _time_key(group, int(k))
        elif group in DIMENSION_GROUPS:
            k = k or None  # "" in the rollups is a record without that attribute
        agg = Aggregate(row)
        if k in out:
            out[k].merge(agg)
        else:
            out[k] = agg
    return list(out.items())


def _entries(name: str, groups: Sequence[tuple[Any, Aggregate]]) -> list[dict[str, Any]]:
    if name in TIME_GROUPS:
        return [{"time": iso_utc(k), "ts": int(k), **a.entry()} for k, a in sorted(groups, key=lambda g: g[0])]
    ordered = sorted(groups, key=lambda g: (-g[1].cost_nanousd, -g[1].requests, g[0] is None,
                                            "" if g[0] is None else str(g[0])))
    return [{name: k, **a.entry()} for k, a in ordered]


def _totals(groups: Sequence[tuple[Any, Aggregate]]) -> dict[str, Any]:
    total = Aggregate()
    for _, a in groups:
        total.merge(a)
    return total.entry()


async def stats(
    engine: AsyncEngine,
    *,
    project: str | None = None,
    source: str | None = None,
    customer: str | None = None,
    model: str | None = None,
    key_id: str | None = None,
    provider: str | None = None,
    status: int | str | None = None,
    since: float | None = None,
    until: float | None = None,
    group_by: str | None = None,
    raw_from: float | None = None,
) -> dict[str, Any]:
    """Totals, and either one breakdown (`group_by`) or the classic three (by model, project
    and source). Entries: requests, errors (status >= 400 or an error_type), input / output /
    cached / cache-creation / reasoning / total tokens, cost_usd (exact decimal string, the sum
    of the known costs), unpriced (calls without a cost), latency and TTFT p50/p95 (ms, from
    histograms), latency_ms_avg, last_seen. Groups by a dimension are sorted by cost, most
    first (then requests); a null key is its own group. Time groups (UTC hour, day, week
    starting Monday, month) are in time order and carry `time` (ISO) and `ts`."""
    if group_by is not None and group_by not in GROUPS:
        raise InvalidStatsQuery(f"group_by must be one of {', '.join(GROUPS)}, not {group_by!r}")
    if since is not None and not math.isfinite(since) or until is not None and not math.isfinite(until):
        raise InvalidStatsQuery("since and until must be finite times")
    f = Filters(project=project, source=source, customer=customer, model=model, key_id=key_id, provider=provider,
                status=status)
    window = {"since": since, "until": until}
    if group_by is not None:
        groups = await _grouped(engine, f, group_by, since, until, raw_from)
        return {**window, "group_by": group_by, "totals": _totals(groups), "groups": _entries(group_by, groups)}
    by_model = await _grouped(engine, f, "model", since, until, raw_from)
    return {
        **window,
        "totals": _totals(by_model),
        "by_model": _entries("model", by_model),
        "by_project": _entries("project", await _grouped(engine, f, "project", since, until, raw_from)),
        "by_source": _entries("source", await _grouped(engine, f, "source", since, until, raw_from)),
    }
