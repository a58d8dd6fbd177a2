"""SSE framing: any split of a stream into chunks gives the same events, byte for byte, in
one linear pass; an event that never ends is refused at the limit instead of held."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.sse import EventTooLarge, SSEDecoder

line_end = st.sampled_from(["\n", "\r\n", "\r"])
field = st.one_of(
    st.tuples(st.just("data"), st.text(alphabet=st.characters(blacklist_characters="\r\n"), max_size=20)),
    st.tuples(st.just("event"), st.sampled_from(["message_delta", "error", "x y"])),
    st.tuples(st.just(""), st.text(alphabet="abc :", max_size=8)),  # a comment line
)


@st.composite
def streams(draw) -> bytes:
    out = []
    for _ in range(draw(st.integers(0, 8))):
        lines = draw(st.lists(field, min_size=1, max_size=4))
        for name, value in lines:
            out.append(f"{name}: {value}" if name else f":{value}")
            out.append(draw(line_end))
        out.append(draw(line_end))  # the blank line that ends the event
    return "".join(out).encode("utf-8", "surrogatepass")


def decode(data: bytes, cuts: list[int], keep_empty: bool) -> list:
    d = SSEDecoder(keep_empty=keep_empty)
    events = []
    prev = 0
    for c in sorted({c % (len(data) + 1) for c in cuts}):
        events += d.feed(data[prev:c])
        prev = c
    events += d.feed(data[prev:])
    return events + d.flush()


@settings(max_examples=300, deadline=None)
@given(data=streams(), cuts=st.lists(st.integers(0, 2000), max_size=20))
def test_any_chunking_gives_the_same_events(data: bytes, cuts: list[int]) -> None:
    whole = decode(data, [], keep_empty=True)
    split = decode(data, cuts, keep_empty=True)
    assert [(e.raw, e.event, e.data) for e in split] == [(e.raw, e.event, e.data) for e in whole]
    assert b"".join(e.raw for e in split) == data  # a relay passes every byte on
    fielded = decode(data, cuts, keep_empty=False)
    assert [e.data for e in fielded] == [e.data for e in whole if e.raw.strip(b"\r\n")]


def test_a_crlf_split_across_chunks_is_one_line_end() -> None:
    d = SSEDecoder()
    assert d.feed(b"data: a\r\n\r") == []  # the last CR may be the start of a CRLF
    [ev] = d.feed(b"\ndata: b\r\n\r\n")[:1]
    assert ev.raw == b"data: a\r\n\r\n" and ev.data == b"a"


def test_the_usual_shapes_parse_like_the_general_case() -> None:
    d = SSEDecoder()
    evs = d.feed(b"event: message_delta\ndata: {\"a\":1}\n\ndata: [DONE]\n\ndata:x\n\n:c\ndata: y\ndata: z\n\n")
    assert [(e.event, e.data) for e in evs] == [("message_delta", b'{"a":1}'), (None, b"[DONE]"), (None, b"x"),
                                                (None, b"y\nz")]


def test_an_event_that_never_ends_is_refused_at_the_limit() -> None:
    d = SSEDecoder(max_event_bytes=1000)
    d.feed(b"data: " + b"a" * 500)
    with pytest.raises(EventTooLarge):
        for _ in range(10):
            d.feed(b"a" * 100 + b"\n")  # single line ends, never a blank line


def test_holding_an_unfinished_event_is_linear() -> None:
    """50 MB in 64 KB chunks without a blank line: each chunk is appended, never re-joined (the
    old buffer-and-rescan cost 15 s); the held parts are joined once, when the event ends."""
    d = SSEDecoder(max_event_bytes=64 * 1024 * 1024)
    chunk = b"a" * 65536
    assert d.feed(b"data: ") == []
    for _ in range(800):
        assert d.feed(chunk) == []
    [ev] = d.feed(b"\n\n")
    assert len(ev.data) == 800 * 65536
