"""Whose API a pass-through request is for, judged from what its client sent.

The Anthropic SDKs always send `anthropic-version`; Message Batches, the legacy Complete API
and everything under `/v1/messages/` are Anthropic's whatever the headers. Gemini's clients
address `models/{model}:verb`: such a request is never forwarded to another provider (its key,
`x-goog-api-key` or `?key=`, is dropped from whatever does go upstream, see `headers` and
`paths`). Everything else is OpenAI's.
"""

from __future__ import annotations

from typing import Literal

Family = Literal["openai", "anthropic", "gemini"]

# The `:verb` of Gemini's model methods (generativelanguage.googleapis.com, v1 and v1beta).
GEMINI_VERBS = frozenset({
    "generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents",
    "batchGenerateContent", "asyncBatchEmbedContent", "predict", "predictLongRunning", "generateAnswer",
    "generateText", "generateMessage", "countMessageTokens", "countTextTokens", "embedText", "batchEmbedText",
})


def _gemini_path(path: str) -> bool:
    last = path.rstrip("/").rpartition("/")[2]
    name, sep, verb = last.partition(":")
    return bool(sep) and verb in GEMINI_VERBS and ("/models/" in path or "/tunedModels/" in path)


def client_family(path: str, headers: dict[bytes, bytes]) -> Family:
    """`path` is the decoded request path (e.g. "/v1/messages/batches")."""
    if b"anthropic-version" in headers:
        return "anthropic"
    if _gemini_path(path):
        return "gemini"
    if path.startswith("/v1/messages/") or path in ("/v1/messages", "/v1/complete"):
        return "anthropic"
    return "openai"
