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

import functools
from datetime import datetime
from typing import Annotated, ClassVar

import msgspec

from voltlib.ocpp.v16.messages import check_utc_range

# OCPP 2.0.1 ``integer`` is 32-bit signed (part 2, primitive datatypes); the JSON schemas do not
# bound it, and unbounded values would only fail later in the database.
Int32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]


def check_storable(struct: msgspec.Struct) -> None:
    """Reject values that pass the schema but cannot be stored: date-times that overflow when
    converted to UTC, and strings with NUL characters (PostgreSQL refuses them), in text and in
    untyped JSON (DataTransfer's data) alike. Nested records check themselves."""
    for name in struct.__struct_fields__:
        value = getattr(struct, name)
        if isinstance(value, datetime):
            check_utc_range(name, value)
        elif _has_nul(value):
            raise ValueError(f"{name}: NUL character not allowed")


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def same_defaults(struct: msgspec.Struct) -> None:
    """Replace a text equal to its field's default ("Sample.Periodic", "Wh") by the default itself.
    msgspec leaves a default out of the encoding by identity: with this, a value equal to the
    default is left out whichever object the decoder made, so a call's encoding and fingerprint
    (voltlib.ocpp.session) do not depend on the path its frame took (the compiled types do the same,
    :mod:`voltlib.ocpp.compiled`, for classes with ``SAME_DEFAULTS``)."""
    for name, default in _text_defaults(type(struct)):
        if getattr(struct, name) == default:
            setattr(struct, name, default)


@functools.cache
def _text_defaults(cls: type[msgspec.Struct]) -> tuple[tuple[str, str], ...]:
    return tuple((f.name, f.default) for f in msgspec.structs.fields(cls) if isinstance(f.default, str))


class Record(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """An object nested in a 2.0.1 message."""

    SAME_DEFAULTS: ClassVar[bool] = True  # see same_defaults

    def __post_init__(self) -> None:
        check_storable(self)
        same_defaults(self)


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
