"""A rental's log lines name it (issue 18, structured logs): each step car sharing commits is one
JSON line with ``rental_id`` and the charge point, so a log pipeline can follow one rental."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from tests.conformance.conftest import connect
from tests.sharing.conftest import CAR_ID, CAR_TAG, City
from voltlib.telemetry.logs import JsonFormatter

ORIGIN, DESTINATION = "st-a-1", "st-b-1"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """car sharing's log lines, formatted as ``--log-format json`` formats them."""
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(JsonFormatter("node-r"))
    logger = logging.getLogger("voltlib.sharing.service")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield sink
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_each_rental_step_is_a_line_naming_the_rental(city: City, json_log: io.StringIO) -> None:
    member = await city.sign_up(1)
    async with connect(city.server, ORIGIN) as a:
        await a.boot()
        await a.status(1, "Charging")
        charging = await a.start_tx(1, CAR_TAG)
        assert (await a.authorize(member.badge))["status"] == "Accepted"
        rental = await city.rental(member)
        await a.stop_tx(charging.transaction_id, 1200, reason="EVDisconnected")
        await a.status(1, "Available")
        await city.wait_for_state(member, "started")
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    rental_id = rental["rental_id"]
    steps = [line for line in lines if line.get("rental_id") == rental_id]
    assert [line["message"] for line in steps] == [f"rental {rental_id} of car {CAR_ID} is badged",
                                                   f"rental {rental_id} of car {CAR_ID} is started"]
    assert all(line["charge_point_id"] == ORIGIN and line["node"] == "node-r" for line in steps)
