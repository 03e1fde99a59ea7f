"""The meter detector after a restart or a move to another node: the first register a node sees of
a connector is compared with the one stored before it, the stored registers read for many
connectors in one statement (a reconnection storm must not cost a read per connector)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event

from tests.conftest import RunningServer, free_port, start_server
from tests.integration.test_protocol import BOOT, connect
from tests.security.test_detection_live import alerts, booted_client
from voltlib import events as ev
from voltlib.config import Settings
from voltlib.domain import meter
from voltlib.ocpp.v16.messages import SampledValue
from voltlib.security.service import SEED_BATCH, service_of
from voltlib.store.tables import meter_values

REGISTER = "Energy.Active.Import.Register"
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def register(at: str, wh: int) -> dict[str, Any]:
    return {"connectorId": 1,
            "meterValue": [{"timestamp": at, "sampledValue": [{"value": str(wh), "measurand": REGISTER}]}]}


async def test_a_register_that_went_backwards_across_a_restart_is_alerted(database_url: str) -> None:
    """The meter memory of a new process (or of the node a charge point moves to) starts from what
    is stored, so the first reading after the restart is compared too."""
    settings = Settings(database_url=database_url, port=free_port())
    runner, server = await start_server(settings)
    try:
        for cp_id in ("CP-ROLLED", "CP-HONEST"):
            ctx, cp = await booted_client(server, cp_id)
            try:
                await cp.call("MeterValues", register("2026-11-28T10:00:00Z", 5000))
            finally:
                await ctx.__aexit__(None, None, None)
        await server.settled()
    finally:
        await runner.cleanup()
    runner, server = await start_server(settings)
    try:
        for cp_id, wh in (("CP-ROLLED", 1000), ("CP-HONEST", 5200)):
            async with connect(server, cp_id) as cp:
                assert (await cp.call("BootNotification", BOOT))[2]["status"] == "Accepted"
                await cp.call("MeterValues", register("2026-11-28T11:00:00Z", wh))
                await cp.call("MeterValues", register("2026-11-28T11:01:00Z", wh - 10))  # and after it, as before
        await server.settled()
        rolled = [a for a in await alerts(server, "CP-ROLLED") if a["kind"] == "energy_register_backwards"]
        assert sorted(a["detail"]["was_wh"] for a in rolled) == [5000.0]  # the 10 Wh drop after it is a repeat
        honest = [a for a in await alerts(server, "CP-HONEST") if a["kind"] == "energy_register_backwards"]
        assert [(a["detail"]["was_wh"], a["detail"]["now_wh"]) for a in honest] == [(5200.0, 5190.0)]
    finally:
        await runner.cleanup()


async def test_the_first_readings_of_many_connectors_cost_one_read_of_stored_registers(server: RunningServer) -> None:
    """60 connectors' first readings on this node (a reconnection storm): one statement reads their
    stored registers, and each reading is compared with its own connector's."""
    connectors = [(f"CP-STORM-{n:02d}", c) for n in range(30) for c in (1, 2)]
    assert len(connectors) < SEED_BATCH
    stored = [{"charge_point_id": cp, "connector_id": c, "transaction_id": 0, "sampled_at": NOW - timedelta(minutes=m),
               "samples": meter.pack([SampledValue(value=str(5000 - m), measurand=REGISTER)] if m else
                                     [SampledValue(value="80", measurand="SoC")]), "received_at": NOW}
              for cp, c in connectors for m in range(3)]  # the latest without a register: the one before counts
    await server.store.insert(meter_values, stored)
    service = service_of(server.gateway)
    await service.load()
    reads: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "meter_values" in statement and statement.lstrip().upper().startswith("SELECT"):
            reads.append(statement)

    event.listen(server.store.engine, "before_cursor_execute", count)
    try:
        for n, (cp, c) in enumerate(connectors):  # every other one went backwards
            await service.handle(ev.MeterValuesReceived(
                charge_point_id=cp, at=NOW + timedelta(minutes=1), connector_id=c, transaction_id=None,
                sampled_at=NOW + timedelta(minutes=1),
                energy_wh=4000.0 if n % 2 else 6000.0, power_w=None, soc_percent=None))
        await server.settled()
    finally:
        event.remove(server.store.engine, "before_cursor_execute", count)
    assert len(reads) == 1 and service.seed_reads == 1
    found = await alerts(server)
    backwards = sorted((a["charge_point_id"], a["detail"]["connector_id"], a["detail"]["was_wh"]) for a in found
                       if a["kind"] == "energy_register_backwards")
    assert backwards == [(cp, c, 4999.0) for n, (cp, c) in enumerate(connectors) if n % 2]  # only those
