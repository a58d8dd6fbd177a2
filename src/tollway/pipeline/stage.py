"""Stages and the runner: `before` in order, `after` in reverse for every stage that ran.

A stage may end the request early by raising a ProxyError in `before` (a 401, a 429), or
answer it itself by setting `ctx.reply` (a cache hit): the stages after it and the handler
are then skipped. `after` runs for errors and replies too, so accounting sees every request
and a budget reservation is always settled. A request the server cuts at the end of its
shutdown grace (its task cancelled) is answered 503 in the route's format when nothing was
sent yet, and recorded as cancelled.

The order of a model call (see `AppState.call_stages`): accounting (its `after` runs last),
auth, attribution, decode (body, model), [guard], route (the plan), [policy], [cache], then
the handler tries the plan's deployments. Bracketed stages exist only when configured.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Protocol

from tollway.errors import ProxyError, shutdown_error
from tollway.pipeline.context import RequestContext

log = logging.getLogger("tollway")


class Stage(Protocol):
    async def before(self, ctx: RequestContext) -> None: ...

    async def after(self, ctx: RequestContext) -> None: ...


async def run_stages(ctx: RequestContext, stages: tuple[Stage, ...],
                     handler: Callable[[RequestContext], Awaitable[None]],
                     on_error: Callable[[RequestContext, ProxyError], Awaitable[None]]) -> None:
    ran = 0
    try:
        for stage in stages:
            ran += 1
            await stage.before(ctx)
            if ctx.reply is not None:
                break
        await (ctx.reply or handler)(ctx)
    except ProxyError as e:
        ctx.error = e
        ctx.status = e.status
        ctx.error_type = e.error_type
        if not ctx.response_started:
            await on_error(ctx, e)
    except asyncio.CancelledError:
        if not ctx.cut_by_server():
            raise
        e = shutdown_error()
        ctx.error = e
        if not ctx.response_started:
            ctx.status = e.status
            await on_error(ctx, e)
    except Exception:
        log.exception("internal error in trace %s", ctx.trace_id)
        e = ProxyError("internal", f"Internal error in Tollway (trace id {ctx.trace_id}).")
        ctx.error, ctx.status, ctx.error_type = e, 500, "internal"
        if not ctx.response_started:
            await on_error(ctx, e)
    finally:
        for stage in reversed(stages[:ran]):
            try:
                await stage.after(ctx)
            except Exception:
                log.exception("stage %s failed in after() for trace %s", type(stage).__name__, ctx.trace_id)
