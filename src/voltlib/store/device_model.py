"""The OCPP 2.0.1 device model of each charge point, as its reports and answers told it (issue 16).

One row per component (with its instance and EVSE / connector), variable (with its instance) and
attribute type. NotifyReport parts fill whole rows (:func:`store_report`); GetVariables and
SetVariables answers change values only (:func:`record_values`). docs/operations.md, "Device model".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from voltlib.store.pages import Key as PageKey
from voltlib.store.pages import Order, Page, fetch
from voltlib.store.tables import commands, device_model

KEY_COLUMNS = ("component", "component_instance", "evse_id", "connector_id", "variable", "variable_instance",
               "attribute_type")
FULL_INVENTORY = "FullInventory"
REPORT_LOOKBACK = 200  # commands of a charge point searched for the GetBaseReport a report answers


@dataclass(frozen=True, slots=True)
class Key:
    """Where a value lives: "" and 0 stand for an absent instance, EVSE or connector."""

    component: str
    variable: str
    attribute_type: str = "Actual"
    component_instance: str = ""
    evse_id: int = 0
    connector_id: int = 0
    variable_instance: str = ""

    def columns(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in KEY_COLUMNS}


@dataclass(frozen=True, slots=True)
class Reported:
    """One attribute of a NotifyReport, with its variable's characteristics (None when not sent)."""

    key: Key
    value: str | None
    mutability: str | None
    constant: bool | None
    persistent: bool | None
    characteristics: dict[str, Any] | None  # data_type, unit, min_limit, max_limit, values_list, supports_monitoring


CHARACTERISTICS = ("data_type", "unit", "min_limit", "max_limit", "values_list", "supports_monitoring")


def _insert(conn: Connection) -> Any:
    return sqlite_insert if conn.dialect.name == "sqlite" else pg_insert


def _upsert(conn: Connection, row: dict[str, Any], changed: Sequence[str]) -> None:
    statement = _insert(conn)(device_model).values(**row)
    conn.execute(statement.on_conflict_do_update(
        index_elements=["charge_point_id", *KEY_COLUMNS], set_={name: statement.excluded[name] for name in changed}))


def store_report(conn: Connection, cp_id: str, request_id: int, rows: Iterable[Reported], *, last: bool,
                 now: datetime) -> int:
    """Store one NotifyReport part. Each row replaces what the model held for its key (an earlier
    report, or a part sent again). On the last part of a FullInventory report voltlib asked for,
    rows no report of that request listed are dropped: the station no longer has them. Returns the
    number of rows dropped."""
    unique = {r.key: r for r in rows}  # a key twice in one part: the last wins (one upsert per key)
    for r in unique.values():
        chars = r.characteristics or {}
        row = {"charge_point_id": cp_id, **r.key.columns(), "value": r.value, "mutability": r.mutability,
               "constant": r.constant, "persistent": r.persistent, "source": "report", "request_id": request_id,
               "updated_at": now, **{name: chars.get(name) for name in CHARACTERISTICS}}
        _upsert(conn, row, [n for n in row if n not in ("charge_point_id", *KEY_COLUMNS)])
    if not last or not _asked_full_inventory(conn, cp_id, request_id):
        return 0
    stale = device_model.c.request_id.is_(None) | (device_model.c.request_id != request_id)
    return conn.execute(delete(device_model).where(device_model.c.charge_point_id == cp_id, stale)).rowcount


def _asked_full_inventory(conn: Connection, cp_id: str, request_id: int) -> bool:
    """Whether one of the charge point's recent GetBaseReport commands asked this request for everything."""
    found = conn.execute(select(commands.c.request).where(
        commands.c.charge_point_id == cp_id, commands.c.action == "GetBaseReport")
        .order_by(commands.c.id.desc()).limit(REPORT_LOOKBACK)).scalars()
    return any(isinstance(r, dict) and r.get("requestId") == request_id and r.get("reportBase") == FULL_INVENTORY
               for r in found)


def record_values(conn: Connection, cp_id: str, values: Iterable[tuple[Key, str]], *, source: str,
                  now: datetime) -> None:
    """Values a charge point confirmed (GetVariables read them, SetVariables accepted them): the
    value changes, what a report said about the variable stays."""
    for key, value in {k: v for k, v in values}.items():
        row = {"charge_point_id": cp_id, **key.columns(), "value": value, "source": source, "updated_at": now}
        _upsert(conn, row, ["value", "source", "updated_at"])


ORDER = Order((device_model.c.id,), descending=False)  # as first stored: a report's order


def read_model(conn: Connection, cp_id: str, *, component: str | None = None, variable: str | None = None,
               evse_id: int | None = None, after: PageKey | None = None, limit: int) -> Page:
    """A page of the model in storage order (``after``: the key of the previous page's last row)."""
    query = select(device_model).where(device_model.c.charge_point_id == cp_id)
    if component is not None:
        query = query.where(device_model.c.component == component)
    if variable is not None:
        query = query.where(device_model.c.variable == variable)
    if evse_id is not None:
        query = query.where(device_model.c.evse_id == evse_id)
    page = fetch(conn, query, ORDER, after, limit)
    return Page([_shown(r) for r in page.rows], page.next)


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the API shows it: absent instances, EVSE and connector as null, characteristics grouped."""
    chars = {name: row.pop(name) for name in CHARACTERISTICS}
    row.pop("charge_point_id")
    for name in ("component_instance", "variable_instance"):
        row[name] = row[name] or None
    for name in ("evse_id", "connector_id"):
        row[name] = row[name] or None
    row["characteristics"] = None if all(v is None for v in chars.values()) else chars
    return row

