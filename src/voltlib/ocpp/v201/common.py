"""Base classes and the types shared by several functional blocks of OCPP 2.0.1.

The conventions are those of :mod:`voltlib.ocpp.v16.messages`: a request class names its wire
action in ``ACTION``, field names are the wire names through msgspec's ``rename="camel"`` (a fixed
rule), and the few wire names that rule cannot produce are given explicitly with
``msgspec.field(name=...)``. Payloads are validated against the official 2.0.1 schema before
they are converted (or decoded by the type compiled from it, :mod:`voltlib.ocpp.compiled`), so
these classes carry types, not constraints; enumerations are plain strings.

Every object of 2.0.1 may carry ``customData`` (a ``vendorId`` and any other property): it is
kept as :class:`CustomData`, whose extra properties are dropped when decoded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar

import msgspec

from voltlib.ocpp.v16.messages import check_utc_range

# OCPP 2.0.1 ``integer`` is 32-bit signed (part 2, primitive datatypes); the JSON schemas do not
# bound it, and unbounded values would only fail later in the database.
Int32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]


def check_storable(struct: msgspec.Struct) -> None:
    """Reject values that pass the schema but cannot be stored: date-times that overflow when
    converted to UTC, and strings with NUL characters (PostgreSQL refuses them)."""
    for name in struct.__struct_fields__:
        value = getattr(struct, name)
        if isinstance(value, datetime):
            check_utc_range(name, value)
        elif isinstance(value, str) and "\x00" in value:
            raise ValueError(f"{name}: NUL character not allowed")
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, str) and "\x00" in item:
                    raise ValueError(f"{name}: NUL character not allowed")


class Record(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """An object nested in a 2.0.1 message."""

    def __post_init__(self) -> None:
        check_storable(self)


class Message(Record):
    """A 2.0.1 request, of either direction."""

    ACTION: ClassVar[str]


class Reply(Record):
    """A 2.0.1 response, of either direction."""


# --- shared types -----------------------------------------------------------------------------


class CustomData(Record):
    vendor_id: str


class AdditionalInfo(Record):
    additional_id_token: str
    type: str
    custom_data: CustomData | None = None


class IdToken(Record):
    id_token: str
    type: str
    additional_info: list[AdditionalInfo] | None = None
    custom_data: CustomData | None = None


class MessageContent(Record):
    content: str
    format: str
    language: str | None = None
    custom_data: CustomData | None = None


class IdTokenInfo(Record):
    status: str
    cache_expiry_date_time: datetime | None = None
    charging_priority: Int32 | None = None
    evse_id: list[Int32] | None = None
    group_id_token: IdToken | None = None
    language1: str | None = None
    language2: str | None = None
    personal_message: MessageContent | None = None
    custom_data: CustomData | None = None


class EVSE(Record):
    id: Int32
    connector_id: Int32 | None = None
    custom_data: CustomData | None = None


class StatusInfo(Record):
    reason_code: str
    additional_info: str | None = None
    custom_data: CustomData | None = None
