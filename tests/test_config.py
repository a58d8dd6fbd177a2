"""Settings: defaults, environment, `${VAR}` interpolation, validation, and secrets kept secret."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tollway.config import ConfigError, Settings, build_settings, load_settings

OPENAI_SECRET = "sk-proj-openai-SECRET-1111"
ANTHROPIC_SECRET = "sk-ant-api03-SECRET-2222"
MASTER_SECRET = "tw-master-SECRET-3333"
TEAM_SECRET = "tw-team-SECRET-4444"
DB_PASSWORD = "pg-pass-SECRET-5555"
HEADER_SECRET = "helicone-SECRET-6666"
ALL_SECRETS = (OPENAI_SECRET, ANTHROPIC_SECRET, MASTER_SECRET, TEAM_SECRET, DB_PASSWORD, HEADER_SECRET)


def problems(raw: dict[str, Any], env: dict[str, str] | None = None, **kw: Any) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        build_settings(raw, env or {}, **kw)
    assert ei.value.problems, "a ConfigError must say what is wrong"
    return ei.value.problems


# -- defaults and environment -----------------------------------------------------------------


def test_defaults_with_no_file_and_no_environment() -> None:
    s = load_settings(None, env={})
    assert (s.server.host, s.server.port) == ("127.0.0.1", 8930)
    assert s.store_url == "sqlite+aiosqlite:///.tollway/tollway.db"
    assert s.server.data_dir == Path(".tollway")
    assert s.providers == [] and s.keys == [] and s.aliases == {}
    assert s.server.master_key is None and s.demo is False
    assert (s.logging.level, s.logging.format) == ("info", "text")


def test_store_follows_the_data_dir() -> None:
    s = build_settings({"server": {"data_dir": "/var/lib/tollway"}}, {})
    assert s.store_url == "sqlite+aiosqlite:////var/lib/tollway/tollway.db"


def test_providers_from_the_usual_environment_variables() -> None:
    s = build_settings({}, {"OPENAI_API_KEY": OPENAI_SECRET, "ANTHROPIC_API_KEY": ANTHROPIC_SECRET})
    by_id = {p.id: p for p in s.providers}
    assert set(by_id) == {"openai", "anthropic"}
    assert by_id["openai"].kind == "openai" and by_id["openai"].base_url == "https://api.openai.com/v1"
    assert by_id["openai"].api_key is not None and by_id["openai"].api_key.get_secret_value() == OPENAI_SECRET
    assert by_id["anthropic"].base_url == "https://api.anthropic.com"
    assert by_id["anthropic"].api_key is not None
    assert by_id["anthropic"].api_key.get_secret_value() == ANTHROPIC_SECRET
    assert "gpt-*" in by_id["openai"].models and "claude-*" in by_id["anthropic"].models


def test_base_url_env_points_a_provider_elsewhere_even_without_a_key() -> None:
    s = build_settings({}, {"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1/", "ANTHROPIC_API_KEY": "x",
                            "ANTHROPIC_BASE_URL": "http://anthropic.internal"})
    by_id = {p.id: p for p in s.providers}
    assert by_id["openai"].base_url == "http://127.0.0.1:11434/v1"  # trailing slash dropped
    assert by_id["openai"].api_key is None  # a local server needs none
    assert by_id["anthropic"].base_url == "http://anthropic.internal"


def test_empty_env_vars_configure_nothing() -> None:
    assert build_settings({}, {"OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": ""}).providers == []


def test_configured_providers_win_over_the_environment() -> None:
    raw = {"providers": [{"id": "local", "kind": "openai", "base_url": "http://127.0.0.1:8000/v1"}]}
    s = build_settings(raw, {"OPENAI_API_KEY": OPENAI_SECRET, "ANTHROPIC_API_KEY": ANTHROPIC_SECRET})
    assert [p.id for p in s.providers] == ["local"]


def test_master_key_from_environment_and_config_wins() -> None:
    s = build_settings({}, {"TOLLWAY_MASTER_KEY": MASTER_SECRET})
    assert s.server.master_key is not None and s.server.master_key.get_secret_value() == MASTER_SECRET
    s = build_settings({"server": {"master_key": "from-file"}}, {"TOLLWAY_MASTER_KEY": MASTER_SECRET})
    assert s.server.master_key is not None and s.server.master_key.get_secret_value() == "from-file"


def test_demo_adds_the_demo_provider_once() -> None:
    s = build_settings({}, {}, demo=True)
    assert s.demo and s.providers and all(p.kind == "demo" for p in s.providers)
    demo = next(p for p in s.providers if p.id == "demo")
    assert "demo" in demo.models
    s = build_settings({"demo": True, "providers": [{"id": "openai", "kind": "openai", "api_key": "k"}]}, {}, demo=True)
    ids = [p.id for p in s.providers]
    assert ids[0] == "openai" and ids.count("demo") == 1 and len(set(ids)) == len(ids)
    assert all(p.kind == "demo" for p in s.providers[1:])
    assert build_settings({}, {}).demo is False  # not without --demo


def test_provider_defaults_and_models_as_configured() -> None:
    s = build_settings({"providers": [{"id": "oa", "kind": "openai", "models": ["gpt-4o-mini", "ft:*"]}]}, {})
    p = s.providers[0]
    assert p.base_url == "https://api.openai.com/v1" and p.models == ["gpt-4o-mini", "ft:*"]


# -- ${VAR} interpolation ---------------------------------------------------------------------


def test_env_references_are_interpolated_anywhere() -> None:
    raw = {
        "server": {"master_key": "${TW_MASTER}"},
        "providers": [{"id": "local", "kind": "openai", "base_url": "http://${LLM_HOST}:8080/v1",
                       "api_key": "${OAI_KEY}", "headers": {"helicone-auth": "Bearer ${HELI}"}}],
        "keys": [{"id": "team", "key": "${TEAM_KEY}", "project": "p-${TEAM}"}],
    }
    env = {"TW_MASTER": MASTER_SECRET, "LLM_HOST": "10.0.0.7", "OAI_KEY": OPENAI_SECRET, "HELI": HEADER_SECRET,
           "TEAM_KEY": TEAM_SECRET, "TEAM": "alpha"}
    s = build_settings(raw, env)
    p = s.providers[0]
    assert p.base_url == "http://10.0.0.7:8080/v1"
    assert p.api_key is not None and p.api_key.get_secret_value() == OPENAI_SECRET
    assert p.headers == {"helicone-auth": f"Bearer {HEADER_SECRET}"}
    assert s.keys[0].key.get_secret_value() == TEAM_SECRET and s.keys[0].project == "p-alpha"
    assert s.server.master_key is not None and s.server.master_key.get_secret_value() == MASTER_SECRET


def test_text_that_only_looks_like_a_reference_is_kept() -> None:
    s = build_settings({"providers": [{"id": "a", "kind": "openai", "api_key": "$NOT_A_REF{braces}",
                                       "headers": {"x-note": "$NOT_A_REF and {braces}"}}]}, {})
    assert s.providers[0].api_key is not None
    assert s.providers[0].api_key.get_secret_value() == "$NOT_A_REF{braces}"
    assert s.providers[0].headers == {"x-note": "$NOT_A_REF and {braces}"}


def test_every_missing_env_var_is_named_with_its_key_path() -> None:
    raw = {"server": {"master_key": "${TW_MISSING_MASTER}"},
           "providers": [{"id": "a", "kind": "openai", "api_key": "${TW_MISSING_A}"},
                         {"id": "b", "kind": "anthropic", "api_key": "${TW_MISSING_B}"}],
           "store": {"url": "postgresql://tollway:${TW_MISSING_PG}@db/tollway"}}
    found = problems(raw, {"TW_MISSING_A_NOT": "x"})
    text = "\n".join(found)
    for path, var in (("server.master_key", "TW_MISSING_MASTER"), ("providers[0].api_key", "TW_MISSING_A"),
                      ("providers[1].api_key", "TW_MISSING_B"), ("store.url", "TW_MISSING_PG")):
        assert any(path in line and var in line for line in found), f"{path} / {var} not reported:\n{text}"


def test_empty_env_var_is_not_missing() -> None:
    s = build_settings({"providers": [{"id": "local", "kind": "openai", "api_key": "${EMPTY}"}]}, {"EMPTY": ""})
    assert s.providers[0].id == "local"


def test_load_settings_reads_toml_and_interpolates(tmp_path: Path) -> None:
    p = tmp_path / "tollway.toml"
    p.write_text('[server]\nport = 9999\n\n[[providers]]\nid = "oa"\nkind = "openai"\napi_key = "${K}"\n')
    s = load_settings(p, env={"K": OPENAI_SECRET})
    assert s.server.port == 9999 and s.providers[0].api_key is not None
    assert s.providers[0].api_key.get_secret_value() == OPENAI_SECRET


def test_load_settings_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        load_settings(tmp_path / "absent.toml", env={})
    assert "absent.toml" in ei.value.problems[0] and "no such file" in ei.value.problems[0]
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nport = \n')
    with pytest.raises(ConfigError) as ei:
        load_settings(bad, env={})
    assert "invalid TOML" in ei.value.problems[0] and "line 2" in ei.value.problems[0]


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize("raw,path", [
    ({"server": {"port": 0}}, "server.port"),
    ({"server": {"port": "http"}}, "server.port"),
    ({"server": {"shutdown_grace_secs": -1}}, "server.shutdown_grace_secs"),
    ({"server": {"lisen": "0.0.0.0"}}, "server.lisen"),
    ({"server": {"max_header_bytes": 100}}, "server.max_header_bytes"),
    ({"server": {"header_timeout_secs": 0}}, "server.header_timeout_secs"),
    ({"server": {"max_connections": 0}}, "server.max_connections"),
    ({"store": {"flush_interval_ms": 0}}, "store.flush_interval_ms"),
    ({"store": {"flush_interval_secs": -1}}, "store"),
    ({"store": {"flush_interval_secs": 0.1, "flush_interval_ms": 100}}, "store"),
    ({"logging": {"level": "loud"}}, "logging.level"),
    ({"providers": [{"id": "a", "kind": "openai"}, {"id": "b", "kind": "cohere"}]}, "providers[1].kind"),
    ({"providers": [{"kind": "openai"}]}, "providers[0].id"),
    ({"providers": [{"id": "has space", "kind": "openai"}]}, "providers[0].id"),
    ({"keys": [{"id": "k"}]}, "keys[0].key"),
    ({"prices": [{"model": "m", "input_per_mtok": "cheap", "output_per_mtok": 1}]}, "prices[0].input_per_mtok"),
])
def test_invalid_values_are_reported_with_their_key_path(raw: dict[str, Any], path: str) -> None:
    found = problems(raw)
    assert any(line.startswith(path + ":") for line in found), found


def test_flush_interval_in_ms_and_the_old_seconds_key_still_works() -> None:
    assert build_settings({}, {}).store.flush_interval_ms == 250
    assert build_settings({"store": {"flush_interval_ms": 20}}, {}).store.flush_interval_secs == 0.02
    assert build_settings({"store": {"flush_interval_secs": 0.05}}, {}).store.flush_interval_ms == 50


def test_several_problems_are_reported_together() -> None:
    found = problems({"server": {"port": 0, "max_body_bytes": 1}, "providers": [{"id": "a", "kind": "x"}]})
    assert {line.split(":")[0] for line in found} >= {"server.port", "server.max_body_bytes", "providers[0].kind"}


def test_duplicate_provider_ids_are_rejected() -> None:
    found = problems({"providers": [{"id": "main", "kind": "openai"}, {"id": "main", "kind": "anthropic"}]})
    assert any("providers" in line and "duplicate" in line and "'main'" in line for line in found), found


def test_alias_to_an_unknown_provider_is_rejected() -> None:
    raw = {"providers": [{"id": "openai", "kind": "openai"}], "aliases": {"fast": "opnai:gpt-4o-mini"}}
    found = problems(raw)
    assert any("aliases.fast" in line and "'opnai'" in line for line in found), found


def test_alias_forms_that_are_accepted() -> None:
    raw = {"providers": [{"id": "openai", "kind": "openai"}],
           "aliases": {"fast": "openai:gpt-4o-mini", "plain": "gpt-4o", "d": "demo:demo"}}
    s = build_settings(raw, {}, demo=True)
    assert s.aliases["fast"] == "openai:gpt-4o-mini"
    assert problems({"aliases": {"d": "demo:demo"}})  # no demo provider without --demo
    assert any("aliases.x" in line for line in problems({"providers": [{"id": "openai", "kind": "openai"}],
                                                          "aliases": {"x": "openai:"}}))


# -- secrets stay secret ----------------------------------------------------------------------


def secret_settings() -> Settings:
    raw = {
        "server": {"master_key": "${TW_MASTER}"},
        "store": {"url": f"postgresql://tollway:{DB_PASSWORD}@db.internal:5432/tollway"},
        "providers": [{"id": "openai", "kind": "openai", "api_key": "${OAI}",
                       "headers": {"helicone-auth": f"Bearer {HEADER_SECRET}"}},
                      {"id": "anthropic", "kind": "anthropic", "api_key": ANTHROPIC_SECRET}],
        "keys": [{"id": "team", "key": TEAM_SECRET}],
    }
    return build_settings(raw, {"TW_MASTER": MASTER_SECRET, "OAI": OPENAI_SECRET})


def test_secrets_never_show_in_repr_str_or_json() -> None:
    s = secret_settings()
    shown = "\n".join([repr(s), str(s), s.model_dump_json(), repr(s.providers), repr(s.server), repr(s.store),
                       str(s.providers[0]), repr(s.keys), f"{s}", f"{s!r}"])
    for secret in ALL_SECRETS:
        assert secret not in shown, f"{secret} leaked"
    # ... while the values are still there for the code that needs them
    assert s.store_url == f"postgresql://tollway:{DB_PASSWORD}@db.internal:5432/tollway"
    assert s.providers[1].api_key is not None and s.providers[1].api_key.get_secret_value() == ANTHROPIC_SECRET


def test_secrets_survive_model_copy_without_showing() -> None:
    s = secret_settings()
    c = s.model_copy(update={"server": s.server.model_copy(update={"port": 1234})})
    assert c.server.master_key is not None and c.server.master_key.get_secret_value() == MASTER_SECRET
    assert MASTER_SECRET not in repr(c)


@pytest.mark.parametrize("raw", [
    {"server": {"master_kye": MASTER_SECRET}},  # typo'd key holding a secret
    {"server": {"master_key": [MASTER_SECRET]}},  # wrong type
    {"providers": [{"id": "x", "kind": "openai", "api_key": {"value": OPENAI_SECRET}}]},
    {"providers": [{"id": f"bad id {OPENAI_SECRET}", "kind": "openai"}]},
    {"keys": [{"id": "k", "key": TEAM_SECRET, "extra": TEAM_SECRET}]},
    {"store": {"url": f"postgresql://u:{DB_PASSWORD}@h/db", "batch_size": 0}},
    {"providers": [{"id": "a", "kind": "openai", "api_key": ANTHROPIC_SECRET}, {"id": "a", "kind": "openai"}]},
])
def test_validation_errors_never_quote_secrets(raw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as ei:
        build_settings(raw, {"TOLLWAY_MASTER_KEY": MASTER_SECRET})
    text = "\n".join([str(ei.value), repr(ei.value), *ei.value.problems])
    for secret in ALL_SECRETS:
        assert secret not in text, f"{secret} leaked in: {text}"


# -- a server started with a broken config ----------------------------------------------------


def test_serve_with_missing_env_var_fails_clearly_and_leaks_nothing(tmp_path: Path) -> None:
    cfg = tmp_path / "tollway.toml"
    cfg.write_text(f"""
