"""OCPP 2.0.1 functional blocks F, G and H (remote control, availability, reservation): the typed
requests and replies of both directions, with K's charging profile as RequestStartTransaction
carries it."""

from __future__ import annotations

from datetime import datetime

from voltlib.ocpp.v201.common import EVSE, CustomData, IdToken, Int32, Message, Record, Reply, StatusInfo

# --- types of this block ---------------------------------------------------------------------


class ChargingSchedulePeriod(Record):
    limit: float
    start_period: Int32
    number_phases: Int32 | None = None
    phase_to_use: Int32 | None = None
    custom_data: CustomData | None = None


class RelativeTimeInterval(Record):
    start: Int32
    duration: Int32 | None = None
    custom_data: CustomData | None = None


class Cost(Record):
    amount: Int32
    cost_kind: str
    amount_multiplier: Int32 | None = None
    custom_data: CustomData | None = None


class ConsumptionCost(Record):
    cost: list[Cost]
    start_value: float
    custom_data: CustomData | None = None


class SalesTariffEntry(Record):
    relative_time_interval: RelativeTimeInterval
    consumption_cost: list[ConsumptionCost] | None = None
    e_price_level: Int32 | None = None
    custom_data: CustomData | None = None


class SalesTariff(Record):
    id: Int32
    sales_tariff_entry: list[SalesTariffEntry]
    num_e_price_levels: Int32 | None = None
    sales_tariff_description: str | None = None
    custom_data: CustomData | None = None


class ChargingSchedule(Record):
    charging_rate_unit: str
    charging_schedule_period: list[ChargingSchedulePeriod]
    id: Int32
    duration: Int32 | None = None
    min_charging_rate: float | None = None
    sales_tariff: SalesTariff | None = None
    start_schedule: datetime | None = None
    custom_data: CustomData | None = None


class ChargingProfile(Record):
    charging_profile_kind: str
    charging_profile_purpose: str
    charging_schedule: list[ChargingSchedule]
    id: Int32
    stack_level: Int32
    recurrency_kind: str | None = None
    transaction_id: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    custom_data: CustomData | None = None


# --- requests, each followed by its reply ----------------------------------------------------


class RequestStartTransaction(Message):
    ACTION = "RequestStartTransaction"
    id_token: IdToken
    remote_start_id: Int32
    charging_profile: ChargingProfile | None = None
    evse_id: Int32 | None = None
    group_id_token: IdToken | None = None
    custom_data: CustomData | None = None


class RequestStartTransactionReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    transaction_id: str | None = None
    custom_data: CustomData | None = None


class RequestStopTransaction(Message):
    ACTION = "RequestStopTransaction"
    transaction_id: str
    custom_data: CustomData | None = None


class RequestStopTransactionReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class UnlockConnector(Message):
    ACTION = "UnlockConnector"
    connector_id: Int32
    evse_id: Int32
    custom_data: CustomData | None = None


class UnlockConnectorReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class TriggerMessage(Message):
    ACTION = "TriggerMessage"
    requested_message: str
    evse: EVSE | None = None
    custom_data: CustomData | None = None


class TriggerMessageReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class ChangeAvailability(Message):
    ACTION = "ChangeAvailability"
    operational_status: str
    evse: EVSE | None = None
    custom_data: CustomData | None = None


class ChangeAvailabilityReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class ReserveNow(Message):
    ACTION = "ReserveNow"
    expiry_date_time: datetime
    id: Int32
    id_token: IdToken
    connector_type: str | None = None
    evse_id: Int32 | None = None
    group_id_token: IdToken | None = None
    custom_data: CustomData | None = None


class ReserveNowReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class CancelReservation(Message):
    ACTION = "CancelReservation"
    reservation_id: Int32
    custom_data: CustomData | None = None


class CancelReservationReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class ReservationStatusUpdate(Message):
    ACTION = "ReservationStatusUpdate"
    reservation_id: Int32
    reservation_update_status: str
    custom_data: CustomData | None = None


class ReservationStatusUpdateReply(Reply):
    custom_data: CustomData | None = None
