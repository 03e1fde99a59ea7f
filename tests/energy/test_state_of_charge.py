"""State of charge kept current: from meter values (pure and on a live server), from telematics over
HTTP and over MQTT (the real Mosquitto broker on 127.0.0.1:1883)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiomqtt
import pytest
import pytest_asyncio

from tests.conformance.conftest import wait_until
from tests.conftest import BOTH_VERSIONS, PASSWORD, RunningServer, free_port, start_server
from tests.sharing.conftest import CAR_ID, CAR_TAG, City, seeded_city
from voltlib.config import Settings
from voltlib.energy.estimation import DockedCar, Reading, advance, estimate
from voltlib.sim import Car, SimOptions, SimulatedChargePoint

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
CAR = DockedCar("car-1", 40.0, "import", T0)
OPTIONS = SimOptions(connectors=1, meter_interval=1, call_timeout=5.0, connect_timeout=5.0, reconnect_min=0.2,
                     reconnect_max=1.0, tick=0.1, connector_power_w=3_000.0, max_power_w=3_000.0)


def test_metered_energy_raises_the_estimate_net_of_keep_warm() -> None:
    est = advance(None, CAR, Reading(("cp", 1), T0, 10_000.0, None))
    assert est is not None and estimate(est, Reading(("cp", 1), T0, 10_000.0, None)).soc == pytest.approx(0.40)
    later = Reading(("cp", 1), T0 + timedelta(hours=1), 13_000.0, None)  # 3 kWh in an hour
    after = estimate(advance(est, CAR, later) or est, later)
    assert after.source == "metered" and 0.45 < after.soc < 0.50  # (3 kWh - keep-warm) x efficiency / 27 kWh


def test_a_soc_measurand_re_anchors_the_estimate() -> None:
    est = advance(None, CAR, Reading(("cp", 1), T0, 10_000.0, None))
    true = Reading(("cp", 1), T0 + timedelta(minutes=30), 11_000.0, 55.0)
    est = advance(est, CAR, true)
    assert est is not None and estimate(est, true).source == "measured" and estimate(est, true).soc == 0.55
    assert advance(None, DockedCar("car-2", None, None, None), Reading(("cp", 1), T0, 1.0, None)) is None


async def _charge_at_a(city: City, car: Car) -> SimulatedChargePoint:
    cp = SimulatedChargePoint("st-a-1", city.server.ws_url, password=PASSWORD, options=OPTIONS,
                              ocpp_version=city.server.station_version)
    if car.battery_wh is not None:  # this car tells its charge point its state of charge
        cp.configuration["MeterValuesSampledData"].value = "Energy.Active.Import.Register,Power.Active.Import,SoC"
    cp.plug_in(1, car)
    await cp.start()
    assert await cp.wait_accepted(10)
    cp.start_transaction(1, CAR_TAG)
    return cp


@pytest.mark.parametrize("ocpp_version", BOTH_VERSIONS, indirect=True)
@pytest.mark.parametrize(("battery_wh", "source"), [(None, "metered"), (30_000.0, "measured")])
async def test_a_charging_car_s_state_of_charge_follows_its_meter(city: City, battery_wh: float | None,
                                                                 source: str) -> None:
    start = (await city.vehicle())["soc_percent"]  # 80 % as imported
    true_soc = start - 25.0  # what the car itself says, when it says anything
    cp = await _charge_at_a(city, Car(battery_wh=battery_wh, soc=true_soc, max_power_w=3_000.0))
    try:
        async def moved() -> bool:
            car = await city.vehicle()
            return car["soc_source"] == source and car["soc_percent"] != start

        await wait_until(moved, timeout=15)
    finally:
        await cp.stop()
    car = await city.vehicle()
    if source == "measured":  # the reading replaces the import's guess
        assert true_soc <= car["soc_percent"] < true_soc + 1
    else:  # no reading: the import's guess plus the metered energy
        assert car["soc_percent"] > start
    assert car["range_km"] > 0 and car["soc_at"] is not None


async def test_telematics_over_http(city: City) -> None:
    headers = city.server.api_headers()
    at = datetime.now(UTC).isoformat()
    ok = await city.client.post(f"/api/v1/vehicles/{CAR_ID}/telematics", json={"soc_percent": 42.5, "at": at},
                                headers=headers)
    assert ok.status_code == 202, ok.text
    car = await city.vehicle()
    assert (car["soc_percent"], car["soc_source"]) == (42.5, "telematics")
    older = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    stale = await city.client.post(f"/api/v1/vehicles/{CAR_ID}/telematics", json={"soc_percent": 99, "at": older},
                                   headers=headers)
    assert stale.status_code == 202 and (await city.vehicle())["soc_percent"] == 42.5  # older never wins
    for body, code in (({"soc_percent": 120}, 422), ({"soc_percent": "x"}, 422), ({}, 422)):
        bad = await city.client.post(f"/api/v1/vehicles/{CAR_ID}/telematics", json=body, headers=headers)
        assert bad.status_code == code and bad.json()["title"] == "invalid-telematics", bad.text
    unknown = await city.client.post("/api/v1/vehicles/nope/telematics", json={"soc_percent": 50}, headers=headers)
    assert unknown.status_code == 404
    assert (await city.client.post(f"/api/v1/vehicles/{CAR_ID}/telematics", json={"soc_percent": 50})).status_code \
        == 401


def _mosquitto_up() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=1):
            return True
    except OSError:
        return False


@pytest_asyncio.fixture
async def mqtt_city(database_url: str) -> AsyncIterator[City]:
    if not _mosquitto_up():
        if os.environ.get("CI") == "true":
            pytest.fail("Mosquitto is required on CI and is not reachable on 127.0.0.1:1883")
        pytest.skip("Mosquitto not reachable on 127.0.0.1:1883")
    settings = Settings(database_url=database_url, port=free_port(), command_timeout=5.0,
                        telematics_mqtt_url="mqtt://127.0.0.1:1883")
    runner, running = await start_server(settings)
    try:
        async with seeded_city(running) as city:
            yield city
    finally:
        await runner.cleanup()


async def test_telematics_over_mqtt(mqtt_city: City) -> None:
    async with aiomqtt.Client("127.0.0.1", 1883) as broker:
        async def arrived() -> bool:
            await broker.publish(f"voltlib/paris/vehicles/{CAR_ID}/telematics", qos=1,
                                 payload=json.dumps({"soc_percent": 33.0, "at": datetime.now(UTC).isoformat()}))
            car = await mqtt_city.vehicle()
            return (car["soc_percent"], car["soc_source"]) == (33.0, "telematics")

        await wait_until(arrived, timeout=15)  # published again until the server's subscription is up
        await broker.publish("voltlib/paris/vehicles/nope/telematics", payload=b"{not json", qos=1)
        await asyncio.sleep(0.3)
    assert (await mqtt_city.vehicle())["soc_percent"] == 33.0  # the bad message changed nothing
    assert isinstance(mqtt_city.server, RunningServer)


async def test_a_deeply_nested_telematics_message_is_refused_and_the_next_one_is_read(mqtt_city: City) -> None:
    """Issue 22: a message nesting a few thousand arrays raised RecursionError out of the decoder,
    which ended the subscriber: no reading after it was taken in."""
    topic = f"voltlib/paris/vehicles/{CAR_ID}/telematics"
    async with aiomqtt.Client("127.0.0.1", 1883) as broker:
        async def arrived(soc: float) -> bool:
            await broker.publish(topic, qos=1, payload=json.dumps({"soc_percent": soc}))
            return (await mqtt_city.vehicle())["soc_percent"] == soc

        await wait_until(lambda: arrived(33.0), timeout=15)  # the server's subscription is up
        await broker.publish(topic, qos=1, payload=b'{"soc_percent": 1, "x": ' + b"[" * 2000 + b"]" * 2000 + b"}")
        await wait_until(lambda: arrived(44.0), timeout=15)
