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
    if endpoint == Endpoint.GENERATE_CONTENT:
        return _gemini_prompt(counter, model, body)
    if endpoint == Endpoint.EMBED_CONTENT:
        return counter.count_embeddings_input(model, gemini_embed_texts(body))[0]
    return 0


def gemini_embed_texts(body: dict[str, Any]) -> list[str]:
    """The texts of an embedContent body, or of each request of a batchEmbedContents body."""
    reqs = body.get("requests")
    items = reqs if isinstance(reqs, list) else [body]
    out: list[str] = []
    for r in items:
        content = r.get("content") if isinstance(r, dict) else None
        parts = content.get("parts") if isinstance(content, dict) else None
        texts = [p["text"] for p in parts or () if isinstance(p, dict) and isinstance(p.get("text"), str)]
        out.append(" ".join(texts))
    return out


def _gemini_prompt(counter: TokenCounter, model: str, body: dict[str, Any]) -> int:
    """A generateContent body, counted as the equivalent Chat Completions request."""
    from tollway.formats import gemini as f_gemini
    from tollway.formats import openai_chat as f_openai
    from tollway.formats.errors import TranslationError

    try:
        chat, _ = f_openai.request_from_canonical(f_gemini.request_to_canonical(body, model), model)
    except (TranslationError, TypeError, ValueError):
        import orjson

        return counter.count_text(model, orjson.dumps(body).decode())[0]
    return counter.count_openai_chat(model, chat)[0]
