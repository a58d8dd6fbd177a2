"""The in-memory directory of policy: keys (for the KeyRing), teams, projects, customers and
budgets, built from config and the store together. Rebuilt whole on every change (changes are
rare); requests only read it, so they never wait on the store.

Config entries are read-only through the API; their budgets get stable ids
(`cfg-<scope>-<target>-<window>`) so their spend is found again after a restart.
"""

from __future__ import annotations

import dataclasses

import hashlib
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tollway.config import Settings, parse_budget
from tollway.pipeline.auth import ALL_ROLES, KeyEntries, KeyInfo, digest
from tollway.policy.allowlist import AllowList
from tollway.policy.model import Budget, KeyPolicy, Limits
from tollway.policy.store import Snapshot
from tollway.storage.money import nanousd_from_decimal

if TYPE_CHECKING:
    from tollway.secrets import SecretBox

log = logging.getLogger("tollway")


def config_budget_id(scope: str, target: str, window: str) -> str:
    raw = f"{scope}\0{target}\0{window}"
    return f"cfg-{scope}-" + hashlib.sha256(raw.encode()).hexdigest()[:12] + f"-{window}"


@dataclass(eq=False)
class Directory:
    teams: dict[str, Limits] = field(default_factory=dict)
    projects: dict[str, Limits] = field(default_factory=dict)
    customers: dict[str, Limits] = field(default_factory=dict)
    budgets: list[Budget] = field(default_factory=list)
    keys: list[KeyInfo] = field(default_factory=list)  # config and store keys, master excluded
    version: int = 0

    @property
    def needs_policy(self) -> bool:
        """Whether any request can meet a limit: if not, the policy stage is left out."""
        return bool(self.projects or self.customers) or any(k.policy is not None for k in self.keys)

    def group(self, scope: str, gid: str) -> Limits | None:
        return {"team": self.teams, "project": self.projects, "customer": self.customers}[scope].get(gid)

    def budget(self, bid: str) -> Budget | None:
        for b in self.budgets:
            if b.id == bid:
                return b
        return None

    def budgets_of(self, scope: str, target: str) -> list[Budget]:
        return [b for b in self.budgets if b.scope == scope and b.target == target]


def _limits(scope: str, gid: str, rpm: int | None, tpm: int | None, budgets: list[Budget], name: str | None,
            source: str) -> Limits:
    return Limits(scope, gid, rpm, tpm, tuple(budgets), name, source)


