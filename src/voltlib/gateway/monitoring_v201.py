"""What a 2.0.1 station tells voltlib of its logs, monitors, events and customers (block N; issue 17).

- LogStatusNotification: :mod:`voltlib.gateway.logs_v201` (``LogStatusChanged``, as 1.6's).
- NotifyEvent: every eventData stored once (``station_events``). An event of a door, the enclosure
  or a tamper switch (:func:`voltlib.domain.monitoring.tamper_of`) is also the security event
  ``TamperDetectionActivated``: stored and published through :func:`voltlib.gateway.neutral.security_event`,
  as the tamper SecurityEventNotification, so the tamper detector and its quarantine act alike.
- NotifyMonitoringReport: the monitors stored by id (``variable_monitors``); an accepted
  ClearVariableMonitoring removes them (:class:`MonitoringFollower`).
- NotifyCustomerInformation: each part stored by request, and an audit-log entry (who holds what of
  a member: the data itself stays in ``customer_information``, never in the permanent audit chain).

Everything is committed before it is answered. Joins :mod:`voltlib.gateway.handlers_v201`'s table.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import msgspec
from sqlalchemy import Connection

from voltlib import events as ev
from voltlib.domain.monitoring import tamper_of
from voltlib.gateway import neutral
from voltlib.gateway.clock import stamp
from voltlib.gateway.context import ChargePointContext, Services
from voltlib.gateway.display_v201 import message_row
from voltlib.ocpp.v201 import messages as m
from voltlib.security import audit
from voltlib.store import diagnostics as dg
from voltlib.store import repo

log = logging.getLogger(__name__)
CUSTOMER_INFORMATION_RECEIVED = "customer_information.received"


def event_row(seq_no: int, e: m.EventData) -> dict[str, Any]:
    evse = e.component.evse
    return {"event_id": e.event_id, "at": e.timestamp, "seq_no": seq_no, "trigger": e.trigger,
            "notification_type": e.event_notification_type, "component": e.component.name,
            "component_instance": e.component.instance or "", "evse_id": 0 if evse is None else evse.id,
            "connector_id": 0 if evse is None or evse.connector_id is None else evse.connector_id,
            "variable": e.variable.name, "variable_instance": e.variable.instance or "",
            "actual_value": e.actual_value, "cause": e.cause, "tech_code": e.tech_code, "tech_info": e.tech_info,
            "cleared": bool(e.cleared), "transaction_id": e.transaction_id,
            "variable_monitoring_id": e.variable_monitoring_id,
            "security": tamper_of(e.component.name, e.variable.name, e.actual_value, cleared=bool(e.cleared))}


async def notify_event(ctx: ChargePointContext, req: m.NotifyEvent) -> m.Reply:
    """N07/N08: stored once (a part sent again stores nothing and raises nothing again); a tamper
    event newly stored becomes the neutral security event, stamped through the clock policy."""
    s = ctx.services
    now = s.clock.now()
    rows = [event_row(req.seq_no, e) for e in req.event_data]
    stored = set(await s.store.write(partial(dg.record_events, cp_id=ctx.cp_id, rows=rows, now=now)))
    physical = [r for r in rows if r["security"] is not None and r["event_id"] in stored]
    if physical:
        stamps = await stamp(ctx, m.NotifyEvent.ACTION, [r["at"] for r in physical], now)
        for row, at in zip(physical, stamps, strict=True):
            info = (f"NotifyEvent {row['component']}.{row['variable']}={row['actual_value'][:40]} "
                    f"(eventId {row['event_id']}, {row['notification_type']})")
            await neutral.security_event(ctx, row["security"], info, at)
    return m.NotifyEventReply()


def monitor_rows(data: m.MonitoringData) -> list[dict[str, Any]]:
    evse = data.component.evse
    where = {"component": data.component.name, "component_instance": data.component.instance or "",
             "evse_id": 0 if evse is None else evse.id,
             "connector_id": 0 if evse is None or evse.connector_id is None else evse.connector_id,
             "variable": data.variable.name, "variable_instance": data.variable.instance or ""}
    return [{"monitor_id": v.id, **where, "type": v.type, "value": v.value, "severity": v.severity,
             "transaction": v.transaction} for v in data.variable_monitoring]


async def notify_monitoring_report(ctx: ChargePointContext, req: m.NotifyMonitoringReport) -> m.Reply:
    """N02: one part of a monitoring report, committed before it is answered."""
    s = ctx.services
    rows = [row for data in req.monitor or [] for row in monitor_rows(data)]
    await s.store.write(partial(dg.store_monitors, cp_id=ctx.cp_id, request_id=req.request_id, rows=rows,
                                now=s.clock.now()))
    return m.NotifyMonitoringReportReply()


async def notify_customer_information(ctx: ChargePointContext, req: m.NotifyCustomerInformation) -> m.Reply:
    """N09/N10: the part and its audit entry in one transaction, before the answer."""
    s = ctx.services
    now = s.clock.now()

    def op(conn: Connection) -> None:
        if dg.store_customer_information(conn, ctx.cp_id, req.request_id, req.seq_no, req.data, req.tbc,
                                         req.generated_at, now):
            audit.append(conn, actor=f"charge_point:{ctx.cp_id}", action=CUSTOMER_INFORMATION_RECEIVED,
                         target=f"cp_id={ctx.cp_id}/request_id={req.request_id}",
                         detail={"seq_no": req.seq_no, "tbc": req.tbc, "characters": len(req.data)}, now=now)

    await s.store.write(op)
    return m.NotifyCustomerInformationReply()


HANDLERS: dict[str, Callable[[ChargePointContext, Any], Awaitable[m.Reply]]] = {
    m.NotifyEvent.ACTION: notify_event,
    m.NotifyMonitoringReport.ACTION: notify_monitoring_report,
    m.NotifyCustomerInformation.ACTION: notify_customer_information,
}


class MonitoringFollower:
    """Removes the monitors a station accepted to clear (ClearVariableMonitoring), and keeps the
    display messages in step with SetDisplayMessage / ClearDisplayMessage answers, whoever sent them."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def install(self) -> None:
        self.services.bus.subscribe(self.on_event, ev.CommandFinished, name="monitoring-display", scope="node")

    async def on_event(self, event: ev.Event) -> None:
        if not isinstance(event, ev.CommandFinished) or event.state != "answered" or event.response is None \
                or event.action not in FOLLOWED:
            return
        s = self.services
        row = await s.store.read(partial(repo.get_command, command_id=event.command_id))
        if row is None:
            return
        try:
            op = FOLLOWED[event.action](event.charge_point_id, row["request"], event.response, s.clock.now())
        except (KeyError, TypeError, ValueError, msgspec.ValidationError) as exc:  # validated: not expected
            log.warning("%s: %s %d not followed: %s", event.charge_point_id, event.action, event.command_id, exc)
            return
        if op is not None:
            await s.store.write(op)


