"""Which provider serves a model name: aliases, `provider:model`, exact names, then globs.

Exact names are a provider's configured `models` plus the models it discovered at run time
(an OpenAI-compatible server's `GET /v1/models`, see `providers.openai_compatible`).
Resolution is cached per name on the instance; the cache is dropped whenever a provider's
discovered models change. A config reload builds a new Catalog.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from tollway.errors import ProxyError

if TYPE_CHECKING:
    from tollway.providers.base import Endpoint, Provider
    from tollway.providers.transport import Transport

_GLOB = frozenset("*?[")
# What a client asking a provider for an endpoint it lacks can do instead (by endpoint value).
_UNOFFERED_HINT = {
    "completions": " Legacy completions reach OpenAI-format providers only (OpenAI, Azure, local servers): "
                   "send the prompt as a user message to /v1/chat/completions (LlamaIndex: is_chat_model=True).",
    "embeddings": " Embeddings need a model of a provider that has them (OpenAI, Azure, Gemini, local servers).",
}


def is_pattern(name: str) -> bool:
    return any(c in _GLOB for c in name)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-deployment deadlines (seconds); None: the [server] defaults apply."""

    connect_s: float | None = None
    first_token_s: float | None = None  # request sent -> first content byte (streams) or headers
    total_s: float | None = None


@dataclass(frozen=True, slots=True)
class Deployment:
    """One way to serve a model: a provider, its transport, the upstream model name, and the
    routing facts the router and the attempt loop read (see tollway.routing)."""

    provider: "Provider"
    transport: "Transport"
    model: str  # the name sent upstream
    weight: float = 1.0
    priority: int = 0  # lower is tried first by the priority policy
    timeouts: Timeouts | None = None
    max_concurrency: int | None = None
    max_rpm: int | None = None
    max_tpm: int | None = None
    # `provider_id:model`: how records, headers, breakers and explain name this deployment
    # (computed once: the router reads it several times per request)
    name: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", f"{self.provider.id}:{self.model}")