[server]
port = 1

[[providers]]
id = "openai"
kind = "openai"
api_key = "{OPENAI_SECRET}"

[[providers]]
id = "anthropic"
kind = "anthropic"
api_key = "${{TW_TEST_UNSET_ANTHROPIC_KEY}}"

[[keys]]
id = "team"
key = "{TEAM_SECRET}"
""")
    assert tomllib.loads(cfg.read_text())  # the file itself is valid TOML
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "TOLLWAY_", "TW_"))}
    env["TOLLWAY_MASTER_KEY"] = MASTER_SECRET
    r = subprocess.run([sys.executable, "-m", "tollway", "serve", "--config", str(cfg)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    line = next((ln for ln in out.splitlines() if "TW_TEST_UNSET_ANTHROPIC_KEY" in ln), None)
    assert line is not None, out
    assert "providers[1].api_key" in line and "not set" in line
    assert "Traceback" not in out
    for secret in ALL_SECRETS:
        assert secret not in out
    assert not (tmp_path / ".tollway").exists()  # it stopped before touching the store


# -- strict types, one pass, did you mean -------------------------------------------------------


@pytest.mark.parametrize("raw,path,quoted", [
    ({"server": {"port": "8931"}}, "server.port", True),
    ({"translation": {"strict": "yes"}}, "translation.strict", True),
    ({"translation": {"strict": 1}}, "translation.strict", False),
    ({"server": {"read_timeout_secs": "30"}}, "server.read_timeout_secs", True),
    ({"store": {"batch_size": 1.5}}, "store.batch_size", False),
    ({"providers": [{"id": "l", "kind": "openai_compatible", "base_url": "http://h/v1",
                     "discover_models": "true"}]}, "providers[0].discover_models", True),
    ({"demo": "true"}, "demo", True),
])
def test_types_are_strict(raw: dict[str, Any], path: str, quoted: bool) -> None:
    found = problems(raw)
    assert [line.split(":")[0] for line in found] == [path], found
    assert ("without quotes" in found[0]) is quoted, found


def test_interpolation_compatibility_and_validation_problems_come_in_one_pass() -> None:
    raw = {"server": {"port": "8931", "lisen": "0.0.0.0", "master_key": "${TW_NOT_SET_ANYWHERE}"},
           "translation": {"strict": "yes"},
           "providers": [{"id": "a", "kind": "openai"}, {"id": "a", "kind": "anthropic"},
                         {"id": "b", "provider_type": "mainframe"}],
           "sanitization": {"enabled": True, "output": "shout"},
           "aliases": {"fast": "nobody:gpt-4o"}}
    found = problems(raw)
    paths = [line.split(":")[0] for line in found]
    for path in ("server.port", "server.lisen", "server.master_key", "translation.strict", "providers[1].id",
                 "providers[2].provider_type", "sanitization.output", "aliases.fast"):
        assert path in paths, (path, found)
    assert len(paths) == len(set(paths)), found


@pytest.mark.parametrize("raw,path,suggestion", [
    ({"server": {"lisen": "0.0.0.0", "prot": 1}}, "server.lisen", None),
    ({"server": {"prot": 8931}}, "server.prot", "port"),
    ({"server": {"master_kye": "x"}}, "server.master_kye", "master_key"),
    ({"providers": [{"id": "a", "kind": "openai", "api_kye": "k"}]}, "providers[0].api_kye", "api_key"),
    ({"providers": [{"id": "a", "kind": "openai", "model": ["gpt-4o"]}]}, "providers[0].model", "models"),
    ({"keys": [{"id": "k", "key": "kkkkkk", "projcet": "p"}]}, "keys[0].projcet", "project"),
    ({"translations": {"strict": True}}, "translations", "translation"),
    ({"logging": {"formt": "json"}}, "logging.formt", "format"),
])
def test_misspelt_keys_get_a_suggestion(raw: dict[str, Any], path: str, suggestion: str | None) -> None:
    found = problems(raw)
    line = next(line for line in found if line.startswith(path + ":"))
    assert "unknown key" in line and "Extra inputs" not in line
    if suggestion:
        assert f"did you mean {suggestion!r}?" in line, line
    else:
        assert "did you mean" not in line, line


# -- keys and headers that cannot hurt ----------------------------------------------------------


@pytest.mark.parametrize("value,why", [
    (OPENAI_SECRET + "\n", "line break"),
    (OPENAI_SECRET + "\r\nX-Injected: 1", "line break"),
    (" " + OPENAI_SECRET, "whitespace"),
    (OPENAI_SECRET[:8] + "\t" + OPENAI_SECRET[8:], "whitespace"),
    (OPENAI_SECRET + "é", "printable ASCII"),
    (OPENAI_SECRET + "\x00", "printable ASCII"),
])
def test_provider_keys_with_whitespace_or_line_breaks_are_errors(value: str, why: str) -> None:
    raws = {
        "providers[0].api_key": {"providers": [{"id": "a", "kind": "openai", "api_key": value}]},
        "server.master_key": {"server": {"master_key": value}},
        "keys[0].key": {"keys": [{"id": "k", "key": value}]},
    }
    for path, raw in raws.items():
        found = problems(raw)
        assert len(found) == 1 and found[0].startswith(path + ":") and why in found[0], found
        assert OPENAI_SECRET not in found[0] and OPENAI_SECRET[:8] not in found[0]


@pytest.mark.parametrize("headers,words", [
    ({"OpenAI-Organization": "org-1\r\nX-Evil: 1"}, "OpenAI-Organization contains a line break"),
    ({"Helicone-Auth": f"Bearer {HEADER_SECRET}\n"}, "Helicone-Auth contains a line break"),
    ({"X-Name": "caf\u00e9 \u2603"}, "latin-1"),
    ({"Bad Header": "x"}, "not a valid header name"),
    ({"X-Bad:": "x"}, "not a valid header name"),
    ({"Host": "evil.example"}, "set by Tollway"),
    ({"X-Space": " padded"}, "leading/trailing whitespace"),
    ({"X-Ctl": "a\x07b"}, "control characters"),
])
def test_provider_headers_are_checked(headers: dict[str, str], words: str) -> None:
    found = problems({"providers": [{"id": "a", "kind": "openai", "headers": headers}]})
    assert len(found) == 1 and found[0].startswith("providers[0].headers:") and words in found[0], found
    assert HEADER_SECRET not in found[0] and "org-1" not in found[0] and "evil.example" not in found[0]


def test_good_headers_pass() -> None:
    s = build_settings({"providers": [{"id": "a", "kind": "openai", "headers": {
        "OpenAI-Organization": "org-abc", "Helicone-Auth": f"Bearer {HEADER_SECRET}", "X-Latin": "caf\u00e9"}}]}, {})
    assert s.providers[0].headers["X-Latin"] == "caf\u00e9"


def test_empty_master_key_is_an_error_even_with_the_environment_set() -> None:
    for env in ({}, {"TOLLWAY_MASTER_KEY": MASTER_SECRET}):
        found = problems({"server": {"master_key": ""}}, env)
        assert len(found) == 1 and found[0].startswith("server.master_key: is empty"), found
    assert problems({"server": {"master_key": "${TW_EMPTY}"}}, {"TW_EMPTY": ""})[0].startswith(
        "server.master_key: is empty")


def test_a_key_equal_to_the_master_key_is_an_error() -> None:
    for raw, env in (({"server": {"master_key": MASTER_SECRET}, "keys": [{"id": "k", "key": MASTER_SECRET}]}, {}),
                     ({"keys": [{"id": "k", "key": MASTER_SECRET}]}, {"TOLLWAY_MASTER_KEY": MASTER_SECRET})):
        found = problems(raw, env)
        assert len(found) == 1 and found[0].startswith("keys[0].key: is the master key"), found
        assert MASTER_SECRET not in found[0]


def test_duplicate_keys_and_key_ids_are_errors() -> None:
    found = problems({"keys": [{"id": "a", "key": TEAM_SECRET}, {"id": "b", "key": TEAM_SECRET},
                               {"id": "a", "key": TEAM_SECRET + "-2"}, {"id": "master", "key": TEAM_SECRET + "-3"}]})
    assert any(line.startswith("keys[1].key: the same key as keys[0]") for line in found), found
    assert any(line.startswith("keys[2].id: duplicate key id 'a'") for line in found), found
    assert any(line.startswith("keys[3].id:") and "'master'" in line for line in found), found
    assert not any(TEAM_SECRET in line for line in found)


@pytest.mark.parametrize("project", ["", "has space", "x" * 65, "-lead", "a/b", "ünï", "a\nb"])
def test_key_default_project_must_be_a_slug(project: str) -> None:
    found = problems({"keys": [{"id": "k", "key": TEAM_SECRET, "project": project}]})
    assert len(found) == 1 and found[0].startswith("keys[0].project:") and "64" in found[0], found


def test_disabled_providers_are_checked_and_left_out() -> None:
    raw = {"providers": [{"id": "a", "kind": "openai", "enabled": False}, {"id": "b", "kind": "anthropic"}]}
    assert [p.id for p in build_settings(raw, {}).providers] == ["b"]
    found = problems({"providers": [{"id": "a", "kind": "openai", "enabled": False, "api_key": "k\n"}]})
    assert found[0].startswith("providers[0].api_key")
    found = problems({**raw, "aliases": {"x": "a:gpt-4o"}})  # an alias to a disabled provider
    assert found[0].startswith("aliases.x: unknown provider 'a'")


def test_a_bad_key_from_the_environment_is_named_by_its_variable() -> None:
    found = problems({}, {"OPENAI_API_KEY": OPENAI_SECRET + "\n", "TOLLWAY_MASTER_KEY": f" {MASTER_SECRET}"})
    assert sorted(line.split(":")[0] for line in found) == ["OPENAI_API_KEY (environment)",
                                                             "TOLLWAY_MASTER_KEY (environment)"], found
    assert not any(OPENAI_SECRET in line or MASTER_SECRET in line for line in found)


# -- [responses] ------------------------------------------------------------------------------


def test_responses_defaults_and_limits() -> None:
    s = build_settings({}, {})
    assert (s.responses.ttl_days, s.responses.max_chain_depth, s.responses.max_chain_bytes) == (
        30.0, 1000, 64 * 1024 * 1024)
    s = build_settings({"responses": {"ttl_days": 0.5, "max_chain_depth": 10}}, {})
    assert (s.responses.ttl_days, s.responses.max_chain_depth) == (0.5, 10)
    assert any("responses.ttl_days" in p for p in problems({"responses": {"ttl_days": 0}}))
    assert any("responses.max_chain_depth" in p for p in problems({"responses": {"max_chain_depth": 0}}))
    assert any("responses.ttl" in p for p in problems({"responses": {"ttl": 3}}))
