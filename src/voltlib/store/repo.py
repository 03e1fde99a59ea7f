"""Synchronous database operations, each run inside a group-committed transaction.

Every function takes a ``Connection`` first, so it can be passed to ``Store.write`` or
``Store.read``. Writes that a charge point may retransmit are idempotent by natural key.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from voltlib.domain import connector as connector_rules
from voltlib.domain import idtags, meter
from voltlib.ocpp.v16 import messages as m
from voltlib.store import fast, reservations
from voltlib.store.fast import Prepared
from voltlib.store.tables import (
    api_tokens,
    bays,
    certificate_requests,
    charge_points,
    commands,
    connector_status_history,
    connectors,
    id_tags,
    meter_values,
    ocpp_messages,
    security_events,
    transactions,
    vehicles,
)

# --- charge points ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChargePointRecord:
    id: str
    registration: str
    security_profile: int
    password_hash: str | None
    certificate_fingerprint: str | None
    firmware_version: str | None
    vendor: str | None
    model: str | None
    serial_number: str | None
    last_address: str | None = None  # where it last connected from: the per-id lock-out spares it
    pending_password_hash: str | None = None  # rotate_password: sent, answer lost (docs/security.md)
    pending_password_until: datetime | None = None
    trace_until: datetime | None = None  # its frames logged in full until then (docs/operations.md)
    ocpp_version: str | None = None  # the OCPP version of its last connection ("1.6", "2.0.1")
    is_bay: bool = True  # a bay of a car-sharing station: a fleet car may be docked at it


def get_charge_point(conn: Connection, cp_id: str) -> ChargePointRecord | None:
    row = conn.execute(
        select(charge_points.c.id, charge_points.c.registration, charge_points.c.security_profile,
               charge_points.c.password_hash, charge_points.c.certificate_fingerprint,
               charge_points.c.firmware_version, charge_points.c.vendor, charge_points.c.model,
               charge_points.c.serial_number, charge_points.c.last_address, charge_points.c.pending_password_hash,
               charge_points.c.pending_password_until, charge_points.c.trace_until, charge_points.c.ocpp_version,
               exists().where(bays.c.charge_point_id == charge_points.c.id))
        .where(charge_points.c.id == cp_id)
    ).first()
    return None if row is None else ChargePointRecord(*row)


def add_charge_point(conn: Connection, cp_id: str, *, registration: str, security_profile: int,
                     password_hash: str | None, certificate_fingerprint: str | None, now: datetime) -> None:
    conn.execute(insert(charge_points).values(
        id=cp_id, registration=registration, security_profile=security_profile, password_hash=password_hash,
        certificate_fingerprint=certificate_fingerprint, created_at=now))


def count_pending(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(charge_points)
                            .where(charge_points.c.registration == "Pending")).scalar_one())


def update_charge_point(conn: Connection, cp_id: str, **values: Any) -> bool:
    result = conn.execute(update(charge_points).where(charge_points.c.id == cp_id).values(**values))
    return result.rowcount > 0


def settle_pending_password(conn: Connection, cp_id: str, pending: str, *, taken: bool) -> bool:
    """The charge point showed which key it holds after a rotation whose answer was lost: the new one
    (``taken``) becomes its password, or the old one and the new one is dropped. Only if that rotation
    is still the pending one; False when another change came first."""
    values: dict[str, Any] = {"pending_password_hash": None, "pending_password_until": None}
    if taken:
        values["password_hash"] = pending
    result = conn.execute(update(charge_points).where(
        charge_points.c.id == cp_id, charge_points.c.pending_password_hash == pending).values(**values))
    return result.rowcount > 0


SECRETS = frozenset({"password_hash", "pending_password_hash"})  # never leave the database through the API


def list_charge_points(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(charge_points).order_by(charge_points.c.id)).mappings()
    return [{k: v for k, v in row.items() if k not in SECRETS} for row in rows]


def charge_point_detail(conn: Connection, cp_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(charge_points).where(charge_points.c.id == cp_id)).mappings().first()
    if row is None:
        return None
    detail = {k: v for k, v in row.items() if k not in SECRETS}
    detail["connectors"] = [dict(r) for r in conn.execute(
        select(connectors).where(connectors.c.charge_point_id == cp_id).order_by(connectors.c.connector_id)
    ).mappings()]
    return detail


def record_boot(conn: Connection, cp_id: str, boot: m.BootNotification, now: datetime) -> str:
    """Store what the charge point says it is; return its registration status."""
    conn.execute(update(charge_points).where(charge_points.c.id == cp_id).values(
        vendor=boot.charge_point_vendor, model=boot.charge_point_model,
        serial_number=boot.charge_point_serial_number, charge_box_serial_number=boot.charge_box_serial_number,
        firmware_version=boot.firmware_version, iccid=boot.iccid, imsi=boot.imsi, meter_type=boot.meter_type,
        meter_serial_number=boot.meter_serial_number, last_boot_at=now, last_seen_at=now))
    status = conn.execute(select(charge_points.c.registration).where(charge_points.c.id == cp_id)).scalar()
    return str(status or "Rejected")


def touch(conn: Connection, cp_id: str, now: datetime, address: str | None = None,
          ocpp_version: str | None = None) -> None:
    values: dict[str, Any] = {"last_seen_at": now}
    if address is not None:
        values["last_address"] = address
    if ocpp_version is not None:
        values["ocpp_version"] = ocpp_version
    conn.execute(update(charge_points).where(charge_points.c.id == cp_id).values(**values))


# --- connectors -------------------------------------------------------------------------------


def record_status(conn: Connection, cp_id: str, note: m.StatusNotification, now: datetime) -> tuple[str | None, bool]:
    """Store the new connector state and its history row; return (previous status, expected?)."""
    key = and_(connectors.c.charge_point_id == cp_id, connectors.c.connector_id == note.connector_id)
    previous = conn.execute(select(connectors.c.status).where(key)).scalar()
    expected = connector_rules.is_expected(note.connector_id, previous, note.status)
    at = note.timestamp or now
    values = {"status": note.status, "error_code": note.error_code, "info": note.info, "vendor_id": note.vendor_id,
              "vendor_error_code": note.vendor_error_code, "status_at": at}
    if previous is None:
        conn.execute(insert(connectors).values(charge_point_id=cp_id, connector_id=note.connector_id, **values))
    else:
        conn.execute(update(connectors).where(key).values(**values))
    conn.execute(insert(connector_status_history).values(
        charge_point_id=cp_id, connector_id=note.connector_id, received_at=now, expected=expected, **values))
    return previous, expected


def record_evse_status(conn: Connection, cp_id: str, *, evse_id: int, connector_id: int, status: str,
                       at: datetime, now: datetime) -> tuple[str | None, bool]:
    """An OCPP 2.0.1 StatusNotification: the EVSE is the connector row (1.6's connector is 2.0.1's
    EVSE: one outlet charging one car at a time), ``evse_connector_id`` says which of its plugs the
    status is of (docs/architecture.md). Returns (previous status, expected?)."""
    key = and_(connectors.c.charge_point_id == cp_id, connectors.c.connector_id == evse_id)
    previous = conn.execute(select(connectors.c.status).where(key)).scalar()
    expected = connector_rules.is_expected_v201(evse_id, previous, status)
    values = {"status": status, "error_code": "NoError", "info": None, "vendor_id": None, "vendor_error_code": None,
              "status_at": at, "evse_connector_id": connector_id}
    if previous is None:
        conn.execute(insert(connectors).values(charge_point_id=cp_id, connector_id=evse_id, **values))
    else:
        conn.execute(update(connectors).where(key).values(**values))
    conn.execute(insert(connector_status_history).values(
        charge_point_id=cp_id, connector_id=evse_id, received_at=now, expected=expected, **values))
    return previous, expected


def record_station_boot(conn: Connection, cp_id: str, *, vendor: str, model: str, serial_number: str | None,
                        firmware_version: str | None, iccid: str | None, imsi: str | None, now: datetime) -> str:
    """An OCPP 2.0.1 BootNotification's ChargingStation; its registration status, as :func:`record_boot`.
    A 2.0.1 vendor name may be 50 characters: the column keeps 1.6's 20 (the raw log has the rest)."""
    conn.execute(update(charge_points).where(charge_points.c.id == cp_id).values(
        vendor=vendor[:20], model=model, serial_number=serial_number, firmware_version=firmware_version,
        iccid=iccid, imsi=imsi, last_boot_at=now, last_seen_at=now))
    status = conn.execute(select(charge_points.c.registration).where(charge_points.c.id == cp_id)).scalar()
    return str(status or "Rejected")


