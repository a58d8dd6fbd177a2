"""Embeddings and token counting across formats (the non-chat half of translation).

Embeddings (`POST /v1/embeddings`, OpenAI's format) for Gemini models: one input goes to
`:embedContent`, a list to `:batchEmbedContents`; the answer comes back in OpenAI's list shape,
as float arrays or base64 (little-endian float32, what the openai SDK asks for by default).
Gemini reports no usage for embeddings, so the prompt is counted locally and marked estimated.

Token counting (`POST /v1/messages/count_tokens`, Anthropic's format) for every model:
Anthropic models are forwarded on the fast path (not here); Gemini models go to `:countTokens`
(exact); OpenAI-family models (openai, azure_openai) are counted locally with their own tiktoken
encoding on the equivalent Chat Completions request (exact when the model's encoding is known);
anything else is a local estimate. An estimate is flagged with `x-tollway-tokens-estimated: true`.

Errors answer in the client's format (OpenAI's for embeddings, Anthropic's for count_tokens),
and every call sets what the ledger needs (status, usage, model served, cost).
"""

from __future__ import annotations

import base64
import struct
from typing import TYPE_CHECKING, Any

import orjson

from tollway.api.asgi import Receive, Send
from tollway.errors import ProxyError
from tollway.formats import anthropic as f_anthropic
from tollway.formats import gemini as f_gemini
from tollway.formats import openai_chat as f_openai
from tollway.formats._util import is_neutral, unsafe_param_name
from tollway.formats.errors import TranslationError, parse_provider_error, render_error, render_translation_error
from tollway.pipeline import upstream
from tollway.pipeline.accounting import meter
from tollway.pipeline.client_headers import request_id_header, with_client_headers
from tollway.pipeline.context import RequestContext
from tollway.policy.credentials import with_key_credentials
from tollway.providers.base import Endpoint, encode_json
from tollway.providers.credentials import scrub
from tollway.usage import Usage

if TYPE_CHECKING:
    from tollway.routing.catalog import Deployment
    from tollway.state import AppState

# provider kinds whose tokenizer tiktoken has (counted locally, exactly)
OPENAI_FAMILY = frozenset({"openai", "azure_openai"})
ESTIMATED_HEADER = (b"x-tollway-tokens-estimated", b"true")
_KEEP_ERROR_HEADERS = (b"retry-after",)
# OpenAI embeddings params Gemini honours (`user` has no Gemini field and is not worth reporting)
_EMBED_PARAMS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
# Gemini's countTokens takes bare `contents`, or a whole request when more than contents counts
_COUNTED_FIELDS = ("contents", "systemInstruction", "tools", "toolConfig")


def can_translate(endpoint: Endpoint, provider: Any) -> bool:
    if endpoint == Endpoint.EMBEDDINGS:
        return provider.wire_format == "gemini" and Endpoint.EMBEDDINGS in provider.endpoints
    if endpoint == Endpoint.COUNT_TOKENS:
        return True  # forwarded, asked of Gemini, or counted locally: every model has an answer
    return False


async def forward(state: "AppState", ctx: RequestContext, receive: Receive, send: Send) -> None:
    if ctx.endpoint == Endpoint.EMBEDDINGS:
        await _Embeddings(state, ctx).forward(send)
    elif ctx.endpoint == Endpoint.COUNT_TOKENS:
        await _CountTokens(state, ctx).forward(send)
    else:  # pragma: no cover - forward_translated routes only these two here
        raise ProxyError("invalid_request", f"{ctx.endpoint} cannot be translated.")


