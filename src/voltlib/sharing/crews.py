"""Field crews at the charge point (issue 19): a crew badge takes a car only for its field task, and
that car's departure and arrival are authorised work, in the audit log, not a rental nor an alert.

Also the field tasks' row codec (shared with :mod:`voltlib.sharing.rebalancing`). Plain functions
over a Connection, run inside car sharing's badge, unplug and return operations; the rules are in
:mod:`voltlib.domain.rebalancing` ("crews at the charge point"). docs/car-sharing.md, "Field crews".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from voltlib.domain import rebalancing as rb
from voltlib.domain.idtags import Decision
from voltlib.security import audit
from voltlib.store.tables import bays, field_tasks, id_tags, rentals, vehicles

RELOCATING = "relocating"  # a car's status while a crew drives it (not rented, not missing)


def crew_badge(conn: Connection, cp_id: str, id_tag: str, now: datetime) -> Decision | None:
    """A badge at ``cp_id``: None when it is not a crew badge (members and the id-tag table decide);
    Accepted when a car docked there has a live task assigned to it at this station (the badge goes
    into the task's history); refused otherwise: a crew badge opens no other car. Audited."""
    found = conn.execute(select(id_tags.c.status, id_tags.c.parent_id_tag).where(id_tags.c.id_tag == id_tag)).first()
    if found is None or found.parent_id_tag != rb.CREW_GROUP:
        return None
    station = conn.execute(select(bays.c.station_id).where(bays.c.charge_point_id == cp_id)).scalar()
    reason: str | None = "badge_" + str(found.status).lower()
    detail: dict[str, Any] = {"charge_point_id": cp_id, "badge": id_tag}
    if found.status == "Accepted":
        reason = "no_car_here"
        cars = conn.execute(select(vehicles.c.id).where(vehicles.c.charge_point_id == cp_id,
                                                        vehicles.c.status == "docked")).scalars().all()
        held = set(conn.execute(select(rentals.c.active_car).where(rentals.c.active_car.in_(cars))).scalars())
        for car_id in cars:
            if car_id in held:  # a member's reservation or badge: the car is theirs
                reason, detail["car_id"] = "car_held", car_id
                continue
            live = live_task_of_car(conn, car_id)
            reason = rb.crew_badge_decision(live[1] if live else None, id_tag, station)
            detail["car_id"] = car_id
            if reason is None and live is not None:
                task_id, task = live
                save_task(conn, task_id, rb.badged(task, id_tag, cp_id, now), now)
                audit.append(conn, actor=f"crew:{id_tag}", action="rebalancing.crew.badge", target=str(task_id),
                             detail=detail, now=now)
                return Decision("Accepted", parent_id_tag=rb.CREW_GROUP)
    audit.append(conn, actor=f"crew:{id_tag}", action="rebalancing.crew.badge_refused", target=cp_id,
                 detail={**detail, "reason": reason}, now=now)
    return Decision("Invalid" if found.status == "Accepted" else str(found.status))


def crew_departure(conn: Connection, car_id: str, cp_id: str, at: datetime, now: datetime) -> bool:
    """A car left ``cp_id`` with no rental: True (and audited) when it is its task's crew taking it
    (:func:`voltlib.domain.rebalancing.crew_departure`); the caller then marks it relocating."""
    live = latest_task_of_car(conn, car_id)
    if live is None or not rb.crew_departure(live[1], cp_id, at):
        return False
    audit.append(conn, actor=f"crew:{live[1].crew_badge}", action="rebalancing.crew.departure", target=str(live[0]),
                 detail={"car_id": car_id, "charge_point_id": cp_id, "left_at": at.isoformat(),
                         "to_station": live[1].to_station}, now=now)
    return True


def crew_arrival(conn: Connection, car: dict[str, Any], cp_id: str, connector_id: int, now: datetime) -> None:
    """A car plugged in with no rental of its own: when a crew was driving it, the arrival is
    audited against its task (the crew completes the task through the API)."""
    live = latest_task_of_car(conn, str(car["id"]))
    if live is None or live[1].state is rb.TaskState.CANCELLED or any(
            step.action == "arrival" for step in live[1].history) or not any(
            step.action == "badge" for step in live[1].history):
        return  # no task, or its crew has not taken the car (a charging session starting again)
    station = conn.execute(select(bays.c.station_id).where(bays.c.charge_point_id == cp_id,
                                                           bays.c.connector_id == connector_id)).scalar()
    task_id, task = live
    save_task(conn, task_id, rb.arrived(task, cp_id, now), now)  # once: a later session is no arrival
    audit.append(conn, actor=f"crew:{task.crew_badge}", action="rebalancing.crew.arrival", target=str(task_id),
                 detail={"car_id": car["id"], "charge_point_id": cp_id, "station_id": station,
                         "as_planned": station == task.to_station}, now=now)


def step_json(step: rb.TaskStep) -> dict[str, Any]:
    out = {"action": step.action, "state": step.state.value, "by": step.by, "at": step.at.isoformat(),
           "assignee": step.assignee, "note": step.note}
    return out if step.badge is None else {**out, "badge": step.badge}


def task_of_row(row: Any) -> rb.FieldTask:
    history = tuple(rb.TaskStep(h["action"], rb.TaskState(h["state"]), h["by"], datetime.fromisoformat(h["at"]),
                                h.get("assignee"), h.get("note"), h.get("badge")) for h in row["history"])
    return rb.FieldTask(row["car_id"], row["from_station"], row["to_station"], rb.TaskState(row["state"]),
                        row["assignee"], history)


def task_values(task: rb.FieldTask, now: datetime) -> dict[str, Any]:
    return {"state": task.state.value, "assignee": task.assignee, "history": [step_json(s) for s in task.history],
            "active_car": task.car_id if task.live else None, "updated_at": now}




def is_crew_badge(conn: Connection, id_tag: str) -> bool:
    found = conn.execute(select(id_tags.c.status, id_tags.c.parent_id_tag).where(id_tags.c.id_tag == id_tag)).first()
    return found is not None and found.status == "Accepted" and found.parent_id_tag == rb.CREW_GROUP


def live_task_of_car(conn: Connection, car_id: str) -> tuple[int, rb.FieldTask] | None:
    row = conn.execute(select(field_tasks).where(field_tasks.c.active_car == car_id)).mappings().first()
    return None if row is None else (int(row["id"]), task_of_row(row))


def latest_task_of_car(conn: Connection, car_id: str) -> tuple[int, rb.FieldTask] | None:
    """The car's newest task, live or not: a departure or arrival voltlib hears of late may belong
    to a task its crew has completed meanwhile."""
    row = conn.execute(select(field_tasks).where(field_tasks.c.car_id == car_id)
                       .order_by(field_tasks.c.id.desc()).limit(1)).mappings().first()
    return None if row is None else (int(row["id"]), task_of_row(row))


def save_task(conn: Connection, task_id: int, task: rb.FieldTask, now: datetime) -> None:
    conn.execute(update(field_tasks).where(field_tasks.c.id == task_id).values(**task_values(task, now)))
