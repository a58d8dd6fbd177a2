"""The store: schema, engines and migrations, the ledger writer, and the read queries.

SQLite (aiosqlite) is the default; Postgres (asyncpg) is for more than one process.
"""

from tollway.storage.engine import default_sqlite_url, make_engine, migrate
from tollway.storage.ledger import LedgerWriter
from tollway.storage.money import decimal_from_nanousd, nanousd_from_decimal
from tollway.storage.queries import InvalidQuery, get_record, list_records
from tollway.storage.stats import stats
from tollway.storage.schema import metadata, usage_records

__all__ = [
    "InvalidQuery",
    "LedgerWriter",
    "decimal_from_nanousd",
    "default_sqlite_url",
    "get_record",
    "list_records",
    "make_engine",
    "metadata",
    "migrate",
    "nanousd_from_decimal",
    "stats",
    "usage_records",
]
