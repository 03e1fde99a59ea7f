"""Money as an integer number of minor units (cents) in one ISO 4217 currency. No floats anywhere.

Arithmetic between two amounts requires the same currency (``CurrencyMismatchError`` otherwise);
multiplication is by ``int`` only. Anything that divides (``scaled``, ``allocate``) says how it rounds:
``scaled`` takes an explicit :class:`Rounding`, ``allocate`` hands out the indivisible remainder one
minor unit at a time so the parts always add up to the whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Final

# ISO 4217 minor-unit exponents that differ from 2. Anything not listed has 2 decimals.
_EXPONENTS: Final[dict[str, int]] = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0, "RWF": 0,
    "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}
_SYMBOLS: Final[dict[str, str]] = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "CHF": "CHF"}


class CurrencyMismatchError(ValueError):
    """Two amounts in different currencies were combined or compared."""


class Rounding(StrEnum):
    """How a non-integral number of minor units becomes an integer."""

    UP = "up"  # towards +infinity (ceiling)
    DOWN = "down"  # towards -infinity (floor)
    HALF_UP = "half_up"  # nearest; exact halves away from zero
    HALF_EVEN = "half_even"  # nearest; exact halves to the even neighbour (banker's rounding)


def exponent(currency: str) -> int:
    """Number of decimals of ``currency``'s minor unit (EUR 2, JPY 0, KWD 3)."""
    return _EXPONENTS.get(currency, 2)


def divide(numerator: int, denominator: int, rounding: Rounding) -> int:
    """``numerator / denominator`` rounded to an integer, in integer arithmetic only."""
    if denominator == 0:
        raise ZeroDivisionError("division by zero")
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, remainder = divmod(numerator, denominator)  # floor division: 0 <= remainder < denominator
    if remainder == 0 or rounding is Rounding.DOWN:
        return quotient
    if rounding is Rounding.UP:
        return quotient + 1
    twice = 2 * remainder
    if twice > denominator:
        return quotient + 1
    if twice < denominator:
        return quotient
    if rounding is Rounding.HALF_EVEN:
        return quotient + (quotient % 2)
    return quotient + 1 if quotient >= 0 else quotient  # HALF_UP: away from zero


@dataclass(frozen=True, slots=True)
class Money:
    """An amount of ``minor`` units (e.g. cents) of ``currency`` (ISO 4217 code, e.g. ``"EUR"``)."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.minor) is not int:  # rejects bool, float and Decimal
            raise TypeError(f"Money.minor must be an int, not {type(self.minor).__name__}")
        if not (len(self.currency) == 3 and self.currency.isascii() and self.currency.isupper()
                and self.currency.isalpha()):
            raise ValueError(f"not an ISO 4217 currency code: {self.currency!r}")

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def of(cls, amount: str | int | Decimal, currency: str) -> Money:
        """From major units, exactly: ``Money.of("5.50", "EUR") == Money(550, "EUR")``.

        Floats are refused, and so is any amount with more decimals than the currency has."""
        if isinstance(amount, bool) or not isinstance(amount, str | int | Decimal):
            raise TypeError(f"amount must be str, int or Decimal, not {type(amount).__name__}")
        try:
            value = Decimal(amount)
        except InvalidOperation:
            raise ValueError(f"not an amount: {amount!r}") from None
        if not value.is_finite():
            raise ValueError(f"not an amount: {amount!r}")
        scaled = value.scaleb(exponent(currency))
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{amount!r} has more decimals than {currency} allows ({exponent(currency)})")
        return cls(int(scaled), currency)

    # --- arithmetic -----------------------------------------------------------------------

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatchError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __mul__(self, factor: int) -> Money:
        if type(factor) is not int:
            return NotImplemented
        return Money(self.minor * factor, self.currency)

    __rmul__ = __mul__

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def scaled(self, numerator: int, denominator: int, rounding: Rounding) -> Money:
        """``self * numerator / denominator``, rounded to a whole minor unit as ``rounding`` says."""
        return Money(divide(self.minor * numerator, denominator, rounding), self.currency)

    def allocate(self, ratios: Sequence[int]) -> list[Money]:
        """Split in proportion to non-negative integer ``ratios`` without losing a minor unit.

        Each part first gets its floor share; the leftover units go one each to the parts with the
        largest remainders (earliest first on ties). The parts always sum to ``self``."""
        if not ratios or any(type(r) is not int or r < 0 for r in ratios) or sum(ratios) == 0:
            raise ValueError("ratios must be non-negative ints with a positive sum")
        total = sum(ratios)
        sign = -1 if self.minor < 0 else 1
        whole = abs(self.minor)
        shares = [divmod(whole * r, total) for r in ratios]
        parts = [q for q, _ in shares]
        leftover = whole - sum(parts)
        by_remainder = sorted(range(len(ratios)), key=lambda i: (-shares[i][1], i))
        for i in by_remainder[:leftover]:
            parts[i] += 1
        return [Money(sign * p, self.currency) for p in parts]

    def split(self, n: int) -> list[Money]:
        """``n`` near-equal parts that sum to ``self`` (the first ones get the extra minor units)."""
        if type(n) is not int or n <= 0:
            raise ValueError("n must be a positive int")
        return self.allocate([1] * n)

    # --- comparison -----------------------------------------------------------------------

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.minor <= other.minor

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor > other.minor

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.minor >= other.minor

    def is_zero(self) -> bool:
        return self.minor == 0

    def is_negative(self) -> bool:
        return self.minor < 0

    # --- formatting -----------------------------------------------------------------------

    def amount(self) -> Decimal:
        """The amount in major units, exactly (``Decimal("5.50")``)."""
        return Decimal(self.minor).scaleb(-exponent(self.currency))

    def format(self, *, decimal_sep: str = ".", symbol: bool = False) -> str:
        """``"5.50 EUR"`` by default; ``format(decimal_sep=",", symbol=True)`` gives ``"5,50 €"``."""
        digits = exponent(self.currency)
        sign = "-" if self.minor < 0 else ""
        major, minor = divmod(abs(self.minor), 10 ** digits)
        number = f"{sign}{major}" + (f"{decimal_sep}{minor:0{digits}d}" if digits else "")
        unit = _SYMBOLS.get(self.currency, self.currency) if symbol else self.currency
        return f"{number} {unit}"

    def __str__(self) -> str:
        return self.format()


def total(amounts: Sequence[Money], currency: str) -> Money:
    """Sum of ``amounts`` (all in ``currency``); zero when empty."""
    result = Money.zero(currency)
    for m in amounts:
        result = result + m
    return result
