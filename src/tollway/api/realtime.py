"""Realtime: `GET /v1/realtime` (WebSocket) relayed to an OpenAI or Azure OpenAI provider.

    ws://HOST/v1/realtime?model=M          OpenAI's SDKs (also /realtime, /openai/v1/realtime)
    ws://HOST/openai/realtime?api-version=V&deployment=D    AzureOpenAI's

The client's Tollway key comes in `Authorization: Bearer`, Azure's `api-key`, `X-Tollway-Key`, or
the `openai-insecure-api-key.<key>` subprotocol OpenAI's browser SDK uses (never forwarded). The
model (or alias) must route to an `openai` or `azure_openai` provider; Tollway opens the upstream
socket with that provider's own credentials (`websockets`, honouring HTTPS_PROXY) and only then
accepts the client, so a refusal reaches the client as a Realtime `error` event and a close
(1008 for the client's fault, 1011 for the upstream's), never a 500. Frames are relayed as they
are, both ways.

Refused before the upgrade, as a plain HTTP answer to the handshake (JSON, OpenAI's error
shape): a missing or wrong key (401, 403 for a key without the user role), a bad project slug
(400), and a session over `[server] max_realtime_sessions` (503). So a flood of keyless
upgrades never gets a WebSocket, and the sessions open at once (each holding a client and an
upstream connection, outside `max_connections`) are bounded.

Bounded: a provider message over `[server] max_stream_event_bytes` ends the session (1011), at
most `MAX_OPEN_RESPONSES` responses are timed at once, and finished record writes are let go.

Metering: one usage record per response, from the `usage` of each `response.done` event (so a
long session is priced as it goes and every response has its own trace id), timed from its
`response.created`. A response still open when the session ends is recorded as cancelled; a
session that cannot open is recorded once, as an error. Audio tokens have no price in the price
data: a response with audio tokens records its tokens and `cost_usd: null` with a note.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from tollway.api.asgi import Receive, Scope, Send
from tollway.errors import ProxyError, render
from tollway.ids import uuid7
from tollway.pipeline.accounting import AccountingStage, meter
from tollway.pipeline.attribution import AttributionStage
from tollway.pipeline.auth import AuthStage
from tollway.pipeline.client_headers import TOLLWAY_AGENT
from tollway.pipeline.context import RequestContext
from tollway.policy.sessions import SessionGate
from tollway.providers.credentials import scrub
from tollway.usage import CountReader, Usage

if TYPE_CHECKING:
    from tollway.routing.catalog import Deployment
    from tollway.state import AppState

log = logging.getLogger("tollway")

PATHS = frozenset({"/v1/realtime", "/realtime", "/openai/realtime", "/openai/v1/realtime"})
KEY_PROTOCOL = "openai-insecure-api-key."
_PRIVATE_PROTOCOLS = (KEY_PROTOCOL, "openai-organization.", "openai-project.")
_FORWARD_HEADERS = (b"openai-beta",)
_KINDS = ("openai", "azure_openai")
_HEAD = 160  # the event type is at the start of every server event: look no further for it
_DELTA = (".delta",)
MAX_OPEN_RESPONSES = 64  # responses of one session tracked between response.created and response.done


def ws_url(http_url: str) -> str:
    if http_url.startswith("https://"):
        return "wss://" + http_url[8:]
    if http_url.startswith("http://"):
        return "ws://" + http_url[7:]
    return http_url


def upstream_target(dep: "Deployment", query: dict[str, list[str]]) -> str:
    """The provider's realtime URL for `dep`, with the client's other query parameters."""
    provider = dep.provider
    rest = {k: v[0] for k, v in query.items() if k not in ("model", "deployment", "api-version", "key")}
    if provider.kind == "azure_openai":
        deployment = provider.deployment(dep.model)  # type: ignore[attr-defined]
        base = provider._base  # type: ignore[attr-defined]  # the resource endpoint
        version = query.get("api-version", [None])[0]
        if version:  # AzureOpenAI's (preview) form
            params = {"api-version": version, "deployment": deployment, **rest}
            return f"{ws_url(base)}/openai/realtime?{urlencode(params)}"
        return f"{ws_url(base)}/openai/v1/realtime?{urlencode({'model': deployment, **rest})}"
    return f"{ws_url(provider.settings.base_url)}/realtime?{urlencode({'model': dep.model, **rest})}"


class RealtimeRoute:
    def __init__(self, state: "AppState") -> None:
        self._state = state
        self._accounting = AccountingStage(state)
        # who is calling; budget or limit stages that hold something until after() are not run for a
        # session that outlives any one request: each response is recorded on its own
        self._identify = (AuthStage(state.keys), AttributionStage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send, path_project: str | None = None) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        headers = dict((k.lower(), v) for k, v in scope["headers"])
        offered: list[str] = list(scope.get("subprotocols") or ())
        for proto in offered:
            if proto.startswith(KEY_PROTOCOL) and b"authorization" not in headers:
                headers[b"authorization"] = b"Bearer " + proto[len(KEY_PROTOCOL):].encode("latin-1")
        azure = "/openai/" in scope["path"]
        ctx = RequestContext("azure.realtime" if azure else "openai.realtime", "openai", "realtime", "GET",
                             scope["path"], headers)
        ctx.stream = True
        ctx.path_project = path_project
        qs = scope.get("query_string", b"")
        query = parse_qs(qs.decode("latin-1")) if qs else {}
        state = self._state
        try:
            for stage in self._identify:  # who is calling, before anything is upgraded or opened
                await stage.before(ctx)
            limit = state.settings.server.max_realtime_sessions
            if state.realtime_sessions >= limit:
                raise ProxyError("overloaded", f"This Tollway has {limit} Realtime sessions open, its limit "
                                               "([server] max_realtime_sessions); retry shortly.")
        except ProxyError as e:
            ctx.status, ctx.error_type, ctx.error = e.status, e.error_type, e
            await deny_handshake(scope, send, e)
            await self._accounting.after(ctx)
            return
        state.realtime_sessions += 1
        try:
            await self._session(ctx, query, offered, receive, send)
        finally:
            state.realtime_sessions -= 1

    async def _session(self, ctx: RequestContext, query: dict[str, list[str]], offered: list[str],
                       receive: Receive, send: Send) -> None:
        try:
            upstream = await self._open(ctx, query, offered)
        except ProxyError as e:
            ctx.status, ctx.error_type, ctx.error = e.status, e.error_type, e
            await self._refuse(send, offered, e)
            await self._accounting.after(ctx)
            return
        try:
            chosen = "realtime" if "realtime" in offered else None
            await send({"type": "websocket.accept", "subprotocol": chosen})
            await Session(self._state, self._accounting, ctx, upstream).run(receive, send)
        except Exception:  # never a 500: the session just ends
            log.exception("realtime session %s failed", ctx.trace_id)
        finally:
            await upstream.close()

    async def _open(self, ctx: RequestContext, query: dict[str, list[str]], offered: list[str]) -> ClientConnection:
        state = self._state
        model = (query.get("model") or query.get("deployment") or [""])[0]
        if not model:
            raise ProxyError("invalid_request", "Name the model: ?model= (or Azure's ?deployment=).", param="model")
        ctx.model = model
        dep = state.catalog.resolve(model)
        key = ctx.key
        allowed = key.policy.models if key is not None and key.policy is not None else None
        if allowed is not None and not allowed.permits(model) and (dep is None or not allowed.permits(dep.model)):
            raise ProxyError("permission", f"Key '{key.id}' may not use model '{model}'. Allowed models: "  # type: ignore[union-attr]
                                           f"{', '.join(allowed.patterns) or 'none'}.", param="model",
                             code="model_not_allowed")
        if dep is None:
            raise ProxyError("model_not_found", f"The model '{model}' is not routable by this Tollway.", param="model")
        if dep.provider.kind not in _KINDS:
            raise ProxyError("invalid_request", f"The model '{model}' is served by provider '{dep.provider.id}' "
                                                f"({dep.provider.kind}), which has no Realtime API.", param="model")
        ctx.deployment = dep
        target = upstream_target(dep, query)
        hdrs = {**dep.provider.auth_headers(), **dep.provider.settings.headers, "user-agent": TOLLWAY_AGENT}
        for name in _FORWARD_HEADERS:
            v = ctx.headers.get(name)
            if v is not None:
                hdrs[name.decode()] = v.decode("latin-1")
        protocols = [p for p in offered if not p.startswith(_PRIVATE_PROTOCOLS)]
        settings = state.settings.server
        try:
            return await connect(target, additional_headers=hdrs, subprotocols=protocols or None,  # type: ignore[arg-type]
                                 open_timeout=settings.connect_timeout_secs, max_size=settings.max_stream_event_bytes, compression=None,
                                 user_agent_header=None)
        except InvalidStatus as e:
            status = e.response.status_code
            # an upstream that echoes the credentials it got must not pass Tollway's key to the client
            body = scrub(e.response.body, dep.provider).decode("utf-8", "replace")[:300] if e.response.body else ""
            kind = "rate_limit" if status == 429 else "upstream_error"  # (an upstream 401 is Tollway's key)
            raise ProxyError(kind, f"Provider '{dep.provider.id}' refused the realtime session "
                                   f"(HTTP {status}){': ' + body if body else ''}") from None
        except (OSError, InvalidHandshake, asyncio.TimeoutError) as e:
            raise ProxyError("upstream_unreachable", f"Provider '{dep.provider.id}' could not be reached for a "
                                                     f"realtime session ({type(e).__name__}).") from None

    @staticmethod
    async def _refuse(send: Send, offered: list[str], err: ProxyError) -> None:
        """Accept, say why in a Realtime `error` event, close: SDKs surface the event; a bare
        handshake refusal would only show as a failed connection."""
        await send({"type": "websocket.accept", "subprotocol": "realtime" if "realtime" in offered else None})
        event = {"type": "error", "event_id": "event_" + uuid7().replace("-", "")[:20],
                 "error": {"type": "invalid_request_error" if err.status < 500 else "server_error",
                           "code": err.kind, "message": err.message, "param": err.param, "event_id": None}}
        await send({"type": "websocket.send", "text": orjson.dumps(event).decode()})
        await send({"type": "websocket.close", "code": 1008 if err.status < 500 else 1011,
                    "reason": err.kind[:100]})


async def deny_handshake(scope: Scope, send: Send, err: ProxyError) -> None:
    """Refuse a WebSocket handshake with a plain HTTP answer (the ASGI `websocket.http.response`
    extension): nothing is upgraded. A server without the extension answers 403 to a close."""
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    status, body = render(err, "openai")
    await send({"type": "websocket.http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "websocket.http.response.body", "body": body})


class Session:
    """One relayed session: two pumps, and a usage record per `response.done`."""

    def __init__(self, state: "AppState", accounting: AccountingStage, ctx: RequestContext,
                 upstream: ClientConnection) -> None:
        self._state = state
        self._accounting = accounting
        self.ctx = ctx
        self._up = upstream
        self._open: dict[str, RequestContext] = {}  # response id -> its record, until response.done
        self._model_served: str | None = None
        self._pending: list[asyncio.Task[None]] = []
        self._gate = SessionGate(state, ctx)
        self._created: str | None = None  # a response just created, to admit (policy.sessions)

    async def run(self, receive: Receive, send: Send) -> None:
        down = asyncio.create_task(self._downstream(send), name=f"realtime-down:{self.ctx.trace_id}")
        try:
            await self._upstream(receive, down)
        finally:
            if not down.done():
                down.cancel()
            try:
                await down
            except (asyncio.CancelledError, Exception):
                pass
            for rctx in self._open.values():  # responses the session ended in the middle of
                rctx.cancelled = rctx.incomplete = True
                rctx.error_type = "session_closed"
                rctx.status = 499
                await self._record(rctx)
            self._open.clear()

    async def _upstream(self, receive: Receive, down: "asyncio.Task[None]") -> None:
        """Client → provider, until either side goes away."""
        recv = asyncio.ensure_future(receive())
        try:
            while True:
                done, _ = await asyncio.wait({recv, down}, return_when=asyncio.FIRST_COMPLETED)
                if down in done:
                    return
                msg = recv.result()
                if msg["type"] == "websocket.disconnect":
                    return
                data = msg.get("text") if msg.get("text") is not None else msg.get("bytes")
                if data is not None:
                    try:
                        await self._up.send(data)
                    except ConnectionClosed:
                        return
                recv = asyncio.ensure_future(receive())
        finally:
            if not recv.done():
                recv.cancel()

    async def _downstream(self, send: Send) -> None:
        """Provider → client; watches the event types that carry usage."""
        code, reason = 1000, ""
        try:
            async for message in self._up:
                if isinstance(message, str):
                    self._watch(message)
                    await send({"type": "websocket.send", "text": message})
                    if self._created is not None:
                        rid, self._created = self._created, None
                        if not await self._admit(rid, send):
                            code, reason = 1008, "key revoked or expired"
                            break
                else:
                    await send({"type": "websocket.send", "bytes": message})
        except ConnectionClosed as e:
            if e.rcvd is not None:
                code, reason = e.rcvd.code, e.rcvd.reason
            elif e.sent is not None and e.sent.code == 1009:  # a provider message over max_stream_event_bytes
                code, reason = 1011, "provider message over Tollway's limit ([server] max_stream_event_bytes)"
                log.warning("realtime session %s: %s", self.ctx.trace_id, reason)
        else:
            if self._up.close_code is not None:
                code, reason = self._up.close_code, self._up.close_reason or ""
        for task in self._pending:
            await task
        try:
            valid = code in (1000, 1001, 1008, 1011) or 3000 <= code <= 4999
            await send({"type": "websocket.close", "code": code if valid else 1011, "reason": reason[:120]})
        except Exception:  # the client is already gone
            pass

    def _watch(self, message: str) -> None:
        h = message[:_HEAD]
        if "response.done" in h or "response.created" in h or "session.created" in h:
            try:
                event = orjson.loads(message)
            except orjson.JSONDecodeError:
                return
            if isinstance(event, dict):
                self._event(event)
        elif self._open and any(d in h for d in _DELTA):
            for rctx in self._open.values():
                if rctx.ttft_ms is None:
                    rctx.ttft_ms = rctx.elapsed_ms()

    def _event(self, event: dict[str, Any]) -> None:
        etype = event.get("type")
        if etype == "session.created":
            model = (event.get("session") or {}).get("model")
            self._model_served = model if isinstance(model, str) and model else None
            return
        resp = event.get("response")
        if not isinstance(resp, dict):
            return
        rid = str(resp.get("id") or "")
        if etype == "response.created":
            self._created = rid
            if len(self._open) < MAX_OPEN_RESPONSES:  # beyond (a provider that never says done): untimed
                self._open[rid] = self._new_context()
        elif etype == "response.done":
            rctx = self._open.pop(rid, None) or self._new_context()
            status = resp.get("status")
            if rctx.error is None:  # (a response Tollway refused keeps its 429)
                rctx.status = 200
            if status == "failed":
                rctx.error_type = "response_failed"
            elif status == "cancelled":
                rctx.cancelled = True
            rctx.usage = realtime_usage(resp.get("usage"))
            self._pending = [t for t in self._pending if not t.done()]  # a long session: only those still writing
            self._pending.append(asyncio.ensure_future(self._record(rctx, audio=has_audio(resp.get("usage")))))

    def _new_context(self) -> RequestContext:
        s = self.ctx
        rctx = RequestContext(s.route, s.wire_format, s.endpoint, s.method, s.path, s.headers)
        rctx.key_id, rctx.project, rctx.source, rctx.customer = s.key_id, s.project, s.source, s.customer
        rctx.key, rctx.team = s.key, s.team
        rctx.model, rctx.deployment, rctx.stream = s.model, s.deployment, True
        rctx.model_served = self._model_served
        return rctx

    async def _admit(self, rid: str, send: Send) -> bool:
        """Limits and budgets for a response the provider just created: refused, it is cancelled
        upstream and the client gets an `error` event. False when the session must end."""
        rctx = self._open.get(rid)
        for task in self._pending:  # the responses before it are settled first: their spend counts
            if not task.done():
                await task
        err = await self._gate.admit(rctx if rctx is not None else self._new_context())
        if err is None:
            return True
        if rctx is not None:
            rctx.status, rctx.error_type, rctx.error = err.status, err.error_type, err
        try:
            await self._up.send(orjson.dumps({"type": "response.cancel", "response_id": rid}).decode())
        except ConnectionClosed:
            pass
        event = {"type": "error", "event_id": "event_" + uuid7().replace("-", "")[:20],
                 "error": {"type": "invalid_request_error" if err.status < 500 else "server_error",
                           "code": err.code or err.kind, "message": err.message, "param": None, "event_id": None}}
        await send({"type": "websocket.send", "text": orjson.dumps(event).decode()})
        return err.kind != "authentication"

    async def _record(self, rctx: RequestContext, audio: bool = False) -> None:
        await meter(self._state, rctx)
        await self._gate.settle(rctx)  # the real cost against the budgets that admitted it
        if audio and rctx.cost is not None:
            rctx.cost, rctx.cost_note = None, "audio tokens have no price in the price data"
        await self._accounting.after(rctx)


def realtime_usage(u: Any) -> Usage | None:
    """A Realtime `response.usage` (input/output tokens, cached tokens in input_token_details),
    each count read through `usage.CountReader` like every other provider's: a negative,
    fractional, boolean, string or absurd count is refused and named in the note, never stored."""
    if not isinstance(u, dict):
        return None
    read = CountReader()
    inp, out = read(u, "input_tokens"), read(u, "output_tokens")
    cached = read.count(u.get("input_token_details"), "cached_tokens")
    if inp is None and out is None and not read.problems:
        return None
    return read.finish(Usage(input_tokens=inp, output_tokens=out, cached_tokens=cached))


def has_audio(u: Any) -> bool:
    if not isinstance(u, dict):
        return False
    return any(isinstance(d, dict) and type(d.get("audio_tokens")) is int and d["audio_tokens"] > 0
               for d in (u.get("input_token_details"), u.get("output_token_details")))
