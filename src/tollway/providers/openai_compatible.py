"""Local and self-hosted OpenAI-compatible servers: Ollama, vLLM, LM Studio, llama.cpp, LocalAI.

The OpenAI wire format (chat, completions, embeddings; no Responses API, so Responses
requests are translated to chat), an optional key, and the leniencies such servers need:
`compat` translation (plain `max_tokens`, `top_k`, any number of stop sequences), and streams
that may carry no usage at all, in which case `pipeline.accounting` counts tokens locally and
marks the record estimated.

Model discovery: with `discover_models` (the default) Tollway asks the server's
`GET {base_url}/models` at start-up and routes every model it lists, besides the configured
`models`. A server that is down is retried in the background every `interval` seconds until it
answers; `GET /v1/models` and a request for an unknown model ask again sooner (rate-limited),
so a server started after Tollway, or a model pulled since, is picked up without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from tollway.config import ProviderSettings
from tollway.errors import ProxyError
from tollway.providers.base import Endpoint, UpstreamRequest
from tollway.providers.openai import OpenAIProvider

if TYPE_CHECKING:
    from tollway.providers.base import Provider
    from tollway.providers.transport import Transport
    from tollway.routing.catalog import Catalog

log = logging.getLogger("tollway")


class OpenAICompatibleProvider(OpenAIProvider):
    wire_format = "openai"
    endpoints = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS})
    translate_options: dict[str, Any] = {"compat": True}

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)

    def __repr__(self) -> str:
        return f"OpenAICompatibleProvider(id={self.id!r}, base_url={self._base!r})"

    def models_request(self) -> UpstreamRequest:
        headers = {"accept": "application/json", **self.auth_headers(), **self.settings.headers}
        return UpstreamRequest("GET", self._base + "/models", headers, None)


def parse_model_list(body: bytes) -> list[str]:
    """Model ids from an OpenAI-style `{"data": [{"id": ...}]}` listing (also Ollama's native
    `{"models": [{"name"|"model": ...}]}`). Raises ValueError when it is neither."""
    obj = orjson.loads(body)
    if isinstance(obj, dict) and isinstance(obj.get("data"), list):
        return [m["id"] for m in obj["data"] if isinstance(m, dict) and isinstance(m.get("id"), str) and m["id"]]
    if isinstance(obj, dict) and isinstance(obj.get("models"), list):
        out = []
        for m in obj["models"]:
            name = (m.get("model") or m.get("name")) if isinstance(m, dict) else None
            if isinstance(name, str) and name:
                out.append(name)
        return out
    raise ValueError("not a model list")


class ModelDiscovery:
    """Keeps the catalog's discovered models of every `openai_compatible` provider that asks
    for discovery. All requests go through the shared transport, each bounded by `timeout`."""

    def __init__(self, catalog: "Catalog", transport: "Transport", *, timeout: float = 3.0,
                 interval: float = 60.0, min_gap: float = 2.0) -> None:
        self._catalog = catalog
        self._transport = transport
        self._timeout = timeout
        self._interval = interval
        self._min_gap = min_gap  # between two on-demand attempts for one provider
        self._targets: list[OpenAICompatibleProvider] = [
            p for p in catalog.providers  # type: ignore[misc]
            if isinstance(p, OpenAICompatibleProvider) and p.settings.discover_models]
        self._ok: set[str] = set()
        self._last: dict[str, float] = {}
        self._inflight: dict[str, asyncio.Task[bool]] = {}
        self._retry: dict[str, asyncio.Task[None]] = {}
        self._stopped = False

    @property
    def pending(self) -> list[str]:
        """Providers whose server has not answered yet."""
        return [p.id for p in self._targets if p.id not in self._ok]

    async def start(self) -> None:
        """One attempt per provider, concurrently (at most `timeout` in all); a provider that
        did not answer gets a background retry loop."""
        if not self._targets:
            return
        results = await asyncio.gather(*(self._attempt(p) for p in self._targets))
        for p, ok in zip(self._targets, results, strict=True):
            if not ok:
                self._retry[p.id] = asyncio.create_task(self._retry_loop(p), name=f"discover-models:{p.id}")

    async def stop(self) -> None:
        self._stopped = True
        tasks = [*self._retry.values(), *self._inflight.values()]
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._retry.clear()
        self._inflight.clear()

    async def refresh(self, wait: float = 1.0) -> None:
        """Ask again now (rate-limited per provider) and wait up to `wait` seconds for the
        answers (they go on in the background): used by `GET /v1/models`, so that it lists what
        the servers have now."""
        tasks = [t for t in (self._schedule(p) for p in self._targets) if t is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=wait)

    def poke(self) -> None:
        """Ask again soon, without waiting (a request named a model nobody serves)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        for p in self._targets:
            self._schedule(p)

    # -- internals ---------------------------------------------------------------------------------
    def _schedule(self, p: OpenAICompatibleProvider) -> "asyncio.Task[bool] | None":
        if self._stopped:
            return None
        running = self._inflight.get(p.id)
        if running is not None and not running.done():
            return running
        if time.monotonic() - self._last.get(p.id, float("-inf")) < self._min_gap:
            return None
        task = asyncio.create_task(self._attempt(p, quiet=True), name=f"discover-models:{p.id}")
        self._inflight[p.id] = task
        return task

    async def _retry_loop(self, p: OpenAICompatibleProvider) -> None:
        while p.id not in self._ok:
            await asyncio.sleep(self._interval)
            if p.id in self._ok:
                return
            await self._attempt(p, quiet=True)

    async def _fetch(self, p: OpenAICompatibleProvider) -> list[str]:
        resp = await self._transport.send(p.models_request())
        try:
            body = await resp.read()
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
            return parse_model_list(body)
        finally:
            resp.release()

    async def _attempt(self, p: "Provider", quiet: bool = False) -> bool:
        assert isinstance(p, OpenAICompatibleProvider)
        self._last[p.id] = time.monotonic()
        try:
            models = await asyncio.wait_for(self._fetch(p), self._timeout)
        except asyncio.CancelledError:
            raise
        except (ProxyError, asyncio.TimeoutError, ValueError, orjson.JSONDecodeError, OSError) as e:
            reason = e.message if isinstance(e, ProxyError) else (str(e) or type(e).__name__)
            if p.id not in self._ok and not quiet:
                log.warning("provider %s: could not list models at %s/models (%s); retrying every %g s",
                            p.id, p.settings.base_url, reason, self._interval)
            elif p.id in self._ok:
                log.debug("provider %s: model list refresh failed (%s); keeping the last list", p.id, reason)
            return p.id in self._ok
        first = p.id not in self._ok
        self._ok.add(p.id)
        changed = self._catalog.set_discovered(p.id, models)
        if first or changed:
            shown = ", ".join(models[:20]) + (f" (+{len(models) - 20} more)" if len(models) > 20 else "")
            log.info("provider %s: %d model(s) discovered: %s", p.id, len(models), shown or "none")
        retry = self._retry.pop(p.id, None)
        if retry is not None and retry is not asyncio.current_task():
            retry.cancel()
        return True
