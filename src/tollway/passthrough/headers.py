"""The headers a pass-through call sends upstream.

The client's headers travel, except hop-by-hop ones, Tollway's own (`x-tollway-*`, attribution)
and credentials. With Tollway's key (`/v1/*`) no client credential travels: not the caller's
`Authorization` / `x-api-key`, nor another provider's (`x-goog-api-key`, Azure's `api-key`),
nor `OpenAI-Organization` / `OpenAI-Project` (they would bill the caller's organisation with
Tollway's key, or fail); the provider's configured credentials and `headers` are added instead.
On `/proxy/<kind>/` routes the caller's own credentials for that provider go through untouched,
and nothing of Tollway's is added.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tollway.pipeline.attribution import ATTRIBUTION_HEADERS

if TYPE_CHECKING:
    from tollway.providers.base import Provider

# hop-by-hop headers, what the client computes, and cookies (never meant for a provider)
NOT_FORWARDED = frozenset({
    b"host", b"connection", b"keep-alive", b"content-length", b"transfer-encoding", b"te", b"upgrade",
    b"proxy-authorization", b"proxy-connection", b"accept-encoding", b"trailer", b"cookie",
})
# Every provider's credential headers, and OpenAI's account selectors.
CREDENTIALS = frozenset({
    b"authorization", b"x-api-key", b"api-key", b"x-goog-api-key", b"openai-organization", b"openai-project",
})
# What a caller may send of its own on /proxy/<kind>/ (the Anthropic SDK may send either).
OWN_CREDENTIALS: dict[str, frozenset[bytes]] = {
    "openai": frozenset({b"authorization", b"openai-organization", b"openai-project"}),
    "anthropic": frozenset({b"x-api-key", b"authorization"}),
}
ANTHROPIC_VERSION = "2023-06-01"


def upstream_headers(client: list[tuple[bytes, bytes]], provider: "Provider", byok: bool) -> dict[str, str]:
    own = OWN_CREDENTIALS.get(provider.wire_format, frozenset()) if byok else frozenset()
    out: dict[str, str] = {}
    for k, v in client:
        k = k.lower()
        if k in NOT_FORWARDED or k in ATTRIBUTION_HEADERS or k.startswith(b"x-tollway-"):
            continue
        if k in CREDENTIALS and k not in own:
            continue
        out[k.decode("latin-1")] = v.decode("latin-1")
    if not byok:
        out.update(provider.auth_headers())
        for name, value in provider.settings.headers.items():
            out[name.lower()] = value
    if provider.wire_format == "anthropic":
        out.setdefault("anthropic-version", ANTHROPIC_VERSION)
    return out
