"""Routing tests: the shared Redis fixture (a random key prefix per test)."""

from tests.services import redis_prefix  # noqa: F401  (fixture)
