"""Request records to OTLP span bytes: the GenAI request span and one client span per attempt.

Runs once per request, when it ends (`RequestTrace.end`, after the response was sent), from
its `RequestTrace` (ids, the response's id and finish reasons) and its finished context; the
exporter's task only joins and posts the bytes (see `span_export`). Names and attributes are the GenAI semantic
conventions (see `genai` and README, OpenTelemetry); they are what Tollway's earlier
SDK-based spans carried, attribute for attribute.

Cost (it runs once per request, on the proxy's core): a span's bytes mostly repeat between
requests, so they are cached in groups keyed by what decides them, each group bounded
(`CACHE`, cleared when full): the request's shape (route, model, provider, outcome, request
parameters, finish reason), who it was for (customer, key, project, source), its token
counts, and each attempt's shape. What is new for every request (ids, times, Tollway's
trace id, the response id, cost, overhead) is packed fresh, and a span is one join of
byte strings (framed as a `ScopeSpans.spans` entry: tag 0x12 and the length). An attempt
span without trace state has a fixed length for its shape, so its shape keeps it as a `%`
template (framing included) that the ids, times and flags fill in.
"""

from __future__ import annotations

import struct
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tollway.telemetry import genai, otlp
from tollway.telemetry.genai import OPERATIONS

if TYPE_CHECKING:
    from tollway.pipeline.context import Attempt, RequestContext
    from tollway.telemetry.tracing import RequestTrace

CACHE = 4096  # entries per cache below; a full cache is cleared, not grown
KEYS = (
    "tollway.trace_id", "tollway.route", "gen_ai.operation.name", "http.request.method", "gen_ai.provider.name",
    "tollway.provider.id", "gen_ai.request.model", "gen_ai.request.max_tokens", "gen_ai.request.stream",
    "gen_ai.response.id", "gen_ai.response.model", "gen_ai.response.finish_reasons", "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens", "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.reasoning.output_tokens", "tollway.tokens_estimated", "gen_ai.response.time_to_first_chunk",
    "http.response.status_code", "tollway.cost_usd", "tollway.project", "tollway.source", "tollway.customer",
    "tollway.key_id", "tollway.cancelled", "tollway.overhead_ms", "error.type", "server.address", "server.port",
    "tollway.attempt", "gen_ai.request.temperature", "gen_ai.request.top_p",
)
_NUMBER = (int, float)
_SMALL = [bytes((i,)) for i in range(128)]
_pack_double = struct.Struct("<d").pack
_times = struct.Struct("<BQBQ").pack  # Span start (7) and end (8) time fields; times are after 1970


def request_params(body: dict[str, Any] | None) -> tuple[int | None, float | None, float | None, bool] | None:
    """(max_tokens, temperature, top_p, stream) behind gen_ai.request.*, from a client body in
    any format; only values of the right JSON type (a bool is no number here)."""
    if not body:
        return None
    get = body.get
    mt = get("max_tokens")
    if type(mt) is not int:
        mt = get("max_completion_tokens")
        if type(mt) is not int:
            mt = get("max_output_tokens")
            if type(mt) is not int:
                mt = None
    t = get("temperature")
    p = get("top_p")
    return (mt, t if type(t) in _NUMBER else None, p if type(p) in _NUMBER else None, get("stream") is True)


def _put(cache: dict, key: Any, value: Any) -> Any:
    if len(cache) >= CACHE:
        cache.clear()
    cache[key] = value
    return value


