"""Run Ask's (already checked) SQL read-only, with a statement timeout and a row cap.

SQLite: a separate connection opened read-only (`mode=ro`), `PRAGMA query_only`, no ATTACH
allowed (`SQLITE_LIMIT_ATTACHED` = 0), an authorizer that permits reading and the allowed
functions only, and a progress handler that interrupts the query at the deadline; it runs in a
worker thread, off the event loop. Postgres: a READ ONLY transaction with `SET LOCAL
statement_timeout`, rolled back afterwards.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine


class QueryTimeout(Exception):
    pass


class QueryFailed(Exception):
    """The database refused or failed the query (message from the database, no secrets)."""


def _cell(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


_SQLITE_ALLOWED_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                                     getattr(sqlite3, "SQLITE_RECURSIVE", 33)})


def _sqlite_run(path: Path, sql: str, timeout: float, max_rows: int) -> tuple[list[str], list[list[Any]]]:
    conn = sqlite3.connect(f"file:{path.as_posix()}?mode=ro", uri=True, timeout=timeout, check_same_thread=False)
    try:
        if hasattr(conn, "setlimit"):
            conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.execute("PRAGMA query_only = ON")

        def authorizer(action: int, arg1: str | None, arg2: str | None, dbname: str | None,
                       source: str | None) -> int:
            if action in _SQLITE_ALLOWED_ACTIONS:
                if action == sqlite3.SQLITE_FUNCTION and arg2 and arg2.lower() in (
                        "load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"):
                    return sqlite3.SQLITE_DENY
                return sqlite3.SQLITE_OK
            return sqlite3.SQLITE_DENY

        conn.set_authorizer(authorizer)
        deadline = time.monotonic() + timeout
        conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 20_000)
        try:
            cur = conn.execute(sql)
            columns = [d[0] for d in cur.description or ()]
            rows = [[_cell(v) for v in row] for row in cur.fetchmany(max_rows)]
        except sqlite3.OperationalError as e:
            if "interrupted" in str(e):
                raise QueryTimeout() from None
            raise QueryFailed(str(e)) from None
        except sqlite3.DatabaseError as e:
            raise QueryFailed(str(e)) from None
        return columns, rows
    finally:
        conn.close()


async def run_readonly(engine: AsyncEngine, sql: str, *, limit_secs: float, max_rows: int) -> tuple[list[str],
                                                                                                 list[list[Any]]]:
    if engine.dialect.name == "sqlite":
        db = make_url(engine.url).database
        if not db or db == ":memory:":
            raise QueryFailed("Ask needs a file-backed SQLite store")
        return await asyncio.to_thread(_sqlite_run, Path(db), sql, limit_secs, max_rows)
    async with engine.connect() as conn:
        trans = await conn.begin()
        try:
            await conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            await conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(limit_secs * 1000)}")
            try:
                result = await conn.exec_driver_sql(sql)
            except Exception as e:
                msg = str(getattr(e, "orig", None) or e).splitlines()[0]
                if "statement timeout" in msg or "canceling statement" in msg:
                    raise QueryTimeout() from None
                raise QueryFailed(msg[:300]) from None
            columns = list(result.keys())
            rows = [[_cell(v) for v in row] for row in result.fetchmany(max_rows)]
            return columns, rows
        finally:
            await trans.rollback()
