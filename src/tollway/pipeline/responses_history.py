"""What a Responses request continues, for providers Tollway keeps the conversation for.

`previous_response_id` must name a response of the caller's key (another key's is "not found"),
within the chain bounds (`[responses] max_chain_depth`, `max_chain_bytes`: a clear 400 beyond);
its conversation is loaded from the store. `item_reference` inputs (the Vercel AI SDK sends one
for every item of an earlier step) are replaced by the stored items they name, from the loaded
history or from the stored response the id belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tollway.errors import ProxyError
from tollway.pipeline.context import RequestContext
from tollway.storage.responses import ChainLink, Found, Owner, ResponseStore, response_of_item

if TYPE_CHECKING:
    from tollway.state import AppState

MAX_REFERENCED_RESPONSES = 64  # distinct stored responses one request's item references may name


@dataclass(slots=True)
class Conversation:
    body: dict[str, Any]  # the request body, item references resolved
    history: list[dict[str, Any]] = field(default_factory=list)  # items before this request, oldest first
    previous: ChainLink | None = None


def owner_of(state: "AppState", ctx: RequestContext) -> Owner:
    """With no keys configured everything is open; the master key (only it: not an admin role)
    sees every key's responses."""
    return Owner(ctx.key_id, sees_all=not state.keys.enabled or (ctx.key is not None and ctx.key.master))


def keeps_owners(state: "AppState", ctx: RequestContext) -> bool:
    """Whether Tollway must note and check whose the provider's responses are: keys are on and
    the call goes upstream with Tollway's credentials (with the caller's own key, the provider
    itself keeps them apart)."""
    return state.keys.enabled and not ctx.byok


async def check_upstream_previous(state: "AppState", ctx: RequestContext) -> None:
    """A Responses call going on as it is (the provider keeps the conversation) may continue only
    a response of the caller's key: another key's, an expired one, or one Tollway never passed on
    is "not found" here, and the provider is never asked with Tollway's credentials. Called
    where `keeps_owners` holds."""
    prev = (ctx.json or {}).get("previous_response_id")
    if not isinstance(prev, str) or not prev:
        return  # a malformed value is the provider's to refuse
    owner = owner_of(state, ctx)
    if owner.sees_all:
        return
    if await state.responses.upstream_owner(prev, owner) is not Found.MINE:
        raise ProxyError("not_found", f"Previous response with id '{prev}' not found.",
                         param="previous_response_id")


async def load_conversation(state: "AppState", ctx: RequestContext) -> Conversation:
    store = state.responses
    owner = owner_of(state, ctx)
    body = ctx.json or {}
    conv = Conversation(body)
    prev = body.get("previous_response_id")
    if prev is not None:
        if not isinstance(prev, str) or not prev:
            raise ProxyError("invalid_request", "previous_response_id must be a non-empty string.",
                             param="previous_response_id")
        link = await store.link(prev, owner)
        if link is None:
            raise ProxyError("not_found", f"Previous response with id '{prev}' not found.",
                             param="previous_response_id")
        limits = store.settings
        if link.depth >= limits.max_chain_depth:
            raise ProxyError("invalid_request", f"The conversation of previous response '{prev}' already has "
                             f"{link.depth} turns, the most this Tollway keeps ([responses] max_chain_depth = "
                             f"{limits.max_chain_depth}). Start a new conversation, sending what you need of "
                             "the old one as input.", param="previous_response_id")
        if link.chain_bytes + len(ctx.body) > limits.max_chain_bytes:
            raise ProxyError("invalid_request", f"The conversation of previous response '{prev}' holds "
                             f"{link.chain_bytes} bytes; with this request it would exceed the "
                             f"{limits.max_chain_bytes} bytes this Tollway keeps per conversation "
                             "([responses] max_chain_bytes). Start a new conversation, sending what you need "
                             "of the old one as input.", param="previous_response_id")
        conv.previous = link
        conv.history = await store.history(prev, owner)
    inp = body.get("input")
    if isinstance(inp, list) and any(isinstance(i, dict) and i.get("type") == "item_reference" for i in inp):
        conv.body = {**body, "input": await _resolve_references(store, owner, inp, conv.history)}
    return conv


async def _resolve_references(store: ResponseStore, owner: Owner, inp: list[Any],
                              history: list[dict[str, Any]]) -> list[Any]:
    wanted: dict[int, str] = {}
    for i, item in enumerate(inp):
        if isinstance(item, dict) and item.get("type") == "item_reference":
            ref = item.get("id")
            if not isinstance(ref, str) or not ref:
                raise ProxyError("invalid_request", f"input[{i}].id must be a non-empty string.", param=f"input[{i}].id")
            wanted[i] = ref
    known = {it["id"]: it for it in history if isinstance(it.get("id"), str) and it["id"] in wanted.values()}
    missing = {r for r in wanted.values() if r not in known}
    responses = {rid for rid in (response_of_item(r) for r in missing) if rid is not None}
    if len(responses) > MAX_REFERENCED_RESPONSES:
        raise ProxyError("invalid_request", f"The input references items of {len(responses)} stored responses; "
                         f"at most {MAX_REFERENCED_RESPONSES} can be resolved in one request.", param="input")
    if responses:
        known.update(await store.items_of(sorted(responses), owner))
    out = list(inp)
    for i, ref in wanted.items():
        item = known.get(ref)
        if item is None:
            raise ProxyError("invalid_request", f"Item with id '{ref}' not found: an item_reference must name an "
                             "item of a response this Tollway stored for your key.", param=f"input[{i}]")
        out[i] = item
    return out
