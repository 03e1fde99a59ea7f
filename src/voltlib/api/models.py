"""The API's answers as typed models, for the OpenAPI document's response schemas (issue 20).

Most lists answer the rows of a table as they are: their models are generated from the SQLAlchemy
table declarations (:func:`row_model`: the column types and nullability), so a new column shows in
the document without anyone writing it twice. Answers shaped by a handler are Structs here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import JSON, Boolean, Float, Integer, LargeBinary, String, Table

from voltlib.bus import SubscriberStats
from voltlib.store import tables as t
from voltlib.store.repo import SECRETS
from voltlib.store.tables import UtcDateTime


def _python(table: Table, name: str) -> Any:
    column_type = table.c[name].type
    kind: Any
    if isinstance(column_type, UtcDateTime):
        kind = datetime
    elif isinstance(column_type, JSON):
        kind = Any
    elif isinstance(column_type, Boolean):
        kind = bool
    elif isinstance(column_type, Integer):  # BigInteger too
        kind = int
    elif isinstance(column_type, Float):
        kind = float
    elif isinstance(column_type, LargeBinary):
        kind = bytes
    elif isinstance(column_type, String):  # Text too
        kind = str
    else:
        raise TypeError(f"no model for {table.name}.{name} ({column_type})")
    return kind | None if table.c[name].nullable and kind is not Any else kind


def row_model(table: Table, name: str, *, exclude: frozenset[str] = frozenset(),
              extra: tuple[tuple[str, Any] | tuple[str, Any, Any], ...] = ()) -> type[msgspec.Struct]:
    """A Struct with a field per column of ``table`` (less ``exclude``), then ``extra`` fields
    ((name, type) or, for a member not always there, (name, type, default))."""
    fields = [(str(c.name), _python(table, c.name)) for c in table.columns if c.name not in exclude]
    return msgspec.defstruct(name, [*fields, *extra], kw_only=True)


class ProblemDetails(msgspec.Struct, kw_only=True):
    """RFC 9457: every error. Some carry more members (``parameter``: the query parameter at fault;
    ``errors``: row-numbered CSV errors)."""

    type: str
    title: str
    status: int
    detail: str


class Health(msgspec.Struct, kw_only=True):
    status: str
    version: str
    connected: int


class SampledValue(msgspec.Struct, kw_only=True, omit_defaults=True):
    """As the charge point sent it (OCPP 1.6 wire names)."""

    value: str
    context: str | None = None
    format: str | None = None
    measurand: str | None = None
    phase: str | None = None
    location: str | None = None
    unit: str | None = None


class MeterValue(msgspec.Struct, kw_only=True):
    connector_id: int
    transaction_id: int | None
    timestamp: datetime
    sampled_value: list[SampledValue]


Transaction = row_model(t.transactions, "Transaction")
Reservation = row_model(t.reservations, "Reservation")  # status as of now (store/reservations.py)
IdTag = row_model(t.id_tags, "IdTag")
OcppExchange = row_model(t.ocpp_messages, "OcppExchange")
Command = row_model(t.commands, "Command")
StatusChange = row_model(t.connector_status_history, "StatusChange")
SecurityEvent = row_model(t.security_events, "SecurityEvent")
Connector = row_model(t.connectors, "Connector")
ChargePoint = row_model(t.charge_points, "ChargePoint", exclude=SECRETS,
                        extra=(("connected", bool), ("quarantined", bool)))
ChargePointDetail = row_model(t.charge_points, "ChargePointDetail", exclude=SECRETS, extra=(
    ("connectors", list[Connector]), ("connected", bool), ("connection_ocpp_version", str | None),  # type: ignore[valid-type]
    ("quarantined", bool)))
Alert = row_model(t.security_alerts, "Alert")
AuditEntry = row_model(t.audit_log, "AuditEntry")
Incident = row_model(t.security_incidents, "Incident")
WorkOrder = row_model(t.work_orders, "WorkOrder")
Quarantine = row_model(t.quarantines, "Quarantine")
Member = row_model(t.members, "Member")
Vehicle = row_model(t.vehicles, "Vehicle", extra=(("range_km", float | None),))
Invoice = row_model(t.invoices, "Invoice", extra=(("total", str),))


class CurrencyTotal(msgspec.Struct, kw_only=True):
    currency: str
    total_minor: int
    total: str


class Statement(msgspec.Struct, kw_only=True):
    """A page of invoices; ``totals`` are over every invoice the filters select."""

    month: str | None
    invoices: list[Invoice]  # type: ignore[valid-type]
    totals: list[CurrencyTotal]


class IdTagSet(msgspec.Struct, kw_only=True):
    id_tag: str
    status: str


class IdTagDeleted(msgspec.Struct, kw_only=True):
    id_tag: str
    deleted: bool


class IdTagImport(msgspec.Struct, kw_only=True):
    rows: int
    created: int
    updated: int
    unchanged: int


class ChainBreak(msgspec.Struct, kw_only=True):
    seq: int
    problem: str


class AuditVerification(msgspec.Struct, kw_only=True):
    ok: bool
    entries: int
    head: str
    breaks: list[ChainBreak]


class BusStats(msgspec.Struct, kw_only=True):
    consumers: list[SubscriberStats]


class ClockNow(msgspec.Struct, kw_only=True):
    now: datetime
    factor: float
    origin: datetime
    wall_start: float


class RegistrationSet(msgspec.Struct, kw_only=True):
    id: str
    registration: str


class SecurityProfileSet(msgspec.Struct, kw_only=True):
    id: str
    security_profile: int
    certificate_fingerprint: str | None


class TraceSet(msgspec.Struct, kw_only=True):
    id: str
    trace_until: datetime | None
    live: bool


IncidentDetail = row_model(t.security_incidents, "IncidentDetail", extra=(
    ("alerts", list[Alert]), ("suggested_responses", list[str])))  # type: ignore[valid-type]


class QuarantineState(msgspec.Struct, kw_only=True):
    charge_point_id: str
    quarantined: bool
    quarantine: Quarantine | None  # type: ignore[valid-type]


class QuarantineStarted(msgspec.Struct, kw_only=True, tag_field="action", tag="quarantine"):
    """A security response's outcome: ``change_availability`` is the charge point's answer
    (Accepted, Scheduled...) or what became of the command (offline, timeout...)."""

    charge_point_id: str
    quarantined: bool
    new: bool  # false: it already was in quarantine (idempotent)
    change_availability: str


class QuarantineReleased(msgspec.Struct, kw_only=True, tag_field="action", tag="release"):
    charge_point_id: str
    quarantined: bool
    change_availability: str


class CredentialsRotated(msgspec.Struct, kw_only=True, tag_field="action", tag="rotate_credentials"):
    charge_point_id: str
    status: str  # the charge point's answer, else the command's state (timeout, lost...)


class BadgeBlocked(msgspec.Struct, kw_only=True, tag_field="action", tag="block_badge"):
    """``pushed_to`` (charge points that took it into their local list), ``connected`` (charge points
    it was sent to) and ``list_version``: only for a member's badge (car sharing's local lists)."""

    id_tag: str
    status: str
    previous_status: str | None  # none: the tag was unknown until now
    reason: str
    pushed_to: int | None = None
    connected: int | None = None
    list_version: int | None = None


SecurityResponse = QuarantineStarted | QuarantineReleased | CredentialsRotated | BadgeBlocked
PasswordRotation = row_model(t.commands, "PasswordRotation", extra=(("rotated", bool),))


class Readiness(msgspec.Struct, kw_only=True):
    """Each check by name: ``ok``, ``newer``, ``not configured``, or what is wrong (then a 503 problem
    with the same ``checks``)."""

    status: str
    checks: dict[str, str]


class SignedUp(msgspec.Struct, kw_only=True):
    member_id: str
    badge: str
    token: str  # shown once
    note: str


MemberDetail = row_model(t.members, "MemberDetail", extra=(("badges", list[IdTagSet]), ("contracts", list[IdTagSet])))


class ContractSet(msgspec.Struct, kw_only=True):
    member_id: str
    emaid: str
    status: str


class ContractDeleted(msgspec.Struct, kw_only=True):
    member_id: str
    emaid: str
    deleted: bool


City = row_model(t.cities, "City")
Station = row_model(t.stations, "Station", extra=(
    ("bays", int), ("cars", int), ("free_bays", int), ("distance_m", int | None, None)))  # distance: with ?near=


class Bay(msgspec.Struct, kw_only=True):
    number: int
    charge_point_id: str
    connector_id: int
    car_id: str | None


StationDetail = row_model(t.stations, "StationDetail", extra=(
    ("bays", int), ("cars", int), ("free_bays", int), ("bays_detail", list[Bay]),
    ("vehicles", list[Vehicle])))  # type: ignore[valid-type]

Dock = tuple[str, int]  # [charge point id, connector id]


class RentalHold(msgspec.Struct, kw_only=True):
    reservation_id: int
    dock: Dock
    expires_at: datetime


class SocReading(msgspec.Struct, kw_only=True):
    soc_percent: float
    source: str
    at: datetime


class PriceLine(msgspec.Struct, kw_only=True):
    label: str
    quantity: int
    unit: str
    unit_price_minor: int
    amount_minor: int
    per: int


class PriceBreakdown(msgspec.Struct, kw_only=True):
    plan_code: str
    started_at: datetime
    ended_at: datetime
    billed_minutes: int
    currency: str
    total_minor: int
    total: str
    lines: list[PriceLine]


class ChargingSession(msgspec.Struct, kw_only=True):
    transaction_id: int
    open: bool


class EnergySources(msgspec.Struct, kw_only=True):
    departure: SocReading | None
    return_: SocReading | None = msgspec.field(name="return")
    usable_kwh: float | None
    charging: ChargingSession | None


class RentalEnergy(msgspec.Struct, kw_only=True):
    """kWh driven (from the state of charge at departure and return) and charged (the return's session)."""

    driven_kwh: float | None
    driven_reason: str | None
    charged_kwh: float | None
    charged_reason: str | None
    sources: EnergySources


class Rental(msgspec.Struct, kw_only=True):
    """A reservation or rental (voltlib.sharing.codec), its plan by code; ``energy`` on reads."""

    rental_id: str
    member_id: str
    member_id_tag: str
    car_id: str
    car_id_tag: str
    origin: Dock
    plan_code: str
    state: str
    car_hold: RentalHold | None
    bay_hold: RentalHold | None
    reserved_at: datetime | None
    badged_at: datetime | None
    started_at: datetime | None
    returned_at: datetime | None
    return_dock: Dock | None
    ended_at: datetime | None
    charged: PriceBreakdown | None
    departure_soc: SocReading | None = None  # absent from rentals stored before energy accounting
    return_soc: SocReading | None = None
    return_transaction_id: int | None = None
    energy: RentalEnergy | None = None


class CurrentRental(msgspec.Struct, kw_only=True):
    rental: Rental | None


class Kwh(msgspec.Struct, kw_only=True):
    id: str
    kwh: float


class ReturnedRental(msgspec.Struct, kw_only=True):
    rental_id: str
    car_id: str
    returned_at: datetime
    driven_kwh: float | None
    driven_reason: str | None
    charged_kwh: float | None
    charged_reason: str | None
    sources: EnergySources


class DailyEnergy(msgspec.Struct, kw_only=True, rename={"from_": "from"}):
    """kWh delivered per station and per vehicle on a day (the city's time zone), and the rentals
    returned that day with their energy."""

    city: str
    day: str  # YYYY-MM-DD
    from_: datetime
    to: datetime
    sessions: int
    total_kwh: float
    stations: list[Kwh]
    vehicles: list[Kwh]
    rentals: list[ReturnedRental]


class GridLimit(msgspec.Struct, kw_only=True):
    """A station's grid connection (W), configured or its default (a share of its bays' ratings)."""

    station_id: str
    limit_w: float
    phase_limit_w: float | None
    configured: bool
    rated_total_w: float


class GridLimitState(GridLimit, kw_only=True):
    drawn_w: float
    drawn_by_bay: dict[str, float]  # by "charge point/connector"
    planned_w: float
    planned_by_bay: dict[str, int]


class TelematicsAccepted(msgspec.Struct, kw_only=True):
    car_id: str
    soc_percent: float
    source: str


FieldTask = row_model(t.field_tasks, "FieldTask", exclude=frozenset({"active_car"}))

class Shortage(msgspec.Struct, kw_only=True):
    first_hour: int
    at: datetime
    expected: float  # members expected to be turned away over the horizon


class ForecastHour(msgspec.Struct, kw_only=True):
    hour: int
    at: datetime
    pickups: float
    returns: float
    cars: float
    free_bays: float
    missed_pickups: float
    missed_returns: float


class StationForecast(msgspec.Struct, kw_only=True):
    station_id: str
    name: str | None
    cars: int
    free_bays: int
    no_car: Shortage | None
    no_bay: Shortage | None
    hours: list[ForecastHour]


class ForecastSummary(msgspec.Struct, kw_only=True):
    stations: int
    no_car: int
    no_bay: int


class Forecast(msgspec.Struct, kw_only=True):
    city: str
    start: datetime
    hours: int
    rentals_per_day: float
    shortage_min: float
    summary: ForecastSummary
    stations: list[StationForecast]


class Move(msgspec.Struct, kw_only=True):
    car_id: str
    from_station: str
    to_station: str
    distance_km: float
    car_range_km: float
    reason: str  # no_car (at the destination) or no_bay (at the origin)
    hour: int
    at: datetime


class Moves(msgspec.Struct, kw_only=True):
    city: str
    start: datetime
    hours: int
    rentals_per_day: float
    live_tasks: int
    moves: list[Move]



class OpenApiInfo(msgspec.Struct, kw_only=True):
    title: str
    version: str


class OpenApiDocument(msgspec.Struct, kw_only=True):
    """GET /api/v1/openapi.json: an OpenAPI 3.1 document (its parts are OpenAPI's, not voltlib's)."""

    openapi: str
    info: OpenApiInfo
    paths: dict[str, dict[str, dict[str, Any]]]  # path → method → operation
    components: dict[str, dict[str, Any]]
