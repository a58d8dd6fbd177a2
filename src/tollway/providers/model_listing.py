"""What a glob provider (`models = ["gpt-*"]`) really serves, for Tollway's model list.

A pattern routes any matching name, but `GET /v1/models` should list what the upstream serves,
not every name in the price data. So for each OpenAI, Anthropic or Gemini provider with a
pattern and a key, Tollway asks the upstream's own model list (`GET {base}/models`,
`GET {base}/v1/models`, `GET {base}/v1beta/models`, following pages) in the background at
start-up and every `interval` seconds, and the catalog lists the names its patterns match.
Until an upstream has answered (or when it never does) the price data stands in.

This only feeds the listing: routing by pattern is unchanged, so a model the upstream added
since the last look is served at once. Failures are logged once and retried at the interval.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING
from urllib.parse import quote

import orjson

from tollway.errors import ProxyError
from tollway.providers.anthropic import DEFAULT_VERSION
from tollway.providers.base import UpstreamRequest
from tollway.tasks import cancel_and_wait

if TYPE_CHECKING:
    from tollway.providers.base import Provider
    from tollway.providers.transport import Transport
    from tollway.routing.catalog import Catalog

log = logging.getLogger("tollway")

_KINDS = frozenset({"openai", "anthropic", "gemini"})
_MAX_PAGES = 20


def wants_listing(provider: "Provider") -> bool:
    from tollway.routing.catalog import is_pattern

    s = provider.settings
    return s.kind in _KINDS and s.api_key is not None and any(is_pattern(m) for m in s.models)


def listing_request(provider: "Provider", page: str | None) -> UpstreamRequest:
    s = provider.settings
    headers = {"accept": "application/json", **provider.auth_headers(), **s.headers}
    if s.kind == "anthropic":
        headers.setdefault("anthropic-version", DEFAULT_VERSION)
        url = f"{s.base_url}/v1/models?limit=1000" + (f"&after_id={quote(page)}" if page else "")
    elif s.kind == "gemini":
        url = f"{s.base_url}/v1beta/models?pageSize=1000" + (f"&pageToken={quote(page)}" if page else "")
    else:
        url = f"{s.base_url}/models"
    return UpstreamRequest("GET", url, headers, None)


def parse_listing(kind: str, body: bytes) -> tuple[list[str], str | None]:
    """(model ids, the next page's token or None). Raises ValueError on anything else."""
    obj = orjson.loads(body)
    if not isinstance(obj, dict):
        raise ValueError("not a model list")
    if kind == "gemini":
        models = obj.get("models")
        if not isinstance(models, list):
            raise ValueError("not a model list")
        ids = [m["name"].removeprefix("models/") for m in models if isinstance(m, dict) and isinstance(m.get("name"), str)]
        token = obj.get("nextPageToken")
        return ids, token if isinstance(token, str) and token else None
    data = obj.get("data")
    if not isinstance(data, list):
        raise ValueError("not a model list")
    ids = [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str) and m["id"]]
    if kind == "anthropic" and obj.get("has_more") and isinstance(obj.get("last_id"), str):
        return ids, obj["last_id"]
    return ids, None


class UpstreamListing:
    """Keeps `Catalog.set_listing()` current for every provider `wants_listing()` picks."""

    def __init__(self, catalog: "Catalog", providers: list[tuple["Provider", "Transport"]], *,
                 timeout: float = 3.0, interval: float = 600.0) -> None:
        self._catalog = catalog
        self._targets = [(p, t) for p, t in providers if wants_listing(p)]
        self._timeout = timeout
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._failed: set[str] = set()

    async def start(self) -> None:
        """One look now (at most `timeout`), then one every `interval` in the background."""
        if self._targets:
            await self.refresh()
            self._task = asyncio.create_task(self._run(), name="upstream-model-listing")

    async def stop(self) -> None:
        await cancel_and_wait(self._task, swallow_errors=True)
        self._task = None

    async def refresh(self) -> None:
        """Ask every upstream once, concurrently (each bounded by `timeout`)."""
        await asyncio.gather(*(self._one(p, t) for p, t in self._targets))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.refresh()

    async def _fetch(self, provider: "Provider", transport: "Transport") -> list[str]:
        ids: list[str] = []
        page: str | None = None
        for _ in range(_MAX_PAGES):
            resp = await transport.send(listing_request(provider, page))
            try:
                body = await resp.read()
                if resp.status != 200:
                    raise ValueError(f"HTTP {resp.status}")
            finally:
                resp.release()
            found, page = parse_listing(provider.settings.kind, body)
            ids.extend(found)
            if page is None:
                break
        return ids

    async def _one(self, provider: "Provider", transport: "Transport") -> None:
        try:
            ids = await asyncio.wait_for(self._fetch(provider, transport), self._timeout)
        except asyncio.CancelledError:
            raise
        except (ProxyError, asyncio.TimeoutError, ValueError, orjson.JSONDecodeError, OSError) as e:
            reason = e.message if isinstance(e, ProxyError) else (str(e) or type(e).__name__)
            if provider.id not in self._failed:
                self._failed.add(provider.id)
                log.info("provider %s: could not list its models (%s); /v1/models shows the known models its "
                         "patterns match until it answers", provider.id, reason)
            return
        self._failed.discard(provider.id)
        self._catalog.set_listing(provider.id, ids)
