"""The trace exporter: a bounded queue of encoded spans the request path appends to, and a
background task that posts them in batches over OTLP/HTTP (protobuf).

A request's spans are encoded when it ends (`RequestTrace.end`, with `spans.SpanEncoder`), and
`put()` queues their bytes: a length check and one deque append. Bytes are what the export
needs anyway, and they are smaller to keep than the request's objects (its usage, attempts,
...), which are then freed at once instead of living on in the queue. A full queue drops the
request's spans and counts them (`dropped`, in `/metrics` as
`tollway_otel_spans_total{outcome="dropped"}`): memory stays bounded when the receiver is slow
or gone. The task wakes every `OTEL_BSP_SCHEDULE_DELAY` ms, or as soon as a batch's worth is
queued, takes up to `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` spans (whole requests), wraps them in one
export request (a join) and posts it; 429, 502-504, timeouts and connection failures are
retried with exponential backoff (up to 5 times), other refusals drop the batch (`failed`).
Shutdown sends what is queued, once, within a bound.

Why a task on the event loop, not the SDK's export thread: a thread takes the GIL for up to
5 ms at a time (the switch interval), which stalls every request in flight. Encoding in the
task, in batches, was measured against encoding at the request's end: the same instructions
per span (CPU is CPU on one core), plus the task's loop over queued records and the records
kept alive until then; at the end it costs each request a few µs after its response is sent,
and the task never holds the loop for a batch. The POST uses Tollway's own HTTP client
(`providers.http_client`), the same keep-alive client as upstream calls, a few dozen µs per batch.

Configuration: `[otel] endpoint` / `headers`, else the standard variables the OTLP exporter
reads: `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`, `_HEADERS`, `_TIMEOUT` (seconds, as the
Python SDK reads it), `_COMPRESSION` (gzip, deflate, none), `_CERTIFICATE`,
`_CLIENT_CERTIFICATE`, `_CLIENT_KEY`; and the batch processor's `OTEL_BSP_SCHEDULE_DELAY`,
`OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BSP_EXPORT_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import ssl
import time
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from tollway import __version__
from tollway.errors import ProxyError
from tollway.providers.http_client import HttpClient
from tollway.telemetry.otlp import Envelope
from tollway.telemetry.spans import SpanEncoder

log = logging.getLogger("tollway.otel")

RETRYABLE = frozenset((429, 502, 503, 504))
MAX_RETRIES = 5


def traces_endpoint(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    try:
        value = int(env.get(name, "") or default)
    except ValueError:
        log.warning("otel: %s is not a whole number; using %d", name, default)
        return default
    return value if value > 0 else default


@dataclass(slots=True)
class ExportConfig:
    endpoint: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # often credentials
    timeout: float = 10.0
    compression: str = "none"
    ssl_context: ssl.SSLContext | None = None
    schedule_delay: float = 5.0  # seconds
    max_queue: int = 2048  # spans
    batch_size: int = 512  # spans
    export_timeout: float = 30.0  # seconds, shutdown's bound for sending what is queued

    @classmethod
    def resolve(cls, endpoint: str | None, headers: Mapping[str, str],
                env: Mapping[str, str] | None = None) -> "ExportConfig":
        """`[otel]` settings first, then the standard OTLP and batch processor variables."""
        env = os.environ if env is None else env

        def var(name: str) -> str | None:
            return env.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or env.get(f"OTEL_EXPORTER_OTLP_{name}") or None

        if endpoint:
            url = traces_endpoint(endpoint)
        elif env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
            url = env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
        elif env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            url = traces_endpoint(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        else:
            url = "http://localhost:4318/v1/traces"
        hdrs = dict(headers)
        if not hdrs and var("HEADERS"):
            from opentelemetry.util.re import parse_env_headers

            hdrs = parse_env_headers(var("HEADERS") or "", liberal=True)
        try:
            timeout = float(var("TIMEOUT") or 10.0)
        except ValueError:
            timeout = 10.0
        compression = (var("COMPRESSION") or "none").strip().lower()
        if compression not in ("gzip", "deflate", "none"):
            log.warning("otel: unknown compression %r; sending uncompressed", compression)
            compression = "none"
        ctx = None
        ca, cert, key = var("CERTIFICATE"), var("CLIENT_CERTIFICATE"), var("CLIENT_KEY")
        if url.startswith("https:") and (ca or cert):
            ctx = ssl.create_default_context(cafile=ca)
            if cert:
                ctx.load_cert_chain(cert, key)
        return cls(url, hdrs, timeout if timeout > 0 else 10.0, compression, ctx,
                   schedule_delay=_env_int(env, "OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000.0,
                   max_queue=_env_int(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2048),
                   batch_size=_env_int(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512),
                   export_timeout=_env_int(env, "OTEL_BSP_EXPORT_TIMEOUT", 30000) / 1000.0)


class SpanExporter:
    def __init__(self, config: ExportConfig, envelope: Envelope) -> None:
        self.config = config
        self._envelope = envelope
        self.encoder = SpanEncoder()
        self._queue: deque[tuple[bytes, int]] = deque()  # each request's encoded spans, and how many
        self._queued = 0  # spans in the queue
        self._max_queue = config.max_queue
        self._batch = min(config.batch_size, config.max_queue)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: HttpClient | None = None
        self._stopping = False
        self._headers = {"content-type": "application/x-protobuf", "user-agent": f"tollway/{__version__}",
                         **config.headers}
        if config.compression != "none":
            self._headers["content-encoding"] = config.compression
        self._full_warned = False
        self._fail_logged = 0.0
        self.dropped = 0  # spans: queue full
        self.exported = 0  # spans the receiver accepted
        self.failed = 0  # spans the receiver refused, or could not be reached for

    # -- the request path ------------------------------------------------------------------------
    def put(self, data: bytes, spans: int) -> None:
        """Queue a finished request's encoded spans (`spans` of them), or drop them when full."""
        queued = self._queued + spans
        if queued > self._max_queue or self._stopping:
            self._drop(spans)
            return
        self._queue.append((data, spans))
        self._queued = queued
        if queued >= self._batch and not self._wake.is_set():
            self._wake.set()

    def _drop(self, spans: int) -> None:
        self.dropped += spans
        if not self._full_warned:
            self._full_warned = True
            log.warning("otel: trace export queue full (%d spans); dropping spans until it drains",
                        self._max_queue)

    # -- the background task -----------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            c = self.config
            self._client = HttpClient(connect_timeout=c.timeout, read_timeout=c.timeout, max_idle_per_host=2,
                                      ssl_context=c.ssl_context)
            self._client.bind_loop()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="tollway-otel-export")

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.schedule_delay):
                    await self._wake.wait()
            self._wake.clear()
            while self._queue and not self._stopping:
                full = self._queued >= self._batch
                try:
                    await self._send(self._take_batch(), retries=MAX_RETRIES)
                except Exception:  # never let the exporter die: spans are best effort
                    log.exception("otel: export failed")
                if not full:  # a partial batch went: wait for the next tick
                    break

    def _take_batch(self) -> tuple[bytes, int]:
        """Up to a batch's worth of queued spans (whole requests), wrapped in one export request."""
        queue, limit = self._queue, self._batch
        parts: list[bytes] = []
        n = 0
        while queue and n < limit:
            data, k = queue.popleft()
            parts.append(data)
            n += k
        self._queued -= n
        if self._full_warned and self._queued < self._max_queue // 2:
            self._full_warned = False
        return self._envelope.request(parts), n

    async def _send(self, batch: tuple[bytes, int], retries: int) -> None:
        body, n = batch
        if not n:
            return
        if self.config.compression == "gzip":
            body = await asyncio.to_thread(_gzip, body)
        elif self.config.compression == "deflate":
            body = await asyncio.to_thread(zlib.compress, body)
        delay = 1.0
        for attempt in range(retries + 1):
            status, error = await self._post(body)
            if status is not None and 200 <= status < 300:
                self.exported += n
                return
            retryable = status is None or status in RETRYABLE
            if not retryable or attempt == retries or self._stopping:
                break
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, 32.0)
        self.failed += n
        now = time.monotonic()
        if now - self._fail_logged > 60:
            self._fail_logged = now
            log.warning("otel: %d spans not exported to %s: %s", n, self.config.endpoint, error)

    async def _post(self, body: bytes) -> tuple[int | None, str]:
        assert self._client is not None
        try:
            async with asyncio.timeout(self.config.timeout):
                resp = await self._client.request("POST", self.config.endpoint, self._headers, body)
                try:
                    await resp.read()
                finally:
                    resp.release()
        except TimeoutError:
            return None, f"no answer within {self.config.timeout:g}s"
        except ProxyError as e:
            return None, e.message.replace("provider", "receiver")
        except OSError as e:
            return None, f"{type(e).__name__}: {e}"
        return resp.status, f"HTTP {resp.status}"

    async def shutdown(self) -> None:
        """Stop the task, then send what is queued (no retries), within OTEL_BSP_EXPORT_TIMEOUT."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, self.config.export_timeout)
            self._task = None
        if self._client is None:
            return
        try:
            async with asyncio.timeout(self.config.export_timeout):
                while self._queue:
                    await self._send(self._take_batch(), retries=0)
        except TimeoutError:
            log.warning("otel: shutdown left %d spans unsent", self._queued)
        finally:
            await self._client.close()
            self._client = None


def _gzip(body: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    return c.compress(body) + c.flush()
