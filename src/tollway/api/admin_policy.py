"""Admin routes for keys, teams, projects, customers and budgets (`/admin/...`, JSON).

Reads need the viewer role, changes the admin role (api.authz). Handlers are thin: the work
is `policy.manage.PolicyAdmin`, shared with the CLI. After a change this instance reloads its
directory at once; the others see the store's change marker within `refresh_secs`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tollway.api.admin_api import AdminApi, AdminRequest
from tollway.errors import ProxyError
from tollway.policy.manage import PolicyAdmin
from tollway.policy.schemas import GROUP_KINDS
from tollway.policy.views import counters_spend

if TYPE_CHECKING:
    from tollway.state import AppState

_PLURAL = {"team": "teams", "project": "projects", "customer": "customers"}


def register_policy(api: AdminApi, state: "AppState") -> None:
    admin = PolicyAdmin(state.settings, state.policy_store, state.audit, state.secret_box,
                        counters_spend(state.counters))

    async def changed() -> None:
        await state.refresher.load()

    # -- keys -----------------------------------------------------------------------------------
    async def list_keys(req: AdminRequest) -> tuple[int, Any]:
        data = await admin.list_keys()
        state_filter = req.query.get("state")
        if state_filter:
            data = [k for k in data if k["state"] == state_filter]
        return 200, {"object": "list", "data": data}

    async def create_key(req: AdminRequest) -> tuple[int, Any]:
        out = await admin.create_key(req.actor, await req.json())
        await changed()
        return 201, out

    async def get_key(req: AdminRequest) -> tuple[int, Any]:
        return 200, await admin.get_key(req.params["id"])

    async def update_key(req: AdminRequest) -> tuple[int, Any]:
        out = await admin.update_key(req.actor, req.params["id"], await req.json())
        await changed()
        return 200, out

    async def revoke_key(req: AdminRequest) -> tuple[int, Any]:
        out = await admin.revoke_key(req.actor, req.params["id"])
        await changed()
        return 200, out

    async def rotate_key(req: AdminRequest) -> tuple[int, Any]:
        out = await admin.rotate_key(req.actor, req.params["id"], await req.json())
        await changed()
        return 200, out

    api.add("GET", "/admin/keys", "viewer", list_keys)
    api.add("POST", "/admin/keys", "admin", create_key)
    api.add("GET", "/admin/keys/{id}", "viewer", get_key)
    api.add("PATCH", "/admin/keys/{id}", "admin", update_key)
    api.add("DELETE", "/admin/keys/{id}", "admin", revoke_key)
    api.add("POST", "/admin/keys/{id}/revoke", "admin", revoke_key)
    api.add("POST", "/admin/keys/{id}/rotate", "admin", rotate_key)

    # -- teams, projects, customers ---------------------------------------------------------------
    for kind in GROUP_KINDS:
        _register_groups(api, admin, kind, changed)

    # -- budgets ----------------------------------------------------------------------------------
    async def list_budgets(req: AdminRequest) -> tuple[int, Any]:
        scope = req.query.get("scope")
        if scope is not None and scope not in ("key", *GROUP_KINDS):
            raise ProxyError("invalid_request", "scope must be key, team, project or customer.", param="scope")
        return 200, {"object": "list", "data": await admin.list_budgets(scope, req.query.get("target"))}

    async def create_budget(req: AdminRequest) -> tuple[int, Any]:
        out = await admin.create_budget(req.actor, await req.json())
        await changed()
        return 201, out

    async def get_budget(req: AdminRequest) -> tuple[int, Any]:
        return 200, await admin.get_budget(req.params["id"])

    async def update_budget(req: AdminRequest) -> tuple[int, Any]:
        out = await admin.update_budget(req.actor, req.params["id"], await req.json())
        await changed()
        return 200, out

    async def delete_budget(req: AdminRequest) -> tuple[int, Any]:
        out = await admin.delete_budget(req.actor, req.params["id"])
        await changed()
        return 200, out

    api.add("GET", "/admin/budgets", "viewer", list_budgets)
    api.add("POST", "/admin/budgets", "admin", create_budget)
    api.add("GET", "/admin/budgets/{id}", "viewer", get_budget)
    api.add("PATCH", "/admin/budgets/{id}", "admin", update_budget)
    api.add("DELETE", "/admin/budgets/{id}", "admin", delete_budget)


def _register_groups(api: AdminApi, admin: PolicyAdmin, kind: str, changed) -> None:
    base = "/admin/" + _PLURAL[kind]

    async def list_groups(req: AdminRequest) -> tuple[int, Any]:
        return 200, {"object": "list", "data": await admin.list_groups(kind)}

    async def create_group(req: AdminRequest) -> tuple[int, Any]:
        out = await admin.create_group(req.actor, kind, await req.json())
        await changed()
        return 201, out

    async def get_group(req: AdminRequest) -> tuple[int, Any]:
        return 200, await admin.get_group(kind, req.params["id"])

    async def update_group(req: AdminRequest) -> tuple[int, Any]:
        out = await admin.update_group(req.actor, kind, req.params["id"], await req.json())
        await changed()
        return 200, out

    async def delete_group(req: AdminRequest) -> tuple[int, Any]:
        out = await admin.delete_group(req.actor, kind, req.params["id"])
        await changed()
        return 200, out

    api.add("GET", base, "viewer", list_groups)
    api.add("POST", base, "admin", create_group)
    api.add("GET", base + "/{id}", "viewer", get_group)
    api.add("PATCH", base + "/{id}", "admin", update_group)
    api.add("DELETE", base + "/{id}", "admin", delete_group)
