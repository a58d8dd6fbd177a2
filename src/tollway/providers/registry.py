"""Provider kinds → classes; builds each configured provider with its transport."""

from __future__ import annotations

from typing import Any

from tollway.config import ProviderSettings
from tollway.counting import CountingPool
from tollway.estimate import prompt_tokens
from tollway.providers.anthropic import AnthropicProvider
from tollway.providers.azure_openai import AzureOpenAIProvider
from tollway.providers.base import Endpoint, Provider
from tollway.providers.demo import DemoProvider, DemoTransport
from tollway.providers.gemini import GeminiProvider
from tollway.providers.openai import OpenAIProvider
from tollway.providers.openai_compatible import OpenAICompatibleProvider
from tollway.providers.transport import HttpTransport, Transport
from tollway.tokens import TokenCounter

# kinds that talk HTTP through the shared transport
HTTP_PROVIDERS: dict[str, Any] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "azure_openai": AzureOpenAIProvider,
    "gemini": GeminiProvider,
    "openai_compatible": OpenAICompatibleProvider,
}


def _demo_transport(tokens: TokenCounter, counting: CountingPool | None) -> DemoTransport:
    def count_prompt(endpoint: Endpoint, model: str, body: dict[str, Any]) -> int:
        return prompt_tokens(tokens, endpoint, model, body)

    def count_text(text: str) -> int:
        return tokens.count_text("gpt-4o-mini", text)[0]

    return DemoTransport(count_prompt, count_text, run=counting.run if counting is not None else None)


def build_provider(ps: ProviderSettings, http: HttpTransport, tokens: TokenCounter,
                   counting: CountingPool | None = None) -> tuple[Provider, Transport]:
    cls = HTTP_PROVIDERS.get(ps.kind)
    if cls is not None:
        return cls(ps), http
    if ps.kind == "demo":
        return DemoProvider(ps), _demo_transport(tokens, counting)
    raise ValueError(f"unknown provider kind {ps.kind!r}")
