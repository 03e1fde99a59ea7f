"""Car-sharing data: the packaged cities and snapshot, the Autolib' importer, the rental codec."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from voltlib.domain import rental as dr
from voltlib.domain.pricing import PARIS_2011
from voltlib.sharing.cities import builtin_cities, paris_snapshot
from voltlib.sharing.codec import rental_from_dict, rental_to_dict
from voltlib.sharing.importer import CHARGE_POINT_ID_MAX, bay_charge_point, parse_snapshot

# ../shared beside the checkout; a git worktree (e.g. under wt/) finds it further up
_ROOT = next((p / "shared" for p in Path(__file__).resolve().parents if (p / "shared" / "data").is_dir()),
             Path("../shared"))
SHARED = _ROOT / "data" / "autolib" / "stations-2018-05-18.csv"


def test_builtin_cities_are_data() -> None:
    cities = builtin_cities()
    assert set(cities) == {"paris", "lyon", "bordeaux"}
    paris = cities["paris"]
    assert paris.policy.car_hold == timedelta(minutes=30) and paris.policy.bay_hold == timedelta(minutes=90)
    assert paris.plans == PARIS_2011


def test_packaged_snapshot_is_the_shared_one_and_parses_whole() -> None:
    text = paris_snapshot()
    assert text == SHARED.read_text(encoding="utf-8")
    snapshot = parse_snapshot(text)
    assert len(snapshot.stations) == 1119 and snapshot.skipped == []
    assert sum(s.cars for s in snapshot.stations) == len(snapshot.cars)
    assert all(s.bays >= s.cars and s.bays >= 1 for s in snapshot.stations)
    ids = [bay_charge_point(s.id, n) for s in snapshot.stations for n in range(1, s.bays + 1)]
    assert len(ids) == len(set(ids)) and max(map(len, ids)) <= CHARGE_POINT_ID_MAX
    assert len({c.id_tag for c in snapshot.cars}) == len(snapshot.cars)
    assert parse_snapshot(text).cars == snapshot.cars  # deterministic


def test_bad_rows_are_reported_not_imported() -> None:
    header = SHARED.read_text(encoding="utf-8").splitlines()[0]
    bad = "x;1;1;0;0;0;operational;Paris;;st-x;STATION;not a point;75001;X;operational;;1;station;ok;x"
    snapshot = parse_snapshot(f"{header}\n{bad}\n")
    assert snapshot.stations == [] and "line 2" in snapshot.skipped[0]


def test_rental_codec_round_trip_through_a_whole_rental() -> None:
    t0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    policy = dr.RentalPolicy()
    r = dr.Rental("r1", "m1", "BADGE", "car1", "CAR1", dr.Dock("cp-a", 1), PARIS_2011["premium"])
    for event in (dr.ReserveCar("e1", t0, 7), dr.ReserveBay("e2", t0, 8, dr.Dock("cp-b", 1)), dr.Badged("e3", t0),
                  dr.CarUnplugged("e4", t0 + timedelta(minutes=1)),
                  dr.CarReturned("e5", t0 + timedelta(minutes=40), dr.Dock("cp-b", 1), "CAR1", 99),
                  dr.Close("e6", t0 + timedelta(minutes=41))):
        r, _ = dr.apply(r, event, policy)
        assert rental_from_dict(rental_to_dict(r)) == r
    assert r.state is dr.State.CLOSED and r.charged is not None and r.charged.total.minor == 900
