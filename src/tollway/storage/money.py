"""Exact money conversion between `Decimal` USD and integer nano-USD.

The store keeps cost as a BIGINT count of 1e-9 USD so that SUM() is exact on SQLite (which
has no decimal type) and on Postgres alike. Everything outside the store sees `Decimal`.
`nanousd_from_decimal` rounds the amount's exact fraction in integers (half-even, as
quantize does) for any amount between 1e-40 and 1e30 USD, about twice as fast; outside that
range it quantizes, so every amount converts exactly as before.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

NANO = Decimal("0.000000001")
"""One nano-USD, the store's unit of money."""

INT64_MAX = 2**63 - 1

# Quantizing needs as many digits as the number has; the default context (28) is too small
# for very large amounts and would raise InvalidOperation instead of rounding.
_CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN)


def nanousd_from_decimal(d: Decimal | int | str | None) -> int | None:
    """USD → nano-USD, rounding half-even to the nearest 1e-9 USD.

    Raises ValueError for NaN, infinities and amounts a BIGINT cannot hold.
    """
    if d is None:
        return None
    value = d if isinstance(d, Decimal) else Decimal(d)
    if not value.is_finite():
        raise ValueError(f"cost is not a finite number: {d!r}")
    if -40 <= value.adjusted() <= 30:
        # Fast path (every call's cost, twice with a budget): the same half-even rounding done
        # on the exact fraction in integers: value * 1e9 = q + r/den, rounded up when r/den is
        # over one half, or exactly one half and q is odd. Equal to quantize() for any amount
        # (quantize needs prec 60 only beyond this range, where the general path below runs).
        n, den = value.as_integer_ratio()
        nanos, r = divmod(n * 1_000_000_000, den)
        r += r
        if r > den or (r == den and nanos & 1):
            nanos += 1
    else:
        nanos = int(value.quantize(NANO, context=_CONTEXT).scaleb(9, context=_CONTEXT))
    if abs(nanos) > INT64_MAX:
        raise ValueError(f"cost out of range: {d!r}")
    return nanos


def decimal_from_nanousd(n: int | Decimal | str | None) -> Decimal | None:
    """nano-USD → USD, exactly, always with nine decimal places.

    Accepts what drivers return for SUM(): int (SQLite, asyncpg for int columns) or
    Decimal (asyncpg for SUM over BIGINT).
    """
    if n is None:
        return None
    return Decimal(int(n)).scaleb(-9, context=_CONTEXT)


def format_usd(d: Decimal | None) -> str | None:
    """Decimal → plain decimal string ("0.000012345"), never scientific notation."""
    if d is None:
        return None
    return f"{d:f}"
