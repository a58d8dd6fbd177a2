"""Engines and migrations on both databases."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.storage import default_sqlite_url, make_engine, metadata, migrate
from tollway.storage.engine import alembic_config, async_url


def _head() -> list[str]:
    """The newest revision shipped, whatever number it has reached."""
    return list(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


async def _version(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())


async def test_migrate_is_idempotent(engine: AsyncEngine, store_url: str) -> None:
    assert await _version(engine) == _head()
    await migrate(store_url)
    await migrate(store_url)
    assert await _version(engine) == _head()


async def test_migrations_produce_the_declared_schema(engine: AsyncEngine) -> None:
    """The migration history and schema.py agree: autogenerate finds nothing to do."""

    def diff(sync_conn):  # type: ignore[no-untyped-def]
        ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return compare_metadata(ctx, metadata)

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_concurrent_migrations_on_postgres(
    pg_url: str, pg_admin: Callable[[str], Awaitable[None]]
) -> None:
    """Several instances (processes) starting at once against one fresh Postgres all
    succeed: the advisory lock in env.py serialises them."""
    name = f"tollway_mig_{uuid.uuid4().hex[:12]}"
    await pg_admin(f'CREATE DATABASE "{name}"')
    url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    code = (
        "import asyncio, sys; from tollway.storage import migrate; asyncio.run(migrate(sys.argv[1]))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        procs = [
            await asyncio.create_subprocess_exec(sys.executable, "-c", code, url, env=env)
            for _ in range(4)
        ]
        codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), 60)
        assert codes == [0, 0, 0, 0]
        eng = make_engine(url)
        try:
            assert await _version(eng) == _head()
        finally:
            await eng.dispose()
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_sqlite_engine_creates_dir_and_uses_wal(tmp_path: Path) -> None:
    url = default_sqlite_url(tmp_path / "a" / "b")
    assert url.endswith("/a/b/tollway.db")
    await migrate(url)
    assert (tmp_path / "a" / "b" / "tollway.db").is_file()
    eng = make_engine(url)
    try:
        async with eng.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 1  # NORMAL
    finally:
        await eng.dispose()


def test_async_url_picks_async_drivers() -> None:
    assert async_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert async_url("postgresql://u@h/db").drivername == "postgresql+asyncpg"
    assert async_url("postgres://u@h/db").drivername == "postgresql+asyncpg"
    assert async_url("postgresql+asyncpg://u@h/db").drivername == "postgresql+asyncpg"


async def test_password_with_percent_survives(tmp_path: Path) -> None:
    """The URL reaches env.py untouched (no ini interpolation of '%')."""
    url = default_sqlite_url(tmp_path / "100%")
    await migrate(url)
    assert (tmp_path / "100%" / "tollway.db").is_file()


async def test_sqlite_files_are_private_to_their_owner(tmp_path: Path) -> None:
    """The store names keys, projects and customers: 0600 like the spool, -wal and -shm too,
    whatever the umask; a file an older version left more open is tightened."""
    old = os.umask(0o022)
    try:
        url = default_sqlite_url(tmp_path / "data")
        await migrate(url)
        eng = make_engine(url)
        try:
            async with eng.begin() as conn:
                await conn.execute(text("INSERT INTO responses (id, created_at, response, conversation) "
                                        "VALUES ('r', 0, '{}', '[]')"))
                db = tmp_path / "data" / "tollway.db"
                for path in (db, db.with_name("tollway.db-wal"), db.with_name("tollway.db-shm")):
                    assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600, path
        finally:
            await eng.dispose()
        db.chmod(0o644)
        await migrate(url)
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
    finally:
        os.umask(old)
