"""What the admin API and the CLI accept for keys, groups (teams, projects, customers) and
budgets. Validated with pydantic (not on the request path); the same models give /openapi.json
its request schemas, so the two cannot drift apart. Unknown fields are refused.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictFloat, StrictInt, field_validator

from tollway.config import MAX_BUDGET_USD, ProviderKind, parse_budget
from tollway.policy.keys import parse_duration
from tollway.slugs import checked_project

Role = Literal["user", "viewer", "admin"]
Scope = Literal["key", "team", "project", "customer"]
Window = Literal["day", "week", "month", "total"]
GROUP_KINDS: tuple[str, ...] = ("team", "project", "customer")
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _budget(v: str) -> str:
    parse_budget(v)
    return v


BudgetSpec = Annotated[str, AfterValidator(_budget)]


class _Limits(_In):
    rpm: StrictInt | None = Field(None, ge=1, le=2**31 - 1, description="Requests per minute.")
    tpm: StrictInt | None = Field(None, ge=1, le=2**53, description="Tokens (input + output) per minute.")
    budgets: list[BudgetSpec] | None = Field(None, description='USD budgets, e.g. ["5/day", "50/month"] (windows: day, '
                                                         'week, month, total; calendar UTC). On update: replaces all.')


class KeyFields(_Limits):
    name: str | None = Field(None, min_length=1, max_length=200)
    roles: list[Role] | None = Field(None, min_length=1, description="user: calls models; viewer: reads; "
                                                                      "admin: also changes. Default [\"user\"].")
    team: str | None = Field(None, max_length=200, description="An existing team's id.")
    project: str | None = Field(None, max_length=200, description="Default project of the key's calls.")
    customer: str | None = Field(None, max_length=200, description="Bill every call of the key to this customer.")
    max_concurrency: StrictInt | None = Field(None, ge=1, le=100_000)
    queue_timeout_ms: StrictInt | None = Field(None, ge=0, le=600_000, description="Over max_concurrency, wait this long "
                                                                             "for a slot (first come, first served).")
    models: list[str] | None = Field(None, description="Allowed models (globs, e.g. gpt-4o*). Absent: every model.")
    max_tokens: StrictInt | None = Field(None, ge=1, le=10_000_000, description="Largest max_tokens a call may ask for.")
    max_body_bytes: StrictInt | None = Field(None, ge=1, le=2**40)
    expires_in: str | None = Field(None, description="e.g. 30d, 24h; the key stops working then.")
    expires_at: StrictFloat | None = Field(None, ge=0, description="Unix seconds; alternative to expires_in.")
    credentials: dict[ProviderKind, str | None] | None = Field(
        None, description="Provider credentials used for this key's calls instead of the provider's api_key, by "
                          "provider kind (null removes one). Sealed with TOLLWAY_SECRET_KEY; never returned.")

    @field_validator("expires_in")
    @classmethod
    def _duration(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v

    @field_validator("project")
    @classmethod
    def _project(cls, v: str | None) -> str | None:
        return checked_project(v)

    @field_validator("models")
    @classmethod
    def _models(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and any(not isinstance(m, str) or not m.strip() for m in v):
            raise ValueError("model patterns must be non-empty strings")
        return v

    @field_validator("credentials")
    @classmethod
    def _creds(cls, v: dict[str, str | None] | None) -> dict[str, str | None] | None:
        for kind, value in (v or {}).items():
            if value is not None and (not value or any(c.isspace() for c in value)):
                raise ValueError(f"the {kind} credential is empty or has whitespace (value not shown)")
        return v


class KeyCreate(KeyFields):
    name: str = Field(min_length=1, max_length=200)  # type: ignore[assignment]


class KeyUpdate(KeyFields):
    pass


class KeyRotate(_In):
    grace: str | None = Field(None, description="How long the old secret keeps working, e.g. 24h (default: 0).")

    @field_validator("grace")
    @classmethod
    def _duration(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v


class GroupFields(_Limits):
    name: str | None = Field(None, max_length=200)


class GroupCreate(GroupFields):
    id: str = Field(min_length=1, max_length=200, pattern=_ID)


class GroupUpdate(GroupFields):
    pass


class BudgetFields(_In):
    limit: str | None = Field(None, description='"50/month": amount in USD and window, in one.')
    limit_usd: Decimal | None = Field(None, gt=0, le=MAX_BUDGET_USD, description="Amount in USD (a decimal string).")
    window: Window | None = None

    @field_validator("limit")
    @classmethod
    def _limit(cls, v: str | None) -> str | None:
        if v is not None:
            parse_budget(v)
        return v

    @field_validator("limit_usd")
    @classmethod
    def _nanos(cls, v: Decimal | None) -> Decimal | None:
        if v is not None and v.as_tuple().exponent < -9:  # type: ignore[operator]
            raise ValueError("at most 9 decimal places (budgets are counted in nano-dollars)")
        return v

    def amount_window(self) -> tuple[Decimal | None, str | None]:
        if self.limit is not None:
            return parse_budget(self.limit)
        return self.limit_usd, self.window


class BudgetCreate(BudgetFields):
    scope: Scope
    target: str = Field(min_length=1, max_length=200, description="The key id, team id, project or customer.")


class BudgetUpdate(BudgetFields):
    pass
