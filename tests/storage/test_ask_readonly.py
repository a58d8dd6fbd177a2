"""Ask's second fence, on both databases: even SQL that got past the guard cannot write, and a
query that runs too long is stopped. (The guard itself is tested through the API in tests/ask.)"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tollway.ask.readonly import QueryFailed, QueryTimeout, run_readonly
from tollway.storage import LedgerWriter

if TYPE_CHECKING:
    from tests.storage.conftest import Store

WRITES = ["DELETE FROM usage_records", "UPDATE usage_records SET cost_nanousd = 0", "DROP VIEW ask_requests",
          "CREATE TABLE evil (x int)", "INSERT INTO store_markers VALUES ('evil', 1)"]


async def test_reads_work(store: Store, spool_dir: Path, make_record) -> None:  # type: ignore[no-untyped-def]
    writer = LedgerWriter(store.engine, spool_dir)
    for i in range(3):
        writer.put(make_record(i))
    await writer.stop(5)
    cols, rows = await run_readonly(store.engine, "SELECT count(*) AS n, sum(cost_nanousd) AS c FROM ask_requests",
                                    limit_secs=2, max_rows=10)
    assert cols == ["n", "c"] and rows[0][0] == 3


@pytest.mark.parametrize("sql", WRITES)
async def test_writes_fail_and_change_nothing(store: Store, spool_dir: Path, make_record, sql: str) -> None:  # type: ignore[no-untyped-def]
    writer = LedgerWriter(store.engine, spool_dir)
    writer.put(make_record(1))
    await writer.stop(5)
    with pytest.raises(QueryFailed):
        await run_readonly(store.engine, sql, limit_secs=2, max_rows=10)
    assert await store.count() == 1
    _, rows = await run_readonly(store.engine, "SELECT count(*) FROM ask_requests", limit_secs=2, max_rows=1)
    assert rows == [[1]]


async def test_a_long_query_is_stopped(store: Store) -> None:
    sql = ("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 10000000) "
           "SELECT count(*) FROM n a, n b")
    with pytest.raises(QueryTimeout):
        await run_readonly(store.engine, sql, limit_secs=0.5, max_rows=1)
