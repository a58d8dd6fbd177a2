"""Token usage and the usage record: the two values every other part of Tollway trades in.

`Usage` is provider-neutral. `input_tokens` is the *whole* prompt, cached parts included
(OpenAI's `prompt_tokens` semantics); Anthropic's split usage is summed into it by the
provider module, so cost and stats never have to know which provider a row came from.

Token counts come from JSON Tollway does not control (provider bodies, stream events,
pass-through answers), so every helper that builds a `Usage` from such JSON reads each count
through one `CountReader`: a count is a whole number from 0 to `MAX_TOKENS`; anything else
(negative, fractional, a string, a bool, absurdly large) is refused (the field is unknown, so the
call is counted locally or priced as unknown) and named in `Usage.note`, which accounting adds
to the record's `cost_note`. A malformed count never reaches the ledger and never costs a record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

# More than any model's context window plus its longest answer (the largest windows are ~10M
# tokens): a count beyond it is not a real call's, and would price a call at thousands of dollars.
MAX_TOKENS = 10_000_000

# Longest text a record (and so an access-log line) keeps of each field a client or upstream
# controls; longer values are cut and end with "…". A request line can be 64 KiB and every
# request without a key is logged, so without these one client could fill the disk.
MAX_PATH_CHARS = 1024
MAX_MODEL_CHARS = 256
MAX_ATTRIBUTION_CHARS = 200  # project, source, customer, key id
MAX_NOTE_CHARS = 256  # error type, cost note, route, method, provider


def clip(value: str | None, limit: int) -> str | None:
    """`value` cut to `limit` characters (the last one "…" when cut)."""
    if value is None or len(value) <= limit:
        return value
    return value[: limit - 1] + "…"


@dataclass(slots=True)
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int = 0  # prompt tokens read from the provider's cache (part of input_tokens)
    cache_creation_tokens: int = 0  # prompt tokens written to the cache (part of input_tokens)
    reasoning_tokens: int = 0  # part of output_tokens
    estimated: bool = False  # counted locally because the provider reported nothing
    note: str | None = None  # counts the provider reported that were refused or corrected, and why

    @property
    def total_tokens(self) -> int | None:
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)

    @property
    def known(self) -> bool:
        return self.input_tokens is not None or self.output_tokens is not None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


class CountReader:
    """Reads token counts from untrusted JSON, remembering every value it refused.

        read = CountReader()
        usage = read.finish(Usage(input_tokens=read(u, "prompt_tokens"), ...))
    """

    __slots__ = ("problems",)

    def __init__(self) -> None:
        self.problems: list[str] = []

    def __call__(self, obj: Any, key: str) -> int | None:
        """`obj[key]` as a token count; None when absent, null or refused."""
        if not isinstance(obj, dict):
            return None
        value = obj.get(key)
        if value is None:
            return None
        if type(value) is int:  # not bool: `type() is`, not isinstance
            if 0 <= value <= MAX_TOKENS:
                return value
        elif type(value) is float and value.is_integer() and 0 <= value <= MAX_TOKENS:
            return int(value)  # 21.0: a whole number written as a float
        self.problems.append(f"{key}={_shown(value)}")
        return None

    def count(self, obj: Any, key: str) -> int:
        """Like calling the reader, but 0 for an absent or refused count (the detail fields)."""
        v = self(obj, key)
        return 0 if v is None else v

    def finish(self, usage: Usage) -> Usage:
        """Cap counts that contradict each other, and say in `usage.note` what was refused or capped."""
        capped: list[str] = []
        if usage.input_tokens is not None and usage.cached_tokens + usage.cache_creation_tokens > usage.input_tokens:
            capped.append("cache tokens above input tokens")
            usage.cached_tokens = min(usage.cached_tokens, usage.input_tokens)
            usage.cache_creation_tokens = min(usage.cache_creation_tokens, usage.input_tokens - usage.cached_tokens)
        if usage.output_tokens is not None and usage.reasoning_tokens > usage.output_tokens:
            capped.append("reasoning tokens above output tokens")
            usage.reasoning_tokens = usage.output_tokens
        if self.problems:
            usage.note = join_notes(usage.note, "invalid token counts from the provider, not used: "
                                    + ", ".join(self.problems))
        if capped:
            usage.note = join_notes(usage.note, "token counts from the provider capped: " + ", ".join(capped))
        return usage


def join_notes(*notes: str | None) -> str | None:
    """Notes joined with '; ', each once, in order; None when there are none."""
    out: list[str] = []
    for n in notes:
        if n and n not in out:
            out.append(n)
    return "; ".join(out) if out else None


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
    team: str | None = None  # the key's team
    guard_findings: str | None = None  # JSON: sanitizer finding types and counts (never values)
    cache: str | None = None  # response cache: hit | semantic_hit | miss | refresh | skip (None: not in play)
    cost_saved_usd: Decimal | None = None  # a cache hit: what the cached answer cost when it was made
    deployment: str | None = None  # "provider:model" that served (or was tried last)
    attempts: int = 0  # provider calls made (retries and fallbacks included)
    failure: str | None = None  # "customer": the client got an error; "mitigated": served after a failed attempt
    attempt_errors: str | None = None  # JSON list: "deployment: status reason" of each failed attempt
