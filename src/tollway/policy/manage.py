"""Changing keys, teams / projects / customers and budgets: the operations behind the admin
API and the CLI (which may run them on the store directly). Each validates its input (422 with
the field path, nothing changed), refuses to touch what config defines (409: edit the file),
and writes the change, its audit entry and the change marker in one transaction.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from tollway.config import Settings, parse_budget
from tollway.errors import ProxyError
from tollway.policy import keys as keyfmt
from tollway.policy.directory import build as build_directory
from tollway.policy.model import Budget
from tollway.policy.schemas import (GROUP_KINDS, BudgetCreate, BudgetUpdate, GroupCreate, GroupUpdate, KeyCreate,
                                    KeyRotate, KeyUpdate)
from tollway.policy.store import PolicyStore
from tollway.policy.views import SpendSource, budget_from_row, budget_view, group_view, key_view
from tollway.storage.money import nanousd_from_decimal

if TYPE_CHECKING:
    from tollway.secrets import SecretBox
    from tollway.storage.audit import AuditLog

_GROUP_SECTIONS = {"team": "teams", "project": "projects", "customer": "customers"}
_KEY_FIELDS = ("name", "roles", "team", "project", "customer", "rpm", "tpm", "max_concurrency", "queue_timeout_ms",
               "models", "max_tokens", "max_body_bytes")


def parse_input(model: type[BaseModel], body: Any) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as e:
        problems = []
        first = None
        for err in e.errors(include_input=False, include_url=False):
            path = ".".join(str(p) for p in err["loc"]) or "body"
            first = first or path
            problems.append(f"{path}: {err['msg'].removeprefix('Value error, ')}")
        raise ProxyError("unprocessable", "Invalid input: " + "; ".join(problems), param=first) from None


def _not_found(what: str, ident: str) -> ProxyError:
    return ProxyError("not_found", f"No {what} {ident!r}.")


def _read_only(what: str, ident: str) -> ProxyError:
    return ProxyError("conflict", f"The {what} {ident!r} is defined in the config file; change it there.")


class PolicyAdmin:
    def __init__(self, settings: Settings, store: PolicyStore, audit: "AuditLog", box: "SecretBox | None",
                 spend: SpendSource) -> None:
        self.settings = settings
        self.store = store
        self.audit = audit
        self.box = box
        self.spend = spend
        self._config_budgets = build_directory(settings, None, None)[0].budgets

    # -- shared ---------------------------------------------------------------------------------
    async def _budgets(self, scope: str | None = None, target: str | None = None) -> list[Budget]:
        out = [b for b in self._config_budgets if (scope is None or b.scope == scope)
               and (target is None or b.target == target)]
        out += [budget_from_row(r) for r in await self.store.list_budgets(scope, target)]
        return out

    async def _budget_views(self, budgets: list[Budget]) -> list[dict[str, Any]]:
        spent = await self.spend(budgets) if budgets else {}
        return [budget_view(b, spent.get(b.id)) for b in budgets]

    async def _set_budgets(self, conn: AsyncConnection, scope: str, target: str, specs: list[str]) -> None:
        """Make the store budgets of (scope, target) exactly `specs`, keeping the ids of windows that stay."""
        wanted: dict[str, int] = {}
        for spec in specs:
            amount, window = parse_budget(spec)
            wanted[window] = nanousd_from_decimal(amount) or 0
        now = time.time()
        for row in await self.store.list_budgets(scope, target, conn=conn):
            if row["window"] in wanted:
                await self.store.update_budget(conn, row["id"], {"limit_nanousd": wanted.pop(row["window"]),
                                                                 "updated_at": now})
            else:
                await self.store.delete_budget(conn, row["id"])
        for window, nanos in wanted.items():
            await self.store.insert_budget(conn, {"id": "b" + keyfmt.new_public_id()[1:], "scope": scope,
                                                  "target": target, "limit_nanousd": nanos, "window": window,
                                                  "created_at": now, "updated_at": now})

    def _team_exists(self, team: str, store_teams: set[str]) -> bool:
        return any(t.id == team for t in self.settings.teams) or team in store_teams

    # -- keys -------------------------------------------------------------------------------------
    def _config_key(self, kid: str) -> dict[str, Any] | None:
        for k in self.settings.keys:
            if k.id == kid:
                d = {f: getattr(k, f) for f in _KEY_FIELDS}
                d.update(id=k.id, source="config", credentials={c: True for c in k.credentials})
                return d
        return None

    async def _key_out(self, k: dict[str, Any]) -> dict[str, Any]:
        return key_view(k, await self._budget_views(await self._budgets("key", k["id"])))

    async def list_keys(self) -> list[dict[str, Any]]:
        rows = [self._config_key(k.id) for k in self.settings.keys]
        rows += [{**r, "source": "store"} for r in await self.store.list_keys()]
        budgets = await self._budgets("key")
        views = await self._budget_views(budgets)
        by_key: dict[str, list[dict[str, Any]]] = {}
        for b, v in zip(budgets, views, strict=True):
            by_key.setdefault(b.target, []).append(v)
        return [key_view(r, by_key.get(r["id"], [])) for r in rows if r is not None]

    async def get_key(self, kid: str) -> dict[str, Any]:
        k = self._config_key(kid)
        if k is None:
            row = await self.store.get_key(kid)
            if row is None:
                raise _not_found("key", kid)
            k = {**row, "source": "store"}
        return await self._key_out(k)

    def _seal(self, kid: str, creds: dict[str, str | None], current: dict[str, str]) -> dict[str, str]:
        out = dict(current)
        for kind, value in creds.items():
            if value is None:
                out.pop(kind, None)
                continue
            if self.box is None:
                raise ProxyError("unprocessable", "credentials: provider credentials are stored sealed, and this "
                                                  "Tollway has no TOLLWAY_SECRET_KEY ([server] secret_key) to seal "
                                                  "them with.", param="credentials")
            out[kind] = self.box.seal(value, f"key:{kid}:{kind}")
        return out

    async def _check_key_refs(self, body: Any) -> None:
        if body.team is not None:
            teams = {g["id"] for g in await self.store.list_groups("team")}
            if not self._team_exists(body.team, teams):
                raise ProxyError("unprocessable", f"team: unknown team {body.team!r} (create it first).",
                                 param="team")

    @staticmethod
    def _expiry(body: Any, now: float) -> float | None:
        if body.expires_in is not None:
            return now + keyfmt.parse_duration(body.expires_in)
        return body.expires_at

    async def create_key(self, actor: str, raw: Any) -> dict[str, Any]:
        body: KeyCreate = parse_input(KeyCreate, raw)
        await self._check_key_refs(body)
        now = time.time()
        kid = keyfmt.new_public_id()
        secret = keyfmt.new_key(kid)
        values: dict[str, Any] = {f: getattr(body, f) for f in _KEY_FIELDS}
        values.update(id=kid, roles=body.roles or ["user"], queue_timeout_ms=body.queue_timeout_ms or 0,
                      secret_hash=keyfmt.key_hash(secret), expires_at=self._expiry(body, now),
                      credentials=self._seal(kid, body.credentials or {}, {}), created_at=now, updated_at=now)
        async with self.store.change() as conn:
            await self.store.insert_key(conn, values)
            await self._set_budgets(conn, "key", kid, body.budgets or [])
            view = key_view({**values, "source": "store"}, [])
            await self.audit.record(actor, "key.create", f"key:{kid}", None, view, conn=conn)
        return {**await self.get_key(kid), "key": secret}

    async def _store_key(self, kid: str) -> dict[str, Any]:
        if self._config_key(kid) is not None:
            raise _read_only("key", kid)
        row = await self.store.get_key(kid)
        if row is None:
            raise _not_found("key", kid)
        if row["revoked_at"] is not None:
            raise ProxyError("conflict", f"The key {kid!r} is revoked; create a new one.")
        return {**row, "source": "store"}

    async def update_key(self, actor: str, kid: str, raw: Any) -> dict[str, Any]:
        body: KeyUpdate = parse_input(KeyUpdate, raw)
        row = await self._store_key(kid)
        await self._check_key_refs(body)
        now = time.time()
        given = body.model_fields_set
        values: dict[str, Any] = {f: getattr(body, f) for f in _KEY_FIELDS if f in given}
        if "roles" in values and values["roles"] is None:
            values["roles"] = ["user"]
        if "queue_timeout_ms" in values:
            values["queue_timeout_ms"] = values["queue_timeout_ms"] or 0
        if "name" in values and values["name"] is None:
            raise ProxyError("unprocessable", "name: a key keeps a name.", param="name")
        if "expires_in" in given or "expires_at" in given:
            values["expires_at"] = self._expiry(body, now)
        if body.credentials is not None:
            values["credentials"] = self._seal(kid, body.credentials, row["credentials"])
        values["updated_at"] = now
        before = await self._key_out(row)
        async with self.store.change() as conn:
            await self.store.update_key(conn, kid, values)
            if "budgets" in given:
                await self._set_budgets(conn, "key", kid, body.budgets or [])
            # no read on another connection while this transaction writes (a new SQLite
            # connection would wait for its lock, then fail): the after view is built from what is known
            after = key_view({**row, **values}, before["budgets"])
            if "budgets" in given:
                after["budgets"] = list(body.budgets or [])
            await self.audit.record(actor, "key.update", f"key:{kid}", before, after, conn=conn)
        return await self.get_key(kid)

    async def revoke_key(self, actor: str, kid: str) -> dict[str, Any]:
        row = await self._store_key(kid)
        now = time.time()
        async with self.store.change() as conn:
            await self.store.update_key(conn, kid, {"revoked_at": now, "updated_at": now, "prev_hash": None,
                                                    "prev_valid_until": None})
            await self.audit.record(actor, "key.revoke", f"key:{kid}", {"state": "active"}, {"state": "revoked"},
                                    conn=conn)
        return await self._key_out({**row, "revoked_at": now})

    async def rotate_key(self, actor: str, kid: str, raw: Any) -> dict[str, Any]:
        body: KeyRotate = parse_input(KeyRotate, raw or {})
        row = await self._store_key(kid)
        now = time.time()
        grace = keyfmt.parse_duration(body.grace) if body.grace else 0.0
        secret = keyfmt.new_key(kid)
        values = {"secret_hash": keyfmt.key_hash(secret), "prev_hash": row["secret_hash"] if grace else None,
                  "prev_valid_until": now + grace if grace else None, "updated_at": now}
        async with self.store.change() as conn:
            await self.store.update_key(conn, kid, values)
            await self.audit.record(actor, "key.rotate", f"key:{kid}", None,
                                    {"grace_secs": grace, "grace_ends": values["prev_valid_until"]},
                                    conn=conn)
        return {**await self.get_key(kid), "key": secret}

    # -- teams, projects, customers -----------------------------------------------------------------
    def _config_group(self, kind: str, gid: str) -> dict[str, Any] | None:
        for g in getattr(self.settings, _GROUP_SECTIONS[kind]):
            if g.id == gid:
                return {"id": g.id, "name": g.name, "rpm": g.rpm, "tpm": g.tpm, "source": "config"}
        return None

    async def list_groups(self, kind: str) -> list[dict[str, Any]]:
        rows = [self._config_group(kind, g.id) for g in getattr(self.settings, _GROUP_SECTIONS[kind])]
        rows += [{**r, "source": "store"} for r in await self.store.list_groups(kind)]
        return [group_view(kind, g, await self._budget_views(await self._budgets(kind, g["id"])))
                for g in rows if g is not None]

    async def get_group(self, kind: str, gid: str) -> dict[str, Any]:
        g = self._config_group(kind, gid)
        if g is None:
            row = await self.store.get_group(kind, gid)
            if row is None:
                raise _not_found(kind, gid)
            g = {**row, "source": "store"}
        return group_view(kind, g, await self._budget_views(await self._budgets(kind, gid)))

    async def create_group(self, actor: str, kind: str, raw: Any) -> dict[str, Any]:
        assert kind in GROUP_KINDS
        body: GroupCreate = parse_input(GroupCreate, raw)
        if self._config_group(kind, body.id) is not None or await self.store.get_group(kind, body.id) is not None:
            raise ProxyError("conflict", f"A {kind} {body.id!r} exists already.", param="id")
        now = time.time()
        values = {"kind": kind, "id": body.id, "name": body.name, "rpm": body.rpm, "tpm": body.tpm,
                  "created_at": now, "updated_at": now}
        async with self.store.change() as conn:
            await self.store.insert_group(conn, values)
            await self._set_budgets(conn, kind, body.id, body.budgets or [])
            await self.audit.record(actor, f"{kind}.create", f"{kind}:{body.id}", None,
                                    {**values, "budgets": body.budgets or []}, conn=conn)
        return await self.get_group(kind, body.id)

    async def _store_group(self, kind: str, gid: str) -> dict[str, Any]:
        if self._config_group(kind, gid) is not None:
            raise _read_only(kind, gid)
        row = await self.store.get_group(kind, gid)
        if row is None:
            raise _not_found(kind, gid)
        return row

    async def update_group(self, actor: str, kind: str, gid: str, raw: Any) -> dict[str, Any]:
        body: GroupUpdate = parse_input(GroupUpdate, raw)
        row = await self._store_group(kind, gid)
        given = body.model_fields_set
        values: dict[str, Any] = {f: getattr(body, f) for f in ("name", "rpm", "tpm") if f in given}
        values["updated_at"] = time.time()
        before = await self.get_group(kind, gid)
        async with self.store.change() as conn:
            await self.store.update_group(conn, kind, gid, values)
            if "budgets" in given:
                await self._set_budgets(conn, kind, gid, body.budgets or [])
            await self.audit.record(actor, f"{kind}.update", f"{kind}:{gid}", before,
                                    {**row, **values, "budgets": body.budgets}, conn=conn)
        return await self.get_group(kind, gid)

    async def delete_group(self, actor: str, kind: str, gid: str) -> dict[str, Any]:
        await self._store_group(kind, gid)
        before = await self.get_group(kind, gid)
        if kind == "team":
            members = [k["id"] for k in await self.store.list_keys(include_revoked=False) if k["team"] == gid]
            if members:
                raise ProxyError("conflict", f"Team {gid!r} still has keys ({', '.join(members[:10])}); move or "
                                             "revoke them first.")
        async with self.store.change() as conn:
            await self.store.delete_group(conn, kind, gid)
            await self.store.delete_budgets_of(conn, kind, gid)
            await self.audit.record(actor, f"{kind}.delete", f"{kind}:{gid}", before, None, conn=conn)
        return {"id": gid, "kind": kind, "deleted": True}

    # -- budgets ------------------------------------------------------------------------------------
    async def list_budgets(self, scope: str | None = None, target: str | None = None) -> list[dict[str, Any]]:
        return await self._budget_views(await self._budgets(scope, target))

    async def get_budget(self, bid: str) -> dict[str, Any]:
        for b in await self._budgets():
            if b.id == bid:
                return (await self._budget_views([b]))[0]
        raise _not_found("budget", bid)

    async def create_budget(self, actor: str, raw: Any) -> dict[str, Any]:
        body: BudgetCreate = parse_input(BudgetCreate, raw)
        amount, window = body.amount_window()
        if amount is None or window is None:
            raise ProxyError("unprocessable", "limit: give limit (\"50/month\") or limit_usd and window.",
                             param="limit")
        if body.scope == "key" and self._config_key(body.target) is None:
            row = await self.store.get_key(body.target)
            if row is None or row["revoked_at"] is not None:
                raise ProxyError("unprocessable", f"target: no active key {body.target!r}.", param="target")
        if body.scope == "team":
            teams = {g["id"] for g in await self.store.list_groups("team")}
            if not self._team_exists(body.target, teams):
                raise ProxyError("unprocessable", f"target: unknown team {body.target!r}.", param="target")
        for b in await self._budgets(body.scope, body.target):
            if b.window == window:
                raise ProxyError("conflict", f"{body.scope} {body.target!r} has a {window} budget already "
                                             f"({b.id}); update that one.", param="window")
        now = time.time()
        values = {"id": "b" + keyfmt.new_public_id()[1:], "scope": body.scope, "target": body.target,
                  "limit_nanousd": nanousd_from_decimal(amount), "window": window, "created_at": now,
                  "updated_at": now}
        async with self.store.change() as conn:
            await self.store.insert_budget(conn, values)
            await self.audit.record(actor, "budget.create", f"budget:{values['id']}", None,
                                    budget_view(budget_from_row(values), None), conn=conn)
        return await self.get_budget(values["id"])

    async def _store_budget(self, bid: str) -> dict[str, Any]:
        if any(b.id == bid for b in self._config_budgets):
            raise _read_only("budget", bid)
        row = await self.store.get_budget(bid)
        if row is None:
            raise _not_found("budget", bid)
        return row

    async def update_budget(self, actor: str, bid: str, raw: Any) -> dict[str, Any]:
        body: BudgetUpdate = parse_input(BudgetUpdate, raw)
        row = await self._store_budget(bid)
        amount, window = body.amount_window()
        values: dict[str, Any] = {"updated_at": time.time()}
        if amount is not None:
            values["limit_nanousd"] = nanousd_from_decimal(amount)
        if window is not None and window != row["window"]:
            for b in await self._budgets(row["scope"], row["target"]):
                if b.window == window:
                    raise ProxyError("conflict", f"A {window} budget exists for it already ({b.id}).",
                                     param="window")
            values["window"] = window
        before = budget_view(budget_from_row(row), None)
        async with self.store.change() as conn:
            await self.store.update_budget(conn, bid, values)
            await self.audit.record(actor, "budget.update", f"budget:{bid}", before,
                                    budget_view(budget_from_row({**row, **values}), None), conn=conn)
        return await self.get_budget(bid)

    async def delete_budget(self, actor: str, bid: str) -> dict[str, Any]:
        row = await self._store_budget(bid)
        async with self.store.change() as conn:
            await self.store.delete_budget(conn, bid)
            await self.audit.record(actor, "budget.delete", f"budget:{bid}", budget_view(budget_from_row(row), None),
                                    None, conn=conn)
        return {"id": bid, "deleted": True}
