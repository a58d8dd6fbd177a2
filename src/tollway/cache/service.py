"""The response cache as the pipeline sees it: per request, decide (hit, miss, skip, refresh),
answer hits, and store complete answers of misses afterwards.

Settings for a request: `[cache]`, then the first `[cache.models]` pattern matching the model,
then the project's `[[projects]] cache`, then the key's `[[keys]] cache` (later wins); resolved
once per (key, project, model) and memoised. The request itself may then say
`x-tollway-cache: use | skip | refresh` or `Cache-Control: no-store | no-cache | max-age=N`
(x-tollway-cache wins): neither can turn on a cache the settings leave off.

- hit: the answer comes from the store (exact key, or a similar question: semantic);
- miss: not found; the answer is recorded and stored when it completes;
- refresh: not looked up (no-cache, max-age=0), the new answer replaces the stored one;
- skip: neither (no-store, or a request the cache must not answer: see key.skip_reason).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from tollway.cache import entry as entries
from tollway.cache.key import exact_key, scope_of, skip_reason
from tollway.cache.recorder import Recorder
from tollway.cache.replay import send_answer
from tollway.cache.store import CacheStore
from tollway.config import CacheOverride, CacheSettings, Settings
from tollway.errors import ProxyError
from tollway.pipeline.context import RequestContext

if TYPE_CHECKING:
    from tollway.cache.embed import Embedder
    from tollway.telemetry.metrics import Metrics

log = logging.getLogger("tollway")

# endpoints whose answers the cache understands -> the client format name in tollway.formats
CACHEABLE = {"chat": "openai_chat", "responses": "responses", "messages": "anthropic",
             "generate_content": "gemini"}
_MEMO_MAX = 10_000


@dataclass(slots=True)
class CacheCall:
    """What the cache decided for one request (ctx.cache)."""

    status: str  # hit | semantic_hit | miss | refresh | skip
    settings: CacheSettings
    client_fmt: str = ""
    scope: str = ""
    key: bytes | None = None
    recorder: Recorder | None = None
    partition: bytes | None = None  # semantic: the question's context
    vector: Any = None  # semantic: the question's embedding, stored with the answer
    similarity: float | None = None
    cost_saved: Decimal | None = None


def any_enabled(settings: Settings) -> bool:
    c = settings.cache
    overrides: list[CacheOverride | None] = [*c.models.values(), *(k.cache for k in settings.keys),
                                             *(p.cache for p in settings.projects)]
    return c.mode != "off" or any(o is not None and o.mode not in (None, "off") for o in overrides)


def any_semantic(settings: Settings) -> bool:
    c = settings.cache
    overrides: list[CacheOverride | None] = [*c.models.values(), *(k.cache for k in settings.keys),
                                             *(p.cache for p in settings.projects)]
    return c.mode == "semantic" or any(o is not None and o.mode == "semantic" for o in overrides)


def directive(ctx: RequestContext) -> tuple[str, float | None]:
    """("use" | "skip" | "refresh", max-age seconds or None) from the request's headers."""
    max_age: float | None = None
    mode = "use"
    cc = ctx.headers.get(b"cache-control")
    if cc:
        for part in cc.lower().split(b","):
            part = part.strip()
            if part == b"no-store":
                mode = "skip"
            elif part == b"no-cache" and mode != "skip":
                mode = "refresh"
            elif part.startswith(b"max-age="):
                try:
                    max_age = max(0.0, float(part[8:].strip(b'"')))
                except ValueError:
                    pass
    own = ctx.headers.get(b"x-tollway-cache")
    if own is not None:
        v = own.strip().lower()
        if v not in (b"use", b"skip", b"refresh"):
            raise ProxyError("invalid_request", "The x-tollway-cache header must be use, skip or refresh.")
        mode = v.decode()
    if mode == "use" and max_age == 0:
        mode = "refresh"
    return mode, max_age


