"""The router: which deployments may serve a call, in the order to try them.

`plan(ctx, trace)` runs the five layers (`routing.layers`, `routing.scoring`) over the route
table (`routing.table`), then puts the session's sticky deployment first (affinity). Real
routing passes `trace=None`; `POST /v1/route/explain` passes a list and gets each layer's
verdicts: one code path for both. The table is rebuilt when the catalog is swapped (runtime
providers); everything else it needs was computed when it was built.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from tollway.errors import ProxyError
from tollway.providers.base import Endpoint
from tollway.routing import layers
from tollway.routing.affinity import Affinity
from tollway.routing.quality import QualityScores
from tollway.routing.scoring import cost_of, estimate_tokens, rank
from tollway.routing.table import ModelRoute, RouteTable

if TYPE_CHECKING:
    from tollway.pipeline.context import RequestContext
    from tollway.routing.catalog import Deployment
    from tollway.routing.health import MemoryHealth
    from tollway.routing.settings import ProfileSettings
    from tollway.state import AppState

_PLAIN_MAX = 4096


class Router:
    def __init__(self, state: "AppState") -> None:
        self._state = state
        self.settings = state.settings
        routing = state.settings.routing
        self.profiles: dict[str, "ProfileSettings"] = {p.name: p for p in routing.profiles}
        self.key_profiles = {k.id: k.routing_profile for k in state.settings.keys if k.routing_profile}
        self.affinity = Affinity(routing.affinity_size)
        self.quality = QualityScores(state)
        self.rng = random.Random()
        self._table: RouteTable | None = None
        self._plain: dict[str, ModelRoute] = {}

    @property
    def health(self) -> "MemoryHealth":
        return self._state.health  # type: ignore[return-value]

    @property
    def tokens(self) -> Any:
        return self._state.tokens

    @property
    def table(self) -> RouteTable:
        t = self._table
        catalog = self._state.catalog
        if t is None or t.catalog is not catalog:
            t = self._table = RouteTable(self.settings, catalog, self._state.prices)
            self._plain = {}
        return t

    # -- one request ---------------------------------------------------------------------------
    def profile_for(self, ctx: "RequestContext", asked: str | None = None) -> "ProfileSettings | None":
        name = asked if asked is not None else ctx.header(b"x-tollway-profile")
        if name:
            found = self.profiles.get(name)
            if found is None:
                raise ProxyError("invalid_request", f"Unknown routing profile '{name[:100]}'. Profiles: "
                                 f"{', '.join(self.profiles) or 'none configured'}.", param="profile")
            return found
        if self.key_profiles and ctx.key_id is not None:
            kp = self.key_profiles.get(ctx.key_id)
            if kp is not None:
                return self.profiles.get(kp)
        return None

    def route_for(self, ctx: "RequestContext") -> ModelRoute:
        table = self.table
        model = ctx.model or ""
        route = table.models.get(model)
        if route is not None:
            return route
        auto = table.auto
        if auto is not None and model == "auto":
            return auto
        if auto is not None and self.settings.routing.auto_unknown_models and table.catalog.resolve(model) is None:
            return auto
        dep = table.catalog.require(model, Endpoint._value2member_map_[ctx.endpoint])  # type: ignore[arg-type]
        route = self._plain.get(model)
        if route is None or route.deployments[0] is not dep:
            route = table.for_plain(dep)
            if len(self._plain) >= _PLAIN_MAX:
                self._plain.clear()
            self._plain[model] = route
        return route

    def plan(self, ctx: "RequestContext", trace: list[dict[str, Any]] | None = None,
             profile_name: str | None = None) -> list["Deployment"]:
        route = self.route_for(ctx)
        profile = self.profile_for(ctx, profile_name)
        cands = layers.candidates(route, trace)
        cands = layers.capabilities(self, ctx, route, cands, profile, trace)
        cands = layers.policy(self, ctx, route, cands, trace)
        cands = layers.health(self, ctx, route, cands, trace)
        policy = "profile" if profile is not None else route.policy
        plan, scores = rank(self, ctx, route, cands, route.policy, profile, self.rng)
        sticky = None
        if len(plan) > 1:
            session = self.session_of(ctx)
            if session is not None:
                sticky = self.affinity.get(ctx.model or "", session)
                if sticky is not None and plan[0].name != sticky:
                    for i, d in enumerate(plan):
                        if d.name == sticky:
                            plan.insert(0, plan.pop(i))
                            break
                    else:
                        sticky = None
        if trace is not None:
            kept = []
            for d in plan:
                item: dict[str, Any] = {"deployment": d.name}
                if d.name in scores:
                    item["score"] = scores[d.name]
                if d.name == sticky:
                    item["sticky"] = True
                kept.append(item)
            trace.append({"name": "scoring", "policy": policy, "kept": kept, "removed": []})
        # the estimate costs Decimal arithmetic: made when the client asks for the trace event or
        # explain runs; otherwise `cost_estimate(ctx)` makes it on demand
        cost = None
        if trace is not None or b"x-tollway-trace" in ctx.headers:
            cost = self.cost_estimate(ctx, plan[0])
        ctx.route_trace = {"policy": route.policy, "profile": profile.name if profile is not None else None,
                           "scores": scores, "cost_estimate": cost}
        return plan

    def cost_estimate(self, ctx: "RequestContext", dep: "Deployment | None" = None) -> str | None:
        """The estimated cost (USD, as a string) of this call on `dep` (default: the first of the
        plan): input from the body's size, output as requested (else 256 tokens)."""
        dep = dep or (ctx.plan[0] if ctx.plan else None)
        if dep is None:
            return None
        cost = cost_of(self, dep, estimate_tokens(ctx))
        return None if cost is None else f"{cost:f}"

    @staticmethod
    def session_of(ctx: "RequestContext") -> str | None:
        s = ctx.headers.get(b"x-tollway-session")
        if s:
            return "s:" + s.decode("latin-1")
        j = ctx.json
        if j:
            v = j.get("prompt_cache_key")
            if isinstance(v, str) and v:
                return "c:" + v
            v = j.get("user")
            if isinstance(v, str) and v:
                return "u:" + v
        return None

    def served(self, ctx: "RequestContext") -> None:
        """The route stage's after(): remember which deployment served this session."""
        dep = ctx.deployment
        if dep is None or len(ctx.plan) < 2 or not 200 <= ctx.status < 300:
            return
        session = self.session_of(ctx)
        if session is not None:
            self.affinity.put(ctx.model or "", session, dep.name)