def build(settings: Settings, snap: Snapshot | None, box: "SecretBox | None") -> tuple[Directory, KeyEntries]:
    snap = snap or Snapshot(0, [], [], [])
    budgets: list[Budget] = []
    by_target: dict[tuple[str, str], list[Budget]] = {}

    def add_budget(b: Budget) -> None:
        budgets.append(b)
        by_target.setdefault((b.scope, b.target), []).append(b)

    def config_budgets(scope: str, target: str, specs: list[str]) -> None:
        for spec in specs:
            amount, window = parse_budget(spec)
            add_budget(Budget(config_budget_id(scope, target, window), scope, target,
                              nanousd_from_decimal(amount) or 0, window, "config"))

    for k in settings.keys:
        config_budgets("key", k.id, k.budget)
    for scope, section in (("team", settings.teams), ("project", settings.projects),
                           ("customer", settings.customers)):
        for g in section:
            config_budgets(scope, g.id, g.budget)
    for row in snap.budgets:
        add_budget(Budget(row["id"], row["scope"], row["target"], int(row["limit_nanousd"]), row["window"], "store"))

    groups: dict[str, dict[str, Limits]] = {"team": {}, "project": {}, "customer": {}}
    for scope, section in (("team", settings.teams), ("project", settings.projects),
                           ("customer", settings.customers)):
        for g in section:
            groups[scope][g.id] = _limits(scope, g.id, g.rpm, g.tpm, by_target.get((scope, g.id), []), g.name,
                                          "config")
    for row in snap.groups:
        scope = row["kind"]
        if row["id"] in groups[scope]:
            continue  # config wins; the API refuses to create such a group anyway
        groups[scope][row["id"]] = _limits(scope, row["id"], row["rpm"], row["tpm"],
                                           by_target.get((scope, row["id"]), []), row["name"], "store")
    # budgets on a project / customer / team with no entry of its own
    for (scope, target), bs in by_target.items():
        if scope != "key" and target not in groups[scope]:
            groups[scope][target] = _limits(scope, target, None, None, bs, None, "implicit")

    entries: KeyEntries = {}
    if settings.server.master_key is not None:
        entries[digest(settings.server.master_key.get_secret_value())] = (
            KeyInfo("master", master=True, roles=ALL_ROLES, source="master"), math.inf)
    infos: list[KeyInfo] = []
    for k in settings.keys:
        info = _key_info(k.id, k.name, k.project, frozenset(k.roles), k.team, k.customer, "config",
                         k.rpm, k.tpm, by_target.get(("key", k.id), []), k.max_concurrency, k.queue_timeout_ms,
                         k.models, k.max_tokens, k.max_body_bytes,
                         {kind: v.get_secret_value() for kind, v in k.credentials.items()}, None, groups)
        if k.trace:
            info = dataclasses.replace(info, trace=True)
        entries[digest(k.key.get_secret_value())] = (info, math.inf)
        infos.append(info)
    config_ids = {k.id for k in settings.keys}
    for row in snap.keys:
        if row["id"] in config_ids:
            continue
        creds = _open_credentials(row["id"], row["credentials"], box)
        info = _key_info(row["id"], row["name"], row["project"], frozenset(row["roles"]), row["team"],
                         row["customer"], "store", row["rpm"], row["tpm"], by_target.get(("key", row["id"]), []),
                         row["max_concurrency"], row["queue_timeout_ms"] or 0, row["models"], row["max_tokens"],
                         row["max_body_bytes"], creds, row["expires_at"], groups)
        entries[bytes.fromhex(row["secret_hash"])] = (info, math.inf)
        if row["prev_hash"] and row["prev_valid_until"]:
            entries[bytes.fromhex(row["prev_hash"])] = (info, float(row["prev_valid_until"]))
        infos.append(info)
    d = Directory(groups["team"], groups["project"], groups["customer"], budgets, infos, snap.version)
    # projects / customers without limits need no lookup per request
    d.projects = {k: v for k, v in d.projects.items() if not v.empty}
    d.customers = {k: v for k, v in d.customers.items() if not v.empty}
    return d, entries


def _open_credentials(key_id: str, sealed: dict[str, str], box: "SecretBox | None") -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for kind, value in (sealed or {}).items():
        if box is None:
            log.error("key %s has a sealed %s credential but no TOLLWAY_SECRET_KEY is set: its %s calls fail",
                      key_id, kind, kind)
            out[kind] = None
            continue
        from tollway.secrets import SecretBoxError

        try:
            out[kind] = box.open(value, f"key:{key_id}:{kind}")
        except SecretBoxError as e:
            log.error("key %s: its %s credential %s; its %s calls fail", key_id, kind, e, kind)
            out[kind] = None
    return out


def _key_info(kid: str, name: str | None, project: str | None, roles: frozenset[str], team: str | None,
              customer: str | None, source: str, rpm: int | None, tpm: int | None, budgets: list[Budget],
              max_concurrency: int | None, queue_timeout_ms: int, models: Any, max_tokens: int | None,
              max_body_bytes: int | None, credentials: dict[str, str | None], expires_at: float | None,
              groups: dict[str, dict[str, Limits]]) -> KeyInfo:
    own = _limits("key", kid, rpm, tpm, budgets, name, source)
    team_limits = groups["team"].get(team) if team else None
    policy = KeyPolicy(
        own=None if own.empty else own,
        team=None if team_limits is None or team_limits.empty else team_limits,
        max_concurrency=max_concurrency, queue_timeout_ms=queue_timeout_ms,
        models=AllowList(models) if models is not None else None, max_tokens=max_tokens,
        max_body_bytes=max_body_bytes)
    if policy == KeyPolicy(queue_timeout_ms=queue_timeout_ms):
        policy = None  # nothing to enforce: the stage skips this key at no cost
    return KeyInfo(kid, project, roles=roles, name=name, team=team, customer=customer, source=source,
                   policy=policy, credentials=credentials, expires_at=expires_at)
