"""The OCPP 2.0.1 dialect of the simulated charge point.

- BootNotification (chargingStation, reason PowerUp; RemoteReset after a Reset, Triggered when
  asked), Heartbeat, StatusNotification per EVSE (evseId = the connector of the hardware, one plug:
  connectorId 1). 2.0.1 has five connector states: the hardware's Preparing, Charging,
  SuspendedEV/EVSE and Finishing are all ``Occupied``, and a status is sent only when the 2.0.1
  status changes.
- A badge is Authorize {idToken, type ISO14443}. A transaction is TransactionEvent Started
  (triggerReason CablePluggedIn when the car identified itself with its own tag as it was plugged
  in, Authorized after a badge, RemoteStart; the station's UUID as transactionId; seqNo from 0;
  meter values Transaction.Begin of TxStartedMeasurands), Updated (MeterValuePeriodic) where 1.6
  sends MeterValues, Ended (EVDisconnected: triggerReason EVCommunicationLost; the others below).
  Events that happen offline carry ``offline: true`` and wait in the outbox like 1.6's.
- The central system's commands of 2.0.1 that voltlib sends get schema-valid answers that do
  what the specification says (see ``COMMANDS``); any other action is answered NotImplemented.

An ISO 15118 car (``Car.iso15118``) tells the central system what it needs once its session has
started (NotifyEVChargingNeeds: AC single phase, the energy up to its target, its departure as this
post's clock reads it, its current), and after each TxProfile for its session answers with the
schedule it chose, the profile's limit capped at what it takes (NotifyEVChargingSchedule, K15.FR.19).

Messages are built from the typed classes of :mod:`voltlib.ocpp.v201.messages` (explicit wire
names) and commands read through them; SetChargingProfile and ClearChargingProfile are read as
schema-checked JSON (the profile store keeps 1.6-shaped bodies). Reports of profiles and external
limits: :mod:`voltlib.sim.charging_v201`.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING

import msgspec

from voltlib.ocpp.errors import ErrorCode, OcppError
from voltlib.ocpp.v201 import messages as m
from voltlib.sim import charging_v201, device_model
from voltlib.sim.dialect import Answer, Dialect
from voltlib.sim.hardware import ConfigKey, Connector, Reservation, Transaction, truthy, valid_value
from voltlib.sim.link import Payload, Queued

if TYPE_CHECKING:
    from voltlib.sim.chargepoint import SimulatedChargePoint

TOKEN_TYPE = "ISO14443"  # the badges and the cars' tags are RFID cards
STATUS = {"Available": "Available", "Preparing": "Occupied", "Charging": "Occupied", "SuspendedEV": "Occupied",
          "SuspendedEVSE": "Occupied", "Finishing": "Occupied", "Reserved": "Reserved",
          "Unavailable": "Unavailable", "Faulted": "Faulted"}
CHARGING_STATE = {"Charging": "Charging", "SuspendedEV": "SuspendedEV", "SuspendedEVSE": "SuspendedEVSE"}
# the hardware's reason to stop (1.6's words) -> (triggerReason, stoppedReason)
STOPPED = {"EVDisconnected": ("EVCommunicationLost", "EVDisconnected"), "Local": ("StopAuthorized", "Local"),
           "Remote": ("RemoteStop", "Remote"), "DeAuthorized": ("Deauthorized", "DeAuthorized"),
           "HardReset": ("ResetCommand", "ImmediateReset"), "SoftReset": ("ResetCommand", "ImmediateReset"),
           "UnlockCommand": ("UnlockCommand", "Other"), "EmergencyStop": ("AbnormalCondition", "EmergencyStop"),
           "PowerLoss": ("AbnormalCondition", "PowerLoss"), "Reboot": ("ResetCommand", "Reboot"),
           "Other": ("AbnormalCondition", "Other")}
PURPOSE = {"ChargingStationMaxProfile": "ChargePointMaxProfile"}  # 2.0.1 -> the profile store's (1.6) name
EV_MIN_CURRENT_A, EV_VOLTAGE_V, EV_SCHEDULE_TUPLES = 6, 230, 24  # an AC car on one phase (IEC 61851)
TRIGGERABLE = frozenset({"BootNotification", "Heartbeat", "MeterValues", "StatusNotification", "TransactionEvent"})


def _out(message: m.Record) -> Payload:
    payload: Payload = msgspec.to_builtins(message)
    return payload


def _token(value: str) -> m.IdToken:
    return m.IdToken(id_token=value, type=TOKEN_TYPE)


class DialectV201(Dialect):
    version = "2.0.1"
    subprotocol = "ocpp2.0.1"
    COMMANDS = frozenset({"CancelReservation", "CertificateSigned", "ChangeAvailability", "ClearCache",
                          "ClearChargingProfile", "DataTransfer", "GetBaseReport", "GetChargingProfiles",
                          "GetCompositeSchedule",
                          "GetLocalListVersion",
                          "GetTransactionStatus", "GetVariables",
                          "RequestStartTransaction", "RequestStopTransaction", "ReserveNow", "Reset",
                          "SendLocalList", "SetChargingProfile", "SetVariables", "TriggerMessage",
                          "UnlockConnector"})

    def __init__(self, cp: SimulatedChargePoint) -> None:
        super().__init__(cp)
        self.settings: dict[str, ConfigKey] = device_model.extra_settings()
        self.boot_reason = "PowerUp"
        self._reported: dict[int, str] = {}  # EVSE -> the 2.0.1 status last queued
        self._seq: dict[int, int] = {}  # transaction (local id) -> its next seqNo
        self._reset_when_idle = False
        self._needs_told: set[int] = set()  # transactions (local ids) whose car reported its needs

    def dispatch(self, action: str, payload: Payload) -> Answer:
        try:
            return super().dispatch(action, payload)
        except msgspec.ValidationError as exc:  # valid by the schema, refused by the typed class (NUL...)
            raise OcppError(ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, str(exc)) from None

    def _now(self) -> datetime:
        """The time as this post's clock reads it."""
        cp = self.cp
        return cp.clock.now() + cp.clock_offset

    def _setting(self, key: str) -> ConfigKey:
        return self.settings.get(key) or self.cp.configuration[key]

    # ==== what the post says of itself ===========================================================

    def boot_payload(self) -> Payload:
        cp, o = self.cp, self.cp.options
        station = m.ChargingStation(model=o.model[:20], vendor_name=o.vendor[:50],
                                    serial_number=(o.serial_number or cp.cp_id)[:25],
                                    firmware_version=cp.firmware_version[:50])
        return _out(m.BootNotification(charging_station=station, reason=self.boot_reason))

    def booted(self) -> None:
        self.boot_reason = "PowerUp"

    def report_status(self, connector_id: int) -> None:
        if connector_id == 0:  # 2.0.1 reports EVSEs only
            return
        status = STATUS[self.cp.connectors[connector_id].status]
        if self._reported.get(connector_id) == status:
            return
        self._reported[connector_id] = status
        self.cp._enqueue("StatusNotification", self._status(connector_id, status), persistent=False)

    def _status(self, evse_id: int, status: str) -> Payload:
        return _out(m.StatusNotification(timestamp=self._now(), connector_status=status, evse_id=evse_id,
                                         connector_id=1))

    def reset_reports(self) -> None:
        self._reported.clear()

    def authorize_request(self, id_tag: str) -> tuple[str, Payload]:
        return "Authorize", _out(m.Authorize(id_token=_token(id_tag)))

    def authorize_info(self, result: Payload) -> Payload:
        return _as_id_tag_info(result["idTokenInfo"])

    def meter_value(self, c: Connector, context: str, measurands: set[str] | None = None) -> Payload:
        return _out(self._meter_value(c, context, measurands or self.cp.sampled_measurands()))

    def _measurands(self, key: str) -> set[str]:
        return {v.strip() for v in self._setting(key).value.split(",") if v.strip()}

    def _meter_value(self, c: Connector, context: str, wanted: set[str]) -> m.MeterValue:
        self.cp._advance(c)
        values: list[m.SampledValue] = []
        if "Energy.Active.Import.Register" in wanted:
            values.append(m.SampledValue(value=float(int(c.energy_wh)), context=context,
                                         measurand="Energy.Active.Import.Register", location="Outlet",
                                         unit_of_measure=m.UnitOfMeasure(unit="Wh")))
        if "Power.Active.Import" in wanted:
            values.append(m.SampledValue(value=float(int(c.power_w)), context=context, measurand="Power.Active.Import",
                                         location="Outlet", unit_of_measure=m.UnitOfMeasure(unit="W")))
        if "SoC" in wanted and c.car is not None and c.car.battery_wh is not None:
            values.append(m.SampledValue(value=round(c.car.soc, 1), context=context, measurand="SoC", location="EV",
                                         unit_of_measure=m.UnitOfMeasure(unit="Percent")))
        if not values:  # sampledValue needs one value: the energy register, whatever was asked
            values.append(m.SampledValue(value=float(int(c.energy_wh)), context=context,
                                         unit_of_measure=m.UnitOfMeasure(unit="Wh")))
        return m.MeterValue(sampled_value=values, timestamp=self._now())

    def _event(self, kind: str, c: Connector, tx: Transaction, trigger: str, *, meter: m.MeterValue | None,
               id_token: str | None = None, stopped_reason: str | None = None,
               charging_state: str | None = None) -> None:
        seq = self._seq.get(tx.local_id, 0)
        self._seq[tx.local_id] = seq + 1
        info = m.Transaction(transaction_id=tx.uuid, charging_state=charging_state, stopped_reason=stopped_reason,
                             remote_start_id=tx.remote_start_id if kind == "Started" else None)
        event = m.TransactionEvent(
            event_type=kind, seq_no=seq, timestamp=self._now(), transaction_info=info, trigger_reason=trigger,
            evse=m.EVSE(id=c.connector_id, connector_id=1),
            id_token=None if id_token is None else _token(id_token),
            meter_value=None if meter is None else [meter], offline=not self.cp.accepted.is_set(),
            reservation_id=tx.reservation_id if kind == "Started" else None)
        self.cp._enqueue("TransactionEvent", _out(event), tx)

    def transaction_started(self, c: Connector, tx: Transaction, trigger: str) -> None:
        meter = self._meter_value(c, "Transaction.Begin", self._measurands("TxStartedMeasurands"))
        self._event("Started", c, tx, trigger, meter=meter, id_token=tx.id_tag)
        if c.car is not None and c.car.iso15118:
            self._needs_told.add(tx.local_id)
            self.cp._enqueue("NotifyEVChargingNeeds", self.charging_needs(c), tx, persistent=False)

    def charging_needs(self, c: Connector) -> Payload:
        """K15: the car's ChargeParameterDiscoveryReq, as the station relays it (a live ISO 15118
        exchange: not kept for a later connection, K15.FR.15)."""
        car = c.car
        assert car is not None
        ac = m.ACChargingParameters(energy_amount=car.energy_needed_wh(), ev_min_current=EV_MIN_CURRENT_A,
                                    ev_max_current=math.ceil(car.max_power_w / EV_VOLTAGE_V),
                                    ev_max_voltage=EV_VOLTAGE_V)
        # ISO 15118 says how many seconds until departure, never a past time: one that has passed
        # (the member did not come, or the message waited in the outbox) is not said
        departure = None if car.departure is None or car.departure <= self.cp.clock.now() \
            else car.departure + self.cp.clock_offset
        needs = m.ChargingNeeds(requested_energy_transfer="AC_single_phase", ac_charging_parameters=ac,
                                departure_time=departure)
        return _out(m.NotifyEVChargingNeeds(evse_id=c.connector_id, charging_needs=needs,
                                            max_schedule_tuples=EV_SCHEDULE_TUPLES))

    def transaction_sampled(self, c: Connector, tx: Transaction) -> None:
        meter = self._meter_value(c, "Sample.Periodic", self.cp.sampled_measurands())
        self._event("Updated", c, tx, "MeterValuePeriodic", meter=meter,
                    charging_state=CHARGING_STATE.get(c.status, "EVConnected"))

    def transaction_stopped(self, c: Connector, tx: Transaction, reason: str, id_tag: str | None) -> None:
        trigger, stopped = STOPPED.get(reason, ("AbnormalCondition", "Other"))
        meter = self._meter_value(c, "Transaction.End", self._measurands("TxEndedMeasurands"))
        self._event("Ended", c, tx, trigger, meter=meter, id_token=id_tag, stopped_reason=stopped)
        self._seq.pop(tx.local_id, None)
        self._needs_told.discard(tx.local_id)
        if self._reset_when_idle and not any(o.transaction is not None and o.transaction is not tx
                                             for o in self.cp.connectors.values()):
            self._reset_when_idle = False
            self.cp.spawn(self._reboot(), "reset-on-idle")

    def reservation_ended(self, reservation: Reservation, status: str) -> None:
        self.cp._enqueue("ReservationStatusUpdate", _out(m.ReservationStatusUpdate(
            reservation_id=reservation.reservation_id, reservation_update_status=status)), persistent=False)

    # ==== the outbox =============================================================================

    def resolved(self, item: Queued) -> Payload | None:
        """A car's needs are what it says when they leave the post (its charge by then), and nothing
        once its session has ended."""
        if item.action != "NotifyEVChargingNeeds" or item.transaction is None:
            return super().resolved(item)
        c = self.cp.connectors.get(item.transaction.connector_id)
        if c is None or c.transaction is not item.transaction or c.car is None:
            return None
        return self.charging_needs(c)

    def answered(self, item: Queued, result: Payload) -> None:
        super().answered(item, result)
        if item.action in ("NotifyEVChargingNeeds", "NotifyEVChargingSchedule"):
            self.cp.stats[f"{item.action}:{result.get('status')}"] += 1
        tx = item.transaction
        if item.action != "TransactionEvent" or tx is None or item.payload.get("eventType") != "Started":
            return
        tx.confirmed.set()
        if "idTokenInfo" not in result:
            return
        info = _as_id_tag_info(result["idTokenInfo"])
        tx.id_tag_status = str(info["status"])
        cp = self.cp
        cp._cache(tx.id_tag, info)
        c = cp.connectors[tx.connector_id]
        if (tx.id_tag_status != "Accepted" and c.transaction is tx
                and truthy(cp.configuration["StopTransactionOnInvalidId"].value)):
            cp.stop_transaction(tx.connector_id, reason="DeAuthorized")

    # ==== central-system commands ================================================================

    def _on_RequestStartTransaction(self, p: Payload) -> Answer:
        cp = self.cp
        req = msgspec.convert(p, m.RequestStartTransaction)
        id_tag = req.id_token.id_token
        if req.evse_id is None:
            free = [c for c in cp.connectors.values() if c.transaction is None
                    and c.status in ("Available", "Preparing", "Finishing")]
            with_car = [c for c in free if c.car is not None]
            chosen = (with_car or free)[0] if (with_car or free) else None
        else:
            chosen = cp.connectors.get(req.evse_id)
        rejected = _out(m.RequestStartTransactionReply(status="Rejected"))
        if chosen is None or chosen.transaction is not None or chosen.status in ("Unavailable", "Faulted"):
            return rejected, None
        if chosen.reservation is not None and id_tag not in (chosen.reservation.id_tag,
                                                             chosen.reservation.parent_id_tag):
            return rejected, None
        profile = p.get("chargingProfile")
        if profile is not None and profile["chargingProfilePurpose"] != "TxProfile":
            return rejected, None
        target = chosen.connector_id

        async def start() -> None:
            if (truthy(cp.configuration["AuthorizeRemoteTxRequests"].value)
                    and await cp.authorize(id_tag) != "Accepted"):
                return
            if cp.connectors[target].transaction is not None:
                return
            cp.start_transaction(target, id_tag, trigger="RemoteStart", remote_start_id=req.remote_start_id)
            if profile is not None:  # K05: a TxProfile for the transaction it starts
                cp.install_profile(target, _profile_body(profile))

        return _out(m.RequestStartTransactionReply(status="Accepted")), start

    def _on_RequestStopTransaction(self, p: Payload) -> Answer:
        cp = self.cp
        wanted = msgspec.convert(p, m.RequestStopTransaction).transaction_id
        found = cp.transaction_by(lambda tx: tx.uuid == wanted)
        if found is None:
            return _out(m.RequestStopTransactionReply(status="Rejected")), None
        connector_id = found.connector_id

        async def stop() -> None:
            cp.stop_transaction(connector_id, reason="Remote")

        return _out(m.RequestStopTransactionReply(status="Accepted")), stop

    def _on_GetTransactionStatus(self, p: Payload) -> Answer:
        cp = self.cp
        wanted = msgspec.convert(p, m.GetTransactionStatus).transaction_id
        queued = [i for i in cp._outbox if i.action == "TransactionEvent" and i.transaction is not None
                  and (wanted is None or i.transaction.uuid == wanted)]
        ongoing = None if wanted is None else cp.transaction_by(lambda tx: tx.uuid == wanted) is not None
        return _out(m.GetTransactionStatusReply(messages_in_queue=bool(queued), ongoing_indicator=ongoing)), None

    def _on_Reset(self, p: Payload) -> Answer:
        req = msgspec.convert(p, m.Reset)
        if req.evse_id is not None:  # this hardware restarts as a whole only
            return _out(m.ResetReply(status="Rejected")), None
        busy = any(c.transaction is not None for c in self.cp.connectors.values())
        if req.type == "OnIdle" and busy:
            self._reset_when_idle = True  # after the last transaction ends
            return _out(m.ResetReply(status="Scheduled")), None
        return _out(m.ResetReply(status="Accepted")), self._reboot

    async def _reboot(self) -> None:
        self.boot_reason = "RemoteReset"
        await self.cp.reboot(hard=False)  # Immediate: transactions end (ImmediateReset), are sent, then down

    def _on_UnlockConnector(self, p: Payload) -> Answer:
        req = msgspec.convert(p, m.UnlockConnector)
        c = self.cp.connectors.get(req.evse_id)
        if c is None or req.connector_id != 1:
            return _out(m.UnlockConnectorReply(status="UnknownConnector")), None
        if c.transaction is not None:  # F05.FR.02: the cable stays locked while a transaction runs
            return _out(m.UnlockConnectorReply(status="OngoingAuthorizedTransaction")), None

        async def unlock() -> None:
            await self.cp.unlock(req.evse_id)

        return _out(m.UnlockConnectorReply(status="Unlocked")), unlock

    def _on_ChangeAvailability(self, p: Payload) -> Answer:
        req = msgspec.convert(p, m.ChangeAvailability)
        if req.evse is not None and req.evse.connector_id not in (None, 1) and req.evse.id != 0:
            return _out(m.ChangeAvailabilityReply(status="Rejected")), None
        target = 0 if req.evse is None else req.evse.id
        status = self.cp.change_availability(target, req.operational_status == "Operative")
        return _out(m.ChangeAvailabilityReply(status=status)), None

    def _on_GetVariables(self, p: Payload) -> Answer:
        req = msgspec.convert(p, m.GetVariables)
        results = []
        for d in req.get_variable_data:
            status, value = self._get(d.component.name, d.variable.name, d.attribute_type)
            results.append(m.GetVariableResult(attribute_status=status, component=d.component, variable=d.variable,
                                               attribute_type=d.attribute_type, attribute_value=value))
        return _out(m.GetVariablesReply(get_variable_result=results)), None

    def _get(self, component: str, variable: str, attribute: str) -> tuple[str, str | None]:
        key = device_model.VARIABLES.get((component, variable))
        if key is None:
            return ("UnknownComponent" if component not in device_model.COMPONENTS else "UnknownVariable"), None
        if attribute != "Actual":
            return "NotSupportedAttributeType", None
        entry = self._setting(key)
        if entry.write_only:
            return "Rejected", None
        return "Accepted", entry.value[:2500]

    def _on_GetBaseReport(self, p: Payload) -> Answer:
        """B07: the whole device model (FullInventory, ConfigurationInventory: the same variables here)
        in one NotifyReport after the answer; a SummaryInventory is not supported."""
        req = msgspec.convert(p, m.GetBaseReport)
        if req.report_base == "SummaryInventory":
            return _out(m.GetBaseReportReply(status="NotSupported")), None

        async def report() -> None:
            self.cp._enqueue("NotifyReport", _out(m.NotifyReport(
                generated_at=self._now(), request_id=req.request_id, seq_no=0, report_data=self._report_data())),
                persistent=False)

        return _out(m.GetBaseReportReply(status="Accepted")), report

    def _report_data(self) -> list[m.ReportData]:
        data = []
        for (component, variable), key in sorted(device_model.VARIABLES.items()):
            entry = self._setting(key)
            mutability = "ReadOnly" if entry.readonly else "WriteOnly" if entry.write_only else "ReadWrite"
            attribute = m.VariableAttribute(type="Actual", mutability=mutability, persistent=True,
                                            value=None if entry.write_only else entry.value[:2500])
            data.append(m.ReportData(
                component=m.Component(name=component), variable=m.Variable(name=variable),
                variable_attribute=[attribute], variable_characteristics=m.VariableCharacteristics(
                    data_type=device_model.DATA_TYPES[entry.kind], supports_monitoring=False)))
        return data

    def _on_SetVariables(self, p: Payload) -> Answer:
        req = msgspec.convert(p, m.SetVariables)
        results = [m.SetVariableResult(attribute_status=self._set(d.component.name, d.variable.name, d.attribute_type,
                                                                  d.attribute_value),
                                       component=d.component, variable=d.variable, attribute_type=d.attribute_type)
                   for d in req.set_variable_data]
        return _out(m.SetVariablesReply(set_variable_result=results)), None

    def _set(self, component: str, variable: str, attribute: str, value: str) -> str:
        key = device_model.VARIABLES.get((component, variable))
        if key is None:
            return "UnknownComponent" if component not in device_model.COMPONENTS else "UnknownVariable"
        if attribute != "Actual":
            return "NotSupportedAttributeType"
        entry = self._setting(key)
        rule = "MeterValuesSampledData" if key in device_model.MEASURAND_SETTINGS else key
        if entry.readonly or not valid_value(rule, entry, value):
            return "Rejected"
        entry.value = value.strip().lower() if entry.kind == "bool" else value.strip() if entry.kind == "int" else value
        cp = self.cp
        if key == "HeartbeatInterval":
            cp.on_heartbeat_interval(int(value))
        elif key == "AuthorizationKey":
            cp.password = value  # used from the next connection on
        elif key == "MeterValueSampleInterval":
            cp.on_sample_interval(int(value))
        return "Accepted"

    def _on_CertificateSigned(self, p: Payload) -> Answer:
        return {"status": "Rejected"}, None  # this simulated hardware keeps no certificate store

    def _on_ClearCache(self, p: Payload) -> Answer:
        self.cp.auth_cache.clear()
        return _out(m.ClearCacheReply(status="Accepted")), None

    def _on_DataTransfer(self, p: Payload) -> Answer:
        return _out(m.DataTransferReply(status="UnknownVendorId")), None

    # -- local authorization list --

    def _on_GetLocalListVersion(self, p: Payload) -> Answer:
        cp = self.cp
        enabled = truthy(cp.configuration["LocalAuthListEnabled"].value)
        return _out(m.GetLocalListVersionReply(version_number=cp.local_list_version if enabled else 0)), None

    def _on_SendLocalList(self, p: Payload) -> Answer:
        cp = self.cp
        req = msgspec.convert(p, m.SendLocalList)
        entries = req.local_authorization_list or []

        def reply(status: str) -> Answer:
            return _out(m.SendLocalListReply(status=status)), None

        if (not truthy(cp.configuration["LocalAuthListEnabled"].value)
                or len(entries) > int(cp.configuration["SendLocalListMaxLength"].value)):
            return reply("Failed")
        if req.update_type == "Full":
            if any(e.id_token_info is None for e in entries):
                return reply("Failed")
            new_list = {e.id_token.id_token: _as_id_tag_info(_out(e.id_token_info)) for e in entries
                        if e.id_token_info is not None}
        else:
            if req.version_number <= cp.local_list_version:
                return reply("VersionMismatch")
            new_list = dict(cp.local_list)
            for e in entries:
                if e.id_token_info is not None:
                    new_list[e.id_token.id_token] = _as_id_tag_info(_out(e.id_token_info))
                else:
                    new_list.pop(e.id_token.id_token, None)
        if len(new_list) > int(cp.configuration["LocalAuthListMaxLength"].value):
            return reply("Failed")
        cp.local_list, cp.local_list_version = new_list, req.version_number
        return reply("Accepted")

    # -- reservation --

    def _on_ReserveNow(self, p: Payload) -> Answer:
        cp = self.cp
        req = msgspec.convert(p, m.ReserveNow)
        evse_id = req.evse_id
        if evse_id is None:  # any EVSE: this hardware holds the first free one
            free = [c.connector_id for c in cp.connectors.values() if c.status == "Available"]
            if not free:
                return _out(m.ReserveNowReply(status="Occupied")), None
            evse_id = free[0]
        group = None if req.group_id_token is None else req.group_id_token.id_token
        status = cp.reserve(evse_id, req.id, req.id_token.id_token, group, req.expiry_date_time)
        return _out(m.ReserveNowReply(status=status)), None

    def _on_CancelReservation(self, p: Payload) -> Answer:
        found = self.cp.cancel_reservation(msgspec.convert(p, m.CancelReservation).reservation_id)
        return _out(m.CancelReservationReply(status="Accepted" if found else "Rejected")), None

    # -- smart charging (schema-checked JSON: not typed in voltlib.ocpp.v201 yet) --

    def _on_SetChargingProfile(self, p: Payload) -> Answer:
        cp = self.cp
        evse_id, profile = int(p["evseId"]), p["chargingProfile"]
        rejected: Answer = {"status": "Rejected"}, None
        if profile["chargingProfilePurpose"] == "ChargingStationExternalConstraints":
            return rejected  # K01.FR.22: not the central system's to set
        if profile["chargingProfilePurpose"] == "TxProfile":
            c = cp.connectors.get(evse_id)
            tx = None if c is None else c.transaction
            if tx is None or profile.get("transactionId") != tx.uuid:  # K01.FR.03, K01.FR.09
                return rejected
        status = cp.install_profile(evse_id, _profile_body(profile))
        c = cp.connectors.get(evse_id)
        if (status != "Accepted" or profile["chargingProfilePurpose"] != "TxProfile" or c is None
                or c.transaction is None or c.transaction.local_id not in self._needs_told):
            return {"status": status}, None
        chosen = self._chosen_schedule(c, profile)

        async def tell() -> None:
            self.cp._enqueue("NotifyEVChargingSchedule", chosen, persistent=False)

        return {"status": status}, tell

    def _chosen_schedule(self, c: Connector, profile: Payload) -> Payload:
        """K15.FR.19: the schedule the car picked, the TxProfile's limit now capped at what it takes."""
        car, tx = c.car, c.transaction
        assert car is not None and tx is not None
        limit = self.cp.profiles.connector_limit(c.connector_id, self.cp.clock.now(),
                                                 self.cp._active_transaction(c.connector_id), tx.started_at)
        watts = car.max_power_w if limit is None else min(limit, car.max_power_w)
        period = m.ChargingSchedulePeriod(start_period=0, limit=float(int(watts)))
        schedule = m.ChargingSchedule(id=int(profile["chargingSchedule"][0]["id"]), charging_rate_unit="W",
                                      charging_schedule_period=[period])
        return _out(m.NotifyEVChargingSchedule(time_base=self._now(), evse_id=c.connector_id,
                                               charging_schedule=schedule))

    def _on_ClearChargingProfile(self, p: Payload) -> Answer:
        criteria = p.get("chargingProfileCriteria") or {}
        purpose = criteria.get("chargingProfilePurpose")
        removed = self.cp.clear_profiles(p.get("chargingProfileId"), criteria.get("evseId"),
                                         None if purpose is None else PURPOSE.get(purpose, purpose),
                                         criteria.get("stackLevel"))
        return {"status": "Accepted" if removed else "Unknown"}, None

    def _on_GetCompositeSchedule(self, p: Payload) -> Answer:
        cp = self.cp
        evse_id = int(p["evseId"])
        unit = str(p.get("chargingRateUnit") or "W")
        found = cp.composite_schedule(evse_id, int(p["duration"]), unit,
                                      cp._active_transaction(evse_id) if evse_id else None)
        if found is None:
            return {"status": "Rejected"}, None
        now, composite = found
        return {"status": "Accepted", "schedule": {
            "evseId": evse_id, "duration": composite["duration"], "scheduleStart": cp._stamp(now),
            "chargingRateUnit": unit, "chargingSchedulePeriod": composite["chargingSchedulePeriod"]}}, None

    def _on_GetChargingProfiles(self, p: Payload) -> Answer:
        found = charging_v201.matching(self.cp.profiles, p)
        if not found:
            return {"status": "NoProfiles"}, None
        parts = charging_v201.report_parts(int(p["requestId"]), found)
        return {"status": "Accepted"}, lambda: charging_v201.send_parts(self.cp._call, parts)

    def set_external_limit(self, evse_id: int, limit_w: float | None, source: str = "EMS",
                           grid_critical: bool = False) -> None:
        """An EMS or the grid operator limits the station (EVSE 0) or an EVSE (None: lifts it); the
        power obeys at once and the central system is told (K11-K13)."""
        cp, now = self.cp, self._now()
        body = None if limit_w is None else charging_v201.external_profile(evse_id, limit_w, source, now)
        cp.profiles.put_external(evse_id, body, charging_v201.EXTERNAL_ID_BASE + evse_id)
        for c in cp.connectors.values():
            cp._refresh(c)
        notice: Payload
        if limit_w is None:
            action, notice = "ClearedChargingLimit", {"chargingLimitSource": source}
            if evse_id > 0:
                notice["evseId"] = evse_id
        else:
            action, notice = "NotifyChargingLimit", charging_v201.limit_notice(evse_id, limit_w, source, now,
                                                                              grid_critical)

        async def tell() -> None:
            await cp._call(action, notice)

        cp.spawn(tell(), action)

    # -- remote trigger --

    def _on_TriggerMessage(self, p: Payload) -> Answer:
        cp = self.cp
        req = msgspec.convert(p, m.TriggerMessage)
        message = req.requested_message
        evse_id = None if req.evse is None or req.evse.id == 0 else req.evse.id

        def reply(status: str) -> Answer:
            return _out(m.TriggerMessageReply(status=status)), None

        if message not in TRIGGERABLE:
            return reply("NotImplemented")
        if evse_id is not None and evse_id not in cp.connectors:
            return reply("Rejected")
        if message == "BootNotification" and cp.accepted.is_set():
            return reply("Rejected")  # F06.FR.17: already accepted
        in_scope = [c for c in cp.connectors.values() if evse_id is None or c.connector_id == evse_id]
        if message == "TransactionEvent" and not any(c.transaction is not None for c in in_scope):
            return reply("Rejected")
        return _out(m.TriggerMessageReply(status="Accepted")), lambda: self._send_triggered(message, in_scope)

    async def _send_triggered(self, message: str, in_scope: list[Connector]) -> None:
        cp = self.cp
        if message == "BootNotification":
            self.boot_reason = "Triggered"
            cp._boot_now.set()
        elif message == "Heartbeat":
            await cp._call("Heartbeat", {})
        elif message == "StatusNotification":
            for c in in_scope:
                await cp._call("StatusNotification", self._status(c.connector_id, STATUS[c.status]))
        elif message == "MeterValues":
            for c in in_scope:
                await cp._call("MeterValues", _out(m.MeterValues(evse_id=c.connector_id, meter_value=[
                    self._meter_value(c, "Trigger", cp.sampled_measurands())])))
        elif message == "TransactionEvent":
            for c in in_scope:
                if c.transaction is not None:
                    self._event("Updated", c, c.transaction, "Trigger",
                                meter=self._meter_value(c, "Trigger", cp.sampled_measurands()),
                                charging_state=CHARGING_STATE.get(c.status, "EVConnected"))


