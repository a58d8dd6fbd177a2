"""Layer 5: rank the primary group by the policy or the profile; fallbacks keep their order.

Each policy reports its measure as the score (explain, the stream's trace event):
`priority` the priority (lower first), `weighted` the weight (a weighted random order among the
lowest priority), `cheapest` the estimated cost in USD, `fastest` the latency EWMA in ms,
`least_busy` the calls in flight, `quality` the feedback score (0..1). `auto` and profiles
score 0..1 (higher first): a weighted sum over cost, latency and quality, each normalised over
the candidates (unknown values count as the candidates' mean; no data at all: 0.5).
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tollway.routing.table import PRIMARY

if TYPE_CHECKING:
    from tollway.pipeline.context import RequestContext
    from tollway.routing.catalog import Deployment
    from tollway.routing.router import Router
    from tollway.routing.settings import ProfileSettings
    from tollway.routing.table import ModelRoute

_MILLION = Decimal(1_000_000)
_DEFAULT_OUTPUT = 256  # tokens assumed for a cost estimate when the request names no limit
_AUTO_WEIGHTS = (1.0, 1.0, 1.0)


def estimate_tokens(ctx: "RequestContext") -> tuple[int, int]:
    from tollway.policy.worstcase import requested_output

    return len(ctx.body) // 4, requested_output(ctx.json) or _DEFAULT_OUTPUT


def cost_of(router: "Router", d: "Deployment", tokens: tuple[int, int]) -> Decimal | None:
    info = router.table.info_of(d)
    if info.input_per_mtok is None or info.output_per_mtok is None:
        return None
    return (info.input_per_mtok * tokens[0] + info.output_per_mtok * tokens[1]) / _MILLION


def rank(router: "Router", ctx: "RequestContext", route: "ModelRoute", cands: list["Deployment"],
         policy: str, profile: "ProfileSettings | None", rng: random.Random,
         ) -> tuple[list["Deployment"], dict[str, float]]:
    """(ordered candidates, scores by deployment name)."""
    if profile is None and (len(cands) < 2 or (route.n_primary < 2 and not route.auto)):
        return cands, {}  # nothing to rank: the primary group has one deployment at most
    groups = route.group_of
    if route.n_primary == len(route.deployments):
        primary, rest = list(cands), []
    else:
        primary = [d for d in cands if groups.get(d.name, PRIMARY) == PRIMARY]
        rest = [d for d in cands if groups.get(d.name, PRIMARY) != PRIMARY]
    scores: dict[str, float] = {}
    if len(primary) > 1 or profile is not None:
        if profile is not None:
            w = profile.weights
            primary = _weighted_sum(router, ctx, primary, (w.cost, w.latency, w.quality), scores, profile.prefer)
        elif policy == "priority":
            primary.sort(key=lambda d: d.priority)
            scores.update((d.name, float(d.priority)) for d in primary)
        elif policy == "weighted":
            primary = _weighted(primary, rng)
            scores.update((d.name, d.weight) for d in primary)
        elif policy == "cheapest":
            tokens = estimate_tokens(ctx)
            costs = {d.name: cost_of(router, d, tokens) for d in primary}
            primary.sort(key=lambda d: (costs[d.name] is None, costs[d.name] or 0, d.priority))
            scores.update((n, float(c)) for n, c in costs.items() if c is not None)
        elif policy == "fastest":
            lat = {d.name: router.health.latency(d.name) for d in primary}
            primary.sort(key=lambda d: (lat[d.name] if lat[d.name] is not None else 0.0, d.priority))
            scores.update((n, round(v * 1000, 3)) for n, v in lat.items() if v is not None)
        elif policy == "least_busy":
            busy = {d.name: router.health.inflight(d.name) for d in primary}
            primary.sort(key=lambda d: (busy[d.name], d.priority))
            scores.update((n, float(v)) for n, v in busy.items())
        elif policy == "quality":
            q = {d.name: router.quality.score(d) for d in primary}
            primary.sort(key=lambda d: (-(q[d.name] if q[d.name] is not None else 0.5), d.priority))
            scores.update((n, v) for n, v in q.items() if v is not None)
        else:  # auto
            primary = _weighted_sum(router, ctx, primary, _AUTO_WEIGHTS, scores, ())
    return primary + rest, scores


def _weighted(cands: list["Deployment"], rng: random.Random) -> list["Deployment"]:
    """Lowest priority first; within a priority, a weighted random order."""
    out: list["Deployment"] = []
    prios = {d.priority for d in cands}
    for prio in (prios if len(prios) == 1 else sorted(prios)):
        pool = [d for d in cands if d.priority == prio] if len(prios) > 1 else list(cands)
        while pool:
            total = sum(d.weight for d in pool)
            x = rng.random() * total
            for i, d in enumerate(pool):
                x -= d.weight
                if x <= 0 or i == len(pool) - 1:
                    out.append(pool.pop(i))
                    break
    return out


def _normalise(values: dict[str, float | None], lower_better: bool) -> dict[str, float]:
    known = [v for v in values.values() if v is not None]
    if not known:
        return {n: 0.5 for n in values}
    mean = sum(known) / len(known)
    lo, hi = min(known), max(known)
    span = hi - lo
    out = {}
    for n, v in values.items():
        x = mean if v is None else v
        good = 0.5 if span == 0 else (x - lo) / span
        out[n] = 1.0 - good if lower_better else good
    return out


def _weighted_sum(router: "Router", ctx: "RequestContext", cands: list["Deployment"],
                  weights: tuple[float, float, float], scores: dict[str, float], prefer: Any) -> list["Deployment"]:
    tokens = estimate_tokens(ctx)
    cost = {d.name: _f(cost_of(router, d, tokens)) for d in cands}
    lat = {d.name: router.health.latency(d.name) for d in cands}
    qual = {d.name: router.quality.score(d) for d in cands}
    nc, nl, nq = _normalise(cost, True), _normalise(lat, True), _normalise(qual, False)
    wc, wl, wq = weights
    total = (wc + wl + wq) or 1.0
    for d in cands:
        scores[d.name] = round((wc * nc[d.name] + wl * nl[d.name] + wq * nq[d.name]) / total, 6)
    preferred = set(prefer or ())

    def key(d: "Deployment") -> tuple[float, int, int]:
        pref = 0 if (d.name in preferred or d.provider.id in preferred) else 1
        return (-scores[d.name], pref, d.priority)

    return sorted(cands, key=key)


def _f(x: Decimal | None) -> float | None:
    return None if x is None else float(x)
