"""Content filters: how a stage sees, changes or stops the model's answer (output guardrails,
the cache recorder).

Content features work on the canonical path. A stage's `before()` sets `ctx.canonical = True`
(the call is then translated even when the client and the provider speak the same format, so
the answer arrives as canonical deltas whatever the provider) and appends a `ContentFilter`
to `ctx.content_filters`. The translator passes every stream delta through the filters in
order before the client's writer renders it, and every whole answer through `whole()`.
A filter may hold deltas back (a match that could still span the next chunk) and release
them later, rewrite them, or raise `ContentBlocked` to end the answer with an error in the
client's format (an in-band error event on a stream, without the success terminator).
The byte fast path stays untouched when no stage asks for content.
"""

from __future__ import annotations

from typing import Any, Protocol

from tollway.formats.canonical import CanonicalResponse


class ContentBlocked(Exception):
    """The answer must not reach the client. `message` is shown to it; never put content in it."""

    def __init__(self, message: str, error_type: str = "content_blocked") -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type


class ContentFilter(Protocol):
    def feed(self, deltas: list[Any]) -> list[Any]:
        """Canonical stream deltas in (tollway.formats.stream), deltas to send on out."""
        ...

    def close(self) -> list[Any]:
        """The stream ended normally: release whatever is still held back."""
        ...

    def whole(self, resp: CanonicalResponse) -> CanonicalResponse:
        """A non-streamed answer."""
        ...


class ByteTap(Protocol):
    """Sees the answer's bytes on the fast path (client format = provider format), exactly as the
    client gets them: `ctx.byte_tap`. For a stage that must see every answer (the cache recorder)
    without forcing the canonical path; it must be cheap (it runs per stream block)."""

    def whole_bytes(self, body: bytes) -> None:
        """A whole 2xx answer body."""
        ...

    def chunk(self, data: bytes) -> None:
        """Stream bytes relayed to the client."""
        ...


class FilterChain:
    """The filters of one request, applied in order; `close()` flushes each in turn through
    the ones after it."""

    __slots__ = ("_filters",)

    def __init__(self, filters: list[ContentFilter]) -> None:
        self._filters = filters

    def feed(self, deltas: list[Any]) -> list[Any]:
        for f in self._filters:
            deltas = f.feed(deltas)
        return deltas

    def close(self) -> list[Any]:
        out: list[Any] = []
        for i, f in enumerate(self._filters):
            tail = f.close()
            for later in self._filters[i + 1:]:
                tail = later.feed(tail)
            out.extend(tail)
        return out

    def whole(self, resp: CanonicalResponse) -> CanonicalResponse:
        for f in self._filters:
            resp = f.whole(resp)
        return resp
