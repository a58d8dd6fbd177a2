"""Stop-reason mapping tables between the canonical enum and each wire format.

canonical      OpenAI chat       Anthropic        Gemini                       Responses
end_turn       stop              end_turn         STOP                         completed
stop_sequence  stop              stop_sequence    STOP                         completed
tool_use       tool_calls        tool_use         STOP (+ functionCall part)   completed
max_tokens     length            max_tokens       MAX_TOKENS                   incomplete/max_output_tokens
content_filter content_filter    refusal          SAFETY, RECITATION, ...      incomplete/content_filter
error          stop              end_turn         MALFORMED_FUNCTION_CALL, ... failed

Lossy spots: OpenAI and Gemini do not tell a stop sequence from a natural stop, so those
come back as end_turn; Anthropic `pause_turn` (server tools) becomes end_turn.
"""

from __future__ import annotations

FROM_OPENAI = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "content_filter",
}
TO_OPENAI = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "content_filter": "content_filter",
    "error": "stop",
}

FROM_ANTHROPIC = {
    "end_turn": "end_turn",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_use",
    "pause_turn": "end_turn",
    "refusal": "content_filter",
    "model_context_window_exceeded": "max_tokens",
}
TO_ANTHROPIC = {
    "end_turn": "end_turn",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_use",
    "content_filter": "refusal",
    "error": "end_turn",
}

FROM_GEMINI = {
    "STOP": "end_turn",
    "MAX_TOKENS": "max_tokens",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
    "MISSING_THOUGHT_SIGNATURE": "error",
    "NO_IMAGE": "error",
    "IMAGE_OTHER": "error",
    "OTHER": "error",
    "FINISH_REASON_UNSPECIFIED": "end_turn",
}
TO_GEMINI = {
    "end_turn": "STOP",
    "stop_sequence": "STOP",
    "tool_use": "STOP",
    "max_tokens": "MAX_TOKENS",
    "content_filter": "SAFETY",
    "error": "OTHER",
}


def from_openai(reason: object) -> str | None:
    return FROM_OPENAI.get(reason, "end_turn") if isinstance(reason, str) else None


def to_openai(stop: str | None) -> str:
    return TO_OPENAI.get(stop or "end_turn", "stop")


def from_anthropic(reason: object) -> str | None:
    return FROM_ANTHROPIC.get(reason, "end_turn") if isinstance(reason, str) else None


def to_anthropic(stop: str | None) -> str:
    return TO_ANTHROPIC.get(stop or "end_turn", "end_turn")


def from_gemini(reason: object, has_function_call: bool = False) -> str | None:
    if not isinstance(reason, str):
        return None
    stop = FROM_GEMINI.get(reason, "end_turn")
    if stop == "end_turn" and has_function_call:
        return "tool_use"
    return stop


def to_gemini(stop: str | None) -> str:
    return TO_GEMINI.get(stop or "end_turn", "STOP")


def to_responses(stop: str | None) -> tuple[str, str | None]:
    """→ (Response.status, incomplete_details.reason)."""
    if stop == "max_tokens":
        return "incomplete", "max_output_tokens"
    if stop == "content_filter":
        return "incomplete", "content_filter"
    if stop == "error":
        return "failed", None
    return "completed", None
