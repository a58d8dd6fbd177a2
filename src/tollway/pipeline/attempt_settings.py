"""Settings of the attempt loop (`[routing.retry]`, `[routing.timeouts]`), and a provider's
credential profiles (`[[providers.profiles]]`).

Kept out of `config.py` so that the router's settings and these grow apart; `config.py` only
hangs them under `[routing]` and `[[providers]]`.
"""

from __future__ import annotations


from pydantic import Field, SecretStr, model_validator

from tollway.config_types import Float as _Float
from tollway.config_types import Int as _Int
from tollway.config_types import StrictModel as _Frozen


class RetrySettings(_Frozen):
    """How a request is retried on a retryable failure (429, 500, 502, 503, 504, 529, connect
    errors, timeouts), before it falls back to the plan's next deployment."""

    # retries of the same deployment after its first attempt (0: straight to the next deployment;
    # the official SDKs retry on their own, so a retry here multiplies theirs)
    retries: _Int = Field(0, ge=0, le=10)
    max_attempts: _Int = Field(6, ge=1, le=50)  # provider calls per request, every deployment together
    backoff_base_ms: _Int = Field(250, ge=0, le=60_000)  # first retry waits about this long, doubling after
    backoff_max_ms: _Int = Field(8_000, ge=0, le=300_000)
    # a provider's retry-after longer than this: try the next deployment instead of waiting
    max_retry_after_secs: _Float = Field(10.0, ge=0, le=3600)
    # a credential the provider refused (401/403) cools this long; a 429 cools for its retry-after, else this
    cooldown_secs: _Float = Field(60.0, gt=0, le=86_400)


class AttemptTimeoutSettings(_Frozen):
    """Default deadlines of one provider call; a deployment's own `timeouts` win. Unset: the
    [server] connect_timeout_secs, and no deadline but the [server] read_timeout_secs idle timer."""

    connect_secs: _Float | None = Field(None, gt=0)
    first_token_secs: _Float | None = Field(None, gt=0)  # streams: to the first content byte; else to headers
    total_secs: _Float | None = Field(None, gt=0)
    # streams that may still fall back hold their preamble (role-only, empty first events) until the
    # first real token; past this many bytes the stream is sent as it is (no more fallback)
    holdback_bytes: _Int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # ... or past this many seconds of preamble without a token (pings): a stall without any bytes ends
    # at first_token_secs, else at the [server] read_timeout_secs idle timer
    holdback_secs: _Float = Field(30.0, gt=0, le=3600)


class CredentialProfile(_Frozen):
    """One credential of a provider (the seed's auth profiles)."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    api_key: SecretStr | None = Field(None, repr=False)
    api_key_env: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_key(self) -> "CredentialProfile":
        if (self.api_key is None) == (self.api_key_env is None):
            raise ValueError(f"profile {self.name!r}: set exactly one of api_key and api_key_env")
        return self
