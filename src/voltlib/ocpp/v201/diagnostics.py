"""OCPP 2.0.1 functional block N (diagnostics), the part a central system's security needs: GetLog
(voltlib asks for a log upload) and LogStatusNotification (the station reports its progress). What
1.6 called GetDiagnostics / DiagnosticsStatusNotification; an upload nobody ordered is exfiltration
(:mod:`voltlib.security.detectors`)."""

from __future__ import annotations

from datetime import datetime

from voltlib.ocpp.v201.common import CustomData, Int32, Message, Record, Reply, StatusInfo

# --- types of this block ---------------------------------------------------------------------


class LogParameters(Record):
    remote_location: str
    oldest_timestamp: datetime | None = None
    latest_timestamp: datetime | None = None
    custom_data: CustomData | None = None


# --- requests, each followed by its reply ----------------------------------------------------


class GetLog(Message):
    ACTION = "GetLog"
    log_type: str  # DiagnosticsLog | SecurityLog
    request_id: Int32
    log: LogParameters
    retries: Int32 | None = None
    retry_interval: Int32 | None = None
    custom_data: CustomData | None = None


class GetLogReply(Reply):
    status: str  # Accepted | Rejected | AcceptedCanceled
    filename: str | None = None
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class LogStatusNotification(Message):
    ACTION = "LogStatusNotification"
    status: str  # BadMessage | Idle | NotSupportedOperation | PermissionDenied | Uploaded | UploadFailure | ...
    request_id: Int32 | None = None
    custom_data: CustomData | None = None


class LogStatusNotificationReply(Reply):
    custom_data: CustomData | None = None
