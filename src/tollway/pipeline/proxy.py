"""The call itself: send to the provider, relay the answer, note usage on the way.

Same-format calls are the fast path: request bytes go upstream with only the edits the
proxy must make, response bytes come back as they are (a stream event by event), and usage
is read from those bytes. Provider errors are relayed unchanged.

Limits (`[server]`): a whole answer over `max_response_bytes` (inflated) is a 502 in the
client's format; a stream event over `max_stream_event_bytes` ends the stream with an error
event. A request cut by a shutdown is answered (503, or an error event mid-stream) and
recorded as cancelled with the tokens seen.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import orjson

from tollway.api.asgi import DisconnectWatch, Receive, Send, relay_headers, send_bytes, with_own_headers
from tollway.counting import OutputTally
from tollway.errors import ProxyError, render, shutdown_error
from tollway.formats.errors import openai_error_body
from tollway.formats.errors import stream_error_event as format_stream_error
from tollway.guard import legacy as legacy_guard
from tollway.pipeline import upstream
from tollway.pipeline.accounting import meter
from tollway.pipeline.attempt_failures import Failed, fails_over, retry_after, stream_failure
from tollway.pipeline.attempts import AttemptLoop, start_stream
from tollway.pipeline.client_headers import with_client_headers
from tollway.pipeline.content import ContentBlocked
from tollway.pipeline.context import RequestContext
from tollway.pipeline.responses_history import check_upstream_previous, keeps_owners
from tollway.pipeline.translate import can_force_canonical, forward_translated, needs_translation
from tollway.policy.credentials import with_key_credentials
from tollway.providers.base import Endpoint, StreamRelay
from tollway.providers.credentials import scrub
from tollway.sse import EventTooLarge, encode_event

log = logging.getLogger("tollway")

if TYPE_CHECKING:
    from tollway.state import AppState

_EVENT_STREAM = b"text/event-stream"


def _is_event_stream(raw_headers) -> bool:
    for k, v in raw_headers:
        if k.lower() == b"content-type":
            return v.startswith(_EVENT_STREAM)
    return False


def _provider_error_type(body: bytes) -> str:
    """`error.type` from an OpenAI- or Anthropic-shaped error body, for the ledger."""
    try:
        obj = orjson.loads(body)
        err = obj.get("error") if isinstance(obj, dict) else None
        if isinstance(err, dict) and isinstance(err.get("type"), str):
            return "provider:" + err["type"][:60]
    except orjson.JSONDecodeError:
        pass
    return "provider_error"


def _provider_message(body: bytes) -> str:
    """`error.message` of a provider error body (scrubbed already), short, for the attempt summary."""
    try:
        obj = orjson.loads(body)
        err = obj.get("error") if isinstance(obj, dict) else None
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return "(" + err["message"][:200] + ")"
    except orjson.JSONDecodeError:
        pass
    return ""


# The caller's own provider credentials, forwarded untouched on /proxy/<kind>/ routes.
BYOK_HEADERS = (b"authorization", b"x-api-key", b"openai-organization", b"openai-project")


def with_caller_credentials(headers: dict[str, str], client: dict[bytes, bytes]) -> dict[str, str]:
    out = dict(headers)
    for name in BYOK_HEADERS:
        v = client.get(name)
        if v is not None:
            out[name.decode()] = v.decode("latin-1")
    return out


def stream_error_event(endpoint: Endpoint, fmt: str, err: ProxyError) -> bytes:
    """An in-stream error in the client's format, so its SDK raises instead of hanging."""
    if endpoint == Endpoint.RESPONSES:
        etype = "timeout_error" if err.kind == "upstream_timeout" else "api_error"
        return format_stream_error("responses", etype, err.message)
    _, body = render(err, fmt if fmt in ("anthropic", "gemini") else "openai")  # type: ignore[arg-type]
    if fmt == "anthropic":
        return b"event: error\ndata: " + body + b"\n\n"
    return b"data: " + body + b"\n\n"


