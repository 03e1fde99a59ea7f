"""What 2.0.1 stations report of themselves beyond the core (issue 17, blocks N and O): events,
monitors, customer information and display messages. Each write is idempotent: a part sent again
changes nothing (events, customer information) or replaces its own row (monitors, messages).
docs/operations.md, "Station events, monitors, customer information, display messages".
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from voltlib.store.pages import Key, Order, Page, fetch
from voltlib.store.tables import customer_information, device_model, display_messages, station_events, variable_monitors


def _insert(conn: Connection) -> Any:
    return sqlite_insert if conn.dialect.name == "sqlite" else pg_insert


def record_events(conn: Connection, cp_id: str, rows: Iterable[dict[str, Any]], now: datetime) -> list[int]:
    """Store NotifyEvent eventData rows (keys of ``station_events``); one already stored (same
    eventId and timestamp) is skipped. Returns the eventIds stored now."""
    stored = []
    for row in rows:
        result = conn.execute(_insert(conn)(station_events).values(charge_point_id=cp_id, received_at=now, **row)
                              .on_conflict_do_nothing(index_elements=["charge_point_id", "event_id", "at"])
                              .returning(station_events.c.id))
        if result.first() is not None:  # a row back: inserted now (rowcount is not told on every path)
            stored.append(int(row["event_id"]))
    return stored


EVENTS = Order((station_events.c.id,))  # newest first: the table grows for as long as a station reports


def event_page(conn: Connection, cp_id: str, after: Key | None, limit: int) -> Page:
    """A page of the station's events, newest first, after the cursor's key."""
    return fetch(conn, select(station_events).where(station_events.c.charge_point_id == cp_id), EVENTS, after,
                 limit)


def store_monitors(conn: Connection, cp_id: str, request_id: int, rows: Iterable[dict[str, Any]],
                   now: datetime) -> None:
    """A NotifyMonitoringReport part: each monitor replaces the stored one of its id."""
    for row in rows:
        values = {"charge_point_id": cp_id, "request_id": request_id, "updated_at": now, **row}
        statement = _insert(conn)(variable_monitors).values(**values)
        conn.execute(statement.on_conflict_do_update(
            index_elements=["charge_point_id", "monitor_id"],
            set_={k: statement.excluded[k] for k in values if k not in ("charge_point_id", "monitor_id")}))


def clear_monitors(conn: Connection, cp_id: str, monitor_ids: Iterable[int]) -> None:
    ids = list(monitor_ids)
    if ids:
        conn.execute(delete(variable_monitors).where(variable_monitors.c.charge_point_id == cp_id,
                                                     variable_monitors.c.monitor_id.in_(ids)))


def list_monitors(conn: Connection, cp_id: str) -> list[dict[str, Any]]:
    query = (select(variable_monitors).where(variable_monitors.c.charge_point_id == cp_id)
             .order_by(variable_monitors.c.monitor_id))
    return [dict(r) for r in conn.execute(query).mappings()]


def store_customer_information(conn: Connection, cp_id: str, request_id: int, seq_no: int, data: str, tbc: bool,
                               generated_at: datetime, now: datetime) -> bool:
    """One NotifyCustomerInformation part; False when this part was stored already."""
    result = conn.execute(_insert(conn)(customer_information).values(
        charge_point_id=cp_id, request_id=request_id, seq_no=seq_no, data=data, tbc=tbc, generated_at=generated_at,
        received_at=now).on_conflict_do_nothing(index_elements=["charge_point_id", "request_id", "seq_no"])
        .returning(customer_information.c.id))
    return result.first() is not None


def read_customer_information(conn: Connection, cp_id: str, request_id: int) -> list[dict[str, Any]]:
    query = (select(customer_information).where(customer_information.c.charge_point_id == cp_id,
                                                customer_information.c.request_id == request_id)
             .order_by(customer_information.c.seq_no))
    return [dict(r) for r in conn.execute(query).mappings()]


def store_display_messages(conn: Connection, cp_id: str, rows: Iterable[dict[str, Any]], source: str,
                           now: datetime) -> None:
    """Messages set by voltlib (``source`` set) or reported by the station (report): each replaces
    the stored message of its id (2.0.1: a SetDisplayMessage with a known id replaces it)."""
    for row in rows:
        values = {"charge_point_id": cp_id, "source": source, "updated_at": now, **row}
        statement = _insert(conn)(display_messages).values(**values)
        conn.execute(statement.on_conflict_do_update(
            index_elements=["charge_point_id", "message_id"],
            set_={k: statement.excluded[k] for k in values if k not in ("charge_point_id", "message_id")}))


def clear_display_message(conn: Connection, cp_id: str, message_id: int) -> None:
    conn.execute(delete(display_messages).where(display_messages.c.charge_point_id == cp_id,
                                                display_messages.c.message_id == message_id))


def list_display_messages(conn: Connection, cp_id: str) -> list[dict[str, Any]]:
    query = (select(display_messages).where(display_messages.c.charge_point_id == cp_id)
             .order_by(display_messages.c.message_id))
    return [dict(r) for r in conn.execute(query).mappings()]


DISPLAY_CONTROLLER = "DisplayMessageCtrlr"
DISPLAY_FLAGS = ("Available", "Enabled")


def display_capable(conn: Connection, cp_id: str) -> bool:
    """Does the stored device model say the station has display messages (``DisplayMessageCtrlr``
    Available or Enabled, Actual value true)?"""
    query = select(device_model.c.value).where(
        device_model.c.charge_point_id == cp_id, device_model.c.component == DISPLAY_CONTROLLER,
        device_model.c.variable.in_(DISPLAY_FLAGS), device_model.c.attribute_type == "Actual")
    return any((value or "").strip().lower() == "true" for value in conn.execute(query).scalars())
