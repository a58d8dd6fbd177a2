"""The HTTP/1.1 protocol Tollway serves with: uvicorn's httptools protocol plus the limits it lacks.

uvicorn's `HttpToolsProtocol` bounds neither the size of a request's header section nor the
time a client may take to send it or its body, so one client could make the server hold
hundreds of megabytes (httptools keeps an unfinished header value itself, growing it by
concatenation: quadratic time too) or keep a connection, and its file descriptor, forever by
sending one header line every few seconds. No maintained server library for this stack does
better (h11 has a size limit but no timeouts and costs far more per request), so this
subclass adds, per connection:

- Header size. Bytes given to the parser while a header section is unfinished are counted;
  a chunk that would take them past `max_header_bytes` is fed only up to the limit, and if
  the section is still unfinished the client gets 431 and the connection is closed. Raw
  bytes are counted, not parser callbacks, because the parser sees no complete header until
  the whole of a huge one has arrived. (When a pipelined request starts in the middle of a
  read, its first bytes cannot be told apart: its complete header section is measured
  exactly instead, and memory stays within the limit plus one read.)
- Header time: from connect, or from the first byte of a later request on a kept-alive
  connection, to the end of the header section: `header_timeout`. Then 408 (or a plain close
  when nothing of a request had arrived).
- Body time: from the end of the headers to the end of the body: `body_timeout`. Then 408
  if no response has started, and the connection is closed; the route sees a disconnect.
- Idle keep-alive: uvicorn's own `timeout_keep_alive`.
- Open connections: `ConnectionTracker` (limits.py), shared by the server's connections.

Cost on the hot path: one Python call around the parser per read, a few attribute updates,
and two dictionary operations per request (the tracker). Timers are armed only when a
connection opens or a request arrives in pieces, so a request whose headers and body come
in one read arms none.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from tollway.errors import ProxyError, render
from tollway.server.coalesce import CoalescingTransport
from tollway.server.limits import ConnectionTracker

log = logging.getLogger("tollway.server")

# Framing of a header section that the callbacks do not see: request line and ": " / CRLF per header.
_LINE_OVERHEAD = 16
_FIELD_OVERHEAD = 4


class _Reject(Exception):
    """Raised from a parser callback to stop parsing a request that is being refused."""


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header size, header / body time and connection limits."""

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None, *, tracker: ConnectionTracker) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._tracker = tracker
        self._idle = tracker.idle_connections  # shared; two dict operations per request
        self._max_header = tracker.limits.max_header_bytes
        self._awaiting = True  # the current request's header section is not complete yet
        self._header_bytes = 0  # bytes of it fed to the parser so far
        self._exact = True  # False: the section began mid-read, so _header_bytes misses its start
        self._last_headers: Any = None  # headers list of the message that completed last
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._rejection: tuple[str, str] | None = None  # (error kind, message) while refusing
        self._deferred: tuple[str, str] | None = None  # an answer waiting for the response in progress

    # -- connection ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # a response's writes of one loop iteration leave as one (server/coalesce.py); flow
        # control (uvicorn's FlowControl) keeps the socket's own transport
        self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
        if not self._tracker.opened(self):
            self._answer("overloaded", "The server has no free connection slot; retry shortly.")
            return
        self._header_timer = self.loop.call_later(self._tracker.limits.header_timeout, self._header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        self._tracker.closed(self)
        super().connection_lost(exc)

    def evict(self) -> None:
        """Closed to make room for a new connection (it had no request in progress)."""
        self._cancel_timers()
        if not self.transport.is_closing():
            self.transport.close()

    def _cancel_timers(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    # -- reading ------------------------------------------------------------------------------

    def data_received(self, data: bytes | memoryview) -> None:
        # The hot path: parsing and the checks after it are inline, not in helper calls.
        self._unset_keepalive_if_required()
        if self._awaiting:
            room = self._max_header - self._header_bytes
            if len(data) > room:
                self._split(memoryview(data), room)
                return
            self._header_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._parser_stopped(exc, data)
            return
        if self.transport.is_closing():
            return
        if self._awaiting:
            if self._header_bytes >= self._max_header:
                self._refuse_headers()  # that many bytes and the section is still not complete
                return
            if not self._exact and self.headers is self._last_headers:
                self._exact = True  # the read ended with the last message: nothing of the next one yet
            if self._header_timer is None and (self._header_bytes or not self._exact) and self._response_done():
                self._header_timer = self.loop.call_later(self._tracker.limits.header_timeout,
                                                          self._header_timeout)
        elif self._body_timer is None:
            self._body_timer = self.loop.call_later(self._tracker.limits.body_timeout, self._body_timeout)

    def _split(self, view: memoryview, room: int) -> None:
        """A read that would take an unfinished header section past the limit: feed it only
        up to the limit; the rest only if the section ended within it."""
        self._header_bytes += room
        try:
            self.parser.feed_data(view[:room])
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._parser_stopped(exc, view[:room])
            return
        if self.transport.is_closing():
            return
        if self._awaiting and self._header_bytes >= self._max_header:
            self._refuse_headers()
            return
        self.data_received(view[room:])

    def _parser_stopped(self, exc: Exception, data: bytes | memoryview) -> None:
        if isinstance(exc, httptools.HttpParserUpgrade):
            if self._should_upgrade():
                # The connection now belongs to uvicorn's WebSocket protocol (Realtime): its
                # handshake was held to these limits. The session is not counted in
                # max_connections: its key is checked before anything is upgraded (a refusal is
                # a plain HTTP answer, then a close) and [server] max_realtime_sessions bounds
                # the sessions (api.realtime).
                self._cancel_timers()
                self._tracker.closed(self)
                if isinstance(self.transport, CoalescingTransport):  # the session gets the socket's own
                    self.transport.flush()
                    self.transport = self.transport.transport
                self.handle_websocket_upgrade()
            else:  # uvicorn warns twice per such request: a log flood for the asking
                log.debug("unsupported upgrade request from %s", self.client)
        elif self._rejection is not None:
            self._answer(*self._rejection)
        else:
            if not getattr(self, "url", b""):  # refused inside the request line: its target, for the format
                line = bytes(data[:4096]).split(b"\r\n", 1)[0].split(b" ")
                self.url = line[1] if len(line) > 1 else b""
            self.send_400_response("Invalid HTTP request received.")

    def send_400_response(self, msg: str) -> None:
        """A request the parser refuses (a raw control or non-ASCII byte in the request line, a
        broken header or body framing): uvicorn answers plain text; here it is JSON in the route's
        format like every other error, and the connection is closed."""
        self._answer("invalid_request", "Invalid HTTP request: a malformed request line, header or body framing "
                                        "(characters outside printable ASCII in a URL must be percent-encoded).")

    def _response_done(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    # -- parser callbacks ---------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        if not self._exact:
            self._exact = True
            size = len(self.url) + _LINE_OVERHEAD + sum(len(k) + len(v) + _FIELD_OVERHEAD for k, v in self.headers)
            if size > self._max_header:
                self._tracker.header_too_large += 1
                self._rejection = ("header_too_large", self._too_large_message())
                raise _Reject()
        self._awaiting = False
        self._header_bytes = 0
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._idle.pop(self, None)  # busy with a request: not evictable
        HttpToolsProtocol.on_headers_complete(self)

    def on_message_complete(self) -> None:
        HttpToolsProtocol.on_message_complete(self)
        self._awaiting = True
        self._header_bytes = 0
        self._exact = False  # until data_received sees that no new message began in this read
        self._last_headers = self.headers
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def on_response_complete(self) -> None:
        HttpToolsProtocol.on_response_complete(self)
        if self._deferred is not None:
            if not self.pipeline and self._response_done():
                self._answer(*self._deferred)
        elif not self.transport.is_closing():
            self._idle[self] = None  # evictable again until the next request's headers are complete

    # -- refusing -----------------------------------------------------------------------------

    def _too_large_message(self) -> str:
        return f"Request headers are larger than the limit of {self._max_header} bytes."

    def _refuse_headers(self) -> None:
        self._tracker.header_too_large += 1
        log.debug("431 to %s: header section over %d bytes", self.client, self._max_header)
        self._answer("header_too_large", self._too_large_message())

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._awaiting or not self._response_done():
            return  # a response is still being sent: the next read arms the timer again
        self._tracker.header_timeouts += 1
        if self._header_bytes or not self._exact:
            log.debug("408 to %s: headers not complete within %gs", self.client, self._tracker.limits.header_timeout)
            self._answer("request_timeout", "Request headers did not arrive in time.")
        else:
            self.transport.close()

    def _body_timeout(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self._awaiting:
            return
        self._tracker.body_timeouts += 1
        log.debug("body timeout for %s after %gs", self.client, self._tracker.limits.body_timeout)
        cycle = self.cycle
        if cycle.response_started:  # the route answered already (a 401, say): just hang up
            self.transport.close()
            return
        cycle.disconnected = True  # the route's receive() now reports a disconnect; its sends go nowhere
        cycle.message_event.set()
        self._answer("request_timeout", "Request body did not arrive in time.")

    def _answer(self, kind: str, message: str) -> None:
        """Write an error response and close the connection. While a response to an earlier
        (pipelined) request is under way, reading stops and the answer follows that response."""
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and not (cycle.disconnected
                                                                     and not cycle.response_started):
            self._deferred = (kind, message)
            self.flow.pause_reading()
            return
        url: bytes = getattr(self, "url", b"")  # set when a message begins
        fmt = "anthropic" if url.startswith((b"/v1/messages", b"/proxy/anthropic/")) else (
            "gemini" if url.startswith(b"/v1beta/") else "openai")
        status, body = render(ProxyError(kind, message), fmt)
        self.transport.write(b"".join((
            STATUS_LINE[status], b"content-type: application/json\r\ncontent-length: ",
            str(len(body)).encode(), b"\r\nconnection: close\r\n\r\n", body)))
        self.transport.close()
