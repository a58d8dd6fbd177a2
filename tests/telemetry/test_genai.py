"""The finish reasons a span reports for a stream are the ones the stream carried: the
fast scan of relayed blocks (`ResponseMeta.from_stream`) finds exactly what a plain regex
over the same blocks finds, for every provider's stream shape, block boundaries anywhere
between events. (The spans themselves are checked end to end in test_otel.py.)"""

from __future__ import annotations

import re

import orjson
import pytest

from tollway.telemetry.genai import ResponseMeta

REFERENCE = re.compile(rb'"(?:finish_reason|stop_reason|finishReason)"\s*:\s*"([^"]{1,60})"')


def sse(events: list[dict]) -> list[bytes]:
    return [b"data: " + orjson.dumps(e) + b"\n\n" for e in events]


def openai_stream() -> list[bytes]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o-mini"}
    events = [{**base, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]}
              for w in ["Hello", " reason", ' "eason" ', "!"] * 8]  # over 1 KB as one block
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"},
                                       {"index": 1, "delta": {}, "finish_reason": "length"}]})
    return sse(events) + [b"data: [DONE]\n\n"]


def anthropic_stream() -> list[bytes]:
    return [b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","stop_reason":null}}\n\n',
            b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"a reason"}}\n\n',
            b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"}}\n\n']


def gemini_stream() -> list[bytes]:  # Gemini's SSE JSON has spaces after colons
    return [b'data: {"candidates": [{"content": {"parts": [{"text": "Hi"}]}}], "responseId": "r1"}\r\n\r\n',
            b'data: {"candidates": [{"content": {"parts": [{"text": "!"}]}, "finishReason": "STOP"}]}\r\n\r\n']


def odd_stream() -> list[bytes]:  # keys ending like ours, whitespace around the colon, nulls beside values
    return [b'data: {"reason":"x","treason" : "y","finish_reason" :\n "stop","stop_reason":null}\n\n',
            b'data: {"finishReason":null,"stop_reason":"max_tokens","finish_reason":""}\n\n']


@pytest.mark.parametrize("blocks", [openai_stream(), anthropic_stream(), gemini_stream(), odd_stream()],
                         ids=["openai", "anthropic", "gemini", "odd"])
@pytest.mark.parametrize("grouping", [1, 2, 100])
def test_stream_finish_reasons_equal_a_plain_regex(blocks: list[bytes], grouping: int) -> None:
    grouped = [b"".join(blocks[i:i + grouping]) for i in range(0, len(blocks), grouping)]
    meta = ResponseMeta()
    for block in grouped:
        meta.from_stream(block)
    expected = [m.decode() for block in grouped for m in REFERENCE.findall(block)]
    assert meta.finish_reasons == expected
    assert expected  # every stream above ends with a reason
