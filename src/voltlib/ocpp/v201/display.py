"""OCPP 2.0.1 functional block O (display messages): the typed requests and replies of both
directions (issue 17, part 5). What voltlib shows and why: docs/car-sharing.md, "Display messages"."""

from __future__ import annotations

from datetime import datetime

from voltlib.ocpp.v201.common import CustomData, Int32, Message, MessageContent, Record, Reply, StatusInfo
from voltlib.ocpp.v201.provisioning import Component

# --- types of this block ---------------------------------------------------------------------


class MessageInfo(Record):
    id: Int32
    priority: str  # AlwaysFront, InFront, NormalCycle
    message: MessageContent
    display: Component | None = None
    state: str | None = None  # Charging, Faulted, Idle, Unavailable
    start_date_time: datetime | None = None
    end_date_time: datetime | None = None
    transaction_id: str | None = None
    custom_data: CustomData | None = None


# --- the station's call ----------------------------------------------------------------------


class NotifyDisplayMessages(Message):
    ACTION = "NotifyDisplayMessages"
    request_id: Int32
    message_info: list[MessageInfo] | None = None
    tbc: bool = False
    custom_data: CustomData | None = None


class NotifyDisplayMessagesReply(Reply):
    custom_data: CustomData | None = None


# --- voltlib's calls, each followed by its reply --------------------------------------------


class SetDisplayMessage(Message):
    ACTION = "SetDisplayMessage"
    message: MessageInfo
    custom_data: CustomData | None = None


class SetDisplayMessageReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class GetDisplayMessages(Message):
    ACTION = "GetDisplayMessages"
    request_id: Int32
    id: list[Int32] | None = None
    priority: str | None = None
    state: str | None = None
    custom_data: CustomData | None = None


class GetDisplayMessagesReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None


class ClearDisplayMessage(Message):
    ACTION = "ClearDisplayMessage"
    id: Int32
    custom_data: CustomData | None = None


class ClearDisplayMessageReply(Reply):
    status: str
    status_info: StatusInfo | None = None
    custom_data: CustomData | None = None