class Catalog:
    def __init__(self, providers: list[tuple["Provider", "Transport"]], aliases: dict[str, str],
                 known_models: "Callable[[str], list[str]] | None" = None) -> None:
        self._providers = providers
        self._known_models = known_models  # kind -> model ids the price data knows
        self._by_id = {p.id: (p, t) for p, t in providers}
        self._aliases = dict(aliases)
        self._cache: dict[str, Deployment | None] = {}
        self._discovered: dict[str, tuple[str, ...]] = {}  # provider id -> model ids, in listed order
        self._discovered_sets: dict[str, frozenset[str]] = {}
        self._listings: dict[str, tuple[str, ...]] = {}  # provider id -> what its upstream lists (glob providers)
        # The background model discovery of this catalog's providers (started by AppState.open).
        self.discovery: Any = None
        # The periodic look at what glob providers' upstreams list (providers.model_listing).
        self.listing: Any = None

    @property
    def providers(self) -> list["Provider"]:
        return [p for p, _ in self._providers]

    @property
    def transports(self) -> list["Transport"]:
        """The transport of each provider, in the order of `providers`."""
        return [t for _, t in self._providers]

    def provider(self, provider_id: str) -> "Provider | None":
        entry = self._by_id.get(provider_id)
        return entry[0] if entry else None

    def first_of_kind(self, kind: str) -> tuple["Provider", "Transport"] | None:
        for p, t in self._providers:
            if p.kind == kind:
                return p, t
        return None

    def deployment_for(self, provider_id: str, model: str) -> Deployment | None:
        entry = self._by_id.get(provider_id)
        return Deployment(entry[0], entry[1], model) if entry else None

    # -- discovered models ----------------------------------------------------------------------
    def set_discovered(self, provider_id: str, models: list[str] | tuple[str, ...]) -> bool:
        """Record the models a provider listed; True when that changed what is routable."""
        if provider_id not in self._by_id:
            raise KeyError(provider_id)
        clean = tuple(dict.fromkeys(m for m in models if isinstance(m, str) and m))
        if self._discovered.get(provider_id) == clean:
            return False
        self._discovered[provider_id] = clean
        self._discovered_sets[provider_id] = frozenset(clean)
        self._cache.clear()  # a name may now resolve elsewhere (or at all)
        return True

    def set_listing(self, provider_id: str, models: list[str] | tuple[str, ...]) -> None:
        """What a glob provider's upstream lists (see `providers.model_listing`): /v1/models shows
        the names its patterns match instead of the price data's. Routing is not affected."""
        self._listings[provider_id] = tuple(dict.fromkeys(m for m in models if isinstance(m, str) and m))

    def upstream_listing(self, provider_id: str) -> tuple[str, ...]:
        """What `set_listing()` last recorded for a provider (empty when nothing yet)."""
        return self._listings.get(provider_id, ())

    def discovered(self, provider_id: str) -> tuple[str, ...]:
        return self._discovered.get(provider_id, ())

    def _exact(self, provider: "Provider", name: str) -> bool:
        if name in provider.settings.models:
            return True
        found = self._discovered_sets.get(provider.id)
        return found is not None and name in found

    def _names(self, provider: "Provider") -> list[str]:
        names = list(provider.settings.models)
        names.extend(m for m in self._discovered.get(provider.id, ()) if m not in names)
        return names

    # -- resolution -----------------------------------------------------------------------------
    def resolve(self, model: str) -> Deployment | None:
        try:
            return self._cache[model]
        except KeyError:
            pass
        found = self._resolve(model)
        if len(self._cache) < 10_000:
            self._cache[model] = found
        return found

    def _resolve(self, model: str) -> Deployment | None:
        target = self._aliases.get(model, model)
        prov_id, sep, rest = target.partition(":")
        if sep and prov_id in self._by_id:
            p, t = self._by_id[prov_id]
            return Deployment(p, t, rest)
        for p, t in self._providers:
            if self._exact(p, target):
                return Deployment(p, t, target)
        for p, t in self._providers:
            for pattern in p.settings.models:
                if fnmatchcase(target, pattern):
                    return Deployment(p, t, target)
        return None

    def require(self, model: str, endpoint: "Endpoint") -> Deployment:
        prov_id, sep, rest = model.partition(":")
        if sep and not rest.strip() and prov_id in self._by_id:
            raise ProxyError("invalid_request", f"The model '{model}' names provider '{prov_id}' but no model; "
                             f"write '{prov_id}:MODEL'.", param="model")
        dep = self.resolve(model)
        if dep is None:
            if self.discovery is not None:
                self.discovery.poke()  # a model pulled on a local server since the last look
            raise ProxyError(
                "model_not_found",
                f"The model '{model}' is not routable by this Tollway. Routable models: {', '.join(self.routable())}.",
                param="model",
            )
        from tollway.pipeline.translate import can_translate

        if not can_translate(endpoint, dep.provider):
            raise ProxyError(
                "invalid_request",
                f"The model '{model}' is served by provider '{dep.provider.id}' ({dep.provider.kind}), "
                f"which does not offer this endpoint.{_UNOFFERED_HINT.get(endpoint.value, '')}",
                param="model",
            )
        return dep

    def routable(self) -> list[str]:
        """Every name a client may send: aliases, exact names, then patterns."""
        names: list[str] = list(self._aliases)
        seen = set(names)
        for p, _ in self._providers:
            for m in self._names(p):
                if m not in seen:
                    names.append(m)
                    seen.add(m)
        return names

    def listed_models(self) -> list[tuple[str, str]]:
        """(model id, provider id) for /v1/models: aliases and exact (non-glob) names,
        discovered models included."""
        out: list[tuple[str, str]] = []
        seen: set[str] = set()
        for alias in self._aliases:
            dep = self.resolve(alias)
            if dep and alias not in seen:
                out.append((alias, dep.provider.id))
                seen.add(alias)
        for p, _ in self._providers:
            for m in self._names(p):
                if not is_pattern(m) and m not in seen:
                    out.append((m, p.id))
                    seen.add(m)
        # patterns (`gpt-*`) list the models they match that route to this provider: those its
        # upstream lists when it answered, else the known models of the price data
        for p, _ in self._providers:
            if not any(is_pattern(m) for m in p.settings.models):
                continue
            candidates = self._listings.get(p.id)
            if candidates is None:
                candidates = tuple(self._known_models(p.kind)) if self._known_models is not None else ()
            for m in candidates:
                if m not in seen:
                    dep = self.resolve(m)
                    if dep is not None and dep.provider is p:
                        out.append((m, p.id))
                        seen.add(m)
        return out
