"""Token usage and the usage record: the two values every other part of Tollway trades in.

`Usage` is provider-neutral. `input_tokens` is the *whole* prompt, cached parts included
(OpenAI's `prompt_tokens` semantics); Anthropic's split usage is summed into it by the
provider module, so cost and stats never have to know which provider a row came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(slots=True)
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int = 0  # prompt tokens read from the provider's cache (part of input_tokens)
    cache_creation_tokens: int = 0  # prompt tokens written to the cache (part of input_tokens)
    reasoning_tokens: int = 0  # part of output_tokens
    estimated: bool = False  # counted locally because the provider reported nothing

    @property
    def total_tokens(self) -> int | None:
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)

    @property
    def known(self) -> bool:
        return self.input_tokens is not None or self.output_tokens is not None


@dataclass(slots=True)
class UsageRecord:
    """One row of the ledger: everything Tollway knows about one call. Never holds a secret."""

    trace_id: str
    ts: float  # unix seconds, request start
    route: str  # e.g. "openai.chat", "anthropic.messages", "passthrough.openai"
    method: str = "POST"
    path: str = ""
    provider: str | None = None  # provider id from config
    model_requested: str | None = None
    model_served: str | None = None
    stream: bool = False
    usage: Usage = field(default_factory=Usage)
    cost_usd: Decimal | None = None
    cost_note: str | None = None  # why cost is null (e.g. "unknown model price")
    latency_ms: float | None = None
    ttft_ms: float | None = None
    status: int = 0
    error_type: str | None = None
    cancelled: bool = False  # client went away before the response finished
    key_id: str | None = None
    project: str | None = None
    source: str | None = None
    customer: str | None = None
    cache: str | None = None  # response cache: hit | semantic_hit | miss | refresh | skip (None: not in play)
    cost_saved_usd: Decimal | None = None  # a cache hit: what the cached answer cost when it was made
