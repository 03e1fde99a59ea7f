"""Car-sharing data: the packaged cities and snapshot, the Autolib' importer, the rental codec."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from importlib import resources

from voltlib.domain import rental as dr
from voltlib.domain.pricing import PARIS_2011
from voltlib.sharing.cities import builtin_cities, paris_snapshot
from voltlib.sharing.codec import rental_from_dict, rental_to_dict
from voltlib.sharing.importer import CHARGE_POINT_ID_MAX, bay_charge_point, parse_snapshot

DATA = resources.files("voltlib.sharing.data")
# the Ville de Paris export of 2018-05-18, unchanged (voltlib/sharing/data/README.md)
SNAPSHOT_SHA256 = "7089ab47d0ba64c73939d30aacac289fcf195edbb283d499c4abaa56ee695329"


def test_builtin_cities_are_data() -> None:
    cities = builtin_cities()
    assert set(cities) == {"paris", "lyon", "bordeaux"}
    paris = cities["paris"]
    assert paris.policy.car_hold == timedelta(minutes=30) and paris.policy.bay_hold == timedelta(minutes=90)
    assert paris.plans == PARIS_2011


def test_packaged_snapshot_is_the_paris_export_and_parses_whole() -> None:
    text = paris_snapshot()
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == SNAPSHOT_SHA256
    snapshot = parse_snapshot(text)
    assert len(snapshot.stations) == 1119 and snapshot.skipped == []
    assert all(48.70 <= s.latitude <= 48.98 and 2.07 <= s.longitude <= 2.58 for s in snapshot.stations)
    assert sum(s.postal_code.startswith("75") for s in snapshot.stations) == 611
    assert sum(s.cars for s in snapshot.stations) == len(snapshot.cars)
    assert all(s.bays >= s.cars and s.bays >= 1 for s in snapshot.stations)
    ids = [bay_charge_point(s.id, n) for s in snapshot.stations for n in range(1, s.bays + 1)]
    assert len(ids) == len(set(ids)) and max(map(len, ids)) <= CHARGE_POINT_ID_MAX
    assert len({c.id_tag for c in snapshot.cars}) == len(snapshot.cars)
    assert parse_snapshot(text).cars == snapshot.cars  # deterministic


def test_packaged_data_names_its_source_and_licence() -> None:
    readme = DATA.joinpath("README.md").read_text(encoding="utf-8")
    for words in ("paris-stations-2018-05-18.csv", "Open Database License (ODbL)", "Ville de Paris", SNAPSHOT_SHA256):
        assert words in readme


def test_bad_rows_are_reported_not_imported() -> None:
    header = paris_snapshot().splitlines()[0]
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
