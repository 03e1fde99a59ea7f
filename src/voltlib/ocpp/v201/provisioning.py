"""OCPP 2.0.1 functional block B (provisioning), with A's SecurityEventNotification and P's
DataTransfer: the typed requests and replies of both directions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from voltlib.ocpp.v201.common import EVSE, CustomData, Int32, Message, Record, Reply, StatusInfo

# --- types of this block ---------------------------------------------------------------------


class Modem(Record):
    iccid: str | None = None
    imsi: str | None = None
    custom_data: CustomData | None = None


class ChargingStation(Record):
    model: str
    vendor_name: str
    firmware_version: str | None = None
    modem: Modem | None = None
    serial_number: str | None = None
    custom_data: CustomData | None = None


class Component(Record):
    name: str
    evse: EVSE | None = None
    instance: str | None = None
    custom_data: CustomData | None = None


class Variable(Record):
    name: str
    instance: str | None = None
    custom_data: CustomData | None = None


class VariableAttribute(Record):
    constant: bool = False
    mutability: str = "ReadWrite"
    persistent: bool = False
    type: str = "Actual"
    value: str | None = None
    custom_data: CustomData | None = None


class VariableCharacteristics(Record):
    data_type: str
    supports_monitoring: bool
    max_limit: float | None = None
    min_limit: float | None = None
    unit: str | None = None
    values_list: str | None = None
    custom_data: CustomData | None = None


class ReportData(Record):
    component: Component
    variable: Variable
    variable_attribute: list[VariableAttribute]
    variable_characteristics: VariableCharacteristics | None = None
    custom_data: CustomData | None = None


class ComponentVariable(Record):
    component: Component
    variable: Variable | None = None
    custom_data: CustomData | None = None


class GetVariableData(Record):
    component: Component
    variable: Variable
    attribute_type: str = "Actual"
    custom_data: CustomData | None = None


class GetVariableResult(Record):
    attribute_status: str
    component: Component
    variable: Variable
    attribute_status_info: StatusInfo | None = None
    attribute_type: str = "Actual"
    attribute_value: str | None = None
    custom_data: CustomData | None = None


class SetVariableData(Record):
    attribute_value: str
    component: Component
    variable: Variable
    attribute_type: str = "Actual"
    custom_data: CustomData | None = None


class SetVariableResult(Record):
    attribute_status: str
    component: Component
    variable: Variable
    attribute_status_info: StatusInfo | None = None
    attribute_type: str = "Actual"
    custom_data: CustomData | None = None


class APN(Record):
    apn: str
    apn_authentication: str
    apn_password: str | None = None
    apn_user_name: str | None = None
    preferred_network: str | None = None
    sim_pin: Int32 | None = None
    use_only_preferred_network: bool = False
    custom_data: CustomData | None = None


class VPN(Record):
    key: str
    password: str
    server: str
    type: str
    user: str
    group: str | None = None
    custom_data: CustomData | None = None


class NetworkConnectionProfile(Record):
    message_timeout: Int32
    ocpp_csms_url: str
    ocpp_interface: str
    ocpp_transport: str
    ocpp_version: str
    security_profile: Int32
    apn: APN | None = None
    vpn: VPN | None = None
    custom_data: CustomData | None = None


# --- requests, each followed by its reply ----------------------------------------------------


class BootNotification(Message):
    ACTION = "BootNotification"
    charging_station: ChargingStation
    reason: str
    custom_data: CustomData | None = None


class BootNotificationReply(Reply):
    current_time: datetime
    interval: Int32
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class Heartbeat(Message):
    ACTION = "Heartbeat"
    custom_data: CustomData | None = None


class HeartbeatReply(Reply):
    current_time: datetime
    custom_data: CustomData | None = None


class StatusNotification(Message):
    ACTION = "StatusNotification"
    connector_id: Int32
    connector_status: str
    evse_id: Int32
    timestamp: datetime
    custom_data: CustomData | None = None


class StatusNotificationReply(Reply):
    custom_data: CustomData | None = None


class GetBaseReport(Message):
    ACTION = "GetBaseReport"
    report_base: str
    request_id: Int32
    custom_data: CustomData | None = None


class GetBaseReportReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class NotifyReport(Message):
    ACTION = "NotifyReport"
    generated_at: datetime
    request_id: Int32
    seq_no: Int32
    report_data: list[ReportData] | None = None
    tbc: bool = False
    custom_data: CustomData | None = None


class NotifyReportReply(Reply):
    custom_data: CustomData | None = None


class GetReport(Message):
    ACTION = "GetReport"
    request_id: Int32
    component_criteria: list[str] | None = None
    component_variable: list[ComponentVariable] | None = None
    custom_data: CustomData | None = None


class GetReportReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class GetVariables(Message):
    ACTION = "GetVariables"
    get_variable_data: list[GetVariableData]
    custom_data: CustomData | None = None


class GetVariablesReply(Reply):
    get_variable_result: list[GetVariableResult]
    custom_data: CustomData | None = None


class SetVariables(Message):
    ACTION = "SetVariables"
    set_variable_data: list[SetVariableData]
    custom_data: CustomData | None = None


class SetVariablesReply(Reply):
    set_variable_result: list[SetVariableResult]
    custom_data: CustomData | None = None


class SetNetworkProfile(Message):
    ACTION = "SetNetworkProfile"
    configuration_slot: Int32
    connection_data: NetworkConnectionProfile
    custom_data: CustomData | None = None


class SetNetworkProfileReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class Reset(Message):
    ACTION = "Reset"
    type: str
    evse_id: Int32 | None = None
    custom_data: CustomData | None = None


class ResetReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class DataTransfer(Message):
    ACTION = "DataTransfer"
    vendor_id: str
    data: Any = None
    message_id: str | None = None
    custom_data: CustomData | None = None


class DataTransferReply(Reply):
    status: str
    data: Any = None
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class SecurityEventNotification(Message):
    ACTION = "SecurityEventNotification"
    timestamp: datetime
    type: str
    tech_info: str | None = None
    custom_data: CustomData | None = None


class SecurityEventNotificationReply(Reply):
    custom_data: CustomData | None = None
