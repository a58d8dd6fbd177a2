"""list_records and stats on both databases, against a data set with known answers."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tollway.storage import InvalidQuery, LedgerWriter, get_record, list_records, stats
from tollway.storage.histogram import RELATIVE_ERROR, bin_of
from tollway.storage.queries import encode_cursor
from tollway.usage import Usage, UsageRecord

if TYPE_CHECKING:
    from tests.storage.conftest import Store

MakeRecord = Callable[..., UsageRecord]
T0 = 1_700_000_000.0


async def insert(store: Store, spool_dir: Path, records: Iterable[UsageRecord]) -> None:
    writer = LedgerWriter(store.engine, spool_dir)
    for r in records:
        writer.put(r)
    await writer.stop(10)
    assert writer.spooled == 0


def nearest_rank(values: list[float], p: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(p * len(ordered) / 100) - 1]


def close_to(estimate: float | None, exact: float | None) -> bool:
    """A histogram percentile: in the exact value's bin, within the histogram's error."""
    if exact is None or estimate is None:
        return estimate is exact
    return bin_of(estimate) == bin_of(exact) and abs(estimate - exact) <= exact * RELATIVE_ERROR + 1e-9


def without_latency(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if not k.startswith(("latency_", "ttft_")) and k != "last_seen"}


def ids(page: dict[str, Any]) -> list[str]:
    return [row["trace_id"] for row in page["data"]]


# -- list_records ---------------------------------------------------------------------------


@pytest.fixture
def filter_set(make_record: MakeRecord) -> list[UsageRecord]:
    def rec(i: int, **kw: Any) -> UsageRecord:
        return make_record(i, ts=T0 + i, **kw)

    return [
        rec(0, project="alpha", source="sdk", customer="acme", key_id="k1"),
        rec(1, project="alpha", source="cli", customer="globex", key_id="k1", status=429,
            error_type="rate_limited"),
        rec(2, project="beta", source="sdk", customer="acme", key_id="k2",
            model_requested="claude-x", model_served=None),
        rec(3, project="beta", source="sdk", customer=None, key_id="k2", status=200,
            error_type="stream_error"),  # a 200 whose stream broke is an error
        rec(4, project=None, source=None, customer=None, key_id=None, status=500,
            model_requested="fast", model_served="claude-x"),
        rec(5, project="alpha", source="sdk", customer="acme", key_id="k1", status=201),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, [5, 4, 3, 2, 1, 0]),
        ({"project": "alpha"}, [5, 1, 0]),
        ({"source": "sdk"}, [5, 3, 2, 0]),
        ({"customer": "acme"}, [5, 2, 0]),
        ({"key_id": "k2"}, [3, 2]),
        ({"model": "claude-x"}, [4, 2]),  # requested or served
        ({"model": "gpt-4o-2024-08-06"}, [5, 3, 1, 0]),
        ({"status": 429}, [1]),
        ({"status": "500"}, [4]),
        ({"status": "ok"}, [5, 2, 0]),
        ({"status": "error"}, [4, 3, 1]),
        ({"since": T0 + 3}, [5, 4, 3]),
        ({"until": T0 + 2}, [1, 0]),
        ({"project": "alpha", "status": "ok", "since": T0 + 1}, [5]),
        ({"project": "nobody"}, []),
    ],
)
async def test_list_records_filters(
    store: Store, spool_dir: Path, filter_set: list[UsageRecord], query: dict[str, Any],
    expected: list[int],
) -> None:  # fmt: skip
    await insert(store, spool_dir, filter_set)
    page = await list_records(store.engine, **query)
    assert ids(page) == [f"trace-{i:06d}" for i in expected]
    assert page["next_cursor"] is None


async def test_row_format(store: Store, spool_dir: Path, make_record: MakeRecord) -> None:
    await insert(store, spool_dir, [make_record(1, ts=1_732_286_221.1234)])
    row = (await list_records(store.engine))["data"][0]
    assert row["time"] == "2024-11-22T14:37:01.123Z"
    assert row["ts"] == 1_732_286_221.1234
    assert row["cost_usd"] == "0.000024690"
    assert isinstance(row["stream"], bool) and isinstance(row["cancelled"], bool)
    assert await get_record(store.engine, "trace-000001") == row
    assert await get_record(store.engine, "no-such-trace") is None


async def test_cursor_pages_cover_everything_once_in_order(
    store: Store, spool_dir: Path, make_record: MakeRecord
) -> None:
    # 25 records over 9 distinct timestamps: ties are broken by trace_id.
    records = [make_record(i, ts=T0 + i // 3) for i in range(25)]
    random.Random(7).shuffle(records)
    await insert(store, spool_dir, records)
    expected = [r.trace_id for r in sorted(records, key=lambda r: (r.ts, r.trace_id), reverse=True)]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await list_records(store.engine, limit=7, cursor=cursor)
        seen += ids(page)
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert pages == 4


async def test_cursor_is_stable_under_inserts(
    store: Store, spool_dir: Path, make_record: MakeRecord
) -> None:
    await insert(store, spool_dir, [make_record(i, ts=T0 + i) for i in range(20)])
    first = await list_records(store.engine, limit=5)
    assert ids(first) == [f"trace-{i:06d}" for i in range(19, 14, -1)]
    # New traffic arrives between page requests, newer than everything.
    await insert(store, spool_dir, [make_record(i, ts=T0 + i) for i in range(100, 110)])
    second = await list_records(store.engine, limit=5, cursor=first["next_cursor"])
    assert ids(second) == [f"trace-{i:06d}" for i in range(14, 9, -1)]


async def test_limit_is_clamped(store: Store, spool_dir: Path, make_record: MakeRecord) -> None:
    await insert(store, spool_dir, [make_record(i) for i in range(1003)])
    assert len((await list_records(store.engine, limit=0))["data"]) == 1
    assert len((await list_records(store.engine, limit=-5))["data"]) == 1
    big = await list_records(store.engine, limit=5000)
    assert len(big["data"]) == 1000 and big["next_cursor"] is not None
    rest = await list_records(store.engine, limit=5000, cursor=big["next_cursor"])
    assert len(rest["data"]) == 3 and rest["next_cursor"] is None


@pytest.mark.parametrize("cursor", ["garbage!", "e30", encode_cursor(1.0, "x")[:-3], "WyJhIiwxXQ"])
async def test_bad_cursor_is_rejected(store: Store, cursor: str) -> None:
    with pytest.raises(InvalidQuery):
        await list_records(store.engine, cursor=cursor)


@pytest.mark.parametrize("status", ["fine", "4xx", 4.5, True])
async def test_bad_status_is_rejected(store: Store, status: Any) -> None:
    with pytest.raises(InvalidQuery):
        await list_records(store.engine, status=status)


# -- stats ----------------------------------------------------------------------------------


@pytest.fixture
def stats_set(make_record: MakeRecord) -> list[UsageRecord]:
    """gpt: 20 calls, latencies 1..20 ms, 1 nano-USD... 20 nano-USD, one 500 error.
    claude (requested only): 3 calls, latencies 5, None, 7, one without a price, one
    errored inside a 200. Projects alpha/beta/None; sources sdk/None."""
    records = [
        make_record(
            i, ts=T0 + i, model_requested="gpt", model_served="gpt-2024",
            usage=Usage(input_tokens=10, output_tokens=i, cached_tokens=1),
            cost_usd=Decimal(i + 1).scaleb(-9), latency_ms=float(i + 1),
            status=500 if i == 7 else 200, project="alpha" if i < 12 else "beta", source="sdk",
        )
        for i in range(20)
    ]  # fmt: skip
    records += [
        make_record(100, ts=T0 + 100, model_requested="claude", model_served=None,
                    usage=Usage(input_tokens=1000, output_tokens=100),
                    cost_usd=Decimal("0.1"), latency_ms=5.0, project=None, source=None),
        make_record(101, ts=T0 + 101, model_requested="claude", model_served=None,
                    usage=Usage(input_tokens=None, output_tokens=None),
                    cost_usd=None, cost_note="unknown model price", latency_ms=None,
                    project=None, source=None),
        make_record(102, ts=T0 + 102, model_requested="claude", model_served=None,
                    usage=Usage(input_tokens=2000, output_tokens=200, cached_tokens=500),
                    cost_usd=Decimal("0.2"), latency_ms=7.0, status=200,
                    error_type="stream_error", project="beta", source=None),
    ]  # fmt: skip
    return records


async def test_stats_on_a_known_data_set(
    store: Store, spool_dir: Path, stats_set: list[UsageRecord]
) -> None:
    await insert(store, spool_dir, stats_set)
    result = await stats(store.engine)

    assert without_latency(result["totals"]) == {
        "requests": 23, "errors": 2,
        "input_tokens": 20 * 10 + 3000, "output_tokens": sum(range(20)) + 300,
        "cached_tokens": 20 + 500, "cache_creation_tokens": 0, "reasoning_tokens": 0, "total_tokens": 200 + sum(range(20)) + 3300,
        "cost_usd": "0.300000210",  # 0.1 + 0.2 + (1 + ... + 20) nano-USD, exactly
        "unpriced": 1, "cache_hits": 0, "cost_saved_usd": "0.000000000",
    }  # fmt: skip
    # 22 latencies: 1..20, 5, 7 → rank 11 of 1,2,3,4,5,5,6,7,7,8,9 is 9; rank ceil(20.9) = 21 is 19
    assert close_to(result["totals"]["latency_ms_p50"], 9.0)
    assert close_to(result["totals"]["latency_ms_p95"], 19.0)

    by_model = result["by_model"]
    assert [m["model"] for m in by_model] == ["claude", "gpt-2024"]  # by cost, most first
    assert without_latency(by_model[1]) == {
        "model": "gpt-2024", "requests": 20, "errors": 1, "input_tokens": 200,
        "output_tokens": 190, "cached_tokens": 20, "total_tokens": 390,
        "cache_creation_tokens": 0, "reasoning_tokens": 0,
        "cost_usd": "0.000000210", "unpriced": 0, "cache_hits": 0, "cost_saved_usd": "0.000000000",
    }  # fmt: skip
    assert close_to(by_model[1]["latency_ms_p50"], 10.0) and close_to(by_model[1]["latency_ms_p95"], 19.0)
    assert by_model[1]["latency_ms_avg"] == 10.5
    assert without_latency(by_model[0]) == {
        "model": "claude", "requests": 3, "errors": 1, "input_tokens": 3000,
        "output_tokens": 300, "cached_tokens": 500, "total_tokens": 3300,
        "cache_creation_tokens": 0, "reasoning_tokens": 0,
        "cost_usd": "0.300000000", "unpriced": 1, "cache_hits": 0, "cost_saved_usd": "0.000000000",
    }  # fmt: skip
    # two values: p50 is the smaller, p95 the larger (clamped to the exact min and max)
    assert (by_model[0]["latency_ms_p50"], by_model[0]["latency_ms_p95"]) == (5.0, 7.0)

    by_project = {p["project"]: p for p in result["by_project"]}
    assert [p["project"] for p in result["by_project"]] == ["beta", None, "alpha"]
    assert (by_project["alpha"]["requests"], by_project["alpha"]["errors"]) == (12, 1)
    assert close_to(by_project["alpha"]["latency_ms_p50"], 6.0)
    assert close_to(by_project["alpha"]["latency_ms_p95"], 12.0)
    assert (by_project["beta"]["requests"], by_project["beta"]["cost_usd"]) == (9, "0.200000132")
    assert (by_project[None]["requests"], by_project[None]["unpriced"]) == (2, 1)
    assert by_project[None]["latency_ms_p50"] == 5.0 == by_project[None]["latency_ms_p95"]  # one value: exact

    assert [(s["source"], s["requests"]) for s in result["by_source"]] == [(None, 3), ("sdk", 20)]


async def test_stats_filters(store: Store, spool_dir: Path, stats_set: list[UsageRecord]) -> None:
    await insert(store, spool_dir, stats_set)
    alpha = await stats(store.engine, project="alpha")
    assert alpha["totals"]["requests"] == 12
    assert [m["model"] for m in alpha["by_model"]] == ["gpt-2024"]
    recent = await stats(store.engine, since=T0 + 100)
    assert recent["totals"]["requests"] == 3 and recent["totals"]["cost_usd"] == "0.300000000"
    claude = await stats(store.engine, model="claude")
    assert claude["totals"]["requests"] == 3
    served = await stats(store.engine, model="gpt-2024", source="sdk", customer="acme")
    assert served["totals"]["requests"] == 20


async def test_stats_when_empty(store: Store) -> None:
    result = await stats(store.engine)
    assert result["totals"] == {
        "requests": 0, "errors": 0, "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0,
        "cache_creation_tokens": 0, "reasoning_tokens": 0, "total_tokens": 0, "cost_usd": "0.000000000",
        "unpriced": 0, "cache_hits": 0, "cost_saved_usd": "0.000000000", "latency_ms_p50": None, "latency_ms_p95": None, "ttft_ms_p50": None, "ttft_ms_p95": None,
        "latency_ms_avg": None, "last_seen": None,
    }  # fmt: skip
    assert result["by_model"] == result["by_project"] == result["by_source"] == []


async def test_percentiles_are_within_the_histogram_error_on_random_data(
    store: Store, spool_dir: Path, make_record: MakeRecord
) -> None:
    rng = random.Random(42)
    records = [
        make_record(
            i, project=rng.choice(["a", "b", "c", None]),
            latency_ms=None if rng.random() < 0.1 else round(rng.uniform(1, 5000), 3),
        )
        for i in range(400)
    ]  # fmt: skip
    await insert(store, spool_dir, records)
    result = await stats(store.engine)

    def check(entry: dict[str, Any], group: list[UsageRecord]) -> None:
        lat = [r.latency_ms for r in group if r.latency_ms is not None]
        assert entry["requests"] == len(group)
        assert close_to(entry["latency_ms_p50"], nearest_rank(lat, 50))
        assert close_to(entry["latency_ms_p95"], nearest_rank(lat, 95))

    check(result["totals"], records)
    for entry in result["by_project"]:
        check(entry, [r for r in records if r.project == entry["project"]])
    costs = [Decimal(e["cost_usd"]) for e in result["by_project"]]
    assert costs == sorted(costs, reverse=True)


async def test_stats_count_cache_hits_and_the_cost_they_saved(store: Store, spool_dir: Path,
                                                              make_record: MakeRecord) -> None:
    records = [
        make_record(1, cost_usd=Decimal("0.000003"), cache="miss", project="alpha"),
        make_record(2, cost_usd=Decimal("0"), cache="hit", cost_saved_usd=Decimal("0.000003"), project="alpha"),
        make_record(3, cost_usd=Decimal("0"), cache="semantic_hit", cost_saved_usd=Decimal("0.000000007"),
                    project="beta"),
        make_record(4, cost_usd=Decimal("0.000001"), cache=None, project="beta"),
    ]  # fmt: skip
    await insert(store, spool_dir, records)
    result = await stats(store.engine)
    assert (result["totals"]["cache_hits"], result["totals"]["cost_saved_usd"]) == (2, "0.000003007")
    assert result["totals"]["cost_usd"] == "0.000004000"
    by_project = {p["project"]: p for p in result["by_project"]}
    assert (by_project["alpha"]["cache_hits"], by_project["alpha"]["cost_saved_usd"]) == (1, "0.000003000")
    assert (by_project["beta"]["cache_hits"], by_project["beta"]["cost_saved_usd"]) == (1, "0.000000007")
