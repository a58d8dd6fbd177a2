"""tollway.example.toml stays true to the code: it passes `config check` on a fresh machine, and it
documents every settings key (active or commented out) and no key the code does not know."""

from __future__ import annotations

import re
import tomllib
from collections import defaultdict
from pathlib import Path

from pydantic import BaseModel

from tollway.config import Settings, load_settings
from tollway.config_checks import _inner_model

EXAMPLE = Path(__file__).resolve().parent.parent / "tollway.example.toml"
# a table header; a quoted last part is a free-form name (`[cache.models."gpt-4o*"]` is section cache.models)
_HEADER = re.compile(r"^#?\s*\[\[?([A-Za-z_][A-Za-z0-9_.-]*?)(?:\.\"[^\"]*\")?\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"^(#?)\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")


def documented_keys() -> dict[str, set[str]]:
    """Section ("" for the top level, "providers", "server", ...) -> keys shown, active or commented.
    A commented line counts as a key only when what follows `=` is a TOML value (not prose)."""
    out: dict[str, set[str]] = defaultdict(set)
    section = ""
    for line in EXAMPLE.read_text().splitlines():
        header = _HEADER.match(line.strip())
        if header:
            section = header.group(1)
            out[section]  # a section shown with no keys is still shown
            continue
        m = _KEY.match(line.strip())
        if not m:
            continue
        commented, key, rest = m.groups()
        if commented:
            value = rest.split("  #")[0].split(" # ")[0].strip()
            try:
                tomllib.loads(f"v = {value}")
            except tomllib.TOMLDecodeError:
                continue
        out[section].add(key)
    return out


def settings_keys(model: type[BaseModel] = Settings, section: str = "") -> dict[str, set[str]]:
    """Section -> its keys, walking the pydantic models (a nested model is a section of its own)."""
    out: dict[str, set[str]] = defaultdict(set)
    for name, field in model.model_fields.items():
        inner = _inner_model(field.annotation)
        path = f"{section}.{name}" if section else name
        if inner is not None:
            for sub, keys in settings_keys(inner, path).items():
                out[sub] |= keys
            out[path]
        else:
            out[section].add(name)
    return out


def test_the_example_passes_config_check_on_a_fresh_machine() -> None:
    settings = load_settings(EXAMPLE, env={})  # no environment variable set at all
    kinds = {p.kind for p in settings.providers}
    assert {"openai", "anthropic", "azure_openai", "gemini", "openai_compatible"} <= kinds
    assert settings.server.master_key is None and all(p.api_key is None for p in settings.providers)


def test_the_example_documents_every_settings_key() -> None:
    shown = documented_keys()
    expected = settings_keys()
    dict_sections = {name for name, f in Settings.model_fields.items()
                     if _inner_model(f.annotation) is None and "dict" in str(f.annotation)}
    for section, keys in expected.items():
        if section == "":
            keys = keys - dict_sections  # [aliases] is a section of free-form names
            for name in dict_sections:
                assert name in shown, f"[{name}] is not shown in tollway.example.toml"
        assert section in shown or not keys, f"section [{section}] is not shown in tollway.example.toml"
        missing = keys - shown.get(section, set())
        assert not missing, f"tollway.example.toml does not document {section or 'top-level'} keys {sorted(missing)}"


def test_the_example_shows_no_key_the_code_does_not_know() -> None:
    expected = settings_keys()
    for section, keys in documented_keys().items():
        if section in ("aliases",):
            continue
        assert section in expected, f"tollway.example.toml shows unknown section [{section}]"
        unknown = keys - expected[section]
        assert not unknown, f"tollway.example.toml shows unknown {section or 'top-level'} keys {sorted(unknown)}"


# Sections whose values in the example are Tollway's defaults (the rest are examples to adapt:
# providers, aliases, keys, projects, prices).
DEFAULT_SECTIONS = ("server", "store", "sanitization", "logging", "translation", "responses", "metrics", "otel",
                    "billing")


def shown_values() -> list[tuple[str, str, object, bool]]:
    """(section, key, value, commented) for every key line whose value is TOML."""
    out = []
    section = ""
    for line in EXAMPLE.read_text().splitlines():
        header = _HEADER.match(line.strip())
        if header:
            section = header.group(1)
            continue
        m = _KEY.match(line.strip())
        if not m:
            continue
        commented, key, rest = m.groups()
        value = rest.split("  #")[0].split(" # ")[0].strip() if commented else rest.split("#")[0].strip()
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            continue
        out.append((section, key, parsed, bool(commented)))
    return out


def test_the_values_shown_are_the_code_defaults() -> None:
    """What the example shows as a default is the default: its active values in the default
    sections load to exactly the settings of no file at all, and a commented-out key that has a
    default shows that default (an optional key, default none, may show an example value)."""
    example = load_settings(EXAMPLE, env={})
    bare = Settings()
    for section in DEFAULT_SECTIONS:
        assert getattr(example, section) == getattr(bare, section), f"[{section}] in the example is not the default"
    assert example.demo == bare.demo
    for section, key, value, commented in shown_values():
        if not commented or (section and section.split(".")[0] not in (*DEFAULT_SECTIONS, "providers")):
            continue
        model: type[BaseModel] | None = Settings
        for part in filter(None, section.split(".")):
            model = _inner_model(model.model_fields[part].annotation) if model is not None else None
        field = model.model_fields.get(key) if model is not None else None
        assert field is not None, (section, key)
        default = field.get_default(call_default_factory=True)
        if isinstance(default, (bool, int, float, str)) and not (section == "providers" and key != "wire_format"):
            assert value == default, f"{section}.{key}: the example shows {value!r}, the default is {default!r}"
