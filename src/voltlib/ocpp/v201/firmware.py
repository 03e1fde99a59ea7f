"""OCPP 2.0.1 functional block L (firmware management): the typed requests and replies of both
directions. 2.0.1 has one UpdateFirmware, signed or not (1.6 had two actions): ``signingCertificate``
and ``signature`` are optional on the wire; voltlib requires them when it is configured with
manufacturer roots (docs/security.md, "Firmware over 2.0.1")."""

from __future__ import annotations

from datetime import datetime

from voltlib.ocpp.v201.common import CustomData, Int32, Message, Record, Reply, StatusInfo

# --- types of this block ---------------------------------------------------------------------


class Firmware(Record):
    location: str
    retrieve_date_time: datetime
    install_date_time: datetime | None = None
    signing_certificate: str | None = None
    signature: str | None = None
    custom_data: CustomData | None = None


# --- requests, each followed by its reply ----------------------------------------------------


class UpdateFirmware(Message):
    ACTION = "UpdateFirmware"
    request_id: Int32
    firmware: Firmware
    retries: Int32 | None = None
    retry_interval: Int32 | None = None
    custom_data: CustomData | None = None


class UpdateFirmwareReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class FirmwareStatusNotification(Message):
    ACTION = "FirmwareStatusNotification"
    status: str
    request_id: Int32 | None = None
    custom_data: CustomData | None = None


class FirmwareStatusNotificationReply(Reply):
    custom_data: CustomData | None = None
