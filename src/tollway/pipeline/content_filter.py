"""Content filters: stages that read or rewrite the model's answer on the canonical path.

A stage that needs the answer's content (output checks of the guard, and later others) sets
`ctx.canonical = True`, which sends the call through the translated path even when client and
provider speak the same format, and appends a `ContentFilter` to `ctx.content_filters`. The
translator passes every batch of canonical stream deltas through the filters in order, calls
`close()` at the end of the stream (what a filter held back is released then), and passes a
whole answer through `whole()`. A filter raising `ContentBlocked` ends the answer: an in-band
error event in the client's stream format, or a 403 in the client's error shape.
"""

from __future__ import annotations

from typing import Protocol

from tollway.formats.canonical import CanonicalResponse


class ContentBlocked(Exception):
    """The answer must not reach the client. `types`: finding type -> count (never values)."""

    def __init__(self, types: dict[str, int], message: str | None = None) -> None:
        self.types = dict(types)
        self.message = message or ("The answer was withheld by Tollway's output check: it contained "
                                   + ", ".join(sorted(self.types)) + ".")
        super().__init__(self.message)


class ContentFilter(Protocol):
    def feed(self, deltas: list) -> list:
        """Canonical stream deltas in, deltas out (may hold some back or rewrite them)."""
        ...

    def close(self) -> list:
        """End of the stream: release whatever was held back."""
        ...

    def whole(self, resp: CanonicalResponse) -> CanonicalResponse:
        """A non-stream answer."""
        ...
