"""What a 2.0.1 station says of its limits and profiles (issue 17 K09, K11-K13), over a real
WebSocket on SQLite and PostgreSQL: NotifyChargingLimit stored in W before it is answered (a
schedule in A converted, a start the clock policy does not believe replaced by voltlib's time),
ClearedChargingLimit by EVSE or everywhere, ReportChargingProfiles a station sends unasked kept,
and bad frames answered with CallErrors that store nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import select

from tests.conftest import RunningServer
from tests.integration.test_command_port import AnsweringPost, mixed, post  # noqa: F401  (the fixture)
from voltlib.store import charging_profiles as cps
from voltlib.store.tables import security_events

CP = "CP-LIMITS"


async def call(station: AnsweringPost, action: str, payload: dict[str, Any]) -> list[Any]:
    """One call under a new message id (the same id twice is a replay, refused and alerted)."""
    await station.ws.send(json.dumps([2, uuid.uuid4().hex, action, payload]))
    return await asyncio.wait_for(station._results.get(), 10)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def limits(server: RunningServer) -> list[dict[str, Any]]:
    return await server.store.read(partial(cps.list_limits, cp_ids=[CP]))


async def test_limits_and_reports_a_station_sends(mixed: RunningServer) -> None:  # noqa: F811
    await mixed.add_charge_point(CP)
    now = datetime.now(UTC)
    async with post(mixed, CP, "2.0.1") as station:
        answer = await call(station, "NotifyChargingLimit", {
            "evseId": 1, "chargingLimit": {"chargingLimitSource": "SO", "isGridCritical": True},
            "chargingSchedule": [{"id": 1, "startSchedule": _iso(now), "chargingRateUnit": "A",
                                  "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0, "numberPhases": 1},
                                                             {"startPeriod": 3600, "limit": 32.0}]}]})
        assert answer[0] == 3 and answer[2] == {}
        [row] = await limits(mixed)
        assert (row["evse_id"], row["limit_source"], row["grid_critical"], row["limit_w"]) == (1, "SO", True, 3680.0)
        assert [p["limit_w"] for p in row["periods"]] == [3680.0, 22080.0]  # 32 A x 230 V x 3 phases

        far = now + timedelta(days=3650)  # a start the clock policy does not believe
        await call(station, "NotifyChargingLimit", {
            "chargingLimit": {"chargingLimitSource": "EMS"},
            "chargingSchedule": [{"id": 2, "startSchedule": _iso(far), "chargingRateUnit": "W",
                                  "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 5000.0}]}]})
        await call(station, "NotifyChargingLimit", {"evseId": 2, "chargingLimit": {"chargingLimitSource": "EMS"}})
        rows = {(r["evse_id"], r["limit_source"]): r for r in await limits(mixed)}
        assert set(rows) == {(0, "EMS"), (1, "SO"), (2, "EMS")}
        assert abs((rows[(0, "EMS")]["schedule_start"] - now).total_seconds()) < 60  # voltlib's time used
        assert rows[(2, "EMS")]["limit_w"] is None and rows[(2, "EMS")]["periods"] is None
        await mixed.settled()
        skew = await mixed.store.read(lambda conn: conn.execute(select(security_events.c.kind).where(
            security_events.c.charge_point_id == CP)).scalars().all())
        assert "clock_skew" in skew

        for bad in ({"evseId": 1},  # no chargingLimit
                    {"chargingLimit": {"chargingLimitSource": "Neighbour"}},
                    {"chargingLimit": {"chargingLimitSource": "EMS"}, "evseId": 2**40}):
            refused = await call(station, "NotifyChargingLimit", bad)
            assert refused[0] == 4, (bad, refused)
        assert len(await limits(mixed)) == 3  # nothing stored by a refused frame

        assert (await call(station, "ClearedChargingLimit", {"chargingLimitSource": "EMS", "evseId": 2}))[2] == {}
        assert {(r["evse_id"], r["limit_source"]) for r in await limits(mixed)} == {(0, "EMS"), (1, "SO")}
        await call(station, "ClearedChargingLimit", {"chargingLimitSource": "EMS"})  # everywhere
        assert {(r["evse_id"], r["limit_source"]) for r in await limits(mixed)} == {(1, "SO")}
        await call(station, "ClearedChargingLimit", {"chargingLimitSource": "EMS"})  # again: nothing to clear
        assert len(await limits(mixed)) == 1

        part = {"requestId": 77, "chargingLimitSource": "EMS", "evseId": 0, "tbc": False, "chargingProfile": [{
            "id": 900, "stackLevel": 0, "chargingProfilePurpose": "ChargingStationExternalConstraints",
            "chargingProfileKind": "Absolute", "chargingSchedule": [{
                "id": 900, "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 5000}]}]}]}
        for _ in range(2):  # sent twice: the same profile, once
            assert (await call(station, "ReportChargingProfiles", part))[2] == {}
        held = await mixed.store.read(partial(cps.list_installed, cp_id=CP))
        assert [(r["charging_profile_id"], r["purpose"], r["source"], r["limit_source"], r["request_id"])
                for r in held] == [(900, "ExternalConstraints", "station", "EMS", 77)]
        report = await mixed.store.read(partial(cps.get_report, cp_id=CP, request_id=77))
        assert report is not None and report["full"] is False and report["status"] == "complete"
        refused = await call(station, "ReportChargingProfiles", {**part, "chargingProfile": []})  # minItems 1
        assert refused[0] == 4