def status_history(conn: Connection, cp_id: str, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(select(connector_status_history).where(connector_status_history.c.charge_point_id == cp_id)
                        .order_by(connector_status_history.c.status_at.desc(), connector_status_history.c.id.desc())
                        .limit(limit)).mappings()
    return [dict(r) for r in rows]


# --- id tags ----------------------------------------------------------------------------------


def authorize(conn: Connection, id_tag: str, now: datetime) -> idtags.Decision:
    row = conn.execute(select(id_tags.c.id_tag, id_tags.c.status, id_tags.c.expiry_date, id_tags.c.parent_id_tag)
                       .where(id_tags.c.id_tag == id_tag)).first()
    record = None if row is None else idtags.IdTagRecord(*row)
    busy = conn.execute(select(transactions.c.id).where(
        transactions.c.id_tag == id_tag, transactions.c.stopped_at.is_(None)).limit(1)).first() is not None
    return idtags.decide(record, now, in_transaction=busy)


def upsert_id_tag(conn: Connection, id_tag: str, *, status: str, expiry_date: datetime | None,
                  parent_id_tag: str | None, now: datetime) -> None:
    values = {"status": status, "expiry_date": expiry_date, "parent_id_tag": parent_id_tag}
    if conn.execute(update(id_tags).where(id_tags.c.id_tag == id_tag).values(**values)).rowcount == 0:
        conn.execute(insert(id_tags).values(id_tag=id_tag, created_at=now, **values))


def list_id_tags(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(id_tags).order_by(id_tags.c.id_tag)).mappings()]


