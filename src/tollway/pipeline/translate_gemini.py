"""Embeddings and token counting for Gemini clients whose model is not Gemini's.

`:embedContent` / `:batchEmbedContents` (`Endpoint.EMBED_CONTENT`) to an OpenAI-format provider
(OpenAI, Azure, a local server): the texts go to its `/embeddings` in one call and the vectors
come back in Gemini's shape (`{"embedding": {"values"}}`, or `{"embeddings": [...]}` for a batch).
Usage is the provider's. Anthropic has no embeddings: the catalog refuses such a model with a 400.

`:countTokens` (`Endpoint.GEMINI_COUNT_TOKENS`) for every model: Anthropic models are asked
(`/v1/messages/count_tokens`, exact); OpenAI-family models are counted locally with their tiktoken
encoding (exact); others are estimated and flagged with `x-tollway-tokens-estimated: true`.

Gemini models never come here: a Gemini client to a Gemini provider is the byte fast path.
Errors answer in Gemini's shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from tollway.api.asgi import Receive, Send
from tollway.errors import ProxyError
from tollway.formats import anthropic as f_anthropic
from tollway.formats import gemini as f_gemini
from tollway.formats import openai_chat as f_openai
from tollway.formats._util import req_dict
from tollway.formats.errors import TranslationError, render_translation_error
from tollway.pipeline.accounting import meter
from tollway.pipeline.context import RequestContext
from tollway.pipeline.translate_aux import ESTIMATED_HEADER, OPENAI_FAMILY, _Call
from tollway.providers.base import Endpoint
from tollway.providers.openai import usage_from_openai
from tollway.usage import Usage

if TYPE_CHECKING:
    from tollway.state import AppState

# per-request fields of embedContent that have no OpenAI counterpart (named in x-tollway-dropped-params)
_EMBED_KNOWN = frozenset({"model", "content", "outputDimensionality"})


def can_translate(endpoint: Endpoint, provider: Any) -> bool:
    if endpoint == Endpoint.EMBED_CONTENT:
        return provider.wire_format in ("openai", "gemini") and (
            Endpoint.EMBEDDINGS in provider.endpoints or Endpoint.EMBED_CONTENT in provider.endpoints)
    return endpoint == Endpoint.GEMINI_COUNT_TOKENS  # asked, or counted locally: every model has an answer


async def forward(state: "AppState", ctx: RequestContext, receive: Receive, send: Send) -> None:
    if ctx.endpoint == Endpoint.EMBED_CONTENT:
        await _Embeddings(state, ctx).forward(send)
    else:
        await _CountTokens(state, ctx).forward(send)


def _embed_requests(body: dict) -> tuple[list[dict], bool]:
    """(the embedContent requests, was a batch)."""
    reqs = body.get("requests")
    if reqs is None:
        return [body], False
    if not isinstance(reqs, list) or not reqs or not all(isinstance(r, dict) for r in reqs):
        raise ProxyError("invalid_request", "'requests' must be a non-empty array of objects.", param="requests")
    return reqs, True


def _embed_text(r: dict, i: int) -> str:
    content = r.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        raise ProxyError("invalid_request", f"requests[{i}].content.parts must be a non-empty array.",
                         param="content")
    texts = []
    for p in parts:
        if not isinstance(p, dict) or not isinstance(p.get("text"), str):
            raise ProxyError("invalid_request", "This model embeds text only: every part must be a text part.",
                             param="content")
        texts.append(p["text"])
    text = " ".join(texts)
    if not text:
        raise ProxyError("invalid_request", "The text to embed cannot be empty.", param="content")
    return text


class _Embeddings(_Call):
    client_fmt = "gemini"

    async def forward(self, send: Send) -> None:
        ctx, dep = self.ctx, self.dep
        reqs, batch = _embed_requests(f_gemini.proto_keys(ctx.json or {}))
        texts = [_embed_text(r, i) for i, r in enumerate(reqs)]
        dims = {r.get("outputDimensionality") for r in reqs}
        if len(dims) > 1:
            raise ProxyError("invalid_request", "Every request of a batch must ask for the same "
                                                "outputDimensionality for this model.", param="outputDimensionality")
        dim = dims.pop()
        if dim is not None and (not isinstance(dim, int) or isinstance(dim, bool) or dim < 1):
            raise ProxyError("invalid_request", "outputDimensionality must be a positive integer.",
                             param="outputDimensionality")
        dropped = sorted({k for r in reqs for k in r if k not in _EMBED_KNOWN})
        if dropped:
            if self.state.settings.translation.strict:
                raise ProxyError("invalid_request", f"These parameters cannot be honoured by provider "
                                                    f"'{dep.provider.id}': {', '.join(dropped)} "
                                                    "(translation.strict is on).", param=dropped[0])
            self.extra.append((b"x-tollway-dropped-params", ",".join(dropped).encode()))
        oa: dict[str, Any] = {"model": dep.model, "input": texts, "encoding_format": "float"}
        if dim is not None:
            oa["dimensions"] = dim
        answer = await self._call(send, Endpoint.EMBEDDINGS, oa)
        if answer is None:
            return
        rows = answer.get("data")
        vectors: list[list[float]] = []
        if isinstance(rows, list):
            ordered = sorted((r for r in rows if isinstance(r, dict)), key=lambda r: r.get("index") or 0)
            vectors = [r["embedding"] for r in ordered if isinstance(r.get("embedding"), list)]
        if len(vectors) != len(texts):
            await self._error(send, 502, "api_error",
                              f"The provider's answer could not be read (expected {len(texts)} embedding(s)).",
                              error_type="invalid_provider_body")
            return
        ctx.model_served = answer.get("model") if isinstance(answer.get("model"), str) else dep.model
        ctx.usage = usage_from_openai(answer.get("usage"))
        await meter(self.state, ctx, None if ctx.usage is not None and ctx.usage.known else "")
        out = {"embeddings": [{"values": v} for v in vectors]} if batch else {"embedding": {"values": vectors[0]}}
        extra = []
        if ctx.cost is not None:
            extra.append((b"x-tollway-cost-usd", format(ctx.cost, "f").encode()))
        await self._answer(send, 200, orjson.dumps(out), extra)


class _CountTokens(_Call):
    client_fmt = "gemini"

    async def forward(self, send: Send) -> None:
        ctx, dep = self.ctx, self.dep
        provider = dep.provider
        body = f_gemini.proto_keys(ctx.json or {})
        try:
            inner = body.get("generateContentRequest")
            gbody = req_dict(inner, "generateContentRequest") if inner is not None else {"contents": body.get(
                "contents") or []}
            canon = f_gemini.request_to_canonical(gbody, dep.model)
            if provider.wire_format == "anthropic":
                abody, _ = f_anthropic.request_from_canonical(canon, dep.model)
                abody = {k: v for k, v in abody.items() if k in ("model", "messages", "system", "tools", "thinking")}
            else:
                chat, _ = f_openai.request_from_canonical(canon, dep.model)
        except TranslationError as e:
            status, err = render_translation_error("gemini", e)
            ctx.status, ctx.error_type = status, "invalid_request"
            await self._answer(send, status, orjson.dumps(err))
            return
        if provider.wire_format == "anthropic":
            answer = await self._call(send, Endpoint.COUNT_TOKENS, abody)
            if answer is None:
                return
            total = answer.get("input_tokens")
            if not isinstance(total, int) or isinstance(total, bool):
                await self._error(send, 502, "api_error", "The provider's answer has no token count.",
                                  error_type="invalid_provider_body")
                return
            count, exact = total, True
        else:
            # a huge prompt takes seconds to tokenise: counted off the event loop
            count, exact = await self.state.counting.run(len(ctx.body), self.state.tokens.count_openai_chat,
                                                         dep.model, chat)
            exact = exact and provider.kind in OPENAI_FAMILY
            ctx.status = 200
        ctx.model_served = dep.model
        ctx.usage = None if exact else Usage(estimated=True)  # counting consumes no tokens
        await meter(self.state, ctx)
        extra: list[tuple[bytes, bytes]] = [] if exact else [ESTIMATED_HEADER]
        await self._answer(send, 200, orjson.dumps({"totalTokens": count}), extra)
