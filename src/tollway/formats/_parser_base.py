"""Shared plumbing for provider StreamParsers: bytes → SSE events → canonical deltas, with the
guarantee that malformed input ends in one StreamError and never in an exception."""

from __future__ import annotations

from tollway.formats.stream import StreamDelta, StreamError
from tollway.sse import SSEDecoder, SSEEvent


class ParserBase:
    __slots__ = ("_decoder", "failed", "finished")

    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self.failed = False  # a StreamError was emitted; everything after it is ignored
        self.finished = False  # a Finish was emitted

    def limit_events(self, max_event_bytes: int) -> None:
        """The largest single upstream event to hold; a larger one ends the stream in an error."""
        self._decoder.max_event_bytes = max_event_bytes

    # subclasses implement these two
    def _handle(self, event: SSEEvent, out: list[StreamDelta]) -> None:
        raise NotImplementedError

    def _end(self, out: list[StreamDelta]) -> None:
        raise NotImplementedError

    def feed(self, event: SSEEvent) -> list[StreamDelta]:
        """One complete SSE event → canonical deltas (often none or one)."""
        if self.failed:
            return []
        out: list[StreamDelta] = []
        try:
            self._handle(event, out)
        except Exception as exc:  # malformed upstream data must not escape as a crash
            out.append(self._fail("api_error", f"malformed upstream stream event: {type(exc).__name__}"))
        return out

    def feed_bytes(self, chunk: bytes) -> list[StreamDelta]:
        """Raw network bytes → canonical deltas (owns an SSEDecoder)."""
        if self.failed:
            return []
        try:
            events = self._decoder.feed(chunk)
        except ValueError as exc:
            return [self._fail("api_error", str(exc))]
        out: list[StreamDelta] = []
        for ev in events:
            out.extend(self.feed(ev))
            if self.failed:
                break
        return out

    def close(self) -> list[StreamDelta]:
        """The upstream stream ended (EOF). Emits the closing deltas, or a StreamError when the
        stream was cut before the provider finished."""
        out: list[StreamDelta] = []
        if self._decoder.pending:
            for ev in self._decoder.flush():
                out.extend(self.feed(ev))
        if self.failed:
            return out
        try:
            self._end(out)
        except Exception as exc:
            out.append(self._fail("api_error", f"malformed upstream stream: {type(exc).__name__}"))
        return out

    def _fail(self, etype: str, message: str) -> StreamError:
        self.failed = True
        return StreamError(etype, message)
