"""What car sharing shows on a 2.0.1 station's screen (issue 17, block O; docs/car-sharing.md,
"Display messages"): the hold by its bay, in the city's time, and the member's price at the bay the
car came back to; only where the station's device model says it has display messages; never on
1.6. Over real 2.0.1 WebSockets, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from ocpp.v201 import call

from tests.conformance.conftest import connect, now_iso, wait_until
from tests.sharing.conftest import CAR_ID, CAR_TAG, City, catch_up
from voltlib.domain import commands as c
from voltlib.ocpp.v16 import commands as v16
from voltlib.sharing.displays import return_message_id

ORIGIN, DESTINATION = "st-a-1", "st-b-1"
PARIS = ZoneInfo("Europe/Paris")
OCPP201 = pytest.mark.parametrize("ocpp_version", ["2.0.1"], indirect=True)


async def has_display(station: Any, flag: str = "Available", value: str = "true") -> None:
    """The station's report: DisplayMessageCtrlr ``flag`` is ``value`` (stored before answered)."""
    await station.send(call.NotifyReport(request_id=1, generated_at=now_iso(), seq_no=0, tbc=False, report_data=[{
        "component": {"name": "DisplayMessageCtrlr"}, "variable": {"name": flag},
        "variableAttribute": [{"type": "Actual", "value": value, "mutability": "ReadOnly"}]}]))


async def shown(station: Any, count: int = 1) -> list[dict[str, Any]]:
    async def told() -> bool:
        return len(station.got("SetDisplayMessage")) >= count

    await wait_until(told)
    return [p["message"] for p in station.got("SetDisplayMessage")]


@OCPP201
async def test_the_hold_and_the_price_are_shown_where_the_station_has_a_screen(city: City) -> None:
    member = await city.sign_up(1)
    server = city.server
    async with connect(server, ORIGIN) as a, connect(server, DESTINATION) as b:
        for station in (a, b):
            await station.boot()
            await has_display(station)
        await a.status(1, "Charging")
        charging = await a.start_tx(1, CAR_TAG)
        await b.status(1, "Available")
        held = await city.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID}, headers=member.headers())
        assert held.status_code == 201, held.text
        hold = held.json()["car_hold"]
        [message] = await shown(a)
        until = datetime.fromisoformat(hold["expires_at"])
        assert message["id"] == hold["reservation_id"] and message["priority"] == "InFront"
        assert message["message"] == {"format": "UTF8",
                                      "content": f"Reserved for you until {until.astimezone(PARIS):%H:%M}"}
        assert message["display"]["evse"]["id"] == 1
        assert datetime.fromisoformat(message["end_date_time"].replace("Z", "+00:00")) == until
        rows: list[dict[str, Any]] = []

        async def kept() -> bool:  # once voltlib has the answer (CommandFinished)
            rows[:] = (await city.client.get(f"/api/v1/charge-points/{ORIGIN}/display-messages",
                                             headers=server.api_headers())).json()
            return bool(rows)

        await wait_until(kept)
        [row] = rows
        assert (row["message_id"], row["source"], row["evse_id"]) == (hold["reservation_id"], "set", 1)

        assert (await a.authorize(member.badge))["status"] == "Accepted"
        await a.stop_tx(charging.transaction_id, 1200, reason="EVDisconnected")
        await a.status(1, "Available")
        await city.wait_for_state(member, "started")
        back_at = datetime.now(UTC) + timedelta(minutes=25)
        catch_up(server, back_at)
        await b.start_tx(1, CAR_TAG, timestamp=back_at.isoformat())
        await city.wait_for_state(member, None)
        [price] = await shown(b)
    assert price["id"] == return_message_id(1)
    assert price["message"]["content"] == "Thank you! Your rental: 5.00 EUR"  # premium, first half hour
    assert price["display"]["evse"]["id"] == 1


@OCPP201
async def test_a_station_without_display_messages_is_shown_nothing(city: City) -> None:
    member = await city.sign_up(1)
    async with connect(city.server, ORIGIN) as a:
        await a.boot()
        await has_display(a, "Enabled", "false")  # a controller, switched off
        await a.status(1, "Charging")
        held = await city.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID}, headers=member.headers())
        assert held.status_code == 201, held.text

        async def told() -> bool:
            return len(a.got("ReserveNow")) == 1

        await wait_until(told)
        cancelled = await city.client.delete("/api/v1/me/reservation", headers=member.headers())
        assert cancelled.status_code == 200

        async def released() -> bool:
            return len(a.got("CancelReservation")) == 1

        await wait_until(released)
        await city.server.settled()
    assert a.got("SetDisplayMessage") == [] and a.got("ClearDisplayMessage") == []


@OCPP201
async def test_a_cancelled_hold_takes_its_message_down(city: City) -> None:
    member = await city.sign_up(1)
    async with connect(city.server, ORIGIN) as a:
        await a.boot()
        await has_display(a)
        await a.status(1, "Charging")
        held = await city.client.post("/api/v1/me/reservation", json={"car_id": CAR_ID}, headers=member.headers())
        [message] = await shown(a)
        assert (await city.client.delete("/api/v1/me/reservation", headers=member.headers())).status_code == 200

        async def cleared() -> bool:
            return len(a.got("ClearDisplayMessage")) == 1

        await wait_until(cleared)
    assert a.got("ClearDisplayMessage") == [{"id": message["id"]}]
    assert message["id"] == held.json()["car_hold"]["reservation_id"]


def test_ocpp_1_6_has_no_display_messages() -> None:
    for command in (c.ShowMessage(1, "Reserved for you until 14:05", 1), c.ClearMessage(1)):
        with pytest.raises(c.CommandRefused) as refused:
            v16.to_call(command)
        assert refused.value.status == 409
