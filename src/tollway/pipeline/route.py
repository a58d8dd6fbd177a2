"""The route stage: which deployments may serve this call, in the order to try them (`ctx.plan`).

On `/proxy/<kind>/` routes the caller's own key decides: the model goes to that provider kind
as named, without catalog routing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tollway.pipeline.context import RequestContext
from tollway.providers.base import Endpoint

if TYPE_CHECKING:
    from tollway.state import AppState


class RouteStage:
    def __init__(self, state: "AppState") -> None:
        self._state = state

    async def before(self, ctx: RequestContext) -> None:
        assert ctx.model is not None
        state = self._state
        if ctx.byok:
            # byok routes exist only where the client's format is the provider kind's own
            dep = state.byok_deployment(ctx.wire_format, ctx.model)
        else:
            dep = state.catalog.require(ctx.model, Endpoint(ctx.endpoint))
        ctx.plan = [dep]
        ctx.deployment = dep

    async def after(self, ctx: RequestContext) -> None:
        return None
