"""Micro-benchmark of the response cache, in µs of CPU on the event loop thread.

    python bench/cache_micro.py              # exact cache: hit path, miss recording
    python bench/cache_micro.py --semantic   # + ms per local embedding (needs tollway[semantic])

Hit path: everything the cache stage does for a hit of a ~1 KB chat request (key, memory-store
lookup, decoding the entry, rendering it in the client's format and sending it to a discarding
ASGI send), plain and streamed. Auth, decode and routing come on top (see the overhead bench).

Miss recording, the two ways a recorder can see an answer (see cache/recorder.py):
  forced canonical: what `ctx.canonical = True` adds to *every* miss on the critical path
      (request → canonical → provider body, and the answer → canonical → client answer);
  byte tap + parse: what the cache does (a list append per chunk, then one parse of the client's
      bytes after the response has been sent).
"""

from __future__ import annotations

import asyncio
import sys
import time
from decimal import Decimal
from typing import Any

import orjson

from tollway.cache import entry as entries
from tollway.cache.key import exact_key
from tollway.cache.recorder import Recorder
from tollway.cache.store import MemoryStore
from tollway.config import CacheSettings, Settings
from tollway.formats import openai_chat as f_openai
from tollway.pipeline.context import RequestContext

N = 5_000

REQUEST = {
    "model": "gpt-4o-mini", "temperature": 0, "max_tokens": 300,
    "messages": [{"role": "system", "content": "You are a concise assistant for a travel agency. " * 6},
                 {"role": "user", "content": "Suggest three things to do in Lisbon on a rainy day, with one "
                                             "sentence each about why. " * 3}],
}
ANSWER = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion", "created": 1741570283,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "1. Visit the Gulbenkian Museum. " * 12,
                                         "refusal": None, "annotations": []},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 190, "completion_tokens": 110, "total_tokens": 300},
    "service_tier": "default", "system_fingerprint": "fp_560af6e559",
}


def stream_bytes() -> bytes:
    words = ANSWER["choices"][0]["message"]["content"].split(" ")
    base = {"id": ANSWER["id"], "object": "chat.completion.chunk", "created": 1741570283, "model": ANSWER["model"]}
    out = [orjson.dumps({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                              "finish_reason": None}]})]
    for w in words:
        out.append(orjson.dumps({**base, "choices": [{"index": 0, "delta": {"content": w + " "}, "finish_reason": None}]}))
    out.append(orjson.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    return b"".join(b"data: " + o + b"\n\n" for o in out) + b"data: [DONE]\n\n"


def per_call(fn, n: int = N) -> float:
    fn()
    t = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t) / n * 1e6


async def per_call_async(fn, n: int = N) -> float:
    await fn()
    t = time.process_time()
    for _ in range(n):
        await fn()
    return (time.process_time() - t) / n * 1e6


class _Key:
    id = "bench"
    project = None
    master = False


def make_ctx(stream: bool) -> RequestContext:
    async def send(msg: dict[str, Any]) -> None:
        return None

    ctx = RequestContext("openai.chat", "openai", "chat", "POST", "/v1/chat/completions", {}, None, send)
    ctx.key, ctx.key_id = _Key(), "bench"  # type: ignore[assignment]
    ctx.json, ctx.model, ctx.stream = REQUEST, "gpt-4o-mini", stream
    return ctx


async def hit_path() -> dict[str, float]:
    from tollway.cache.service import ResponseCache

    settings = Settings(cache=CacheSettings(mode="exact"))
    store = MemoryStore(64 << 20)
    cache = ResponseCache(settings, store)
    canon = f_openai.response_to_canonical(ANSWER)
    key = exact_key("k:bench", "chat", "gpt-4o-mini", REQUEST)
    await store.put(key, entries.dumps(entries.CachedAnswer(canon, time.time(), Decimal("0.0000951"))), 3600)
    out = {"cache key (blake2b of the sorted dump)": per_call(lambda: exact_key("k:bench", "chat", "gpt-4o-mini",
                                                                                    REQUEST))}
    data = await store.get(key)
    out["decode a stored entry"] = per_call(lambda: entries.loads(data))
    for stream in (False, True):
        async def one(stream: bool = stream) -> None:
            ctx = make_ctx(stream)
            call = await cache.lookup(ctx)
            assert call is not None and call.status == "hit" and ctx.reply is not None
            await ctx.reply(ctx)

        out[f"whole hit: lookup + render + send ({'stream' if stream else 'plain'})"] = await per_call_async(one)
    return out


def recording() -> dict[str, float]:
    out: dict[str, float] = {}
    answer_bytes = orjson.dumps(ANSWER)
    sse = stream_bytes()
    chunks = [c + b"\n\n" for c in sse.split(b"\n\n") if c]

    def forced_whole() -> None:
        req = f_openai.request_to_canonical(REQUEST)
        orjson.dumps(f_openai.request_from_canonical(req, "gpt-4o-mini")[0])
        canon = f_openai.response_to_canonical(orjson.loads(answer_bytes))
        orjson.dumps(f_openai.response_from_canonical(canon, model=canon.model))

    def forced_stream() -> None:
        req = f_openai.request_to_canonical(REQUEST)
        orjson.dumps(f_openai.request_from_canonical(req, "gpt-4o-mini")[0])
        parser, writer = f_openai.StreamParser(), f_openai.StreamWriter(model="gpt-4o-mini")
        for c in chunks:
            for d in parser.feed_bytes(c):
                writer.write(d)
        for d in parser.close():
            writer.write(d)
        writer.close()

    def tap_whole() -> None:
        r = Recorder("openai_chat", 1 << 20)
        r.whole_bytes(answer_bytes)
        assert r.answer() is not None

    def tap_stream() -> None:
        r = Recorder("openai_chat", 1 << 20)
        for c in chunks:
            r.chunk(c)
        assert r.answer() is not None

    def tap_only() -> None:
        r = Recorder("openai_chat", 1 << 20)
        for c in chunks:
            r.chunk(c)

    out["forced canonical, whole answer (critical path)"] = per_call(forced_whole)
    out["byte tap + parse, whole answer (after the response)"] = per_call(tap_whole)
    out[f"forced canonical, stream of {len(chunks)} events (critical path)"] = per_call(forced_stream, N // 5)
    out[f"byte tap, stream of {len(chunks)} events (critical path)"] = per_call(tap_only, N // 5)
    out[f"byte tap + parse, stream of {len(chunks)} events (after the response)"] = per_call(tap_stream, N // 5)
    return out


def semantic() -> dict[str, float]:
    from tollway.cache.embed import LocalEmbedder

    emb = LocalEmbedder()
    emb.load()
    out = {}
    for label, text in (("a 9-token question", "What is the capital of France?"),
                        ("a 70-token question", REQUEST["messages"][1]["content"]),
                        ("a 256-token (cut) question", "word " * 400)):
        out[f"local embedding of {label} (ms, in its thread)"] = per_call(lambda t=text: emb.embed_sync(t), 30) / 1000
    return out


def main() -> None:
    results = asyncio.run(hit_path())
    results.update(recording())
    if "--semantic" in sys.argv:
        results.update(semantic())
    width = max(len(k) for k in results)
    for k, v in results.items():
        print(f"{k:<{width}}  {v:8.1f}{'' if '(ms' in k else ' µs'}")


if __name__ == "__main__":
    main()
