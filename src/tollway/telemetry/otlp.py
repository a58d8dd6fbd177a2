"""OTLP/protobuf wire encoding of spans: the bytes of an `ExportTraceServiceRequest`.

Why by hand. Tollway's trace export must cost a few µs of CPU per request, all included
(the export runs on the same core as the proxy). Measured per request (one request span of
~20 attributes plus one attempt span; bench/telemetry_micro.py and scratch variants of it,
µs of CPU on a busy 2-core machine, so relative more than absolute):
- the SDK path (span objects, BatchSpanProcessor, the OTLP exporter's `encode_spans`):
  ~240 µs with the export, of which `encode_spans` + serialization alone is ~110 µs;
- opentelemetry-proto's generated classes, filled directly (no SDK spans): ~55 µs, and
  ~20 µs when they are built from nested dicts in one constructor call: every `KeyValue` /
  `AnyValue` is still a protobuf object;
- OTLP/JSON built as dicts and serialized with orjson: ~11 µs, and JSON is the optional
  OTLP/HTTP encoding (several receivers take protobuf only);
- this module with `spans`: ~5 µs, because most of a span's bytes repeat from request to
  request and are cached as bytes, so a request mostly concatenates.
The protobuf wire format is frozen (field numbers and wire types of OTLP 1.x are stable);
the parts built once per process (resource, instrumentation scope) use
opentelemetry-proto's classes, and `tests/telemetry/test_otlp.py` decodes what this module
writes with opentelemetry-proto, value types and lengths over 127 bytes included.

Field numbers (opentelemetry/proto/trace/v1/trace.proto, common/v1/common.proto):
Span: 1 trace_id, 2 span_id, 3 trace_state, 4 parent_span_id, 5 name, 6 kind, 7 start (fixed64),
8 end (fixed64), 9 attributes, 15 status, 16 flags (fixed32). KeyValue: 1 key, 2 value.
AnyValue: 1 string, 2 bool, 3 int64, 4 double, 5 array. Status: 3 code.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Any

_SMALL = [bytes((i,)) for i in range(128)]
_pack_double = struct.Struct("<d").pack
_pack_fixed32 = struct.Struct("<I").pack
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
CACHE_SIZE = 512  # cached encodings per attribute key; a full cache is cleared, not grown

KIND_SERVER = b"\x30\x02"
KIND_CLIENT = b"\x30\x03"
STATUS_ERROR = b"\x7a\x02\x18\x02"  # Status{code: STATUS_CODE_ERROR}
FLAG_HAS_IS_REMOTE = 0x100  # SpanFlags: the is_remote bit below is meaningful
FLAG_IS_REMOTE = 0x200  # the parent span was propagated from another process


def varint(n: int) -> bytes:
    if n < 128:
        return _SMALL[n]
    if n < 16384:
        return bytes(((n & 127) | 128, n >> 7))
    out = bytearray()
    while n > 127:
        out.append((n & 127) | 128)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    n = len(payload)
    return tag + (_SMALL[n] if n < 128 else varint(n)) + payload


def any_value(v: Any) -> bytes | None:
    """The AnyValue of an attribute value (str, bool, int, float, or a sequence of one of them);
    None for what OTLP cannot carry (the SDK drops those too)."""
    t = type(v)
    if t is str:
        return field(b"\x0a", v.encode("utf-8", "replace"))
    if t is bool:
        return b"\x10\x01" if v else b"\x10\x00"
    if t is int:
        if not _INT64_MIN <= v <= _INT64_MAX:
            return None
        return b"\x18" + varint(v if v >= 0 else v + (1 << 64))
    if t is float:
        return b"\x21" + _pack_double(v)
    if isinstance(v, (list, tuple)):
        items = [any_value(x) for x in v]
        return field(b"\x2a", b"".join(field(b"\x0a", x) for x in items if x is not None))
    return None


def attribute(key: str, v: Any) -> bytes:
    """One `Span.attributes` entry (a KeyValue, tag included); b"" when v cannot be carried."""
    value = any_value(v)
    if value is None:
        return b""
    return field(b"\x4a", field(b"\x0a", key.encode()) + field(b"\x12", value))


def attributes(items: Iterable[tuple[str, Any]] | Mapping[str, Any]) -> bytes:
    pairs = items.items() if isinstance(items, Mapping) else items
    return b"".join(attribute(k, v) for k, v in pairs)


class Key:
    """One attribute key, with its recurring values' encodings cached. A key carries values of
    one type (str or int); booleans use `true` (True == 1 would share a cache slot)."""

    __slots__ = ("key", "cache", "double_head", "_heads", "true")

    def __init__(self, key: str) -> None:
        self.key = key
        self.cache: dict[Any, bytes] = {}  # value -> its attribute; callers may look up first
        kb = field(b"\x0a", key.encode())
        kv_len = len(kb) + 2 + 9  # key, value tag and length, double tag and 8 bytes
        self.double_head = b"\x4a" + varint(kv_len) + kb + b"\x12\x09\x21"  # + 8 bytes of double
        self._heads: dict[int, bytes] = {}  # string byte length -> every byte before the string's
        self.true = attribute(key, True)

    def __call__(self, v: str | int) -> bytes:
        """A str or int value; one that recurs costs a dict lookup."""
        b = self.cache.get(v)
        if b is None:
            b = attribute(self.key, v)
            cache = self.cache
            if len(cache) >= CACHE_SIZE:
                cache.clear()
            cache[v] = b
        return b

    def head(self, n: int) -> bytes:
        """Every byte of the attribute before a string value of `n` bytes."""
        head = self._heads.get(n)
        if head is None:
            head = attribute(self.key, "x" * n)[: -n or None]
            if len(self._heads) < 64:
                self._heads[n] = head
        return head

    def text(self, v: str) -> bytes:
        """A string that will not recur (ids): encoded, not cached (its framing is)."""
        b = v.encode("utf-8", "replace")
        return self.head(len(b)) + b

    def double(self, v: float) -> bytes:
        return self.double_head + _pack_double(v)


_times = struct.Struct("<BQBQ").pack  # start_time_unix_nano (7) and end_time_unix_nano (8), fixed64 each


def times(start_ns: int, end_ns: int) -> bytes:
    """A span's start and end time fields (never negative)."""
    return _times(0x39, start_ns if start_ns > 0 else 0, 0x41, end_ns if end_ns > 0 else 0)


