"""Tollway's own provider credentials never reach a client.

A provider that rejects a key may echo it in the error body ("Incorrect API key provided:
sk-…"), a misconfigured gateway in front of it may echo whole request headers. Every provider
error body is scrubbed before it is relayed or translated: the provider's API key, its credential
profiles' keys and the values of its configured `headers` are replaced by "[redacted]". Only error bodies are scanned: they are
small and rare, so this costs nothing on the success path.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tollway.providers.base import Provider

REDACTED = b"[redacted]"
_MIN_SECRET = 8  # shorter configured header values ("true", "2023-06-01") are not secrets


def provider_secrets(provider: "Provider") -> list[bytes]:
    settings = provider.settings
    found: list[bytes] = []
    if settings.api_key is not None:
        found.append(settings.api_key.get_secret_value().encode("utf-8"))
    for profile in getattr(settings, "profiles", ()):  # [[providers.profiles]]
        if profile.api_key is not None:
            found.append(profile.api_key.get_secret_value().encode("utf-8"))
        elif profile.api_key_env and os.environ.get(profile.api_key_env):
            found.append(os.environ[profile.api_key_env].encode("utf-8"))
    for value in settings.headers.values():
        v = value.strip()
        if v.lower().startswith("bearer "):
            v = v[7:].strip()
        found.append(v.encode("utf-8"))
    # longest first, so a secret that contains another is replaced whole
    return sorted((s for s in found if len(s) >= _MIN_SECRET), key=len, reverse=True)


def scrub(body: bytes, provider: "Provider | None") -> bytes:
    """`body` with every credential of `provider` replaced by "[redacted]"."""
    if provider is None or not body:
        return body
    for secret in provider_secrets(provider):
        if secret in body:
            body = body.replace(secret, REDACTED)
    return body
