"""What voltlib asks of a charge point, whatever OCPP version it speaks: the command port.

Car sharing, fleet energy and security operations decide *what* a charge point must do (hold a
bay, cap its power, refuse a stolen badge, go out of service...). They say it with these plain
commands and send them through one :class:`CommandPort`; each OCPP version's adapter
(:mod:`voltlib.ocpp.v16.commands`, :mod:`voltlib.ocpp.v201.commands`) turns a command into its own
request and the answer back into an :class:`Outcome`. Nothing here knows a wire name.

``connector_id`` is voltlib's connector number: a 1.6 connectorId, a 2.0.1 evseId (each EVSE is one
connector row, docs/architecture.md "EVSEs and connectors"); 0 means the whole charge point.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

ProfilePurpose = Literal["ChargePointMax", "TxDefault", "Tx"]
ProfileKind = Literal["Absolute", "Recurring", "Relative"]
TriggeredMessage = Literal["BootNotification", "Heartbeat", "StatusNotification", "MeterValues",
                           "FirmwareStatusNotification", "LogStatusNotification", "SignCertificate"]


@dataclass(frozen=True, slots=True)
class Period:
    """From ``start_s`` seconds after the schedule's start, draw at most ``limit_w`` watts."""

    start_s: int
    limit_w: int


@dataclass(frozen=True, slots=True)
class PowerLimit:
    """A charging profile: a schedule of power limits for a purpose, at a stack level."""

    profile_id: int
    purpose: ProfilePurpose
    periods: tuple[Period, ...]
    start: datetime
    stack_level: int = 0
    duration_s: int | None = None
    transaction_id: int | None = None  # voltlib's id; a 2.0.1 adapter sends the station's own
    number_phases: int | None = None
    kind: ProfileKind = "Absolute"  # Relative: from the transaction's start (``start`` is not sent)
    recurrency: Literal["Daily", "Weekly"] | None = None  # Recurring only
    valid_from: datetime | None = None
    valid_to: datetime | None = None

    def __post_init__(self) -> None:
        if not self.periods or self.periods[0].start_s != 0:
            raise ValueError("a schedule needs periods starting at 0")
        if self.start.tzinfo is None:
            raise ValueError("a schedule needs a timezone-aware start")
        if (self.kind == "Recurring") != (self.recurrency is not None):
            raise ValueError("a Recurring profile, and only it, names its recurrency")


@dataclass(frozen=True, slots=True)
class LimitPower:
    """Install ``limit`` on a connector (0: the whole charge point)."""

    connector_id: int
    limit: PowerLimit


@dataclass(frozen=True, slots=True)
class ReadSchedule:
    """What the charge point will actually draw on a connector over the next ``duration_s``, in W."""

    connector_id: int
    duration_s: int


@dataclass(frozen=True, slots=True)
class ClearLimits:
    """Remove charging profiles: the one of ``profile_id``, or else every one that matches all the
    criteria given (connector, purpose, stack level); nothing given: every profile voltlib may clear."""

    profile_id: int | None = None
    connector_id: int | None = None
    purpose: ProfilePurpose | None = None
    stack_level: int | None = None


@dataclass(frozen=True, slots=True)
class ReadProfiles:
    """Ask for the charging profiles the charge point holds: it reports them later, in parts, under
    ``request_id`` (2.0.1 GetChargingProfiles / ReportChargingProfiles). OCPP 1.6 has no such call:
    its adapter refuses it (CommandRefused 409); read its composite schedule instead."""

    request_id: int
    connector_id: int | None = None
    purpose: ProfilePurpose | None = None
    stack_level: int | None = None
    profile_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Reserve:
    """Hold a connector for ``id_tag`` until ``expires_at``."""

    connector_id: int
    reservation_id: int
    id_tag: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class CancelReservation:
    reservation_id: int


