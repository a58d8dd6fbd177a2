"""The in-memory shape of policy: budgets, limits of a key / team / project / customer, and
what a key may do. Built by `directory` from config and the store; read on every request,
so the hot-path parts cache what they can (a budget's current window, an allow-list's answers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tollway.policy.windows import Window, window_at

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tollway.policy.allowlist import AllowList

SCOPES: tuple[str, ...] = ("key", "team", "project", "customer")


def _usd(nanos: int) -> str:
    return f"{nanos // 1_000_000_000}.{nanos % 1_000_000_000:09d}"


class Budget:
    """A USD limit on a scope's spend in a window. `id` names its counters."""

    __slots__ = ("id", "scope", "target", "limit", "window", "source", "_win", "_key", "headers")

    def __init__(self, id: str, scope: str, target: str, limit: int, window: str, source: str) -> None:
        self.id = id
        self.scope = scope
        self.target = target
        self.limit = limit  # nano-USD
        self.window = window
        self.source = source  # "config" | "store"
        self._win: Window | None = None
        self._key = ""
        self.headers: tuple[bytes, bytes, bytes] = (b"", b"", b"")  # name, limit, reset: of the cached window

    def __repr__(self) -> str:
        return f"Budget({self.id!r}, {self.scope}:{self.target}, {self.limit_usd}/{self.window})"

    @property
    def limit_usd(self) -> Decimal:
        return Decimal(self.limit).scaleb(-9)

    @property
    def name(self) -> str:
        """How messages and headers name it: "team:alpha/month"."""
        return f"{self.scope}:{self.target}/{self.window}"

    def current(self, t: float) -> tuple[Window, str]:
        """The window holding time `t` and its counter's name (cached until the window ends)."""
        w = self._win
        if w is None or not (w.start <= t < w.end):
            w = window_at(self.window, t)
            key = f"b:{self.id}:{w.label}"
            if self._win is None or t >= self._win.start:  # keep the newest window cached
                self._win, self._key = w, key
                self.headers = (self.name.encode(), _usd(self.limit).encode(), (w.reset or "never").encode())
            return w, key
        return w, self._key


@dataclass(eq=False, slots=True)
class Limits:
    """Rate limits and budgets of one key, team, project or customer."""

    scope: str
    id: str
    rpm: int | None = None
    tpm: int | None = None
    budgets: tuple[Budget, ...] = ()
    name: str | None = None
    source: str = "config"
    rpm_charge: Any = None  # the RateCharge of its RPM limit: the same for every request
    tpm_name: str = ""  # its TPM counter and how messages name that limit (made once, read per request)
    tpm_label: str = ""
    tpm_b: bytes = b""

    def __post_init__(self) -> None:
        if self.rpm is not None:
            from tollway.counters.base import RateCharge

            self.rpm_charge = RateCharge(self.rpm_key, self.rpm, 60_000, 1, False, f"{self.label} requests per minute",
                                         str(self.rpm).encode())
        self.tpm_name, self.tpm_label = self.tpm_key, f"{self.label} tokens per minute"
        self.tpm_b = str(self.tpm).encode() if self.tpm is not None else b""

    @property
    def rpm_key(self) -> str:
        return f"r:{self.scope}:{self.id}"

    @property
    def tpm_key(self) -> str:
        return f"t:{self.scope}:{self.id}"

    @property
    def label(self) -> str:
        return f"{self.scope} '{self.id}'"

    @property
    def empty(self) -> bool:
        return self.rpm is None and self.tpm is None and not self.budgets


class Recipe:
    """What a sequence of limits asks of each request, in their order: `rates` holds each
    limit's RPM charge (the same for every request) or, for a TPM limit, the Limits itself (its
    charge depends on the request's tokens); `budgets` every budget; and whether the request's
    tokens or its worst-case cost must be known. A key's own limits have theirs made once."""

    __slots__ = ("rates", "budgets", "needs_tokens", "needs_cost")

    def __init__(self, rates: tuple[Any, ...], budgets: tuple[Budget, ...], needs_tokens: bool) -> None:
        self.rates = rates
        self.budgets = budgets
        self.needs_tokens = needs_tokens
        self.needs_cost = bool(budgets)


def recipe(limits: "Sequence[Limits]") -> Recipe:
    rates: list[Any] = []
    for lim in limits:
        if lim.rpm_charge is not None:
            rates.append(lim.rpm_charge)
        if lim.tpm is not None:
            rates.append(lim)
    return Recipe(tuple(rates), tuple(b for lim in limits for b in lim.budgets),
                  any(lim.tpm is not None for lim in limits))


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """What a key may do beyond calling models at all; None on KeyInfo when it has no limits."""

    own: Limits | None = None
    team: Limits | None = None
    max_concurrency: int | None = None
    queue_timeout_ms: int = 0
    models: "AllowList | None" = None
    max_tokens: int | None = None
    max_body_bytes: int | None = None
    # made once, read per request: the key's own and its team's limits, and whether any static
    # check (allow-list, max_tokens, body size) applies
    limits: "tuple[Limits, ...]" = field(init=False, compare=False, repr=False, default=())
    static_checks: bool = field(init=False, compare=False, repr=False, default=False)
    # what those limits ask of every request (`recipe`), made once
    recipe: "Recipe | None" = field(init=False, compare=False, repr=False, default=None)

    def __post_init__(self) -> None:
        limits = tuple(lim for lim in (self.own, self.team) if lim is not None)
        object.__setattr__(self, "limits", limits)
        object.__setattr__(self, "recipe", recipe(limits))
        object.__setattr__(self, "static_checks", self.models is not None or self.max_tokens is not None
                           or self.max_body_bytes is not None)

    @property
    def counted(self) -> bool:
        """Anything that needs the counters (rates, budgets, concurrency)."""
        return self.own is not None or self.team is not None or self.max_concurrency is not None
