"""Where cached answers live: the interface, and the in-process store.

Two kinds of values, both opaque bytes with a TTL: answers (`put`/`get`) and, for the semantic
cache, vector lists (`append` adds one fixed-size record and keeps the newest `max_records`).
`get2` reads an answer and a vector list together: one round trip on Redis.

`MemoryStore` is an LRU bounded by *bytes* (keys, values and a per-entry overhead), not by
entries: a few huge answers cannot blow the memory bound. Expired entries are dropped when
read, and the least recently used ones when the bound is reached. Written by hand because the
maintained LRU caches (cachetools, functools) count entries, or sizes only through a
per-item callback without per-entry TTLs, and the whole thing is an OrderedDict.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol

ENTRY_OVERHEAD = 120  # bytes: the dict slot, the tuple and two bytes objects' headers, roughly


class CacheStore(Protocol):
    name: str

    async def get(self, key: bytes) -> bytes | None: ...

    async def get2(self, key: bytes, list_key: bytes) -> tuple[bytes | None, bytes | None]: ...

    async def put(self, key: bytes, value: bytes, ttl_s: float) -> None: ...

    async def append(self, list_key: bytes, record: bytes, max_records: int, ttl_s: float) -> None: ...

    async def close(self) -> None: ...


class MemoryStore:
    name = "memory"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def _get(self, key: bytes) -> bytes | None:
        found = self._items.get(key)
        if found is None:
            return None
        value, expires = found
        if expires <= time.monotonic():
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return value

    def _drop(self, key: bytes) -> None:
        value, _ = self._items.pop(key)
        self.bytes -= len(key) + len(value) + ENTRY_OVERHEAD

    def _set(self, key: bytes, value: bytes, ttl_s: float) -> None:
        size = len(key) + len(value) + ENTRY_OVERHEAD
        if key in self._items:
            self._drop(key)
        if size > self.max_bytes:
            return
        self._items[key] = (value, time.monotonic() + ttl_s)
        self.bytes += size
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._items)))

    async def get(self, key: bytes) -> bytes | None:
        return self._get(key)

    async def get2(self, key: bytes, list_key: bytes) -> tuple[bytes | None, bytes | None]:
        return self._get(key), self._get(list_key)

    async def put(self, key: bytes, value: bytes, ttl_s: float) -> None:
        self._set(key, value, ttl_s)

    async def append(self, list_key: bytes, record: bytes, max_records: int, ttl_s: float) -> None:
        old = self._get(list_key) or b""
        keep = len(record) * (max_records - 1)
        if len(old) > keep:
            old = old[len(old) - keep:] if keep else b""
        self._set(list_key, old + record, ttl_s)

    async def close(self) -> None:
        self._items.clear()
        self.bytes = 0
