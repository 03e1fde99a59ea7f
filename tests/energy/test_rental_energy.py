"""kWh driven and charged per rental, end to end on SQLite and PostgreSQL: real OCPP messages from test
charge points (OCPP 1.6 and 2.0.1), the car's state of charge from telematics POSTs, the numbers read
back from the rental API, the member's history, the daily report and the CLI."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Connection, select, update
from typer.testing import CliRunner

from tests.conformance.conftest import connect
from tests.conformance.station201 import voltlib_id
from tests.conftest import BOTH_VERSIONS
from tests.sharing.conftest import CAR_ID, CAR_TAG, City, Member, catch_up
from voltlib.cli.main import app
from voltlib.store.tables import rentals

ORIGIN, DESTINATION = "st-a-1", "st-b-1"
pytestmark = pytest.mark.parametrize("ocpp_version", BOTH_VERSIONS, indirect=True)


def _paris_day(at: datetime) -> date:
    return at.astimezone(ZoneInfo("Europe/Paris")).date()


async def _telematics(city: City, soc_percent: float, at: datetime) -> None:
    response = await city.client.post(f"/api/v1/vehicles/{CAR_ID}/telematics",
                                      json={"soc_percent": soc_percent, "at": at.isoformat()},
                                      headers=city.server.api_headers())
    assert response.status_code == 202, response.text


async def _energy(city: City, rental_id: str) -> dict[str, Any]:
    response = await city.client.get(f"/api/v1/rentals/{rental_id}", headers=city.server.api_headers())
    assert response.status_code == 200, response.text
    energy: dict[str, Any] = response.json()["energy"]
    return energy


async def _report(city: City, day: date) -> dict[str, Any]:
    response = await city.client.get("/api/v1/energy/daily", params={"city": "paris", "date": day.isoformat()},
                                     headers=city.server.api_headers())
    assert response.status_code == 200, response.text
    return {r["rental_id"]: r for r in response.json()["rentals"]}


async def _rental_id(city: City, member: Member) -> str:
    rental = await city.rental(member)
    assert rental is not None
    return str(rental["rental_id"])


async def test_driven_and_charged_kwh_of_a_rental(city: City) -> None:
    server = city.server
    member, second = await city.sign_up(1), await city.sign_up(2)
    now = datetime.now(UTC)  # after the import stored its 80 %: a newer reading replaces it
    left, back = now + timedelta(minutes=1), now + timedelta(minutes=25)
    async with connect(server, ORIGIN) as a, connect(server, DESTINATION) as b:
        await a.boot()
        await a.status(1, "Charging")
        charging = await a.start_tx(1, CAR_TAG, meter_start=10_000)
        await b.boot()
        await b.status(1, "Available")
        await _telematics(city, 90.0, now)  # the car says 90 % just before it leaves
        assert (await a.authorize(member.badge))["status"] == "Accepted"
        await a.stop_tx(charging.transaction_id, 12_000, reason="EVDisconnected")
        catch_up(server, left)  # voltlib's clock moves with the trip: the charge points' stamps are not ahead of it
        await a.status(1, "Available", timestamp=left.isoformat())
        await city.wait_for_state(member, "started")
        rental_id = await _rental_id(city, member)

        running = await _energy(city, rental_id)
        assert running["driven_kwh"] is None and running["driven_reason"] == "the car has not been returned"
        assert running["sources"]["departure"] == {"soc_percent": 90.0, "source": "telematics",
                                                   "at": now.isoformat()}

        await _telematics(city, 50.0, now + timedelta(minutes=20))  # on the road
        catch_up(server, back)
        returned = await b.start_tx(1, CAR_TAG, meter_start=5_000, timestamp=back.isoformat())
        await city.wait_for_state(member, None)
        catch_up(server, back + timedelta(minutes=5))
        await b.meter(1, returned.transaction_id, 7_000, timestamp=(back + timedelta(minutes=5)).isoformat())

        energy = await _energy(city, rental_id)
        assert energy["driven_kwh"] == 10.8  # (90 % - 50 %) x 27 kWh usable
        assert energy["charged_kwh"] == 2.0  # open session: its latest register
        returned_id = await voltlib_id(server, DESTINATION, returned.transaction_id)
        assert energy["sources"]["charging"] == {"transaction_id": returned_id, "open": True}
        assert energy["sources"]["return"]["source"] == "telematics" and energy["sources"]["usable_kwh"] == 27.0

        await b.stop_tx(returned.transaction_id, 8_500)
        energy = await _energy(city, rental_id)
        assert (energy["driven_kwh"], energy["charged_kwh"]) == (10.8, 3.5)
        assert energy["sources"]["charging"]["open"] is False

        # a second trip with no reading on the road: no number is made up
        second_left = now + timedelta(minutes=40)
        assert (await b.authorize(second.badge))["status"] == "Accepted"
        catch_up(server, second_left)
        await b.status(1, "Available", timestamp=second_left.isoformat())
        await city.wait_for_state(second, "started")
        second_id = await _rental_id(city, second)
        second_back = now + timedelta(minutes=60)
        catch_up(server, second_back)
        again = await a.start_tx(1, CAR_TAG, meter_start=20_000, timestamp=second_back.isoformat())
        await city.wait_for_state(second, None)

    blind = await _energy(city, second_id)
    assert blind["driven_kwh"] is None and blind["driven_reason"] == "no state-of-charge reading since the car left"
    again_id = await voltlib_id(server, ORIGIN, again.transaction_id)
    assert blind["charged_kwh"] == 0.0 and blind["sources"]["charging"] == {"transaction_id": again_id, "open": True}

    # the post is a DC one: it reads the car's state of charge as the session begins; that stands in
    # for the missing reading at the return
    async with connect(server, ORIGIN) as post:
        await post.meter(1, again.transaction_id, 20000, timestamp=second_back.isoformat(),
                         context="Transaction.Begin", soc=41.5)
    plugged = await _energy(city, second_id)
    departure = blind["sources"]["departure"]["soc_percent"]
    assert plugged["driven_reason"] is None
    assert plugged["driven_kwh"] == round((departure - 41.5) / 100.0 * 27.0, 3)
    assert plugged["sources"]["return"] == {"soc_percent": 41.5, "source": "meter", "at": second_back.isoformat()}

    history = (await city.client.get("/api/v1/me/rentals", headers=member.headers())).json()
    assert [(r["rental_id"], r["energy"]["driven_kwh"], r["energy"]["charged_kwh"]) for r in history] \
        == [(rental_id, 10.8, 3.5)]

    report = await _report(city, _paris_day(back))
    row = report[rental_id]
    assert (row["car_id"], row["driven_kwh"], row["charged_kwh"]) == (CAR_ID, 10.8, 3.5)
    assert row["sources"]["departure"]["soc_percent"] == 90.0 and row["sources"]["return"]["soc_percent"] == 50.0
    assert second_id in (await _report(city, _paris_day(second_back)))
    assert rental_id not in await _report(city, _paris_day(back) - timedelta(days=1))

    cli = CliRunner().invoke(app, ["energy", "report", "--date", _paris_day(back).isoformat(), "--database-url",
                                   server.settings.database_url])
    assert cli.exit_code == 0, cli.output
    rows = {r["rental_id"]: r for r in json.loads(cli.output)["rentals"]}
    assert (rows[rental_id]["driven_kwh"], rows[rental_id]["charged_kwh"]) == (10.8, 3.5)

    # a rental stored before energy per rental: no estimates, no transaction id; its session is still found
    def forget(conn: Connection) -> None:
        data = conn.execute(select(rentals.c.data).where(rentals.c.id == rental_id)).scalar_one()
        old = {k: v for k, v in data.items() if k not in ("departure_soc", "return_soc", "return_transaction_id")}
        conn.execute(update(rentals).where(rentals.c.id == rental_id).values(data=old))

    await server.store.write(forget)
    old = await _energy(city, rental_id)
    assert (old["driven_kwh"], old["charged_kwh"]) == (None, 3.5)
    assert old["driven_reason"] == "no state-of-charge estimate when the car left"
