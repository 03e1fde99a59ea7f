"""The domain :class:`~voltlib.domain.rental.Rental` to and from JSON-ready dicts, for the ``rentals.data``
column. The plan travels with the rental (``Plan.to_dict``): a rental is priced with the plan in force
when it was created, whatever the city's plans become."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from voltlib.domain.money import Money
from voltlib.domain.pricing import Plan, PriceBreakdown, PriceLine
from voltlib.domain.rental import Dock, Hold, Rental, SocSnapshot, State


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _dock(d: Dock | None) -> list[Any] | None:
    return None if d is None else [d.charge_point_id, d.connector_id]


def _undock(v: list[Any] | None) -> Dock | None:
    return None if v is None else Dock(str(v[0]), int(v[1]))


def _hold(h: Hold | None) -> dict[str, Any] | None:
    return None if h is None else {"reservation_id": h.reservation_id, "dock": _dock(h.dock),
                                   "expires_at": h.expires_at.isoformat()}


def _unhold(v: dict[str, Any] | None) -> Hold | None:
    if v is None:
        return None
    dock = _undock(v["dock"])
    assert dock is not None
    return Hold(int(v["reservation_id"]), dock, datetime.fromisoformat(v["expires_at"]))


def soc_to_dict(s: SocSnapshot | None) -> dict[str, Any] | None:
    return None if s is None else {"soc_percent": s.percent, "source": s.source, "at": s.at.isoformat()}


def _soc(v: dict[str, Any] | None) -> SocSnapshot | None:
    return None if v is None else SocSnapshot(float(v["soc_percent"]), str(v["source"]),
                                              datetime.fromisoformat(v["at"]))


def breakdown_to_dict(b: PriceBreakdown) -> dict[str, Any]:
    return {"plan_code": b.plan_code, "started_at": b.started_at.isoformat(), "ended_at": b.ended_at.isoformat(),
            "billed_minutes": b.billed_minutes, "currency": b.currency, "total_minor": b.total.minor,
            "total": str(b.total.amount()),
            "lines": [{"label": x.label, "quantity": x.quantity, "unit": x.unit, "unit_price_minor": x.unit_price.minor,
                       "amount_minor": x.amount.minor, "per": x.per} for x in b.lines]}


def breakdown_from_dict(v: dict[str, Any]) -> PriceBreakdown:
    cur = v["currency"]
    lines = tuple(PriceLine(x["label"], x["quantity"], x["unit"], Money(x["unit_price_minor"], cur),
                            Money(x["amount_minor"], cur), x["per"]) for x in v["lines"])
    return PriceBreakdown(v["plan_code"], datetime.fromisoformat(v["started_at"]),
                          datetime.fromisoformat(v["ended_at"]), v["billed_minutes"], lines,
                          Money(v["total_minor"], cur))


# Every load and save of a rental converts its plan; a city has a handful of plans, so each is
# converted once (the cached dicts are only serialised, never changed). Bounded, in case plans
# are edited often.
_PLANS_MAX = 256
_plans_from: dict[str, Plan] = {}
_plans_to: dict[int, tuple[Plan, dict[str, Any]]] = {}


def _plan_from_dict(v: dict[str, Any]) -> Plan:
    key = repr(v)
    plan = _plans_from.get(key)
    if plan is None:
        if len(_plans_from) >= _PLANS_MAX:
            _plans_from.clear()
        plan = _plans_from[key] = Plan.from_dict(v)
    return plan


def _plan_to_dict(plan: Plan) -> dict[str, Any]:
    found = _plans_to.get(id(plan))
    if found is not None and found[0] is plan:
        return found[1]
    if len(_plans_to) >= _PLANS_MAX:
        _plans_to.clear()
    data = plan.to_dict()
    _plans_to[id(plan)] = (plan, data)
    return data


def rental_to_dict(r: Rental) -> dict[str, Any]:
    return {
        "rental_id": r.rental_id, "member_id": r.member_id, "member_id_tag": r.member_id_tag, "car_id": r.car_id,
        "car_id_tag": r.car_id_tag, "origin": _dock(r.origin), "plan": _plan_to_dict(r.plan), "state": r.state.value,
        "car_hold": _hold(r.car_hold), "bay_hold": _hold(r.bay_hold), "reserved_at": _ts(r.reserved_at),
        "badged_at": _ts(r.badged_at), "started_at": _ts(r.started_at), "returned_at": _ts(r.returned_at),
        "return_dock": _dock(r.return_dock), "ended_at": _ts(r.ended_at),
        "charged": None if r.charged is None else breakdown_to_dict(r.charged), "seen": sorted(r.seen),
        "departure_soc": soc_to_dict(r.departure_soc), "return_soc": soc_to_dict(r.return_soc),
        "return_transaction_id": r.return_transaction_id,
    }


def rental_from_dict(v: dict[str, Any]) -> Rental:
    origin = _undock(v["origin"])
    assert origin is not None
    return Rental(
        rental_id=v["rental_id"], member_id=v["member_id"], member_id_tag=v["member_id_tag"], car_id=v["car_id"],
        car_id_tag=v["car_id_tag"], origin=origin, plan=_plan_from_dict(v["plan"]), state=State(v["state"]),
        car_hold=_unhold(v["car_hold"]), bay_hold=_unhold(v["bay_hold"]), reserved_at=_dt(v["reserved_at"]),
        badged_at=_dt(v["badged_at"]), started_at=_dt(v["started_at"]), returned_at=_dt(v["returned_at"]),
        return_dock=_undock(v["return_dock"]), ended_at=_dt(v["ended_at"]),
        charged=None if v["charged"] is None else breakdown_from_dict(v["charged"]), seen=frozenset(v["seen"]),
        # absent from rentals stored before energy accounting per rental
        departure_soc=_soc(v.get("departure_soc")), return_soc=_soc(v.get("return_soc")),
        return_transaction_id=v.get("return_transaction_id"),
    )
