"""The translated call: a client format the provider does not speak.

client body → canonical → provider body; provider answer → canonical → client answer, and
for streams provider events → canonical deltas → client events, emitted as they arrive.
Only used when formats differ; same-format calls stay on the byte fast path in `proxy`.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import orjson

from tollway.api.asgi import DisconnectWatch, Receive, Send, relay_headers, send_bytes
from tollway.counting import OutputTally
from tollway.errors import ProxyError, shutdown_error
from tollway.formats import anthropic as f_anthropic
from tollway.formats import gemini as f_gemini
from tollway.formats import json_mode
from tollway.formats import openai_chat as f_openai
from tollway.formats import responses as f_responses
from tollway.formats.canonical import CanonicalRequest, CanonicalResponse
from tollway.formats._util import unsafe_param_name
from tollway.formats.errors import TranslationError, parse_provider_error, render_error, render_translation_error
from tollway.formats.stream import (
    MessageStart, StreamError, TextDelta, ThinkingDelta, ToolCallArgsDelta, ToolCallStart, UsageDelta,
)
from tollway.pipeline import upstream
from tollway.pipeline.accounting import meter
from tollway.pipeline.attempt_failures import Failed, fails_over, retry_after, stream_failure
from tollway.pipeline.attempts import start_stream
from tollway.pipeline.client_headers import request_id_header, with_client_headers
from tollway.pipeline.content import ContentBlocked, FilterChain
from tollway.pipeline.context import RequestContext
from tollway.pipeline.dropped_params import dropped_params_header
from tollway.policy.credentials import with_key_credentials
from tollway.pipeline.responses_history import Conversation, load_conversation
from tollway.providers.base import GEMINI_ENDPOINTS, Endpoint, encode_json
from tollway.providers.credentials import scrub

if TYPE_CHECKING:
    from tollway.state import AppState

# client endpoint -> the client's format name in tollway.formats
CLIENT_FORMAT = {Endpoint.CHAT: "openai_chat", Endpoint.RESPONSES: "responses", Endpoint.MESSAGES: "anthropic",
                 Endpoint.GENERATE_CONTENT: "gemini"}
CLIENT_MODULES: dict[str, Any] = {"openai_chat": f_openai, "responses": f_responses, "anthropic": f_anthropic,
                                  "gemini": f_gemini}
# the non-chat endpoints, translated by translate_aux (OpenAI and Anthropic clients) or translate_gemini
_AUX = frozenset({Endpoint.EMBEDDINGS, Endpoint.COUNT_TOKENS})
_GEMINI_AUX = frozenset({Endpoint.EMBED_CONTENT, Endpoint.GEMINI_COUNT_TOKENS})
WIRE_MODULES: dict[str, Any] = {"openai": f_openai, "anthropic": f_anthropic, "gemini": f_gemini}
# the provider-side endpoint a translated chat-like call goes to
PROVIDER_CHAT_ENDPOINT = {"openai": Endpoint.CHAT, "anthropic": Endpoint.MESSAGES, "gemini": Endpoint.CHAT}
_FIRST_TOKEN = (TextDelta, ToolCallStart, ThinkingDelta)


def client_wire(endpoint: Endpoint) -> str:
    if endpoint in GEMINI_ENDPOINTS:
        return "gemini"
    return "anthropic" if endpoint in (Endpoint.MESSAGES, Endpoint.COUNT_TOKENS) else "openai"


def needs_translation(endpoint: Endpoint, provider: Any) -> bool:
    if provider.wire_format == "native":
        return False
    return endpoint not in provider.endpoints or client_wire(endpoint) != provider.wire_format


def can_force_canonical(endpoint: Endpoint, provider: Any) -> bool:
    """A same-format chat-like call can still go the canonical way (for content filters)."""
    return endpoint in CLIENT_FORMAT and provider.wire_format in WIRE_MODULES


def can_translate(endpoint: Endpoint, provider: Any) -> bool:
    if not needs_translation(endpoint, provider):
        return True
    if endpoint in _AUX:
        from tollway.pipeline import translate_aux

        return translate_aux.can_translate(endpoint, provider)
    if endpoint in _GEMINI_AUX:
        from tollway.pipeline import translate_gemini

        return translate_gemini.can_translate(endpoint, provider)
    return endpoint in CLIENT_FORMAT and provider.wire_format in WIRE_MODULES


class Translated:
    """One translated call. `forward()` mirrors `Forwarder.forward()` for differing formats."""

    def __init__(self, state: "AppState", ctx: RequestContext, conversation: Conversation | None = None) -> None:
        self._state = state
        self.ctx = ctx
        # Responses: the stored conversation before this request, and the response it continues
        self._history = conversation.history if conversation is not None else []
        self._previous = conversation.previous if conversation is not None else None
        self.endpoint = Endpoint(ctx.endpoint)
        self.client_fmt = CLIENT_FORMAT[self.endpoint]
        self.client_mod: Any = CLIENT_MODULES[self.client_fmt]
        provider = ctx.deployment.provider  # type: ignore[union-attr]
        self.wire = provider.wire_format
        self.wire_mod = WIRE_MODULES[self.wire]
        self.response_id: str | None = None
        self.json_unwrapper: json_mode.JsonUnwrapper | None = None  # JSON mode emulated with a tool
        self.filters = FilterChain(ctx.content_filters) if ctx.content_filters else None  # pipeline.content

    # -- request --------------------------------------------------------------------------------
    def _canonical(self) -> CanonicalRequest:
        body = self.ctx.json or {}
        if self.client_fmt == "responses":
            return f_responses.request_to_canonical(body, self._history)
        if self.client_fmt == "gemini":  # the model and streaming are in the URL
            return f_gemini.request_to_canonical(body, self.ctx.model or "", stream=self.ctx.stream)
        return self.client_mod.request_to_canonical(body)

    def _provider_body(self, req: CanonicalRequest) -> tuple[dict, list[str]]:
        dep = self.ctx.deployment
        assert dep is not None
        opts = dict(getattr(dep.provider, "translate_options", {}) or {})
        if self.wire == "anthropic":
            opts.setdefault("default_max_tokens", self._state.settings.translation.default_max_tokens)
        return self.wire_mod.request_from_canonical(req, dep.model, **opts)

    def _error(self, status: int, etype: str, message: str, param: str | None = None) -> tuple[int, bytes]:
        st, body = render_error(self.client_fmt, etype, message, param)
        return status or st, orjson.dumps(body)

    async def forward(self, receive: Receive, send: Send) -> None:
        ctx, state = self.ctx, self._state
        dep = ctx.deployment
        assert dep is not None
        try:
            req = self._canonical()
            if json_mode.needs_emulation(req, self.wire):
                self.json_unwrapper = json_mode.emulate(req)
            body, dropped = self._provider_body(req)
            bad = unsafe_param_name(dropped)
            if bad is not None:  # it would break the x-tollway-dropped-params header
                raise TranslationError(f"Unsupported parameter {bad[:64]!r}.", bad[:64])
        except TranslationError as e:
            status, err = render_translation_error(self.client_fmt, e)
            raise _Rendered(status, orjson.dumps(err), "invalid_request") from None
        except RecursionError:  # orjson reads 1,024 levels of nesting; Python recurses less deep
            raise ProxyError("invalid_request", "The request body is nested too deeply to be translated.") from None
        if dropped and state.settings.translation.strict:
            raise _Rendered(*self._error(400, "invalid_request_error",
                                         f"These parameters cannot be honoured by provider '{dep.provider.id}' "
                                         f"({self.wire}): {', '.join(dropped)} (translation.strict is on).",
                                         dropped[0]), "invalid_request")
        extra: list[tuple[bytes, bytes]] = list(ctx.response_headers)
        if dropped:
            extra.append(dropped_params_header(dropped))
        p_endpoint = PROVIDER_CHAT_ENDPOINT[self.wire]
        call = dep.provider.prepare(p_endpoint, body, encode_json(body), dep.model, ctx.stream, ctx.headers)
        call.request.headers = with_client_headers(call.request.headers, ctx.headers)
        if not ctx.byok and ctx.key is not None and ctx.key.credentials:
            call.request.headers = with_key_credentials(ctx.key, dep.provider, call.request.headers)
        if ctx.credential is not None:
            call.request.headers = state.forwarder.loop.with_profile(ctx, dep, call.request.headers)
        resp = await upstream.send(ctx, dep.transport, call.request, dep.provider.id, dep.provider.kind, dep.model)
        try:
            ctx.status = resp.status
            rid = request_id_header(resp.raw_headers, client_wire(self.endpoint))
            if rid is not None:
                extra.append(rid)
            if resp.status >= 400:
                raw = scrub(await upstream.read(ctx, resp, state.settings.server.max_response_bytes), dep.provider)
                perr = parse_provider_error(self.wire, resp.status, raw)
                ctx.error_type = "provider:" + perr.type
                status, err = self._error(resp.status, perr.type, perr.message, perr.param)
                keep = [(k, v) for k, v in resp.raw_headers if k.lower() == b"retry-after"]
                hdrs = [*keep, *extra, (b"content-type", b"application/json")]
                if fails_over(resp.status):
                    raise Failed(resp.status, ctx.error_type, f"({perr.message[:200]})",
                                 retry_after=retry_after(resp.raw_headers),
                                 reply=(status, [*hdrs, ctx.overhead_header()], err))
                await _send_whole(ctx, send, status, hdrs, err)
                return
            is_sse = any(k.lower() == b"content-type" and v.startswith(b"text/event-stream")
                         for k, v in resp.raw_headers)
            if ctx.stream and is_sse:
                await self._stream(resp, receive, send, req, extra)
            else:
                await self._whole(resp, send, extra, req)
        finally:
            resp.release()
            upstream.finish(ctx)

    # -- non-stream -----------------------------------------------------------------------------
    async def _whole(self, resp: Any, send: Send, extra: list, req: CanonicalRequest) -> None:
        ctx = self.ctx
        raw = await upstream.read(ctx, resp, self._state.settings.server.max_response_bytes)
        try:
            parsed = orjson.loads(raw)
            if ctx.trace is not None and isinstance(parsed, dict) and self.filters is None:
                ctx.trace.response_body(parsed)  # with filters: the filtered answer, below (never a withheld one)
            canon: CanonicalResponse = self.wire_mod.response_to_canonical(parsed)
            if self.json_unwrapper is not None:
                canon = self.json_unwrapper.response(canon)
            if self.filters is not None:
                canon = self.filters.whole(canon)
        except ContentBlocked as e:
            ctx.error_type = e.error_type
            status, err = self._error(403, "permission_error", e.message)
            ctx.status = 403
            await _send_whole(ctx, send, status, [*extra, (b"content-type", b"application/json")], err)
            return
        except (orjson.JSONDecodeError, TranslationError, TypeError, AttributeError) as e:
            ctx.error_type = "invalid_provider_body"
            status, err = self._error(502, "api_error", f"The provider's answer could not be read ({e}).")
            ctx.status = 502
            await _send_whole(ctx, send, status, [*extra, (b"content-type", b"application/json")], err)
            return
        ctx.model_served = canon.model or ctx.model_served
        ctx.usage = canon.usage if canon.usage.known else None
        out = self._client_response(canon)
        if self.filters is not None and ctx.trace is not None:
            ctx.trace.response_body(out)  # a span's captured answer is the filtered one, as the client got it
        await meter(self._state, ctx, None if ctx.usage and ctx.usage.note is None else _canonical_text(canon))
        hdrs = [*extra, (b"content-type", b"application/json")]
        if ctx.cost is not None:
            hdrs.append((b"x-tollway-cost-usd", format(ctx.cost, "f").encode()))
        await self._store_response(out)
        await _send_whole(ctx, send, 200, hdrs, orjson.dumps(out))

    def _client_response(self, canon: CanonicalResponse) -> dict:
        model = canon.model or self.ctx.deployment.model  # type: ignore[union-attr]
        if self.client_fmt == "responses":
            self.response_id = f_responses.new_response_id()
            return f_responses.response_from_canonical(canon, self.ctx.json or {}, response_id=self.response_id,
                                                       model=model)
        if self.client_fmt == "openai_chat":
            return f_openai.response_from_canonical(canon, model=model, reasoning_field=self._reasoning_field())
        return self.client_mod.response_from_canonical(canon, model=model)

    def _reasoning_field(self) -> str | None:
        """Chat client, OpenAI-format provider (a same-format call made canonical for a content
        filter): the provider's reasoning (`reasoning_content`, `reasoning`) goes on as
        `reasoning_content`, as the fast path would have relayed it (and the filters check it)."""
        return "reasoning_content" if self.wire == "openai" else None

    # -- stream ---------------------------------------------------------------------------------
    def _writer(self, req: CanonicalRequest) -> Any:
        model = self.ctx.deployment.model  # type: ignore[union-attr]
        if self.client_fmt == "responses":
            self.response_id = f_responses.new_response_id()
            return f_responses.StreamWriter(self.ctx.json or {}, model=model, response_id=self.response_id,
                                            created_at=time.time())
        if self.client_fmt == "openai_chat":
            return f_openai.StreamWriter(model=model, include_usage=bool(req.include_usage),
                                         reasoning_field=self._reasoning_field())
        if self.client_fmt == "gemini":
            return f_gemini.StreamWriter(model=model)
        return f_anthropic.StreamWriter(model=model)

    async def _stream(self, resp: Any, receive: Receive, send: Send, req: CanonicalRequest, extra: list) -> None:
        ctx, state = self.ctx, self._state
        parser = self.wire_mod.StreamParser()
        parser.limit_events(state.settings.server.max_stream_event_bytes)
        writer = self._writer(req)
        model = ctx.deployment.model  # type: ignore[union-attr]
        tally = OutputTally(lambda text: state.tokens.count_text(model, text)[0])
        # a Responses writer keeps the output for response.completed: that is what it may hold
        hold_limit = state.settings.server.max_response_bytes if self.client_fmt == "responses" else None
        mine = {k for k, _ in extra}
        hdrs = [h for h in relay_headers(resp.raw_headers) if h[0].lower() not in mine and h[0].lower() != b"content-type"]
        hdrs += [*extra, (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                 (b"x-accel-buffering", b"no"), ctx.overhead_header()]
        start = {"type": "http.response.start", "status": 200, "headers": hdrs}
        lim = ctx.limits
        attempt = ctx.attempts[-1]
        # while another attempt may follow, the start and the events before the first token wait
        held: list[bytes] | None = [] if ctx.failover and lim is not None else None
        held_size = 0
        if held is None:
            await start_stream(ctx, send, start)
        watch = DisconnectWatch(receive).start()
        finished = False
        failed = False  # an error event was sent: the stream is over, a hang-up after it is no cancel

        unwrap = self.json_unwrapper
        filters = self.filters

        def emit(deltas: list, closing: bool = False) -> bytes:
            nonlocal failed
            for d in deltas:  # what the provider produced, before any filter: what it bills
                _tally_delta(tally, d)
            if hold_limit is not None and tally.size > hold_limit:
                raise ProxyError("upstream_too_large", "The answer outgrew what Tollway holds for a Responses stream "
                                                       f"({hold_limit} characters, [server] max_response_bytes).")
            if unwrap is not None:
                deltas = unwrap.deltas(deltas)
            if filters is not None:
                deltas = filters.feed(deltas)
                if closing:
                    deltas = [*deltas, *filters.close()]
            out = []
            for d in deltas:
                if ctx.ttft_ms is None and isinstance(d, _FIRST_TOKEN):
                    ctx.ttft_ms = ctx.elapsed_ms()
                    attempt.first_token_at = time.perf_counter()
                    if lim is not None and lim.first_token_s is not None:
                        upstream.total_deadline(resp, lim)
                if held is not None and ctx.ttft_ms is None and isinstance(d, StreamError):
                    raise stream_failure(None, "provider:" + d.type, f"({d.message[:200]})")
                if isinstance(d, UsageDelta):
                    ctx.usage = d.usage
                elif isinstance(d, MessageStart):
                    ctx.model_served = d.model or ctx.model_served
                    if d.usage is not None:
                        ctx.usage = d.usage
                elif isinstance(d, StreamError):
                    ctx.error_type = ctx.error_type or "provider:" + d.type
                    failed = True
                out.append(writer.write(d))
            return b"".join(out)

        error: ProxyError | None = None
        data = b""
        trace = ctx.trace
        try:
            async for chunk in resp.iter_chunks():
                data = emit(parser.feed_bytes(chunk))
                if trace is not None:
                    trace.stream_block(data)
                if held is not None:
                    held.append(data)
                    held_size += len(data)
                    if ctx.ttft_ms is None and not lim.hold_over(held_size, attempt.started):  # type: ignore[union-attr]
                        continue
                    data, held = b"".join(held), None
                    await start_stream(ctx, send, start)
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            finished = True
            data = emit(parser.close(), closing=True) + writer.close()
            if held is not None:
                data, held = b"".join(held) + data, None
                await start_stream(ctx, send, start)
        except asyncio.CancelledError:
            if watch.absorb():
                if not (parser.finished or failed):  # a hang-up after the final or an error event is no cancel
                    ctx.client_went_away()
            elif ctx.cut_by_server():
                error = shutdown_error()
            else:
                raise
            data = b""
        except ProxyError as e:
            if held is not None:
                watch.stop()
                raise stream_failure(e, None) from None
            error = e
            ctx.incomplete = True
            ctx.error_type = e.error_type
            data = b""
        except ContentBlocked as e:
            # the answer stops here: an in-band error, without passing the filters again
            ctx.incomplete = True
            ctx.error_type = e.error_type
            data = writer.write(StreamError("permission_error", e.message)) + writer.close()
        finally:
            watch.stop()
        if held is not None and not watch.fired:  # cut (or blocked) while holding back
            await start_stream(ctx, send, start)
            data = b"".join(held) + data
        if error is not None and not watch.fired:  # rendered with the watch stopped: a hang-up cannot cut it
            etype = "timeout_error" if error.kind == "upstream_timeout" else "api_error"
            data += writer.write(StreamError(etype, error.message)) + writer.close()
        complete = (finished and not ctx.incomplete and ctx.usage is not None and ctx.usage.known
                    and ctx.usage.note is None)  # a refused count is counted locally from the tally
        await meter(state, ctx, None if complete else tally)
        if self.client_fmt == "responses" and finished and getattr(writer, "response", None):
            await self._store_response(writer.response, writer.stored_output())
        if not watch.fired:
            await send({"type": "http.response.body", "body": data, "more_body": False})

    # -- Responses state --------------------------------------------------------------------------
    async def _store_response(self, response: dict, output: list[dict] | None = None) -> None:
        if self.client_fmt != "responses" or not response:
            return
        body = self.ctx.json or {}
        if body.get("store") is False:
            return
        call, stage = self.ctx.guard, self._state.guard_stage
        if call is not None and call.scrub_kind is not None and stage is not None:
            # the policy forwarded what the scan found: the stored conversation loses it all the same
            await stage.scrub_request(self.ctx, call, call.scrub_kind)
            body = self.ctx.json or {}
        await self._state.responses.put(
            response["id"], response, f_responses.input_items(body),
            output if output is not None else response.get("output") or [], previous=self._previous,
            provider=self.ctx.deployment.provider.id,  # type: ignore[union-attr]
            project=self.ctx.project, key_id=self.ctx.key_id)


class _Rendered(Exception):
    """An error already rendered in the client's format (translation errors, strict mode)."""

    def __init__(self, status: int, body: bytes, error_type: str) -> None:
        super().__init__(error_type)
        self.status = status
        self.body = body
        self.error_type = error_type


