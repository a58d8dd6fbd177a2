"""A key's own provider credentials (the seed's key_map): they replace the provider's api_key
in the upstream request of that key's calls, by provider kind, so teams never share provider
keys. A credential that could not be opened (sealed with another TOLLWAY_SECRET_KEY) fails the
call rather than falling back to the provider's shared key."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tollway.errors import ProxyError

if TYPE_CHECKING:
    from tollway.pipeline.auth import KeyInfo
    from tollway.providers.base import Provider


def with_key_credentials(key: "KeyInfo | None", provider: "Provider", headers: dict[str, str]) -> dict[str, str]:
    """`headers` with the key's credential for this provider's kind, if it has one."""
    if key is None or not key.credentials or provider.kind not in key.credentials:
        return headers
    cred = key.credentials[provider.kind]
    if cred is None:
        raise ProxyError("unavailable", f"Key '{key.id}' has its own {provider.kind} credential, but it cannot be "
                                        "opened with this Tollway's TOLLWAY_SECRET_KEY; ask an operator.")
    out = dict(headers)  # providers share their header dicts between calls
    for name in provider.auth_headers():
        out.pop(name, None)
    out.update(provider.auth_headers(cred))
    return out
