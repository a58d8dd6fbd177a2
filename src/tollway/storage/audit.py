"""The audit log: every change made through the admin API or the CLI (who, what, when,
before → after). Written synchronously with the change it describes (admin calls are rare;
nothing here is on the request path). Values that look like secrets never reach a row:
`scrub()` replaces them, whatever the caller passed.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tollway.storage.schema import audit_log

# Field names whose values are never written, at any depth.
_SECRET_NAMES = ("key", "secret", "token", "password", "credential", "authorization")
_NOT_SECRET = frozenset({"key_id", "public_id", "key_prefix", "keys", "api_key_set", "has_key", "max_tokens",
                         "tokens", "input_tokens", "output_tokens"})


def _is_secret_name(name: str) -> bool:
    n = name.lower()
    if n in _NOT_SECRET or n.endswith("_id"):
        return False
    return any(s in n for s in _SECRET_NAMES)


def scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("***" if _is_secret_name(str(k)) and v is not None else scrub(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value


class AuditLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record(self, actor: str, action: str, target: str, before: Any = None, after: Any = None, *,
                     conn: AsyncConnection | None = None) -> None:
        """Append one entry. Pass `conn` to write it in the same transaction as the change."""
        row = {"ts": time.time(), "actor": actor[:200], "action": action[:100], "target": target[:300],
               "before": None if before is None else orjson.dumps(scrub(before)).decode(),
               "after": None if after is None else orjson.dumps(scrub(after)).decode()}
        if conn is not None:
            await conn.execute(insert(audit_log), [row])
            return
        async with self._engine.begin() as c:
            await c.execute(insert(audit_log), [row])

    async def list(self, *, limit: int = 100, before_id: int | None = None, action: str | None = None,
                   target: str | None = None, actor: str | None = None) -> dict[str, Any]:
        """Newest first; `next_cursor` is the id to pass as `before_id` for the next page."""
        limit = max(1, min(limit, 1000))
        q = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit + 1)
        if before_id is not None:
            q = q.where(audit_log.c.id < before_id)
        if action:
            q = q.where(audit_log.c.action == action)
        if target:
            q = q.where(audit_log.c.target == target)
        if actor:
            q = q.where(audit_log.c.actor == actor)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
        data = [{"id": r["id"], "ts": r["ts"], "actor": r["actor"], "action": r["action"], "target": r["target"],
                 "before": None if r["before"] is None else orjson.loads(r["before"]),
                 "after": None if r["after"] is None else orjson.loads(r["after"])} for r in rows[:limit]]
        return {"object": "list", "data": data,
                "next_cursor": str(data[-1]["id"]) if len(rows) > limit else None}
