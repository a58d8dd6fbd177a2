"""Counting without stalling: a stream's output is counted in O(1) memory, exactly for its
first megabyte and by the measured ratio after it; large counts run off the event loop."""

from __future__ import annotations

import asyncio
import threading

import orjson

from tollway.counting import CountingPool, OutputTally
from tollway.tokens import TokenCounter


def chunk(text: str) -> bytes:
    return orjson.dumps({"choices": [{"delta": {"content": text}}]})


def content(obj: dict) -> str:
    return obj["choices"][0]["delta"]["content"]


def test_a_short_stream_is_not_decoded_until_it_is_counted() -> None:
    calls: list[str] = []
    tally = OutputTally(lambda t: calls.append(t) or len(t)).use(content)
    for word in ("Hello", " there", " friend"):
        tally.add_data(chunk(word))
    assert calls == []  # nothing decoded or tokenised while the stream runs
    assert tally.total() == len("Hello there friend") and calls == ["Hello there friend"]


def test_the_count_matches_the_tokenizer_on_the_whole_text() -> None:
    counter = TokenCounter()
    words = [" token%d" % i for i in range(30_000)]  # ~250 KB of text, split across many drains
    tally = OutputTally(lambda t: counter.count_text("gpt-4o", t)[0], chunk_bytes=16 * 1024).use(content)
    for w in words:
        tally.add_data(chunk(w))
    assert tally.total() == counter.count_text("gpt-4o", "".join(words))[0]


def test_memory_and_tokenizer_work_stay_bounded_on_a_huge_stream() -> None:
    pieces: list[int] = []

    def count(text: str) -> int:
        pieces.append(len(text))
        return len(text) // 4

    tally = OutputTally(count, chunk_bytes=64 * 1024, exact_chars=1024 * 1024).use(content)
    word = " abcdefghijklmnopqrstuvw" * 40  # 960 characters
    for _ in range(30_000):  # ~29 MB of text
        tally.add_data(chunk(word))
    total = tally.total()
    assert max(pieces) <= 64 * 1024 + len(word)  # never more than a chunk tokenised at once
    assert sum(pieces) <= 1024 * 1024 + 64 * 1024  # the tokenizer saw the first megabyte only
    assert abs(total - 30_000 * len(word) // 4) <= 30_000 * len(word) // 400  # the rest by ratio, within 1 %
    assert tally.chars == 30_000 * len(word)


def test_a_malformed_payload_is_skipped_not_raised() -> None:
    tally = OutputTally(len, chunk_bytes=10).use(content)
    tally.add_data(b"{not json")
    tally.add_data(b'{"choices": 5}')
    tally.add_data(chunk("ok"))
    assert tally.total() == 2


def test_the_pool_counts_small_inputs_inline_and_large_ones_on_a_worker_thread() -> None:
    pool = CountingPool(workers=1, inline_chars=100)

    async def main() -> tuple[str, str]:
        small = await pool.run(10, lambda: threading.current_thread().name)
        large = await pool.run(1000, lambda: threading.current_thread().name)
        return small, large

    try:
        small, large = asyncio.run(main())
    finally:
        pool.close()
    assert small == threading.current_thread().name and large.startswith("tollway-count")
