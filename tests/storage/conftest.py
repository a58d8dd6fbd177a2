"""Fixtures for the store tests: every DB test runs on SQLite and on Postgres.

Postgres: a fresh database per test session on the server at TOLLWAY_TEST_PG_URL (default
postgresql+asyncpg://postgres@127.0.0.1:5432/test), dropped at the end. When the server is
unreachable the Postgres cases skip, unless TOLLWAY_REQUIRE_SERVICES=1, then they fail.

Store failures are real, not mocked: SQLite is locked by another connection
(BEGIN EXCLUSIVE), Postgres is reached through a TCP proxy that the test takes down, or has
its table locked.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.storage import default_sqlite_url, make_engine, migrate
from tollway.storage.schema import usage_daily, usage_facets, usage_latency, usage_records
from tollway.usage import Usage, UsageRecord

T = TypeVar("T")

PG_URL = os.environ.get("TOLLWAY_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def run_in_thread(coro: Awaitable[T]) -> T:
    """Run a coroutine to completion on a fresh loop in another thread, so it works from
    sync fixtures whatever the state of pytest-asyncio's loops."""

    async def main() -> T:
        return await coro

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(PG_URL), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a fresh, migrated Postgres database for this session."""
    name = f"tollway_storage_{uuid.uuid4().hex[:12]}"
    try:
        run_in_thread(_pg_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
        reason = f"Postgres unreachable at {PG_URL}: {exc!r}"
        if os.environ.get("TOLLWAY_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} (TOLLWAY_REQUIRE_SERVICES=1 forbids skipping)", pytrace=False)
        pytest.skip(reason)
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        run_in_thread(migrate(url))
        yield url
    finally:
        run_in_thread(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated store URL, once per engine."""
    if request.param == "sqlite":
        url = default_sqlite_url(tmp_path / "data")
        run_in_thread(migrate(url))
        return url
    return request.getfixturevalue("pg_url")


@pytest.fixture
def dialect(store_url: str) -> str:
    return make_url(store_url).get_backend_name()


