"""Bodies about to be stored lose what the scanner finds, however the bytes spell it."""

from __future__ import annotations

import orjson

from tollway.guard.scanner import Scanner
from tollway.guard.stored import redact_stored

SCANNER = Scanner(credentials=True)
KEY = "AKIA" + "QYLPMN5HHHFPZAM2"  # FAKE, in AWS's format


def test_json_escapes_do_not_hide_a_key() -> None:
    body = b'{"messages":[{"role":"user","content":"x \\u0041KIA' + KEY[4:].encode() + b' y"}]}'
    out = redact_stored(SCANNER, body)
    assert orjson.loads(out)["messages"][0]["content"] == "x [REDACTED:AWS_ACCESS_KEY] y"


def test_a_gemini_json_array_stream_split_mid_key() -> None:
    chunks = [{"candidates": [{"content": {"parts": [{"text": t}]}}]} for t in ("key ", KEY[:6], KEY[6:], " ok")]
    out = orjson.loads(redact_stored(SCANNER, orjson.dumps(chunks)))
    texts = [c["candidates"][0]["content"]["parts"][0]["text"] for c in out]
    assert texts == ["key ", "[REDACTED:AWS_ACCESS_KEY]", "", " ok"]


def test_sse_events_are_kept_as_events_and_unrelated_bytes_untouched() -> None:
    sse = (b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"' + KEY[:8].encode()
           + b'"}\n\nevent: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"'
           + KEY[8:].encode() + b' done"}\n\n')
    out = redact_stored(SCANNER, sse)
    assert out.count(b"event: response.output_text.delta\n") == 2 and KEY[:8].encode() not in out
    assert b"[REDACTED:AWS_ACCESS_KEY]" in out and b" done" in out
    plain = b'data: {"delta":"nothing to see"}\n\n'
    assert redact_stored(SCANNER, plain) == plain
