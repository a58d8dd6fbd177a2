"""Pass-through: `/v1/*` paths Tollway has no route of its own for, and `/proxy/<kind>/v1/*`.

Method, query, headers and body go upstream (multipart included); the answer comes back as it
is, unbuffered: only answers Tollway must read are held, at most `[server] max_response_bytes`
(errors, metered JSON, batch objects; see `_relay`), so a download of any size costs one
chunk. On `/v1/*` Tollway's provider credentials replace the caller's; on `/proxy/<kind>/v1/*`
the caller's own key goes through untouched. What may go upstream is decided in
`tollway.passthrough`: the path (normalised, never out of `/v1/`), the headers, and whether the
answer is metered (by path, never by what a body happens to contain). Every call is recorded.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import orjson

from tollway.api.asgi import DisconnectWatch, Receive, Scope, Send, read_body, relay_headers, with_own_headers
from tollway.api.unified import send_error
from tollway.errors import ProxyError
from tollway.pipeline import upstream
from tollway.pipeline.accounting import meter
from tollway.pipeline.context import RequestContext
from tollway.pipeline.stage import run_stages
from tollway.policy.checks import check_passthrough, check_passthrough_price, may_spend
from tollway.policy.credentials import with_key_credentials
from tollway.passthrough.headers import upstream_headers
from tollway.passthrough.links import own_results_url
from tollway.passthrough.metering import Metered, StreamUsage, metered, multipart_field, unmetered_note, usage_from_body
from tollway.passthrough.paths import upstream_query, upstream_subpath
from tollway.providers.base import UpstreamRequest
from tollway.providers.credentials import scrub
from tollway.routing.catalog import Deployment

if TYPE_CHECKING:
    from tollway.state import AppState

log = logging.getLogger("tollway")

# methods passed through on /v1/{path} and /proxy/<kind>/v1/{path} (TRACE, CONNECT and others: 404)
PASSTHROUGH_METHODS: tuple[str, ...] = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

def raw_path(scope: Scope) -> bytes:
    raw = scope.get("raw_path")
    if raw:
        return raw.split(b"?", 1)[0]
    return scope["path"].encode("utf-8")


def content_type(raw_headers) -> bytes:
    for k, v in raw_headers:
        if k.lower() == b"content-type":
            return v.strip().lower()
    return b""


def is_json(ctype: bytes) -> bool:
    media = ctype.split(b";", 1)[0].strip()
    return media == b"application/json" or media.endswith(b"+json")


def upstream_length(raw_headers) -> bytes | None:
    """The provider's Content-Length when the relayed body has exactly that length (not inflated)."""
    length = None
    for k, v in raw_headers:
        low = k.lower()
        if low == b"content-encoding" and v.strip().lower() not in (b"", b"identity"):
            return None
        if low == b"content-length" and v.strip().isdigit():
            length = v.strip()
    return length


def public_base(scope: Scope) -> str:
    """This Tollway's own base URL as the client reached it (scheme and Host)."""
    host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
    if not host:
        server = scope.get("server") or ("127.0.0.1", 8930)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}"


