"""A local OTLP/HTTP trace receiver: aiohttp on 127.0.0.1 in a background thread, decoding
`POST /v1/traces` (protobuf) with opentelemetry-proto, keeping every span it was sent."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int  # 1 internal, 2 server, 3 client
    attributes: dict[str, Any]
    status_code: int  # 0 unset, 1 ok, 2 error
    start_ns: int
    end_ns: int
    trace_state: str
    resource: dict[str, Any] = field(default_factory=dict)


class OtlpReceiver:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.requests = 0
        self.refusals = 0
        self.fail_with: list[int] = []  # statuses to answer the next requests with (then 200 again)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            status = self.fail_with.pop(0) if self.fail_with else None
            if status is not None:
                self.refusals += 1
        if status is not None:
            return web.Response(status=status)
        req = ExportTraceServiceRequest.FromString(body)
        got: list[Span] = []
        for rs in req.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    got.append(Span(s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.kind,
                                    {kv.key: _value(kv.value) for kv in s.attributes}, s.status.code,
                                    s.start_time_unix_nano, s.end_time_unix_nano, s.trace_state, resource))
        with self._lock:
            self.requests += 1
            self.spans.extend(got)
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    def find(self, timeout: float = 15.0, **attrs: Any) -> Span:
        """The first span whose attributes include `attrs` (waits for the export)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self._lock:
                for s in self.spans:
                    if all(s.attributes.get(k) == v for k, v in attrs.items()):
                        return s
            time.sleep(0.05)
        raise AssertionError(f"no span with {attrs}; have {[(s.name, s.attributes) for s in self.spans]}")

    def children(self, parent: Span, timeout: float = 15.0) -> list[Span]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self._lock:
                found = [s for s in self.spans if s.parent_span_id == parent.span_id]
            if found:
                return found
            time.sleep(0.05)
        return []

    async def _astart(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def __enter__(self) -> "OtlpReceiver":
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._astart())
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-otlp", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
