"""llm-gateway's config file (tests/fixtures/llm_gateway/config.example.toml, verbatim from the seed)
loads unchanged: provider_type, endpoint, deployment, api_version, enabled, [server] port/host."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from tollway.config import ConfigError, build_settings, load_settings

SEED = Path(__file__).resolve().parent / "fixtures" / "llm_gateway" / "config.example.toml"


def seed_without_pending_sections() -> dict[str, Any]:
    """The seed's whole file: nothing in it is refused any more."""
    return tomllib.loads(SEED.read_text())


def test_the_seed_file_verbatim_loads() -> None:
    s = load_settings(SEED, env={})
    assert len(s.providers) == 4 and s.sanitization.enabled
    assert [k.name for k in s.keys if k.credentials] == ["Team Alpha"]


def test_the_seed_key_map_becomes_keys_with_their_own_provider_credentials() -> None:
    s = build_settings(seed_without_pending_sections(), {})
    mapped = [k for k in s.keys if k.credentials]
    assert len(mapped) == 1 and mapped[0].key.get_secret_value() == "my-team-key"
    assert mapped[0].name == "Team Alpha" and mapped[0].id == "team-alpha"
    assert mapped[0].credentials["openai"].get_secret_value() == "sk-..."
    assert mapped[0].credentials["anthropic"].get_secret_value() == "sk-ant-..."
    assert "my-team-key" not in repr(s) and "sk-ant" not in repr(s)


def test_key_map_problems_never_name_the_key() -> None:
    raw = {"key_map": {"secret-client-key": {"label": "A", "openai_key": "${MISSING_VAR}", "rpm": -1}}}
    with pytest.raises(ConfigError) as ei:
        build_settings(raw, {})
    text = "\n".join(ei.value.problems)
    assert "MISSING_VAR" in text and "secret-client-key" not in text


def test_the_seed_providers_map_onto_tollway_kinds() -> None:
    s = build_settings(seed_without_pending_sections(), {})
    assert (s.server.host, s.server.port) == ("127.0.0.1", 8930)
    by_id = {p.id: p for p in s.providers}
    assert [p.id for p in s.providers] == ["anthropic", "openai", "azure", "ollama"]
    assert by_id["anthropic"].kind == "anthropic" and by_id["anthropic"].base_url == "https://api.anthropic.com"
    assert by_id["anthropic"].api_key is not None and by_id["anthropic"].api_key.get_secret_value() == "sk-ant-..."
    assert by_id["openai"].kind == "openai" and by_id["openai"].base_url == "https://api.openai.com/v1"
    azure = by_id["azure"]
    assert azure.kind == "azure_openai" and azure.base_url == "https://myresource.openai.azure.com"
    assert azure.deployments == {"gpt-4o": "gpt-4o"} and azure.models == ["gpt-4o"]
    assert azure.api_version == "2024-10-21"
    ollama = by_id["ollama"]
    assert ollama.kind == "openai_compatible" and ollama.base_url == "http://localhost:11434/v1"


def test_the_seed_sanitization_block_works_as_written() -> None:
    s = build_settings(seed_without_pending_sections(), {})
    san = s.sanitization  # the seed: enabled = true, scan_credentials = true, redact_pii = false, gate false
    assert (san.enabled, san.scan_credentials, san.redact_pii, san.compliance_gate) == (True, True, False, False)
    assert (san.redact_credentials, san.output) == (True, "off")


def test_the_seed_sanitization_defaults_are_the_seeds() -> None:
    san = build_settings({"sanitization": {}}, {}).sanitization
    assert (san.enabled, san.scan_credentials, san.redact_pii, san.compliance_gate) == (False, True, False, False)
    raw = {**seed_without_pending_sections(), "sanitization": {"enabled": False, "scan_credentials": True}}
    assert build_settings(raw, {}).sanitization.enabled is False


@pytest.mark.parametrize("block,path,words", [
    ({"output": "mask"}, "sanitization.output", "'off'"),
    ({"pii_types": ["EMAIL", "PHONE_NUMBER"]}, "sanitization.pii_types", "EMAIL_ADDRESS"),
    ({"pii_patterns": {"EMPLOYEE_ID": "EMP-([0-9]{6}"}}, "sanitization.pii_patterns", "RE2"),
    ({"redact_pii": "yes"}, "sanitization.redact_pii", ""),
])
def test_bad_sanitization_values_are_named(block: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(ConfigError) as ei:
        build_settings({"sanitization": block}, {})
    assert any(line.startswith(path) and words in line for line in ei.value.problems), ei.value.problems


@pytest.mark.parametrize("provider,expected", [
    ({"provider_type": "local", "endpoint": "http://127.0.0.1:8000/v1"}, "http://127.0.0.1:8000/v1"),
    ({"provider_type": "local", "endpoint": "http://127.0.0.1:8000/"}, "http://127.0.0.1:8000/v1"),
    ({"provider_type": "openai", "endpoint": "https://api.openai.com"}, "https://api.openai.com/v1"),
    ({"provider_type": "openai", "endpoint": "https://proxy.internal/openai/v1"}, "https://proxy.internal/openai/v1"),
    ({"provider_type": "anthropic", "endpoint": "https://anthropic.internal"}, "https://anthropic.internal"),
])
def test_endpoint_becomes_base_url(provider: dict[str, Any], expected: str) -> None:
    s = build_settings({"providers": [{"id": "p", **provider}]}, {})
    assert s.providers[0].base_url == expected


def test_disabled_seed_provider_is_left_out() -> None:
    raw = {"providers": [{"id": "a", "provider_type": "openai", "api_key": "sk-a", "enabled": False},
                         {"id": "b", "provider_type": "anthropic", "api_key": "sk-b", "enabled": True}]}
    assert [p.id for p in build_settings(raw, {}).providers] == ["b"]


@pytest.mark.parametrize("provider,path,words", [
    ({"provider_type": "bedrock"}, "providers[0].provider_type", "'local'"),
    ({"provider_type": "openai", "kind": "anthropic"}, "providers[0]", "not both"),
    ({"provider_type": "openai", "endpoint": "http://a/v1", "base_url": "http://b/v1"}, "providers[0]", "not both"),
    ({"provider_type": "azure_openai", "endpoint": "https://r.openai.azure.com", "deployment": ""},
     "providers[0].deployment", "non-empty"),
])
def test_seed_keys_used_wrongly_are_named(provider: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(ConfigError) as ei:
        build_settings({"providers": [{"id": "p", **provider}]}, {})
    assert any(line.startswith(path + ":") and words in line for line in ei.value.problems), ei.value.problems
