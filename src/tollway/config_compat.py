"""Config files written for llm-gateway load unchanged: its provider keys map onto Tollway's.

    provider_type = "anthropic" | "openai" | "azure_openai" | "local"   -> kind ("local": openai_compatible)
    endpoint = "https://…"        -> base_url (openai and local: /v1 is added when the URL has no path,
                                     as llm-gateway called {endpoint}/v1/…)
    deployment = "gpt-4o"         -> deployments = { "gpt-4o" = "gpt-4o" } (azure_openai)
    api_version, enabled, [server] port / host: the same names in Tollway
    [key_map.NAME]                -> a [[keys]] entry with its own provider credentials (policy.keymap)
    [sanitization] enabled, scan_credentials, redact_pii, compliance_gate: the same (tollway.guard)

llm-gateway sections whose features Tollway does not have yet are refused with a message that
names the missing feature, instead of pydantic's "extra inputs are not permitted". This module
works on the parsed TOML (plain dicts) before validation, and never reads a secret's value.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

PROVIDER_TYPES = {"anthropic": "anthropic", "openai": "openai", "azure_openai": "azure_openai",
                  "local": "openai_compatible"}

# top-level section -> why it is refused (until the feature lands)
PENDING_SECTIONS: dict[str, str] = {}


def _with_v1(url: str) -> str:
    if not isinstance(url, str) or not url:
        return url
    path = urlsplit(url).path.rstrip("/")
    return url.rstrip("/") + "/v1" if path == "" else url


def _provider(p: dict[str, Any], path: str, problems: list[tuple[str, str]]) -> dict[str, Any]:
    p = dict(p)
    if "provider_type" in p:
        ptype = p.pop("provider_type")
        kind = PROVIDER_TYPES.get(ptype) if isinstance(ptype, str) else None
        if kind is None:
            problems.append((f"{path}.provider_type", "must be one of " + ", ".join(map(repr, PROVIDER_TYPES))
                             + " (or use Tollway's kind)"))
        elif "kind" in p and p["kind"] != kind:
            problems.append((path, "give kind or provider_type, not both"))
        else:
            p["kind"] = kind
    if "endpoint" in p:
        endpoint = p.pop("endpoint")
        if "base_url" in p:
            problems.append((path, "give base_url or endpoint, not both"))
        else:
            p["base_url"] = _with_v1(endpoint) if p.get("kind") in ("openai", "openai_compatible") else endpoint
    if "deployment" in p:
        deployment = p.pop("deployment")
        if "deployments" in p:
            problems.append((path, "give deployments or deployment, not both"))
        elif isinstance(deployment, str) and deployment:
            p["deployments"] = {deployment: deployment}
        else:
            problems.append((f"{path}.deployment", "must be a non-empty string (the Azure deployment name)"))
    return p


def translate(data: dict[str, Any], problems: list[tuple[str, str]]) -> dict[str, Any]:
    """`data` with llm-gateway keys mapped onto Tollway's; refusals appended to `problems`."""
    data = dict(data)
    providers = data.get("providers")
    if isinstance(providers, list):
        data["providers"] = [_provider(p, f"providers[{i}]", problems) if isinstance(p, dict) else p
                             for i, p in enumerate(providers)]
    for section, why in PENDING_SECTIONS.items():
        if section not in data:
            continue
        data.pop(section)
        problems.append((section, why))
    return data
