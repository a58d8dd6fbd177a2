"""FilterChain: filters apply in order; close() flushes each through the ones after it."""

from __future__ import annotations

from tollway.formats.canonical import CanonicalResponse
from tollway.formats.stream import TextDelta
from tollway.pipeline.content import FilterChain


class HoldLast:
    """Holds back the last delta of every feed (as a cross-chunk matcher would)."""

    def __init__(self) -> None:
        self.held: list = []

    def feed(self, deltas: list) -> list:
        out, self.held = [*self.held, *deltas], []
        if out:
            self.held = [out.pop()]
        return out

    def close(self) -> list:
        out, self.held = self.held, []
        return out

    def whole(self, resp: CanonicalResponse) -> CanonicalResponse:
        return resp


class Upper:
    def feed(self, deltas: list) -> list:
        return [TextDelta(d.index, d.text.upper()) for d in deltas]

    def close(self) -> list:
        return []

    def whole(self, resp: CanonicalResponse) -> CanonicalResponse:
        return resp


def test_order_and_flush_through_later_filters() -> None:
    chain = FilterChain([HoldLast(), Upper()])
    assert [d.text for d in chain.feed([TextDelta(0, "a"), TextDelta(0, "b")])] == ["A"]
    assert [d.text for d in chain.feed([TextDelta(0, "c")])] == ["B"]
    # what the first filter still held is released through the second one
    assert [d.text for d in chain.close()] == ["C"]
