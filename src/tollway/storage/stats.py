"""`/v1/stats`, the portal and `tollway usage`: totals and groups read from the rollups.

A time range [since, until) is cut into pieces, each read from the cheapest exact source: whole
UTC months (or weeks, for a weekly series), days and hours from the rollups, and the partial units at either end from the raw
records (indexed by ts), so a year is ~12 month rows per value plus its edges, never a scan of
the records. All pieces share one column shape and are summed in one `UNION ALL` query, so a
total is exact to the request and the nano-dollar. A question about at most one attribute (the
totals, "by project", "source = web by source") reads `usage_facets` (hours, days, months); one
about a project or team and one other attribute ("project = X by customer") reads its pair
facet (days and months); anything else (several filters, a model filter) reads `usage_daily`
for whole days and the raw records for the rest.

Latency and TTFT percentiles come from histograms (see histogram.py), within ~12 % of the exact
nearest-rank value: those of `usage_latency` (hours, days, weeks and months for the totals;
days, weeks and months for the attribute facets) with the raw records' bins for the rest, and only the raw
records' bins for pair questions and questions with several filters (so those percentiles
cover the retained records only; `percentiles=False` skips them). Before
the retention horizon (`raw_from`) the records are gone, so partial units there count whole.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, cast, func, literal, literal_column, or_, select, union_all
from sqlalchemy import BigInteger as SaBigInteger
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tollway.storage.histogram import EDGES, NBINS, percentile
from tollway.storage.money import decimal_from_nanousd, format_usd
from tollway.storage.rollup import FACET_OF_DIM, FACETS, PAIR_SCOPES, month_of, next_month, week_of
from tollway.storage.rows import iso_utc
from tollway.storage.schema import (
    MEASURES,
    ROLLUP_DIMS,
    ROLLUP_SUMS,
    usage_daily as dly,
    usage_facets as fct,
    usage_latency as lat,
    usage_records as t,
    pair_prefix,
    pair_value,
)

HOUR, DAY = 3600, 86400
DIMENSION_GROUPS = {"model": "model", "project": "project", "source": "source", "customer": "customer",
                    "key": "key_id", "provider": "provider", "team": "team"}
TIME_GROUPS = ("hour", "day", "week", "month")
GROUPS = (*DIMENSION_GROUPS, *TIME_GROUPS, "status")
PERCENTILES = (50, 95)
_ORDER = {"h": 0, "d": 1, "w": 2, "m": 2}  # a plan holds weeks or months, never both


class InvalidStatsQuery(ValueError):
    """A filter or group the caller sent is malformed (the API answers 400)."""


# -- the time plan ---------------------------------------------------------------------------


def _floor(x: float, grain: str) -> int:
    if grain == "m":
        return month_of(x)
    if grain == "w":
        return week_of(x)
    unit = HOUR if grain == "h" else DAY
    return int(x // unit) * unit


def _ceil(x: float, grain: str) -> int:
    if grain == "m":
        m = month_of(x)
        return m if m == x else next_month(m)
    if grain == "w":
        w = week_of(x)
        return w if w == x else w + 7 * DAY
    unit = HOUR if grain == "h" else DAY
    return -int(-x // unit) * unit


Part = tuple[str, "float | None", "float | None"]


def plan(since: float | None, until: float | None, grains: Sequence[str] = ("h", "d"),
         raw_from: float | None = None) -> list[Part]:
    """[(source, lo, hi)]: "raw" (records with lo <= ts < hi) or a grain of `grains` (rollup
    buckets lo <= bucket < hi); None is unbounded. Coarsest whole units first, finer ones at the
    edges, raw records for what is left."""
    units = sorted(grains, key=lambda g: _ORDER[g])

    def cut(lo: float | None, hi: float | None, level: int) -> list[Part]:
        if lo is not None and hi is not None and lo >= hi:
            return []
        if level < 0:
            return [("raw", lo, hi)]
        g = units[level]
        a = None if lo is None else _ceil(lo, g)
        b = None if hi is None else _floor(hi, g)
        if a is not None and b is not None and a >= b:
            return cut(lo, hi, level - 1)
        out: list[Part] = []
        if lo is not None and a is not None and a > lo:
            out += cut(lo, a, level - 1)
        out.append((g, a, b))
        if hi is not None and b is not None and b < hi:
            out += cut(b, hi, level - 1)
        return out

    parts = cut(since, until, len(units) - 1)
    if raw_from is None or not units:
        return parts
    finest = units[0]
    return [(finest, _floor(lo, finest) if lo is not None else None, _ceil(hi, finest) if hi is not None else None)
            if src == "raw" and (lo is None or lo < raw_from) else (src, lo, hi) for src, lo, hi in parts]


# -- the query -------------------------------------------------------------------------------


def _bin(col: ColumnElement[Any]) -> ColumnElement[Any]:
    """The histogram bin of a value, in SQL (the same edges as histogram.bin_of)."""
    return case(*((col <= edge, i) for i, edge in enumerate(EDGES)), else_=len(EDGES))


def _hour_of(dialect: str, ts: ColumnElement[Any]) -> ColumnElement[Any]:
    if dialect == "sqlite":
        return cast(ts / HOUR, SaBigInteger) * HOUR
    return cast(func.floor(ts / HOUR), SaBigInteger) * HOUR


def _raw_attr(dim: str) -> ColumnElement[Any]:
    if dim == "model":
        return func.coalesce(t.c.model_served, t.c.model_requested, "")
    return func.coalesce(t.c[dim], "")


_ERR = case((or_(t.c.status >= 400, t.c.error_type.is_not(None)), 1), else_=0)


def _raw_measures() -> list[ColumnElement[Any]]:
    one, zero = literal_column("1"), literal_column("0")
    return [
        one.label("requests"),
        *(func.coalesce(t.c[c], 0).label(c) for c in ("input_tokens", "output_tokens", "cached_tokens",
                                                       "cache_creation_tokens", "reasoning_tokens", "total_tokens",
                                                       "cost_nanousd")),
        case((t.c.cost_nanousd.is_not(None), one), else_=zero).label("priced"),
        case((t.c.latency_ms.is_not(None), one), else_=zero).label("latency_n"),
        func.coalesce(t.c.latency_ms, 0.0).label("latency_sum"),
        case((t.c.ttft_ms.is_not(None), one), else_=zero).label("ttft_n"),
        func.coalesce(t.c.ttft_ms, 0.0).label("ttft_sum"),
        case((t.c.cache.in_(("hit", "semantic_hit")), one), else_=zero).label("cache_hits"),
        func.coalesce(t.c.cost_saved_nanousd, 0).label("cost_saved_nanousd"),
        t.c.latency_ms.label("latency_min"), t.c.ttft_ms.label("ttft_min"),
        t.c.latency_ms.label("latency_max"), t.c.ttft_ms.label("ttft_max"), t.c.ts.label("last_ts"),
    ]


class Filters:
    """The AND-ed filters of a stats question, for raw records and for rollup rows alike."""

    def __init__(self, *, project: str | None = None, source: str | None = None, customer: str | None = None,
                 model: str | None = None, key_id: str | None = None, provider: str | None = None,
                 team: str | None = None, status: int | str | None = None) -> None:
        self.equal = {d: v for d, v in (("project", project), ("source", source), ("customer", customer),
                                         ("key_id", key_id), ("provider", provider), ("team", team))
                      if v is not None}
        self.model = model
        self.status: int | str | None = None
        if status is not None:
            if isinstance(status, str):
                s = status.strip().lower()
                if s not in ("ok", "error") and not (s.isascii() and s.isdigit() and len(s) <= 3):
                    raise InvalidStatsQuery(f"status must be an HTTP status code, 'ok' or 'error', not {status[:20]!r}")
                self.status = int(s) if s.isdigit() else s
            elif isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= 999:
                raise InvalidStatsQuery(f"status must be an HTTP status code, 'ok' or 'error', not {status!r}")
            else:
                self.status = status

    def dims(self) -> set[str]:
        out = set(self.equal)
        if self.model is not None:
            out |= {"model", "model_requested"}
        return out

    def _status(self, status: Any, error: Any) -> list[ColumnElement[bool]]:
        if self.status == "ok":
            return [error == 0]
        if self.status == "error":
            return [error == 1]
        return [] if self.status is None else [status == self.status]

    def raw(self) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = [t.c[d] == v for d, v in self.equal.items()]
        if self.model is not None:
            conds.append(or_(t.c.model_requested == self.model, t.c.model_served == self.model))
        if self.status == "ok":
            return [*conds, and_(t.c.status < 400, t.c.error_type.is_(None))]
        if self.status == "error":
            return [*conds, or_(t.c.status >= 400, t.c.error_type.is_not(None))]
        return conds + self._status(t.c.status, None)

    def facet(self, table: Any, pair: tuple[str, str] | None = None) -> list[ColumnElement[bool]]:
        """On usage_facets / usage_latency: the facet's own value filter (at most one; for a
        pair facet (scope dim, other dim), the scope's value and the other's when filtered)."""
        if pair is None:
            conds = [table.c.value == v for v in self.equal.values()]
        elif pair[1] in self.equal:
            conds = [table.c.value == pair_value(self.equal[pair[0]], self.equal[pair[1]])]
        else:
            prefix = pair_prefix(self.equal[pair[0]])
            conds = [func.substr(table.c.value, 1, len(prefix)) == prefix]
        return conds + self._status(table.c.status, table.c.error)

    def daily(self) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = [dly.c[d] == v for d, v in self.equal.items()]
        if self.model is not None:
            conds.append(or_(dly.c.model_requested == self.model, dly.c.model == self.model))
        return conds + self._status(dly.c.status, dly.c.error)


def _between(col: Any, lo: float | None, hi: float | None) -> list[ColumnElement[bool]]:
    out = []
    if lo is not None:
        out.append(col >= lo)
    if hi is not None:
        out.append(col < hi)
    return out


class Question:
    """One stats query: which rollup answers it (a facet, or the daily table), and its SQL."""

    def __init__(self, dialect: str, f: Filters, group: str | None, since: float | None, until: float | None,
                 raw_from: float | None) -> None:
        self.dialect, self.f, self.group = dialect, f, group
        self.since, self.until, self.raw_from = since, until, raw_from
        gdim = DIMENSION_GROUPS.get(group or "")
        needed = f.dims() | ({gdim} if gdim else set())
        self.facet: str | None = None
        self.pair: tuple[str, str] | None = None  # (scope dim, other dim) of a pair facet
        if not needed:
            self.facet = "total"
        elif len(needed) == 1 and next(iter(needed)) in FACET_OF_DIM:
            self.facet = FACET_OF_DIM[next(iter(needed))]
        elif len(needed) == 2:
            for scope in PAIR_SCOPES:
                other = next(iter(needed - {scope}))
                # the group's attribute is the pair's second (the one read back from the value)
                if scope in f.equal and other != scope and other in FACET_OF_DIM and gdim in (None, other):
                    self.facet, self.pair = f"{FACET_OF_DIM[scope]}.{FACET_OF_DIM[other]}", (scope, other)
                    break
        self.gdim = gdim

    def _key(self, u: Any) -> ColumnElement[Any] | None:
        if self.gdim:
            return u.c.value if self.facet is not None else u.c[self.gdim]
        if self.group == "hour":
            return u.c.bucket
        if self.group in ("day", "week", "month"):
            return u.c.bucket - u.c.bucket % DAY
        if self.group == "status":
            return u.c.status
        return None

    def _grains(self) -> tuple[str, ...]:
        if self.group == "hour":
            grains: tuple[str, ...] = ("h",)
        elif self.group == "day":
            grains = ("h", "d")
        elif self.group == "week":
            grains = ("h", "d", "w")
        else:
            grains = ("h", "d", "m")
        if self.facet is None:  # the daily table
            return tuple(g for g in grains if g == "d")
        if self.pair is not None:  # pair facets: days and months
            return tuple(g for g in grains if g in ("d", "m"))
        return grains

    def _value(self, table: Any) -> ColumnElement[Any]:
        """A facet row's value as the group key: a pair facet's other attribute."""
        if self.pair is None:
            return table.c.value
        return func.substr(table.c.value, len(pair_prefix(self.f.equal[self.pair[0]])) + 1).label("value")

    def measures(self) -> Select[Any] | None:
        parts = []
        for src, lo, hi in plan(self.since, self.until, self._grains(), self.raw_from):
            if src == "raw":
                parts.append(self._raw_measures(lo, hi))
            elif self.facet is not None:
                parts.append(select(fct.c.bucket, self._value(fct), fct.c.status, fct.c.error,
                                    *(fct.c[m] for m in MEASURES))
                             .where(fct.c.grain == src, fct.c.facet == self.facet, *self.f.facet(fct, self.pair),
                                    *_between(fct.c.bucket, lo, hi)))
            else:
                parts.append(select(dly.c.day.label("bucket"), *(dly.c[d] for d in ROLLUP_DIMS), dly.c.status,
                                    dly.c.error, *(dly.c[m] for m in MEASURES))
                             .where(*self.f.daily(), *_between(dly.c.day, lo, hi)))
        if not parts:
            return None
        u = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery("u")
        key = self._key(u)
        cols: list[ColumnElement[Any]] = [
            (key if key is not None else literal(None)).label("k"),
            func.sum(u.c.requests).label("requests"),
            func.sum(case((u.c.error == 1, u.c.requests), else_=0)).label("errors"),
            *(func.sum(u.c[c]).label(c) for c in ROLLUP_SUMS[1:]),
            func.min(u.c.latency_min).label("latency_min"), func.min(u.c.ttft_min).label("ttft_min"),
            func.max(u.c.latency_max).label("latency_max"), func.max(u.c.ttft_max).label("ttft_max"),
            func.max(u.c.last_ts).label("last_ts"),
        ]
        q = select(*cols)
        return q.group_by(key) if key is not None else q

    def _raw_measures(self, lo: float | None, hi: float | None) -> Select[Any]:
        if self.facet is not None:
            if self.pair is not None:
                attr = self.pair[1]
            else:
                attr = "" if self.facet == "total" else ROLLUP_DIMS[FACETS[self.facet]]  # type: ignore[index]
            dims = [(literal_column("''") if not attr else _raw_attr(attr)).label("value")]
        else:
            dims = [_raw_attr(d).label(d) for d in ROLLUP_DIMS]
        return (select(_hour_of(self.dialect, t.c.ts).label("bucket"), *dims, t.c.status.label("status"),
                       _ERR.label("error"), *_raw_measures())
                .where(*self.f.raw(), *_between(t.c.ts, lo, hi)))

    def histograms(self) -> Select[Any] | None:
        """(k, metric, bin, n) for the percentiles."""
        parts = []
        if self.facet is not None and self.pair is None:
            # "total" has hourly histograms; the attribute facets daily ones only
            grains = self._grains() if self.facet == "total" else tuple(g for g in self._grains() if g != "h")
            pieces = plan(self.since, self.until, grains, self.raw_from)
        else:  # the daily table and the pair facets have no histograms: the retained records have them
            lo = self.since if self.raw_from is None or self.since is None else max(self.since, self.raw_from)
            lo = self.raw_from if lo is None else lo
            pieces = [("raw", lo, self.until)]
        for src, lo, hi in pieces:
            if src != "raw":
                parts.append(select(lat.c.bucket, self._value(lat), lat.c.status, lat.c.error, lat.c.metric, lat.c.bin,
                                    lat.c.n)
                             .where(lat.c.grain == src, lat.c.facet == self.facet, *self.f.facet(lat, self.pair),
                                    *_between(lat.c.bucket, lo, hi)))
                continue
            raw = self._raw_measures(lo, hi).subquery()
            if self.facet is not None:
                dims = [raw.c.value]
            else:
                dims = [raw.c[d] for d in ROLLUP_DIMS]
            for metric, col in (("l", raw.c.latency_min), ("t", raw.c.ttft_min)):
                parts.append(select(raw.c.bucket, *dims, raw.c.status, raw.c.error,
                                    literal_column(f"'{metric}'").label("metric"), _bin(col).label("bin"),
                                    literal_column("1").label("n")).where(col.is_not(None)))
        if not parts:
            return None
        u = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery("u")
        key = self._key(u)
        k = (key if key is not None else literal(None)).label("k")
        q = select(k, u.c.metric, u.c.bin, func.sum(u.c.n).label("n"))
        return q.group_by(*((key,) if key is not None else ()), u.c.metric, u.c.bin)


# -- results ---------------------------------------------------------------------------------


class Aggregate:
    """One group's sums, mergeable (totals are the merge of a partition's groups)."""

    __slots__ = ("requests", "errors", "sums", "lmin", "tmin", "lmax", "tmax", "last", "lat", "ttft")

    def __init__(self, row: Mapping[str, Any] | None = None) -> None:
        if row is None:
            self.requests = self.errors = 0
            self.sums = dict.fromkeys(ROLLUP_SUMS[1:], 0)
            self.lmin = self.tmin = self.lmax = self.tmax = self.last = None
            self.lat, self.ttft = [0] * NBINS, [0] * NBINS
            return
        self.requests = int(row["requests"] or 0)
        self.errors = int(row["errors"] or 0)
        # Postgres sums BIGINTs as NUMERIC: back to int (and the float sums to float)
        self.sums = {c: float(row[c] or 0) if c.endswith("_sum") else int(row[c] or 0) for c in ROLLUP_SUMS[1:]}
        self.lmin, self.tmin, self.lmax, self.tmax = row["latency_min"], row["ttft_min"], row["latency_max"], \
            row["ttft_max"]
        self.last = row["last_ts"]
        self.lat, self.ttft = [0] * NBINS, [0] * NBINS  # filled from the histogram query

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

    def entry(self, percentiles: bool = True) -> dict[str, Any]:
        s = self.sums
        out: dict[str, Any] = {
            "requests": self.requests, "errors": self.errors,
            **{c: int(s[c]) for c in ("input_tokens", "output_tokens", "cached_tokens", "cache_creation_tokens",
                                      "reasoning_tokens", "total_tokens")},
            # the sum of the known costs; `unpriced` says how many calls it leaves out
            "cost_usd": format_usd(decimal_from_nanousd(self.cost_nanousd)),
            "unpriced": self.requests - int(s["priced"]),
            # answered from the response cache (at cost 0), and what those answers cost when they were made
            "cache_hits": int(s["cache_hits"]),
            "cost_saved_usd": format_usd(decimal_from_nanousd(int(s["cost_saved_nanousd"]))),
        }
        if percentiles:
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


def _group_key(group: str | None, k: Any) -> Any:
    if group in ("week", "month"):
        return _time_key(group, int(k))
    if group in ("hour", "day"):
        return int(k)
    if group in DIMENSION_GROUPS:
        return k or None  # "" in the rollups is a record without that attribute
    return k


async def _grouped(conn: AsyncConnection, f: Filters, group: str | None, since: float | None, until: float | None,
                   raw_from: float | None, percentiles: bool = True) -> list[tuple[Any, Aggregate]]:
    question = Question(conn.dialect.name, f, group, since, until, raw_from)
    q = question.measures()
    if q is None:
        return []
    out: dict[Any, Aggregate] = {}
    for row in (await conn.execute(q)).mappings():
        if not row["requests"]:
            continue
        k = _group_key(group, row["k"])
        agg = Aggregate(row)
        if k in out:
            out[k].merge(agg)
        else:
            out[k] = agg
    h = question.histograms() if percentiles else None
    if h is not None and out:
        for k, metric, b, n in (await conn.execute(h)).all():
            agg = out.get(_group_key(group, k))
            if agg is not None:
                (agg.lat if metric == "l" else agg.ttft)[int(b)] += int(n)
    return list(out.items())


def _entries(name: str, groups: Sequence[tuple[Any, Aggregate]], percentiles: bool = True) -> list[dict[str, Any]]:
    if name in TIME_GROUPS:
        return [{"time": iso_utc(k), "ts": int(k), **a.entry(percentiles)}
                for k, a in sorted(groups, key=lambda g: g[0])]
    ordered = sorted(groups, key=lambda g: (-g[1].cost_nanousd, -g[1].requests, g[0] is None,
                                            "" if g[0] is None else str(g[0])))
    return [{name: k, **a.entry(percentiles)} for k, a in ordered]


def _totals(groups: Sequence[tuple[Any, Aggregate]], percentiles: bool = True) -> dict[str, Any]:
    total = Aggregate()
    for _, a in groups:
        total.merge(a)
    return total.entry(percentiles)


async def stats(
    engine: AsyncEngine,
    *,
    project: str | None = None,
    source: str | None = None,
    customer: str | None = None,
    model: str | None = None,
    key_id: str | None = None,
    provider: str | None = None,
    team: str | None = None,
    status: int | str | None = None,
    since: float | None = None,
    until: float | None = None,
    group_by: str | None = None,
    raw_from: float | None = None,
    percentiles: bool = True,
) -> dict[str, Any]:
    """Totals, and either one breakdown (`group_by`) or the classic three (by model, project
    and source). Entries: requests, errors (status >= 400 or an error_type), input / output /
    cached / cache-creation / reasoning / total tokens, cost_usd (exact decimal string, the sum
    of the known costs), unpriced (calls without a cost), latency and TTFT p50/p95 (ms, from
    histograms), latency_ms_avg, last_seen. Groups by a dimension are sorted by cost, most
    first (then requests); a null key is its own group. Time groups (UTC hour, day, week
    starting Monday, month) are in time order and carry `time` (ISO) and `ts`. `percentiles=False`
    leaves the latency and TTFT percentiles out (and their histograms unread: what a list of top
    spenders needs is cheaper without them)."""
    if group_by is not None and group_by not in GROUPS:
        raise InvalidStatsQuery(f"group_by must be one of {', '.join(GROUPS)}, not {group_by!r}")
    if since is not None and not math.isfinite(since) or until is not None and not math.isfinite(until):
        raise InvalidStatsQuery("since and until must be finite times")
    f = Filters(project=project, source=source, customer=customer, model=model, key_id=key_id, provider=provider,
                team=team, status=status)
    window = {"since": since, "until": until}
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":  # one snapshot for every query of the answer
            await conn.execution_options(isolation_level="REPEATABLE READ")
        if group_by is not None:
            groups = await _grouped(conn, f, group_by, since, until, raw_from, percentiles)
            return {**window, "group_by": group_by, "totals": _totals(groups, percentiles),
                    "groups": _entries(group_by, groups, percentiles)}
        by_model = await _grouped(conn, f, "model", since, until, raw_from)
        return {
            **window,
            "totals": _totals(by_model),
            "by_model": _entries("model", by_model),
            "by_project": _entries("project", await _grouped(conn, f, "project", since, until, raw_from)),
            "by_source": _entries("source", await _grouped(conn, f, "source", since, until, raw_from)),
        }
