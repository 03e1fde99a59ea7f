"""OCPP 2.0.1 functional block K (smart charging), the profiles and limits part: the typed requests
and replies of SetChargingProfile, ClearChargingProfile, GetChargingProfiles / ReportChargingProfiles,
GetCompositeSchedule, NotifyChargingLimit and ClearedChargingLimit (issue 17). The profile types
themselves are :mod:`voltlib.ocpp.v201.remote`'s (RequestStartTransaction carries them too)."""

from __future__ import annotations

from datetime import datetime

from voltlib.ocpp.v201.common import CustomData, Int32, Message, Record, Reply, StatusInfo
from voltlib.ocpp.v201.remote import ChargingProfile, ChargingSchedule, ChargingSchedulePeriod

# --- types of this block ---------------------------------------------------------------------


class ClearChargingProfileCriteria(Record):
    evse_id: Int32 | None = None
    charging_profile_purpose: str | None = None
    stack_level: Int32 | None = None
    custom_data: CustomData | None = None


class ChargingProfileCriterion(Record):
    charging_profile_purpose: str | None = None
    stack_level: Int32 | None = None
    charging_profile_id: list[Int32] | None = None
    charging_limit_source: list[str] | None = None
    custom_data: CustomData | None = None


class CompositeSchedule(Record):
    charging_schedule_period: list[ChargingSchedulePeriod]
    evse_id: Int32
    duration: Int32
    schedule_start: datetime
    charging_rate_unit: str
    custom_data: CustomData | None = None


class ChargingLimit(Record):
    charging_limit_source: str
    is_grid_critical: bool | None = None
    custom_data: CustomData | None = None


# --- requests, each followed by its reply ----------------------------------------------------


class SetChargingProfile(Message):
    ACTION = "SetChargingProfile"
    evse_id: Int32
    charging_profile: ChargingProfile
    custom_data: CustomData | None = None


class SetChargingProfileReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class ClearChargingProfile(Message):
    ACTION = "ClearChargingProfile"
    charging_profile_id: Int32 | None = None
    charging_profile_criteria: ClearChargingProfileCriteria | None = None
    custom_data: CustomData | None = None


class ClearChargingProfileReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class GetChargingProfiles(Message):
    ACTION = "GetChargingProfiles"
    request_id: Int32
    charging_profile: ChargingProfileCriterion
    evse_id: Int32 | None = None
    custom_data: CustomData | None = None


class GetChargingProfilesReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class ReportChargingProfiles(Message):
    """K09: one part of the answer to GetChargingProfiles (``tbc``: more parts follow)."""

    ACTION = "ReportChargingProfiles"
    request_id: Int32
    charging_limit_source: str
    evse_id: Int32
    charging_profile: list[ChargingProfile]
    tbc: bool = False
    custom_data: CustomData | None = None


class ReportChargingProfilesReply(Reply):
    custom_data: CustomData | None = None


class GetCompositeSchedule(Message):
    ACTION = "GetCompositeSchedule"
    duration: Int32
    evse_id: Int32
    charging_rate_unit: str | None = None
    custom_data: CustomData | None = None


class GetCompositeScheduleReply(Reply):
    status: str
    schedule: CompositeSchedule | None = None
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class NotifyChargingLimit(Message):
    """K11/K12: a limit set outside voltlib (an EMS, the grid operator) now in force on the station or
    an EVSE, with its schedule when the station tells it."""

    ACTION = "NotifyChargingLimit"
    charging_limit: ChargingLimit
    charging_schedule: list[ChargingSchedule] | None = None
    evse_id: Int32 | None = None
    custom_data: CustomData | None = None


class NotifyChargingLimitReply(Reply):
    custom_data: CustomData | None = None


class ClearedChargingLimit(Message):
    """K13: the external limit of that source (on that EVSE, or the station) is gone."""

    ACTION = "ClearedChargingLimit"
    charging_limit_source: str
    evse_id: Int32 | None = None
    custom_data: CustomData | None = None


class ClearedChargingLimitReply(Reply):
    custom_data: CustomData | None = None