async def _send_whole(ctx: RequestContext, send: Send, status: int, hdrs: list, body: bytes) -> None:
    ctx.response_started = True
    await send_bytes(send, status, body, [*hdrs, ctx.overhead_header()])


def _canonical_text(resp: CanonicalResponse) -> str:
    parts: list[str] = []
    for p in resp.content:
        if p.kind == "text":
            parts.append(p.text)
        elif p.kind == "tool_call":
            parts.append(p.name + p.arguments_json)
        elif p.kind == "thinking" and not p.redacted:
            parts.append(p.text)
    return "".join(parts)


def _tally_delta(tally: OutputTally, d: Any) -> None:
    """The output text a canonical delta carries, for the local count when no usage comes."""
    if isinstance(d, TextDelta):
        tally.add_text(d.text)
    elif isinstance(d, ToolCallArgsDelta):
        tally.add_text(d.fragment)
    elif isinstance(d, ToolCallStart):
        tally.add_text(d.name)
    elif isinstance(d, ThinkingDelta) and not d.redacted:
        tally.add_text(d.text)


async def forward_translated(state: "AppState", ctx: RequestContext, receive: Receive, send: Send) -> None:
    if ctx.endpoint in _AUX:
        from tollway.pipeline import translate_aux

        return await translate_aux.forward(state, ctx, receive, send)
    if ctx.endpoint in _GEMINI_AUX:
        from tollway.pipeline import translate_gemini

        return await translate_gemini.forward(state, ctx, receive, send)
    conversation = ctx.conversation  # loaded once, whatever the attempts
    if conversation is None and CLIENT_FORMAT.get(Endpoint(ctx.endpoint)) == "responses":
        conversation = ctx.conversation = await load_conversation(state, ctx)
        ctx.json = conversation.body
    call = Translated(state, ctx, conversation)
    try:
        await call.forward(receive, send)
    except _Rendered as r:
        ctx.status, ctx.error_type = r.status, r.error_type
        await _send_whole(ctx, send, r.status, [(b"content-type", b"application/json"), *ctx.response_headers],
                          r.body)
