"""The operator API's lists, each a keyset page (:mod:`voltlib.store.pages`) in a stable order that
ends in a unique column: what a client pages through is never reshuffled by new rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, Select, func, select

from voltlib.domain import meter
from voltlib.store.pages import Key, Order, Page, fetch
from voltlib.store.repo import SECRETS
from voltlib.store.tables import (
    audit_log,
    charge_points,
    commands,
    connector_status_history,
    id_tags,
    invoices,
    members,
    meter_values,
    ocpp_messages,
    quarantines,
    rentals,
    security_alerts,
    security_events,
    security_incidents,
    stations,
    transactions,
    vehicles,
    work_orders,
)

TRANSACTIONS = Order((transactions.c.started_at, transactions.c.id))  # newest first
METER_VALUES = Order((meter_values.c.sampled_at, meter_values.c.id))
MESSAGES = Order((ocpp_messages.c.id,))
COMMANDS = Order((commands.c.id,))
STATUS_HISTORY = Order((connector_status_history.c.status_at, connector_status_history.c.id))
SECURITY_EVENTS = Order((security_events.c.id,))
CHARGE_POINTS = Order((charge_points.c.id,), descending=False)
ID_TAGS = Order((id_tags.c.id_tag,), descending=False)
ALERTS = Order((security_alerts.c.id,))
AUDIT = Order((audit_log.c.seq,))
INCIDENTS = Order((security_incidents.c.id,))
WORK_ORDERS = Order((work_orders.c.id,))
QUARANTINES = Order((quarantines.c.id,))
RENTALS = Order((rentals.c.created_at, rentals.c.id))
INVOICES = Order((invoices.c.issued_at, invoices.c.id))
MEMBERS = Order((members.c.created_at, members.c.id), descending=False)  # in order of sign-up
VEHICLES = Order((vehicles.c.id,), descending=False)
STATIONS = Order((stations.c.id,), descending=False)
# ?near=: nearest first; the distance is computed per request (sharing.store.distance_m), not stored
NEAREST = Order((Column("distance_m", BigInteger), stations.c.id), descending=False)


@dataclass(frozen=True)
class TransactionFilter:
    """Which transactions: every given condition holds. ``since``/``until``: started in [since, until)."""

    charge_point: str | None = None
    id_tag: str | None = None
    open: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    stop_reason: str | None = None  # as the charge point sent it (Local, Remote, EVDisconnected, ...)


def transaction_page(conn: Connection, where: TransactionFilter, after: Key | None, limit: int) -> Page:
    t = transactions.c
    query = select(transactions)
    if where.charge_point is not None:
        query = query.where(t.charge_point_id == where.charge_point)
    if where.id_tag is not None:
        query = query.where(t.id_tag == where.id_tag)
    if where.open is not None:
        query = query.where(t.stopped_at.is_(None) if where.open else t.stopped_at.is_not(None))
    if where.since is not None:
        query = query.where(t.started_at >= where.since)
    if where.until is not None:
        query = query.where(t.started_at < where.until)
    if where.stop_reason is not None:
        query = query.where(t.stop_reason == where.stop_reason)
    return fetch(conn, query, TRANSACTIONS, after, limit)


def meter_value_page(conn: Connection, cp_id: str, transaction_id: int | None, after: Key | None,
                     limit: int) -> Page:
    query = select(meter_values).where(meter_values.c.charge_point_id == cp_id)
    if transaction_id is not None:
        query = query.where(meter_values.c.transaction_id == transaction_id)
    page = fetch(conn, query, METER_VALUES, after, limit)
    return Page([{"connector_id": r["connector_id"], "transaction_id": r["transaction_id"] or None,
                  "timestamp": r["sampled_at"], "sampled_value": meter.unpack(r["samples"])} for r in page.rows],
                page.next)


def _where(query: Select[Any], **conditions: Any) -> Select[Any]:
    """``query`` with column == value for each condition whose value is not None."""
    table = query.selected_columns
    for name, value in conditions.items():
        if value is not None:
            query = query.where(table[name] == value)
    return query


def message_page(conn: Connection, cp_id: str, after: Key | None, limit: int) -> Page:
    return fetch(conn, _where(select(ocpp_messages), charge_point_id=cp_id), MESSAGES, after, limit)


def command_page(conn: Connection, cp_id: str, after: Key | None, limit: int) -> Page:
    return fetch(conn, _where(select(commands), charge_point_id=cp_id), COMMANDS, after, limit)


def status_history_page(conn: Connection, cp_id: str, after: Key | None, limit: int) -> Page:
    return fetch(conn, _where(select(connector_status_history), charge_point_id=cp_id), STATUS_HISTORY, after,
                 limit)


def security_event_page(conn: Connection, after: Key | None, limit: int) -> Page:
    return fetch(conn, select(security_events), SECURITY_EVENTS, after, limit)


def charge_point_page(conn: Connection, after: Key | None, limit: int) -> Page:
    page = fetch(conn, select(charge_points), CHARGE_POINTS, after, limit)
    return Page([{k: v for k, v in row.items() if k not in SECRETS} for row in page.rows], page.next)


def id_tag_page(conn: Connection, after: Key | None, limit: int) -> Page:
    return fetch(conn, select(id_tags), ID_TAGS, after, limit)


def alert_page(conn: Connection, cp_id: str | None, expected: bool | None, after: Key | None, limit: int) -> Page:
    return fetch(conn, _where(select(security_alerts), charge_point_id=cp_id, expected=expected), ALERTS, after,
                 limit)


def audit_page(conn: Connection, action: str | None, after: Key | None, limit: int) -> Page:
    return fetch(conn, _where(select(audit_log), action=action or None), AUDIT, after, limit)


def incident_page(conn: Connection, state: str | None, after: Key | None, limit: int) -> Page:
    return fetch(conn, _where(select(security_incidents), state=state), INCIDENTS, after, limit)


def work_order_page(conn: Connection, technician: str | None, after: Key | None, limit: int) -> Page:
    return fetch(conn, _where(select(work_orders), technician=technician), WORK_ORDERS, after, limit)


def quarantine_page(conn: Connection, active_only: bool, after: Key | None, limit: int) -> Page:
    query = select(quarantines)
    if active_only:
        query = query.where(quarantines.c.released_at.is_(None))
    return fetch(conn, query, QUARANTINES, after, limit)


def rental_page(conn: Connection, member_id: str | None, after: Key | None, limit: int) -> Page:
    """Rentals as their stored domain data (:mod:`voltlib.sharing.codec`), newest first."""
    query = _where(select(rentals.c.data, rentals.c.created_at, rentals.c.id, rentals.c.member_id),
                   member_id=member_id)
    page = fetch(conn, query, RENTALS, after, limit)
    return Page([row["data"] for row in page.rows], page.next)


def invoice_page(conn: Connection, member_id: str | None, month: tuple[datetime, datetime] | None,
                 after: Key | None, limit: int) -> tuple[Page, list[tuple[str, int]]]:
    """A page of invoices and, over every invoice the filter selects (not the page's only), the
    total per currency: (currency, minor units)."""
    conditions = [] if member_id is None else [invoices.c.member_id == member_id]
    if month is not None:
        conditions += [invoices.c.issued_at >= month[0], invoices.c.issued_at < month[1]]
    query = select(invoices).where(*conditions)
    totals = (select(invoices.c.currency, func.sum(invoices.c.total_minor)).where(*conditions)
              .group_by(invoices.c.currency).order_by(invoices.c.currency))
    sums = [(str(currency), int(total)) for currency, total in conn.execute(totals)]
    return fetch(conn, query, INVOICES, after, limit), sums


def member_page(conn: Connection, after: Key | None, limit: int) -> Page:
    return fetch(conn, select(members), MEMBERS, after, limit)


def vehicle_page(conn: Connection, city: str | None, after: Key | None, limit: int) -> Page:
    return fetch(conn, _where(select(vehicles), city=city), VEHICLES, after, limit)
