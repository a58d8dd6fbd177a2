"""The route table: what each name a client may ask for expands to, computed once per config
and catalog (never per request).

- a `[[models]]` entry: its deployments (or its `fallback_order` when it lists none) are the
  primary group the policy ranks; its `fallback_order` (when it has deployments) and then
  `[routing] fallback_order` follow, in order;
- an alias: a one-deployment model (plus the global fallbacks);
- `auto` (with `[routing] auto = true`): every deployment of every model, alias and exact
  provider model name;
- any other name the catalog routes: one deployment, built per request by the catalog's cached
  resolution (the route stage's fast path), plus the global fallbacks.

Per deployment the facts the layers read are kept here too (`DeploymentInfo`): declared
capabilities, context window, prices as floats for ranking.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from tollway.routing.catalog import Deployment, Timeouts, is_pattern

if TYPE_CHECKING:
    from tollway.config import Settings
    from tollway.pricing import PriceBook
    from tollway.routing.catalog import Catalog
    from tollway.routing.settings import DeploymentSettings

log = logging.getLogger("tollway")

PRIMARY, MODEL_FALLBACK, GLOBAL_FALLBACK = 0, 1, 2
_INFO_MAX = 10_000
_NOT_CHAT = ("embed", "moderation", "whisper", "tts", "dall-e", "transcribe")


@dataclass(slots=True)
class DeploymentInfo:
    capabilities: frozenset[str] | None  # None: not declared (assumed capable)
    context_window: int | None
    input_per_mtok: Decimal | None
    output_per_mtok: Decimal | None
    chat: bool  # a chat model by its name (auto leaves embedding-like models out of chat calls)


@dataclass(slots=True)
class ModelRoute:
    name: str
    policy: str
    deployments: tuple[Deployment, ...]  # primary group first, then fallbacks, deduplicated
    groups: tuple[int, ...]  # PRIMARY / MODEL_FALLBACK / GLOBAL_FALLBACK, per deployment
    n_primary: int
    auto: bool = False
    single: bool = field(init=False)
    group_of: dict[str, int] = field(init=False)
    # precomputed for the layers' shortcuts (nothing to check: nothing is done per request)
    declared_caps: bool = False  # some deployment declares its capabilities
    min_window: int | None = None  # the smallest known context window
    has_concurrency: bool = False  # some deployment has max_concurrency, max_rpm or max_tpm
    offers: dict[str, bool] = field(default_factory=dict)  # endpoint -> every deployment offers it

    def __post_init__(self) -> None:
        self.single = len(self.deployments) == 1
        self.group_of = dict(zip((d.name for d in self.deployments), self.groups, strict=True))
        self.has_concurrency = any(d.max_concurrency is not None or d.max_rpm is not None or d.max_tpm is not None
                                   for d in self.deployments)


class RouteTable:
    def __init__(self, settings: "Settings", catalog: "Catalog", prices: "PriceBook") -> None:
        self.catalog = catalog
        self.settings = settings
        self._prices = prices
        routing = settings.routing
        self.info: dict[str, DeploymentInfo] = {}
        self.global_fallbacks = tuple(d for d in (self._target(t) for t in routing.fallback_order) if d is not None)
        self.models: dict[str, ModelRoute] = {}
        for m in settings.models:
            if m.deployments:
                primary = [d for d in (self._configured(ds) for ds in m.deployments) if d is not None]
                fallbacks = [d for d in (self._target(t) for t in m.fallback_order) if d is not None]
            else:
                primary = [d for d in (self._target(t, priority=i) for i, t in enumerate(m.fallback_order))
                           if d is not None]
                fallbacks = []
            self.models[m.name] = self._route(m.name, m.policy or routing.policy, primary, fallbacks)
        for alias in settings.aliases:
            if alias in self.models:
                continue
            dep = catalog.resolve(alias)
            if dep is not None:
                self._remember(dep)
                self.models[alias] = self._route(alias, routing.policy, [dep], [])
        self.auto: ModelRoute | None = None
        if routing.auto:
            pool: list[Deployment] = []
            seen: set[str] = set()
            for route in list(self.models.values()):
                for d in route.deployments:
                    if d.name not in seen:
                        seen.add(d.name)
                        pool.append(d)
            for p, t in zip(catalog.providers, catalog.transports, strict=True):
                for mname in p.settings.models:
                    if not is_pattern(mname):
                        d = Deployment(p, t, mname)
                        if d.name not in seen:
                            seen.add(d.name)
                            self._remember(d)
                            pool.append(d)
            policy = routing.policy if routing.policy != "priority" else "auto"
            self.auto = self._facts(ModelRoute("auto", policy, tuple(pool), tuple(PRIMARY for _ in pool), len(pool),
                                               auto=True))
        self._configured_count = len(self.info)  # what the config names; names clients make up come after

    # -- building ------------------------------------------------------------------------------
    def _target(self, target: str, priority: int = 0) -> Deployment | None:
        prov, _, model = target.partition(":")
        dep = self.catalog.deployment_for(prov, model)
        if dep is None:
            log.warning("routing: %s names provider %r, which is not configured (disabled?); left out", target, prov)
            return None
        if priority:
            dep = Deployment(dep.provider, dep.transport, dep.model, priority=priority)
        self._remember(dep)
        return dep

    def _configured(self, ds: "DeploymentSettings") -> Deployment | None:
        base = self._target(ds.target)
        if base is None:
            return None
        t = ds.timeouts
        timeouts = None if t is None else Timeouts(t.connect_secs, t.first_token_secs, t.total_secs)
        dep = Deployment(base.provider, base.transport, base.model, weight=ds.weight, priority=ds.priority,
                         timeouts=timeouts, max_concurrency=ds.max_concurrency, max_rpm=ds.max_rpm, max_tpm=ds.max_tpm)
        info = self.info[dep.name]
        if ds.capabilities is not None:
            info.capabilities = frozenset(ds.capabilities)
        if ds.context_window is not None:
            info.context_window = ds.context_window
        return dep

    def _remember(self, dep: Deployment) -> None:
        if dep.name in self.info:
            return
        if len(self.info) >= _INFO_MAX and getattr(self, "_configured_count", None) is not None:
            # names clients made up (a glob routes any of them): forget those, keep the configured
            for name in list(self.info)[self._configured_count:]:
                del self.info[name]
        kind = dep.provider.kind
        price = self._prices.price_of(kind, dep.model)
        window = self._prices.context_window(kind, dep.model) if kind != "demo" else None
        low = dep.model.lower()
        self.info[dep.name] = DeploymentInfo(
            capabilities=None, context_window=window,
            input_per_mtok=price.input_per_mtok if price else None,
            output_per_mtok=price.output_per_mtok if price else None,
            chat=not any(w in low for w in _NOT_CHAT))

    def _route(self, name: str, policy: str, primary: list[Deployment], fallbacks: list[Deployment]) -> ModelRoute:
        deps: list[Deployment] = []
        groups: list[int] = []
        seen: set[str] = set()
        for group, items in ((PRIMARY, primary), (MODEL_FALLBACK, fallbacks), (GLOBAL_FALLBACK, self.global_fallbacks)):
            for d in items:
                if d.name not in seen:
                    seen.add(d.name)
                    deps.append(d)
                    groups.append(group)
        n_primary = sum(1 for g in groups if g == PRIMARY)
        return self._facts(ModelRoute(name, policy, tuple(deps), tuple(groups), n_primary))

    def _facts(self, route: ModelRoute) -> ModelRoute:
        infos = [self.info_of(d) for d in route.deployments]
        route.declared_caps = any(i.capabilities is not None for i in infos)
        windows = [i.context_window for i in infos if i.context_window is not None]
        route.min_window = min(windows) if windows else None
        return route

    # -- lookup --------------------------------------------------------------------------------
    def for_plain(self, dep: Deployment) -> ModelRoute:
        """A name the catalog routes to one deployment, with the global fallbacks after it."""
        self._remember(dep)
        return self._route(dep.model, self.settings.routing.policy, [dep], [])

    def info_of(self, dep: Deployment) -> DeploymentInfo:
        info = self.info.get(dep.name)
        if info is None:
            self._remember(dep)
            info = self.info[dep.name]
        return info

    def every_deployment(self) -> list[Deployment]:
        """Each deployment some name routes to (configured models, aliases, global fallbacks and
        the exact model names of every provider), once each."""
        out: list[Deployment] = []
        seen: set[str] = set()
        routes = list(self.models.values()) + ([self.auto] if self.auto else [])
        for r in routes:
            for d in r.deployments:
                if d.name not in seen:
                    seen.add(d.name)
                    out.append(d)
        for d in self.global_fallbacks:
            if d.name not in seen:
                seen.add(d.name)
                out.append(d)
        for mid, pid in self.catalog.listed_models():
            dep = self.catalog.resolve(mid)
            if dep is not None and dep.name not in seen and dep.provider.id == pid:
                seen.add(dep.name)
                self._remember(dep)
                out.append(dep)
        return out