class ResponseCache:
    def __init__(self, settings: Settings, store: CacheStore, embedder: "Embedder | None" = None,
                 metrics: "Metrics | None" = None) -> None:
        self.base = settings.cache
        self.store = store
        self.embedder = embedder
        self._metrics = metrics
        self._keys = {k.id: k.cache for k in settings.keys if k.cache is not None}
        self._projects = {p.id: p.cache for p in settings.projects if p.cache is not None}
        self._models = list(settings.cache.models.items())
        self._memo: dict[tuple[str | None, str | None, str], CacheSettings] = {}

    def settings_for(self, ctx: RequestContext) -> CacheSettings:
        model = ctx.model or ""
        memo_key = (ctx.key_id, ctx.project, model)
        found = self._memo.get(memo_key)
        if found is None:
            by_model = next((o for pattern, o in self._models if fnmatchcase(model, pattern)), None)
            key_override = self._keys.get(ctx.key_id or "") or getattr(ctx.key, "cache", None)
            found = self.base.merged(by_model, self._projects.get(ctx.project or ""), key_override)
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            self._memo[memo_key] = found
        return found

    # -- before the call ---------------------------------------------------------------------------
    async def lookup(self, ctx: RequestContext) -> CacheCall | None:
        """Decide for this request; on a hit, set `ctx.reply`. None: the cache is not in play."""
        client_fmt = CACHEABLE.get(ctx.endpoint)
        if client_fmt is None or ctx.byok or ctx.json is None:
            return None
        s = self.settings_for(ctx)
        if s.mode == "off":
            return None
        mode, max_age = directive(ctx)
        call = CacheCall("skip", s, client_fmt)
        reason = None if mode == "skip" else skip_reason(ctx.endpoint, ctx.json, s.cache_temperature)
        if mode == "skip" or reason is not None:
            self._headers(ctx, call, reason=reason or "request")
            return call
        call.scope = scope_of(ctx, s.scope)
        beta = ctx.headers.get(b"anthropic-beta")
        if beta:  # beta features change answers (longer outputs, other tool behaviour): never shared across
            call.scope += "|beta:" + ",".join(sorted(v.strip() for v in beta.decode("latin-1").split(",")))
        guard = ctx.guard
        if guard is not None and guard.policy.output != "off":
            # an answer stored unchecked (or under a milder check) must not reach a caller whose
            # policy checks answers: a hit skips the output check, so the check is part of the key
            call.scope += "|out:" + guard.policy.output
        call.key = exact_key(call.scope, ctx.endpoint, ctx.model or "", ctx.json)
        call.recorder = Recorder(client_fmt, self.base.max_entry_bytes)
        call.status = "refresh" if mode == "refresh" else "miss"
        semantic = s.mode == "semantic" and self.embedder is not None
        found: entries.CachedAnswer | None = None
        if semantic:
            found = await self._semantic(ctx, call, s, max_age if mode == "use" else None, mode == "use")
        elif mode == "use":
            found = self._fresh(await self.store.get(call.key), max_age)
            if found is not None:
                call.status = "hit"
        if self._metrics is not None and mode == "use":
            if found is not None:
                self._metrics.cache_hit("semantic" if call.status == "semantic_hit" else "exact")
            else:
                self._metrics.cache_miss("semantic" if semantic else "exact")
        if found is not None:
            self._answer(ctx, call, found)
        else:
            self._record(ctx, call)
        self._headers(ctx, call)
        return call

    def _fresh(self, data: bytes | None, max_age: float | None) -> entries.CachedAnswer | None:
        if data is None:
            return None
        found = entries.loads(data)
        if found is None or (max_age is not None and time.time() - found.stored_at > max_age):
            return None
        return found

    async def _semantic(self, ctx: RequestContext, call: CacheCall, s: CacheSettings, max_age: float | None,
                        use: bool) -> entries.CachedAnswer | None:
        from tollway.cache import semantic
        from tollway.cache.embed import EmbedderUnavailable

        assert call.key is not None and self.embedder is not None
        q = semantic.question_of(ctx.endpoint, ctx.json or {})
        if q is None or (q.tools and not s.semantic_tool_conversations):  # exact matching only
            found = self._fresh(await self.store.get(call.key), max_age) if use else None
            if found is not None:
                call.status = "hit"
            return found
        call.partition = semantic.partition_key(call.scope, ctx.endpoint, ctx.model or "", self.embedder.name, q)
        records: bytes | None = None
        if use:
            data, records = await self.store.get2(call.key, call.partition)
            found = self._fresh(data, max_age)
            if found is not None:
                call.status = "hit"
                return found
        try:
            call.vector = await self.embedder.embed(ctx, q.text)
        except EmbedderUnavailable as e:
            log.warning("cache: no embedding for trace %s (%s); exact matching only", ctx.trace_id, e)
            call.partition = None
            return None
        if not use:
            return None
        match = semantic.best_match(records, call.vector, s.similarity_threshold)
        if match is None:
            return None
        found = self._fresh(await self.store.get(match[0]), max_age)
        if found is not None:
            call.status, call.similarity = "semantic_hit", match[1]
        return found

    def _answer(self, ctx: RequestContext, call: CacheCall, found: entries.CachedAnswer) -> None:
        call.recorder = None
        call.cost_saved = found.cost
        ctx.usage = found.response.usage
        ctx.cost, ctx.cost_note, ctx.metered = Decimal(0), "cache hit", True
        ctx.model_served = found.response.model or None
        hdrs = [(b"age", str(found.age(time.time())).encode()), (b"x-tollway-cost-usd", b"0")]
        if found.cost is not None:
            hdrs.append((b"x-tollway-cost-saved-usd", format(found.cost, "f").encode()))

        async def reply(c: RequestContext) -> None:
            await send_answer(c, found.response, call.client_fmt, hdrs)

        ctx.reply = reply

    def _record(self, ctx: RequestContext, call: CacheCall) -> None:
        if call.status == "hit":  # an exact entry that failed to decode or was too old: a miss
            call.status = "miss"
        rec = call.recorder
        assert rec is not None
        if ctx.content_filters is None:
            ctx.content_filters = []
        ctx.content_filters.append(rec)
        ctx.byte_tap = rec

    @staticmethod
    def _headers(ctx: RequestContext, call: CacheCall, reason: str | None = None) -> None:
        status = "hit" if call.status == "semantic_hit" else call.status
        ctx.response_headers.append((b"x-tollway-cache", status.encode()))
        if call.similarity is not None:
            ctx.response_headers.append((b"x-tollway-cache-similarity", b"%.4f" % call.similarity))
        if reason is not None:
            ctx.response_headers.append((b"x-tollway-cache-reason", reason.encode()))

    # -- after the call --------------------------------------------------------------------------
    async def save(self, ctx: RequestContext, call: CacheCall) -> None:
        """Store the answer of a miss or refresh if it is complete and storable."""
        rec = call.recorder
        if rec is None or call.key is None or call.status not in ("miss", "refresh"):
            return
        if not 200 <= ctx.status < 300 or ctx.incomplete or ctx.cancelled or ctx.error is not None \
                or ctx.error_type is not None:
            return
        answer = rec.answer()
        if answer is None or (not call.settings.cache_tool_calls and any(p.kind == "tool_call" for p in answer.content)):
            return
        if answer.stop_reason in ("error", "content_filter"):
            return
        guard = ctx.guard
        if guard is not None and (guard.request_leaks or (guard.output is not None and guard.output.found)):
            # the answer held (or may echo) something the guard found: it stays out of the store
            return
        if ctx.usage is not None and ctx.usage.known:
            answer.usage = ctx.usage  # the fast path's watcher may know more than the client's bytes
        data = entries.dumps(entries.CachedAnswer(answer, time.time(), ctx.cost))
        if len(data) > self.base.max_entry_bytes:
            return
        ttl = call.settings.ttl_secs
        await self.store.put(call.key, data, ttl)
        if call.partition is not None and call.vector is not None:
            from tollway.cache.semantic import record

            await self.store.append(call.partition, record(call.key, call.vector), self.base.semantic_max_entries,
                                    ttl)

    async def close(self) -> None:
        await self.store.close()
        if self.embedder is not None:
            self.embedder.close()
