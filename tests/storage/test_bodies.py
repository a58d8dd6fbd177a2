"""Bodies in the ledger: stored redacted, read back, deleted after their retention in batches."""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.config import build_settings
from tollway.guard.sanitizer import Guard
from tollway.storage import bodies as bodies_mod
from tollway.storage.bodies import BodyStore

AWS = "AKIA" + "ZT3XGQWM7N4RB2VC"  # FAKE


def store(engine: AsyncEngine, cap: int = 1024) -> BodyStore:
    guard = Guard(build_settings({"store": {"log_bodies": True}}, {}))
    return BodyStore(engine, guard, cap=cap, retention_days=1)


async def test_bodies_are_redacted_capped_and_read_back(engine: AsyncEngine) -> None:
    bs = store(engine, cap=1024)
    cap = bs.capture(pii=True)
    cap.add(b'data: {"text": "key ' + AWS.encode() + b' to jane.doe@example.com"}\n\n')
    cap.add(b"x" * 2000)
    bs.put("t-1", time.time(), b'{"messages": [{"content": "my key ' + AWS.encode() + b'"}]}' + b" " * 2000, cap)
    got = await bs.get("t-1")
    assert got is not None
    assert AWS not in got["request"] and "[REDACTED:AWS_ACCESS_KEY]" in got["request"]
    assert AWS not in got["response"] and "jane.doe" not in got["response"]
    assert got["request_truncated"] and got["response_truncated"] and len(got["response"]) <= 1024 + 64
    assert await bs.get("t-missing") is None


async def test_retention_deletes_old_bodies_in_batches(engine: AsyncEngine, monkeypatch) -> None:
    monkeypatch.setattr(bodies_mod, "DELETE_BATCH", 3)
    bs = store(engine)
    now = time.time()
    for i in range(8):
        bs.put(f"old-{i}", now - 3 * 86400, b"{}", bs.capture(pii=False))
    bs.put("new", now, b"{}", bs.capture(pii=False))
    await bs.flush()
    assert await bs.sweep(now - 86400) == 8
    assert await bs.get("old-0") is None and await bs.get("new") is not None
