"""The spool files and the record <-> JSON line codec (no database)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import orjson

from tollway.storage.rows import record_from_json, record_to_json
from tollway.storage.spool import Spool
from tollway.usage import Usage, UsageRecord

MakeRecord = Callable[..., UsageRecord]


def test_json_round_trip_is_exact(make_record: MakeRecord) -> None:
    records = [
        make_record(1, cost_usd=Decimal("0.000000000123456789")),  # beyond nano: kept as is
        make_record(2, cost_usd=None, usage=Usage(), latency_ms=None),
    ]
    for r in records:
        assert record_from_json(record_to_json(r)) == r
    # Beyond 64 bits orjson refuses; the line still holds the exact value (for dead letters).
    huge = record_to_json(make_record(3, usage=Usage(input_tokens=2**70 + 1)))
    assert b'"input_tokens":1180591620717411303425' in huge
    assert record_from_json(huge).trace_id == "trace-000003"


def test_json_tolerates_other_versions(make_record: MakeRecord) -> None:
    data = orjson.loads(record_to_json(make_record(1)))
    data["added_in_a_later_version"] = 1
    del data["customer"]
    del data["usage"]["reasoning_tokens"]
    r = record_from_json(orjson.dumps(data))
    assert r.trace_id == "trace-000001" and r.customer is None and r.usage.reasoning_tokens == 0


def test_seal_read_and_keep_from(tmp_path: Path, make_record: MakeRecord) -> None:
    spool = Spool(tmp_path / "spool")
    assert not spool.has_data() and spool.seal() == []
    spool.append([make_record(i) for i in range(10)])
    assert spool.has_data()

    [segment] = spool.seal()
    assert not spool.active_path.exists()
    spool.append([make_record(99)])  # appends go on while a segment is replayed
    batches = list(spool.read(segment, 4))
    assert [len(b) for b in batches] == [4, 4, 2]

    offset_of_6 = batches[1][2][0]
    spool.keep_from(segment, offset_of_6)
    rest = [r.trace_id for batch in spool.read(segment, 100) for _, r in batch]
    assert rest == [f"trace-{i:06d}" for i in range(6, 10)]

    spool.remove(segment)
    assert [s.name for s in spool.seal()][0].startswith("replay-")
    assert spool.has_data()


def test_truncated_line_is_dead_lettered(tmp_path: Path, make_record: MakeRecord) -> None:
    spool = Spool(tmp_path)
    spool.append([make_record(1)])
    with spool.active_path.open("ab") as f:
        f.write(record_to_json(make_record(2))[:40])  # a crash mid-write
    [segment] = spool.seal()
    got = [r.trace_id for batch in spool.read(segment, 10) for _, r in batch]
    assert got == ["trace-000001"]
    assert spool.rejected_path.read_bytes() == record_to_json(make_record(2))[:40] + b"\n"


def test_spool_files_stay_private_when_cut_down(tmp_path: Path, make_record: MakeRecord) -> None:
    spool = Spool(tmp_path)
    spool.append([make_record(i) for i in range(3)])
    [segment] = spool.seal()
    spool.keep_from(segment, 10)
    assert segment.stat().st_mode & 0o777 == 0o600
    assert spool.size() == segment.stat().st_size > 0


def test_a_line_cut_by_a_crash_is_counted(tmp_path: Path, make_record: MakeRecord) -> None:
    spool = Spool(tmp_path)
    spool.append([make_record(1)])
    with spool.active_path.open("ab") as f:
        f.write(record_to_json(make_record(2))[:40])
    [segment] = spool.seal()
    list(spool.read(segment, 10))
    assert spool.unreadable == 1
