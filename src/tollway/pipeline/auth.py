"""Who is calling: the master key or a configured key, compared as SHA-256 digests.

Unified OpenAI routes take `Authorization: Bearer`; Anthropic routes `x-api-key` or Bearer;
Gemini routes `x-goog-api-key` (or `?key=`, copied there by `api.gemini`) or Bearer; Azure-style
routes `api-key` or Bearer. `X-Tollway-Key` works everywhere. Pass-through routes (`/proxy/...`)
carry the caller's *provider* key in those headers, so Tollway's key travels in `X-Tollway-Key`
there instead.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tollway.config import Settings
from tollway.errors import ProxyError
from tollway.pipeline.context import RequestContext

if TYPE_CHECKING:
    from tollway.policy.model import KeyPolicy


ALL_ROLES: frozenset[str] = frozenset({"user", "viewer", "admin"})


@dataclass(frozen=True, slots=True, eq=False)
class KeyInfo:
    id: str  # the public id: names the key in records, logs, metrics and the API
    project: str | None = None  # default project of its calls
    master: bool = False
    roles: frozenset[str] = frozenset({"user"})
    name: str | None = None
    team: str | None = None
    customer: str | None = None  # every call of the key is billed to this customer
    source: str = "config"  # "master" | "config" | "store"
    policy: "KeyPolicy | None" = None  # limits, budgets, allow-list (policy.model); None: none at all
    # provider kind -> credential used instead of the provider's own key; None: sealed and unopenable
    credentials: Mapping[str, str | None] = field(default_factory=dict, repr=False)
    expires_at: float | None = None
    trace: bool = False  # streams start with the routing trace event ([[keys]] trace = true)

    def has(self, role: str) -> bool:
        """admin implies viewer; "user" (calling models) is never implied by the others."""
        return self.master or role in self.roles or (role == "viewer" and "admin" in self.roles)


def digest(secret: str | bytes) -> bytes:
    return hashlib.sha256(secret.encode() if isinstance(secret, str) else secret).digest()


# where each client format's SDK puts its key, besides Authorization: Bearer
_FORMAT_KEY_HEADER = {"anthropic": b"x-api-key", "gemini": b"x-goog-api-key"}
_WHERE = {"anthropic": "x-api-key", "gemini": "x-goog-api-key or ?key="}


def presented_key(ctx: RequestContext) -> bytes | None:
    if ctx.route.startswith("proxy."):
        return ctx.headers.get(b"x-tollway-key")
    own = _FORMAT_KEY_HEADER.get(ctx.wire_format)
    if own is not None:
        key = ctx.headers.get(own)
        if key:
            return key
    if ctx.route.startswith("azure."):
        key = ctx.headers.get(b"api-key")
        if key:
            return key
    auth = ctx.headers.get(b"authorization")
    if auth and auth[:7].lower() == b"bearer ":
        return auth[7:].strip()
    return ctx.headers.get(b"x-tollway-key")


# digest -> (key, valid until): a rotated-out secret stays valid until its grace period ends
KeyEntries = dict[bytes, tuple[KeyInfo, float]]


class KeyRing:
    """Digest → key, in memory: lookups never touch the store. The plaintext keys are not kept.

    Built from settings at start-up; `policy.directory` replaces the entries whenever config
    or the store's keys change (`replace`), so a revoked key stops at the next refresh.
    """

    def __init__(self, settings: Settings) -> None:
        entries: KeyEntries = {}
        if settings.server.master_key is not None:
            entries[digest(settings.server.master_key.get_secret_value())] = (
                KeyInfo("master", master=True, roles=ALL_ROLES, source="master"), math.inf)
        for k in settings.keys:
            entries[digest(k.key.get_secret_value())] = (
                KeyInfo(k.id, k.project, roles=frozenset(k.roles), name=k.name, team=k.team, customer=k.customer),
                math.inf)
        self._entries = entries

    def replace(self, entries: KeyEntries) -> None:
        self._entries = entries

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    def lookup(self, presented: bytes | None) -> KeyInfo | None:
        if not presented:
            return None
        # Looking up a SHA-256 digest leaks nothing useful through timing: an attacker
        # cannot choose digest prefixes.
        found = self._entries.get(digest(presented))
        if found is None:
            return None
        info, until = found
        if until != math.inf or info.expires_at is not None:
            now = time.time()
            if now >= until or (info.expires_at is not None and now >= info.expires_at):
                return None
        return info

    def infos(self) -> list[KeyInfo]:
        """Every distinct key (a rotating key appears once)."""
        return list({id(i): i for i, _ in self._entries.values()}.values())


class AuthStage:
    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys

    async def before(self, ctx: RequestContext) -> None:
        if ctx.key is not None:  # an in-process call of Tollway's own (Ask), identity already known
            ctx.key_id = ctx.key.id
            ctx.team = ctx.key.team
            return
        if not self._keys.enabled:
            return
        info = self._keys.lookup(presented_key(ctx))
        if info is None:
            if ctx.route.startswith("proxy."):
                where = "X-Tollway-Key"
            elif ctx.route.startswith("azure."):
                where = "api-key"
            else:
                where = _WHERE.get(ctx.wire_format, "Authorization: Bearer")
            raise ProxyError("authentication", f"Missing or invalid Tollway key (send it in {where}).")
        if not info.has("user"):
            raise ProxyError("permission", f"Key '{info.id}' is a management key (roles: "
                                           f"{', '.join(sorted(info.roles))}); it cannot call models.")
        ctx.key = info
        ctx.key_id = info.id
        if info.project and ctx.project is None:
            ctx.project = info.project
        ctx.team = info.team

    async def after(self, ctx: RequestContext) -> None:
        return None
