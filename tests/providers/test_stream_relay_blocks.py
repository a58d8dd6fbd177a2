"""The relay's block path (runs of plain Chat Completions chunks relayed unframed) must send
the very bytes, and leave the watcher in the very state, that framing every event does —
whatever the network chunking, and whatever the answer text looks like."""

from __future__ import annotations

import random

import orjson
import pytest

from tollway.counting import OutputTally
from tollway.providers.base import StreamRelay
from tollway.providers.openai import ChatStreamWatcher

_BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o-mini-2024-07-18"}
# answer text that spells the markers the block path looks for (escaped quotes in JSON)
_WORDS = ['say "usage"', "!", " data: [DONE]", ' "error"', " é", "\n\n", "x"]


def _stream(null_usage: bool, error: bool) -> bytes:
    events = [{**_BASE, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    events += [{**_BASE, "choices": [{"index": 0, "delta": {"content": w}}]} for w in _WORDS * 6]
    if error:
        events.append({"error": {"message": "overloaded", "type": "server_error"}})
    events.append({**_BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if null_usage:
        for e in events:
            e["usage"] = None
    events.append({**_BASE, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 40, "total_tokens": 43}})
    body = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events[:5])
    body += b": keep-alive\n\n"  # a comment between chunks
    body += b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events[5:])
    return body + b"data: [DONE]\n\n"


def _relay(chunks: list[bytes], strip: bool, blocks: bool):
    watcher = ChatStreamWatcher(strip, OutputTally())
    relay = StreamRelay(watcher)
    if not blocks:
        relay._plain_until = None  # every event framed: the reference
    out = b"".join(relay.feed(c) for c in chunks) + relay.close()
    return out, watcher.usage, watcher.first_token, watcher.error_type, watcher.model_served, watcher.done, \
        watcher.tally.total()


@pytest.mark.parametrize("null_usage", [False, True])
@pytest.mark.parametrize("strip", [False, True])
@pytest.mark.parametrize("error", [False, True])
def test_blocks_match_framing_for_any_chunking(null_usage: bool, strip: bool, error: bool) -> None:
    body = _stream(null_usage, error)
    rng = random.Random(f"{null_usage}{strip}{error}")
    chunkings = [[body], [body[i:i + 1] for i in range(len(body))]]
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(body)), rng.randint(1, 15)))
        chunkings.append([body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)])
    for chunks in chunkings:
        assert _relay(chunks, strip, True) == _relay(chunks, strip, False)
    out, usage, *_ = _relay([body], strip, True)
    assert usage is not None and usage.output_tokens == 40
    if not error:  # an error event is relayed as it came, usage: null and all
        assert (b'"usage":null' in out) == (null_usage and not strip)


def test_block_of_content_is_sent_as_it_came() -> None:
    body = _stream(False, False)
    first = body.index(b"\n\n", body.index(b"\n\n") + 2) + 2  # the role-only chunk and the first content
    watcher = ChatStreamWatcher(False, OutputTally())
    relay = StreamRelay(watcher)
    assert relay.feed(body[:first]) == body[:first]
    size = watcher.tally.size  # the first chunk's payload
    middle = body[first: body.index(b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":'
                                     b'"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{},"finish_reason"')]
    assert relay.feed(middle) is middle  # one block: passed on as it came, not framed and re-joined
    assert watcher.tally.size == size + len(middle)
