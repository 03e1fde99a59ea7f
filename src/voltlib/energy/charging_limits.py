"""External charging limits in the plan (issue 17 K11-K13): a limit an EMS or the grid operator set
on a 2.0.1 station (NotifyChargingLimit) caps what smart charging plans there until the station
says it is cleared (ClearedChargingLimit). Pure: the limits come in as rows, the plan goes out.

A limit on an EVSE caps that dock; a limit on the station (EVSE 0) caps the sum of its docks. When
several sources limit the same place the lowest wins. The power a capped charge point cannot take
goes to the station's other sessions (:func:`share_within`), never over the station's own limit.
docs/energy.md, "External limits".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

Place = tuple[str, int]  # (charge point, EVSE); EVSE 0: the whole charge point


def limit_at(periods: list[dict[str, Any]], start: datetime, at: datetime) -> float | None:
    """The limit (W) of a schedule in force at ``at``; before it starts, its first period's."""
    elapsed = (at - start).total_seconds()
    current = [p for p in periods if p["start_s"] <= elapsed]
    chosen = current[-1] if current else (periods[0] if periods else None)
    return None if chosen is None else float(chosen["limit_w"])


def caps_in_force(rows: Iterable[Mapping[str, Any]], at: datetime | None) -> dict[Place, float]:
    """The lowest limit of every source at each place, at ``at`` (None: as notified). A limit whose
    value the station did not tell caps nothing: voltlib cannot plan under a number it lacks."""
    caps: dict[Place, float] = {}
    for row in rows:
        value = row["limit_w"]
        if at is not None and row.get("periods") and row.get("schedule_start") is not None:
            value = limit_at(row["periods"], row["schedule_start"], at)
        if value is None:
            continue
        place = (str(row["charge_point_id"]), int(row["evse_id"]))
        caps[place] = min(caps.get(place, math.inf), max(0.0, float(value)))
    return caps


def dock_cap(caps: Mapping[Place, float], cp_id: str, connector_id: int) -> float:
    """What one dock may draw at most: its EVSE's limit, and its charge point's."""
    return min(caps.get((cp_id, connector_id), math.inf), caps.get((cp_id, 0), math.inf))


Dock = tuple[str, int]


def share_within(caps: Mapping[Place, float], allocate: Callable[[Mapping[Dock, float]], dict[Dock, int]],
                 docks: Mapping[Dock, float]) -> dict[Dock, int]:
    """Allocate with each dock's maximum (``docks``: dock -> W) lowered to its caps, then, while a
    charge point's docks together exceed its station-wide cap, lower their maxima to their share of
    it and allocate again, so the others can take what it gives up. Ends: each round lowers a
    charge point that was over, and one that is not over is never raised over again."""
    maxima = {dock: min(rated, dock_cap(caps, *dock)) for dock, rated in docks.items()}
    plan = allocate(maxima)
    for _ in range(len({cp for cp, _ in docks}) + 1):
        over = {cp: cap for (cp, evse), cap in caps.items() if evse == 0
                and sum(w for (c, _), w in plan.items() if c == cp) > cap}
        if not over:
            return plan
        for cp, cap in over.items():
            mine = {d: w for d, w in plan.items() if d[0] == cp}
            total = sum(mine.values())
            for dock, watts in mine.items():
                maxima[dock] = math.floor(cap * watts / total)
        plan = allocate(maxima)
    return {dock: min(watts, math.floor(dock_cap(caps, *dock))) for dock, watts in plan.items()}