class SpanEncoder:
    """Encodes finished `RequestTrace`s; one per exporter, with its caches."""

    def __init__(self) -> None:
        self.k = k = {name: otlp.Key(name) for name in KEYS}
        self._shapes: dict[tuple, tuple[bytes, bytes, bool]] = {}
        self._whos: dict[tuple, bytes] = {}
        self._tokens: dict[tuple, bytes] = {}
        self._attempt_shapes: dict[tuple, tuple[bytes, bytes, bytes]] = {}
        self._flag_fields: dict[int, tuple[bytes, bytes]] = {}
        self._trace_id = k["tollway.trace_id"]
        self._tid_head = self._trace_id.head(36)  # Tollway's trace ids are 36-character UUIDs
        self._response_id = k["gen_ai.response.id"]
        self._rid_heads = self._response_id._heads  # string length -> the attribute's bytes before it
        self._cost_head = k["tollway.cost_usd"].double_head
        self._overhead_head = k["tollway.overhead_ms"].double_head
        self._ttft_head = k["gen_ai.response.time_to_first_chunk"].double_head
        self._cancelled = k["tollway.cancelled"].true
        self._ttft = struct.Struct(f"<{len(self._ttft_head)}sd").pack
        self._cost_overhead = struct.Struct(f"<{len(self._cost_head)}sd{len(self._overhead_head)}sd").pack

    def encode(self, t: "RequestTrace", ctx: "RequestContext",
               content: list[tuple[str, str]] | None) -> tuple[bytes, int]:
        """The request span and its attempt spans, as `ScopeSpans.spans` entries joined, and
        how many spans that is."""
        dep = ctx.deployment
        provider = ctx.provider or (dep.provider if dep is not None else None)
        served = ctx.model_served or (dep.model if dep is not None else None)
        endpoint, status, error_type, attempts = ctx.endpoint, ctx.status, ctx.error_type, ctx.attempts
        reasons = t.finish_reasons
        key = (ctx.route, ctx.method, endpoint, provider, ctx.model or "", served, request_params(ctx.json), status,
               error_type, reasons[0] if len(reasons) == 1 else tuple(reasons))
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._request_shape(key)
        tid, sid, state, parent_id = t.trace_id, t.span_id, t.state_field, t.parent_id
        flags = self._flag_fields.get(t.flags)
        if flags is None:
            flags = self._flags(t.flags)
        wall0 = ctx.started
        base = wall0 - ctx.t0  # perf_counter seconds + base = unix seconds
        end_perf = time.perf_counter()
        trace_id = ctx.trace_id
        tb = trace_id.encode()
        times = _times(0x39, int(wall0 * 1e9), 0x41, int((base + end_perf) * 1e9))
        rid = t.id.encode("utf-8", "replace") if t.id else b""
        usage = ctx.usage
        cost, overhead = ctx.cost, ctx.overhead
        customer, key_id, project, source = ctx.customer, ctx.key_id, ctx.project, ctx.source
        if (not parent_id and len(tb) == 36 and usage is not None and not usage.cached_tokens
                and not usage.cache_creation_tokens and not usage.reasoning_tokens and not usage.estimated
                and cost is not None and overhead is not None and not ctx.cancelled and not content
                and not t.extra):
            # the usual case (a priced call or stream): one join of a fixed tuple of parts
            ttft = ctx.ttft_ms
            head = self._rid_heads.get(len(rid)) if rid else b""
            tk = (usage.input_tokens, usage.output_tokens)
            tokens = self._tokens.get(tk)
            wk = (customer, key_id, project, source)
            who = self._whos.get(wk) if customer or key_id or project or source else b""
            body = b"".join((
                b"\x0a\x10", tid, b"\x12\x08", sid, state, shape[0], times, self._tid_head, tb, shape[1],
                head if head is not None else self._response_id.head(len(rid)), rid,
                tokens if tokens is not None else self._token_attrs(tk),
                self._cost_overhead(self._cost_head, float(cost), self._overhead_head,
                                    int(overhead * 1e6 + 0.5) / 1000.0),  # ms, to the µs
                who if who is not None else self._who(wk),
                self._ttft(self._ttft_head, ttft / 1000.0) if ttft is not None else b"",
                otlp.STATUS_ERROR if shape[2] else b"", flags[1]))
        else:
            body = self._request_body(t, ctx, content, shape, flags, times, tb, rid)
        n = len(body)
        span = b"\x12" + (_SMALL[n] if n < 128 else bytes(((n & 127) | 128, n >> 7)) if n < 16384
                          else otlp.varint(n)) + body
        if not attempts:
            return span, 1
        out = [span]
        n = self._attempts(out, attempts, tid, sid, state, base, end_perf, flags[1], OPERATIONS.get(endpoint))
        return b"".join(out), 1 + n

    def _request_body(self, t: "RequestTrace", ctx: "RequestContext", content: list[tuple[str, str]] | None,
                      shape: tuple[bytes, bytes, bool], flags: tuple[bytes, bytes], times: bytes, tb: bytes,
                      rid: bytes) -> bytes:
        """The request span's body, any case (remote parent, usage details, streams, content, ...)."""
        parent_id = t.parent_id
        parts = [b"\x0a\x10", t.trace_id, b"\x12\x08", t.span_id, t.state_field,
                 b"\x22\x08" + parent_id if parent_id else b"", shape[0], times,
                 self._tid_head + tb if len(tb) == 36 else self._trace_id.text(ctx.trace_id), shape[1]]
        append = parts.append
        if rid:
            head = self._rid_heads.get(len(rid))
            append(head if head is not None else self._response_id.head(len(rid)))
            append(rid)
        usage = ctx.usage
        if usage is not None:
            tk = (usage.input_tokens, usage.output_tokens)
            b = self._tokens.get(tk)
            append(b if b is not None else self._token_attrs(tk))
            if usage.cached_tokens or usage.cache_creation_tokens or usage.reasoning_tokens or usage.estimated:
                parts.extend(self._usage_extra(usage))
        cost, overhead = ctx.cost, ctx.overhead
        if cost is not None:
            append(self._cost_head)
            append(_pack_double(float(cost)))
        if overhead is not None:
            append(self._overhead_head)
            append(_pack_double(int(overhead * 1e6 + 0.5) / 1000.0))  # ms, to the µs
        customer, key_id, project, source = ctx.customer, ctx.key_id, ctx.project, ctx.source
        if customer or key_id or project or source:
            wk = (customer, key_id, project, source)
            b = self._whos.get(wk)
            append(b if b is not None else self._who(wk))
        if ctx.ttft_ms is not None:
            append(self._ttft_head)
            append(_pack_double(ctx.ttft_ms / 1000.0))
        if ctx.cancelled:
            append(self._cancelled)
        if content:
            append(otlp.attributes(content))
        if t.extra:
            append(t.extra)
        if shape[2]:
            append(otlp.STATUS_ERROR)
        append(flags[0] if parent_id else flags[1])
        return b"".join(parts)

    def _attempts(self, out: list[bytes], attempts: list["Attempt"], tid: bytes, sid: bytes, state: bytes,
                  base: float, end_perf: float, flags: bytes, op: str | None) -> int:
        """Append the attempts' spans to `out`; returns how many. A span is its shape's
        template (`_attempt_shape`) with the ids, times and flags filled in."""
        n_spans = 0
        for i, a in enumerate(attempts):
            if a.span is None:
                continue
            n_spans += 1
            span_id, a_method = a.span
            akey = (a.provider_kind, a.model, a.url, a_method, a.provider_id, op, i, a.status, a.error_type)
            ashape = self._attempt_shapes.get(akey)
            if ashape is None:
                ashape = self._attempt_shape(akey)
            times = _times(0x39, int((base + a.started) * 1e9), 0x41,
                           int((base + (a.ended or a.headers_at or end_perf)) * 1e9))
            if not state:
                out.append(ashape[2] % (tid, span_id, sid, times, flags))
                continue
            body = b"".join((b"\x0a\x10", tid, b"\x12\x08", span_id, state, b"\x22\x08", sid, ashape[0], times,
                             ashape[1], flags))
            out.append(otlp.field(b"\x12", body))
        return n_spans

    # -- the cached groups ----------------------------------------------------------------------
    def _flags(self, trace_flags: int) -> tuple[bytes, bytes]:
        """Span.flags of a request span with a remote parent, and of one without (or an attempt)."""
        local = trace_flags | otlp.FLAG_HAS_IS_REMOTE
        return _put(self._flag_fields, trace_flags,
                    (otlp.flags_field(local | otlp.FLAG_IS_REMOTE), otlp.flags_field(local)))

    def _token_attrs(self, key: tuple[int | None, int | None]) -> bytes:
        k = self.k
        inp, outp = key
        return _put(self._tokens, key, (k["gen_ai.usage.input_tokens"](inp) if inp is not None else b"")
                    + (k["gen_ai.usage.output_tokens"](outp) if outp is not None else b""))

    def _who(self, key: tuple[str | None, ...]) -> bytes:
        k = self.k
        parts = [k[f"tollway.{name}"](v) for name, v in zip(("customer", "key_id", "project", "source"), key,
                                                             strict=True) if v]
        return _put(self._whos, key, b"".join(parts))

    def _usage_extra(self, usage: Any) -> list[bytes]:
        k = self.k
        parts = []
        if usage.cached_tokens:
            parts.append(k["gen_ai.usage.cache_read.input_tokens"](usage.cached_tokens))
        if usage.cache_creation_tokens:
            parts.append(k["gen_ai.usage.cache_creation.input_tokens"](usage.cache_creation_tokens))
        if usage.reasoning_tokens:
            parts.append(k["gen_ai.usage.reasoning.output_tokens"](usage.reasoning_tokens))
        if usage.estimated:
            parts.append(k["tollway.tokens_estimated"].true)
        return parts

    def _request_attrs(self, params: tuple[Any, ...] | None) -> bytes:
        if params is None:
            return b""
        max_tokens, temperature, top_p, stream = params
        k = self.k
        out = []
        if max_tokens is not None:
            out.append(k["gen_ai.request.max_tokens"](max_tokens))
        if temperature is not None:
            out.append(k["gen_ai.request.temperature"].double(float(temperature)))
        if top_p is not None:
            out.append(k["gen_ai.request.top_p"].double(float(top_p)))
        if stream:
            out.append(k["gen_ai.request.stream"].true)
        return b"".join(out)

    def _request_shape(self, key: tuple) -> tuple[bytes, bytes, bool]:
        route, method, endpoint, provider, model, served, params, status, error_type, finish = key
        op = OPERATIONS.get(endpoint)
        k = self.k
        parts = [k["tollway.route"](route), k["http.request.method"](method)]
        if op:
            name = f"{op} {model}" if model else op
            parts.append(k["gen_ai.operation.name"](op))
        else:
            name = f"{method} {route}"
        if provider is not None:
            parts.append(k["gen_ai.provider.name"](genai.provider_name(provider.kind)))
            parts.append(k["tollway.provider.id"](provider.id))
        if model:
            parts.append(k["gen_ai.request.model"](model))
        if op:
            parts.append(self._request_attrs(params))
        if served:
            parts.append(k["gen_ai.response.model"](served))
        reasons = [finish] if isinstance(finish, str) else list(dict.fromkeys(finish))
        if reasons:
            parts.append(otlp.attribute("gen_ai.response.finish_reasons", reasons))
        if status:
            parts.append(k["http.response.status_code"](status))
        err = error_type or (str(status) if status >= 400 else None)
        if err:
            parts.append(k["error.type"](err))
        return _put(self._shapes, key, (otlp.field(b"\x2a", name.encode()) + otlp.KIND_SERVER, b"".join(parts),
                                        bool(err)))

    def _attempt_shape(self, key: tuple) -> tuple[bytes, bytes, bytes]:
        kind, model, url, method, provider_id, op, i, status, error_type = key
        parts = urlsplit(url)
        k = self.k
        attrs = [k["gen_ai.provider.name"](genai.provider_name(kind)), k["gen_ai.request.model"](model),
                 k["server.address"](parts.hostname or ""),
                 k["server.port"](parts.port or (443 if parts.scheme == "https" else 80)),
                 k["http.request.method"](method), k["tollway.provider.id"](provider_id)]
        if op:
            attrs.append(k["gen_ai.operation.name"](op))
        attrs.append(k["tollway.attempt"](i + 1))
        if status:
            attrs.append(k["http.response.status_code"](status))
        err = error_type or (str(status) if status >= 400 else None)
        if err:
            attrs.append(k["error.type"](err))
        name = f"{op} {model}" if op else f"{method} {provider_id}"
        name_kind = otlp.field(b"\x2a", name.encode()) + otlp.KIND_CLIENT
        attrs_status = b"".join(attrs) + (otlp.STATUS_ERROR if err else b"")
        # the span without trace state, as a `%` template: trace id, span id, parent (the
        # request span), times (18 bytes), flags (6 bytes); constant bytes escaped
        size = 18 + 10 + 10 + len(name_kind) + 18 + len(attrs_status) + 6
        template = (b"\x12" + otlp.varint(size) + b"\x0a\x10%b\x12\x08%b\x22\x08%b" + name_kind.replace(b"%", b"%%")
                    + b"%b" + attrs_status.replace(b"%", b"%%") + b"%b")
        return _put(self._attempt_shapes, key, (name_kind, attrs_status, template))
