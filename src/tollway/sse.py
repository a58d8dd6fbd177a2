"""Incremental Server-Sent Events framing for upstream streams: one linear pass, bounded memory.

Upstream bytes arrive in arbitrary network chunks; an event may be split anywhere, even
inside a CRLF. `SSEDecoder.feed()` returns only complete events, each with its raw bytes
(for relaying unchanged) and its parsed fields (`event:` name and `data:` payload, for
watching usage). Per the SSE spec an event ends at a blank line, and lines end in LF, CRLF
or CR.

Cost: every byte is searched once (an unfinished event is held as a list of chunks and
joined once, when it ends), so a stream costs time linear in its length whatever its
framing; a chunk holding whole events (the usual case) is sliced, never copied into a buffer. An unfinished event larger than
`max_event_bytes` raises `EventTooLarge`: a stream that never sends a blank line cannot make
Tollway hold more than that. Written by hand because the SSE libraries on PyPI
(sseclient, httpx-sse, aiohttp-sse-client) parse line by line in Python and drop the raw
bytes a proxy must relay.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Two line endings in a row (a CR followed by LF is one ending, never two): the end of an event.
_EVENT_END = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")
_LINE_SPLIT = re.compile(rb"\r\n|\n|\r")
DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024


class EventTooLarge(ValueError):
    """An SSE event grew past the decoder's limit without ending."""


@dataclass(slots=True)
class SSEEvent:
    raw: bytes  # the event's bytes as received, including its terminating blank line
    event: str | None  # value of the `event:` field, if any
    data: bytes  # `data:` lines joined by b"\n" (b"" when there were none)

    @property
    def is_done(self) -> bool:
        return self.data == b"[DONE]"


def parse_event(raw: bytes, no_cr: bool = False) -> SSEEvent:
    """An event's fields. `no_cr`: the caller knows `raw` holds no CR (skips a scan)."""
    # The shapes every provider sends, without a line split: "data: X\n\n" and
    # "event: E\ndata: X\n\n" (LF only, one data line).
    if raw.endswith(b"\n\n") and (no_cr or b"\r" not in raw):
        last = len(raw) - 2
        if raw.startswith(b"data: "):
            if raw.find(b"\n", 6) == last:
                return SSEEvent(raw, None, raw[6:last])
        elif raw.startswith(b"event: "):
            nl = raw.find(b"\n", 7)
            if raw.startswith(b"data: ", nl + 1) and raw.find(b"\n", nl + 7) == last:
                return SSEEvent(raw, raw[7:nl].decode("utf-8", "replace"), raw[nl + 7 : last])
    event: str | None = None
    data: list[bytes] = []
    for line in _LINE_SPLIT.split(raw):
        if not line or line[:1] == b":":
            continue
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
    return SSEEvent(raw=raw, event=event, data=b"\n".join(data))


def _event_end(data: bytes, start: int, no_cr: bool) -> int:
    """The index just past the first event end at or after `start`, or -1."""
    if no_cr:
        i = data.find(b"\n\n", start)
        return i + 2 if i >= 0 else -1
    m = _EVENT_END.search(data, start)
    if m is None:
        return -1
    end = m.end()
    if end == len(data) and data[end - 1] == 13:  # a CR at the very end may be half a CRLF: wait
        return -1
    return end


class SSEDecoder:
    """Feed network chunks, get complete events back. Holds at most one partial event.

    `keep_empty`: also return blank-line-only and comment-only events (a relay must pass
    every byte on; a parser only wants events with fields).

    Each chunk is searched once; an unfinished event is kept as a list of its chunks (joined
    once, when it ends), with its last 3 bytes, where an event end split across chunks begins.
    """

    __slots__ = ("_parts", "_held", "_tail", "max_event_bytes", "keep_empty")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES, keep_empty: bool = False) -> None:
        self._parts: list[bytes] = []  # the unfinished event
        self._held = 0
        self._tail = b""  # its last (up to) 3 bytes
        self.max_event_bytes = max_event_bytes
        self.keep_empty = keep_empty

    def _emit(self, raw: bytes, no_cr: bool, events: list[SSEEvent]) -> None:
        if self.keep_empty or raw.strip(b"\r\n"):
            events.append(parse_event(raw, no_cr))

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        if not chunk:
            return events
        pos = 0
        if self._parts:
            tail = self._tail
            joined = tail + chunk
            end = _event_end(joined, 0, b"\r" not in joined)
            if end < 0:
                return self._hold(chunk)
            end -= len(tail)  # >= 0: the held bytes alone held no end
            self._parts.append(chunk[:end])
            raw = b"".join(self._parts)
            self._parts = []
            self._held = 0
            self._tail = b""
            self._emit(raw, b"\r" not in raw, events)
            pos = end
        n = len(chunk)
        no_cr = b"\r" not in chunk
        while pos < n:
            end = _event_end(chunk, pos, no_cr)
            if end < 0:
                self._hold(chunk[pos:] if pos else chunk)
                break
            self._emit(chunk if pos == 0 and end == n else chunk[pos:end], no_cr, events)
            pos = end
        return events

    def _hold(self, part: bytes) -> list[SSEEvent]:
        self._parts.append(part)
        self._held += len(part)
        self._tail = (self._tail + part)[-3:] if len(part) < 3 else part[-3:]
        if self._held > self.max_event_bytes:
            raise EventTooLarge(f"an upstream stream event exceeded {self.max_event_bytes} bytes")
        return []

    def flush(self) -> list[SSEEvent]:
        """The stream ended: whatever is left is a final event without its blank line."""
        rest = b"".join(self._parts)
        self._parts = []
        self._held = 0
        self._tail = b""
        if rest.strip(b"\r\n") or (rest and self.keep_empty):
            return [parse_event(rest)]
        return []

    @property
    def holding(self) -> bool:
        """Part of an unfinished event is held."""
        return bool(self._parts)

    @property
    def pending(self) -> bytes:
        return b"".join(self._parts)


def encode_event(data: bytes, event: str | None = None) -> bytes:
    """One SSE event as bytes (data must be a single line, e.g. compact JSON)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
