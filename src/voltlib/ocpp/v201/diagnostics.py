"""OCPP 2.0.1 functional block N (diagnostics): logs, monitoring, events and customer information,
the typed requests and replies of both directions (issue 17, part 4).

The station's calls (LogStatusNotification, NotifyEvent, NotifyMonitoringReport,
NotifyCustomerInformation) are handled by :mod:`voltlib.gateway.monitoring_v201`; voltlib's calls
(GetLog, the monitoring settings, CustomerInformation) go out as the operator's commands.
"""

from __future__ import annotations

from datetime import datetime

from voltlib.ocpp.v201.certificates import CertificateHashData
from voltlib.ocpp.v201.common import CustomData, IdToken, Int32, Message, Record, Reply, StatusInfo
from voltlib.ocpp.v201.provisioning import Component, ComponentVariable, Variable

# --- types of this block ---------------------------------------------------------------------


class LogParameters(Record):
    remote_location: str
    oldest_timestamp: datetime | None = None
    latest_timestamp: datetime | None = None
    custom_data: CustomData | None = None


class EventData(Record):
    event_id: Int32
    timestamp: datetime
    trigger: str  # Alerting, Delta, Periodic
    actual_value: str
    event_notification_type: str  # HardWiredNotification, HardWiredMonitor, PreconfiguredMonitor, CustomMonitor
    component: Component
    variable: Variable
    cause: Int32 | None = None
    tech_code: str | None = None
    tech_info: str | None = None
    cleared: bool | None = None
    transaction_id: str | None = None
    variable_monitoring_id: Int32 | None = None
    custom_data: CustomData | None = None


class VariableMonitoring(Record):
    id: Int32
    transaction: bool
    value: float
    type: str
    severity: Int32
    custom_data: CustomData | None = None


class MonitoringData(Record):
    component: Component
    variable: Variable
    variable_monitoring: list[VariableMonitoring]
    custom_data: CustomData | None = None


class SetMonitoringData(Record):
    value: float
    type: str
    severity: Int32
    component: Component
    variable: Variable
    id: Int32 | None = None
    transaction: bool = False
    custom_data: CustomData | None = None


class SetMonitoringResult(Record):
    status: str
    type: str
    severity: Int32
    component: Component
    variable: Variable
    id: Int32 | None = None
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class ClearMonitoringResult(Record):
    status: str
    id: Int32
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


# --- the station's calls, each followed by its reply ----------------------------------------


class LogStatusNotification(Message):
    ACTION = "LogStatusNotification"
    status: str
    request_id: Int32 | None = None
    custom_data: CustomData | None = None


class LogStatusNotificationReply(Reply):
    custom_data: CustomData | None = None


class NotifyEvent(Message):
    ACTION = "NotifyEvent"
    generated_at: datetime
    seq_no: Int32
    event_data: list[EventData]
    tbc: bool = False
    custom_data: CustomData | None = None


class NotifyEventReply(Reply):
    custom_data: CustomData | None = None


class NotifyMonitoringReport(Message):
    ACTION = "NotifyMonitoringReport"
    request_id: Int32
    seq_no: Int32
    generated_at: datetime
    monitor: list[MonitoringData] | None = None
    tbc: bool = False
    custom_data: CustomData | None = None


class NotifyMonitoringReportReply(Reply):
    custom_data: CustomData | None = None


class NotifyCustomerInformation(Message):
    ACTION = "NotifyCustomerInformation"
    data: str
    seq_no: Int32
    generated_at: datetime
    request_id: Int32
    tbc: bool = False
    custom_data: CustomData | None = None


class NotifyCustomerInformationReply(Reply):
    custom_data: CustomData | None = None


# --- voltlib's calls, each followed by its reply --------------------------------------------


class GetLog(Message):
    ACTION = "GetLog"
    log: LogParameters
    log_type: str  # DiagnosticsLog, SecurityLog
    request_id: Int32
    retries: Int32 | None = None
    retry_interval: Int32 | None = None
    custom_data: CustomData | None = None


class GetLogReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    filename: str | None = None
    custom_data: CustomData | None = None


class SetVariableMonitoring(Message):
    ACTION = "SetVariableMonitoring"
    set_monitoring_data: list[SetMonitoringData]
    custom_data: CustomData | None = None


class SetVariableMonitoringReply(Reply):
    set_monitoring_result: list[SetMonitoringResult]
    custom_data: CustomData | None = None


class SetMonitoringBase(Message):
    ACTION = "SetMonitoringBase"
    monitoring_base: str  # All, FactoryDefault, HardWiredOnly
    custom_data: CustomData | None = None


class SetMonitoringBaseReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class SetMonitoringLevel(Message):
    ACTION = "SetMonitoringLevel"
    severity: Int32
    custom_data: CustomData | None = None


class SetMonitoringLevelReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class GetMonitoringReport(Message):
    ACTION = "GetMonitoringReport"
    request_id: Int32
    component_variable: list[ComponentVariable] | None = None
    monitoring_criteria: list[str] | None = None
    custom_data: CustomData | None = None


class GetMonitoringReportReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class ClearVariableMonitoring(Message):
    ACTION = "ClearVariableMonitoring"
    id: list[Int32]
    custom_data: CustomData | None = None


class ClearVariableMonitoringReply(Reply):
    clear_monitoring_result: list[ClearMonitoringResult]
    custom_data: CustomData | None = None


class CustomerInformation(Message):
    ACTION = "CustomerInformation"
    request_id: Int32
    report: bool
    clear: bool
    customer_certificate: CertificateHashData | None = None
    id_token: IdToken | None = None
    customer_identifier: str | None = None
    custom_data: CustomData | None = None


class CustomerInformationReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None
