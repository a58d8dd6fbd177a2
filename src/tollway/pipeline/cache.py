"""The cache stage: the door to `tollway.cache` (after route and policy, before the handler).

`before()` looks the request up: a hit sets `ctx.reply` (the stages after it and the handler are
skipped; every `after()` still runs, so the hit is recorded with cost 0 and a budget reservation
is settled at 0); a miss attaches the recorder. `after()` stores a complete answer of a miss.
Present in the stage list only when some cache is configured: off, it costs nothing.
"""

from __future__ import annotations

from tollway.cache.service import ResponseCache
from tollway.pipeline.context import RequestContext


class CacheStage:
    def __init__(self, cache: ResponseCache) -> None:
        self._cache = cache

    async def before(self, ctx: RequestContext) -> None:
        ctx.cache = await self._cache.lookup(ctx)

    async def after(self, ctx: RequestContext) -> None:
        if ctx.cache is not None:
            await self._cache.save(ctx, ctx.cache)