class Forwarder:
    """Executes a routed call: `forward()` runs the attempt loop (`pipeline.attempts`) over the
    plan; `attempt()` is one provider call on the same-format fast path (or translated)."""

    def __init__(self, state: "AppState") -> None:
        self._state = state
        self.loop = AttemptLoop(state)

    def _headers(self, ctx: RequestContext, raw) -> list[tuple[bytes, bytes]]:
        hdrs = with_own_headers(relay_headers(raw), ctx.response_headers)
        hdrs.append(ctx.overhead_header())
        return hdrs

    async def forward(self, ctx: RequestContext, receive: Receive, send: Send) -> None:
        await self.loop.run(ctx, receive, send)

    async def attempt(self, ctx: RequestContext, receive: Receive, send: Send) -> None:
        """One provider call: answers the client, or raises `attempts.Failed` having sent nothing."""
        dep = ctx.deployment
        assert dep is not None and ctx.json is not None
        endpoint = Endpoint(ctx.endpoint)
        if needs_translation(endpoint, dep.provider) or (ctx.canonical and can_force_canonical(endpoint, dep.provider)):
            return await forward_translated(self._state, ctx, receive, send)
        owners = endpoint is Endpoint.RESPONSES and keeps_owners(self._state, ctx)
        if owners:
            await check_upstream_previous(self._state, ctx)
        call = dep.provider.prepare(endpoint, ctx.json, ctx.body, dep.model, ctx.stream, ctx.headers)
        call.request.headers = with_client_headers(call.request.headers, ctx.headers)
        if ctx.byok:
            call.request.headers = with_caller_credentials(call.request.headers, ctx.headers)
        elif ctx.key is not None and ctx.key.credentials:
            call.request.headers = with_key_credentials(ctx.key, dep.provider, call.request.headers)
        if ctx.credential is not None:
            call.request.headers = self.loop.with_profile(ctx, dep, call.request.headers)
        limit = self._state.settings.server.max_response_bytes
        resp = await upstream.send(ctx, dep.transport, call.request, dep.provider.id, dep.provider.kind, dep.model)
        try:
            ctx.status = resp.status
            if resp.status >= 400:
                body = scrub(await upstream.read(ctx, resp, limit), dep.provider)
                ctx.error_type = _provider_error_type(body)
                hdrs = self._headers(ctx, resp.raw_headers)
                if fails_over(resp.status):
                    raise Failed(resp.status, ctx.error_type, _provider_message(body),
                                 retry_after=retry_after(resp.raw_headers), reply=(resp.status, hdrs, body))
                ctx.response_started = True
                await send_bytes(send, resp.status, body, hdrs)
                return
            if ctx.stream and _is_event_stream(resp.raw_headers):
                await self._relay_stream(ctx, endpoint, call.injected_usage_option, resp, receive, send, owners)
                return
            body = await upstream.read(ctx, resp, limit)
            parsed = None
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                ctx.error_type = "invalid_provider_body"
            text = None
            check = ctx.guard.output if ctx.guard is not None and endpoint is Endpoint.COMPLETIONS else None
            if check is not None and isinstance(parsed, dict):
                try:
                    if legacy_guard.check_whole(check, parsed):
                        body = orjson.dumps(parsed)
                except ContentBlocked as e:
                    return await self._blocked_whole(ctx, send, e)
            if isinstance(parsed, dict):
                if ctx.trace is not None:
                    ctx.trace.response_body(parsed)
                ctx.usage = dep.provider.usage_from_response(endpoint, parsed)
                served = parsed.get("model")
                if isinstance(served, str) and served:
                    ctx.model_served = dep.provider.served_model(served)
                if ctx.usage is None or not ctx.usage.known or ctx.usage.note is not None:
                    text = dep.provider.output_text(endpoint, parsed)
                if owners and parsed.get("store") is not False:
                    await self._claim(ctx, parsed.get("id"))
            parsed = None
            await meter(self._state, ctx, text)
            if ctx.byte_tap is not None:
                ctx.byte_tap.whole_bytes(body)
            hdrs = self._headers(ctx, resp.raw_headers)
            if ctx.cost is not None:
                hdrs.append((b"x-tollway-cost-usd", format(ctx.cost, "f").encode()))
            ctx.response_started = True
            await send_bytes(send, resp.status, body, hdrs)
        finally:
            resp.release()
            upstream.finish(ctx)

    async def _claim(self, ctx: RequestContext, response_id: object) -> None:
        """Note whose the provider's stored response is, before the client learns its id. A store
        that fails here costs the owner later reads of it (they are refused, never opened to
        all), not this answer."""
        if not isinstance(response_id, str) or not response_id:
            return
        try:
            await self._state.responses.claim_upstream(response_id, ctx.key_id)
        except Exception:
            log.warning("could not note the owner of response %s (trace %s): reads of it through Tollway "
                        "will be refused", response_id[:80], ctx.trace_id, exc_info=True)

    async def _blocked_whole(self, ctx: RequestContext, send: Send, e: ContentBlocked) -> None:
        """The output check refused a whole answer (legacy completions): 403, OpenAI's shape."""
        ctx.error_type = e.error_type
        ctx.status = 403
        ctx.response_started = True
        body = orjson.dumps(openai_error_body("permission_error", e.message))
        await send_bytes(send, 403, body, [*ctx.response_headers, ctx.overhead_header(),
                                           (b"content-type", b"application/json")])

    async def _relay_stream(self, ctx: RequestContext, endpoint: Endpoint, injected: bool, resp,
                            receive: Receive, send: Send, claim: bool = False) -> None:
        """Relay a same-format stream event by event: one linear SSE framing pass, a watcher
        that decodes only the events that matter, output counted in O(1) memory.

        While another attempt may follow (`ctx.failover`), the response start and the events
        before the first real token are held back (at most `holdback_bytes`): a failure there
        raises `Failed` and the client never saw this attempt."""
        state = self._state
        dep = ctx.deployment
        assert dep is not None
        model = dep.model
        tally = OutputTally(lambda text: state.tokens.count_text(model, text)[0])
        watcher = dep.provider.stream_watcher(endpoint, injected, tally)
        relay = StreamRelay(watcher, state.settings.server.max_stream_event_bytes)
        hdrs = self._headers(ctx, resp.raw_headers)
        hdrs.append((b"cache-control", b"no-cache"))
        hdrs.append((b"x-accel-buffering", b"no"))
        start = {"type": "http.response.start", "status": resp.status, "headers": hdrs}
        lim = ctx.limits
        attempt = ctx.attempts[-1]
        held: list[bytes] | None = None
        held_size = 0
        if ctx.failover and lim is not None:
            held = []
        else:
            await start_stream(ctx, send, start)
        watch = DisconnectWatch(receive).start()
        t0 = ctx.t0
        error: ProxyError | None = None
        trace = ctx.trace
        tap = ctx.byte_tap
        check = ctx.guard.output if ctx.guard is not None and endpoint is Endpoint.COMPLETIONS else None
        legacy = legacy_guard.CompletionStreamCheck(check) if check is not None else None
        blocked: ContentBlocked | None = None
        try:
            async for chunk in resp.iter_chunks():
                out = relay.feed(chunk)
                if claim and getattr(watcher, "response_id", None) is not None:  # before the client sees the id
                    claim = False
                    if getattr(watcher, "stored", True):
                        await self._claim(ctx, watcher.response_id)  # type: ignore[attr-defined]
                if legacy is not None:
                    out = legacy.rewrite(out)
                if ctx.ttft_ms is None and watcher.first_token:
                    ctx.ttft_ms = (time.perf_counter() - t0) * 1000.0
                    attempt.first_token_at = time.perf_counter()
                    if lim is not None and lim.first_token_s is not None:
                        upstream.total_deadline(resp, lim)
                if trace is not None:
                    trace.stream_block(out)
                if held is not None:
                    if watcher.error_type and not watcher.first_token:
                        raise stream_failure(None, watcher.error_type)
                    held.append(out)
                    held_size += len(out)
                    if not (watcher.first_token or lim.hold_over(held_size, attempt.started)):  # type: ignore[union-attr]
                        continue
                    out, held = b"".join(held), None
                    await start_stream(ctx, send, start)
                if out:
                    if tap is not None:
                        tap.chunk(out)
                    await send({"type": "http.response.body", "body": out, "more_body": True})
            out = relay.close()
            if legacy is not None:
                out = legacy.rewrite(out) + legacy.close()
            if held is not None:
                if watcher.error_type and not watcher.first_token:
                    raise stream_failure(None, watcher.error_type)
                out, held = b"".join(held) + out, None
                await start_stream(ctx, send, start)
            if out:
                if tap is not None:
                    tap.chunk(out)
                await send({"type": "http.response.body", "body": out, "more_body": True})
        except asyncio.CancelledError:
            if watch.absorb():
                if not watcher.done:  # SDKs hang up right after the final event: that is no cancel
                    ctx.client_went_away()
            elif ctx.cut_by_server():
                error = shutdown_error()
            else:
                raise
        except EventTooLarge as e:
            error = ProxyError("upstream_too_large", f"The provider's stream broke Tollway's limit: {e} "
                                                     "([server] max_stream_event_bytes).")
            ctx.incomplete = True
            ctx.error_type = error.error_type
        except ProxyError as e:
            if held is not None:
                watch.stop()
                raise stream_failure(e, None) from None
            error = e
            ctx.incomplete = True
            ctx.error_type = e.error_type
        except ContentBlocked as e:  # the rest is withheld: an in-band error and no [DONE]
            blocked = e
            ctx.incomplete = True
        finally:
            watch.stop()
        if held is not None and not watch.fired:  # cut (or over a limit) while holding back
            await start_stream(ctx, send, start)
            if held:
                await send({"type": "http.response.body", "body": b"".join(held), "more_body": True})
        if watcher.error_type and not ctx.error_type:
            ctx.error_type = watcher.error_type
        if blocked is not None:
            ctx.error_type = blocked.error_type
        ctx.usage = watcher.usage
        if watcher.model_served:
            ctx.model_served = watcher.model_served
        # a refused count (usage.note) is counted locally from the tally, like a missing one
        complete_usage = ctx.usage is not None and ctx.usage.known and ctx.usage.note is None and not ctx.incomplete
        await meter(state, ctx, None if complete_usage else tally)
        if watch.fired:
            return
        if blocked is not None:
            await send({"type": "http.response.body", "more_body": True,
                        "body": encode_event(orjson.dumps(openai_error_body("permission_error", blocked.message)))})
        if error is not None:  # sent with the watch stopped: a hang-up now cannot cancel the recording
            await send({"type": "http.response.body", "body": stream_error_event(endpoint, ctx.wire_format, error),
                        "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
