"""Where `tollway keys|teams|projects|customers|budgets` commands act: on the store a config
names (`--config`: the same operations as the admin API, audited as `cli:<user>`), or through
a running Tollway's admin API (`--url` and an admin key). Either way every running instance
sees the change within a second (they poll the store's change marker).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from tollway.config import Settings
from tollway.errors import ProxyError

# operation -> (method, path template); {0} is the first argument (an id)
_ROUTES: dict[str, tuple[str, str]] = {
    "keys.list": ("GET", "/admin/keys"), "keys.create": ("POST", "/admin/keys"),
    "keys.show": ("GET", "/admin/keys/{0}"), "keys.update": ("PATCH", "/admin/keys/{0}"),
    "keys.revoke": ("POST", "/admin/keys/{0}/revoke"), "keys.rotate": ("POST", "/admin/keys/{0}/rotate"),
    "budgets.list": ("GET", "/admin/budgets"), "budgets.create": ("POST", "/admin/budgets"),
    "budgets.show": ("GET", "/admin/budgets/{0}"), "budgets.update": ("PATCH", "/admin/budgets/{0}"),
    "budgets.delete": ("DELETE", "/admin/budgets/{0}"),
}
for _kind, _plural in (("team", "teams"), ("project", "projects"), ("customer", "customers")):
    _ROUTES.update({
        f"{_plural}.list": ("GET", f"/admin/{_plural}"), f"{_plural}.create": ("POST", f"/admin/{_plural}"),
        f"{_plural}.show": ("GET", f"/admin/{_plural}/{{0}}"), f"{_plural}.update": ("PATCH", f"/admin/{_plural}/{{0}}"),
        f"{_plural}.delete": ("DELETE", f"/admin/{_plural}/{{0}}"),
    })
_KINDS = {"teams": "team", "projects": "project", "customers": "customer"}


class CommandError(Exception):
    """Shown to the operator as it is; `status` is the HTTP status it corresponds to."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RemoteBackend:
    def __init__(self, url: str, admin_key: str | None) -> None:
        self.url = url.rstrip("/")
        self.key = admin_key

    def run(self, op: str, *args: Any, body: Any = None, query: dict[str, str] | None = None) -> Any:
        method, template = _ROUTES[op]
        path = template.format(*(urllib.parse.quote(str(a), safe="") for a in args))
        if query:
            path += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"content-type": "application/json"}
        if self.key:
            headers["authorization"] = f"Bearer {self.key}"
        data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                out = json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            try:
                msg = json.loads(e.read())["error"]["message"]
            except Exception:
                msg = f"HTTP {e.code}"
            raise CommandError(msg, e.code) from None
        except (urllib.error.URLError, OSError) as e:
            raise CommandError(f"cannot reach Tollway at {self.url}: {getattr(e, 'reason', e)}", 503) from None
        return out["data"] if op.endswith(".list") else out


class LocalBackend:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.actor = f"cli:{_user()}"

    def run(self, op: str, *args: Any, body: Any = None, query: dict[str, str] | None = None) -> Any:
        try:
            return asyncio.run(self._run(op, args, body, query or {}))
        except ProxyError as e:
            raise CommandError(e.message, e.status) from None

    async def _run(self, op: str, args: tuple[Any, ...], body: Any, query: dict[str, str]) -> Any:
        from tollway.policy.manage import PolicyAdmin
        from tollway.policy.spend import ledger_spend
        from tollway.policy.store import PolicyStore
        from tollway.secrets import SecretBox
        from tollway.storage.audit import AuditLog
        from tollway.storage.engine import make_engine, migrate

        url = self.settings.store_url
        await migrate(url)
        engine = make_engine(url)
        try:
            async def spend(budgets):  # the ledger's sums: exact once calls in flight are recorded
                return {bid: (n, 0) for bid, n in (await ledger_spend(engine, budgets)).items()}

            sk = self.settings.server.secret_key
            admin = PolicyAdmin(self.settings, PolicyStore(engine), AuditLog(engine),
                                SecretBox(sk.get_secret_value()) if sk is not None else None, spend)
            resource, verb = op.split(".")
            if resource == "keys":
                return await {
                    "list": lambda: admin.list_keys(), "create": lambda: admin.create_key(self.actor, body),
                    "show": lambda: admin.get_key(args[0]), "update": lambda: admin.update_key(self.actor, args[0], body),
                    "revoke": lambda: admin.revoke_key(self.actor, args[0]),
                    "rotate": lambda: admin.rotate_key(self.actor, args[0], body),
                }[verb]()
            if resource == "budgets":
                return await {
                    "list": lambda: admin.list_budgets(query.get("scope"), query.get("target")),
                    "create": lambda: admin.create_budget(self.actor, body), "show": lambda: admin.get_budget(args[0]),
                    "update": lambda: admin.update_budget(self.actor, args[0], body),
                    "delete": lambda: admin.delete_budget(self.actor, args[0]),
                }[verb]()
            kind = _KINDS[resource]
            return await {
                "list": lambda: admin.list_groups(kind), "create": lambda: admin.create_group(self.actor, kind, body),
                "show": lambda: admin.get_group(kind, args[0]),
                "update": lambda: admin.update_group(self.actor, kind, args[0], body),
                "delete": lambda: admin.delete_group(self.actor, kind, args[0]),
            }[verb]()
        finally:
            await engine.dispose()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
