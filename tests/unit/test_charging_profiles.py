"""Charging profiles and external limits, the pure parts (issue 17 K, issue 20 part 3): the neutral
commands in each OCPP version's words (valid against the official schemas), the picture of what a
charge point holds read from either version's payloads, and the planner under external limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from voltlib.api.charging_profile_models import NewChargingProfile, Period, profile_problems
from voltlib.api.charging_profiles import power_limit
from voltlib.domain import commands as c
from voltlib.energy import charging_limits
from voltlib.energy.smart_charging import DockState, StationState, plan_station
from voltlib.gateway.charging_profiles import follow, profile_row
from voltlib.gateway.command_port import read_outcome, to_call
from voltlib.ocpp import schemas

AT = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
RECURRING = c.PowerLimit(1005, "ChargePointMax", (c.Period(0, 9000), c.Period(3600, 4000)), AT, 4, 43200,
                         kind="Recurring", recurrency="Daily", valid_to=AT + timedelta(days=30))
RELATIVE = c.PowerLimit(1006, "Tx", (c.Period(0, 5000),), AT, 3, kind="Relative", transaction_id=12)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
@pytest.mark.parametrize("command", [
    c.LimitPower(0, RECURRING), c.LimitPower(1, RELATIVE), c.ClearLimits(profile_id=1005),
    c.ClearLimits(connector_id=1, purpose="TxDefault", stack_level=2), c.ClearLimits(purpose="ChargePointMax"),
    c.ClearLimits(), c.ReadProfiles(7), c.ReadProfiles(8, connector_id=1, purpose="Tx", stack_level=1,
                                                      profile_ids=(3, 1005))])
def test_each_command_is_a_valid_call_of_each_version(version: str, command: c.Command) -> None:
    if version == "1.6" and isinstance(command, c.ReadProfiles):
        with pytest.raises(c.CommandRefused) as refused:
            to_call(version, command)
        assert refused.value.status == 409
        return
    action, payload = to_call(version, command, "tx-uuid" if version == "2.0.1" else None)
    schemas.validate(version, action, "request", payload)


def test_times_and_criteria_in_each_version() -> None:
    _, v16 = to_call("1.6", c.LimitPower(0, RECURRING))
    _, v201 = to_call("2.0.1", c.LimitPower(1, RELATIVE), "tx-uuid")
    profile = v16["csChargingProfiles"]
    assert (profile["chargingProfileKind"], profile["recurrencyKind"], profile["validTo"]) == (
        "Recurring", "Daily", "2027-01-06T08:00:00Z")
    assert profile["chargingSchedule"]["startSchedule"] == "2026-12-07T08:00:00Z"
    assert "startSchedule" not in v201["chargingProfile"]["chargingSchedule"][0]  # from the transaction's start
    assert v201["chargingProfile"]["transactionId"] == "tx-uuid"
    assert to_call("2.0.1", c.ClearLimits(profile_id=5, connector_id=1)) == (
        "ClearChargingProfile", {"chargingProfileId": 5})  # an id names one profile: no criteria
    assert to_call("2.0.1", c.ClearLimits(connector_id=0, purpose="ChargePointMax"))[1] == {
        "chargingProfileCriteria": {"evseId": 0, "chargingProfilePurpose": "ChargingStationMaxProfile"}}
    assert to_call("1.6", c.ClearLimits(connector_id=0, purpose="ChargePointMax"))[1] == {
        "connectorId": 0, "chargingProfilePurpose": "ChargePointMaxProfile"}
    assert to_call("2.0.1", c.ReadProfiles(8, 1, "Tx", 1, (3,)))[1] == {
        "requestId": 8, "evseId": 1,
        "chargingProfile": {"chargingProfilePurpose": "TxProfile", "stackLevel": 1, "chargingProfileId": [3]}}


@pytest.mark.parametrize(("version", "answer"), [
    ("1.6", {"status": "Accepted", "connectorId": 1, "scheduleStart": "2026-12-07T08:00:00Z", "chargingSchedule": {
        "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0},
                                                            {"startPeriod": 60, "limit": 10.0, "numberPhases": 1}]}}),
    ("2.0.1", {"status": "Accepted", "schedule": {
        "evseId": 1, "duration": 600, "scheduleStart": "2026-12-07T08:00:00Z", "chargingRateUnit": "A",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}, {"startPeriod": 60, "limit": 10.0,
                                                                        "numberPhases": 1}]}})])
def test_a_composite_schedule_is_read_in_watts(version: str, answer: dict[str, Any]) -> None:
    outcome = read_outcome(version, c.ReadSchedule(1, 600), {"state": "answered", "response": answer})
    assert outcome.periods == (c.Period(0, 11040), c.Period(60, 2300))  # 16 A x 230 V x 3, 10 A x 230 V x 1
    op = follow("CP", "GetCompositeSchedule", "answered", {"connectorId": 1} if version == "1.6" else {"evseId": 1},
                answer, None, AT)
    assert op is not None and op.keywords["connector_id"] == 1  # type: ignore[attr-defined]
    assert [p["limit_w"] for p in op.keywords["periods"]] == [11040.0, 2300.0]  # type: ignore[attr-defined]


def test_the_same_profile_reads_the_same_from_either_version() -> None:
    _, v16 = to_call("1.6", c.LimitPower(0, RECURRING))
    _, v201 = to_call("2.0.1", c.LimitPower(0, RECURRING))
    a, b = profile_row(0, v16["csChargingProfiles"]), profile_row(0, v201["chargingProfile"])
    assert a["purpose"] == b["purpose"] == "ChargePointMax" and a["charging_profile_id"] == 1005
    assert a["profile"]["periods"] == b["profile"]["periods"] == [
        {"start_s": 0, "limit_w": 9000.0, "number_phases": None}, {"start_s": 3600, "limit_w": 4000.0,
                                                                   "number_phases": None}]
    refused = follow("CP", "SetChargingProfile", "answered", v16, {"status": "Rejected"}, "op", AT)
    assert refused is None  # a refused profile is not held
    lost = follow("CP", "GetChargingProfiles", "timeout", {"requestId": 3, "chargingProfile": {}}, None, "op", AT)
    assert lost is not None and lost.keywords["status"] == "no-answer"  # type: ignore[attr-defined]


def test_a_stored_profile_keeps_its_times() -> None:
    row = {"charging_profile_id": 1005, "purpose": "ChargePointMax", "periods": [
        {"start_s": 0, "limit_w": 9000.4, "number_phases": 3}], "start_at": AT, "stack_level": 4,
        "duration_s": 3600, "kind": "Recurring", "recurrency": "Daily", "valid_from": None,
        "valid_to": AT + timedelta(days=30)}
    limit = power_limit(row, None, datetime.now(UTC))
    assert (limit.profile_id, limit.start, limit.periods[0].limit_w, limit.number_phases) == (1005, AT, 9000, 3)
    assert (limit.kind, limit.recurrency, limit.valid_to) == ("Recurring", "Daily", row["valid_to"])


@pytest.mark.parametrize(("changes", "wrong"), [
    ({}, []),
    ({"periods": [Period(start_s=0, limit_w=1), Period(start_s=0, limit_w=2)]}, ["increase"]),
    ({"duration_s": 60, "periods": [Period(start_s=0, limit_w=1), Period(start_s=60, limit_w=2)]}, ["before"]),
    ({"kind": "Recurring", "recurrency": "Daily", "duration_s": 90_000, "start_at": AT}, ["fits"]),
    ({"kind": "Relative", "purpose": "ChargePointMax"}, ["cannot be Relative"]),
    ({"valid_from": AT, "valid_to": AT}, ["valid_to"]),
])
def test_what_no_charge_point_would_take_is_named(changes: dict[str, Any], wrong: list[str]) -> None:
    values: dict[str, Any] = {"name": "p", "purpose": "TxDefault", "periods": [Period(start_s=0, limit_w=1)]}
    problems = profile_problems(NewChargingProfile(**{**values, **changes}))
    assert len(problems) == len(wrong) and all(w in p for w, p in zip(wrong, problems, strict=True))


def _dock(cp: str, connector: int, soc: float) -> DockState:
    return DockState(cp, connector, 7000.0, 1, f"car-{cp}-{connector}", soc, None, None)


def test_an_external_limit_caps_the_plan_and_frees_power_for_the_others() -> None:
    docks = (_dock("A", 1, 0.2), _dock("A", 2, 0.3), _dock("B", 1, 0.4))
    free = plan_station(StationState("st", 6_000.0, None, docks), AT)
    assert sum(free.values()) == 6_000 and free[("A", 1)] > 800  # the lowest battery first
    on_evse = plan_station(StationState("st", 6_000.0, None, docks, {("A", 1): 800.0}), AT)
    assert on_evse[("A", 1)] == 800 and sum(on_evse.values()) == 6_000  # the rest went to the others
    assert on_evse[("A", 2)] >= free[("A", 2)] and on_evse[("B", 1)] > free[("B", 1)]
    on_cp = plan_station(StationState("st", 6_000.0, None, docks, {("A", 0): 2000.0, ("A", 1): 1500.0}), AT)
    assert on_cp[("A", 1)] + on_cp[("A", 2)] <= 2000 and on_cp[("A", 1)] <= 1500
    assert on_cp[("B", 1)] > free[("B", 1)] and sum(on_cp.values()) <= 6_000
    nothing = plan_station(StationState("st", 6_000.0, None, docks, {("A", 0): 0.0}), AT)
    assert nothing[("A", 1)] == nothing[("A", 2)] == 0 and nothing[("B", 1)] > 0


def test_the_lowest_limit_in_force_wins() -> None:
    rows = [{"charge_point_id": "A", "evse_id": 0, "limit_w": 8000.0, "periods": None, "schedule_start": None},
            {"charge_point_id": "A", "evse_id": 0, "limit_w": 9000.0, "schedule_start": AT,
             "periods": [{"start_s": 0, "limit_w": 9000.0}, {"start_s": 3600, "limit_w": 2000.0}]},
            {"charge_point_id": "B", "evse_id": 1, "limit_w": None, "periods": None, "schedule_start": None}]
    assert charging_limits.caps_in_force(rows, AT) == {("A", 0): 8000.0}  # B's value unknown: no cap
    assert charging_limits.caps_in_force(rows, AT + timedelta(hours=2)) == {("A", 0): 2000.0}
    assert charging_limits.caps_in_force(rows, None) == {("A", 0): 8000.0}
