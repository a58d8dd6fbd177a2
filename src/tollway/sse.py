"""Incremental Server-Sent Events decoding for upstream streams.

Upstream bytes arrive in arbitrary network chunks; an event may be split anywhere, even
inside a CRLF. `SSEDecoder.feed()` returns only complete events, each with its raw bytes
(for relaying unchanged) and its parsed fields (for watching usage). Per the SSE spec an
event ends at a blank line, and lines end in LF, CRLF or CR.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r|\r\n\n|\n\r\n")
_LINE_SPLIT = re.compile(rb"\r\n|\n|\r")


@dataclass(slots=True)
class SSEEvent:
    raw: bytes  # the event's bytes as received, including its terminating blank line
    event: str | None  # value of the `event:` field, if any
    data: bytes  # `data:` lines joined by b"\n" (b"" when there were none)

    @property
    def is_done(self) -> bool:
        return self.data == b"[DONE]"


def parse_event(raw: bytes) -> SSEEvent:
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


class SSEDecoder:
    """Feed network chunks, get complete events back. Holds at most one partial event."""

    __slots__ = ("_buf", "max_event_bytes")

    def __init__(self, max_event_bytes: int = 16 * 1024 * 1024) -> None:
        self._buf = b""
        self.max_event_bytes = max_event_bytes

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk if self._buf else chunk
        events: list[SSEEvent] = []
        pos = 0
        n = len(buf)
        while pos < n:
            m = _EVENT_END.search(buf, pos)
            if m is None:
                break
            end = m.end()
            # A lone CR at the very end of a chunk may be the first half of CRLF: wait for more.
            if end == n and buf[end - 1 : end] == b"\r":
                break
            raw = buf[pos:end]
            if raw.strip(b"\r\n"):
                events.append(parse_event(raw))
            pos = end
        self._buf = buf[pos:]
        if len(self._buf) > self.max_event_bytes:
            raise ValueError("SSE event exceeds the size limit")
        return events

    def flush(self) -> list[SSEEvent]:
        """The stream ended: whatever is left is a final event without its blank line."""
        rest, self._buf = self._buf, b""
        if rest.strip(b"\r\n"):
            return [parse_event(rest)]
        return []

    @property
    def pending(self) -> bytes:
        return self._buf


def encode_event(data: bytes, event: str | None = None) -> bytes:
    """One SSE event as bytes (data must be a single line, e.g. compact JSON)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
