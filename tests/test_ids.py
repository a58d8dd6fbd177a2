"""Trace ids are RFC 9562 UUIDv7: version and variant bits, time order, uniqueness."""

import time
import uuid

from tollway.ids import uuid7


def test_version_variant_and_uniqueness() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    for i in ids[:100]:
        u = uuid.UUID(i)
        assert u.version == 7 and u.variant == uuid.RFC_4122 and str(u) == i


def test_the_timestamp_is_the_creation_millisecond_and_orders_ids() -> None:
    before = time.time_ns() // 1_000_000
    first = uuid7()
    time.sleep(0.002)
    second = uuid7()
    after = time.time_ns() // 1_000_000
    ms = uuid.UUID(first).int >> 80
    assert before <= ms <= after
    assert first < second  # lexicographic order follows time across milliseconds
