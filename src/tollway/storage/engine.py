"""Engines and migrations: SQLite (aiosqlite) by default, Postgres (asyncpg) to scale out."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def default_sqlite_url(data_dir: Path) -> str:
    """The default store: `tollway.db` in the data directory."""
    return f"sqlite+aiosqlite:///{(Path(data_dir) / 'tollway.db').as_posix()}"


def async_url(url: str | URL) -> URL:
    """Normalise a store URL to its async driver (`sqlite://` → `sqlite+aiosqlite://`, ...)."""
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


def _is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for an in-memory database."""
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:") or url.query.get("mode") == "memory":
        return None
    return Path(db)


def _prepare_sqlite(url: URL) -> None:
    """Create the database file readable by its owner only (records name keys, projects and
    customers), like the spool. SQLite gives its -wal and -shm files the mode of the database
    file, so they follow; files an older version created more open are tightened."""
    path = _sqlite_file(url)
    if path is None:
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # an empty file is an empty database
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if stat.S_IMODE(p.stat().st_mode) & 0o077:
                p.chmod(0o600)
        except FileNotFoundError:
            pass
        except PermissionError:  # not ours to change: say nothing, the operator chose it
            pass


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the dashboard read while the ledger writes; NORMAL is durable across process
    # crashes in WAL mode and much faster than FULL. auto_vacuum takes effect only on a new
    # file (before its first table): then retention can give pages back incrementally.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # reads of the rollups (the portal, /v1/stats) through the OS page cache, not read() calls
        cursor.execute("PRAGMA mmap_size=268435456")
    finally:
        cursor.close()


def make_engine(url: str | URL, **kwargs: Any) -> AsyncEngine:
    """Create the async engine for a store URL. Extra kwargs go to `create_async_engine`."""
    parsed = async_url(url)
    if _is_sqlite(parsed):
        _prepare_sqlite(parsed)
        engine = create_async_engine(parsed, **kwargs)
        if _sqlite_file(parsed) is not None:
            event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        # asyncpg waits 60 s by default for a connection; a dead host should fail fast so
        # the ledger spools instead of stalling.
        kwargs.setdefault("connect_args", {"timeout": 10})
    return create_async_engine(parsed, **kwargs)


def alembic_config(url: str | URL) -> Any:
    """An Alembic `Config` for the packaged migrations; no alembic.ini involved."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not a main option: ini interpolation would mangle '%' in
    # passwords.
    config.attributes["tollway.url"] = async_url(url).render_as_string(hide_password=False)
    return config


def _upgrade_head(url: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(url), "head")


async def migrate(url: str | URL) -> None:
    """`alembic upgrade head` against the store; a no-op when already current.

    Alembic's commands are synchronous and our env.py drives an async engine with
    `asyncio.run`, which cannot nest in the caller's running loop, so the whole command
    runs in a worker thread with a loop of its own. Alembic's `context` is process-global,
    so call this once per process (at startup); concurrent calls from several processes
    are safe on Postgres (env.py takes an advisory lock).
    """
    parsed = async_url(url)
    if _is_sqlite(parsed):
        _prepare_sqlite(parsed)
    await asyncio.to_thread(_upgrade_head, parsed.render_as_string(hide_password=False))
