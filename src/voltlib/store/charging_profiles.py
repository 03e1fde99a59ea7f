"""Charging profiles in the database (issue 17 K, issue 20 part 3): the operator's stored profiles,
what each charge point holds, the last composite schedule of each connector, the external limits
2.0.1 stations notify, and GetChargingProfiles requests with their reports.

Every write is idempotent: a report part, an answer or a notification sent again replaces its own
rows. Rows are in neutral words (purposes as :mod:`voltlib.domain.commands` names them, limits in W);
the gateway turns each version's payloads into them (:mod:`voltlib.gateway.charging_profiles`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from voltlib.store.tables import (
    charging_limits,
    charging_profile_reports,
    charging_profiles,
    composite_schedules,
    installed_charging_profiles,
    transactions,
)

OCPP_ID_OFFSET = 1000  # a stored profile goes out as chargingProfileId id + 1000: 1-999 are smart charging's
installed = installed_charging_profiles


def _insert(conn: Connection) -> Any:
    return sqlite_insert if conn.dialect.name == "sqlite" else pg_insert


def _upsert(conn: Connection, table: Any, keys: list[str], values: dict[str, Any]) -> None:
    statement = _insert(conn)(table).values(**values)
    conn.execute(statement.on_conflict_do_update(
        index_elements=keys, set_={k: statement.excluded[k] for k in values if k not in keys}))


# --- the operator's stored profiles --------------------------------------------------------------

def create_profile(conn: Connection, values: dict[str, Any]) -> dict[str, Any] | None:
    """The new profile, or None when its name is taken."""
    if conn.execute(select(charging_profiles.c.id).where(charging_profiles.c.name == values["name"])).first():
        return None
    new_id = conn.execute(charging_profiles.insert().values(**values).returning(charging_profiles.c.id)).scalar_one()
    return get_profile(conn, int(new_id))


def get_profile(conn: Connection, profile_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(charging_profiles).where(charging_profiles.c.id == profile_id)).mappings().first()
    return None if row is None else with_ocpp_id(dict(row))


def with_ocpp_id(row: dict[str, Any]) -> dict[str, Any]:
    row["charging_profile_id"] = int(row["id"]) + OCPP_ID_OFFSET
    return row


def installed_from(conn: Connection, profile_id: int) -> list[str]:
    """The charge points that hold this stored profile, as far as voltlib knows."""
    query = select(installed.c.charge_point_id).where(installed.c.stored_profile_id == profile_id)
    return sorted(conn.execute(query).scalars())


def delete_profile(conn: Connection, profile_id: int) -> bool:
    return conn.execute(delete(charging_profiles).where(charging_profiles.c.id == profile_id)).rowcount > 0


# --- what each charge point holds ----------------------------------------------------------------

def store_installed(conn: Connection, cp_id: str, rows: Iterable[dict[str, Any]], now: datetime) -> None:
    """Profiles a charge point holds now (keys of ``installed_charging_profiles``): each replaces the
    stored one of its id. A reported profile keeps who installed it (``source``) when voltlib knew it."""
    for row in rows:
        values = {"charge_point_id": cp_id, "updated_at": now, **row}
        if values.get("source") == "station":
            known = conn.execute(select(installed.c.source, installed.c.stored_profile_id).where(
                installed.c.charge_point_id == cp_id,
                installed.c.charging_profile_id == row["charging_profile_id"])).first()
            if known is not None:
                values["source"], values["stored_profile_id"] = known.source, known.stored_profile_id
        _upsert(conn, installed, ["charge_point_id", "charging_profile_id"], values)


def clear_installed(conn: Connection, cp_id: str, *, profile_id: int | None = None, connector_id: int | None = None,
                    purpose: str | None = None, stack_level: int | None = None) -> int:
    """What a ClearChargingProfile removed: the profile of that id, or every one matching all the
    criteria given. External constraints are the station's, never cleared by a central system."""
    where = [installed.c.charge_point_id == cp_id, installed.c.purpose != "ExternalConstraints"]
    if profile_id is not None:
        where.append(installed.c.charging_profile_id == profile_id)
    else:
        if connector_id is not None:
            where.append(installed.c.connector_id == connector_id)
        if purpose is not None:
            where.append(installed.c.purpose == purpose)
        if stack_level is not None:
            where.append(installed.c.stack_level == stack_level)
    return int(conn.execute(delete(installed).where(and_(*where))).rowcount)


def matching_installed(conn: Connection, cp_id: str, *, profile_id: int | None = None,
                       connector_id: int | None = None, purpose: str | None = None,
                       stack_level: int | None = None) -> list[dict[str, Any]]:
    """The rows :func:`clear_installed` would remove (read only)."""
    rows = list_installed(conn, cp_id)
    if profile_id is not None:
        return [r for r in rows if r["charging_profile_id"] == profile_id]
    return [r for r in rows if r["purpose"] != "ExternalConstraints"
            and (connector_id is None or r["connector_id"] == connector_id)
            and (purpose is None or r["purpose"] == purpose)
            and (stack_level is None or r["stack_level"] == stack_level)]


def end_transaction_profiles(conn: Connection, transaction_id: int) -> int:
    """TxProfiles end with their transaction (K01.FR.05 / 1.6 §3.13.2): drop those of its connector."""
    tx = conn.execute(select(transactions.c.charge_point_id, transactions.c.connector_id)
                      .where(transactions.c.id == transaction_id)).first()
    if tx is None:
        return 0
    return int(conn.execute(delete(installed).where(
        installed.c.charge_point_id == tx.charge_point_id, installed.c.connector_id == tx.connector_id,
        installed.c.purpose == "Tx")).rowcount)


