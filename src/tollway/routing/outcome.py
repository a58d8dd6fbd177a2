"""What the attempt loop tells the router's health board about each provider call.

The seam between executing a plan (`pipeline`, the attempt loop) and judging deployments
(`routing.health`: breakers, EWMAs, in-flight counts, credential cool-downs). The attempt loop
calls `started` before each upstream call and `finished` exactly once after it, whatever
happened; a credential the provider refused (401/403) or throttled (429) is cooled with
`cool`, and `cooling` tells the loop to skip it. Implementations live in `routing.health`
(in process, or shared through Redis when `[redis]` is set); they must never block the event
loop and never raise into the request path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tollway.routing.catalog import Deployment


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool  # the provider answered 2xx (a stream: it produced its first content byte)
    status: int | None  # HTTP status, None for connect errors and timeouts
    error_type: str | None  # e.g. "upstream_timeout", "upstream_connect", "provider:rate_limit_error"
    latency_s: float  # request sent -> headers (non-stream) or end (stream)
    ttft_s: float | None = None  # request sent -> first content byte (streams)
    retry_after_s: float | None = None  # from retry-after / retry-after-ms, when the provider gave one


class HealthBoard(Protocol):
    def started(self, dep: "Deployment", credential: str | None) -> None: ...

    def finished(self, dep: "Deployment", credential: str | None, outcome: Outcome) -> None: ...

    def cooling(self, provider_id: str, credential: str) -> bool: ...

    def cool(self, provider_id: str, credential: str, seconds: float) -> None: ...


class NoHealth:
    """Judges nothing: every deployment and credential is always available."""

    def started(self, dep: "Deployment", credential: str | None) -> None:
        return None

    def finished(self, dep: "Deployment", credential: str | None, outcome: Outcome) -> None:
        return None

    def cooling(self, provider_id: str, credential: str) -> bool:
        return False

    def cool(self, provider_id: str, credential: str, seconds: float) -> None:
        return None
