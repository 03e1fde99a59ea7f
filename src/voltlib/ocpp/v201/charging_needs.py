"""OCPP 2.0.1 block K, ISO 15118 smart charging: what the car needs and the schedule it chose
(K15-K17; issue 17). The station relays the car's ChargeParameterDiscoveryReq as
NotifyEVChargingNeeds and the car's own charging profile as NotifyEVChargingSchedule."""

from __future__ import annotations

from datetime import datetime

from voltlib.ocpp.v201.common import CustomData, Int32, Message, Record, Reply, StatusInfo
from voltlib.ocpp.v201.remote import ChargingSchedule


class ACChargingParameters(Record):
    energy_amount: Int32  # Wh the car asks for, preconditioning included
    ev_min_current: Int32  # A per phase
    ev_max_current: Int32  # A per phase, cable included
    ev_max_voltage: Int32
    custom_data: CustomData | None = None


class DCChargingParameters(Record):
    ev_max_current: Int32
    ev_max_voltage: Int32
    energy_amount: Int32 | None = None
    ev_max_power: Int32 | None = None  # W
    state_of_charge: Int32 | None = None  # percent of the battery's capacity
    ev_energy_capacity: Int32 | None = None  # Wh
    full_so_c: Int32 | None = None
    bulk_so_c: Int32 | None = None
    custom_data: CustomData | None = None


class ChargingNeeds(Record):
    requested_energy_transfer: str  # DC | AC_single_phase | AC_two_phase | AC_three_phase
    ac_charging_parameters: ACChargingParameters | None = None
    dc_charging_parameters: DCChargingParameters | None = None
    departure_time: datetime | None = None
    custom_data: CustomData | None = None


class NotifyEVChargingNeeds(Message):
    ACTION = "NotifyEVChargingNeeds"
    charging_needs: ChargingNeeds
    evse_id: Int32
    max_schedule_tuples: Int32 | None = None
    custom_data: CustomData | None = None


class NotifyEVChargingNeedsReply(Reply):
    status: str  # Accepted | Rejected | Processing
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class NotifyEVChargingSchedule(Message):
    ACTION = "NotifyEVChargingSchedule"
    time_base: datetime
    charging_schedule: ChargingSchedule
    evse_id: Int32
    custom_data: CustomData | None = None


class NotifyEVChargingScheduleReply(Reply):
    status: str  # Accepted | Rejected
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None
