"""The quick in-memory replay (issue 19): the same demand as the full simulation, every trip accounted
for, and voltlib's moves carried out by the crews."""

from __future__ import annotations

from voltlib.domain import demand
from voltlib.sim import scenario
from voltlib.sim.quick import QuickDay


def test_quick_replay_accounts_for_every_trip_and_crews_move_cars() -> None:
    crews = scenario.load("crews")
    places = [demand.Place(s.id, s.latitude, s.longitude) for s in crews.snapshot().stations]
    wanted = len(demand.trips(places, crews.start, 6.0, crews.rentals_per_day, crews.seed))
    without = QuickDay(crews, hours=6.0, crews_per_shift=0).run()
    with_crews = QuickDay(crews, hours=6.0).run()
    for result in (without, with_crews):
        assert result.demand == wanted  # one seed, the same trips
        lost = sum(sum(v) for v in result.lost_by_hour.values())
        assert result.served > 0 and result.served + lost <= result.demand  # the rest still on the road
        assert sum(result.lost_at.values()) == sum(result.lost_by_hour["no_car"])
    assert sum(without.moves_by_hour) == 0 and without.crew_km == 0
    assert sum(with_crews.moves_by_hour) >= 1 and with_crews.crew_km > 0
    summary = with_crews.as_dict()
    assert summary["moves"] == sum(with_crews.moves_by_hour)
    assert summary["served_share"] == round(with_crews.served / with_crews.demand, 4)