def flags_field(flags: int) -> bytes:
    """Span.flags (16, fixed32): W3C trace flags in bits 0-7, FLAG_* above."""
    return b"\x85\x01" + _pack_fixed32(flags & 0xFFFF)


def span(trace_id: bytes, span_id: bytes, parent: bytes, trace_state: bytes, name: bytes, kind: bytes,
         start_ns: int, end_ns: int, attrs: bytes, error: bool, flags: int) -> bytes:
    """One span as a `ScopeSpans.spans` entry (tag and length included). `parent`, `name` and
    `trace_state` are encoded fields (`field(b"\\x22", id)`, ..., or b"")."""
    body = b"".join((b"\x0a\x10", trace_id, b"\x12\x08", span_id, trace_state, parent, name, kind,
                     times(start_ns, end_ns), attrs, STATUS_ERROR if error else b"", flags_field(flags)))
    return field(b"\x12", body)


class Envelope:
    """The resource and instrumentation scope every batch repeats, encoded once with
    opentelemetry-proto; `request(spans)` wraps encoded spans into an ExportTraceServiceRequest."""

    def __init__(self, resource: Any, scope_name: str, scope_version: str) -> None:
        from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue
        from opentelemetry.proto.resource.v1.resource_pb2 import Resource

        def pb_value(v: Any) -> AnyValue:
            if isinstance(v, bool):
                return AnyValue(bool_value=v)
            if isinstance(v, int):
                return AnyValue(int_value=v)
            if isinstance(v, float):
                return AnyValue(double_value=v)
            if isinstance(v, (list, tuple)):
                return AnyValue(array_value=ArrayValue(values=[pb_value(x) for x in v]))
            return AnyValue(string_value=str(v))

        res = Resource(attributes=[KeyValue(key=k, value=pb_value(v)) for k, v in resource.attributes.items()])
        scope = InstrumentationScope(name=scope_name, version=scope_version)
        self._resource = field(b"\x0a", res.SerializeToString())  # ResourceSpans.resource
        self._scope = field(b"\x0a", scope.SerializeToString())  # ScopeSpans.scope
        schema = getattr(resource, "schema_url", "") or ""
        self._schema = field(b"\x1a", schema.encode()) if schema else b""  # ResourceSpans.schema_url

    def request(self, spans: list[bytes]) -> bytes:
        """ExportTraceServiceRequest{resource_spans: [{resource, scope_spans: [{scope, spans}], schema_url}]},
        joined once."""
        scope_len = len(self._scope) + sum(map(len, spans))
        scope_head = b"\x12" + varint(scope_len)  # ResourceSpans.scope_spans
        rs_len = len(self._resource) + len(scope_head) + scope_len + len(self._schema)
        return b"".join((b"\x0a", varint(rs_len), self._resource, scope_head, self._scope, *spans, self._schema))
