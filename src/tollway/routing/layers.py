"""The router's five layers, each filtering or scoring the candidates of one request:

1. candidates: the model / alias / auto expansion, then fallbacks (`routing.table`);
2. capabilities: the endpoint, tools, vision, JSON mode, the context window (estimated input +
   requested output), a profile's requirements;
3. policy: the key's model allow-list; unpriced deployments under a budget that refuses them;
4. health: open breakers, every credential cooling, at `max_concurrency`, `max_rpm` or `max_tpm`;
5. scoring: rank the primary group by the policy or the profile (`routing.scoring`).

Each layer takes the kept list and returns what it keeps. `trace` (explain) collects, per layer,
what was kept and what was removed and why; routing passes None and nothing is collected.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from tollway.errors import ProxyError
from tollway.pipeline.translate import can_translate
from tollway.policy.allowlist import permits
from tollway.policy.worstcase import requested_output
from tollway.providers.base import Endpoint

if TYPE_CHECKING:
    from tollway.pipeline.context import RequestContext
    from tollway.routing.catalog import Deployment
    from tollway.routing.router import Router
    from tollway.routing.settings import ProfileSettings
    from tollway.routing.table import ModelRoute

Trace = list[dict[str, Any]]

_VISION_MARKERS = (b'"image_url"', b'"input_image"', b'"inline_data"', b'"inlineData"', b'"type":"image"',
                   b'"type": "image"')
_JSON_TYPES = frozenset({"json_object", "json_schema"})
_COUNTING = frozenset({Endpoint.COUNT_TOKENS.value, Endpoint.GEMINI_COUNT_TOKENS.value})
_COUNT_INLINE_BYTES = 64 * 1024  # tollway.counting.INLINE_CHARS: larger inputs are not counted on the loop
_CHAT_ENDPOINTS = frozenset({Endpoint.CHAT, Endpoint.RESPONSES, Endpoint.MESSAGES, Endpoint.GENERATE_CONTENT,
                             Endpoint.COMPLETIONS})


class Need:
    """What the request asks of a deployment (computed once per request, only when some
    candidate could fail it)."""

    __slots__ = ("tools", "vision", "json", "input_tokens", "output_tokens", "counting", "_ctx", "_exact")

    def __init__(self, ctx: "RequestContext") -> None:
        j = ctx.json or {}
        self._ctx = ctx
        self._exact = False
        self.tools = bool(j.get("tools") or j.get("functions"))
        rf = j.get("response_format")
        text = j.get("text")
        fmt = text.get("format") if isinstance(text, dict) else None
        gen = j.get("generationConfig") or j.get("generation_config")
        self.json = bool((isinstance(rf, dict) and rf.get("type") in _JSON_TYPES)
                         or (isinstance(fmt, dict) and fmt.get("type") in _JSON_TYPES)
                         or (isinstance(gen, dict) and gen.get("responseMimeType") == "application/json"))
        body = ctx.body
        self.vision = any(m in body for m in _VISION_MARKERS)
        self.input_tokens = len(body) // 4  # cheap: about 4 bytes a token
        self.output_tokens = requested_output(ctx.json) or 0
        # a token count is asked for: it must answer for any input, the window is no bar
        self.counting = ctx.endpoint in _COUNTING

    def tokens(self, window: int, counter: Any) -> int:
        """Estimated input + requested output; counted properly only when the cheap estimate
        comes near the window, and the body is small enough to count on the event loop (the
        router runs there); a larger one is judged by a low estimate (6 bytes a token), so a
        guess never refuses a request the model could take: the provider's own error says it."""
        if not self._exact and len(self._ctx.body) > _COUNT_INLINE_BYTES:
            self.input_tokens = len(self._ctx.body) // 6
            self._exact = True
        if not self._exact and self.input_tokens + self.output_tokens > window // 2 and counter is not None:
            from tollway.estimate import prompt_tokens

            try:
                self.input_tokens = prompt_tokens(counter, self._ctx.endpoint, self._ctx.model or "", self._ctx.json)
            except Exception:  # an odd body: keep the byte estimate
                pass
            self._exact = True
        return self.input_tokens + self.output_tokens

    def view(self) -> dict[str, Any]:
        return {"tools": self.tools, "vision": self.vision, "json": self.json,
                "estimated_input_tokens": self.input_tokens, "max_output_tokens": self.output_tokens or None}


