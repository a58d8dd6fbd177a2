"""The exact cache through the official SDKs, in every client format: hits and misses, plain and
streamed, the fast path and the translated one, and what the ledger, stats and metrics say."""

from __future__ import annotations

import pytest

from tests.cache.clients import FORMATS, ask
from tests.cache.conftest import unique, upstream_count
from tests.fakes.provider import FakeProvider
from tests.harness import Tollway

REPLY = "Hello from the fake provider!"


@pytest.mark.parametrize("first_stream", [False, True])
@pytest.mark.parametrize("fmt", FORMATS)
def test_miss_then_hit_plain_and_streamed(cached: Tollway, fake: FakeProvider, fmt: str, first_stream: bool) -> None:
    prompt = unique()
    miss = ask(cached, fmt, prompt, stream=first_stream)
    assert miss.cache == "miss" and miss.text == REPLY
    assert "age" not in miss.headers
    hits = [ask(cached, fmt, prompt, stream=s) for s in (first_stream, not first_stream)]
    for hit in hits:
        assert hit.cache == "hit", hit.headers
        assert hit.text == REPLY and int(hit.headers["age"]) >= 0
        assert (hit.input_tokens, hit.output_tokens) == (miss.input_tokens, miss.output_tokens)
        assert hit.id and hit.id != miss.id  # a fresh id per answer
    assert hits[0].id != hits[1].id
    assert upstream_count(fake, prompt) == 1  # one provider call for three answers
