"""Alembic environment for Tollway's store, driving an async engine (SQLite or Postgres).

Run through `tollway.storage.engine.migrate()`, which puts the URL in
`config.attributes["tollway.url"]`. A caller may instead hand over an open sync connection
in `config.attributes["connection"]` (Alembic's documented recipe for sharing one).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import text

from tollway.storage.engine import make_engine
from tollway.storage.schema import metadata

# Serialises concurrent upgrades from several instances starting at once on one Postgres.
_PG_MIGRATION_LOCK = 7_316_401_203_118_771_777

config = context.config
target_metadata = metadata


def _url() -> str:
    url = config.attributes.get("tollway.url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: use tollway.storage.engine.migrate(url)")
    return url


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = make_engine(_url(), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
elif (shared := config.attributes.get("connection")) is not None:
    do_run_migrations(shared)
else:
    asyncio.run(run_async_migrations())
