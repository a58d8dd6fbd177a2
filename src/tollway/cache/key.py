"""What makes two requests the same question: the scope and the cache key.

The key is a BLAKE2b digest of the scope, the endpoint, the model and the request body as JSON
with sorted keys, minus the fields that do not change the answer (`stream`, `stream_options`,
`user`, `metadata`, `store`, ...). So a streamed and a plain request share an entry, and two
users of one key who differ only in `user` do too. The body was parsed once by the decode
stage; this costs one sorted dump of it and a hash.

The scope is who may share an answer: the key by default (key A never sees key B's answers),
or the key's team or project when configured, taken from the key's own settings and never
from a header the caller chooses. A key without a team or project keeps its own scope.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from tollway.pipeline.context import RequestContext

# Fields that change nothing in the answer (per format, all in one set: names do not collide).
IGNORED = frozenset({
    "stream", "stream_options", "user", "metadata", "store", "service_tier", "prompt_cache_key",
    "prompt_cache_retention", "safety_identifier", "labels",
})


def scope_of(ctx: RequestContext, scope: str) -> str:
    key = ctx.key
    if scope == "project" and key is not None and key.project:
        return "p:" + key.project
    if scope == "team":
        team = getattr(key, "team", None)
        if team:
            return "t:" + team
    return "k:" + (ctx.key_id or "")  # "k:" alone: Tollway is open (no keys configured)


def normalised(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in IGNORED}


def digest(*parts: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(p)
        h.update(b"\x00")
    return h.digest()


def exact_key(scope: str, endpoint: str, model: str, body: dict[str, Any]) -> bytes:
    dumped = orjson.dumps(normalised(body), option=orjson.OPT_SORT_KEYS)
    return digest(b"exact", scope.encode(), endpoint.encode(), model.encode(), dumped)


def skip_reason(endpoint: str, body: dict[str, Any], cache_temperature: bool) -> str | None:
    """Why this request must not be answered from (or stored in) the cache, or None."""
    if not cache_temperature and _temperature(endpoint, body) > 0:
        return "temperature"
    if endpoint == "chat":
        n = body.get("n")
        if isinstance(n, int) and n > 1:
            return "n"
        if body.get("logprobs") or body.get("audio") or "audio" in (body.get("modalities") or ()):
            return "logprobs_or_audio"
        if body.get("web_search_options") is not None:
            return "web_search"
    elif endpoint == "responses":
        # A cached answer has no stored conversation behind its id: only store=false requests.
        if body.get("store") is not False:
            return "responses_store"
        if body.get("background") or body.get("conversation") is not None:
            return "responses_state"
    return None


def _temperature(endpoint: str, body: dict[str, Any]) -> float:
    t = body.get("temperature")
    if endpoint == "generate_content":
        gc = body.get("generationConfig") or body.get("generation_config")
        t = gc.get("temperature") if isinstance(gc, dict) else None
    return float(t) if isinstance(t, int | float) and not isinstance(t, bool) else 0.0
