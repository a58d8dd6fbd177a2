"""`${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`, `${VAR?message}` and `$${`."""

from __future__ import annotations

from typing import Any

import pytest

from tollway.config import ConfigError, build_settings


def problems(raw: dict[str, Any], env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        build_settings(raw, env)
    return ei.value.problems


def base_url(value: str, env: dict[str, str]) -> str:
    s = build_settings({"providers": [{"id": "a", "kind": "openai", "base_url": value}]}, env)
    return s.providers[0].base_url


@pytest.mark.parametrize("value,env,expected", [
    ("http://${H:-localhost}:8080/v1", {}, "http://localhost:8080/v1"),
    ("http://${H:-localhost}:8080/v1", {"H": ""}, "http://localhost:8080/v1"),  # :- also when empty
    ("http://${H:-localhost}:8080/v1", {"H": "10.0.0.7"}, "http://10.0.0.7:8080/v1"),
    ("http://x${H-y}.internal/v1", {"H": ""}, "http://x.internal/v1"),  # - only when unset
    ("http://x${H-y}.internal/v1", {}, "http://xy.internal/v1"),
    ("http://${H:?set H}/v1", {"H": "h"}, "http://h/v1"),
    ("http://h/v1?a=$${LITERAL}", {"LITERAL": "no"}, "http://h/v1?a=${LITERAL}"),
    ("http://${A:-a}${B:-b}/v1", {"B": "bee"}, "http://abee/v1"),
    ("http://${H:-}/v1", {}, "http:///v1"),
])
def test_reference_forms(value: str, env: dict[str, str], expected: str) -> None:
    assert base_url(value, env) == expected


def test_required_reference_reports_the_operators_message_with_the_key_path() -> None:
    raw = {"providers": [{"id": "a", "kind": "openai", "api_key": "${TW_KEY:?put the OpenAI key in TW_KEY}"}]}
    found = problems(raw, {})
    assert found == ["providers[0].api_key: put the OpenAI key in TW_KEY (from ${TW_KEY})"]
    assert problems(raw, {"TW_KEY": ""}) == found  # :? treats empty as missing
    lenient = {"providers": [{"id": "a", "kind": "openai", "api_key": "${TW_KEY?needed}", "base_url": "${U?}"}]}
    s = build_settings({**lenient, "providers": [{**lenient["providers"][0], "base_url": "http://h/v1"}]},
                       {"TW_KEY": ""})
    assert s.providers[0].api_key is None  # set but empty is allowed by ?, and an empty api_key means none
    assert problems(lenient, {"TW_KEY": "k"}) == ["providers[0].base_url: environment variable U is not set"]


def test_optional_provider_key_left_empty_means_no_key() -> None:
    s = build_settings({"providers": [{"id": "a", "kind": "openai", "api_key": "${TW_UNSET_KEY:-}"}]}, {})
    assert s.providers[0].api_key is None


def test_numbers_and_flags_from_the_environment_are_converted() -> None:
    raw = {"server": {"port": "${PORT:-8931}", "read_timeout_secs": "${RT}"},
           "translation": {"strict": "${STRICT:-false}"}, "store": {"batch_size": "${BATCH}"}}
    s = build_settings(raw, {"RT": "2.5", "STRICT": "true", "BATCH": " 20 "})
    assert (s.server.port, s.server.read_timeout_secs, s.translation.strict, s.store.batch_size) == (
        8931, 2.5, True, 20)
    found = problems(raw, {"RT": "soon", "STRICT": "maybe", "BATCH": "1", "PORT": "99999"})
    paths = {line.split(":")[0] for line in found}
    assert paths == {"server.read_timeout_secs", "translation.strict", "server.port"}, found


def test_a_missing_variable_is_reported_once_not_again_by_validation() -> None:
    raw = {"server": {"master_key": "${TW_MISSING_MASTER}", "port": "${TW_MISSING_PORT}"}}
    found = problems(raw, {})
    assert sorted(found) == ["server.master_key: environment variable TW_MISSING_MASTER is not set",
                             "server.port: environment variable TW_MISSING_PORT is not set"]