Op = Callable[[Connection], Any]


def _cleared_monitors(cp_id: str, request: dict[str, Any], response: dict[str, Any], now: Any) -> Op | None:
    ids = [r["id"] for r in response.get("clearMonitoringResult", []) if r.get("status") in ("Accepted", "NotFound")]
    return partial(dg.clear_monitors, cp_id=cp_id, monitor_ids=ids) if ids else None


def _set_monitors(cp_id: str, request: dict[str, Any], response: dict[str, Any], now: Any) -> Op | None:
    """Monitors the station accepted, with the ids it gave them (N04), stored as a report would."""
    rows = []
    for r in response.get("setMonitoringResult", []):
        if r.get("status") != "Accepted" or r.get("id") is None:
            continue
        asked = next((d for d in request.get("setMonitoringData", [])
                      if d["component"] == r["component"] and d["variable"] == r["variable"]
                      and d["type"] == r["type"]), None)
        if asked is None:
            continue
        data = m.MonitoringData(
            component=msgspec.convert(r["component"], m.Component), variable=msgspec.convert(r["variable"], m.Variable),
            variable_monitoring=[m.VariableMonitoring(id=r["id"], transaction=bool(asked.get("transaction", False)),
                                                      value=float(asked["value"]), type=r["type"],
                                                      severity=r["severity"])])
        rows += monitor_rows(data)
    return partial(dg.store_monitors, cp_id=cp_id, request_id=0, rows=rows, now=now) if rows else None


def _displayed(cp_id: str, request: dict[str, Any], response: dict[str, Any], now: Any) -> Op | None:
    if response.get("status") != "Accepted":
        return None
    info = msgspec.convert(request["message"], m.MessageInfo)
    return partial(dg.store_display_messages, cp_id=cp_id, rows=[message_row(info)], source="set", now=now)


def _cleared_display(cp_id: str, request: dict[str, Any], response: dict[str, Any], now: Any) -> Op | None:
    if response.get("status") != "Accepted":
        return None
    return partial(dg.clear_display_message, cp_id=cp_id, message_id=int(request["id"]))


FOLLOWED: dict[str, Callable[[str, dict[str, Any], dict[str, Any], Any], Op | None]] = {
    m.ClearVariableMonitoring.ACTION: _cleared_monitors,
    m.SetVariableMonitoring.ACTION: _set_monitors,
    m.SetDisplayMessage.ACTION: _displayed,
    m.ClearDisplayMessage.ACTION: _cleared_display,
}