def _note(trace: Trace | None, name: str, kept: list["Deployment"], removed: list[tuple["Deployment", str]]) -> None:
    if trace is not None:
        trace.append({"name": name, "kept": [{"deployment": d.name} for d in kept],
                      "removed": [{"deployment": d.name, "reason": why} for d, why in removed]})


def candidates(route: "ModelRoute", trace: Trace | None) -> list["Deployment"]:
    kept = list(route.deployments)
    _note(trace, "candidates", kept, [])
    if not kept:  # every target names a provider that is not configured (disabled)
        raise ProxyError("model_not_found", f"The model '{route.name}' has no deployment whose provider is "
                         "configured (disabled?).", param="model")
    return kept


def capabilities(router: "Router", ctx: "RequestContext", route: "ModelRoute", cands: list["Deployment"],
                 profile: "ProfileSettings | None", trace: Trace | None) -> list["Deployment"]:
    endpoint: Endpoint | None = Endpoint._value2member_map_.get(ctx.endpoint)  # type: ignore[assignment]
    if trace is None and profile is None and not route.declared_caps and not route.auto:
        # the shortcut of the loop below when it can remove nothing: every deployment offers the
        # endpoint, none declares capabilities, and the cheap token estimate is under half the
        # smallest window (the loop then compares that same estimate)
        offers = route.offers.get(ctx.endpoint)
        if offers is None:
            offers = route.offers[ctx.endpoint] = endpoint is None or all(
                can_translate(endpoint, d.provider) for d in route.deployments)
        if offers:
            window = route.min_window
            if (window is None or ctx.endpoint in _COUNTING
                    or len(ctx.body) // 4 + (requested_output(ctx.json) or 0) <= window // 2):
                return cands
    table = router.table
    need: Need | None = None
    kept: list["Deployment"] = []
    removed: list[tuple["Deployment", str]] = []
    requires = profile.requires if profile is not None else ()
    min_context = profile.min_context if profile is not None else None
    for d in cands:
        why = None
        if endpoint is not None and not can_translate(endpoint, d.provider):
            why = f"provider {d.provider.id} ({d.provider.kind}) does not offer {endpoint.value}"
        else:
            info = table.info_of(d)
            if route.auto and endpoint in _CHAT_ENDPOINTS and not info.chat:
                why = "not a chat model"
            elif info.capabilities is not None or info.context_window is not None or requires or min_context:
                if need is None:
                    need = Need(ctx)
                why = _lacks(need, info, requires, min_context, router)
        if why is None:
            kept.append(d)
        else:
            removed.append((d, why))
    _note(trace, "capabilities", kept, removed)
    if trace is not None and need is not None:
        trace[-1]["request"] = need.view()
    if not kept and removed:
        raise ProxyError("invalid_request", f"No deployment of '{ctx.model}' can serve this request: "
                         + "; ".join(f"{d.name}: {why}" for d, why in removed[:8]) + ".", param="model",
                         code="no_capable_deployment")
    return kept


def _lacks(need: Need, info: Any, requires: Any, min_context: int | None, router: "Router") -> str | None:
    caps = info.capabilities
    for cap in ("tools", "vision", "json"):
        asked = getattr(need, cap) or cap in requires
        if asked and caps is not None and cap not in caps:
            return f"no {cap} support" + (" (required by the profile)" if cap in requires else "")
    window = info.context_window
    if min_context is not None and (window is None or window < min_context):
        return f"context window {window or 'unknown'} < {min_context} (profile min_context)"
    if window is not None and not need.counting:
        n = need.tokens(window, router.tokens)
        if n > window:
            return f"context window {window} tokens < estimated input + max output ({n})"
    return None


def policy(router: "Router", ctx: "RequestContext", route: "ModelRoute", cands: list["Deployment"],
           trace: Trace | None) -> list["Deployment"]:
    key = ctx.key
    kp = key.policy if key is not None else None
    if kp is None or (kp.models is None and not _refuses_unpriced(router, kp)):
        _note(trace, "policy", cands, [])
        return cands
    kept: list["Deployment"] = []
    removed: list[tuple["Deployment", str]] = []
    named_ok = not route.auto and ctx.model is not None and permits(key, ctx.model)
    for d in cands:
        if kp.models is not None and not named_ok and not (permits(key, d.model) or permits(key, d.name)):
            removed.append((d, f"key '{key.id}' may not use {d.model}"))  # type: ignore[union-attr]
        else:
            kept.append(d)
    if _refuses_unpriced(router, kp):
        priced = [d for d in kept if router.table.info_of(d).input_per_mtok is not None]
        if priced and len(priced) < len(kept):  # none priced: the budget stage says why
            removed += [(d, "no known price, and the key has a budget") for d in kept if d not in priced]
            kept = priced
    _note(trace, "policy", kept, removed)
    if not kept and removed:
        allowed = ", ".join(kp.models.patterns) if kp.models is not None else ""
        raise ProxyError("permission", f"Key '{key.id}' may not use model '{ctx.model}' (nor any of its "  # type: ignore[union-attr]
                         f"deployments). Allowed models: {allowed or 'none'}.", param="model", code="model_not_allowed")
    return kept


def _refuses_unpriced(router: "Router", kp: Any) -> bool:
    """The key (or its team) has a budget, and unpriced models are refused under one."""
    return kp.recipe is not None and kp.recipe.needs_cost and router.settings.budgets.unpriced == "refuse"


def health(router: "Router", ctx: "RequestContext", route: "ModelRoute", cands: list["Deployment"],
           trace: Trace | None) -> list["Deployment"]:
    board = router.health
    if trace is None and not board.open_count and not board.cooling_until and not route.has_concurrency:
        return cands  # nothing open, cooling or limited: the loop below would keep everything
    now = time.time()
    kept: list["Deployment"] = []
    removed: list[tuple["Deployment", str]] = []
    for d in cands:
        name = d.name
        if not board.available(name, now):
            removed.append((d, f"breaker open (half-opens in {board.retry_in(name, now):.1f}s)"))
        elif d.max_concurrency is not None and board.inflight(name) >= d.max_concurrency:
            removed.append((d, f"at max_concurrency ({d.max_concurrency} in flight)"))
        elif d.max_rpm is not None and board.calls_this_minute(name) >= d.max_rpm:
            removed.append((d, f"at max_rpm ({d.max_rpm} calls this minute)"))
        elif d.max_tpm is not None and board.tokens_this_minute(name) >= d.max_tpm:
            removed.append((d, f"at max_tpm ({d.max_tpm} tokens this minute)"))
        elif _all_cooling(board, d):
            removed.append((d, "every credential is cooling down"))
        else:
            kept.append(d)
    _note(trace, "health", kept, removed)
    if not kept and removed:
        wait = min((board.retry_in(d.name, now) for d, _ in removed), default=0.0)
        raise ProxyError("unavailable", f"No healthy deployment for '{ctx.model}': "
                         + "; ".join(f"{d.name}: {why}" for d, why in removed[:8])
                         + f". Retry in {max(wait, 1.0):.0f}s.", code="no_healthy_deployment")
    return kept


def _all_cooling(board: Any, d: "Deployment") -> bool:
    profiles = getattr(d.provider.settings, "profiles", None)
    if not profiles or not (board.cooling_until or board.open_count):
        return False
    names = [getattr(p, "name", None) for p in profiles]
    return all(n is not None and board.cooling(d.provider.id, n) for n in names)
