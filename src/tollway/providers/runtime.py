"""Providers added and removed at run time (`POST /v1/providers`, `DELETE /v1/providers/{id}`).

They are validated exactly like `[[providers]]` in the config file (the same `ProviderSettings`),
stored in the `runtime_providers` table with the API key and headers sealed by the SecretBox,
written to the audit log in the same transaction, and announced by bumping the "providers"
change marker. Every instance polls that marker every `poll_secs` and, when it moved, reloads
the table and swaps in a new `Catalog`: this module is the one place that builds a catalog
after start-up. The request path reads `state.catalog` once per request, so a swap is atomic
for each request. Config-file providers are read-only here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError
from sqlalchemy import delete, insert, select, update

from tollway.config import ProviderSettings
from tollway.config_checks import validation_problems
from tollway.errors import ProxyError
from tollway.providers.base import Provider
from tollway.providers.registry import build_provider
from tollway.providers.transport import Transport
from tollway.routing.catalog import Catalog
from tollway.secrets import SecretBoxError
from tollway.storage.schema import runtime_providers as rp, store_markers
from tollway.tasks import cancel_and_wait

if TYPE_CHECKING:
    from tollway.state import AppState

log = logging.getLogger("tollway")
MARKER = "providers"
_SEALED = ("api_key", "headers")


def public_view(ps: ProviderSettings, source: str, **extra: Any) -> dict[str, Any]:
    """What GET /v1/providers shows of a provider: never a key or a header value."""
    return {"id": ps.id, "kind": ps.kind, "base_url": ps.base_url, "models": list(ps.models),
            "has_key": ps.api_key is not None, "headers": sorted(ps.headers), "source": source,
            "read_only": source == "config", **({"deployments": dict(ps.deployments), "api_version": ps.api_version}
                                                 if ps.kind == "azure_openai" else {}), **extra}


class RuntimeProviders:
    def __init__(self, state: "AppState", poll_secs: float = 2.0) -> None:
        self._state = state
        self._poll_secs = poll_secs
        self._version: int | None = None
        self._rows: dict[str, dict[str, Any]] = {}  # id -> public view (with created_at/by)
        self._built: dict[str, tuple[Provider, Transport]] = {}  # config providers, built once
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Load what is stored now (before the first request), then poll for changes."""
        self._built = {p.id: (p, t) for p, t in zip(self._state.catalog.providers,
                                                     self._state.catalog.transports, strict=True)}
        await self.refresh()
        self._task = asyncio.create_task(self._poll(), name="tollway-runtime-providers")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_secs)
            try:
                await self.refresh()
            except Exception:
                log.exception("providers: could not reload runtime providers; keeping the current ones")

    # -- reading --------------------------------------------------------------------------------

    async def refresh(self, force: bool = False) -> bool:
        """Reload and swap the catalog when the marker moved; True when it did."""
        async with self._lock:
            async with self._state.engine.connect() as conn:
                version = (await conn.execute(select(store_markers.c.version)
                                              .where(store_markers.c.name == MARKER))).scalar()
                if version == self._version and not force:
                    return False
                rows = (await conn.execute(select(rp).order_by(rp.c.created_at, rp.c.id))).mappings().all()
            settings: list[ProviderSettings] = []
            views: dict[str, dict[str, Any]] = {}
            config_ids = {p.id for p in self._state.settings.providers}
            for row in rows:
                try:
                    ps = self._open(row)
                except (ValidationError, SecretBoxError, ValueError) as e:
                    log.error("providers: runtime provider %r cannot be used: %s", row["id"], _reason(e))
                    continue
                if ps.id in config_ids:
                    log.error("providers: runtime provider %r has the id of a config provider; ignored", ps.id)
                    continue
                if ps.enabled:
                    settings.append(ps)
                views[ps.id] = public_view(ps, "runtime", created_at=row["created_at"], created_by=row["created_by"])
            if self._version is not None or settings:  # at start-up with none: the config catalog stands
                self._swap(settings)
            self._rows = views
            self._version = version
            return True

    def _open(self, row: Any) -> ProviderSettings:
        data = orjson.loads(row["settings"])
        box = self._state.secret_box
        for name, col in (("api_key", "api_key_sealed"), ("headers", "headers_sealed")):
            if row[col] is not None:
                if box is None:
                    raise ValueError("its credentials are sealed and TOLLWAY_SECRET_KEY is not set")
                plain = box.open(row[col], f"provider:{row['id']}:{name}")
                data[name] = plain if name == "api_key" else orjson.loads(plain)
        return ProviderSettings.model_validate(data)

    def _swap(self, runtime: list[ProviderSettings]) -> None:
        """Build the catalog of config + runtime providers and put it in place."""
        st = self._state
        old = st.catalog
        built = list(self._built.values())
        for ps in runtime:
            built.append(build_provider(ps, st.http, st.tokens))
        catalog = Catalog(built, st.settings.aliases, known_models=st.prices.known_models)
        for p in catalog.providers:  # keep what upstreams listed until they are asked again
            if old.provider(p.id) is not None:
                if old.discovered(p.id):
                    catalog.set_discovered(p.id, old.discovered(p.id))
                if old.upstream_listing(p.id):
                    catalog.set_listing(p.id, old.upstream_listing(p.id))
        from tollway.providers.model_listing import UpstreamListing
        from tollway.providers.openai_compatible import ModelDiscovery

        catalog.discovery = ModelDiscovery(catalog, st.http)
        catalog.listing = UpstreamListing(catalog, built)
        st.catalog = catalog
        st.forget_byok()
        loop = asyncio.get_running_loop()
        for background in (old.discovery, old.listing):
            if background is not None:
                st.keep_task(loop.create_task(background.stop()))
        st.keep_task(loop.create_task(catalog.discovery.start()))
        st.keep_task(loop.create_task(catalog.listing.start()))
        log.info("providers: %d config + %d runtime provider(s): %s", len(self._built), len(runtime),
                 ", ".join(p.id for p in catalog.providers) or "none")

    def list(self) -> list[dict[str, Any]]:
        config = [public_view(ps, "config") for ps in self._state.settings.providers]
        return config + list(self._rows.values())

    # -- changing ---------------------------------------------------------------------------------

    async def add(self, body: dict[str, Any], actor: str) -> dict[str, Any]:
        try:
            ps = ProviderSettings.model_validate(body)
        except ValidationError as e:
            raise ProxyError("unprocessable", "Invalid provider: " + _reason(e)) from None
        if any(p.id == ps.id for p in self._state.settings.providers):
            raise ProxyError("conflict", f"Provider '{ps.id}' comes from the config file and is read-only here.")
        box = self._state.secret_box
        sealed: dict[str, str | None] = {"api_key": None, "headers": None}
        if ps.api_key is not None or ps.headers:
            if box is None:
                raise ProxyError("invalid_request", "Provider credentials set through the API are encrypted at rest: "
                                                    "set TOLLWAY_SECRET_KEY (or [server] secret_key) first.")
            if ps.api_key is not None:
                sealed["api_key"] = box.seal(ps.api_key.get_secret_value(), f"provider:{ps.id}:api_key")
            if ps.headers:
                sealed["headers"] = box.seal(orjson.dumps(ps.headers).decode(), f"provider:{ps.id}:headers")
        plain = ps.model_dump(mode="json", exclude=set(_SEALED))
        now = time.time()
        view = public_view(ps, "runtime", created_at=now, created_by=actor)
        async with self._state.engine.begin() as conn:
            exists = (await conn.execute(select(rp.c.id).where(rp.c.id == ps.id))).first()
            if exists is not None:
                raise ProxyError("conflict", f"Provider '{ps.id}' exists; delete it first to replace it.")
            await conn.execute(insert(rp).values(id=ps.id, kind=ps.kind, settings=orjson.dumps(plain).decode(),
                                                 api_key_sealed=sealed["api_key"],
                                                 headers_sealed=sealed["headers"], created_at=now,
                                                 created_by=actor))
            await self._bump(conn)
            await self._state.audit.record(actor, "provider.create", f"provider:{ps.id}", None, view, conn=conn)
        await self.refresh()
        return view

    async def remove(self, provider_id: str, actor: str) -> dict[str, Any]:
        if any(p.id == provider_id for p in self._state.settings.providers):
            raise ProxyError("conflict", f"Provider '{provider_id}' comes from the config file and is read-only here.")
        before = self._rows.get(provider_id)
        async with self._state.engine.begin() as conn:
            n = (await conn.execute(delete(rp).where(rp.c.id == provider_id))).rowcount
            if not n:
                raise ProxyError("not_found", f"No runtime provider '{provider_id}'.")
            await self._bump(conn)
            await self._state.audit.record(actor, "provider.delete", f"provider:{provider_id}", before, None,
                                           conn=conn)
        await self.refresh()
        return {"id": provider_id, "object": "provider", "deleted": True}

    @staticmethod
    async def _bump(conn: Any) -> None:
        await conn.execute(update(store_markers).where(store_markers.c.name == MARKER)
                           .values(version=store_markers.c.version + 1))


def _reason(e: Exception) -> str:
    if isinstance(e, ValidationError):  # the config file's messages, with key paths
        return "; ".join(f"{path}: {why}" if path else why for path, why in validation_problems(e, ProviderSettings))
    return str(e)
