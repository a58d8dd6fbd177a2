"""The route stage: which deployments may serve this call, in the order to try them (`ctx.plan`).

On `/proxy/<kind>/` routes the caller's own key decides: the model goes to that provider kind
as named, without catalog routing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tollway.errors import ProxyError
from tollway.pipeline.context import RequestContext
from tollway.routing.catalog import Deployment

if TYPE_CHECKING:
    from tollway.state import AppState


class RouteStage:
    def __init__(self, state: "AppState") -> None:
        self._state = state

    async def before(self, ctx: RequestContext) -> None:
        state = self._state
        if ctx.model is None:  # a Responses call whose stored prompt names the model (decode stage)
            dep = self._openai_without_model(ctx)
        elif ctx.byok:
            # byok routes exist only where the client's format is the provider kind's own
            dep = state.byok_deployment(ctx.wire_format, ctx.model)
        else:
            plan = state.router.plan(ctx)
            ctx.plan = plan
            ctx.deployment = plan[0]
            return
        ctx.plan = [dep]
        ctx.deployment = dep

    def _openai_without_model(self, ctx: RequestContext) -> Deployment:
        """Only OpenAI can resolve a stored prompt's model: its provider, with model "" (the body
        goes as it is)."""
        if ctx.byok:
            return self._state.byok_deployment("openai", "")
        found = self._state.catalog.first_of_kind("openai")
        if found is None:
            raise ProxyError("invalid_request", "A Responses request without a model (its stored prompt names "
                             "one) can only go to an OpenAI provider, and none is configured.", param="model")
        return Deployment(found[0], found[1], "")

    async def after(self, ctx: RequestContext) -> None:
        if len(ctx.plan) > 1 and not ctx.byok:
            self._state.router.served(ctx)
        dep = ctx.deployment
        if dep is not None and dep.max_tpm is not None and ctx.usage is not None:
            add = getattr(self._state.health, "add_tokens", None)
            if add is not None:
                add(dep.name, ctx.usage.total_tokens or 0)
