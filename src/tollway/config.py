"""Typed settings: `tollway.toml` + environment, with working defaults when there is no file.

Secrets are `SecretStr` so they never show in `repr`, logs or validation errors, and may be
written as `${ENV_VAR}`; a missing variable is a start-up error naming the key path.
"""

from __future__ import annotations

import os
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_serializer, field_validator,
                      model_validator)

ProviderKind = Literal["openai", "anthropic", "azure_openai", "gemini", "openai_compatible", "demo"]
PROVIDER_KINDS: tuple[str, ...] = ("openai", "anthropic", "azure_openai", "gemini", "openai_compatible", "demo")

DEFAULT_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "azure_openai": "",  # required: https://RESOURCE.openai.azure.com
    "gemini": "https://generativelanguage.googleapis.com",
    "openai_compatible": "",  # required, e.g. http://127.0.0.1:11434/v1 (Ollama)
    "demo": "",
}
DEFAULT_MODELS: dict[str, list[str]] = {
    "openai": [
        "gpt-*", "chatgpt-*", "o1*", "o3*", "o4*", "text-embedding-*", "omni-moderation-*",
        "davinci-*", "babbage-*", "whisper-*", "tts-*", "dall-e-*",
    ],
    "anthropic": ["claude-*"],
    "azure_openai": [],  # default: the keys of `deployments`
    "gemini": ["gemini-*", "text-embedding-004", "gemini-embedding-*"],
    "openai_compatible": [],  # default: discovered from the server's GET /v1/models
    "demo": ["demo", "demo-*"],
}