class _Call:
    """What both kinds of call share: the deployment, sending, errors in the client's format."""

    client_fmt = "openai_chat"

    def __init__(self, state: "AppState", ctx: RequestContext) -> None:
        self.state = state
        self.ctx = ctx
        assert ctx.deployment is not None
        self.dep: "Deployment" = ctx.deployment
        self.extra: list[tuple[bytes, bytes]] = list(ctx.response_headers)

    async def _answer(self, send: Send, status: int, body: bytes, extra: list | tuple = ()) -> None:
        ctx = self.ctx
        ctx.response_started = True
        hdrs = [(b"content-type", b"application/json"), *self.extra, *extra,
                (b"content-length", str(len(body)).encode()), ctx.overhead_header()]
        await send({"type": "http.response.start", "status": status, "headers": hdrs})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _error(self, send: Send, status: int, etype: str, message: str, param: str | None = None,
                     extra: list | tuple = (), error_type: str | None = None) -> None:
        st, err = render_error(self.client_fmt, etype, message, param)
        self.ctx.status = status or st
        self.ctx.error_type = error_type or etype
        await self._answer(send, status or st, orjson.dumps(err), extra)

    async def _call(self, send: Send, endpoint: Endpoint, body: dict) -> dict | None:
        """Send `body` (the provider's format) and return its parsed answer, or answer the
        client with the error (in its own format) and return None."""
        dep = self.dep
        call = dep.provider.prepare(endpoint, body, encode_json(body), dep.model, False, self.ctx.headers)
        call.request.headers = with_client_headers(call.request.headers, self.ctx.headers)
        key = self.ctx.key
        if not self.ctx.byok and key is not None and key.credentials:
            call.request.headers = with_key_credentials(key, dep.provider, call.request.headers)
        resp = await upstream.send(self.ctx, dep.transport, call.request, dep.provider.id, dep.provider.kind,
                                   dep.model)
        try:
            raw = await upstream.read(self.ctx, resp, self.state.settings.server.max_response_bytes)
            rid = request_id_header(resp.raw_headers, self.ctx.wire_format)
            if rid is not None:
                self.extra.append(rid)
            if resp.status >= 400:
                raw = scrub(raw, dep.provider)
                perr = parse_provider_error(dep.provider.wire_format, resp.status, raw)
                keep = [(k, v) for k, v in resp.raw_headers if k.lower() in _KEEP_ERROR_HEADERS]
                await self._error(send, resp.status, perr.type, perr.message, perr.param, keep,
                                  error_type="provider:" + perr.type)
                return None
        finally:
            resp.release()
            upstream.finish(self.ctx)
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            await self._error(send, 502, "api_error", "The provider's answer could not be read (not a JSON object).",
                              error_type="invalid_provider_body")
            return None
        self.ctx.status = resp.status
        return parsed


# --- embeddings ---------------------------------------------------------------------------------

def _embedding_texts(inp: Any) -> tuple[list[str], bool]:
    """OpenAI `input` → (texts, was a single string). Token-id inputs have no Gemini form."""
    if isinstance(inp, str):
        if not inp:
            raise ProxyError("invalid_request", "'input' cannot be an empty string.", param="input")
        return [inp], True
    if isinstance(inp, list) and inp and all(isinstance(x, str) for x in inp):
        if any(not x for x in inp):
            raise ProxyError("invalid_request", "'input' cannot contain empty strings.", param="input")
        return list(inp), False
    if isinstance(inp, list) and inp and all(isinstance(x, (int, list)) for x in inp):
        raise ProxyError("invalid_request", "This model takes text input only; token ids cannot be sent to it.",
                         param="input")
    raise ProxyError("invalid_request", "'input' must be a non-empty string or a non-empty array of strings.",
                     param="input")


def encode_vector(values: list[float], as_base64: bool) -> list[float] | str:
    if not as_base64:
        return values
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


def _values(obj: Any) -> list[float] | None:
    vals = obj.get("values") if isinstance(obj, dict) else None
    if isinstance(vals, list) and all(isinstance(v, (int, float)) for v in vals):
        return [float(v) for v in vals]
    return None