# --- transactions -----------------------------------------------------------------------------

MAX_TRANSACTION_ID = 2**31 - 1  # OCPP 1.6 transactionId is a signed 32-bit integer


@dataclass(frozen=True, slots=True)
class StartOutcome:
    transaction_id: int
    decision: idtags.Decision
    created: bool


def start_transaction(conn: Connection, cp_id: str, req: m.StartTransaction, now: datetime) -> StartOutcome:
    """Idempotent by (charge point, connector, start time, id tag): a replay gets the same id.

    Ids are random in [1, 2^31-1] so they cannot be guessed from one another. An offline
    transaction (old timestamp) is accepted as is; listings order by start time.
    """
    existing = conn.execute(select(transactions.c.id).where(
        transactions.c.charge_point_id == cp_id, transactions.c.connector_id == req.connector_id,
        transactions.c.started_at == req.timestamp, transactions.c.id_tag == req.id_tag)).scalar()
    decision = authorize(conn, req.id_tag, now)
    if existing is not None:
        return StartOutcome(int(existing), replayed(decision), created=False)
    row = {"charge_point_id": cp_id, "connector_id": req.connector_id, "id_tag": req.id_tag,
           "id_tag_status": decision.status, "reservation_id": req.reservation_id, "meter_start": req.meter_start,
           "started_at": req.timestamp, "received_at": now}
    tx_id = insert_transaction(conn, row)
    reservations.used(conn, cp_id, req.reservation_id, tx_id, now)  # committed with the transaction
    return StartOutcome(tx_id, decision, created=True)