# `--demo`: the native demo (answers in the client's format) and, before it so their names win
# over its `demo-*`, two that act as Anthropic and Gemini so that translation is exercised too.
DEMO_PROVIDERS: tuple[dict[str, Any], ...] = (
    {"id": "demo-claude", "kind": "demo", "wire_format": "anthropic", "models": ["demo-claude", "demo-claude*"]},
    {"id": "demo-gemini", "kind": "demo", "wire_format": "gemini", "models": ["demo-gemini", "demo-gemini*"]},
    {"id": "demo", "kind": "demo"},
)

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """A configuration problem, already phrased for the operator (one line per problem)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8930, ge=1, le=65535)
    master_key: SecretStr | None = None
    # seals provider credentials set through the API (AES-GCM); env TOLLWAY_SECRET_KEY
    secret_key: SecretStr | None = None
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    shutdown_grace_secs: float = Field(30.0, ge=0)
    connect_timeout_secs: float = Field(10.0, gt=0)
    read_timeout_secs: float = Field(600.0, gt=0)
    data_dir: Path = Path(".tollway")


class StoreSettings(_Strict):
    url: SecretStr | None = None  # default: SQLite file in server.data_dir (may hold a password)
    batch_size: int = Field(500, ge=1)
    flush_interval_secs: float = Field(0.25, gt=0)
    # raw records older than this are deleted in the background; rollups keep their totals
    retention_days: float | None = Field(None, gt=0)


class LoggingSettings(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


class ProviderSettings(_Strict):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: ProviderKind
    base_url: str = ""
    api_key: SecretStr | None = None
    models: list[str] = Field(default_factory=list)  # exact names and glob patterns
    # extra headers sent upstream; they often carry credentials, so they stay out of repr / JSON
    headers: dict[str, str] = Field(default_factory=dict, repr=False)

    @field_serializer("headers", when_used="json")
    def _mask_headers(self, v: dict[str, str]) -> dict[str, str]:
        return {k: "**********" for k in v}

    # azure_openai: model name -> deployment name (a model not listed uses its own name)
    deployments: dict[str, str] = Field(default_factory=dict)
    api_version: str = "2024-10-21"  # azure_openai
    # openai_compatible: ask the server's GET /v1/models at start-up and add what it lists
    discover_models: bool = True
    # demo only: the wire format it answers in ("native" = whatever the client speaks)
    wire_format: Literal["native", "openai", "anthropic", "gemini"] = "native"

    @model_validator(mode="after")
    def _defaults(self) -> "ProviderSettings":
        if not self.base_url:
            if self.kind in ("azure_openai", "openai_compatible"):
                raise ValueError(f"base_url is required for kind {self.kind!r}")
            object.__setattr__(self, "base_url", DEFAULT_BASE_URLS[self.kind])
        if self.wire_format != "native" and self.kind != "demo":
            raise ValueError("wire_format applies to the demo provider only")
        if not self.models:
            models = list(self.deployments) if self.kind == "azure_openai" else list(DEFAULT_MODELS[self.kind])
            object.__setattr__(self, "models", models)
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        return self


Role = Literal["user", "viewer", "admin"]


class KeySettings(_Strict):
    id: str = Field(min_length=1)
    key: SecretStr
    project: str | None = None  # default project for requests made with this key
    # user: calls models; viewer: reads records, stats and admin data; admin: also changes things.
    # A management key (viewer/admin) calls models only if it also has "user".
    roles: list[Role] = Field(default_factory=lambda: ["user"], min_length=1)


class PriceSettings(_Strict):
    model: str = Field(min_length=1)  # exact, glob, or "provider_kind:pattern"
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal | None = None
    cache_write_per_mtok: Decimal | None = None


class TranslationSettings(_Strict):
    strict: bool = False  # a parameter the target provider cannot honour: 400 instead of dropped + header
    default_max_tokens: int = Field(4096, ge=1)  # for providers that require max_tokens when the client sent none


class AskSettings(_Strict):
    model: str | None = None  # a model Tollway routes; None: the Ask page says how to set one
    timeout_secs: float = Field(5.0, gt=0, le=120)  # statement timeout of the generated query
    max_rows: int = Field(1000, ge=1, le=10_000)


class Settings(_Strict):
    server: ServerSettings = ServerSettings()
    store: StoreSettings = StoreSettings()
    logging: LoggingSettings = LoggingSettings()
    translation: TranslationSettings = TranslationSettings()
    ask: AskSettings = AskSettings()
    providers: list[ProviderSettings] = Field(default_factory=list)
    aliases: dict[str, str] = Field(default_factory=dict)  # alias -> "provider_id:model" or "model"
    keys: list[KeySettings] = Field(default_factory=list)
    prices: list[PriceSettings] = Field(default_factory=list)
    demo: bool = False

    @field_validator("providers")
    @classmethod
    def _unique_ids(cls, v: list[ProviderSettings]) -> list[ProviderSettings]:
        seen: set[str] = set()
        for p in v:
            if p.id in seen:
                raise ValueError(f"duplicate provider id {p.id!r}")
            seen.add(p.id)
        return v

    @model_validator(mode="after")
    def _aliases_point_somewhere(self) -> "Settings":
        ids = {p.id for p in self.providers}
        for alias, target in self.aliases.items():
            prov, sep, model = target.partition(":")
            if sep and prov not in ids and not (prov == "demo" and self.demo):
                raise ValueError(f"aliases.{alias}: unknown provider {prov!r} in {target!r}")
            if sep and not model:
                raise ValueError(f"aliases.{alias}: empty model in {target!r}")
        return self

    @property
    def store_url(self) -> str:
        if self.store.url is not None:
            return self.store.url.get_secret_value()
        return f"sqlite+aiosqlite:///{(self.server.data_dir / 'tollway.db').as_posix()}"


def _interpolate(value: Any, path: str, env: dict[str, str], problems: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else k, env, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{path}[{i}]", env, problems) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in env:
                problems.append(f"{path}: environment variable {name} is not set")
                return ""
            return env[name]
        return _ENV_REF.sub(sub, value)
    return value


def _format_validation_error(err: ValidationError) -> list[str]:
    out = []
    for e in err.errors(include_input=False, include_url=False):
        loc = ""
        for part in e["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        msg = e["msg"].removeprefix("Value error, ")
        # a model-level check names its own key path ("aliases.fast: ...")
        out.append(f"{loc}: {msg}" if loc else msg)
    return out


def _env_providers(env: dict[str, str]) -> list[dict[str, Any]]:
    """Providers implied by the usual environment variables, when the config names none."""
    found: list[dict[str, Any]] = []
    for kind, key_var, url_var in (
        ("openai", "OPENAI_API_KEY", "OPENAI_BASE_URL"),
        ("anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
    ):
        if env.get(key_var) or env.get(url_var):
            p: dict[str, Any] = {"id": kind, "kind": kind}
            if env.get(key_var):
                p["api_key"] = env[key_var]
            if env.get(url_var):
                p["base_url"] = env[url_var]
            found.append(p)
    return found


def build_settings(raw: dict[str, Any], env: dict[str, str] | None = None, *, demo: bool = False) -> Settings:
    """Validate a parsed TOML document (plus environment) into Settings, or raise ConfigError."""
    env = dict(os.environ) if env is None else env
    problems: list[str] = []
    data = _interpolate(raw, "", env, problems)
    if problems:
        raise ConfigError(problems)
    if not data.get("providers"):
        data["providers"] = _env_providers(env)
    server = dict(data.get("server") or {})
    if env.get("TOLLWAY_MASTER_KEY") and not server.get("master_key"):
        server["master_key"] = env["TOLLWAY_MASTER_KEY"]
    if env.get("TOLLWAY_SECRET_KEY") and not server.get("secret_key"):
        server["secret_key"] = env["TOLLWAY_SECRET_KEY"]
    data["server"] = server
    if demo or data.get("demo"):
        data["demo"] = True
        if not any(p.get("kind") == "demo" for p in data["providers"]):
            taken = {p.get("id") for p in data["providers"]}
            demos = [{**p, "models": list(p.get("models", []))} for p in DEMO_PROVIDERS if p["id"] not in taken]
            data["providers"] = [*data["providers"], *demos]
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e)) from None


def load_settings(path: Path | None, env: dict[str, str] | None = None, *, demo: bool = False) -> Settings:
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"{path}: no such file"]) from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError([f"{path}: invalid TOML: {e}"]) from None
    return build_settings(raw, env, demo=demo)
