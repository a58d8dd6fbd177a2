"""The store fixtures (SQLite and Postgres, outages) of tests/storage, for the outbox tests."""

from tests.storage.conftest import (  # noqa: F401
    dialect,
    engine,
    eventually,
    make_record_fixture,
    outage,
    pg_url,
    spool_dir,
    store_url,
)
