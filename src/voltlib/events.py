"""Typed domain events published on the bus after their data is committed.

They are msgspec Structs with a ``topic`` tag so they can travel through an external broker
(NATS, Redis) unchanged when several gateway nodes run: ``encode``/``decode`` below.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="topic"):
    charge_point_id: str
    at: datetime


class ChargePointConnected(Event, tag="ocpp.connected", frozen=True):
    address: str
    security_profile: int
    subprotocol: str
    certificate_fingerprint: str | None = None  # SHA-256 of the client certificate (TLS), for the detectors


class ChargePointDisconnected(Event, tag="ocpp.disconnected", frozen=True):
    code: int | None
    reason: str


class BootNotified(Event, tag="ocpp.boot", frozen=True):
    vendor: str
    model: str
    serial_number: str | None
    firmware_version: str | None
    registration: str


class HeartbeatReceived(Event, tag="ocpp.heartbeat", frozen=True):
    pass


class ConnectorStatusChanged(Event, tag="ocpp.status", frozen=True):
    connector_id: int
    previous: str | None
    status: str
    error_code: str
    vendor_error_code: str | None
    info: str | None
    expected: bool


class IdTagAuthorized(Event, tag="ocpp.authorize", frozen=True):
    id_tag: str
    status: str


class TransactionStarted(Event, tag="ocpp.transaction.started", frozen=True):
    transaction_id: int
    connector_id: int
    id_tag: str
    id_tag_status: str
    meter_start: int
    started_at: datetime
    reservation_id: int | None


class TransactionStopped(Event, tag="ocpp.transaction.stopped", frozen=True):
    transaction_id: int
    meter_stop: int
    stopped_at: datetime
    reason: str | None
    known: bool


class MeterValuesReceived(Event, tag="ocpp.meter_values", frozen=True):
    connector_id: int
    transaction_id: int | None
    sampled_at: datetime
    energy_wh: float | None
    power_w: float | None
    soc_percent: float | None


class DataTransferReceived(Event, tag="ocpp.data_transfer", frozen=True):
    vendor_id: str
    message_id: str | None
    size: int
    handled: bool


class FirmwareStatusChanged(Event, tag="ocpp.firmware_status", frozen=True):
    status: str
    signed: bool


class DiagnosticsStatusChanged(Event, tag="ocpp.diagnostics_status", frozen=True):
    status: str


class LogStatusChanged(Event, tag="ocpp.log_status", frozen=True):
    status: str
    request_id: int | None


class ChargePointSecurityEvent(Event, tag="ocpp.security_event", frozen=True):
    """A SecurityEventNotification the charge point itself sent (e.g. TamperDetectionActivated)."""

    type: str
    tech_info: str | None


class CertificateSigningRequested(Event, tag="ocpp.sign_certificate", frozen=True):
    """A SignCertificate CSR that passed the checks and was answered Accepted; the CA signs it next
    (the V2G back end for a 2.0.1 V2GCertificate)."""

    request_id: int
    csr: str
    certificate_type: str = "ChargingStationCertificate"  # or V2GCertificate (2.0.1)


class CarLeftWithoutRental(Event, tag="sharing.unauthorised_departure", frozen=True):
    """A car left its bay with no authorised rental (for the security detectors)."""

    connector_id: int
    car_id: str
    rental_id: str | None  # the reservation it broke, if any


class RentalChanged(Event, tag="sharing.rental", frozen=True):
    rental_id: str
    member_id: str
    car_id: str
    state: str


class BadgeDecided(Event, tag="sharing.badge", frozen=True):
    """A member badged at a charge point: the answer and, when refused, why."""

    id_tag: str
    member_id: str
    car_id: str | None
    status: str
    reason: str | None


class SecurityIncident(Event, tag="security.incident", frozen=True):
    """Something voltlib itself saw: failed auth, duplicate connection, protocol abuse."""

    kind: str
    severity: str
    source: str | None
    detail: dict[str, Any]


class QuarantineChanged(Event, tag="security.quarantine", frozen=True):
    """A charge point entered (``active``) or left quarantine: every node must know, since it may
    reconnect to any of them and is put back in quarantine by the one it reaches."""

    active: bool
    by: str


class TransactionStartRepeated(Event, tag="ocpp.transaction.repeated", frozen=True):
    """A StartTransaction (new message id) for a transaction voltlib already has: a retry or a replay."""

    transaction_id: int
    connector_id: int
    id_tag: str
    started_at: datetime


class ProtocolViolationSeen(Event, tag="ocpp.violation", frozen=True):
    """Every frame the session rejected (the security_events table only keeps the 1st, 10th, 100th…)."""

    code: str
    description: str
    action: str | None
    message_id: str | None
    count: int


class FieldTaskChanged(Event, tag="rebalancing.task", frozen=True):
    """A field task (move a car from one station to another) was created or changed state, so that
    the operators' maps draw it at once. Not about one charge point: ``charge_point_id`` is empty."""

    task_id: int
    city: str
    car_id: str
    from_station: str
    to_station: str
    state: str


class CommandFinished(Event, tag="ocpp.command", frozen=True):
    command_id: int
    action: str
    state: str
    response: dict[str, Any] | None
    request: dict[str, Any] | None = None  # as stored (a password redacted): followers need no read
    requested_by: str | None = None


class ChargingLimitChanged(Event, tag="ocpp.charging_limit", frozen=True):
    """An external limit (NotifyChargingLimit) came, changed or went (ClearedChargingLimit)."""

    evse_id: int  # 0: the whole station
    limit_source: str
    limit_w: float | None  # None: cleared, or the station did not tell the value


class ReservationEnded(Event, tag="ocpp.reservation.ended", frozen=True):
    """A charge point ended a reservation by itself (OCPP 2.0.1 ReservationStatusUpdate): ``Expired``
    at its expiry time, ``Removed`` when it could not keep it (the EVSE went out of service...)."""

    reservation_id: int
    status: str  # Expired | Removed


class CarNeedsReported(Event, tag="ocpp.ev.needs", frozen=True):
    """A car told its station what it needs (2.0.1 NotifyEVChargingNeeds, stored): its session must be
    planned again and sent a TxProfile (K15.FR.07), or again a new one when the schedule the car chose
    was over voltlib's limit (``renegotiate``, K15.FR.13)."""

    connector_id: int
    transaction_id: int
    renegotiate: bool = False


AnyEvent = (
    ChargePointConnected | ChargePointDisconnected | BootNotified | HeartbeatReceived | ConnectorStatusChanged
    | IdTagAuthorized | TransactionStarted | TransactionStopped | MeterValuesReceived | DataTransferReceived
    | FirmwareStatusChanged | DiagnosticsStatusChanged | LogStatusChanged | ChargePointSecurityEvent
    | CertificateSigningRequested | CarLeftWithoutRental | RentalChanged | BadgeDecided
    | SecurityIncident | CommandFinished | TransactionStartRepeated | ProtocolViolationSeen | QuarantineChanged
    | ReservationEnded | FieldTaskChanged | CarNeedsReported | ChargingLimitChanged
)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyEvent)


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def decode(data: bytes) -> Event:
    result: Event = _decoder.decode(data)
    return result