class PassthroughRoute:
    """`kind` is the provider kind; `byok` says whose credentials go upstream."""

    def __init__(self, state: "AppState", kind: str, byok: bool) -> None:
        self._state = state
        self.kind = kind
        self.byok = byok
        self.route = f"proxy.{kind}.passthrough" if byok else f"passthrough.{kind}"
        self.fmt = "anthropic" if kind == "anthropic" else "openai"

    async def __call__(self, scope: Scope, receive: Receive, send: Send, prefix: str) -> None:
        """`prefix`: the part of the path before the provider's own (`/v1`, `/proxy/openai/v1`)."""
        ctx = RequestContext(self.route, self.fmt, "passthrough", scope["method"], scope["path"],  # type: ignore[arg-type]
                             dict(scope["headers"]), receive, send)
        ctx.byok = self.byok
        state = self._state

        async def handle(ctx: RequestContext) -> None:
            if self.byok:
                provider, transport = state.byok_provider(self.kind)
            else:
                found = state.catalog.first_of_kind(self.kind)
                if found is None:
                    raise ProxyError("not_found", f"No {self.kind} provider is configured, so {ctx.path} "
                                                  "cannot be passed through.")
                provider, transport = found
            await self.forward(ctx, scope, receive, send, prefix, provider, transport)

        async def on_error(ctx: RequestContext, err: ProxyError) -> None:
            await send_error(ctx, send, err)

        await run_stages(ctx, state.stages, handle, on_error)

    async def forward(self, ctx: RequestContext, scope: Scope, receive: Receive, send: Send, prefix: str,
                      provider, transport) -> None:
        state = self._state
        ctx.provider = provider
        subpath = upstream_subpath(raw_path(scope), prefix)
        query = upstream_query(scope.get("query_string", b""))
        rule = metered(provider.wire_format, ctx.method, subpath)
        ctx.body = await read_body(receive, ctx.headers, state.settings.server.max_body_bytes)
        self._note_request(ctx, rule, provider, transport)
        key = ctx.key
        if key is not None and key.policy is not None:
            check_passthrough(ctx, key, key.policy, subpath)  # the model allow-list, body and max_tokens caps
        if ctx.admission is not None and ctx.admission.budgets and may_spend(ctx.method, subpath):
            priced = ctx.model is not None and state.prices.price_of(provider.kind, ctx.model) is not None
            check_passthrough_price(ctx, rule is not None, priced, state.settings.budgets.unpriced)
        if ctx.stream and state.metrics is not None:
            state.metrics.stream_opened(ctx)
        if state.guard_stage is not None and ctx.json is not None:
            await state.guard_stage.inspect_passthrough(ctx)  # may redact ctx.body, or refuse (403)
        headers = upstream_headers(scope["headers"], provider, self.byok)
        if not self.byok and ctx.key is not None and ctx.key.credentials:
            headers = with_key_credentials(ctx.key, provider, headers)
        url = provider.passthrough_url(subpath, query.encode("ascii"))
        resp = await upstream.send(ctx, transport, UpstreamRequest(ctx.method, url, headers, ctx.body or None),
                                   provider.id, provider.kind, ctx.model or "")
        try:
            await self._relay(ctx, rule, subpath, resp, receive, send, public_base(scope) + prefix)
        finally:
            resp.release()
            upstream.finish(ctx)

    @staticmethod
    def _note_request(ctx: RequestContext, rule: Metered | None, provider, transport) -> None:
        """Model and stream flag of the request, for the record (and the price, when metered)."""
        ctype = ctx.headers.get(b"content-type", b"")
        model: str | None = None
        if ctype.startswith(b"application/json") and ctx.body:
            try:
                obj = orjson.loads(ctx.body)
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                ctx.json = obj
                if isinstance(obj.get("model"), str):
                    model = obj["model"]
                ctx.stream = obj.get("stream") is True
        elif rule is not None and ctype.startswith(b"multipart/form-data") and ctx.body:
            model = multipart_field(ctx.body, ctype, "model")
            ctx.stream = multipart_field(ctx.body, ctype, "stream") == "true"
        if model:
            ctx.model = model
            ctx.deployment = Deployment(provider, transport, model)
        if rule is not None and rule.endpoint is not None:
            ctx.endpoint = rule.endpoint

    @staticmethod
    def _unmetered(ctx: RequestContext, subpath: str) -> None:
        ctx.metered = True
        ctx.cost_note = "nothing to price" if ctx.status >= 400 else unmetered_note(ctx.method, subpath)

    async def _relay(self, ctx: RequestContext, rule: Metered | None, subpath: str, resp, receive: Receive,
                     send: Send, own_base: str) -> None:
        """`own_base`: this route's base URL as the client sees it (`http://host/v1`).

        An event stream is relayed event by event; an answer Tollway must read (an error, to
        scrub echoed credentials; a metered endpoint's JSON, for its usage; a batch object, for
        its `results_url`) is read whole, at most `[server] max_response_bytes` (beyond: a 502 in
        the route's format); anything else (a file download, audio) is relayed as it arrives,
        never held, whatever its size."""
        ctx.status = resp.status
        hdrs = with_own_headers(relay_headers(resp.raw_headers), ctx.response_headers)
        ctype = content_type(resp.raw_headers)
        if ctype.startswith(b"text/event-stream"):
            return await self._relay_events(ctx, rule, subpath, resp, hdrs, receive, send)
        wire = ctx.provider.wire_format  # type: ignore[union-attr]
        batch_object = (rule is None and wire == "anthropic" and subpath.startswith("/messages/batches")
                        and not subpath.rstrip("/").endswith("/results"))
        if resp.status < 400 and not ((rule is not None or batch_object) and is_json(ctype)):
            return await self._relay_bytes(ctx, rule, subpath, resp, hdrs, receive, send)
        body = await upstream.read(ctx, resp, self._state.settings.server.max_response_bytes)
        if resp.status >= 400:
            ctx.error_type = "provider_error"
            body = scrub(body, ctx.provider)
            self._unmetered(ctx, subpath)
        elif rule is None:
            self._unmetered(ctx, subpath)
            body = own_results_url(body, ctx.provider.settings.base_url, own_base)  # type: ignore[union-attr]
        else:
            await self._meter_body(ctx, rule, body)
            if ctx.cost is not None:
                hdrs.append((b"x-tollway-cost-usd", format(ctx.cost, "f").encode()))
        hdrs.append((b"content-length", str(len(body)).encode()))
        hdrs.append(ctx.overhead_header())
        ctx.response_started = True
        await send({"type": "http.response.start", "status": resp.status, "headers": hdrs})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _relay_bytes(self, ctx: RequestContext, rule: Metered | None, subpath: str, resp,
                           hdrs: list[tuple[bytes, bytes]], receive: Receive, send: Send) -> None:
        """A body relayed chunk by chunk as it arrives (memory: one chunk). Its length is passed on
        when the provider gave one (and Tollway does not inflate the body), so a download that
        breaks off ends short of it: the client sees an incomplete body, never a complete-looking one."""
        if rule is None:
            self._unmetered(ctx, subpath)
        length = upstream_length(resp.raw_headers)
        if length is not None:
            hdrs.append((b"content-length", length))
        hdrs.append(ctx.overhead_header())
        ctx.response_started = True
        await send({"type": "http.response.start", "status": resp.status, "headers": hdrs})
        watch = DisconnectWatch(receive).start()
        broke = False
        try:
            async for chunk in resp.iter_chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except asyncio.CancelledError:
            if not watch.absorb():
                raise
            ctx.client_went_away()
            return
        except ProxyError as e:
            ctx.incomplete, ctx.error_type, broke = True, e.error_type, True
        finally:
            watch.stop()
        if rule is not None:  # a metered endpoint answering with bytes (speech audio): no usage in them
            await meter(self._state, ctx)
        if broke:
            # Not completed on purpose: the server closes the connection, so the client sees the
            # body end early (a short download) instead of a clean end.
            log.warning("pass-through trace %s: the provider's answer broke off (%s)", ctx.trace_id, ctx.error_type)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _relay_events(self, ctx: RequestContext, rule: Metered | None, subpath: str, resp,
                            hdrs: list[tuple[bytes, bytes]], receive: Receive, send: Send) -> None:
        watcher = StreamUsage(ctx.provider.wire_format) if rule else None  # type: ignore[union-attr]
        if watcher is None:
            self._unmetered(ctx, subpath)
        hdrs.append(ctx.overhead_header())
        ctx.response_started = True
        await send({"type": "http.response.start", "status": resp.status, "headers": hdrs})
        watch = DisconnectWatch(receive).start()
        try:
            async for chunk in resp.iter_chunks():
                if watcher is not None:
                    watcher.feed(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except asyncio.CancelledError:
            if not watch.absorb():
                raise
            ctx.client_went_away()
            return
        except ProxyError as e:
            ctx.incomplete = True
            ctx.error_type = e.error_type
        finally:
            watch.stop()
            if watcher is not None:
                watcher.close()
                ctx.usage = watcher.usage
                if watcher.error and not ctx.error_type:
                    ctx.error_type = "stream_error"
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _meter_body(self, ctx: RequestContext, rule: Metered, body: bytes) -> None:
        obj = None
        if body[:1] in (b"{", b" ", b"\n"):
            try:
                obj = orjson.loads(body)
            except orjson.JSONDecodeError:
                obj = None
        text: str | None = None
        if isinstance(obj, dict):
            ctx.usage = usage_from_body(ctx.provider.wire_format, obj)  # type: ignore[union-attr]
            if isinstance(obj.get("model"), str) and obj["model"]:
                ctx.model_served = obj["model"]
            if rule.text_field is not None and (ctx.usage is None or not ctx.usage.known):
                value = obj.get(rule.text_field)
                text = value if isinstance(value, str) else None
        await meter(self._state, ctx, text)
