"""The database schema. Change it only together with a new Alembic migration."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


TS = UtcDateTime()
BigId = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements only INTEGER primary keys

charge_points = Table(
    "charge_points", metadata,
    Column("id", String(48), primary_key=True),
    Column("registration", String(16), nullable=False),  # Accepted | Pending | Rejected
    Column("security_profile", Integer, nullable=False),
    Column("password_hash", String(200)),
    Column("certificate_fingerprint", String(64)),  # SHA-256 of the client certificate bound to it (profile 3)
    Column("vendor", String(20)), Column("model", String(20)), Column("serial_number", String(25)),
    Column("charge_box_serial_number", String(25)), Column("firmware_version", String(50)),
    Column("iccid", String(20)), Column("imsi", String(20)),
    Column("meter_type", String(25)), Column("meter_serial_number", String(25)),
    Column("firmware_status", String(40)), Column("diagnostics_status", String(40)), Column("log_status", String(40)),
    Column("last_boot_at", TS), Column("last_seen_at", TS), Column("last_address", String(64)),
    Column("created_at", TS, nullable=False),
    Column("local_list_version", BigInteger),  # the local authorisation list version it accepted from voltlib
    # a rotated password whose ChangeConfiguration got no answer: the charge point may have taken it
    Column("pending_password_hash", String(200)), Column("pending_password_until", TS),
    Column("trace_until", TS),  # every frame logged in full until then, whatever message_log says
    Column("ocpp_version", String(8)),  # of its last connection: "1.6" or "2.0.1"
)

connectors = Table(
    "connectors", metadata,
    Column("charge_point_id", String(48), ForeignKey("charge_points.id", ondelete="CASCADE"), primary_key=True),
    Column("connector_id", Integer, primary_key=True),
    Column("status", String(16), nullable=False),
    Column("error_code", String(32), nullable=False),
    Column("info", String(50)), Column("vendor_id", String(255)), Column("vendor_error_code", String(50)),
    Column("status_at", TS, nullable=False),
    Column("evse_connector_id", Integer),  # OCPP 2.0.1: the row is an EVSE, this its plug last reported
)

connector_status_history = Table(
    "connector_status_history", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("charge_point_id", String(48), nullable=False),
    Column("connector_id", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("error_code", String(32), nullable=False),
    Column("info", String(50)), Column("vendor_id", String(255)), Column("vendor_error_code", String(50)),
    Column("status_at", TS, nullable=False),
    Column("received_at", TS, nullable=False),
    Column("expected", Boolean, nullable=False),
    Column("evse_connector_id", Integer),  # OCPP 2.0.1: the plug of the EVSE (connector_id) reported
    Index("ix_status_history_cp", "charge_point_id", "connector_id", "status_at"),
)

id_tags = Table(
    "id_tags", metadata,
    Column("id_tag", String(36), primary_key=True),  # 2.0.1's IdToken (1.6's idTag: 20, by its schema)
    Column("status", String(16), nullable=False),
    Column("expiry_date", TS),
    Column("parent_id_tag", String(36)),
    Column("note", String(200)),
    Column("created_at", TS, nullable=False),
    Column("list_version", BigInteger),  # the local-list version its current state was pushed in (sharing.local_lists)
    Index("ix_id_tags_list_version", "list_version"),  # what a booting charge point is owed: a range, not a scan
)

transactions = Table(
    "transactions", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),  # random, see domain/ids.py
    Column("charge_point_id", String(48), nullable=False),
    Column("connector_id", Integer, nullable=False),
    # 1.6: the idTag (20 characters); 2.0.1: the idToken's value (36), "" while a transaction started
    # at plug-in waits for its token (docs/architecture.md, "2.0.1 transactions")
    Column("id_tag", String(36), nullable=False),
    Column("id_tag_status", String(16), nullable=False),  # "" with id_tag "": no token yet
    Column("reservation_id", Integer),
    Column("meter_start", BigInteger, nullable=False),
    Column("started_at", TS, nullable=False),
    Column("meter_stop", BigInteger),
    Column("stopped_at", TS),
    Column("stop_reason", String(20)),
    Column("stop_id_tag", String(36)),
    Column("received_at", TS, nullable=False),
    Column("closed_by", String(64)),  # the operator who closed it (POST /api/v1/transactions/{id}/close)
    Column("station_tx_id", String(36)),  # 2.0.1: the transactionId the station chose (null for 1.6)
    Column("id_token_type", String(16)),  # 2.0.1: the IdToken's type (ISO14443, eMAID, Central...)
    UniqueConstraint("charge_point_id", "connector_id", "started_at", "id_tag", name="uq_transactions_natural"),
    Index("ix_transactions_cp_started", "charge_point_id", "started_at"),
    Index("ix_transactions_started", "started_at", "id"),  # every transaction, newest first, a page at a time
    Index("ix_transactions_open_tag", "id_tag", "stopped_at"),
    Index("ix_transactions_station_tx", "charge_point_id", "station_tx_id", unique=True),
)

reservations = Table(
    # every reservation voltlib asked a charge point for, through its whole life: the operator API's
    # and car sharing's holds alike (docs/operations.md "Reservations"; issue 20)
    "reservations", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # the OCPP reservationId, voltlib's choice
    Column("charge_point_id", String(48), nullable=False),
    Column("connector_id", Integer, nullable=False),  # 1.6 connectorId / 2.0.1 evseId; 0: any connector
    Column("id_tag", String(36), nullable=False),
    Column("expires_at", TS, nullable=False),
    # Requested, Accepted; Rejected, Faulted, Occupied, Unavailable (the answer); Failed (not sent or
    # refused by voltlib); Cancelled, Used, Expired, Removed (2.0.1: the station could not keep it)
    Column("status", String(16), nullable=False),
    Column("origin", String(16), nullable=False),  # api | car-sharing
    Column("rental_id", String(32)),  # car sharing's rental holding it
    Column("requested_by", String(64)),
    Column("transaction_id", BigInteger),  # the transaction that used it
    Column("detail", String(200)),  # why it failed or ended, in a few words
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Index("ix_reservations_created", "created_at", "id"),  # newest first, a page at a time
    Index("ix_reservations_cp", "charge_point_id", "created_at"),
    Index("ix_reservations_tag", "id_tag", "created_at"),
    Index("ix_reservations_rental", "rental_id"),
)

transaction_events = Table(
    "transaction_events", metadata,  # every 2.0.1 TransactionEvent once: (transaction, seqNo) is its key
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("charge_point_id", String(48), nullable=False),
    Column("transaction_id", BigInteger, nullable=False),  # voltlib's id (transactions.id)
    Column("seq_no", Integer, nullable=False),
    Column("event_type", String(8), nullable=False),  # Started | Updated | Ended
    Column("trigger_reason", String(32), nullable=False),
    Column("offline", Boolean, nullable=False),
    Column("number_of_phases_used", Integer),
    Column("charging_state", String(16)),
    Column("stopped_reason", String(20)),
    Column("id_token_type", String(16)),
    Column("stamped_at", TS, nullable=False),  # the station's timestamp, as sent
    Column("received_at", TS, nullable=False),
    UniqueConstraint("transaction_id", "seq_no", name="uq_transaction_events_seq"),
)

meter_values = Table(
    "meter_values", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("charge_point_id", String(48), nullable=False),
    Column("connector_id", Integer, nullable=False),
    Column("transaction_id", BigInteger, nullable=False),  # 0 = outside any transaction (keeps the key unique)
    Column("sampled_at", TS, nullable=False),
    Column("samples", LargeBinary, nullable=False),  # domain/meter.py packing
    Column("received_at", TS, nullable=False),
    UniqueConstraint("charge_point_id", "connector_id", "sampled_at", "transaction_id", name="uq_meter_values_natural"),
    Index("ix_meter_values_tx", "transaction_id"),
    Index("ix_meter_values_received", "received_at"),
)

ocpp_messages = Table(
    "ocpp_messages", metadata,  # one row per exchange: a call and its answer, or a rejected frame
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("charge_point_id", String(48), nullable=False),
    Column("initiator", String(16), nullable=False),  # charge_point | central_system
    Column("message_id", String(36), nullable=False),
    Column("action", String(40)),
    Column("outcome", String(16), nullable=False),  # result | error | violation | retransmission | timeout
    Column("request", Text, nullable=False),
    Column("response", Text),
    Column("at", TS, nullable=False),
    Index("ix_ocpp_messages_cp_at", "charge_point_id", "at"),
    Index("ix_ocpp_messages_at", "at"),
)

commands = Table(
    "commands", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("charge_point_id", String(48), nullable=False),
    Column("action", String(40), nullable=False),
    Column("message_id", String(36)),
    Column("request", JSON, nullable=False),
    # queued | answered | failed | timeout | lost | offline | refused
    Column("state", String(16), nullable=False),
    Column("response", JSON),
    Column("error_code", String(40)), Column("error_description", String(255)),
    Column("requested_by", String(64)),
    Column("created_at", TS, nullable=False),
    Column("finished_at", TS),
    Column("node", String(64)),  # the node sending it: its start-up marks what it left under way lost
    Index("ix_commands_cp", "charge_point_id", "created_at"),
)

security_events = Table(
    "security_events", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("charge_point_id", String(48)),
    Column("kind", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("source", String(64)),
    Column("detail", JSON, nullable=False),
    Column("at", TS, nullable=False),
    Index("ix_security_events_at", "at"),
)

certificate_requests = Table(
    "certificate_requests", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("charge_point_id", String(48), nullable=False),
    Column("csr", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("at", TS, nullable=False),
    Column("certificate_type", String(32)),  # 2.0.1: ChargingStationCertificate | V2GCertificate; 1.6: NULL
)

# The certificates voltlib had installed on a station (CertificateSigned accepted), one per type: what
# the renewal follows (gateway/certificate_renewal.py, docs/security.md "Renewal").
station_certificates = Table(
    "station_certificates", metadata,
    Column("charge_point_id", String(48), primary_key=True),
    Column("certificate_type", String(32), primary_key=True),
    Column("serial_number", String(40), nullable=False),  # hexadecimal
    Column("fingerprint", String(64), nullable=False),
    Column("not_after", TS, nullable=False),
    Column("installed_at", TS, nullable=False),
    Column("renewal_requested_at", TS),  # the last TriggerMessage SignChargingStationCertificate
    Column("lapsed_alerted_at", TS),  # the certificate expired unrenewed and that was alerted
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(32), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", TS, nullable=False),
    Column("revoked_at", TS),
    Column("member_id", String(32)),  # set for role "member": the member the token speaks for
)


# --- car sharing (issue 3) -------------------------------------------------------------------
# A station's parking bays are its charge points' connectors. Exclusivity (one active rental per
# car and per member, one hold per bay) is enforced by UNIQUE columns that hold the key only while
# the rental is active and NULL otherwise: NULLs never collide, on SQLite and PostgreSQL alike.

cities = Table(
    "cities", metadata,
    Column("code", String(32), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("policy", JSON, nullable=False),  # rental policy durations, in seconds
    Column("plans", JSON, nullable=False),  # list of Plan.to_dict()
    Column("min_range_km", Integer, nullable=False),
)

stations = Table(
    "stations", metadata,
    Column("id", String(64), primary_key=True),
    Column("city", String(32), ForeignKey("cities.code"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("address", String(200), nullable=False),
    Column("postal_code", String(16)),
    Column("latitude", Float, nullable=False),
    Column("longitude", Float, nullable=False),
    Column("kind", String(16), nullable=False),  # STATION | SPACE | CENTER (Autolib' kinds)
    Column("status", String(16), nullable=False),  # operational | closed
    Column("grid_limit_w", Float),  # grid connection (docs/energy.md); None: a share of the bays' ratings
    Column("phase_limit_w", Float),  # per phase, for three-phase connections; None: only the total
    Index("ix_stations_city", "city"),
)

bays = Table(
    "bays", metadata,
    Column("station_id", String(64), ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("charge_point_id", String(48), nullable=False),
    Column("connector_id", Integer, nullable=False),
    Column("rated_power_w", Float),  # the connector's rating; None: the charging_connector_rated_w setting
    UniqueConstraint("charge_point_id", "connector_id", name="uq_bays_dock"),
)

vehicles = Table(
    "vehicles", metadata,
    Column("id", String(32), primary_key=True),
    Column("city", String(32), ForeignKey("cities.code"), nullable=False),
    Column("plate", String(16), nullable=False, unique=True),
    Column("vin", String(17), nullable=False, unique=True),
    Column("model", String(32), nullable=False),
    Column("battery_kwh", Float, nullable=False),
    Column("id_tag", String(36), nullable=False, unique=True),  # what a charge point reports for this car
    Column("status", String(16), nullable=False),  # docked | rented | missing | out_of_service
    Column("charge_point_id", String(48)),  # current dock, when docked
    Column("connector_id", Integer),
    Column("soc_percent", Float),
    Column("soc_source", String(16)),  # meter | model | telematics | import
    Column("soc_at", TS),
    Index("ix_vehicles_dock", "charge_point_id", "connector_id"),
)

members = Table(
    "members", metadata,
    Column("id", String(32), primary_key=True),
    Column("city", String(32), ForeignKey("cities.code"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("email", String(254), nullable=False, unique=True),
    Column("licence_number", String(32), nullable=False),
    Column("licence_expiry", TS, nullable=False),
    Column("licence_verified", Boolean, nullable=False),
    Column("payment_ok", Boolean, nullable=False),
    Column("plan_code", String(32)),
    Column("subscribed_until", TS),
    Column("created_at", TS, nullable=False),
)

badges = Table(
    "badges", metadata,
    Column("id_tag", String(36), primary_key=True),  # also in id_tags, which holds its status
    Column("member_id", String(32), ForeignKey("members.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", TS, nullable=False),
    # badge: an RFID card (any Authorize); contract: a Plug & Charge contract's eMAID, which opens a car only
    # when its certificate was checked (docs/car-sharing.md, "Plug & Charge rentals")
    Column("kind", String(8), nullable=False, server_default="badge"),
    Index("ix_badges_member", "member_id"),
)

rentals = Table(
    "rentals", metadata,
    Column("id", String(32), primary_key=True),
    Column("city", String(32), nullable=False),
    Column("member_id", String(32), nullable=False),
    Column("car_id", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("active_car", String(32), unique=True),  # = car_id while active, else NULL
    Column("active_member", String(32), unique=True),  # = member_id while active, else NULL
    Column("active_bay", String(64), unique=True),  # "cp/connector" of a held destination bay
    Column("data", JSON, nullable=False),  # the domain Rental (voltlib.sharing.codec)
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("returned_at", TS),  # = data's returned_at (the charge point's time), for a day's returns
    Index("ix_rentals_member", "member_id", "created_at"),
    Index("ix_rentals_car", "car_id", "created_at"),
    Index("ix_rentals_city_returned", "city", "returned_at"),  # the daily report: a city's returns of a day
)

invoices = Table(
    "invoices", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("member_id", String(32), nullable=False),
    Column("rental_id", String(32), unique=True),  # one invoice per rental, whatever is replayed
    Column("kind", String(16), nullable=False),  # rental | subscription
    Column("currency", String(3), nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("lines", JSON, nullable=False),
    Column("issued_at", TS, nullable=False),
    Index("ix_invoices_member", "member_id", "issued_at"),
)

# --- security operations (issue 5)

audit_log = Table(
    "audit_log", metadata,  # append-only, hash-chained: see security/audit.py
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("seq", BigInteger, nullable=False, unique=True),
    Column("at", TS, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(128), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

security_incidents = Table(
    "security_incidents", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("correlation_key", String(128), nullable=False),  # "cp:<id>" or "source:<address>"
    Column("charge_point_id", String(48)),
    Column("source", String(64)),
    Column("severity", String(16), nullable=False),
    Column("state", String(16), nullable=False),  # open | acknowledged | resolved
    Column("title", String(200), nullable=False),
    Column("alert_count", Integer, nullable=False),
    Column("opened_at", TS, nullable=False),
    Column("last_alert_at", TS, nullable=False),
    Column("acknowledged_at", TS), Column("acknowledged_by", String(64)),
    Column("resolved_at", TS), Column("resolved_by", String(64)),
    Column("note", Text),
    Index("ix_security_incidents_key_state", "correlation_key", "state"),
)

security_alerts = Table(
    "security_alerts", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("incident_id", BigInteger),  # None when expected (inside a work order)
    Column("charge_point_id", String(48)),
    Column("source", String(64)),
    Column("detector", String(48), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("expected", Boolean, nullable=False),
    Column("work_order_id", BigInteger),
    Column("repeats", Integer, nullable=False),  # deduplicated occurrences folded into this row
    Column("detail", JSON, nullable=False),
    Column("at", TS, nullable=False),
    Column("last_at", TS, nullable=False),
    Index("ix_security_alerts_at", "at"),
    Index("ix_security_alerts_incident", "incident_id"),
)

work_orders = Table(
    "work_orders", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("technician", String(64), nullable=False),
    Column("badge", String(36), nullable=False),  # an id token: 36 in 2.0.1 (migration 0024)
    Column("charge_points", JSON, nullable=False),  # list of charge point ids
    Column("starts_at", TS, nullable=False),
    Column("ends_at", TS, nullable=False),
    Column("purpose", String(200), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("cancelled_at", TS),
    Column("checked_in_at", TS),
)

quarantines = Table(
    "quarantines", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("charge_point_id", String(48), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("incident_id", BigInteger),
    Column("started_at", TS, nullable=False),
    Column("started_by", String(64), nullable=False),
    Column("released_at", TS),
    Column("released_by", String(64)),
    Index("ix_quarantines_cp", "charge_point_id", "released_at"),
)

# --- rebalancing (issue 4)

field_tasks = Table(
    "field_tasks", metadata,  # a car to drive from one station to another (voltlib.domain.rebalancing)
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("city", String(32), nullable=False),
    Column("car_id", String(32), nullable=False),
    Column("from_station", String(64), nullable=False),
    Column("to_station", String(64), nullable=False),
    Column("reason", String(16)),  # no_car | no_bay (the recommended move's), None: an operator's own
    Column("state", String(16), nullable=False),  # proposed | assigned | in_progress | done | cancelled
    Column("assignee", String(64)),
    Column("active_car", String(32), unique=True),  # = car_id while the task is live: one live task per car
    Column("history", JSON, nullable=False),  # [{action, state, by, at, assignee, note}]
    Column("created_by", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Index("ix_field_tasks_city_state", "city", "state"),
)

# --- OCPP 2.0.1 device model (issue 16)

device_model = Table(
    "device_model", metadata,  # one row per component / EVSE / variable / attribute type of a charge point
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("charge_point_id", String(48), nullable=False),
    Column("component", String(50), nullable=False),
    Column("component_instance", String(50), nullable=False),  # "" when none
    Column("evse_id", Integer, nullable=False),  # 0 when the component is not an EVSE's (2.0.1 EVSE ids are > 0)
    Column("connector_id", Integer, nullable=False),  # 0 when none
    Column("variable", String(50), nullable=False),
    Column("variable_instance", String(50), nullable=False),  # "" when none
    Column("attribute_type", String(8), nullable=False),  # Actual | Target | MinSet | MaxSet
    Column("value", String(2500)),  # None: not reported (a WriteOnly attribute, or never read)
    Column("mutability", String(10)),  # ReadOnly | WriteOnly | ReadWrite (reports only)
    Column("constant", Boolean),
    Column("persistent", Boolean),
    Column("data_type", String(16)),  # the variable's characteristics (reports only)
    Column("unit", String(16)),
    Column("min_limit", Float),
    Column("max_limit", Float),
    Column("values_list", String(1000)),
    Column("supports_monitoring", Boolean),
    Column("source", String(8), nullable=False),  # report | get | set: what last wrote the value
    Column("request_id", Integer),  # the NotifyReport's requestId when source = report
    Column("updated_at", TS, nullable=False),
    UniqueConstraint("charge_point_id", "component", "component_instance", "evse_id", "connector_id", "variable",
                     "variable_instance", "attribute_type"),
)


# --- OCPP 2.0.1 diagnostics, monitoring and display messages (issue 17, blocks N and O)

station_events = Table(
    "station_events", metadata,  # every NotifyEvent eventData, once (docs/operations.md, "Station events")
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("charge_point_id", String(48), nullable=False),
    Column("event_id", Integer, nullable=False),  # the station's eventId
    Column("at", TS, nullable=False),  # the event's own timestamp, as sent
    Column("received_at", TS, nullable=False),
    Column("seq_no", Integer, nullable=False),  # of the NotifyEvent that carried it
    Column("trigger", String(16), nullable=False),  # Alerting | Delta | Periodic
    Column("notification_type", String(24), nullable=False),  # HardWiredNotification ... CustomMonitor
    Column("component", String(50), nullable=False),
    Column("component_instance", String(50), nullable=False),  # "" when none
    Column("evse_id", Integer, nullable=False),  # 0 when none
    Column("connector_id", Integer, nullable=False),  # 0 when none
    Column("variable", String(50), nullable=False),
    Column("variable_instance", String(50), nullable=False),  # "" when none
    Column("actual_value", String(2500), nullable=False),
    Column("cause", Integer),
    Column("tech_code", String(50)),
    Column("tech_info", String(500)),
    Column("cleared", Boolean, nullable=False),
    Column("transaction_id", String(36)),  # the station's transactionId
    Column("variable_monitoring_id", Integer),
    Column("security", String(40)),  # the neutral security event it became (monitoring → tamper), if any
    UniqueConstraint("charge_point_id", "event_id", "at"),
    Index("ix_station_events_cp_id", "charge_point_id", "id"),
)

variable_monitors = Table(
    "variable_monitors", metadata,  # the monitors a station reported (NotifyMonitoringReport)
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("charge_point_id", String(48), nullable=False),
    Column("monitor_id", Integer, nullable=False),
    Column("component", String(50), nullable=False),
    Column("component_instance", String(50), nullable=False),
    Column("evse_id", Integer, nullable=False),
    Column("connector_id", Integer, nullable=False),
    Column("variable", String(50), nullable=False),
    Column("variable_instance", String(50), nullable=False),
    Column("type", String(24), nullable=False),  # UpperThreshold | LowerThreshold | Delta | Periodic | ...
    Column("value", Float, nullable=False),
    Column("severity", Integer, nullable=False),
    Column("transaction", Boolean, nullable=False),
    Column("request_id", Integer, nullable=False),
    Column("updated_at", TS, nullable=False),
    UniqueConstraint("charge_point_id", "monitor_id"),
)

customer_information = Table(
    "customer_information", metadata,  # NotifyCustomerInformation parts, by request
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("charge_point_id", String(48), nullable=False),
    Column("request_id", Integer, nullable=False),
    Column("seq_no", Integer, nullable=False),
    Column("data", String(512), nullable=False),
    Column("tbc", Boolean, nullable=False),
    Column("generated_at", TS, nullable=False),
    Column("received_at", TS, nullable=False),
    UniqueConstraint("charge_point_id", "request_id", "seq_no"),
)

display_messages = Table(
    "display_messages", metadata,  # what a station's screen holds: set by voltlib or reported
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("charge_point_id", String(48), nullable=False),
    Column("message_id", Integer, nullable=False),
    Column("priority", String(16), nullable=False),
    Column("state", String(16)),
    Column("format", String(8), nullable=False),
    Column("language", String(8)),
    Column("content", String(512), nullable=False),
    Column("evse_id", Integer),
    Column("start_at", TS),
    Column("end_at", TS),
    Column("transaction_id", String(36)),
    Column("source", String(8), nullable=False),  # set | report
    Column("updated_at", TS, nullable=False),
    UniqueConstraint("charge_point_id", "message_id"),
)

ev_charging_needs = Table(
    "ev_charging_needs", metadata,  # 2.0.1 NotifyEVChargingNeeds: what a car said it needs (ISO 15118)
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("charge_point_id", String(48), nullable=False),
    Column("evse_id", Integer, nullable=False),
    Column("transaction_id", BigInteger),  # voltlib's id of the session open on that EVSE, if any
    Column("energy_transfer", String(16), nullable=False),  # DC | AC_single_phase | AC_two_phase | AC_three_phase
    Column("energy_wh", BigInteger),  # energyAmount
    Column("departure_claimed", TS),  # departureTime as the station sent it
    Column("departure_at", TS),  # ... as the clock policy bounds it (null: not believed)
    Column("max_current_a", Integer), Column("min_current_a", Integer), Column("max_voltage_v", Integer),
    Column("max_power_w", Float),  # what the car can take, in W (AC: current x 230 V x phases)
    Column("soc_percent", Integer), Column("capacity_wh", BigInteger),  # DC only: the car's own
    Column("full_soc", Integer), Column("bulk_soc", Integer),
    Column("soc_at_receipt", Float),  # percent: what energy_wh counts from (the car's, else voltlib's estimate)
    Column("max_schedule_tuples", Integer),
    Column("status", String(12), nullable=False),  # the answer: Accepted | Processing | Rejected
    Column("reason", String(20)),  # its reasonCode when not Accepted
    Column("received_at", TS, nullable=False),
    Index("ix_ev_charging_needs_tx", "transaction_id", "id"),
    Index("ix_ev_charging_needs_cp", "charge_point_id", "evse_id", "id"),
)

ev_charging_schedules = Table(
    "ev_charging_schedules", metadata,  # 2.0.1 NotifyEVChargingSchedule: the schedule the car chose
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("charge_point_id", String(48), nullable=False),
    Column("evse_id", Integer, nullable=False),
    Column("transaction_id", BigInteger),
    Column("time_base", TS, nullable=False),
    Column("schedule", JSON, nullable=False),  # the chargingSchedule as sent
    Column("max_w", Float),  # its highest limit, in W
    Column("limit_w", Float),  # the TxProfile limit voltlib had set for the session, if known
    Column("status", String(12), nullable=False),  # Accepted | Rejected
    Column("reason", String(20)),
    Column("received_at", TS, nullable=False),
    Index("ix_ev_charging_schedules_cp", "charge_point_id", "evse_id", "id"),
)

# --- charging profiles as a resource, and what each charge point holds (issues 17 K, 20 part 3) ---

charging_profiles = Table(
    "charging_profiles", metadata,  # an operator's stored profile, installed by id (OCPP id = id + 1000)
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("purpose", String(16), nullable=False),  # ChargePointMax | TxDefault | Tx
    Column("stack_level", Integer, nullable=False),
    Column("kind", String(10), nullable=False),  # Absolute | Recurring | Relative
    Column("recurrency", String(8)),  # Daily | Weekly (Recurring)
    Column("start_at", TS),  # None: from when it is installed (Absolute), or the transaction's start
    Column("duration_s", Integer),
    Column("valid_from", TS),
    Column("valid_to", TS),
    Column("periods", JSON, nullable=False),  # [{start_s, limit_w, number_phases}]
    Column("created_by", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
)

installed_charging_profiles = Table(
    "installed_charging_profiles", metadata,  # what voltlib installed, or a station reported, on a charge point
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("charge_point_id", String(48), nullable=False),
    Column("charging_profile_id", Integer, nullable=False),  # the OCPP id
    Column("connector_id", Integer, nullable=False),  # 1.6 connectorId, 2.0.1 evseId; 0: the whole charge point
    Column("purpose", String(40), nullable=False),  # ChargePointMax | TxDefault | Tx | ExternalConstraints
    Column("stack_level", Integer, nullable=False),
    Column("source", String(16), nullable=False),  # operator | smart-charging | station (reported only)
    Column("stored_profile_id", BigInteger),  # charging_profiles.id, when installed from the resource
    Column("limit_source", String(8)),  # a 2.0.1 report's chargingLimitSource (CSO: a central system's)
    Column("transaction_id", String(36)),
    Column("profile", JSON, nullable=False),  # {kind, recurrency, start_at, duration_s, valid_from, valid_to, periods}
    Column("request_id", Integer),  # the GetChargingProfiles request that last reported it
    Column("updated_at", TS, nullable=False),
    UniqueConstraint("charge_point_id", "charging_profile_id"),
)

composite_schedules = Table(
    "composite_schedules", metadata,  # the last GetCompositeSchedule answer of each connector, in W
    Column("charge_point_id", String(48), primary_key=True),
    Column("connector_id", Integer, primary_key=True),
    Column("schedule_start", TS),
    Column("duration_s", Integer),
    Column("periods", JSON, nullable=False),  # [{start_s, limit_w}]
    Column("read_at", TS, nullable=False),
)

charging_limits = Table(
    "charging_limits", metadata,  # external limits a 2.0.1 station notified (NotifyChargingLimit), until cleared
    Column("charge_point_id", String(48), primary_key=True),
    Column("evse_id", Integer, primary_key=True),  # 0: the whole station
    Column("limit_source", String(8), primary_key=True),  # EMS | SO | Other (| CSO)
    Column("grid_critical", Boolean),
    Column("limit_w", Float),  # the limit in force when notified; None: the station did not say
    Column("periods", JSON),  # [{start_s, limit_w}] of the schedule it sent, in W
    Column("schedule_start", TS),
    Column("received_at", TS, nullable=False),
)

charging_profile_reports = Table(
    "charging_profile_reports", metadata,  # GetChargingProfiles requests and their ReportChargingProfiles parts
    Column("charge_point_id", String(48), primary_key=True),
    Column("request_id", Integer, primary_key=True),
    Column("full", Boolean, nullable=False),  # no criteria: the report is everything the station holds
    Column("status", String(16), nullable=False),  # requested | Accepted | NoProfiles | complete | not-sent
    Column("parts", Integer, nullable=False),
    Column("profiles", Integer, nullable=False),
    Column("requested_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)