def insert_transaction(conn: Connection, row: dict[str, Any]) -> int:
    """Insert a transaction under a new id of voltlib's, which every OCPP version's transaction gets."""
    for _ in range(8):  # a clash of random ids is rare (ids in use / 2^31); draw again
        tx_id = secrets.randbelow(MAX_TRANSACTION_ID) + 1
        if insert_one_if_new(conn, transactions, {"id": tx_id, **row}):
            return tx_id
    raise RuntimeError("could not allocate a transaction id")


def replayed(decision: idtags.Decision) -> idtags.Decision:
    # The replayed start is the one that made the tag busy: do not answer ConcurrentTx to it.
    if decision.status == "ConcurrentTx":
        return idtags.Decision("Accepted", decision.expiry_date, decision.parent_id_tag)
    return decision


@dataclass(frozen=True, slots=True)
class StopOutcome:
    known: bool
    changed: bool
    decision: idtags.Decision | None


def stop_transaction(conn: Connection, cp_id: str, req: m.StopTransaction, now: datetime) -> StopOutcome:
    """Close the transaction once; a retransmitted stop changes nothing. A stop for a transaction
    we never saw is still acknowledged (the charge point would retry forever) but reported."""
    row = conn.execute(select(transactions.c.stopped_at).where(
        transactions.c.id == req.transaction_id, transactions.c.charge_point_id == cp_id)).first()
    decision = authorize(conn, req.id_tag, now) if req.id_tag else None
    if decision is not None and decision.status == "ConcurrentTx":
        decision = idtags.Decision("Accepted", decision.expiry_date, decision.parent_id_tag)
    if row is None:  # keep its readings anyway, on connector 0: evidence for the detectors
        insert_ignoring_duplicates(conn, meter_values, meter_rows(cp_id, 0, req.transaction_id,
                                                                  req.transaction_data or [], now))
        return StopOutcome(known=False, changed=False, decision=decision)
    changed = row[0] is None
    if changed:
        conn.execute(update(transactions).where(transactions.c.id == req.transaction_id).values(
            meter_stop=req.meter_stop, stopped_at=req.timestamp, stop_reason=req.reason, stop_id_tag=req.id_tag))
    if req.transaction_data:
        connector_id = _connector_of(conn, req.transaction_id)
        insert_ignoring_duplicates(
            conn, meter_values, meter_rows(cp_id, connector_id, req.transaction_id, req.transaction_data, now))
        reading = latest_soc(req.transaction_data)  # Transaction.End
        if reading is not None and reading[1] > now:  # never ahead of voltlib's clock (clock policy)
            reading = reading[0], now
        record_soc(conn, cp_id, connector_id, req.transaction_id, reading)
    return StopOutcome(known=True, changed=changed, decision=decision)


def _connector_of(conn: Connection, tx_id: int) -> int:
    return int(conn.execute(select(transactions.c.connector_id).where(transactions.c.id == tx_id)).scalar() or 0)


def first_transaction_of_tag_since(conn: Connection, id_tag: str, since: datetime) -> dict[str, Any] | None:
    row = conn.execute(select(transactions).where(transactions.c.id_tag == id_tag, transactions.c.started_at >= since)
                       .order_by(transactions.c.started_at).limit(1)).mappings().first()
    return None if row is None else dict(row)


