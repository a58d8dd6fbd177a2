"""GET /v1/models and GET /v1/models/{id}: Tollway's own model list, in the asking client's shape.

- OpenAI's (`{"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}`) by default;
- Anthropic's (`type: "model"`, `display_name`, `created_at`; `has_more` / `first_id` / `last_id`,
  paged with `limit`, `after_id`, `before_id`) when the request carries `anthropic-version`, as
  the Anthropic SDKs' always does;
- Gemini's (`{"models": [{"name": "models/…"}]}`) when it carries Google's key or client headers
  (`x-goog-api-key`, `x-goog-api-client`, `?key=`): google-genai asks `/v1/models` by default.

With keys configured, only a key holder gets a list (401 in the client's shape otherwise).
What is listed is `Catalog.listed_models()`: aliases, exact names, models discovered from local
servers, and for glob providers (`gpt-*`) the models their upstream lists (see
`routing.upstream_models`). A model is found by id when it is listed or routable.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from tollway.api.asgi import JSON_HEADERS, Receive, Scope, Send, send_bytes, send_json
from tollway.api.authz import require_key
from tollway.errors import ProxyError, render

if TYPE_CHECKING:
    from tollway.api.gemini import GeminiRoutes
    from tollway.state import AppState

_GOOGLE_HEADERS = (b"x-goog-api-key", b"x-goog-api-client")
_ANTHROPIC_PAGE_DEFAULT, _ANTHROPIC_PAGE_MAX = 20, 1000


def client_shape(scope: Scope) -> str:
    """"anthropic", "gemini" or "openai": whose model list this request expects."""
    gemini = False
    for k, _ in scope["headers"]:
        k = k.lower()
        if k == b"anthropic-version":
            return "anthropic"
        if k in _GOOGLE_HEADERS:
            gemini = True
    if gemini or b"key=" in scope.get("query_string", b""):
        return "gemini"
    return "openai"


class ModelRoutes:
    def __init__(self, state: "AppState", gemini: "GeminiRoutes") -> None:
        self._state = state
        self._gemini = gemini

    def _listed(self) -> list[tuple[str, str]]:
        listed = self._state.catalog.listed_models()
        table = self._state.router.table
        if not table.models and table.auto is None:
            return listed
        names = {m for m, _ in listed}
        extra = [(name, r.deployments[0].provider.id) for name, r in table.models.items()
                 if name not in names and r.deployments]
        if table.auto is not None and "auto" not in names and table.auto.deployments:
            extra.append(("auto", table.auto.deployments[0].provider.id))
        return extra + listed

    def _created(self) -> int:
        return int(self._state.started_at)

    def _openai(self, mid: str, pid: str) -> dict[str, Any]:
        return {"id": mid, "object": "model", "created": self._created(), "owned_by": pid}

    def _with_tollway(self, item: dict[str, Any], mid: str, pid: str) -> dict[str, Any]:
        """Tollway's own extension of an OpenAI list item (clients ignore unknown fields): the
        provider kind, endpoints and prices the portal's Models page shows."""
        st = self._state
        provider = st.catalog.provider(pid)
        if provider is None:
            return item
        price = st.prices.price_of(provider.kind, mid)
        pricing = None if price is None else {
            "input_per_mtok": f"{price.input_per_mtok:f}", "output_per_mtok": f"{price.output_per_mtok:f}",
            "cached_input_per_mtok": None if price.cached_input_per_mtok is None else f"{price.cached_input_per_mtok:f}",
            "source": st.prices.source_of(provider.kind, mid)}
        item["tollway"] = {"provider_kind": provider.kind, "endpoints": sorted(str(e.value) for e in provider.endpoints),
                           "pricing": pricing}
        return item

    def _anthropic(self, mid: str, pid: str) -> dict[str, Any]:
        created = datetime.fromtimestamp(self._created(), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"type": "model", "id": mid, "display_name": mid, "created_at": created}

    async def _refresh(self) -> None:
        discovery = self._state.catalog.discovery
        if discovery is not None:
            await discovery.refresh()  # list what local servers have now (rate-limited, bounded)

    async def list(self, scope: Scope, receive: Receive, send: Send) -> None:
        shape = client_shape(scope)
        if not await require_key(self._state, scope, send, shape):
            return
        if shape == "gemini":
            return await self._gemini.list(scope, send)
        await self._refresh()
        listed = self._listed()
        if shape == "openai":
            return await send_json(send, 200, {"object": "list", "data": [self._with_tollway(self._openai(m, p), m, p)
                                                                          for m, p in listed]})
        await self._anthropic_page(scope, send, listed)

    async def _anthropic_page(self, scope: Scope, send: Send, listed: list[tuple[str, str]]) -> None:
        qs = scope.get("query_string", b"")
        query = parse_qs(qs.decode("latin-1")) if qs else {}
        try:
            limit = int(query.get("limit", [_ANTHROPIC_PAGE_DEFAULT])[0])
        except ValueError:
            limit = 0
        if not 1 <= limit <= _ANTHROPIC_PAGE_MAX:
            status, body = render(ProxyError("invalid_request", f"limit must be an integer from 1 to "
                                             f"{_ANTHROPIC_PAGE_MAX}.", param="limit"), "anthropic")
            return await send_bytes(send, status, body, JSON_HEADERS)
        ids = [m for m, _ in listed]
        after, before = query.get("after_id", [None])[0], query.get("before_id", [None])[0]
        if before is not None:  # the page just before `before_id`
            end = ids.index(before) if before in ids else 0
            start = max(0, end - limit)
            page, has_more = listed[start:end], start > 0
        else:
            start = (ids.index(after) + 1 if after in ids else len(ids)) if after is not None else 0
            page, has_more = listed[start:start + limit], start + limit < len(listed)
        data = [self._anthropic(m, p) for m, p in page]
        await send_json(send, 200, {"data": data, "has_more": has_more,
                                    "first_id": data[0]["id"] if data else None,
                                    "last_id": data[-1]["id"] if data else None})

    async def get(self, scope: Scope, receive: Receive, send: Send, model_id: str) -> None:
        shape = client_shape(scope)
        if not await require_key(self._state, scope, send, shape):
            return
        name = unquote(model_id)
        if shape == "gemini":
            return await self._gemini.get(send, name.removeprefix("models/"))
        found = self.find(name)
        if found is not None:
            if shape == "anthropic":
                return await send_json(send, 200, self._anthropic(name, found))
            return await send_json(send, 200, self._with_catalog(self._openai(name, found), name))
        err = ProxyError("model_not_found", f"The model '{name}' is not routable by this Tollway.", param="model")
        status, body = render(err, "anthropic" if shape == "anthropic" else "openai")
        await send_bytes(send, status, body, JSON_HEADERS)

    def _with_catalog(self, item: dict[str, Any], name: str) -> dict[str, Any]:
        """The OpenAI shape plus Tollway's catalog entry (`GET /v1/catalog`) under `tollway`."""
        from tollway.api.routing import catalog_entry

        router = self._state.router
        route = router.table.models.get(name)
        if route is None and name == "auto":
            route = router.table.auto
        if route is None:
            dep = self._state.catalog.resolve(name)
            route = router.table.for_plain(dep) if dep is not None else None
        if route is not None:
            item["tollway"] = catalog_entry(self._state, name, route)
        return item

    def find(self, name: str) -> str | None:
        """The provider id serving `name`, when it is listed or routable."""
        for mid, pid in self._listed():
            if mid == name:
                return pid
        route = self._state.router.table.models.get(name)
        if route is not None and route.deployments:
            return route.deployments[0].provider.id
        dep = self._state.catalog.resolve(name)
        return dep.provider.id if dep is not None else None
