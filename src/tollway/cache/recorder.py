"""The recorder: captures a missed request's answer on its way to the client, whichever path
the call takes, and says at the end whether it is complete enough to store.

Two doors, so the cache never changes how a miss is served:
- the translated (canonical) path passes it every canonical delta or whole response as a
  content filter (`pipeline.content`), after any guard filter, so it sees what the client sees;
- the byte fast path (client format = provider format) hands it the bytes the client gets
  (`ctx.byte_tap`); they are parsed with the client format's own parser only once the answer
  has ended, in the cache stage's `after()`, when the client already has everything.

Measured (bench/cache_micro.py): forcing the canonical path on every miss would add request and
response translation to the critical path of every miss and drop fields canonical does not
model (logprobs, system_fingerprint, annotations); the tap costs a list append per chunk and
one parse after the response, off the client's latency.

Complete means: a 2xx whose stream reached its terminal event, with no in-band error; bytes
beyond `limit` stop the recording (too large to store).
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.formats.canonical import CanonicalResponse
from tollway.formats.errors import TranslationError
from tollway.formats.stream import Accumulator


class Recorder:
    __slots__ = ("client_fmt", "limit", "_acc", "_whole", "_closed", "_raw", "_raw_len", "_raw_whole", "too_big")

    def __init__(self, client_fmt: str, limit: int) -> None:
        self.client_fmt = client_fmt
        self.limit = limit
        self._acc: Accumulator | None = None
        self._whole: CanonicalResponse | None = None
        self._closed = False
        self._raw: list[bytes] = []
        self._raw_len = 0
        self._raw_whole: bytes | None = None
        self.too_big = False

    # -- content filter (canonical path) ----------------------------------------------------------
    def feed(self, deltas: list[Any]) -> list[Any]:
        acc = self._acc
        if acc is None:
            acc = self._acc = Accumulator()
        for d in deltas:
            acc.feed(d)
        return deltas

    def close(self) -> list[Any]:
        self._closed = True
        return []

    def whole(self, resp: CanonicalResponse) -> CanonicalResponse:
        self._whole = resp
        return resp

    # -- byte tap (fast path) ---------------------------------------------------------------------
    def whole_bytes(self, body: bytes) -> None:
        if len(body) <= self.limit * 4:  # JSON of an answer is larger than its stored form
            self._raw_whole = body
        else:
            self.too_big = True

    def chunk(self, data: bytes) -> None:
        if self.too_big:
            return
        self._raw_len += len(data)
        if self._raw_len > self.limit * 8:  # SSE framing repeats ids and models in every event
            self.too_big = True
            self._raw.clear()
            return
        self._raw.append(data)

    # -- the outcome ------------------------------------------------------------------------------
    def answer(self) -> CanonicalResponse | None:
        """The complete answer, or None (cut off, an in-band error, unreadable, too large)."""
        if self.too_big:
            return None
        if self._whole is not None:
            return self._whole
        if self._acc is not None:
            if not self._closed or self._acc.error is not None:
                return None
            return self._acc.response()
        try:
            if self._raw_whole is not None:
                return _parse_whole(self.client_fmt, self._raw_whole)
            if self._raw:
                return _parse_stream(self.client_fmt, b"".join(self._raw))
        except (orjson.JSONDecodeError, TranslationError, TypeError, AttributeError, KeyError, ValueError):
            return None
        return None


def _module(client_fmt: str) -> Any:
    from tollway.pipeline.translate import CLIENT_MODULES

    return CLIENT_MODULES[client_fmt]


def _parse_whole(client_fmt: str, body: bytes) -> CanonicalResponse:
    obj = orjson.loads(body)
    if client_fmt == "responses":
        from tollway.formats.responses_read import response_to_canonical

        return response_to_canonical(obj)
    return _module(client_fmt).response_to_canonical(obj)


def _parse_stream(client_fmt: str, data: bytes) -> CanonicalResponse | None:
    if client_fmt == "responses":
        return _responses_stream(data)
    parser = _module(client_fmt).StreamParser()
    acc = Accumulator()
    for d in parser.feed_bytes(data):
        acc.feed(d)
    for d in parser.close():
        acc.feed(d)
    if acc.error is not None or not parser.finished:
        return None
    return acc.response()


def _responses_stream(data: bytes) -> CanonicalResponse | None:
    """A Responses stream is complete when its last event is `response.completed`, which carries
    the whole Response."""
    from tollway.formats.responses_read import response_to_canonical
    from tollway.sse import SSEDecoder

    dec = SSEDecoder()
    events = dec.feed(data) + dec.flush()
    if not events:
        return None
    last = orjson.loads(events[-1].data)
    if not isinstance(last, dict) or last.get("type") != "response.completed":
        return None
    return response_to_canonical(last.get("response"))
