"""Plans as data and the price of a rental: Autolib' 2011 worked examples, rounding edges, properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voltlib.domain.money import Money, Rounding
from voltlib.domain.pricing import (
    PARIS_2011,
    PARIS_2011_TOML,
    Band,
    Billing,
    Plan,
    PlanError,
    PriceRule,
    billed_minutes,
    load_plans,
    price_rental,
    subscription_line,
)

T0 = datetime(2011, 12, 5, 10, 0, tzinfo=UTC)
PREMIUM, DAY, WEEK, PER_MINUTE = (PARIS_2011[c] for c in ("premium", "day", "week", "premium-minute"))


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


def cost(plan: Plan, **duration: float) -> Money:
    return price_rental(plan, T0, T0 + timedelta(**duration)).total


# --- the published tariff ----------------------------------------------------------------------

def test_paris_2011_plans_as_published() -> None:
    assert set(PARIS_2011) == {"premium", "day", "week", "premium-minute"}
    assert (PREMIUM.fee, PREMIUM.period_days) == (eur("144"), 365)
    assert (WEEK.fee, WEEK.period_days) == (eur("15"), 7)
    assert (DAY.fee, DAY.period_days) == (eur("10"), 1)
    assert [b.price for b in PREMIUM.rule.bands] == [eur("5"), eur("4"), eur("6")]
    assert [b.price for b in DAY.rule.bands] == [b.price for b in WEEK.rule.bands] == [eur("7"), eur("6"), eur("8")]
    assert PER_MINUTE.rule.billing is Billing.MINUTE and PER_MINUTE.rule.minimum_minutes == 20
    for plan in (DAY, WEEK, PER_MINUTE):
        assert plan.source is not None and "verify" in plan.source


@pytest.mark.parametrize(("minutes", "expected"), [
    (25, "5"), (30, "5"), (45, "9"), (60, "9"), (75, "15"), (90, "15"), (120, "21"), (24 * 60, "285"),
])
def test_premium_worked_examples(minutes: int, expected: str) -> None:
    assert cost(PREMIUM, minutes=minutes) == eur(expected)


@pytest.mark.parametrize(("minutes", "expected"), [(25, "7"), (45, "13"), (75, "21"), (120, "29")])
def test_day_and_week_pass_examples(minutes: int, expected: str) -> None:
    assert cost(DAY, minutes=minutes) == cost(WEEK, minutes=minutes) == eur(expected)


def test_every_started_half_hour_is_due() -> None:
    assert cost(PREMIUM, minutes=30) == eur("5")
    assert cost(PREMIUM, minutes=30, microseconds=1) == eur("9")  # the 31st minute has started
    assert cost(PREMIUM, minutes=60, seconds=1) == eur("15")
    assert cost(PREMIUM, seconds=0) == eur("5")  # a rental always counts its first minute


def test_breakdown_lines_for_75_minutes() -> None:
    b = price_rental(PREMIUM, T0, T0 + timedelta(minutes=75))
    assert [(line.label, line.quantity, line.unit, line.unit_price, line.amount) for line in b.lines] == [
        ("1st half hour", 1, "30 min", eur("5"), eur("5")),
        ("2nd half hour", 1, "30 min", eur("4"), eur("4")),
        ("each further half hour", 1, "30 min", eur("6"), eur("6")),
    ]
    assert (b.total, b.billed_minutes, b.plan_code, b.currency) == (eur("15"), 75, "premium", "EUR")
    long = price_rental(PREMIUM, T0, T0 + timedelta(minutes=200))
    assert long.lines[-1].quantity == 5 and long.lines[-1].amount == eur("30")


# --- per-minute variant ------------------------------------------------------------------------

@pytest.mark.parametrize(("duration", "expected", "minutes"), [
    (timedelta(0), "3.33", 20),  # 20 minutes always billed: 5.00 x 20/30 = 3.333 -> 3.33
    (timedelta(minutes=5), "3.33", 20),
    (timedelta(minutes=20), "3.33", 20),
    (timedelta(minutes=20, seconds=1), "3.50", 21),  # started minute counts: 5.00 x 21/30
    (timedelta(minutes=25), "4.17", 25),  # 4.1666 -> 4.17 (half up)
    (timedelta(minutes=30), "5.00", 30),
    (timedelta(minutes=45), "7.00", 45),  # 5.00 + 4.00 x 15/30
    (timedelta(minutes=75), "12.00", 75),  # 5 + 4 + 6 x 15/30
])
def test_per_minute_variant(duration: timedelta, expected: str, minutes: int) -> None:
    b = price_rental(PER_MINUTE, T0, T0 + duration)
    assert b.total == eur(expected)
    assert b.billed_minutes == minutes
    assert all(line.unit == "min" and line.per == 30 for line in b.lines)


def test_per_minute_rounds_each_line_once() -> None:
    # 31 minutes: 30 at 5.00/30 = 5.00, 1 at 4.00/30 = 0.1333 -> 0.13
    b = price_rental(PER_MINUTE, T0, T0 + timedelta(minutes=31))
    assert [line.amount for line in b.lines] == [eur("5.00"), eur("0.13")]
    assert b.total == eur("5.13")


def test_rounding_is_data() -> None:
    up = Plan.from_dict({**PER_MINUTE.to_dict(), "rule": {**PER_MINUTE.rule.to_dict(), "rounding": "up"}})
    assert up.rule.rounding is Rounding.UP
    assert price_rental(up, T0, T0 + timedelta(minutes=31)).total == eur("5.14")


# --- bad input ---------------------------------------------------------------------------------

def test_times_must_be_aware_and_ordered() -> None:
    with pytest.raises(ValueError, match="timezone"):
        price_rental(PREMIUM, T0.replace(tzinfo=None), T0.replace(tzinfo=None))
    with pytest.raises(ValueError, match="before"):
        price_rental(PREMIUM, T0, T0 - timedelta(seconds=1))


def test_other_timezones_count_the_same_duration() -> None:
    from zoneinfo import ZoneInfo
    paris = T0.astimezone(ZoneInfo("Europe/Paris"))
    assert price_rental(PREMIUM, paris, T0 + timedelta(minutes=45)).total == eur("9")


def _premium_dict() -> dict[str, Any]:
    return PREMIUM.to_dict()


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(fee=144.0), "float"),
    (lambda d: d.update(fee="144.001"), "decimals"),
    (lambda d: d.update(currency="euro"), "ISO 4217"),
    (lambda d: d.update(period_days=0), "period_days"),
    (lambda d: d.update(period_days="365"), "integer"),
    (lambda d: d.update(rule={"bands": []}), "at least one band"),
    (lambda d: d.update(rule={"bands": [{"price": "5.00", "periods": 1}]}), "open-ended"),
    (lambda d: d.update(rule={"bands": [{"price": "5.00"}, {"price": "6.00"}]}), "periods > 0"),
    (lambda d: d.update(rule={"bands": [{"price": "-1.00"}]}), "negative"),
    (lambda d: d.update(rule={"bands": [{"price": "1.00"}], "billing": "hourly"}), "hourly"),
    (lambda d: d.update(rule={"bands": [{"price": "1.00"}], "period_minutes": 0}), "period_minutes"),
    (lambda d: d.update(rule="cheap"), "rule"),
    (lambda d: d.update(code=None), "code"),
])
def test_bad_plans_are_refused(change: Any, message: str) -> None:
    data = _premium_dict()
    change(data)
    with pytest.raises(PlanError, match=message):
        Plan.from_dict(data)


def test_plans_round_trip_through_dicts_and_toml() -> None:
    for plan in PARIS_2011.values():
        assert Plan.from_dict(plan.to_dict()) == plan
    assert load_plans(PARIS_2011_TOML) == PARIS_2011
    with pytest.raises(PlanError, match="duplicate"):
        load_plans(PARIS_2011_TOML + PARIS_2011_TOML)
    with pytest.raises(PlanError, match="TOML"):
        load_plans("[[plan]\n")


def test_a_city_can_define_its_own_plan() -> None:
    lyon = load_plans('''
[[plan]]
code = "bluely-flex"
name = "Flex"
currency = "EUR"
fee = "0"
period_days = 30
[plan.rule]
billing = "minute"
period_minutes = 1
minimum_minutes = 10
bands = [{ price = "0.30" }]
''')["bluely-flex"]
    assert cost(lyon, minutes=3) == eur("3.00")
    assert cost(lyon, minutes=42) == eur("12.60")


def test_rule_and_plan_consistency_checks() -> None:
    rule = PriceRule((Band(Money(100, "USD")),))
    with pytest.raises(PlanError, match="same currency"):
        Plan("x", "X", eur("1"), 30, rule)
    with pytest.raises(PlanError, match="one currency"):
        PriceRule((Band(eur("1"), 1), Band(Money(1, "USD"))))
    assert rule.band_label(0) == "periods 1+"
    assert PriceRule((Band(eur("1"), 2), Band(eur("2")))).band_label(0) == "periods 1-2"


def test_subscription_line() -> None:
    line = subscription_line(PREMIUM)
    assert (line.quantity, line.unit_price, line.amount) == (1, eur("144"), eur("144"))
    assert "Premium" in line.label


# --- properties --------------------------------------------------------------------------------

plans = st.sampled_from(list(PARIS_2011.values()))
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10))


@given(plans, durations, durations)
def test_price_is_monotonic_in_duration(plan: Plan, a: timedelta, b: timedelta) -> None:
    shorter, longer = sorted((a, b))
    assert cost(plan, seconds=0) <= price_rental(plan, T0, T0 + shorter).total
    assert price_rental(plan, T0, T0 + shorter).total <= price_rental(plan, T0, T0 + longer).total


@given(plans, durations, st.datetimes(min_value=datetime(2011, 1, 1), max_value=datetime(2030, 1, 1),
                                      timezones=st.just(UTC)))
def test_price_is_positive_in_plan_currency_deterministic_and_consistent(plan: Plan, d: timedelta,
                                                                         start: datetime) -> None:
    b = price_rental(plan, start, start + d)
    assert b.total.minor > 0
    assert b.currency == b.total.currency == plan.currency
    assert all(line.amount.minor >= 0 and line.amount.currency == plan.currency for line in b.lines)
    assert sum(line.amount.minor for line in b.lines) == b.total.minor
    assert b == price_rental(plan, start, start + d)
    assert b.billed_minutes == billed_minutes(plan.rule, start, start + d) >= plan.rule.minimum_minutes


@given(durations)
def test_per_minute_never_costs_more_than_per_half_hour(d: timedelta) -> None:
    assert price_rental(PER_MINUTE, T0, T0 + d).total <= price_rental(PREMIUM, T0, T0 + d).total
