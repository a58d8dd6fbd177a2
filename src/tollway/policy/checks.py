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
    if kp.models is not None and ctx.model is None:  # a Responses call whose stored prompt names the model
        raise ProxyError("permission", f"Key '{key.id}' may use only some models (allowed: "
                                       f"{', '.join(kp.models.patterns) or 'none'}), and this call names none "
                                       "(its stored prompt does): name the model in the request.", param="model",
                         code="model_not_allowed")
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


# Pass-through calls that cannot make a provider run a model: reading, deleting, cancelling,
# and storing files (a batch or job that would use them names its model, or is refused).
_FREE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


def _free_path(subpath: str) -> bool:
    p = subpath.rstrip("/")
    return p.endswith("/cancel") or p == "/files" or p == "/uploads" or p.startswith("/uploads/")


def may_spend(method: str, subpath: str) -> bool:
    """Could this pass-through call make a provider run a model (and so cost money)?"""
    return method not in _FREE_METHODS and not _free_path(subpath)


def check_passthrough_price(ctx: "RequestContext", metered: bool, priced: bool, unpriced: str) -> None:
    """Under a budget, a pass-through call that may spend must be one Tollway can price: a
    metered endpoint (its answer reports usage) for a model with a known price. A batch (priced
    only when its results come back), an Assistants run or an unpriced model is refused with 400,
    unless `[budgets] unpriced = "allow"`."""
    adm = ctx.admission
    if adm is None or not adm.budgets or unpriced == "allow":
        return
    if metered and priced:
        return
    what = (f"model '{ctx.model}' has no known price" if metered and ctx.model
            else f"{ctx.method} {ctx.path} reports no cost Tollway can count before the budget would be spent")
    raise ProxyError("invalid_request", f"A budget applies to this call and {what}, so it is refused. "
                                        + ("Add a [[prices]] entry for it to tollway.toml" if metered and ctx.model
                                           else "Use a key without a budget for it")
                                        + ' (or set [budgets] unpriced = "allow").', param="model",
                     code="model_unpriced")


def passthrough_models(ctx: "RequestContext") -> list[str] | None:
    """Every model a pass-through request names, or None when Tollway cannot know them all: the
    JSON `model` (or a Realtime `session.model`, or each `requests[].params.model` of an
    Anthropic message batch), or the one `model` field of a multipart form."""
    obj = ctx.json
    if obj is not None:
        m = obj.get("model")
        if isinstance(m, str):
            return [m]
        session = obj.get("session")
        if isinstance(session, dict) and isinstance(session.get("model"), str):
            return [session["model"]]
        reqs = obj.get("requests")
        if isinstance(reqs, list) and reqs:
            out = []
            for r in reqs:
                params = r.get("params") if isinstance(r, dict) else None
                m = params.get("model") if isinstance(params, dict) else None
                if not isinstance(m, str):
                    return None
                out.append(m)
            return out
        return None
    ctype = ctx.headers.get(b"content-type", b"")
    if ctype.startswith(b"multipart/form-data") and ctx.body:
        from tollway.passthrough.metering import multipart_values

        values = multipart_values(ctx.body, ctype, "model")
        return values if values is not None and len(values) == 1 else None
    return None


def check_passthrough(ctx: "RequestContext", key: "KeyInfo", kp: "KeyPolicy", subpath: str) -> None:
    """A key's static limits on a pass-through call (once its body is read). With a model
    allow-list, every model the request names must be allowed; a call that could run a model
    but names none Tollway can read (an OpenAI batch, an Assistants run) is refused with 403."""
    if kp.max_body_bytes is not None and len(ctx.body) > kp.max_body_bytes:
        raise ProxyError("request_too_large", f"Request body is {len(ctx.body)} bytes; key '{key.id}' allows at "
                                              f"most {kp.max_body_bytes}.")
    if kp.models is not None and may_spend(ctx.method, subpath):
        models = passthrough_models(ctx)
        allowed = ", ".join(kp.models.patterns) or "none"
        if models is None:
            raise ProxyError("permission", f"Key '{key.id}' may use only some models (allowed: {allowed}), and "
                                           f"{ctx.method} {ctx.path} names no model Tollway can check, so it is "
                                           "refused. Use a key without a model allow-list for it.",
                             code="model_not_allowed")
        for m in models:
            if not kp.models.permits(m):
                raise ProxyError("permission", f"Key '{key.id}' may not use model '{m}'. Allowed models: "
                                               f"{allowed}.", param="model", code="model_not_allowed")
    if kp.max_tokens is not None and ctx.json is not None:
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