class _Embeddings(_Call):
    client_fmt = "openai_chat"

    def gemini_body(self, texts: list[str], single: bool) -> dict:
        body = self.ctx.json or {}
        dims = body.get("dimensions")
        if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or dims < 1):
            raise ProxyError("invalid_request", "'dimensions' must be a positive integer.", param="dimensions")

        def one(text: str) -> dict:
            r: dict = {"content": {"parts": [{"text": text}]}}
            if dims is not None:
                r["outputDimensionality"] = dims
            return r

        if single:
            return one(texts[0])
        name = "models/" + self.dep.model.removeprefix("models/")
        return {"requests": [{"model": name, **one(t)} for t in texts]}

    async def forward(self, send: Send) -> None:
        ctx, dep = self.ctx, self.dep
        body = ctx.json or {}
        fmt = body.get("encoding_format")
        if fmt not in (None, "float", "base64"):
            raise ProxyError("invalid_request", "'encoding_format' must be 'float' or 'base64'.",
                             param="encoding_format")
        texts, single = _embedding_texts(body.get("input"))
        dropped = [k for k, v in body.items() if k not in _EMBED_PARAMS and not is_neutral(k, v)]
        if dropped:
            bad = unsafe_param_name(dropped)
            if bad is not None:  # it would break the x-tollway-dropped-params header
                raise ProxyError("invalid_request", f"Unsupported parameter {bad[:64]!r}.", param=bad[:64])
            if self.state.settings.translation.strict:
                raise ProxyError("invalid_request", f"These parameters cannot be honoured by provider "
                                                    f"'{dep.provider.id}' (gemini): {', '.join(dropped)} "
                                                    "(translation.strict is on).", param=dropped[0])
            self.extra.append((b"x-tollway-dropped-params", ",".join(dropped).encode()))
        answer = await self._call(send, Endpoint.EMBEDDINGS, self.gemini_body(texts, single))
        if answer is None:
            return
        found = [_values(answer.get("embedding"))] if single else [_values(e) for e in answer.get("embeddings") or ()]
        vectors = [v for v in found if v is not None]
        if len(vectors) != len(texts):
            await self._error(send, 502, "api_error",
                              f"The provider's answer could not be read (expected {len(texts)} embedding(s)).",
                              error_type="invalid_provider_body")
            return
        n = (await self.state.counting.run(len(ctx.body), self.state.tokens.count_embeddings_input, dep.model,
                                           body.get("input")))[0]
        ctx.model_served = dep.model
        ctx.usage = Usage(input_tokens=n, output_tokens=0, estimated=True)  # Gemini reports none
        await meter(self.state, ctx)
        as_b64 = fmt == "base64"
        out = {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": encode_vector(v, as_b64)}
                     for i, v in enumerate(vectors)],
            "model": dep.model,
            "usage": {"prompt_tokens": n, "total_tokens": n},
        }
        extra = [ESTIMATED_HEADER]
        if ctx.cost is not None:
            extra.append((b"x-tollway-cost-usd", format(ctx.cost, "f").encode()))
        await self._answer(send, 200, orjson.dumps(out), extra)


# --- token counting -----------------------------------------------------------------------------

def gemini_count_body(gbody: dict, model: str) -> dict:
    """A generateContent body → the countTokens request that counts all of it."""
    if set(gbody) & set(_COUNTED_FIELDS) <= {"contents"}:
        return {"contents": gbody.get("contents") or []}
    inner = {k: gbody[k] for k in _COUNTED_FIELDS if k in gbody}
    return {"generateContentRequest": {"model": "models/" + model.removeprefix("models/"), **inner}}


class _CountTokens(_Call):
    client_fmt = "anthropic"

    async def forward(self, send: Send) -> None:
        ctx, dep = self.ctx, self.dep
        provider = dep.provider
        try:
            canon = f_anthropic.request_to_canonical(ctx.json or {})
            if provider.wire_format == "gemini":
                opts = dict(getattr(provider, "translate_options", {}) or {})
                gbody, _ = f_gemini.request_from_canonical(canon, dep.model, **opts)
            else:
                chat, _ = f_openai.request_from_canonical(canon, dep.model)
        except (TranslationError, RecursionError) as e:
            if isinstance(e, RecursionError):
                e = TranslationError("The request body is nested too deeply to be translated.")
            status, err = render_translation_error("anthropic", e)
            ctx.status, ctx.error_type = status, "invalid_request"
            await self._answer(send, status, orjson.dumps(err))
            return
        if provider.wire_format == "gemini":
            answer = await self._call(send, Endpoint.COUNT_TOKENS, gemini_count_body(gbody, dep.model))
            if answer is None:
                return
            total = answer.get("totalTokens")
            if not isinstance(total, int) or isinstance(total, bool):
                await self._error(send, 502, "api_error", "The provider's answer has no token count.",
                                  error_type="invalid_provider_body")
                return
            count, exact = total, True
        else:
            # a 30 MB prompt takes seconds to tokenise: counted off the event loop
            count, exact = await self.state.counting.run(len(ctx.body), self.state.tokens.count_openai_chat,
                                                         dep.model, chat)
            exact = exact and provider.kind in OPENAI_FAMILY
            ctx.status = 200
        ctx.model_served = dep.model
        ctx.usage = None if exact else Usage(estimated=True)  # counting consumes no tokens
        await meter(self.state, ctx)
        extra: list[tuple[bytes, bytes]] = [] if exact else [ESTIMATED_HEADER]
        if ctx.cost is not None:
            extra.append((b"x-tollway-cost-usd", format(ctx.cost, "f").encode()))
        await self._answer(send, 200, orjson.dumps({"input_tokens": count}), extra)