def _as_id_tag_info(info: Payload) -> Payload:
    """A 2.0.1 idTokenInfo as the post keeps it (1.6's idTagInfo: status, expiryDate)."""
    kept: Payload = {"status": info["status"]}
    if info.get("cacheExpiryDateTime"):
        kept["expiryDate"] = info["cacheExpiryDateTime"]
    return kept


def _profile_body(profile: Payload) -> Payload:
    """A 2.0.1 chargingProfile as the profile store keeps it (1.6's csChargingProfiles; the first
    schedule; a TxProfile's transaction was checked by the caller and is the EVSE's)."""
    schedule = profile["chargingSchedule"][0]
    purpose = str(profile["chargingProfilePurpose"])
    body: Payload = {"chargingProfileId": profile["id"], "stackLevel": profile["stackLevel"],
                     "chargingProfilePurpose": PURPOSE.get(purpose, purpose),
                     "chargingProfileKind": profile["chargingProfileKind"],
                     "chargingSchedule": {k: schedule[k] for k in ("duration", "startSchedule", "chargingRateUnit",
                                                                   "chargingSchedulePeriod", "minChargingRate")
                                          if k in schedule}}
    for key in ("recurrencyKind", "validFrom", "validTo"):
        if profile.get(key) is not None:
            body[key] = profile[key]
    return body
