"""Typed OCPP 1.6 messages that a charge point sends, and our answers to them.

Each request class names its wire action explicitly in ``ACTION``; field names are the wire
names in camelCase via msgspec's ``rename`` (a fixed rule applied by the decoder, not a regex
patched at run time). Payloads are validated against the official schema *before* they are
converted, so these classes carry types, not constraints.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

import msgspec

# OCPP 1.6 ``integer`` is 32-bit signed; the JSON schemas do not bound it, and unbounded
# values would only fail later in the database (as our fault, so the charge point retries).
Int32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
ConnectorId = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]


def _check_storable(struct: msgspec.Struct) -> None:
    """Reject values that pass the schema but cannot be stored: datetimes that overflow when
    converted to UTC, and strings with NUL characters (PostgreSQL refuses them)."""
    for name in struct.__struct_fields__:
        value = getattr(struct, name)
        if isinstance(value, datetime):
            check_utc_range(name, value)
        elif isinstance(value, str) and "\x00" in value:
            raise ValueError(f"{name}: NUL character not allowed")


def check_utc_range(name: str, value: datetime) -> None:
    """A ValueError (which msgspec reports as a validation error) for a date-time that overflows in UTC."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{name}: date-time out of range") from None


class Message(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    ACTION: ClassVar[str]

    def __post_init__(self) -> None:
        _check_storable(self)


# --- shared types -----------------------------------------------------------------------------


class IdTagInfo(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    status: str
    expiry_date: datetime | None = None
    parent_id_tag: str | None = None


class SampledValue(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    value: str
    context: str = "Sample.Periodic"
    format: str = "Raw"
    measurand: str = "Energy.Active.Import.Register"
    phase: str | None = None
    location: str = "Outlet"
    unit: str = "Wh"


class MeterValue(msgspec.Struct, rename="camel", kw_only=True):
    timestamp: datetime
    sampled_value: list[SampledValue]

    def __post_init__(self) -> None:
        _check_storable(self)


# --- requests from the charge point -----------------------------------------------------------


class Authorize(Message):
    ACTION = "Authorize"
    id_tag: str


class BootNotification(Message):
    ACTION = "BootNotification"
    charge_point_vendor: str
    charge_point_model: str
    charge_point_serial_number: str | None = None
    charge_box_serial_number: str | None = None
    firmware_version: str | None = None
    iccid: str | None = None
    imsi: str | None = None
    meter_type: str | None = None
    meter_serial_number: str | None = None


class DataTransfer(Message):
    ACTION = "DataTransfer"
    vendor_id: str
    message_id: str | None = None
    data: str | None = None


class DiagnosticsStatusNotification(Message):
    ACTION = "DiagnosticsStatusNotification"
    status: str


class FirmwareStatusNotification(Message):
    ACTION = "FirmwareStatusNotification"
    status: str


class Heartbeat(Message):
    ACTION = "Heartbeat"


class MeterValues(Message):
    ACTION = "MeterValues"
    connector_id: ConnectorId
    meter_value: list[MeterValue]
    transaction_id: Int32 | None = None


class StartTransaction(Message):
    ACTION = "StartTransaction"
    connector_id: ConnectorId
    id_tag: str
    meter_start: Int32
    timestamp: datetime
    reservation_id: Int32 | None = None


class StatusNotification(Message):
    ACTION = "StatusNotification"
    connector_id: ConnectorId
    error_code: str
    status: str
    info: str | None = None
    timestamp: datetime | None = None
    vendor_id: str | None = None
    vendor_error_code: str | None = None


class StopTransaction(Message):
    ACTION = "StopTransaction"
    meter_stop: Int32
    timestamp: datetime
    transaction_id: Int32
    id_tag: str | None = None
    reason: str | None = None
    transaction_data: list[MeterValue] | None = None


class SecurityEventNotification(Message):
    ACTION = "SecurityEventNotification"
    type: str
    timestamp: datetime
    tech_info: str | None = None


class LogStatusNotification(Message):
    ACTION = "LogStatusNotification"
    status: str
    request_id: Int32 | None = None


class SignedFirmwareStatusNotification(Message):
    ACTION = "SignedFirmwareStatusNotification"
    status: str
    request_id: Int32 | None = None


class SignCertificate(Message):
    ACTION = "SignCertificate"
    csr: str


REQUESTS: dict[str, type[Message]] = {
    cls.ACTION: cls
    for cls in (
        Authorize,
        BootNotification,
        DataTransfer,
        DiagnosticsStatusNotification,
        FirmwareStatusNotification,
        Heartbeat,
        MeterValues,
        StartTransaction,
        StatusNotification,
        StopTransaction,
        SecurityEventNotification,
        LogStatusNotification,
        SignedFirmwareStatusNotification,
        SignCertificate,
    )
}

# Actions the central system may send to a 1.6 charge point (core, profiles and security whitepaper).
COMMANDS: frozenset[str] = frozenset(
    {
        "CancelReservation",
        "CertificateSigned",
        "ChangeAvailability",
        "ChangeConfiguration",
        "ClearCache",
        "ClearChargingProfile",
        "DataTransfer",
        "DeleteCertificate",
        "ExtendedTriggerMessage",
        "GetCompositeSchedule",
        "GetConfiguration",
        "GetDiagnostics",
        "GetInstalledCertificateIds",
        "GetLocalListVersion",
        "GetLog",
        "InstallCertificate",
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "ReserveNow",
        "Reset",
        "SendLocalList",
        "SetChargingProfile",
        "SignedUpdateFirmware",
        "TriggerMessage",
        "UnlockConnector",
        "UpdateFirmware",
    }
)


def decode_request(action: str, payload: dict[str, Any]) -> Message:
    """Turn a schema-valid payload into its typed message."""
    return msgspec.convert(payload, REQUESTS[action])


# --- answers ----------------------------------------------------------------------------------


class Reply(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    pass


class AuthorizeReply(Reply):
    id_tag_info: IdTagInfo


class BootNotificationReply(Reply):
    status: str
    current_time: datetime
    interval: int


class DataTransferReply(Reply):
    status: str
    data: str | None = None


class HeartbeatReply(Reply):
    current_time: datetime


class StartTransactionReply(Reply):
    id_tag_info: IdTagInfo
    transaction_id: int


class StopTransactionReply(Reply):
    id_tag_info: IdTagInfo | None = None


class SignCertificateReply(Reply):
    status: str


class EmptyReply(Reply):
    pass


# --- secrets ----------------------------------------------------------------------------------

REDACTED = "***redacted***"
_SECRET_CONFIGURATION_KEYS = frozenset({"AuthorizationKey"})


def redact(action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as it may be stored or logged: credentials sent to a charge point are masked
    (security whitepaper A01.FR.09: the AuthorizationKey must not be logged)."""
    if action == "ChangeConfiguration" and payload.get("key") in _SECRET_CONFIGURATION_KEYS:
        return {**payload, "value": REDACTED}
    return payload
