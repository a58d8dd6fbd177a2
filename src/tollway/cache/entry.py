"""A cached answer: the canonical response plus what a hit needs (when it was stored, what it
cost), as compact JSON bytes. The same bytes live in memory and in Redis.

Canonical, not the client's bytes: one entry answers every client format of the same request,
plain or streamed, and a hit is rendered afresh (new ids and timestamps) by the formats module.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import orjson

from tollway.formats.canonical import CanonicalResponse, Text, Thinking, ToolCall
from tollway.usage import Usage

VERSION = 1


@dataclass(slots=True)
class CachedAnswer:
    response: CanonicalResponse
    stored_at: float  # unix seconds
    cost: Decimal | None  # what the answer cost when it was made: a hit saves this much

    def age(self, now: float) -> int:
        return max(0, int(now - self.stored_at))


def _part(p) -> list:
    if p.kind == "text":
        return ["t", p.text]
    if p.kind == "tool_call":
        return ["f", p.id, p.name, p.arguments_json, p.signature]
    return ["h", p.text, p.signature, p.redacted]


def dumps(answer: CachedAnswer) -> bytes:
    r, u = answer.response, answer.response.usage
    return orjson.dumps({
        "v": VERSION, "t": answer.stored_at, "x": None if answer.cost is None else str(answer.cost),
        "m": r.model, "c": [_part(p) for p in r.content], "s": r.stop_reason, "q": r.stop_sequence,
        "r": r.refusal,
        "u": [u.input_tokens, u.output_tokens, u.cached_tokens, u.cache_creation_tokens, u.reasoning_tokens,
              u.estimated],
    })


def loads(data: bytes) -> CachedAnswer | None:
    """None for bytes this version cannot read (an entry written by another Tollway version)."""
    try:
        d = orjson.loads(data)
        if d.get("v") != VERSION:
            return None
        content: list = []
        for p in d["c"]:
            if p[0] == "t":
                content.append(Text(p[1]))
            elif p[0] == "f":
                content.append(ToolCall(p[1], p[2], p[3], p[4]))
            else:
                content.append(Thinking(p[1], p[2], bool(p[3])))
        u = d["u"]
        usage = Usage(u[0], u[1], u[2], u[3], u[4], bool(u[5]))
        resp = CanonicalResponse(id="", model=d["m"], content=content, stop_reason=d["s"], stop_sequence=d["q"],
                                 usage=usage, refusal=d.get("r"))
        return CachedAnswer(resp, float(d["t"]), None if d["x"] is None else Decimal(d["x"]))
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError, AttributeError):
        return None
