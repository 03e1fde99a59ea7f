"""Energy accounting: a day's kWh per station and per vehicle, from real OCPP transactions."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from tests.conformance.conftest import connect
from tests.conftest import BOTH_VERSIONS
from tests.sharing.conftest import CAR_ID, CAR_TAG, City
from voltlib.cli.main import app

pytestmark = pytest.mark.parametrize("ocpp_version", BOTH_VERSIONS, indirect=True)


async def test_a_day_of_charging_per_station_and_per_vehicle(city: City) -> None:
    server = city.server
    async with connect(server, "st-a-1") as a, connect(server, "st-b-1") as b:
        await a.boot()
        await b.boot()
        car = await a.start_tx(1, CAR_TAG, meter_start=10_000)
        await a.stop_tx(car.transaction_id, 14_500)  # the car took 4.5 kWh at st-a
        other = await b.start_tx(1, "SOMEONE", meter_start=0)
        await b.stop_tx(other.transaction_id, 2_000)  # not a car of the fleet: 2 kWh at st-b
    today = datetime.now(ZoneInfo("Europe/Paris")).date().isoformat()  # the report's days are the city's
    response = await city.client.get("/api/v1/energy/daily", params={"city": "paris", "date": today},
                                     headers=server.api_headers())
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["sessions"] == 2 and report["total_kwh"] == 6.5
    assert {s["id"]: s["kwh"] for s in report["stations"]} == {"st-a": 4.5, "st-b": 2.0}
    assert report["vehicles"] == [{"id": CAR_ID, "kwh": 4.5}]
    earlier = await city.client.get("/api/v1/energy/daily", params={"city": "paris", "date": "2018-05-18"},
                                    headers=server.api_headers())
    assert earlier.json()["total_kwh"] == 0
    for params, code in (({"date": "yesterday"}, 422), ({"city": "atlantis"}, 404)):
        bad = await city.client.get("/api/v1/energy/daily", params=params, headers=server.api_headers())
        assert bad.status_code == code
    cli = CliRunner().invoke(app, ["energy", "report", "--date", today, "--database-url",
                                   server.settings.database_url])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.output)["total_kwh"] == 6.5