@pytest.fixture
async def engine(store_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on empty usage_records and rollup tables."""
    eng = make_engine(store_url)
    async with eng.begin() as conn:
        await conn.execute(delete(usage_records))
        for rollup in (usage_facets, usage_daily, usage_latency):
            await conn.execute(delete(rollup))
    yield eng
    await eng.dispose()


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


# -- records --------------------------------------------------------------------------------


def make_record(i: int, **overrides: Any) -> UsageRecord:
    """A fully populated record; `i` makes it unique."""
    fields: dict[str, Any] = dict(
        trace_id=f"trace-{i:06d}",
        ts=1_700_000_000.0 + i * 0.5,
        route="openai.chat",
        method="POST",
        path="/v1/chat/completions",
        provider="openai-main",
        model_requested="gpt-4o",
        model_served="gpt-4o-2024-08-06",
        stream=bool(i % 2),
        usage=Usage(
            input_tokens=100 + i,
            output_tokens=20 + i,
            cached_tokens=i % 7,
            cache_creation_tokens=i % 3,
            reasoning_tokens=i % 5,
            estimated=i % 4 == 0,
        ),
        cost_usd=Decimal("0.000012345") * (i + 1),
        latency_ms=100.0 + i,
        ttft_ms=10.0 + i,
        status=200,
        key_id="key-1",
        project="alpha",
        source="sdk",
        customer="acme",
        team="platform",
    )
    fields.update(overrides)
    return UsageRecord(**fields)


@dataclass
class Store:
    """The store under test and a few ways to look into it."""

    url: str
    dialect: str
    engine: AsyncEngine

    async def count(self) -> int:
        async with self.engine.connect() as conn:
            stmt = select(func.count()).select_from(usage_records)
            return (await conn.execute(stmt)).scalar_one()

    async def ids(self) -> list[str]:
        """Every stored trace_id, sorted, duplicates kept (there must be none)."""
        async with self.engine.connect() as conn:
            stmt = select(usage_records.c.trace_id).order_by(usage_records.c.trace_id)
            return list((await conn.execute(stmt)).scalars())

    async def raw(self, trace_id: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            stmt = select(usage_records).where(usage_records.c.trace_id == trace_id)
            return dict((await conn.execute(stmt)).mappings().one())


async def _eventually(predicate: Callable[[], bool], within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
def store(store_url: str, dialect: str, engine: AsyncEngine) -> Store:
    return Store(store_url, dialect, engine)


@pytest.fixture(name="make_record")
def make_record_fixture() -> Callable[..., UsageRecord]:
    """`make_record(i, **overrides)`: a fully populated, unique record."""
    return make_record


@pytest.fixture
def eventually() -> Callable[..., Awaitable[None]]:
    """`await eventually(predicate, within=5.0)`: poll until true or fail."""
    return _eventually


@pytest.fixture
def pg_admin() -> Callable[[str], Awaitable[None]]:
    """`await pg_admin(sql)`: run SQL on the Postgres server's `test` database."""
    return _pg_admin


# -- real failures --------------------------------------------------------------------------


class TcpProxy:
    """A TCP forwarder to a real server that can be taken down (connections reset, new ones
    refused) and brought back on the same port: a database outage, for real."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


@dataclass
class Outage:
    """An engine for the writer, and a way to make its store fail and recover."""

    engine: AsyncEngine
    _begin: Any
    _end: Any

    async def begin(self) -> None:
        await self._begin()

    async def end(self) -> None:
        await self._end()


class SqliteLock:
    """Holds an exclusive lock on a SQLite file from another connection."""

    def __init__(self, url: str) -> None:
        self.path = make_url(url).database
        self._conn: sqlite3.Connection | None = None

    async def acquire(self) -> None:
        self._conn = sqlite3.connect(self.path, isolation_level=None)
        self._conn.execute("BEGIN EXCLUSIVE")

    async def release(self) -> None:
        if self._conn is not None:
            self._conn.execute("COMMIT")
            self._conn.close()
            self._conn = None


class PgTableLock:
    """Holds ACCESS EXCLUSIVE on usage_records: writers (and readers) wait forever."""

    def __init__(self, url: str) -> None:
        self.dsn = _asyncpg_dsn(url)
        self._conn: asyncpg.Connection | None = None

    async def acquire(self) -> None:
        self._conn = await asyncpg.connect(self.dsn)
        await self._conn.execute("BEGIN; LOCK TABLE usage_records IN ACCESS EXCLUSIVE MODE")

    async def release(self) -> None:
        if self._conn is not None:
            await self._conn.execute("ROLLBACK")
            await self._conn.close()
            self._conn = None


@pytest.fixture
async def outage(engine: AsyncEngine, store_url: str, dialect: str) -> AsyncIterator[Outage]:
    """The writer's store fails fast while the outage lasts: SQLite answers "database is
    locked" (short busy timeout), Postgres refuses connections (proxy down)."""
    proxy: TcpProxy | None = None
    if dialect == "sqlite":
        lock = SqliteLock(store_url)
        eng = make_engine(store_url + "?timeout=0.05")
        outage = Outage(eng, lock.acquire, lock.release)
    else:
        url = make_url(store_url)
        proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
        await proxy.up()
        eng = make_engine(url.set(host="127.0.0.1", port=proxy.port))
        outage = Outage(eng, proxy.down, proxy.up)
    yield outage
    await outage.end()
    await eng.dispose()
    if proxy is not None:
        await proxy.down()


@pytest.fixture
async def hang(engine: AsyncEngine, store_url: str, dialect: str) -> AsyncIterator[Outage]:
    """The writer's store hangs (writes block on a lock) while the outage lasts."""
    if dialect == "sqlite":
        lock: SqliteLock | PgTableLock = SqliteLock(store_url)
        eng = make_engine(store_url + "?timeout=30")
    else:
        lock = PgTableLock(store_url)
        eng = make_engine(store_url)
    yield Outage(eng, lock.acquire, lock.release)
    await lock.release()
    await eng.dispose()