def list_installed(conn: Connection, cp_id: str) -> list[dict[str, Any]]:
    query = (select(installed).where(installed.c.charge_point_id == cp_id)
             .order_by(installed.c.connector_id, installed.c.purpose, installed.c.stack_level.desc(),
                       installed.c.charging_profile_id))
    return [dict(r) for r in conn.execute(query).mappings()]


# --- composite schedules -------------------------------------------------------------------------

def store_composite(conn: Connection, cp_id: str, connector_id: int, schedule_start: datetime | None,
                    duration_s: int | None, periods: list[dict[str, Any]], now: datetime) -> None:
    _upsert(conn, composite_schedules, ["charge_point_id", "connector_id"], {
        "charge_point_id": cp_id, "connector_id": connector_id, "schedule_start": schedule_start,
        "duration_s": duration_s, "periods": periods, "read_at": now})


def list_composites(conn: Connection, cp_id: str) -> list[dict[str, Any]]:
    query = (select(composite_schedules).where(composite_schedules.c.charge_point_id == cp_id)
             .order_by(composite_schedules.c.connector_id))
    return [dict(r) for r in conn.execute(query).mappings()]


# --- external limits ------------------------------------------------------------------------------

def store_limit(conn: Connection, cp_id: str, evse_id: int, limit_source: str, grid_critical: bool | None,
                limit_w: float | None, periods: list[dict[str, Any]] | None, schedule_start: datetime | None,
                now: datetime) -> None:
    _upsert(conn, charging_limits, ["charge_point_id", "evse_id", "limit_source"], {
        "charge_point_id": cp_id, "evse_id": evse_id, "limit_source": limit_source, "grid_critical": grid_critical,
        "limit_w": limit_w, "periods": periods, "schedule_start": schedule_start, "received_at": now})


def clear_limit(conn: Connection, cp_id: str, limit_source: str, evse_id: int | None) -> list[int]:
    """ClearedChargingLimit: that source's limit on that EVSE (None: on every EVSE and the station).
    Returns the EVSEs whose limit went."""
    where = [charging_limits.c.charge_point_id == cp_id, charging_limits.c.limit_source == limit_source]
    if evse_id is not None:
        where.append(charging_limits.c.evse_id == evse_id)
    gone = sorted(conn.execute(select(charging_limits.c.evse_id).where(*where)).scalars())
    conn.execute(delete(charging_limits).where(*where))
    return gone


def list_limits(conn: Connection, cp_ids: Iterable[str]) -> list[dict[str, Any]]:
    ids = sorted(set(cp_ids))
    if not ids:
        return []
    query = (select(charging_limits).where(charging_limits.c.charge_point_id.in_(ids))
             .order_by(charging_limits.c.charge_point_id, charging_limits.c.evse_id, charging_limits.c.limit_source))
    return [dict(r) for r in conn.execute(query).mappings()]


# --- GetChargingProfiles requests and their reports ----------------------------------------------

def create_report(conn: Connection, cp_id: str, request_id: int, full: bool, now: datetime) -> None:
    conn.execute(charging_profile_reports.insert().values(
        charge_point_id=cp_id, request_id=request_id, full=full, status="requested", parts=0, profiles=0,
        requested_at=now, updated_at=now))


def get_report(conn: Connection, cp_id: str, request_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(charging_profile_reports).where(
        charging_profile_reports.c.charge_point_id == cp_id,
        charging_profile_reports.c.request_id == request_id)).mappings().first()
    return None if row is None else dict(row)


def report_answered(conn: Connection, cp_id: str, request_id: int, status: str, now: datetime) -> None:
    """The station's answer to GetChargingProfiles (Accepted, NoProfiles; not-sent when it never
    answered). A full request answered NoProfiles: the station holds nothing, forget what we knew."""
    report = get_report(conn, cp_id, request_id)
    if report is None:
        return
    done = report["status"] == "complete"
    conn.execute(update(charging_profile_reports).where(
        charging_profile_reports.c.charge_point_id == cp_id, charging_profile_reports.c.request_id == request_id)
        .values(status=report["status"] if done else status, updated_at=now))
    if status == "NoProfiles" and report["full"]:
        conn.execute(delete(installed).where(installed.c.charge_point_id == cp_id))


def report_part(conn: Connection, cp_id: str, request_id: int, rows: list[dict[str, Any]], tbc: bool,
                now: datetime) -> None:
    """One ReportChargingProfiles part: its profiles stored; the last part (``tbc`` false) of a full
    request completes it, and the profiles no part of it named are gone from the station."""
    store_installed(conn, cp_id, [{**r, "request_id": request_id} for r in rows], now)
    table = charging_profile_reports.c
    where = (table.charge_point_id == cp_id, table.request_id == request_id)
    report = get_report(conn, cp_id, request_id)
    if report is None:  # a report voltlib did not ask for (or asked through a raw command): kept, not reconciled
        _upsert(conn, charging_profile_reports, ["charge_point_id", "request_id"], {
            "charge_point_id": cp_id, "request_id": request_id, "full": False, "status": "Accepted",
            "parts": 0, "profiles": 0, "requested_at": now, "updated_at": now})
        report = {"full": False, "requested_at": now}
    values: dict[str, Any] = {"parts": table.parts + 1, "profiles": table.profiles + len(rows), "updated_at": now}
    if not tbc:
        values["status"] = "complete"
    conn.execute(update(charging_profile_reports).where(*where).values(**values))
    if not tbc and report["full"]:  # what voltlib installed since it asked is not in the report: kept
        conn.execute(delete(installed).where(
            installed.c.charge_point_id == cp_id, installed.c.updated_at < report["requested_at"],
            (installed.c.request_id.is_(None)) | (installed.c.request_id != request_id)))

