"""Great-circle distances, shared by the demand model, rebalancing, car sharing and the detectors."""

from __future__ import annotations

import pytest

from voltlib.domain.demand import Place, distance_km
from voltlib.domain.geo import great_circle_km
from voltlib.sharing.store import distance_m


def test_paris_to_london_is_about_344_km() -> None:
    assert great_circle_km(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343.5, abs=1.0)


def test_one_degree_of_latitude_is_about_111_km_and_distance_is_symmetric() -> None:
    assert great_circle_km(48.0, 2.0, 49.0, 2.0) == pytest.approx(111.2, abs=0.1)
    assert great_circle_km(48.0, 2.0, 49.0, 3.0) == great_circle_km(49.0, 3.0, 48.0, 2.0)
    assert great_circle_km(48.0, 2.0, 48.0, 2.0) == 0.0


def test_street_kilometres_and_metres_are_the_same_distance() -> None:
    a, b = Place("a", 48.86, 2.35), Place("b", 48.90, 2.40)
    straight = great_circle_km(a.latitude, a.longitude, b.latitude, b.longitude)
    assert distance_km(a, b) == pytest.approx(1.3 * straight)
    assert distance_m(a.latitude, a.longitude, b.latitude, b.longitude) == pytest.approx(1000 * straight)
