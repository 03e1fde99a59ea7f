"""The OCPP 2.0.1 device model kept per charge point (B06-B08, B12; issue 16).

NotifyReport parts are stored before they are answered (:func:`notify_report`, in
:data:`HANDLERS`, which :mod:`voltlib.gateway.handlers_v201` takes in). GetVariables and
SetVariables answers update the values once the command is answered: :class:`DeviceModelFollower`
listens to ``CommandFinished``, which the gateway publishes for every command, whoever sent it (the
raw API, the command port). Secrets are never kept: a BasicAuthPassword is stored without its value.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import msgspec

from voltlib import events as ev
from voltlib.gateway.context import ChargePointContext, Services
from voltlib.ocpp.v201 import messages as m
from voltlib.ocpp.v201.provisioning import Component, ReportData, Variable
from voltlib.store import device_model as dm
from voltlib.store import repo

log = logging.getLogger(__name__)
SECRET_VARIABLES = frozenset({"BasicAuthPassword"})  # SecurityCtrlr's: set by rotate-password, never shown
ANSWERED_VALUES = ("Accepted", "RebootRequired")  # SetVariables statuses that took the value


def key_of(component: Component, variable: Variable, attribute_type: str) -> dm.Key:
    evse = component.evse
    return dm.Key(component=component.name, component_instance=component.instance or "",
                  evse_id=0 if evse is None else evse.id,
                  connector_id=0 if evse is None or evse.connector_id is None else evse.connector_id,
                  variable=variable.name, variable_instance=variable.instance or "", attribute_type=attribute_type)


def _value(variable: Variable, value: str | None) -> str | None:
    return None if variable.name in SECRET_VARIABLES else value


def reported(data: ReportData) -> list[dm.Reported]:
    """One row per attribute of a ReportData, each with the variable's characteristics."""
    chars = data.variable_characteristics
    characteristics = None if chars is None else {
        "data_type": chars.data_type, "unit": chars.unit, "min_limit": chars.min_limit,
        "max_limit": chars.max_limit, "values_list": chars.values_list,
        "supports_monitoring": chars.supports_monitoring}
    return [dm.Reported(key=key_of(data.component, data.variable, a.type), value=_value(data.variable, a.value),
                        mutability=a.mutability, constant=a.constant, persistent=a.persistent,
                        characteristics=characteristics)
            for a in data.variable_attribute]


async def notify_report(ctx: ChargePointContext, req: m.NotifyReport) -> m.Reply:
    """B07/B08: one part of a report (``tbc``: more to come), committed before it is answered."""
    s = ctx.services
    rows = [row for data in req.report_data or [] for row in reported(data)]
    dropped = await s.store.write(partial(dm.store_report, cp_id=ctx.cp_id, request_id=req.request_id, rows=rows,
                                          last=not req.tbc, now=s.clock.now()))
    if dropped:
        log.info("%s: full report %d dropped %d variables the station no longer has", ctx.cp_id,
                 req.request_id, dropped)
    return m.NotifyReportReply()


HANDLERS: dict[str, Callable[[ChargePointContext, Any], Awaitable[m.Reply]]] = {
    m.NotifyReport.ACTION: notify_report,
}


def confirmed_values(action: str, request: dict[str, Any], response: dict[str, Any]) -> list[tuple[dm.Key, str]]:
    """The values an answered GetVariables read or SetVariables set, by key (secrets left out)."""
    if action == m.GetVariables.ACTION:
        got = msgspec.convert(response, m.GetVariablesReply)
        return [(key_of(r.component, r.variable, r.attribute_type), r.attribute_value)
                for r in got.get_variable_result
                if r.attribute_status == "Accepted" and r.attribute_value is not None
                and r.variable.name not in SECRET_VARIABLES]
    asked = msgspec.convert(request, m.SetVariables)
    answered = msgspec.convert(response, m.SetVariablesReply)
    taken = {key_of(r.component, r.variable, r.attribute_type) for r in answered.set_variable_result
             if r.attribute_status in ANSWERED_VALUES}
    return [(key, d.attribute_value) for d in asked.set_variable_data
            if (key := key_of(d.component, d.variable, d.attribute_type)) in taken
            and d.variable.name not in SECRET_VARIABLES]


class DeviceModelFollower:
    """Keeps the stored model in step with the variables read and set on charge points."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def install(self) -> None:
        # node scope: the node that sent the command (and published its outcome) writes it, once
        self.services.bus.subscribe(self.on_event, ev.CommandFinished, name="device-model", scope="node")

    async def on_event(self, event: ev.Event) -> None:
        if not isinstance(event, ev.CommandFinished) or event.state != "answered" or event.response is None \
                or event.action not in (m.GetVariables.ACTION, m.SetVariables.ACTION):
            return
        s = self.services
        request: dict[str, Any] = {}
        if event.action == m.SetVariables.ACTION:
            row = await s.store.read(partial(repo.get_command, command_id=event.command_id))
            request = {} if row is None else row["request"]
        try:
            values = confirmed_values(event.action, request, event.response)
        except (msgspec.ValidationError, TypeError, ValueError) as exc:  # validated when answered: not expected
            log.warning("%s: %s answer %d not applied to the device model: %s", event.charge_point_id,
                        event.action, event.command_id, exc)
            return
        if values:
            source = "get" if event.action == m.GetVariables.ACTION else "set"
            await s.store.write(partial(dm.record_values, cp_id=event.charge_point_id, values=values, source=source,
                                        now=s.clock.now()))
