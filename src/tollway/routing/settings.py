"""Routing settings: `[[models]]` (deployments, fallbacks, policy) and `[routing]` (global
fallbacks, `auto`, breakers, `[[routing.profiles]]`). Referenced from `tollway.config`.

A target is the seed's `provider:model` (e.g. `"openai:gpt-4o"`). References to provider ids
are checked by `check_references` (called from `Settings`), so a typo is a start-up error
with its key path.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from tollway.config_types import Bool, Float, Int, StrictModel
from tollway.pipeline.attempt_settings import AttemptTimeoutSettings, RetrySettings

POLICIES: tuple[str, ...] = ("priority", "weighted", "cheapest", "fastest", "least_busy", "quality", "auto")
Policy = Literal["priority", "weighted", "cheapest", "fastest", "least_busy", "quality", "auto"]
CAPABILITIES: tuple[str, ...] = ("tools", "vision", "json")


_Strict = StrictModel


def _target(v: str) -> str:
    prov, sep, model = v.partition(":")
    if not sep or not prov.strip() or not model.strip():
        raise ValueError(f"a target is \"provider:model\" (e.g. \"openai:gpt-4o\"); got {v!r}")
    return v


Target = Annotated[str, AfterValidator(_target)]


class TimeoutSettings(_Strict):
    connect_secs: Float | None = Field(None, gt=0)
    first_token_secs: Float | None = Field(None, gt=0)  # request sent -> first content byte
    total_secs: Float | None = Field(None, gt=0)


class DeploymentSettings(_Strict):
    """One way to serve a `[[models]]` name."""

    target: Target  # "provider:model"
    weight: Float = Field(1.0, gt=0)  # the weighted policy's share among equal priorities
    priority: Int = 0  # lower is tried first
    max_rpm: Int | None = Field(None, ge=1)  # calls per clock minute on this instance; more: skipped
    max_tpm: Int | None = Field(None, ge=1)  # tokens answers reported per clock minute on this instance; more: skipped
    max_concurrency: Int | None = Field(None, ge=1)  # in flight on this instance; more: skipped
    timeouts: TimeoutSettings | None = None
    # what it can do, when the price data does not say: absent = assumed capable of everything
    capabilities: list[Literal["tools", "vision", "json"]] | None = None
    context_window: Int | None = Field(None, ge=1)  # tokens (input + output); absent: the price data's


class ModelSettings(_Strict):
    """`[[models]]`: a name clients ask for, the deployments that serve it, and how to choose."""

    name: str = Field(min_length=1)
    fallback_order: list[Target] = Field(default_factory=list)  # "provider:model", tried in order
    deployments: list[DeploymentSettings] = Field(default_factory=list)
    policy: Policy | None = None  # default: [routing] policy

    @model_validator(mode="after")
    def _some(self) -> "ModelSettings":
        if not self.fallback_order and not self.deployments:
            raise ValueError(f"model {self.name!r} needs deployments or a fallback_order")
        return self


class ProfileWeights(_Strict):
    cost: Float = Field(0.0, ge=0)
    latency: Float = Field(0.0, ge=0)
    quality: Float = Field(0.0, ge=0)


class ProfileSettings(_Strict):
    """`[[routing.profiles]]`: a named weight set over cost, latency and quality, with preferences."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    weights: ProfileWeights = ProfileWeights(cost=1.0, latency=1.0, quality=1.0)
    requires: list[Literal["tools", "vision", "json"]] = Field(default_factory=list)  # capabilities every pick has
    min_context: Int | None = Field(None, ge=1)  # smallest context window (tokens) a pick may have
    prefer: list[str] = Field(default_factory=list)  # provider ids or "provider:model" ranked first on ties


class BreakerSettings(_Strict):
    enabled: Bool = True
    failures: Int = Field(5, ge=1)  # consecutive failures that open a breaker
    error_rate: Float = Field(0.5, gt=0, le=1)  # ... or this share of failures within window_secs
    min_requests: Int = Field(20, ge=1)  # ... once at least this many calls were seen in the window
    window_secs: Float = Field(60.0, gt=0)
    cooldown_secs: Float = Field(30.0, gt=0)  # open -> half-open (one probe call) after this long


class RoutingSettings(_Strict):
    policy: Policy = "priority"  # the default of every [[models]] entry
    fallback_order: list[Target] = Field(default_factory=list)  # the global last resort, "provider:model"
    auto: Bool = False  # model "auto": pick among every eligible deployment
    auto_unknown_models: Bool = False  # with auto: a name nothing else routes is routed as "auto"
    breaker: BreakerSettings = BreakerSettings()
    ewma_alpha: Float = Field(0.2, gt=0, le=1)  # weight of the newest latency sample
    affinity_size: Int = Field(10_000, ge=0)  # sessions remembered (x-tollway-session, prompt_cache_key, user)
    quality_refresh_secs: Float = Field(30.0, gt=0)  # how often feedback scores are read from the store
    profiles: list[ProfileSettings] = Field(default_factory=list)
    retry: RetrySettings = RetrySettings()  # the attempt loop (pipeline.attempts): retries, deadlines
    timeouts: AttemptTimeoutSettings = AttemptTimeoutSettings()

    @field_validator("profiles")
    @classmethod
    def _unique(cls, v: list[ProfileSettings]) -> list[ProfileSettings]:
        seen: set[str] = set()
        for i, p in enumerate(v):
            if p.name in seen:
                raise ValueError(f"[{i}].name: duplicate profile {p.name!r}")
            seen.add(p.name)
        return v


def check_references(models: list[ModelSettings], routing: RoutingSettings, provider_ids: set[str],
                     key_profiles: list[tuple[int, str | None]]) -> list[str]:
    """Problems as "key.path: why" (empty when all is well)."""
    out: list[str] = []

    def target(path: str, t: str) -> None:
        prov = t.partition(":")[0]
        if prov not in provider_ids:
            out.append(f"{path}: unknown provider {prov!r} (configured: {', '.join(sorted(provider_ids)) or 'none'})")

    names: set[str] = set()
    for i, m in enumerate(models):
        if m.name in names:
            out.append(f"models[{i}].name: duplicate model {m.name!r}")
        names.add(m.name)
        for j, t in enumerate(m.fallback_order):
            target(f"models[{i}].fallback_order[{j}]", t)
        for j, d in enumerate(m.deployments):
            target(f"models[{i}].deployments[{j}].target", d.target)
    for j, t in enumerate(routing.fallback_order):
        target(f"routing.fallback_order[{j}]", t)
    profiles = {p.name for p in routing.profiles}
    for i, name in key_profiles:
        if name is not None and name not in profiles:
            out.append(f"keys[{i}].routing_profile: unknown profile {name!r} (add a [[routing.profiles]] entry)")
    return out
