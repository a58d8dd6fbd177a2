"""Reading and writing the policy tables (keys, teams / projects / customers, budgets).

Writes go through `PolicyStore.change()`: one transaction that makes the change, appends the
audit entry and bumps `policy_version`, the marker every instance polls (see `refresh`), so
a change is either entirely visible or not at all. Nothing here runs on the request path.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tollway.storage.schema import api_keys, budgets, key_groups, policy_version


@dataclass(slots=True)
class Snapshot:
    """Everything the directory is built from: active keys, groups and budgets."""

    version: int
    keys: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    budgets: list[dict[str, Any]]


def key_row_out(row: Any) -> dict[str, Any]:
    d = dict(row._mapping if hasattr(row, "_mapping") else row)
    d["roles"] = orjson.loads(d["roles"])
    d["models"] = None if d["models"] is None else orjson.loads(d["models"])
    d["credentials"] = {} if not d["credentials"] else orjson.loads(d["credentials"])
    return d


def key_row_in(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if "roles" in out:
        out["roles"] = orjson.dumps(sorted(out["roles"])).decode()
    if "models" in out:
        out["models"] = None if out["models"] is None else orjson.dumps(out["models"]).decode()
    if "credentials" in out:
        out["credentials"] = orjson.dumps(out["credentials"]).decode() if out["credentials"] else None
    return out


class PolicyStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def version(self) -> int:
        async with self.engine.connect() as conn:
            v = (await conn.execute(select(policy_version.c.version).where(policy_version.c.id == 1))).scalar()
        return int(v or 0)

    async def snapshot(self) -> Snapshot:
        async with self.engine.connect() as conn:
            v = (await conn.execute(select(policy_version.c.version).where(policy_version.c.id == 1))).scalar()
            keys = [key_row_out(r) for r in await conn.execute(select(api_keys).where(api_keys.c.revoked_at.is_(None)))]
            groups = [dict(r._mapping) for r in await conn.execute(select(key_groups))]
            bud = [dict(r._mapping) for r in await conn.execute(select(budgets))]
        return Snapshot(int(v or 0), keys, groups, bud)

    # -- reads for the admin API and the CLI ----------------------------------------------------
    async def list_keys(self, include_revoked: bool = True) -> list[dict[str, Any]]:
        q = select(api_keys).order_by(api_keys.c.created_at)
        if not include_revoked:
            q = q.where(api_keys.c.revoked_at.is_(None))
        async with self.engine.connect() as conn:
            return [key_row_out(r) for r in await conn.execute(q)]

    async def get_key(self, key_id: str, conn: AsyncConnection | None = None) -> dict[str, Any] | None:
        q = select(api_keys).where(api_keys.c.id == key_id)
        if conn is not None:
            row = (await conn.execute(q)).first()
        else:
            async with self.engine.connect() as c:
                row = (await c.execute(q)).first()
        return key_row_out(row) if row is not None else None

    async def list_groups(self, kind: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(key_groups).where(key_groups.c.kind == kind).order_by(key_groups.c.id))
            return [dict(r._mapping) for r in rows]

    async def get_group(self, kind: str, gid: str, conn: AsyncConnection | None = None) -> dict[str, Any] | None:
        q = select(key_groups).where(and_(key_groups.c.kind == kind, key_groups.c.id == gid))
        if conn is not None:
            row = (await conn.execute(q)).first()
        else:
            async with self.engine.connect() as c:
                row = (await c.execute(q)).first()
        return dict(row._mapping) if row is not None else None

    async def list_budgets(self, scope: str | None = None, target: str | None = None,
                           conn: AsyncConnection | None = None) -> list[dict[str, Any]]:
        q = select(budgets).order_by(budgets.c.created_at, budgets.c.id)
        if scope is not None:
            q = q.where(budgets.c.scope == scope)
        if target is not None:
            q = q.where(budgets.c.target == target)
        if conn is not None:
            return [dict(r._mapping) for r in await conn.execute(q)]
        async with self.engine.connect() as c:
            return [dict(r._mapping) for r in await c.execute(q)]

    async def get_budget(self, bid: str, conn: AsyncConnection | None = None) -> dict[str, Any] | None:
        q = select(budgets).where(budgets.c.id == bid)
        if conn is not None:
            row = (await conn.execute(q)).first()
        else:
            async with self.engine.connect() as c:
                row = (await c.execute(q)).first()
        return dict(row._mapping) if row is not None else None

    # -- writes -----------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def change(self) -> AsyncIterator[AsyncConnection]:
        """A transaction for one change; bumps the marker when it commits."""
        async with self.engine.begin() as conn:
            yield conn
            await conn.execute(update(policy_version).where(policy_version.c.id == 1)
                               .values(version=policy_version.c.version + 1, updated_at=time.time()))

    @staticmethod
    async def insert_key(conn: AsyncConnection, values: dict[str, Any]) -> None:
        await conn.execute(insert(api_keys).values(**key_row_in(values)))

    @staticmethod
    async def update_key(conn: AsyncConnection, key_id: str, values: dict[str, Any]) -> None:
        await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(**key_row_in(values)))

    @staticmethod
    async def insert_group(conn: AsyncConnection, values: dict[str, Any]) -> None:
        await conn.execute(insert(key_groups).values(**values))

    @staticmethod
    async def update_group(conn: AsyncConnection, kind: str, gid: str, values: dict[str, Any]) -> None:
        await conn.execute(update(key_groups).where(and_(key_groups.c.kind == kind, key_groups.c.id == gid))
                           .values(**values))

    @staticmethod
    async def delete_group(conn: AsyncConnection, kind: str, gid: str) -> None:
        await conn.execute(delete(key_groups).where(and_(key_groups.c.kind == kind, key_groups.c.id == gid)))

    @staticmethod
    async def insert_budget(conn: AsyncConnection, values: dict[str, Any]) -> None:
        await conn.execute(insert(budgets).values(**values))

    @staticmethod
    async def update_budget(conn: AsyncConnection, bid: str, values: dict[str, Any]) -> None:
        await conn.execute(update(budgets).where(budgets.c.id == bid).values(**values))

    @staticmethod
    async def delete_budget(conn: AsyncConnection, bid: str) -> None:
        await conn.execute(delete(budgets).where(budgets.c.id == bid))

    @staticmethod
    async def delete_budgets_of(conn: AsyncConnection, scope: str, target: str) -> None:
        await conn.execute(delete(budgets).where(and_(budgets.c.scope == scope, budgets.c.target == target)))
