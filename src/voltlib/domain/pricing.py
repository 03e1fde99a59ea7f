"""Subscription plans and their price rules, as data, and the pricing of one rental.

A :class:`Plan` (fee, period, rule) loads from a plain dict (``Plan.from_dict``) or from TOML text
(``load_plans``); nothing about a city's tariff is code. ``PARIS_2011`` holds Autolib's launch tariff.

Rounding, the whole of it (see also docs/car-sharing.md):

1. **Minutes.** A rental's duration is ``ended_at - started_at``. Every *started* minute counts as a
   whole minute (ceiling), and a rental always counts at least one minute, then at least the rule's
   ``minimum_minutes`` (20 for the per-minute variant: "the first 20 minutes are always billed").
2. **Period billing** (``billing = "period"``): every *started* period (half hour) is billed in full:
   ``periods = ceil(minutes / period_minutes)``. 25 min = 1 half hour, 30 min = 1, 30 min 1 s = 2.
   Amounts are exact multiples of the band price; no rounding of money happens.
3. **Minute billing** (``billing = "minute"``): minute *n* belongs to period ``ceil(n / period_minutes)``
   and costs that period's band price / ``period_minutes``. Each line (one per band) is
   ``band price × minutes / period_minutes`` rounded once to a whole cent with the rule's ``rounding``
   (default half-up); the total is the sum of the rounded lines.

Every step is monotonic, so a longer rental never costs less (property-tested).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from voltlib.domain.money import Money, Rounding, divide


class Billing(StrEnum):
    PERIOD = "period"  # every started period billed in full
    MINUTE = "minute"  # pro rata per started minute, after a minimum


class PlanError(ValueError):
    """A plan or rule definition that cannot be used."""


def _money(value: Any, currency: str, where: str) -> Money:
    if isinstance(value, Money):
        if value.currency != currency:
            raise PlanError(f"{where}: {value.currency} in a {currency} plan")
        return value
    if isinstance(value, float):
        raise PlanError(f"{where}: give amounts as strings (\"5.00\"), not floats")
    try:
        return Money.of(value, currency)
    except (TypeError, ValueError) as e:
        raise PlanError(f"{where}: {e}") from None


def _int(data: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = data.get(key, default)
    if type(value) is not int:
        raise PlanError(f"{key} must be an integer, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Band:
    """``periods`` successive periods at ``price`` each; ``periods=None`` means every further period."""

    price: Money
    periods: int | None = None
    label: str | None = None


@dataclass(frozen=True, slots=True)
class PriceRule:
    bands: tuple[Band, ...]
    billing: Billing = Billing.PERIOD
    period_minutes: int = 30
    minimum_minutes: int = 0
    rounding: Rounding = Rounding.HALF_UP  # of minute-billed lines only

    def __post_init__(self) -> None:
        if not self.bands:
            raise PlanError("a rule needs at least one band")
        if self.period_minutes <= 0 or self.minimum_minutes < 0:
            raise PlanError("period_minutes must be > 0 and minimum_minutes >= 0")
        *bounded, last = self.bands
        if last.periods is not None or any(b.periods is None or b.periods <= 0 for b in bounded):
            raise PlanError("every band but the last needs periods > 0; the last band is open-ended")
        if len({b.price.currency for b in self.bands}) != 1:
            raise PlanError("all bands of a rule must be in one currency")
        if any(b.price.is_negative() for b in self.bands):
            raise PlanError("band prices cannot be negative")

    @property
    def currency(self) -> str:
        return self.bands[0].price.currency

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], currency: str) -> PriceRule:
        raw_bands = data.get("bands")
        if not isinstance(raw_bands, list):
            raise PlanError("rule.bands must be a list")
        bands = []
        for i, b in enumerate(raw_bands):
            if not isinstance(b, Mapping):
                raise PlanError(f"rule.bands[{i}] must be a table")
            periods = b.get("periods")
            if periods is not None and type(periods) is not int:
                raise PlanError(f"rule.bands[{i}].periods must be an integer")
            bands.append(Band(_money(b.get("price"), currency, f"rule.bands[{i}].price"), periods, b.get("label")))
        try:
            billing = Billing(data.get("billing", "period"))
            rounding = Rounding(data.get("rounding", "half_up"))
        except ValueError as e:
            raise PlanError(str(e)) from None
        return cls(tuple(bands), billing, _int(data, "period_minutes", 30), _int(data, "minimum_minutes", 0),
                   rounding)

    def to_dict(self) -> dict[str, Any]:
        bands: list[dict[str, Any]] = []
        for b in self.bands:
            band: dict[str, Any] = {"price": str(b.price.amount())}
            if b.periods is not None:
                band["periods"] = b.periods
            if b.label is not None:
                band["label"] = b.label
            bands.append(band)
        return {"billing": self.billing.value, "period_minutes": self.period_minutes,
                "minimum_minutes": self.minimum_minutes, "rounding": self.rounding.value, "bands": bands}

    def band_label(self, index: int) -> str:
        band = self.bands[index]
        if band.label:
            return band.label
        first = 1 + sum(b.periods or 0 for b in self.bands[:index])
        if band.periods is None:
            return f"periods {first}+"
        return f"period {first}" if band.periods == 1 else f"periods {first}-{first + band.periods - 1}"


@dataclass(frozen=True, slots=True)
class Plan:
    """A subscription: ``fee`` for ``period_days`` of access, and the ``rule`` pricing each rental."""

    code: str
    name: str
    fee: Money
    period_days: int
    rule: PriceRule
    source: str | None = None  # where the figures come from, and how sure we are

    def __post_init__(self) -> None:
        if not self.code:
            raise PlanError("a plan needs a code")
        if self.period_days <= 0:
            raise PlanError("period_days must be > 0")
        if self.fee.is_negative():
            raise PlanError("a plan fee cannot be negative")
        if self.fee.currency != self.rule.currency:
            raise PlanError("fee and rule must be in the same currency")

    @property
    def currency(self) -> str:
        return self.fee.currency

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """From ``{"code", "name", "currency", "fee", "period_days", "rule": {...}, "source"?}``;
        amounts are strings in major units ("144.00")."""
        currency = data.get("currency")
        if not isinstance(currency, str):
            raise PlanError("plan.currency must be a string")
        rule = data.get("rule")
        if not isinstance(rule, Mapping):
            raise PlanError("plan.rule must be a table")
        code, name, source = data.get("code"), data.get("name"), data.get("source")
        if not isinstance(code, str) or not isinstance(name, str) or not isinstance(source, str | None):
            raise PlanError("plan.code and plan.name must be strings")
        try:
            return cls(code, name, _money(data.get("fee"), currency, "plan.fee"), _int(data, "period_days"),
                       PriceRule.from_dict(rule, currency), source)
        except ValueError as e:  # e.g. a bad currency code
            raise PlanError(f"plan {code!r}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "name": self.name, "currency": self.currency,
                               "fee": str(self.fee.amount()), "period_days": self.period_days,
                               "rule": self.rule.to_dict()}
        if self.source is not None:
            out["source"] = self.source
        return out


def load_plans(toml_text: str) -> dict[str, Plan]:
    """Plans from TOML text with one ``[[plan]]`` table per plan (see ``PARIS_2011_TOML``)."""
    try:
        doc = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        raise PlanError(f"invalid TOML: {e}") from None
    plans = [Plan.from_dict(p) for p in doc.get("plan", [])]
    by_code = {p.code: p for p in plans}
    if len(by_code) != len(plans):
        raise PlanError("duplicate plan codes")
    return by_code


# --- pricing ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PriceLine:
    """``quantity`` ``unit``s at ``unit_price`` per ``per`` units: amount = unit_price × quantity / per
    (``per`` is 1 except on minute-billed lines, where it is the period length in minutes)."""

    label: str
    quantity: int
    unit: str
    unit_price: Money
    amount: Money
    per: int = 1


@dataclass(frozen=True, slots=True)
class PriceBreakdown:
    plan_code: str
    started_at: datetime
    ended_at: datetime
    billed_minutes: int
    lines: tuple[PriceLine, ...]
    total: Money

    def __post_init__(self) -> None:
        if sum(line.amount.minor for line in self.lines) != self.total.minor:
            raise ValueError("lines do not add up to the total")
        if any(line.amount.currency != self.total.currency for line in self.lines):
            raise ValueError("lines and total in different currencies")

    @property
    def currency(self) -> str:
        return self.total.currency


_MINUTE_US: Final = 60_000_000


def billed_minutes(rule: PriceRule, started_at: datetime, ended_at: datetime) -> int:
    """Started minutes of the rental, at least 1, at least ``rule.minimum_minutes``."""
    if started_at.tzinfo is None or ended_at.tzinfo is None:
        raise ValueError("started_at and ended_at must be timezone-aware")
    if ended_at < started_at:
        raise ValueError("a rental cannot end before it starts")
    microseconds = (ended_at - started_at) // timedelta(microseconds=1)
    return max(1, -(-microseconds // _MINUTE_US), rule.minimum_minutes)


def _spread(rule: PriceRule, quantity: int, per_period: int) -> list[int]:
    """How many of ``quantity`` units (periods, or minutes at ``per_period`` a period) fall in each
    band, in order, trailing empty bands dropped."""
    counts: list[int] = []
    for band in rule.bands:
        if quantity <= 0:
            break
        n = quantity if band.periods is None else min(quantity, band.periods * per_period)
        counts.append(n)
        quantity -= n
    return counts


def price_rental(plan: Plan, started_at: datetime, ended_at: datetime) -> PriceBreakdown:
    """What a rental from ``started_at`` to ``ended_at`` costs under ``plan`` (module doc: rounding)."""
    rule = plan.rule
    minutes = billed_minutes(rule, started_at, ended_at)
    unit_name = f"{rule.period_minutes} min"
    lines: list[PriceLine] = []
    if rule.billing is Billing.PERIOD:
        periods = divide(minutes, rule.period_minutes, Rounding.UP)
        for i, n in enumerate(_spread(rule, periods, 1)):
            price = rule.bands[i].price
            lines.append(PriceLine(rule.band_label(i), n, unit_name, price, price * n))
    else:
        for i, n in enumerate(_spread(rule, minutes, rule.period_minutes)):
            price = rule.bands[i].price
            lines.append(PriceLine(f"{rule.band_label(i)} (per minute)", n, "min", price,
                                   price.scaled(n, rule.period_minutes, rule.rounding), rule.period_minutes))
    total = Money(sum(line.amount.minor for line in lines), plan.currency)
    return PriceBreakdown(plan.code, started_at, ended_at, minutes, tuple(lines), total)


def subscription_line(plan: Plan) -> PriceLine:
    """The invoice line of one subscription period's fee."""
    return PriceLine(f"{plan.name}: subscription", 1, f"{plan.period_days} days", plan.fee, plan.fee)


