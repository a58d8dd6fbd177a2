"""Provider kinds → classes; builds each configured provider with its transport."""

from __future__ import annotations

from typing import Any

from tollway.config import ProviderSettings
from tollway.estimate import prompt_tokens
from tollway.providers.anthropic import AnthropicProvider
from tollway.providers.base import Endpoint, Provider
from tollway.providers.demo import DemoProvider, DemoTransport
from tollway.providers.openai import OpenAIProvider
from tollway.providers.transport import HttpTransport, Transport
from tollway.tokens import TokenCounter


def _demo_transport(tokens: TokenCounter) -> DemoTransport:
    def count_prompt(endpoint: Endpoint, model: str, body: dict[str, Any]) -> int:
        return prompt_tokens(tokens, endpoint, model, body)

    def count_text(text: str) -> int:
        return tokens.count_text("gpt-4o-mini", text)[0]

    return DemoTransport(count_prompt, count_text)


def build_provider(ps: ProviderSettings, http: HttpTransport, tokens: TokenCounter) -> tuple[Provider, Transport]:
    if ps.kind == "openai":
        return OpenAIProvider(ps), http
    if ps.kind == "anthropic":
        return AnthropicProvider(ps), http
    if ps.kind == "demo":
        return DemoProvider(ps), _demo_transport(tokens)
    raise ValueError(f"unknown provider kind {ps.kind!r}")
