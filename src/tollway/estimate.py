"""Prompt-token estimates by endpoint, for providers that report no usage (and the demo)."""

from __future__ import annotations

from typing import Any

from tollway.providers.base import Endpoint
from tollway.tokens import TokenCounter


def prompt_tokens(counter: TokenCounter, endpoint: str, model: str, body: dict[str, Any] | None) -> int:
    if not body:
        return 0
    if endpoint == Endpoint.CHAT:
        return counter.count_openai_chat(model, body)[0]
    if endpoint == Endpoint.COMPLETIONS:
        p = body.get("prompt")
        return counter.count_text(model, p if isinstance(p, str) else str(p or ""))[0]
    if endpoint == Endpoint.EMBEDDINGS:
        return counter.count_embeddings_input(model, body.get("input"))[0]
    if endpoint == Endpoint.RESPONSES:
        return counter.count_responses_input(model, body)[0]
    if endpoint in (Endpoint.MESSAGES, Endpoint.COUNT_TOKENS):
        return counter.count_anthropic_messages(model, body)[0]
    return 0
