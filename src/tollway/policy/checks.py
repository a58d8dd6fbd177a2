"""A key's static limits, checked before any counter: the model allow-list (403 naming the
allowed models), the largest `max_tokens` (400) and the largest body (413)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tollway.errors import ProxyError
from tollway.policy.worstcase import requested_output

if TYPE_CHECKING:
    from tollway.pipeline.auth import KeyInfo
    from tollway.pipeline.context import RequestContext
    from tollway.policy.model import KeyPolicy


def check_request(ctx: "RequestContext", key: "KeyInfo", kp: "KeyPolicy") -> None:
    if kp.max_body_bytes is not None and len(ctx.body) > kp.max_body_bytes:
        raise ProxyError("request_too_large", f"Request body is {len(ctx.body)} bytes; key '{key.id}' allows at "
                                              f"most {kp.max_body_bytes}.")
    if kp.models is not None and ctx.model is not None and not kp.models.permits(ctx.model) \
            and not _plan_permitted(ctx, kp):
        raise ProxyError("permission", f"Key '{key.id}' may not use model '{ctx.model}'. Allowed models: "
                                       f"{', '.join(kp.models.patterns) or 'none'}.", param="model",
                         code="model_not_allowed")
    if kp.max_tokens is not None:
        asked = requested_output(ctx.json)
        if asked is not None and asked > kp.max_tokens:
            raise ProxyError("invalid_request", f"max_tokens {asked} is over the limit of key '{key.id}' "
                                                f"({kp.max_tokens}).", param="max_tokens")


def _plan_permitted(ctx: "RequestContext", kp: "KeyPolicy") -> bool:
    """A name the list does not match (`auto`, an alias) is allowed when every deployment the
    router planned is: the router leaves out those the key may not use (routing.layers.policy)."""
    models = kp.models
    return bool(ctx.plan) and models is not None and all(
        models.permits(d.model) or models.permits(d.name) for d in ctx.plan)
