"""Rollups on both databases: stats read from them equal a brute-force count of the records
for any window (ragged edges included), filter and grouping; replays never count twice;
retention deletes raw records but keeps the totals; the migration rolls up older records."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from tollway.storage import LedgerWriter, stats
from tollway.storage.histogram import RELATIVE_ERROR, bin_of
from tollway.storage.retention import Retention
from tollway.storage.rollup import is_error
from tollway.storage.schema import usage_daily, usage_facets, usage_latency
from tollway.storage.stats import plan
from tollway.usage import Usage, UsageRecord

if TYPE_CHECKING:
    from tests.storage.conftest import Store

MakeRecord = Callable[..., UsageRecord]
DAY = 86400
T0 = 1_700_000_000 - 1_700_000_000 % DAY  # a UTC midnight


async def insert(store: Store, spool_dir: Path, records: Iterable[UsageRecord], **kw: Any) -> LedgerWriter:
    writer = LedgerWriter(store.engine, spool_dir, **kw)
    for r in records:
        writer.put(r)
    await writer.stop(10)
    return writer


def random_records(make_record: MakeRecord, n: int, span: float, seed: int = 7) -> list[UsageRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        status = rng.choice([200] * 8 + [429, 500])
        out.append(make_record(
            i, ts=T0 + rng.uniform(0, span),
            model_requested=rng.choice(["gpt-4o", "fast", "claude"]),
            model_served=rng.choice(["gpt-4o-2024", "claude-x", None]),
            project=rng.choice(["alpha", "beta", None]), source=rng.choice(["sdk", "cli", None]),
            customer=rng.choice(["acme", "globex", None]), key_id=rng.choice(["k1", "k2", None]),
            provider=rng.choice(["openai", "anthropic", None]), team=rng.choice(["red", "blue", None]),
            usage=Usage(input_tokens=rng.choice([None, rng.randint(1, 999)]), output_tokens=rng.randint(0, 99),
                        cached_tokens=rng.randint(0, 5), reasoning_tokens=rng.randint(0, 3)),
            cost_usd=None if rng.random() < 0.15 else Decimal(rng.randint(0, 10**6)).scaleb(-9),
            latency_ms=None if rng.random() < 0.1 else round(rng.uniform(0.3, 40_000), 3),
            ttft_ms=None if rng.random() < 0.5 else round(rng.uniform(0.3, 900), 3),
            status=status, error_type="stream_error" if status == 200 and rng.random() < 0.05 else None,
        ))
    return out


def matches(r: UsageRecord, f: dict[str, Any], since: float | None, until: float | None) -> bool:
    if since is not None and r.ts < since or until is not None and r.ts >= until:
        return False
    for k in ("project", "source", "customer", "key_id", "provider", "team"):
        if k in f and getattr(r, k) != f[k]:
            return False
    if "model" in f and f["model"] not in (r.model_requested, r.model_served):
        return False
    if f.get("status") == "error":
        return bool(is_error(r.status, r.error_type))
    return True


def expected(records: list[UsageRecord]) -> dict[str, Any]:
    priced = [r.cost_usd for r in records if r.cost_usd is not None]
    return {
        "requests": len(records), "errors": sum(is_error(r.status, r.error_type) for r in records),
        "input_tokens": sum(r.usage.input_tokens or 0 for r in records),
        "output_tokens": sum(r.usage.output_tokens or 0 for r in records),
        "reasoning_tokens": sum(r.usage.reasoning_tokens for r in records),
        "cost_usd": f"{sum(priced, Decimal(0)).quantize(Decimal('1e-9')):f}",
        "unpriced": len(records) - len(priced),
    }


def close_to(estimate: float | None, exact: float | None) -> bool:
    if exact is None or estimate is None:
        return estimate is exact
    return bin_of(estimate) == bin_of(exact) and abs(estimate - exact) <= exact * RELATIVE_ERROR + 1e-9


def nearest_rank(values: list[float], p: int) -> float | None:
    return sorted(values)[math.ceil(p * len(values) / 100) - 1] if values else None


def check(entry: dict[str, Any], group: list[UsageRecord]) -> None:
    assert {k: entry[k] for k in expected(group)} == expected(group)
    lat = [r.latency_ms for r in group if r.latency_ms is not None]
    assert close_to(entry["latency_ms_p95"], nearest_rank(lat, 95))
    ttft = [r.ttft_ms for r in group if r.ttft_ms is not None]
    assert close_to(entry["ttft_ms_p50"], nearest_rank(ttft, 50))


def key_of(r: UsageRecord, group: str) -> Any:
    if group == "model":
        return r.model_served or r.model_requested
    if group == "key":
        return r.key_id
    if group == "day":
        return int(r.ts // DAY) * DAY
    if group == "hour":
        return int(r.ts // 3600) * 3600
    if group == "week":
        day = int(r.ts // DAY)
        return (day - (day + 3) % 7) * DAY
    return getattr(r, group)


def test_the_plan_cuts_ragged_edges() -> None:
    h, d = 3600, DAY
    assert plan(T0 + 10, T0 + 20) == [("raw", T0 + 10, T0 + 20)]
    assert plan(T0 + 10, T0 + 3 * d + 2 * h + 5) == [
        ("raw", T0 + 10, T0 + h), ("h", T0 + h, T0 + d), ("d", T0 + d, T0 + 3 * d),
        ("h", T0 + 3 * d, T0 + 3 * d + 2 * h), ("raw", T0 + 3 * d + 2 * h, T0 + 3 * d + 2 * h + 5)]
    assert plan(None, None) == [("d", None, None)]
    assert plan(T0 + 5, None, ("h",)) == [("raw", T0 + 5, T0 + h), ("h", T0 + h, None)]
    assert plan(T0 + 5, T0 + d + 7, ("d",)) == [("raw", T0 + 5, T0 + d + 7)]  # no whole day inside
    assert plan(T0 + 5, T0 + 2 * d + 7, ("d",)) == [("raw", T0 + 5, T0 + d), ("d", T0 + d, T0 + 2 * d),
                                                     ("raw", T0 + 2 * d, T0 + 2 * d + 7)]
    assert plan(T0 + 5, T0 + 9, ()) == [("raw", T0 + 5, T0 + 9)]
    assert plan(T0 + 5, T0 + 2 * h, raw_from=T0 + d) == [("h", T0, T0 + h), ("h", T0 + h, T0 + 2 * h)]
    assert plan(T0 + d, T0) == []
    nov, dec, jan, feb = 1698796800, 1701388800, 1704067200, 1706745600  # 2023-11-01 .. 2024-02-01, UTC
    assert plan(nov + 5, feb + h + 9, ("h", "d", "m")) == [
        ("raw", nov + 5, nov + h), ("h", nov + h, nov + d), ("d", nov + d, dec), ("m", dec, feb),
        ("h", feb, feb + h), ("raw", feb + h, feb + h + 9)]
    assert plan(dec - d, jan + d, ("d", "m")) == [("d", dec - d, dec), ("m", dec, jan), ("d", jan, jan + d)]
    assert plan(None, None, ("h", "d", "m")) == [("m", None, None)]
    mon = 1699833600  # 2023-11-13, a Monday
    assert plan(mon - d + 5, mon + 14 * d + h, ("h", "d", "w")) == [
        ("raw", mon - d + 5, mon - d + h), ("h", mon - d + h, mon), ("w", mon, mon + 14 * d),
        ("h", mon + 14 * d, mon + 14 * d + h)]


WINDOWS = [(None, None), (T0 + 1234.5, None), (None, T0 + 3 * DAY + 7 * 3600 + 99), (T0 + 3599.9, T0 + 2 * DAY + 1),
           (T0 + DAY + 100, T0 + DAY + 200)]
FILTERS: list[dict[str, Any]] = [{}, {"project": "alpha"}, {"model": "fast"}, {"status": "error"},
                                 {"customer": "acme", "source": "sdk"}, {"provider": "anthropic"}, {"team": "red"},
                                 {"team": "blue", "source": "cli"}, {"project": "beta", "team": "red"}]
GROUPS = ("model", "source", "customer", "key", "provider", "team", "project")


async def test_stats_equal_a_brute_force_count(store: Store, spool_dir: Path, make_record: MakeRecord) -> None:
    records = random_records(make_record, 800, 4 * DAY)
    await insert(store, spool_dir, records)
    for since, until in WINDOWS:
        for f in FILTERS:
            got = await stats(store.engine, since=since, until=until, group_by="project", **f)
            chosen = [r for r in records if matches(r, f, since, until)]
            check(got["totals"], chosen)
            for entry in got["groups"]:
                check(entry, [r for r in chosen if r.project == entry["project"]])
    since, until = WINDOWS[3]
    chosen = [r for r in records if matches(r, {}, since, until)]
    for group in (*GROUPS, "day", "hour"):
        got = await stats(store.engine, since=since, until=until, group_by=group)
        check(got["totals"], chosen)
        by: dict[Any, list[UsageRecord]] = defaultdict(list)
        for r in chosen:
            by[key_of(r, group)].append(r)
        name = "ts" if group in ("day", "hour") else group
        assert {e[name] for e in got["groups"]} == set(by)
        for entry in got["groups"]:
            check(entry, by[entry[name]])
        if group in ("day", "hour"):
            assert [e["ts"] for e in got["groups"]] == sorted(by)
        else:
            costs = [Decimal(e["cost_usd"]) for e in got["groups"]]
            assert costs == sorted(costs, reverse=True)


async def check_groups(store: Store, records: list[UsageRecord], f: dict[str, Any], since: float | None,
                       until: float | None, group: str) -> None:
    got = await stats(store.engine, since=since, until=until, group_by=group, **f)
    chosen = [r for r in records if matches(r, f, since, until)]
    check(got["totals"], chosen)
    by: dict[Any, list[UsageRecord]] = defaultdict(list)
    for r in chosen:
        by[key_of(r, group)].append(r)
    name = "ts" if group in ("day", "hour", "week") else group
    assert {e[name] for e in got["groups"]} == set(by)
    for entry in got["groups"]:
        check(entry, by[entry[name]])


async def test_a_project_or_team_by_another_attribute_reads_its_pair(
        store: Store, spool_dir: Path, make_record: MakeRecord) -> None:
    """"project = X by customer", "team = Y by model" ... (pair facets) over ragged windows."""
    records = random_records(make_record, 700, 5 * DAY, seed=5)
    await insert(store, spool_dir, records)
    for since, until in WINDOWS:
        for f in ({"project": "alpha"}, {"team": "blue"}, {"project": "beta", "status": "error"}):
            for group in GROUPS:
                await check_groups(store, records, f, since, until, group)


async def test_long_ranges_read_months_and_stay_exact(
        store: Store, spool_dir: Path, make_record: MakeRecord) -> None:
    """Over months (month rows in the middle, days, hours and records at the edges)."""
    records = random_records(make_record, 600, 130 * DAY, seed=9)
    await insert(store, spool_dir, records)
    for since, until in [(None, None), (T0 + 5 * DAY + 777.5, None), (T0 + 20 * DAY + 5, T0 + 110 * DAY + 3601.5)]:
        for f in ({}, {"project": "alpha"}, {"team": "red"}, {"customer": "acme"}):
            for group in ("month", "week", "customer", "team", "model"):
                got = await stats(store.engine, since=since, until=until, group_by=group, **f)
                check(got["totals"], [r for r in records if matches(r, f, since, until)])
            for group in ("customer", "team", "model", "week"):
                await check_groups(store, records, f, since, until, group)


async def test_week_and_month_groups_add_up(store: Store, spool_dir: Path, make_record: MakeRecord) -> None:
    records = random_records(make_record, 300, 40 * DAY, seed=3)
    await insert(store, spool_dir, records)
    for group in ("week", "month"):
        got = await stats(store.engine, group_by=group)
        assert sum(e["requests"] for e in got["groups"]) == len(records)
        assert got["totals"]["cost_usd"] == expected(records)["cost_usd"]
    weeks = (await stats(store.engine, group_by="week"))["groups"]
    assert all(w["time"].startswith("20") and (w["ts"] // DAY + 3) % 7 == 0 for w in weeks)  # Mondays


async def test_a_replay_of_stored_records_counts_nothing_twice(
        store: Store, spool_dir: Path, make_record: MakeRecord) -> None:
    records = random_records(make_record, 50, 3600)
    await insert(store, spool_dir, records)
    before = await stats(store.engine)
    writer = LedgerWriter(store.engine, spool_dir)
    writer._spool.append(records[:30] + [make_record(999, ts=T0 + 10)])  # half stored before a crash, say
    await writer.replay()
    after = await stats(store.engine)
    assert after["totals"]["requests"] == before["totals"]["requests"] + 1
    check(after["totals"], [*records, make_record(999, ts=T0 + 10)])
    await writer.stop(5)


async def test_rollup_rows_are_few_for_repetitive_traffic(
        store: Store, spool_dir: Path, make_record: MakeRecord) -> None:
    records = [make_record(i, ts=T0 + i) for i in range(600)]
    await insert(store, spool_dir, records)
    async with store.engine.connect() as conn:
        counts = [(await conn.execute(select(func.count()).select_from(t))).scalar_one()
                  for t in (usage_facets, usage_daily, usage_latency)]
    # every record alike within the hour: one row per facet and grain, one daily row, and the
    # non-empty latency and TTFT bins of the total's hour and day and of each attribute's day
    facets, daily, bins = counts
    # 8 facets (total and 7 attributes) x hour, day, week, month; 12 pairs (project or team and another) x day, month
    assert (facets, daily) == (8 * 4 + 12 * 2, 1)
    per_row = len({bin_of(r.latency_ms) for r in records}) + len({bin_of(r.ttft_ms) for r in records})
    # histograms: the total per hour, day, week and month; the attributes per day, week and month (pairs: none)
    assert bins == (4 + 7 * 3) * per_row


async def test_retention_deletes_old_records_and_keeps_totals(
        store: Store, spool_dir: Path, make_record: MakeRecord) -> None:
    import time

    now = time.time()
    old = [make_record(i, ts=now - 10 * DAY - i) for i in range(250)]
    new = [make_record(1000 + i, ts=now - 60 - i) for i in range(20)]
    await insert(store, spool_dir, old + new)
    before = await stats(store.engine)
    retention = Retention(store.engine, days=7, batch=100, pause=0)
    assert await retention.run_once() == 250
    assert await store.count() == 20
    after = await stats(store.engine)
    assert after["totals"] == before["totals"]
    assert (await stats(store.engine, since=now - DAY, raw_from=retention.horizon()))["totals"]["requests"] == 20
    assert await retention.run_once() == 0


async def test_the_migration_rolls_up_records_stored_before_it(tmp_path: Path, make_record: MakeRecord) -> None:
    import asyncio

    from alembic import command
    from sqlalchemy import insert as sa_insert

    from tollway.storage import default_sqlite_url, make_engine, migrate
    from tollway.storage.engine import alembic_config
    from tollway.storage.rows import row_from_record
    from tollway.storage.schema import usage_records

    url = default_sqlite_url(tmp_path / "old")
    (tmp_path / "old").mkdir()
    await asyncio.to_thread(command.upgrade, alembic_config(url), "0006_keys")
    records = random_records(make_record, 120, 2 * DAY, seed=11)
    engine = make_engine(url)
    async with engine.begin() as conn:
        later = {"deployment", "attempts", "failure", "attempt_errors"}  # columns added after 0006_keys
        await conn.execute(sa_insert(usage_records), [{k: v for k, v in row_from_record(r).items() if k not in later}
                                                      for r in records])
    await migrate(url)
    got = await stats(engine, since=T0 + 777.5, group_by="day")
    check(got["totals"], [r for r in records if r.ts >= T0 + 777.5])
    await engine.dispose()


async def test_the_rollups_of_0007_are_extended_by_0012(tmp_path: Path, make_record: MakeRecord) -> None:
    """A store rolled up by 0007 (no team, no months, no pairs) gets them from its rollups: down to
    0007 and up again, the numbers stay (usage rolled up before counts as no team)."""
    import asyncio

    from alembic import command

    from tollway.storage import default_sqlite_url, make_engine, migrate
    from tollway.storage.engine import alembic_config

    url = default_sqlite_url(tmp_path / "s")
    (tmp_path / "s").mkdir()
    await migrate(url)
    records = random_records(make_record, 300, 70 * DAY, seed=13)
    engine = make_engine(url)

    class S:  # the Store fixture's shape, enough for insert() and check_groups()
        pass

    s: Any = S()
    s.engine = engine
    await insert(s, tmp_path / "spool", records)
    await engine.dispose()
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0007_portal")
    await migrate(url)
    engine = make_engine(url)
    s.engine = engine
    for since, until in [(None, None), (T0 + 3 * DAY + 5.5, T0 + 65 * DAY)]:
        got = await stats(engine, since=since, until=until, group_by="month")
        check(got["totals"], [r for r in records if matches(r, {}, since, until)])
        await check_groups(s, records, {"project": "alpha"}, since, until, "customer")
        got = await stats(engine, since=since, until=until, group_by="team")
        check(got["totals"], [r for r in records if matches(r, {}, since, until)])
        if since is None:  # whole months: rolled up before teams were
            assert [e["team"] for e in got["groups"]] == [None]
    await engine.dispose()
