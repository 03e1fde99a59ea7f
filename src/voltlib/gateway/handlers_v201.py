"""What voltlib does with each OCPP 2.0.1 request, and what it answers (issue 16).

The same shape as :mod:`voltlib.gateway.handlers_v16`: one function per action, in an explicit
table keyed by wire action; each handler commits its data before returning the reply, then
publishes the same version-neutral domain event as its 1.6 counterpart, so the detectors, car
sharing and the API see one kind of charge point. Transactions and meter values are in
:mod:`voltlib.gateway.transactions_v201`, device model reports in :mod:`voltlib.gateway.device_model`,
reservation status in :mod:`voltlib.gateway.reservations_v201`, log uploads in
:mod:`voltlib.gateway.logs_v201`, charging profiles and limits in
:mod:`voltlib.gateway.charging_profiles`. A 2.0.1 call typed in :mod:`voltlib.ocpp.v201.messages` but
missing here would be answered NotImplemented by the connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import msgspec

from voltlib import events as ev
from voltlib.domain.idtags import Decision
from voltlib.gateway import (
    certificates_v201,
    charging_profiles,
    contracts_v201,
    device_model,
    display_v201,
    ev_needs_v201,
    firmware_v201,
    logs_v201,
    monitoring_v201,
    neutral,
    reservations_v201,
    transactions_v201,
)
from voltlib.gateway.clock import stamp
from voltlib.gateway.context import ChargePointContext
from voltlib.ocpp.v201 import messages as m
from voltlib.store import repo

Handler = Callable[[ChargePointContext, Any], Awaitable[m.Reply]]


async def boot_notification(ctx: ChargePointContext, req: m.BootNotification) -> m.Reply:
    """B01-B03: Accepted, Pending or Rejected as the charge point is registered (the same
    registration policy as 1.6); the interval is the heartbeat's, or the retry's when not Accepted."""
    s = ctx.services
    now = s.clock.now()
    station = req.charging_station
    modem = station.modem
    status = await s.store.write(partial(
        repo.record_station_boot, cp_id=ctx.cp_id, vendor=station.vendor_name, model=station.model,
        serial_number=station.serial_number, firmware_version=station.firmware_version,
        iccid=None if modem is None else modem.iccid, imsi=None if modem is None else modem.imsi, now=now))
    interval = await neutral.booted(ctx, status, now, vendor=station.vendor_name[:20], model=station.model,
                                         serial_number=station.serial_number,
                                         firmware_version=station.firmware_version)
    return m.BootNotificationReply(current_time=now, interval=interval, status=status)


async def heartbeat(ctx: ChargePointContext, req: m.Heartbeat) -> m.Reply:
    return m.HeartbeatReply(current_time=await neutral.heartbeat(ctx))


async def status_notification(ctx: ChargePointContext, req: m.StatusNotification) -> m.Reply:
    """The EVSE is the connector row (``connector_id`` = evseId), the plug is ``evse_connector_id``
    (docs/architecture.md, "EVSEs and connectors"). A 2.0.1 status has no error code: NoError."""
    s = ctx.services
    now = s.clock.now()
    previous, expected = await s.store.write(partial(  # stored with its own stamp, as 1.6's
        repo.record_evse_status, cp_id=ctx.cp_id, evse_id=req.evse_id, connector_id=req.connector_id,
        status=req.connector_status, at=req.timestamp, now=now))
    [at] = await stamp(ctx, m.StatusNotification.ACTION, [req.timestamp], now)
    await s.bus.publish(ev.ConnectorStatusChanged(
        charge_point_id=ctx.cp_id, at=at, connector_id=req.evse_id, previous=previous, status=req.connector_status,
        error_code="NoError", vendor_error_code=None, info=None, expected=expected))
    return m.StatusNotificationReply()


async def security_event(ctx: ChargePointContext, req: m.SecurityEventNotification) -> m.Reply:
    """A04: stored and published as 1.6's, so the same detectors judge it (2.0.1 names its security
    events as the 1.6 whitepaper does)."""
    await neutral.security_event(ctx, req.type, req.tech_info, req.timestamp)
    return m.SecurityEventNotificationReply()


async def data_transfer(ctx: ChargePointContext, req: m.DataTransfer) -> m.Reply:
    """P01: the same router as 1.6. 2.0.1's data may be any JSON value; a router takes text, so
    anything else goes to it as its JSON text."""
    data = req.data if req.data is None or isinstance(req.data, str) else _json(req.data)
    answer = await neutral.data_transfer(ctx, req.vendor_id, req.message_id, data)
    return m.DataTransferReply(status=answer.status, data=answer.data)


async def authorize(ctx: ChargePointContext, req: m.Authorize) -> m.Reply:
    """C01: the same decision as a 1.6 Authorize (car sharing, then the id-tag table), whatever the
    IdToken's type; a NoAuthorization token asks nothing of voltlib and is Accepted. An eMAID with
    its contract certificate (C07, Plug & Charge) has the certificate checked first."""
    token = req.id_token
    if token.type == contracts_v201.EMAID and (req.certificate or req.iso15118_certificate_hash_data):
        return await contracts_v201.authorize(ctx, req)
    if token.type == transactions_v201.NO_AUTHORIZATION:
        decision = Decision("Accepted")
    else:
        decision = await neutral.authorize(ctx, transactions_v201.id_tag_of(token))
    return m.AuthorizeReply(id_token_info=transactions_v201.token_info(decision))


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


HANDLERS: dict[str, Handler] = {
    m.BootNotification.ACTION: boot_notification,
    m.Heartbeat.ACTION: heartbeat,
    m.StatusNotification.ACTION: status_notification,
    m.SecurityEventNotification.ACTION: security_event,
    m.DataTransfer.ACTION: data_transfer,
    m.Authorize.ACTION: authorize,
    m.TransactionEvent.ACTION: transactions_v201.transaction_event,
    m.MeterValues.ACTION: transactions_v201.meter_values,
    **device_model.HANDLERS,  # NotifyReport (gateway/device_model.py)
    **reservations_v201.HANDLERS,  # ReservationStatusUpdate
    **firmware_v201.HANDLERS,  # FirmwareStatusNotification
    **certificates_v201.HANDLERS,  # SignCertificate, Get15118EVCertificate, GetCertificateStatus
    **logs_v201.HANDLERS,  # LogStatusNotification
    **monitoring_v201.HANDLERS,  # NotifyEvent, NotifyMonitoringReport, NotifyCustomerInformation
    **display_v201.HANDLERS,  # NotifyDisplayMessages
    **ev_needs_v201.HANDLERS,  # NotifyEVChargingNeeds, NotifyEVChargingSchedule
    **charging_profiles.HANDLERS,  # ReportChargingProfiles, NotifyChargingLimit, ClearedChargingLimit
}
