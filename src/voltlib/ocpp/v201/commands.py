"""The command port's OCPP 2.0.1 adapter: a version-neutral command becomes a 2.0.1 call, and the
answer becomes a neutral status. Sans-I/O: the gateway sends what this builds.

Choices where 2.0.1 says more than the neutral command (docs/architecture.md, "Commands in either
version"): voltlib's connector number is the evseId (connector 0: no EVSE, the whole station);
member badges are RFID cards, so their idToken type is ISO14443; a Reset is Immediate when the
command says so, OnIdle otherwise; a transaction is named by the station's own transactionId,
which the gateway looks up and passes as ``station_tx_id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voltlib.domain import commands as c
from voltlib.ocpp.v16.commands import iso, neutral_periods, profile_times, schedule_periods

Payload = dict[str, Any]

BADGE_TYPE = "ISO14443"
_PURPOSE = {"ChargePointMax": "ChargingStationMaxProfile", "TxDefault": "TxDefaultProfile", "Tx": "TxProfile"}
NEUTRAL_PURPOSE = {wire: neutral for neutral, wire in _PURPOSE.items()}

# Every call a CSMS may make to a 2.0.1 charging station (OCPP 2.0.1 part 2, by functional block):
# what the operator API's raw commands accept for a 2.0.1 charge point.
CSMS_ACTIONS = frozenset({
    "CancelReservation", "CertificateSigned", "ChangeAvailability", "ClearCache", "ClearChargingProfile",
    "ClearDisplayMessage", "ClearVariableMonitoring", "CostUpdated", "CustomerInformation", "DataTransfer",
    "DeleteCertificate", "GetBaseReport", "GetChargingProfiles", "GetCompositeSchedule", "GetDisplayMessages",
    "GetInstalledCertificateIds", "GetLocalListVersion", "GetLog", "GetMonitoringReport", "GetReport",
    "GetTransactionStatus", "GetVariables", "InstallCertificate", "PublishFirmware", "RequestStartTransaction",
    "RequestStopTransaction", "ReserveNow", "Reset", "SendLocalList", "SetChargingProfile", "SetDisplayMessage",
    "SetMonitoringBase", "SetMonitoringLevel", "SetNetworkProfile", "SetVariableMonitoring", "SetVariables",
    "TriggerMessage", "UnlockConnector", "UnpublishFirmware", "UpdateFirmware",
})


def needs_station_tx(command: c.Command) -> int | None:
    """voltlib's transaction id whose station transactionId the call must carry, if any."""
    if isinstance(command, c.StopCharging):
        return command.transaction_id
    if isinstance(command, c.LimitPower):
        return command.limit.transaction_id
    return None


def charging_profile(limit: c.PowerLimit, station_tx_id: str | None) -> Payload:
    """A 2.0.1 ``chargingProfile`` (in W, one schedule whose id is the profile's)."""
    times, profile = profile_times(limit, iso)
    schedule: Payload = {"id": limit.profile_id, **times, "chargingRateUnit": "W",
                         "chargingSchedulePeriod": schedule_periods(limit)}
    profile = {"id": limit.profile_id, "stackLevel": limit.stack_level,
               "chargingProfilePurpose": _PURPOSE[limit.purpose], **profile, "chargingSchedule": [schedule]}
    if station_tx_id is not None:
        profile["transactionId"] = station_tx_id
    return profile


def _badge(id_tag: str) -> Payload:
    return {"idToken": id_tag, "type": BADGE_TYPE}


