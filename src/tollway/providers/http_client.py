"""A lean HTTP/1.1 client for upstream calls: asyncio protocols + httptools, keep-alive pools.

Why not aiohttp's ClientSession: on the proxy's hot path its per-request bookkeeping
(cookies, tracing hooks, header merging, URL joining, payload registry) cost more CPU than
the rest of Tollway's pipeline together. This client does only what a proxy needs: write one
request, parse the answer with the same C parser uvicorn uses, hand the body over chunk by
chunk with back-pressure, reuse connections, and time out idle reads. A provider's headers are
bounded (`MAX_HEAD_BYTES`, `MAX_HEADERS`: a 502 beyond) like its body (`read(limit)`).

Not supported on purpose: redirects (a proxy relays them), cookies, HTTP proxies, HTTP/2.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools

from tollway.errors import ProxyError

_HIGH_WATER = 1 << 20  # pause reading from upstream when this much is buffered unread
_INFLATE_STEP = 64 * 1024  # most bytes one inflate step may produce
# A provider's status line and headers: far more than any real one sends (~2 KiB). Beyond either
# limit the answer is refused (502): the parser would otherwise hold a header of any size (growing
# it by concatenation), and relay thousands of headers no client reads (Python's stop at 100).
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 256


def _too_large(limit: int) -> ProxyError:
    return ProxyError("upstream_too_large", f"The provider's answer is larger than Tollway's limit of {limit} bytes "
                                            "([server] max_response_bytes).")


class UpstreamClosed(Exception):
    """The connection ended before a complete response (reset, or a stale keep-alive)."""


class _Connection(asyncio.Protocol):
    __slots__ = ("_loop", "_pool", "key", "transport", "_parser", "_resp", "closed", "_paused", "_headers",
                 "_got_bytes", "_head_bytes")

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: "HttpClient", key: tuple) -> None:
        self._loop = loop
        self._pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._resp: Response | None = None
        self.closed = False
        self._paused = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._got_bytes = False
        self._head_bytes = 0  # bytes read while the current answer's headers are incomplete

    # asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        resp = self._resp
        if resp is not None:
            resp.last_activity = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # pragma: no cover - we never ask for upgrades
            self._fail(UpstreamClosed("unexpected protocol upgrade"))
            return
        except httptools.HttpParserError as e:
            self._fail(UpstreamClosed(f"invalid HTTP from provider: {e}"))
            return
        if resp is not None and not resp.status and self._resp is resp:  # headers still incomplete
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._fail(UpstreamClosed(f"response headers over {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} fields"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        resp = self._resp
        if resp is not None and not resp.done:
            if resp.status and resp.ends_at_close:
                resp.finish()  # a body without length or chunking ends when the connection does
                self._resp = None
            else:
                self._fail(UpstreamClosed("connection closed by provider"))

    def pause_writing(self) -> None:  # request bodies are written whole; nothing to pause
        pass

    def resume_writing(self) -> None:
        pass

    # httptools callbacks -----------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self._headers) < MAX_HEADERS:
            self._headers.append((name, value))
        else:
            self._head_bytes = MAX_HEAD_BYTES + 1  # refused after this read, as too large a header section

    def on_headers_complete(self) -> None:
        resp = self._resp
        if resp is None:
            return
        if self._head_bytes > MAX_HEAD_BYTES or sum(len(k) + len(v) for k, v in self._headers) > MAX_HEAD_BYTES:
            self._headers = []
            self._fail(UpstreamClosed(f"response headers over {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} fields"))
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._headers = []  # an interim response (100 Continue): the real one follows
            return
        resp.headers_received(status, self._headers)
        self._headers = []
        if resp.head_only:  # a HEAD answer has headers only, whatever content-length says
            resp.finish()
            self._resp = None
            self.close()

    def on_body(self, body: bytes) -> None:
        resp = self._resp
        if resp is not None:
            resp.feed(body)
            if resp.buffered > _HIGH_WATER and not self._paused and self.transport is not None:
                self._paused = True
                self.transport.pause_reading()

    def on_message_complete(self) -> None:
        resp = self._resp
        if resp is not None:
            keep = self._parser.should_keep_alive()
            resp.finish()
            self._resp = None
            if not keep:
                self.close()

    # used by Response --------------------------------------------------------------
    def _fail(self, exc: BaseException) -> None:
        resp, self._resp = self._resp, None
        if resp is not None:
            resp.fail(exc)
        self.close()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def start(self, resp: "Response", data: bytes) -> None:
        self._resp = resp
        self._got_bytes = False
        self._head_bytes = 0
        self._parser = httptools.HttpResponseParser(self)
        assert self.transport is not None
        self.transport.write(data)


class Response:
    """One upstream response: status and headers first, then the body as it arrives."""

    __slots__ = ("status", "raw_headers", "done", "buffered", "last_activity", "_conn", "_chunks", "_waiter",
                 "_error", "_head", "_client", "_decoder", "_tail", "_inflated_all", "_timer", "head_only",
                 "ends_at_close", "_deadline")

    def __init__(self, conn: _Connection, client: "HttpClient", head_only: bool = False) -> None:
        self.head_only = head_only
        self.ends_at_close = False
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.done = False
        self.buffered = 0
        self._conn: _Connection | None = conn
        self._client = client
        self._chunks: deque[bytes] = deque()
        loop = client.loop
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._head: asyncio.Future[None] = loop.create_future()
        self._decoder: zlib._Decompress | None = None  # type: ignore[name-defined]
        self._tail = b""  # compressed bytes not yet inflated
        self._inflated_all = False
        self.last_activity = loop.time()
        self._timer = loop.call_at(self.last_activity + client.read_timeout, self._check_timeout)
        self._deadline: asyncio.TimerHandle | None = None

    def set_deadline(self, when: float | None, message: str = "") -> None:
        """Give up on this response at loop time `when` (None: no deadline): it fails as a
        timeout (`message` says which), the connection is closed."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if when is not None and not self.done:
            self._deadline = self._client.loop.call_at(when, self._expire, message)

    def _expire(self, message: str) -> None:
        self._deadline = None
        if self.done:
            return
        conn, self._conn = self._conn, None
        self.fail(asyncio.TimeoutError(message) if message else asyncio.TimeoutError())
        if conn is not None:
            conn._resp = None
            conn.close()

    def _stop_timers(self) -> None:
        self._timer.cancel()
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    # fed by the connection ---------------------------------------------------------
    def headers_received(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        self.raw_headers = headers
        framed = status in (204, 304)
        for k, v in headers:
            lk = k.lower()
            if lk == b"content-length" or (lk == b"transfer-encoding" and b"chunked" in v.lower()):
                framed = True
            elif lk == b"content-encoding":
                enc = v.strip().lower()
                if enc in (b"gzip", b"x-gzip"):
                    self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
                elif enc == b"deflate":
                    self._decoder = zlib.decompressobj()
        self.ends_at_close = not framed
        if not self._head.done():
            self._head.set_result(None)

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)  # compressed bodies are inflated as they are consumed (_next)
        self.buffered += len(data)
        self._wake()

    def finish(self) -> None:
        self.done = True
        self._stop_timers()
        self._wake()

    def fail(self, exc: BaseException) -> None:
        if self.done:
            return
        self._error = exc
        self.done = True
        self._stop_timers()
        if not self._head.done():
            self._head.set_exception(exc)
            self._head.exception()  # mark retrieved: the caller may be gone already
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _check_timeout(self) -> None:
        if self.done:
            return
        loop = self._client.loop
        idle = loop.time() - self.last_activity
        if idle >= self._client.read_timeout:
            conn, self._conn = self._conn, None
            self.fail(asyncio.TimeoutError())
            if conn is not None:
                conn._resp = None
                conn.close()
        else:
            self._timer = loop.call_at(self.last_activity + self._client.read_timeout, self._check_timeout)

    # used by the proxy --------------------------------------------------------------
    async def wait_head(self) -> None:
        await self._head

    def _raise(self) -> None:
        err = self._error
        if isinstance(err, asyncio.TimeoutError):
            raise ProxyError("upstream_timeout", str(err) or "The provider stopped sending within the read timeout.")
        raise ProxyError("upstream_error", f"The provider's response broke off ({err}).")

    async def _next(self) -> bytes | None:
        """The next piece of the body, inflated when it is compressed. Inflating happens here,
        as the consumer asks, at most `_INFLATE_STEP` bytes at a time: a small compressed
        body that inflates to gigabytes (a "zip bomb") costs the consumer time in proportion
        to what it reads, never memory (and `read(limit)` stops it at the limit)."""
        d = self._decoder
        if d is None:
            return await self._next_raw()
        while True:
            if self._tail:
                try:
                    out = d.decompress(self._tail, _INFLATE_STEP)
                except zlib.error as e:
                    raise ProxyError("upstream_error", f"The provider's compressed answer is corrupt ({e}).") from None
                self._tail = d.unconsumed_tail
                if out:
                    return out
                continue
            raw = await self._next_raw()
            if raw is None:
                if d.eof or self._inflated_all:
                    return None
                self._inflated_all = True
                rest = d.flush()
                return rest or None
            self._tail = raw

    async def _next_raw(self) -> bytes | None:
        while not self._chunks:
            if self.done:
                if self._error is not None:
                    self._raise()
                return None
            self._waiter = self._client.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = self._chunks.popleft()
        self.buffered -= len(data)
        if self._conn is not None and self.buffered < _HIGH_WATER // 2:
            self._conn.resume()
        return data

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body. Past `limit` bytes (inflated) it raises ProxyError(upstream_too_large)
        and the connection is dropped on release, so an answer never costs more than that."""
        if limit is not None:
            for k, v in self.raw_headers:
                if k.lower() == b"content-length" and v.strip().isdigit() and int(v) > limit and self._decoder is None:
                    raise _too_large(limit)
        parts: list[bytes] = []
        size = 0
        while True:
            data = await self._next()
            if data is None:
                return parts[0] if len(parts) == 1 else b"".join(parts)
            size += len(data)
            if limit is not None and size > limit:
                raise _too_large(limit)
            parts.append(data)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        while True:
            data = await self._next()
            if data is None:
                return
            yield data

    def release(self) -> None:
        """Give the connection back (body fully read) or close it (response abandoned)."""
        conn, self._conn = self._conn, None
        self._stop_timers()
        if conn is None:
            return
        if self.done and self._error is None and not conn.closed:
            self._client._put(conn)
        else:
            conn._resp = None
            conn.close()
            self.done = True


class HttpClient:
    """Keep-alive connection pools per (scheme, host, port)."""

    def __init__(self, connect_timeout: float, read_timeout: float, max_idle_per_host: int = 256,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._max_idle = max_idle_per_host
        self._idle: dict[tuple, list[_Connection]] = {}
        self._targets: dict[str, tuple[tuple, bytes, str]] = {}  # url -> (key, path, host header)
        self._ssl = ssl_context  # None: the system's CA store, made on the first TLS connection
        self.loop = asyncio.get_event_loop()

    def bind_loop(self) -> None:
        self.loop = asyncio.get_running_loop()

    def _target(self, url: str) -> tuple[tuple, bytes, str]:
        t = self._targets.get(url)
        if t is None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ProxyError("upstream_unreachable", f"Unsupported provider URL scheme in {parts.scheme}://…")
            tls = parts.scheme == "https"
            port = parts.port or (443 if tls else 80)
            path = (parts.path or "/") + (("?" + parts.query) if parts.query else "")
            default_port = port == (443 if tls else 80)
            host = parts.hostname if default_port else f"{parts.hostname}:{port}"
            if ":" in (parts.hostname or "") and not default_port:  # IPv6 literal
                host = f"[{parts.hostname}]:{port}"
            t = ((tls, parts.hostname, port), path.encode("latin-1"), host)
            if len(self._targets) < 4096:
                self._targets[url] = t
        return t

    async def _connect(self, key: tuple, connect_s: float | None = None) -> _Connection:
        tls, host, port = key
        ctx = None
        if tls:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            ctx = self._ssl
        loop = self.loop
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop, self, key), host, port, ssl=ctx,
                                       server_hostname=host if tls else None),
                connect_s or self.connect_timeout)
        except asyncio.TimeoutError:
            raise ProxyError("upstream_timeout", "The provider did not accept a connection in time.") from None
        except (OSError, ssl.SSLError) as e:
            raise ProxyError("upstream_unreachable", f"The provider could not be reached ({type(e).__name__}).") from None
        return conn

    def _put(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) < self._max_idle:
            idle.append(conn)
        else:
            conn.close()

    def _get(self, key: tuple) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    async def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None,
                      connect_timeout: float | None = None, head_timeout: float | None = None) -> Response:
        key, path, host = self._target(url)
        head = [f"{method} ".encode(), path, b" HTTP/1.1\r\nhost: ", host.encode("latin-1"), b"\r\n"]
        for k, v in headers.items():
            head.append(f"{k}: {v}\r\n".encode("latin-1"))
        if body is not None or method in ("POST", "PUT", "PATCH"):
            head.append(b"content-length: %d\r\n" % len(body or b""))
        head.append(b"\r\n")
        if body:
            head.append(body)
        data = b"".join(head)
        for attempt in (0, 1):
            conn = self._get(key)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(key, connect_timeout)
            resp = Response(conn, self, head_only=method == "HEAD")
            if head_timeout is not None:
                resp.set_deadline(self.loop.time() + head_timeout,
                                  f"The provider did not answer within {head_timeout:g} s (first-token timeout).")
            conn.start(resp, data)
            try:
                await resp.wait_head()
                return resp
            except UpstreamClosed as e:
                resp.release()
                # A kept-alive connection the provider had just closed: nothing was processed,
                # so one retry on a fresh connection is safe.
                if reused and attempt == 0 and not conn._got_bytes:
                    continue
                raise ProxyError("upstream_unreachable", f"The provider closed the connection ({e}).") from None
            except asyncio.TimeoutError as e:
                resp.release()
                raise ProxyError("upstream_timeout", str(e) or "The provider did not answer in time.") from None
            except BaseException:
                resp.release()
                raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        for conns in self._idle.values():
            for c in conns:
                c.close()
        self._idle.clear()
