"""nano-USD conversion: exact, half-even, and loud about what it cannot store."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tollway.storage.money import (
    INT64_MAX,
    decimal_from_nanousd,
    format_usd,
    nanousd_from_decimal,
)


@pytest.mark.parametrize(
    "usd",
    [
        "0", "0.000000001", "0.000012345", "1.5", "123456789.123456789", "-0.25",
        "9223372036.854775807",  # the largest BIGINT of nano-USD
    ],  # fmt: skip
)
def test_round_trip_is_exact(usd: str) -> None:
    nanos = nanousd_from_decimal(Decimal(usd))
    assert isinstance(nanos, int)
    assert decimal_from_nanousd(nanos) == Decimal(usd)


@pytest.mark.parametrize(
    ("usd", "nanos"),
    [
        ("0.0000000005", 0),  # half to even: down to 0
        ("0.0000000015", 2),  # half to even: up to 2
        ("0.0000000025", 2),
        ("0.00000000250001", 3),
        ("-0.0000000015", -2),
        ("0.0000000004999", 0),
    ],
)
def test_rounds_half_even(usd: str, nanos: int) -> None:
    assert nanousd_from_decimal(Decimal(usd)) == nanos


def test_none_passes_through() -> None:
    assert nanousd_from_decimal(None) is None
    assert decimal_from_nanousd(None) is None
    assert format_usd(None) is None


def test_accepts_what_drivers_return_for_sums() -> None:
    # SQLite returns int, asyncpg returns Decimal for SUM(bigint).
    assert decimal_from_nanousd(12345) == Decimal("0.000012345")
    assert decimal_from_nanousd(Decimal("12345")) == Decimal("0.000012345")


def test_formats_without_exponent() -> None:
    assert format_usd(decimal_from_nanousd(1)) == "0.000000001"
    assert format_usd(decimal_from_nanousd(0)) == "0.000000000"
    assert format_usd(decimal_from_nanousd(12345)) == "0.000012345"
    assert format_usd(decimal_from_nanousd(10**20)) == "100000000000.000000000"


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_rejects_non_finite(bad: Decimal) -> None:
    with pytest.raises(ValueError):
        nanousd_from_decimal(bad)


def test_rejects_what_bigint_cannot_hold() -> None:
    assert nanousd_from_decimal(Decimal(INT64_MAX).scaleb(-9)) == INT64_MAX
    with pytest.raises(ValueError):
        nanousd_from_decimal(Decimal(INT64_MAX + 1).scaleb(-9))
    with pytest.raises(ValueError):
        nanousd_from_decimal(Decimal("1e40"))
