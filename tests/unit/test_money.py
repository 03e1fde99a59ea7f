"""Money: integer minor units, one currency, nothing lost when dividing."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voltlib.domain.money import CurrencyMismatchError, Money, Rounding, divide, exponent, total

EUR = "EUR"


def eur(minor: int) -> Money:
    return Money(minor, EUR)


def test_of_parses_major_units_exactly() -> None:
    assert Money.of("5.50", EUR) == eur(550)
    assert Money.of(144, EUR) == eur(14400)
    assert Money.of(Decimal("0.01"), EUR) == eur(1)
    assert Money.of("-3", EUR) == eur(-300)
    assert Money.of("1500", "JPY") == Money(1500, "JPY")
    assert Money.of("1.234", "KWD") == Money(1234, "KWD")


@pytest.mark.parametrize("bad", ["5.555", "abc", "NaN", "Infinity", ""])
def test_of_refuses_what_is_not_an_exact_amount(bad: str) -> None:
    with pytest.raises(ValueError):
        Money.of(bad, EUR)


def test_floats_are_refused_everywhere() -> None:
    with pytest.raises(TypeError):
        Money.of(5.5, EUR)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(5.0, EUR)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True, EUR)
    with pytest.raises(TypeError):
        eur(100) * 1.5  # type: ignore[operator]


@pytest.mark.parametrize("code", ["eur", "EU", "EURO", "E1R", ""])
def test_currency_must_be_an_iso_code(code: str) -> None:
    with pytest.raises(ValueError):
        Money(1, code)


def test_arithmetic() -> None:
    assert eur(500) + eur(400) == eur(900)
    assert eur(500) - eur(600) == eur(-100)
    assert eur(600) * 3 == eur(1800) == 3 * eur(600)
    assert -eur(5) == eur(-5)
    assert total([eur(1), eur(2), eur(3)], EUR) == eur(6)
    assert total([], EUR) == Money.zero(EUR)


def test_mixing_currencies_raises() -> None:
    usd = Money(100, "USD")
    for op in (lambda: eur(1) + usd, lambda: eur(1) - usd, lambda: eur(1) < usd, lambda: eur(1) >= usd,
               lambda: total([eur(1), usd], EUR)):
        with pytest.raises(CurrencyMismatchError):
            op()
    assert eur(100) != usd  # equality is plain value equality, never an error


def test_comparisons() -> None:
    assert eur(1) < eur(2) <= eur(2) < eur(3)
    assert eur(3) > eur(2) >= eur(2)
    assert eur(0).is_zero() and eur(-1).is_negative() and not eur(1).is_negative()


@pytest.mark.parametrize(("numerator", "denominator", "rounding", "expected"), [
    (7, 2, Rounding.UP, 4), (7, 2, Rounding.DOWN, 3), (7, 2, Rounding.HALF_UP, 4), (7, 2, Rounding.HALF_EVEN, 4),
    (5, 2, Rounding.HALF_EVEN, 2), (5, 2, Rounding.HALF_UP, 3), (-5, 2, Rounding.HALF_UP, -3),
    (-5, 2, Rounding.HALF_EVEN, -2), (-7, 2, Rounding.UP, -3), (-7, 2, Rounding.DOWN, -4),
    (10, 3, Rounding.HALF_UP, 3), (11, 3, Rounding.HALF_UP, 4), (6, 3, Rounding.UP, 2), (7, -2, Rounding.DOWN, -4),
])
def test_divide_rounds_as_told(numerator: int, denominator: int, rounding: Rounding, expected: int) -> None:
    assert divide(numerator, denominator, rounding) == expected


def test_divide_by_zero() -> None:
    with pytest.raises(ZeroDivisionError):
        divide(1, 0, Rounding.UP)


@given(st.integers(-10**9, 10**9), st.integers(1, 10**6))
def test_divide_agrees_with_exact_fractions(numerator: int, denominator: int) -> None:
    exact = Fraction(numerator, denominator)
    up, down = divide(numerator, denominator, Rounding.UP), divide(numerator, denominator, Rounding.DOWN)
    assert down <= exact <= up and up - down <= 1
    assert abs(divide(numerator, denominator, Rounding.HALF_UP) - exact) <= Fraction(1, 2)
    assert abs(divide(numerator, denominator, Rounding.HALF_EVEN) - exact) <= Fraction(1, 2)


def test_scaled_per_minute_price() -> None:
    # 25 minutes at 5.00 EUR per half hour = 4.1666... EUR
    assert eur(500).scaled(25, 30, Rounding.HALF_UP) == eur(417)
    assert eur(500).scaled(25, 30, Rounding.DOWN) == eur(416)


def test_allocate_hands_out_leftover_cents() -> None:
    assert eur(100).split(3) == [eur(34), eur(33), eur(33)]
    assert eur(5).allocate([3, 7]) == [eur(2), eur(3)]  # 1.5 and 3.5: the leftover cent to the earliest tie
    assert eur(10).allocate([1, 2]) == [eur(3), eur(7)]  # 3.33 and 6.67: to the largest remainder
    assert eur(-100).split(3) == [eur(-34), eur(-33), eur(-33)]
    assert eur(10).allocate([0, 1]) == [eur(0), eur(10)]


@pytest.mark.parametrize("ratios", [[], [0, 0], [1, -1]])
def test_allocate_refuses_bad_ratios(ratios: list[int]) -> None:
    with pytest.raises(ValueError):
        eur(100).allocate(ratios)


@given(st.integers(-10**12, 10**12), st.lists(st.integers(0, 1000), min_size=1, max_size=12).filter(any))
def test_allocate_never_loses_a_cent(minor: int, ratios: list[int]) -> None:
    parts = eur(minor).allocate(ratios)
    assert sum(p.minor for p in parts) == minor
    assert all(p.currency == EUR for p in parts)
    for part, ratio in zip(parts, ratios, strict=True):  # each part within one cent of its exact share
        assert abs(part.minor - Fraction(minor * ratio, sum(ratios))) < 1


def test_formatting() -> None:
    assert str(eur(550)) == "5.50 EUR"
    assert eur(5).format() == "0.05 EUR"
    assert eur(-1205).format() == "-12.05 EUR"
    assert eur(14400).format(decimal_sep=",", symbol=True) == "144,00 €"
    assert Money(1500, "JPY").format(symbol=True) == "1500 ¥"
    assert Money(1234, "KWD").format() == "1.234 KWD"
    assert eur(550).amount() == Decimal("5.50")
    assert exponent("JPY") == 0 and exponent("EUR") == 2


@given(st.integers(-10**12, 10**12), st.sampled_from(["EUR", "JPY", "KWD", "USD"]))
def test_format_and_of_round_trip(minor: int, currency: str) -> None:
    m = Money(minor, currency)
    assert Money.of(m.format().split()[0], currency) == m
    assert Money.of(m.amount(), currency) == m