def to_call(command: c.Command, station_tx_id: str | None = None) -> tuple[str, Payload]:
    """The 2.0.1 action and payload that carry ``command``."""
    match command:
        case c.LimitPower(connector_id, limit):
            return "SetChargingProfile", {"evseId": connector_id,
                                          "chargingProfile": charging_profile(limit, station_tx_id)}
        case c.ReadSchedule(connector_id, duration_s):
            return "GetCompositeSchedule", {"evseId": connector_id, "duration": duration_s, "chargingRateUnit": "W"}
        case c.ClearLimits(profile_id, connector_id, purpose, stack_level):
            if profile_id is not None:  # K10: an id names one profile; criteria would be ignored
                return "ClearChargingProfile", {"chargingProfileId": profile_id}
            criteria = {"evseId": connector_id, "stackLevel": stack_level,
                        "chargingProfilePurpose": None if purpose is None else _PURPOSE[purpose]}
            kept = {k: v for k, v in criteria.items() if v is not None}
            return "ClearChargingProfile", {"chargingProfileCriteria": kept} if kept else {}
        case c.ReadProfiles(request_id, connector_id, purpose, stack_level, profile_ids):
            criterion = {"chargingProfilePurpose": None if purpose is None else _PURPOSE[purpose],
                         "stackLevel": stack_level, "chargingProfileId": list(profile_ids) or None}
            read: Payload = {"requestId": request_id,
                             "chargingProfile": {k: v for k, v in criterion.items() if v is not None}}
            if connector_id is not None:
                read["evseId"] = connector_id
            return "GetChargingProfiles", read
        case c.Reserve(connector_id, reservation_id, id_tag, expires_at):
            reserve: Payload = {"id": reservation_id, "expiryDateTime": iso(expires_at), "idToken": _badge(id_tag)}
            if connector_id > 0:
                reserve["evseId"] = connector_id
            return "ReserveNow", reserve
        case c.CancelReservation(reservation_id):
            return "CancelReservation", {"reservationId": reservation_id}
        case c.PushLocalList(version, full, blocked, contracts):
            entries = [{"idToken": {"idToken": tag, "type": "eMAID"} if tag in contracts else _badge(tag),
                        "idTokenInfo": {"status": "Blocked"}} for tag in blocked]
            push: Payload = {"versionNumber": version, "updateType": "Full" if full else "Differential"}
            if entries:
                push["localAuthorizationList"] = entries
            return "SendLocalList", push
        case c.ChangeAvailability(connector_id, operative):
            change: Payload = {"operationalStatus": "Operative" if operative else "Inoperative"}
            if connector_id > 0:
                change["evse"] = {"id": connector_id}
            return "ChangeAvailability", change
        case c.Reset(immediate):
            return "Reset", {"type": "Immediate" if immediate else "OnIdle"}
        case c.Unlock(connector_id):
            return "UnlockConnector", {"evseId": connector_id, "connectorId": 1}
        case c.StartCharging(id_tag, connector_id, remote_start_id):
            start: Payload = {"idToken": _badge(id_tag), "remoteStartId": remote_start_id}
            if connector_id is not None:
                start["evseId"] = connector_id
            return "RequestStartTransaction", start
        case c.StopCharging(transaction_id):
            return "RequestStopTransaction", {"transactionId": station_tx_id or str(transaction_id)}
        case c.Trigger(message, connector_id):
            return _trigger(message, connector_id)
        case c.SetPassword(password):
            return "SetVariables", {"setVariableData": [{
                "attributeValue": password, "component": {"name": "SecurityCtrlr"},
                "variable": {"name": "BasicAuthPassword"}}]}
        case c.InstallCertificate(chain_pem, certificate_type):
            return "CertificateSigned", {"certificateChain": chain_pem, "certificateType": certificate_type}
        case c.ShowMessage():
            return "SetDisplayMessage", {"message": display_message(command)}
        case c.ClearMessage(message_id):
            return "ClearDisplayMessage", {"id": message_id}
    raise TypeError(f"no OCPP 2.0.1 call for {type(command).__name__}")


def display_message(show: c.ShowMessage) -> Payload:
    """A 2.0.1 MessageInfo: in front of the station's own messages (InFront), UTF-8 text, on the
    display of the EVSE when a connector is named, shown until ``until``."""
    content: Payload = {"format": "UTF8", "content": show.text[:512]}
    if show.language is not None:
        content["language"] = show.language
    info: Payload = {"id": show.message_id, "priority": "InFront", "message": content}
    if show.connector_id > 0:
        info["display"] = {"name": "Display", "evse": {"id": show.connector_id}}
    if show.until is not None:
        info["endDateTime"] = iso(show.until)
    return info


def _trigger(message: str, connector_id: int | None) -> tuple[str, Payload]:
    names = {"SignCertificate": "SignChargingStationCertificate"}
    payload: Payload = {"requestedMessage": names.get(message, message)}
    if connector_id is not None and connector_id > 0:
        payload["evse"] = {"id": connector_id}
    return "TriggerMessage", payload


def schedule_of(response: Mapping[str, Any] | None) -> tuple[c.Period, ...]:
    """The composite schedule of a 2.0.1 GetCompositeSchedule answer, in W."""
    return neutral_periods((response or {}).get("schedule") or {})


def outcome(command: c.Command, response: Mapping[str, Any] | None) -> tuple[str | None, float | None]:
    """The neutral status of a 2.0.1 answer, and for a schedule its first period's limit."""
    if response is None:
        return None, None
    if isinstance(command, c.SetPassword):
        results = response.get("setVariableResult") or [{}]
        status = results[0].get("attributeStatus")
        return (None if status is None else str(status)), None
    status = response.get("status")
    if isinstance(command, c.ReadSchedule):
        periods = (response.get("schedule") or {}).get("chargingSchedulePeriod") or []
        return status, float(periods[0]["limit"]) if periods else None
    return (None if status is None else str(status)), None