# --- Autolib' Paris, 2011 --------------------------------------------------------------------

PARIS_2011_TOML: Final = '''
# Autolib' (Paris), prices at the December 2011 launch. Sources: voltlib/sharing/data/README.md
# ("tariffs at the December 2011 launch"), from the 2011 press coverage of the launch.

[[plan]]
code = "premium"
name = "Premium (1 year)"
currency = "EUR"
fee = "144.00"
period_days = 365
source = "Autolib' 2011 launch tariff: 144 EUR/year, then 5 / 4 / 6 EUR per successive half hour"
[plan.rule]
billing = "period"
period_minutes = 30
bands = [
  { price = "5.00", periods = 1, label = "1st half hour" },
  { price = "4.00", periods = 1, label = "2nd half hour" },
  { price = "6.00", label = "each further half hour" },
]

[[plan]]
code = "week"
name = "1-week pass"
currency = "EUR"
fee = "15.00"
period_days = 7
source = "as published in 2011 press coverage; verify: 15 EUR/week, then 7 / 6 / 8 EUR per successive half hour"
[plan.rule]
billing = "period"
period_minutes = 30
bands = [
  { price = "7.00", periods = 1, label = "1st half hour" },
  { price = "6.00", periods = 1, label = "2nd half hour" },
  { price = "8.00", label = "each further half hour" },
]

[[plan]]
code = "day"
name = "1-day pass"
currency = "EUR"
fee = "10.00"
period_days = 1
source = "as published in 2011 press coverage; verify: 10 EUR/day, then 7 / 6 / 8 EUR per successive half hour"
[plan.rule]
billing = "period"
period_minutes = 30
bands = [
  { price = "7.00", periods = 1, label = "1st half hour" },
  { price = "6.00", periods = 1, label = "2nd half hour" },
  { price = "8.00", label = "each further half hour" },
]

[[plan]]
code = "premium-minute"
name = "Premium (1 year), per-minute billing"
currency = "EUR"
fee = "144.00"
period_days = 365
source = """'the first 20 minutes are always billed, then per minute' (2011 press coverage; verify). \
Per-minute price = the half-hour band price / 30, an interpretation."""
[plan.rule]
billing = "minute"
period_minutes = 30
minimum_minutes = 20
rounding = "half_up"
bands = [
  { price = "5.00", periods = 1, label = "1st half hour" },
  { price = "4.00", periods = 1, label = "2nd half hour" },
  { price = "6.00", label = "each further half hour" },
]
'''

PARIS_2011: Final[dict[str, Plan]] = load_plans(PARIS_2011_TOML)