@dataclass(frozen=True, slots=True)
class PushLocalList:
    """Send the local authorisation list: ``blocked`` badges refused even offline. ``full`` replaces
    the whole list, otherwise the entries are added (a differential update). ``contracts``: which of
    them are Plug & Charge contracts (eMAIDs), which 2.0.1 types so (a station matches type and value)."""

    version: int
    full: bool
    blocked: tuple[str, ...]
    contracts: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ChangeAvailability:
    """Put a connector (0: the whole charge point) in or out of service."""

    connector_id: int
    operative: bool


@dataclass(frozen=True, slots=True)
class Reset:
    """Restart the charge point: ``immediate`` stops what runs (1.6 Hard), otherwise when idle (Soft)."""

    immediate: bool


@dataclass(frozen=True, slots=True)
class Unlock:
    connector_id: int


@dataclass(frozen=True, slots=True)
class StartCharging:
    """Start a transaction for ``id_tag`` (on ``connector_id``, or where the charge point chooses)."""

    id_tag: str
    connector_id: int | None = None
    remote_start_id: int = 1


@dataclass(frozen=True, slots=True)
class StopCharging:
    transaction_id: int  # voltlib's id


@dataclass(frozen=True, slots=True)
class Trigger:
    """Ask the charge point to send one message now."""

    message: TriggeredMessage
    connector_id: int | None = None


@dataclass(frozen=True, slots=True)
class SetPassword:
    """Give a profile 1/2 charge point a new Basic-auth password (OCPP 1.6 AuthorizationKey,
    2.0.1 SecurityCtrlr.BasicAuthPassword). Never stored or logged in clear."""

    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class InstallCertificate:
    """The charge point's own certificate chain, signed by our CA (or, for its ISO 15118 TLS
    certificate, by the V2G back end: 2.0.1 only), in answer to its CSR."""

    chain_pem: str
    certificate_type: Literal["ChargingStationCertificate", "V2GCertificate"] = "ChargingStationCertificate"


@dataclass(frozen=True, slots=True)
class ShowMessage:
    """Show ``text`` on the charge point's screen by a connector (0: wherever the station chooses)
    until ``until`` (None: until cleared). The same ``message_id`` replaces the message. Only
    OCPP 2.0.1 stations have display messages: the 1.6 adapter refuses it (CommandRefused 409)."""

    message_id: int
    text: str
    connector_id: int = 0
    until: datetime | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class ClearMessage:
    """Take message ``message_id`` off the screen (2.0.1 only, as :class:`ShowMessage`)."""

    message_id: int


Command = (LimitPower | ReadSchedule | ClearLimits | ReadProfiles | Reserve | CancelReservation | PushLocalList
           | ChangeAvailability | Reset | Unlock | StartCharging | StopCharging | Trigger | SetPassword
           | InstallCertificate | ShowMessage | ClearMessage)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a command.

    ``state``: answered, failed (a CallError), timeout, lost (the connection closed before the
    answer) or offline (not sent). ``status``: the charge point's answer in the adapter's neutral
    words (Accepted, Rejected, Occupied, VersionMismatch...), None when it did not answer.
    ``schedule_w``: for :class:`ReadSchedule`, the first period's limit; ``periods``: the whole
    composite schedule, in W. ``record``: the stored command row (as the API shows it).
    """

    state: str
    status: str | None = None
    schedule_w: float | None = None
    record: Mapping[str, Any] = field(default_factory=dict)
    periods: tuple[Period, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.state == "answered" and self.status == "Accepted"


class CommandPort(Protocol):
    """Where the domain's commands go: the gateway, which knows each charge point's OCPP version."""

    async def send(self, cp_id: str, command: Command, *, requested_by: str) -> Outcome:
        """Send ``command`` and wait for its outcome. Raises ``CommandRefused`` when voltlib itself
        refuses it (unknown charge point, quarantine, a payload the version cannot carry)."""
        ...


class CommandRefused(Exception):
    """voltlib refused to send a command: ``status`` is the HTTP status an API would answer."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
