"""OCPP 2.0.1 functional blocks E (transactions) and J (meter values): the typed requests and
replies of both directions."""

from __future__ import annotations

from datetime import datetime

from voltlib.ocpp.v201.common import (
    EVSE,
    CustomData,
    IdToken,
    IdTokenInfo,
    Int32,
    Message,
    MessageContent,
    Record,
    Reply,
)

# --- types of this block ---------------------------------------------------------------------


class Transaction(Record):
    transaction_id: str
    charging_state: str | None = None
    remote_start_id: Int32 | None = None
    stopped_reason: str | None = None
    time_spent_charging: Int32 | None = None
    custom_data: CustomData | None = None


class SignedMeterValue(Record):
    encoding_method: str
    public_key: str
    signed_meter_data: str
    signing_method: str
    custom_data: CustomData | None = None


class UnitOfMeasure(Record):
    multiplier: Int32 = 0
    unit: str = "Wh"
    custom_data: CustomData | None = None


class SampledValue(Record):
    value: float
    context: str = "Sample.Periodic"
    location: str = "Outlet"
    measurand: str = "Energy.Active.Import.Register"
    phase: str | None = None
    signed_meter_value: SignedMeterValue | None = None
    unit_of_measure: UnitOfMeasure | None = None
    custom_data: CustomData | None = None


class MeterValue(Record):
    sampled_value: list[SampledValue]
    timestamp: datetime
    custom_data: CustomData | None = None


# --- requests, each followed by its reply ----------------------------------------------------


class TransactionEvent(Message):
    ACTION = "TransactionEvent"
    event_type: str
    seq_no: Int32
    timestamp: datetime
    transaction_info: Transaction
    trigger_reason: str
    cable_max_current: Int32 | None = None
    evse: EVSE | None = None
    id_token: IdToken | None = None
    meter_value: list[MeterValue] | None = None
    number_of_phases_used: Int32 | None = None
    offline: bool = False
    reservation_id: Int32 | None = None
    custom_data: CustomData | None = None


class TransactionEventReply(Reply):
    charging_priority: Int32 | None = None
    id_token_info: IdTokenInfo | None = None
    total_cost: float | None = None
    updated_personal_message: MessageContent | None = None
    custom_data: CustomData | None = None


class GetTransactionStatus(Message):
    ACTION = "GetTransactionStatus"
    transaction_id: str | None = None
    custom_data: CustomData | None = None


class GetTransactionStatusReply(Reply):
    messages_in_queue: bool
    ongoing_indicator: bool | None = None
    custom_data: CustomData | None = None


class MeterValues(Message):
    ACTION = "MeterValues"
    evse_id: Int32
    meter_value: list[MeterValue]
    custom_data: CustomData | None = None


class MeterValuesReply(Reply):
    custom_data: CustomData | None = None
