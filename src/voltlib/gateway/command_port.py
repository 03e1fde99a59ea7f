"""The command port: the domain's version-neutral commands, sent in the charge point's own OCPP
version.

Car sharing, fleet energy and security operations call :meth:`OcppCommandPort.send`; the port
asks which version the charge point speaks (its live connection here, or the version of its last
connection, which every node reads from the database), lets that version's adapter build the call
(:mod:`voltlib.ocpp.v16.commands`, :mod:`voltlib.ocpp.v201.commands`), sends it through the
gateway like any command (validated, stored in ``commands``, relayed to the node that holds the
socket) and reads the answer back through the same adapter.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from voltlib.domain import commands as c
from voltlib.ocpp.v16 import commands as v16
from voltlib.ocpp.v201 import commands as v201
from voltlib.store import repo

if TYPE_CHECKING:
    from voltlib.gateway.gateway import Gateway

def to_call(version: str, command: c.Command, station_tx_id: str | None = None) -> tuple[str, dict[str, Any]]:
    """``command`` as an action and payload of ``version``."""
    return v201.to_call(command, station_tx_id) if version == "2.0.1" else v16.to_call(command)


def read_outcome(version: str, command: c.Command, row: dict[str, Any]) -> c.Outcome:
    answer = row.get("response") if row.get("state") == "answered" else None
    adapter = v201 if version == "2.0.1" else v16
    status, schedule = adapter.outcome(command, answer)
    periods = adapter.schedule_of(answer) if isinstance(command, c.ReadSchedule) else ()
    return c.Outcome(state=str(row.get("state")), status=status, schedule_w=schedule, record=row, periods=periods)


class OcppCommandPort:
    """:class:`voltlib.domain.commands.CommandPort` over the gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def version_of(self, cp_id: str) -> str:
        """The version the charge point speaks now, or spoke at its last connection (1.6 if never)."""
        connection = self.gateway.connections.get(cp_id)
        if connection is not None:
            return connection.session.version
        record = await self.gateway.services.store.read(partial(repo.get_charge_point, cp_id=cp_id))
        return "1.6" if record is None or record.ocpp_version is None else record.ocpp_version

    async def send(self, cp_id: str, command: c.Command, *, requested_by: str,
                   timeout: float | None = None) -> c.Outcome:
        version = await self.version_of(cp_id)
        station_tx_id = None
        if version == "2.0.1" and (tx := v201.needs_station_tx(command)) is not None:
            station_tx_id = await self.gateway.services.store.read(
                partial(repo.station_transaction_id, cp_id=cp_id, transaction_id=tx))
            if station_tx_id is None:
                raise c.CommandRefused(409, "unknown-transaction",
                                       f"{cp_id} has no 2.0.1 transaction for voltlib transaction {tx}")
        action, payload = to_call(version, command, station_tx_id)
        row = await self.gateway.send_command(cp_id, action, payload, requested_by=requested_by, timeout=timeout)
        return read_outcome(version, command, row)