def list_transactions(conn: Connection, cp_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    query = select(transactions).order_by(transactions.c.started_at.desc()).limit(limit)
    if cp_id is not None:
        query = query.where(transactions.c.charge_point_id == cp_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def station_transaction_id(conn: Connection, cp_id: str, transaction_id: int) -> str | None:
    """The 2.0.1 station's own transactionId for voltlib's ``transaction_id`` (None: not a 2.0.1 one)."""
    found = conn.execute(select(transactions.c.station_tx_id).where(
        transactions.c.id == transaction_id, transactions.c.charge_point_id == cp_id)).scalar()
    return None if found is None else str(found)


def transaction_exists(conn: Connection, cp_id: str, tx_id: int) -> bool:
    return conn.execute(select(transactions.c.id).where(
        transactions.c.id == tx_id, transactions.c.charge_point_id == cp_id)).first() is not None


# --- meter values -----------------------------------------------------------------------------


def insert_ignoring_duplicates(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING: replays of the same data store nothing new."""
    if rows:
        dialect_insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
        conn.execute(dialect_insert(table).on_conflict_do_nothing(), rows)


def insert_one_if_new(conn: Connection, table: Table, row: dict[str, Any]) -> bool:
    """Insert ``row`` unless it clashes with a unique key; say whether it was inserted."""
    dialect_insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    statement = dialect_insert(table).on_conflict_do_nothing().returning(*table.primary_key.columns)
    return conn.execute(statement, row).first() is not None


def meter_rows(cp_id: str, connector_id: int, tx_id: int | None, values: list[m.MeterValue],
                now: datetime) -> list[dict[str, Any]]:
    return [{"charge_point_id": cp_id, "connector_id": connector_id, "transaction_id": tx_id or 0,
             "sampled_at": v.timestamp, "samples": meter.pack(v.sampled_value), "received_at": now} for v in values]


def insert_meter_values(conn: Connection, cp_id: str, req: m.MeterValues, now: datetime) -> None:
    """Store each MeterValue once (natural key: connector, time, transaction)."""
    insert_ignoring_duplicates(conn, meter_values, meter_rows(cp_id, req.connector_id, req.transaction_id,
                                                               req.meter_value, now))


def latest_soc(values: list[m.MeterValue]) -> tuple[float, datetime] | None:
    """The latest ``SoC`` measurand of ``values`` (clamped to 0-100; not a number: none) and its time."""
    found = [(v.timestamp, percent) for v in values
             if (percent := meter.find(v.sampled_value, "SoC")) is not None and math.isfinite(percent)]
    if not found:
        return None
    at, percent = max(found, key=lambda f: f[0])
    return min(100.0, max(0.0, percent)), at


def record_soc(conn: Connection, cp_id: str, connector_id: int, tx_id: int | None,
               reading: tuple[float, datetime] | None) -> None:
    """A state-of-charge reading (:func:`latest_soc`) onto the car at the connector when it arrived
    (source ``measured``, :data:`_RECORD_SOC`); an older reading never replaces a newer one, so a
    retransmission changes nothing. In a group commit of several ops it does not wait for the car's row
    (another writer thread's car-sharing operation may hold it, and wait for a car this batch holds):
    it fails instead, and the writer runs it again in a transaction of its own, before the answer."""
    if reading is not None:
        statement = _RECORD_SOC_NOWAIT if fast.holds_others(conn) else _RECORD_SOC
        statement.write(conn, {"cp_id": cp_id, "connector_id": connector_id, "tx_id": tx_id or 0,
                                 "percent": reading[0], "source": "measured", "at": reading[1],
                                 "docked": "docked", "available": "Available", "nobody": ""})


def _car_at_connector() -> Any:
    """The car at a connector as the charge point's own messages tell it so far (they are handled in
    order, each committed before it is answered). A reading bound to a transaction, or taken while
    one is open on the connector, is the car's whose id token started it (nobody's if it is not a
    car's: someone else's car charges there). With no transaction, it is the car docked there, unless
    the connector has become Available since (the car left). The docked car comes last: car sharing
    moves cars only once it has handled an unplug or a return, after these were answered."""
    car, tx, latest = vehicles.alias("car"), transactions.alias("tx"), transactions.alias("latest")
    cp_id = bindparam("cp_id", type_=tx.c.charge_point_id.type)
    connector_id = bindparam("connector_id", type_=tx.c.connector_id.type)
    # NULL: no such transaction; "" (nobody): one that no car of ours started
    of_tag = (select(func.min(func.coalesce(car.c.id, bindparam("nobody", type_=car.c.id.type))))
              .select_from(tx.outerjoin(car, car.c.id_tag == tx.c.id_tag)))
    named = of_tag.where(tx.c.id == bindparam("tx_id", type_=tx.c.id.type), tx.c.charge_point_id == cp_id)
    last_start = select(func.max(latest.c.started_at)).where(
        latest.c.charge_point_id == cp_id, latest.c.connector_id == connector_id, latest.c.stopped_at.is_(None))
    running = of_tag.where(tx.c.charge_point_id == cp_id, tx.c.connector_id == connector_id,
                           tx.c.stopped_at.is_(None), tx.c.started_at == last_start.scalar_subquery())
    left = exists().where(connectors.c.charge_point_id == cp_id, connectors.c.connector_id == connector_id,
                          connectors.c.status == bindparam("available", type_=connectors.c.status.type))
    docked = select(func.min(car.c.id)).where(car.c.charge_point_id == cp_id, car.c.connector_id == connector_id,
                                              car.c.status == bindparam("docked", type_=car.c.status.type), ~left)
    return func.coalesce(named.scalar_subquery(), running.scalar_subquery(), docked.scalar_subquery())


_SOC_AT = bindparam("at", type_=vehicles.c.soc_at.type)


def _record_soc(car: Any) -> Prepared:
    return Prepared(update(vehicles).where(vehicles.c.id == car, or_(vehicles.c.soc_at.is_(None),
                                                                     vehicles.c.soc_at <= _SOC_AT))
                    .values(soc_percent=bindparam("percent", type_=vehicles.c.soc_percent.type),
                            soc_source=bindparam("source", type_=vehicles.c.soc_source.type), soc_at=_SOC_AT))


_FREE = vehicles.alias("free")
_RECORD_SOC = _record_soc(_car_at_connector())
# PostgreSQL: the car's row locked first, NOWAIT (SQLite, one writer, renders no lock)
_RECORD_SOC_NOWAIT = _record_soc(select(_FREE.c.id).where(_FREE.c.id == _car_at_connector())
                                 .with_for_update(nowait=True).scalar_subquery())


def read_meter_values(conn: Connection, cp_id: str, transaction_id: int | None = None,
                      limit: int = 500) -> list[dict[str, Any]]:
    query = select(meter_values).where(meter_values.c.charge_point_id == cp_id)
    if transaction_id is not None:
        query = query.where(meter_values.c.transaction_id == transaction_id)
    rows = conn.execute(query.order_by(meter_values.c.sampled_at.desc()).limit(limit)).mappings()
    return [{"connector_id": r["connector_id"], "transaction_id": r["transaction_id"] or None,
             "timestamp": r["sampled_at"], "sampled_value": meter.unpack(r["samples"])} for r in rows]


def purge_meter_values(conn: Connection, before: datetime) -> int:
    return int(conn.execute(meter_values.delete().where(meter_values.c.received_at < before)).rowcount)


# --- raw message log, commands, security events, CSRs, tokens ---------------------------------


def purge_messages(conn: Connection, before: datetime) -> int:
    return int(conn.execute(ocpp_messages.delete().where(ocpp_messages.c.at < before)).rowcount)


def read_messages(conn: Connection, cp_id: str, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(select(ocpp_messages).where(ocpp_messages.c.charge_point_id == cp_id)
                        .order_by(ocpp_messages.c.id.desc()).limit(limit)).mappings()
    return [dict(r) for r in rows]


def create_command(conn: Connection, cp_id: str, action: str, request: dict[str, Any], requested_by: str | None,
                   now: datetime, node: str | None = None) -> int:
    result = conn.execute(insert(commands).values(
        charge_point_id=cp_id, action=action, request=request, state="queued", requested_by=requested_by,
        created_at=now, node=node).returning(commands.c.id))
    return int(result.scalar_one())


def lose_commands(conn: Connection, node: str, alone: bool, now: datetime) -> int:
    """At start-up, before anything is sent: the commands ``node`` left under way when it stopped
    (still ``queued``: sent or not, never answered) are ``lost``. ``alone`` (no cluster): every such
    command, whichever node name it was sent under; on a cluster, only this node's (the others may
    be waiting for their answers now)."""
    where = [commands.c.state == "queued"]
    if not alone:
        where.append(commands.c.node == node)
    return int(conn.execute(update(commands).where(*where).values(
        state="lost", finished_at=now, error_code="node-restarted",
        error_description=f"voltlib ({node}) stopped before the answer; it may have reached the charge point")
    ).rowcount)


def update_command(conn: Connection, command_id: int, **values: Any) -> None:
    conn.execute(update(commands).where(commands.c.id == command_id).values(**values))


def finish_command(conn: Connection, command_id: int, **values: Any) -> dict[str, Any]:
    """Record a command's outcome and return its whole row, in one statement."""
    row = conn.execute(update(commands).where(commands.c.id == command_id).values(**values)
                       .returning(*commands.c)).mappings().one()
    return dict(row)


def get_command(conn: Connection, command_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(commands).where(commands.c.id == command_id)).mappings().first()
    return None if row is None else dict(row)


def list_commands(conn: Connection, cp_id: str, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(select(commands).where(commands.c.charge_point_id == cp_id)
                        .order_by(commands.c.id.desc()).limit(limit)).mappings()
    return [dict(r) for r in rows]


def record_security_event(conn: Connection, *, kind: str, severity: str, charge_point_id: str | None,
                          source: str | None, detail: dict[str, Any], now: datetime) -> None:
    conn.execute(insert(security_events).values(kind=kind, severity=severity, charge_point_id=charge_point_id,
                                                source=source, detail=detail, at=now))


def list_security_events(conn: Connection, cp_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    query = select(security_events).order_by(security_events.c.id.desc()).limit(limit)
    if cp_id is not None:
        query = query.where(security_events.c.charge_point_id == cp_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def record_csr(conn: Connection, cp_id: str, csr: str, state: str, now: datetime,
               certificate_type: str | None = None) -> int:
    result = conn.execute(insert(certificate_requests).values(charge_point_id=cp_id, csr=csr, state=state, at=now,
                                                              certificate_type=certificate_type)
                          .returning(certificate_requests.c.id))
    return int(result.scalar_one())


def set_csr_state(conn: Connection, request_id: int, state: str) -> None:
    conn.execute(update(certificate_requests).where(certificate_requests.c.id == request_id).values(state=state))


def list_csrs(conn: Connection, cp_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(certificate_requests).where(certificate_requests.c.charge_point_id == cp_id)
                        .order_by(certificate_requests.c.id))
    return [dict(row._mapping) for row in rows]


def add_api_token(conn: Connection, name: str, role: str, token_hash: str, now: datetime,
                  member_id: str | None = None) -> None:
    conn.execute(insert(api_tokens).values(name=name, role=role, token_hash=token_hash, created_at=now,
                                           member_id=member_id))


def find_api_token(conn: Connection, token_hash: str) -> tuple[str, str, str | None] | None:
    """(name, role, member id) of a live token."""
    row = conn.execute(select(api_tokens.c.name, api_tokens.c.role, api_tokens.c.member_id).where(
        api_tokens.c.token_hash == token_hash, api_tokens.c.revoked_at.is_(None))).first()
    return None if row is None else (row[0], row[1], row[2])


def revoke_api_token(conn: Connection, name: str, now: datetime) -> bool:
    return conn.execute(update(api_tokens).where(api_tokens.c.name == name).values(revoked_at=now)).rowcount > 0


def count(conn: Connection, table_name: str) -> int:
    from voltlib.store.tables import metadata

    return int(conn.execute(select(func.count()).select_from(metadata.tables[table_name])).scalar_one())
