"""The command port's OCPP 1.6 adapter: a version-neutral command becomes a 1.6 call, and the
answer becomes a neutral status. Sans-I/O: the gateway sends what this builds."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from voltlib.domain import commands as c

MAX_ID_TAG = 20  # CiString20Type: a 1.6 idTag (2.0.1 tokens are up to 36)

Payload = dict[str, Any]

_PURPOSE = {"ChargePointMax": "ChargePointMaxProfile", "TxDefault": "TxDefaultProfile", "Tx": "TxProfile"}
VOLTS = 230.0  # a schedule answered in A is read as W at 230 V a phase, 3 phases unless the period says


def ocpp_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def schedule_periods(limit: c.PowerLimit) -> list[Payload]:
    """``chargingSchedulePeriod``: the same words in 1.6 and 2.0.1."""
    periods: list[Payload] = []
    for p in limit.periods:
        row: Payload = {"startPeriod": int(p.start_s), "limit": float(max(0, int(p.limit_w)))}
        if limit.number_phases is not None:
            row["numberPhases"] = limit.number_phases
        periods.append(row)
    return periods


def profile_times(limit: c.PowerLimit, at: Callable[[datetime], str] = ocpp_time) -> tuple[Payload, Payload]:
    """What the schedule and the profile say of time, in both versions' words: a Relative profile
    has no start (it runs from the transaction's), a Recurring one its recurrency, either its
    validity when it has one."""
    schedule: Payload = {} if limit.kind == "Relative" else {"startSchedule": at(limit.start)}
    if limit.duration_s is not None:
        schedule["duration"] = int(limit.duration_s)
    profile: Payload = {"chargingProfileKind": limit.kind}
    if limit.recurrency is not None:
        profile["recurrencyKind"] = limit.recurrency
    if limit.valid_from is not None:
        profile["validFrom"] = at(limit.valid_from)
    if limit.valid_to is not None:
        profile["validTo"] = at(limit.valid_to)
    return schedule, profile


def charging_profile(limit: c.PowerLimit) -> Payload:
    """A 1.6 ``csChargingProfiles`` (in W)."""
    times, profile = profile_times(limit)
    schedule: Payload = {**times, "chargingRateUnit": "W", "chargingSchedulePeriod": schedule_periods(limit)}
    profile = {"chargingProfileId": limit.profile_id, "stackLevel": limit.stack_level,
               "chargingProfilePurpose": _PURPOSE[limit.purpose], **profile, "chargingSchedule": schedule}
    if limit.transaction_id is not None:
        profile["transactionId"] = limit.transaction_id
    return profile


def watts(period: Mapping[str, Any], unit: str) -> float:
    """A schedule period's limit in W (see :data:`VOLTS`)."""
    limit = float(period["limit"])
    return limit if unit == "W" else limit * VOLTS * int(period.get("numberPhases") or 3)


def neutral_periods(schedule: Mapping[str, Any]) -> tuple[c.Period, ...]:
    """A chargingSchedule's periods (either version) as neutral periods in W."""
    unit = str(schedule.get("chargingRateUnit") or "W")
    return tuple(c.Period(int(p["startPeriod"]), round(watts(p, unit)))
                 for p in schedule.get("chargingSchedulePeriod") or [])


def to_call(command: c.Command) -> tuple[str, Payload]:
    """The 1.6 action and payload that carry ``command``."""
    match command:
        case c.LimitPower(connector_id, limit):
            return "SetChargingProfile", {"connectorId": connector_id, "csChargingProfiles": charging_profile(limit)}
        case c.ReadSchedule(connector_id, duration_s):
            return "GetCompositeSchedule", {"connectorId": connector_id, "duration": duration_s,
                                            "chargingRateUnit": "W"}
        case c.ClearLimits(profile_id, connector_id, purpose, stack_level):
            clear = {"id": profile_id, "connectorId": connector_id, "stackLevel": stack_level,
                     "chargingProfilePurpose": None if purpose is None else _PURPOSE[purpose]}
            return "ClearChargingProfile", {k: v for k, v in clear.items() if v is not None}
        case c.ReadProfiles():
            raise c.CommandRefused(409, "not-supported", "OCPP 1.6 has no GetChargingProfiles: read the "
                                   "composite schedule (GetCompositeSchedule) instead")
        case c.Reserve(connector_id, reservation_id, id_tag, expires_at):
            return "ReserveNow", {"connectorId": connector_id, "expiryDate": iso(expires_at),
                                  "idTag": id_tag, "reservationId": reservation_id}
        case c.CancelReservation(reservation_id):
            return "CancelReservation", {"reservationId": reservation_id}
        case c.PushLocalList(version, full, blocked):  # a 1.6 reader never sends a token over 20 characters
            return "SendLocalList", {"listVersion": version, "updateType": "Full" if full else "Differential",
                                     "localAuthorizationList": [{"idTag": tag, "idTagInfo": {"status": "Blocked"}}
                                                                for tag in blocked if len(tag) <= MAX_ID_TAG]}
        case c.ChangeAvailability(connector_id, operative):
            return "ChangeAvailability", {"connectorId": connector_id,
                                          "type": "Operative" if operative else "Inoperative"}
        case c.Reset(immediate):
            return "Reset", {"type": "Hard" if immediate else "Soft"}
        case c.Unlock(connector_id):
            return "UnlockConnector", {"connectorId": connector_id}
        case c.StartCharging(id_tag, connector_id, _):
            start: Payload = {"idTag": id_tag}
            if connector_id is not None:
                start["connectorId"] = connector_id
            return "RemoteStartTransaction", start
        case c.StopCharging(transaction_id):
            return "RemoteStopTransaction", {"transactionId": transaction_id}
        case c.Trigger(message, connector_id):
            return _trigger(message, connector_id)
        case c.SetPassword(password):
            return "ChangeConfiguration", {"key": "AuthorizationKey", "value": password}
        case c.InstallCertificate(chain_pem, "ChargingStationCertificate"):  # 1.6 has no V2G certificate
            return "CertificateSigned", {"certificateChain": chain_pem}
        case c.ShowMessage() | c.ClearMessage():
            raise c.CommandRefused(409, "not-supported", "OCPP 1.6 has no display messages")
    raise TypeError(f"no OCPP 1.6 call for {type(command).__name__}")


def _trigger(message: str, connector_id: int | None) -> tuple[str, Payload]:
    extended = {"LogStatusNotification": "LogStatusNotification", "SignCertificate": "SignChargePointCertificate"}
    action, name = ("ExtendedTriggerMessage", extended[message]) if message in extended else ("TriggerMessage", message)
    payload: Payload = {"requestedMessage": name}
    if connector_id is not None:
        payload["connectorId"] = connector_id
    return action, payload


def schedule_of(response: Mapping[str, Any] | None) -> tuple[c.Period, ...]:
    """The composite schedule of a 1.6 GetCompositeSchedule answer, in W."""
    return neutral_periods((response or {}).get("chargingSchedule") or {})


def outcome(command: c.Command, response: Mapping[str, Any] | None) -> tuple[str | None, float | None]:
    """The neutral status of a 1.6 answer, and for a schedule its first period's limit."""
    if response is None:
        return None, None
    status = response.get("status")
    if isinstance(command, c.ReadSchedule):
        periods = (response.get("chargingSchedule") or {}).get("chargingSchedulePeriod") or []
        return status, float(periods[0]["limit"]) if periods else None
    return (None if status is None else str(status)), None
