"""Token counting that never stalls the event loop, whatever a request makes Tollway count.

Two tools:

- `OutputTally` counts a stream's output as it passes, in O(1) memory. The relay hands it
  the raw payload of each content event; nothing is parsed while the payloads stay under
  `chunk_bytes` (the common case: a short stream whose usage arrives, when the tally is
  thrown away unread). Past that, the held payloads are decoded and tokenised in one piece,
  and forgotten. Tokenising is exact for the first `exact_chars` characters; after that the
  rest is extrapolated with the tokens-per-character ratio measured so far, so a 300 MB
  stream costs one JSON decode of its content events and no more tokeniser time than a
  1 MB one. At most `chunk_bytes` of text is tokenised on the event loop at once.
- `CountingPool` runs counts of large inputs (a 30 MB prompt to estimate or to answer a
  `count_tokens` call) in a small dedicated thread pool (tiktoken releases the GIL while it
  encodes); small inputs are counted inline, where a thread hop would cost more than it saves.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson

T = TypeVar("T")
Extract = Callable[[Any], str]  # a decoded event payload → the output text it carries
CountText = Callable[[str], int]

CHUNK_BYTES = 64 * 1024
EXACT_CHARS = 1024 * 1024
INLINE_CHARS = 64 * 1024  # CountingPool: inputs smaller than this are counted on the loop


def approx_tokens(text: str) -> int:
    """About four UTF-8 bytes per token: the fallback when no tokenizer is given."""
    return (len(text.encode("utf-8", "replace")) + 3) // 4


class _SSEBlock:
    """Raw SSE events held by a tally (see `OutputTally.add_sse`)."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def payloads(self) -> list[bytes]:
        from tollway.sse import SSEDecoder

        dec = SSEDecoder()
        events = dec.feed(self.raw) + dec.flush()
        return [ev.data for ev in events if ev.data and ev.data != b"[DONE]"]


class OutputTally:
    """A running count of the output tokens of one stream. See the module docstring."""

    __slots__ = ("_count", "_extract", "_pending", "_pending_bytes", "_carry", "_tokens", "_exact_chars",
                 "_exact_tokens", "chars", "size", "chunk_bytes", "exact_chars")

    def __init__(self, count: CountText | None = None, *, chunk_bytes: int = CHUNK_BYTES,
                 exact_chars: int = EXACT_CHARS) -> None:
        self._count = count or approx_tokens
        self._extract: Extract | None = None
        self._pending: list[bytes | str | _SSEBlock] = []
        self._pending_bytes = 0
        self._carry = ""  # the tail of the last piece, after its last space: counted with the next
        self._tokens = 0
        self._exact_chars = 0
        self._exact_tokens = 0
        self.chars = 0  # characters of output drained so far
        self.size = 0  # bytes (payloads) and characters (text) given so far
        self.chunk_bytes = chunk_bytes
        self.exact_chars = exact_chars

    def use(self, extract: Extract) -> "OutputTally":
        """How to get text out of the payloads given to `add_data` (set once, by the watcher)."""
        self._extract = extract
        return self

    def add_data(self, data: bytes) -> None:
        """The raw JSON payload of an event that may carry output text (decoded only if needed)."""
        self._pending.append(data)
        self._pending_bytes += len(data)
        self.size += len(data)
        if self._pending_bytes >= self.chunk_bytes:
            self._drain(final=False)

    def add_sse(self, block: bytes) -> None:
        """Whole SSE events as received (a relay's run of content events): their `data:`
        payloads are framed out only if they are ever counted."""
        self._pending.append(_SSEBlock(block))
        self._pending_bytes += len(block)
        self.size += len(block)
        if self._pending_bytes >= self.chunk_bytes:
            self._drain(final=False)

    def add_text(self, text: str) -> None:
        if text:
            self._pending.append(text)
            self._pending_bytes += len(text)
            self.size += len(text)
            if self._pending_bytes >= self.chunk_bytes:
                self._drain(final=False)

    def total(self) -> int:
        """Output tokens of everything seen (drains what is held)."""
        self._drain(final=True)
        return self._tokens

    def _text(self) -> str:
        parts: list[str] = [self._carry]
        extract = self._extract
        for item in self._pending:
            if isinstance(item, str):
                parts.append(item)
            elif extract is None:
                continue
            for payload in item.payloads() if isinstance(item, _SSEBlock) else (item,):
                try:
                    obj = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    continue
                try:
                    parts.append(extract(obj))
                except (AttributeError, TypeError, KeyError, IndexError):
                    continue  # a payload of an unexpected shape carries no countable text
        self._pending = []
        self._pending_bytes = 0
        return "".join(parts)

    def _drain(self, final: bool) -> None:
        text = self._text()
        self._carry = ""
        if not final:
            cut = text.rfind(" ")
            if cut > 0 and len(text) - cut < self.chunk_bytes:  # a word may go on in the next piece
                text, self._carry = text[:cut], text[cut:]
        if not text:
            return
        self.chars += len(text)
        exact_room = min(max(self.exact_chars - self._exact_chars, 0), self.chunk_bytes)
        exact, rest = text[:exact_room], text[exact_room:]
        if exact:
            n = self._count(exact)
            self._exact_chars += len(exact)
            self._exact_tokens += n
            self._tokens += n
        if rest:
            ratio = self._exact_tokens / self._exact_chars if self._exact_chars else 0.25
            self._tokens += math.ceil(len(rest) * ratio)


class CountingPool:
    """Runs large token counts in worker threads, a bounded number at a time (the rest queue)."""

    def __init__(self, workers: int = 2, inline_chars: int = INLINE_CHARS) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tollway-count")
        self.inline_chars = inline_chars

    async def run(self, size: int, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)`, inline when `size` (characters or bytes of input) is small, else off the loop."""
        if size < self.inline_chars:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
