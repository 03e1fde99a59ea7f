"""Energy driven per rental: the SoC estimates recorded on the rental when the car left and when it was
returned, and what can (and cannot) be said from them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from voltlib.domain import battery
from voltlib.domain import rental as dr
from voltlib.domain.pricing import PARIS_2011
from voltlib.sharing.codec import rental_from_dict, rental_to_dict

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
LEFT, BACK = T0 + timedelta(minutes=5), T0 + timedelta(minutes=45)
USABLE_WH = battery.BLUECAR.usable_wh  # 27 kWh
POLICY = dr.RentalPolicy()


def _returned(out: dr.SocSnapshot | None, back: dr.SocSnapshot | None) -> dr.Rental:
    """A rental driven from cp-a to cp-b through the transition table, the estimates carried by its events."""
    r = dr.Rental("r1", "m1", "BADGE", "car1", "CAR1", dr.Dock("cp-a", 1), PARIS_2011["premium"])
    for event in (dr.Badged("e1", T0), dr.CarUnplugged("e2", LEFT, out),
                  dr.CarReturned("e3", BACK, dr.Dock("cp-b", 1), "CAR1", 77, back), dr.Close("e4", BACK)):
        r, _ = dr.apply(r, event, POLICY)
    return r


def test_the_events_record_the_estimates_and_the_return_session() -> None:
    out, back = dr.SocSnapshot(90.0, "telematics", LEFT), dr.SocSnapshot(50.0, "telematics", BACK)
    r = _returned(out, back)
    assert (r.departure_soc, r.return_soc, r.return_transaction_id) == (out, back, 77)


def test_driven_is_the_drop_in_state_of_charge_times_the_usable_energy() -> None:
    r = _returned(dr.SocSnapshot(90.0, "metered", LEFT - timedelta(seconds=3)),
                  dr.SocSnapshot(50.0, "telematics", BACK - timedelta(minutes=1)))
    assert dr.driven_energy(r, USABLE_WH) == dr.Driven(10.8)  # 40 % of 27 kWh
    assert dr.driven_energy(r, 20_000.0) == dr.Driven(8.0)  # another model, another capacity


@pytest.mark.parametrize(("out", "back", "reason"), [
    (None, dr.SocSnapshot(50.0, "telematics", BACK), "no state-of-charge estimate when the car left"),
    (dr.SocSnapshot(90.0, "telematics", LEFT + timedelta(minutes=10)), dr.SocSnapshot(50.0, "telematics", BACK),
     "the estimate at departure was taken during the trip"),
    (dr.SocSnapshot(90.0, "import", T0), None, "no state-of-charge estimate when the car was returned"),
    # nothing new since the car left: the stored estimate is still the departure one
    (dr.SocSnapshot(90.0, "metered", LEFT), dr.SocSnapshot(90.0, "metered", LEFT),
     "no state-of-charge reading since the car left"),
    (dr.SocSnapshot(90.0, "metered", LEFT), dr.SocSnapshot(95.0, "telematics", BACK + timedelta(minutes=30)),
     "the estimate at return was taken after the car had started charging"),
    (dr.SocSnapshot(50.0, "metered", LEFT), dr.SocSnapshot(52.0, "telematics", BACK),
     "state of charge rose during the trip (50 % -> 52 %)"),
])
def test_no_estimate_no_number_but_a_reason(out: dr.SocSnapshot | None, back: dr.SocSnapshot | None,
                                            reason: str) -> None:
    assert dr.driven_energy(_returned(out, back), USABLE_WH) == dr.Driven(None, reason)


def test_clock_slack_around_departure_and_return() -> None:
    slack = dr.CLOCK_SLACK
    r = _returned(dr.SocSnapshot(90.0, "telematics", LEFT + slack),
                  dr.SocSnapshot(80.0, "telematics", BACK + slack))
    assert dr.driven_energy(r, USABLE_WH) == dr.Driven(2.7)


def test_not_driven_unknown_model_not_returned() -> None:
    r = _returned(dr.SocSnapshot(90.0, "metered", LEFT), dr.SocSnapshot(50.0, "telematics", BACK))
    assert dr.driven_energy(r, None) == dr.Driven(None, "unknown vehicle model")
    assert dr.driven_energy(replace(r, returned_at=None), USABLE_WH).reason == "the car has not been returned"
    assert dr.driven_energy(replace(r, started_at=None), USABLE_WH).reason == "the car never left"
    assert battery.MODELS["Bluecar"] is battery.BLUECAR  # what the importer stores in vehicles.model


def test_codec_round_trip_and_rows_stored_before_energy_accounting() -> None:
    r = _returned(dr.SocSnapshot(90.0, "metered", LEFT), dr.SocSnapshot(50.0, "telematics", BACK))
    stored = rental_to_dict(r)
    assert stored["departure_soc"] == {"soc_percent": 90.0, "source": "metered", "at": LEFT.isoformat()}
    assert rental_from_dict(stored) == r
    old = {k: v for k, v in stored.items() if k not in ("departure_soc", "return_soc", "return_transaction_id")}
    decoded = rental_from_dict(old)
    assert (decoded.departure_soc, decoded.return_soc, decoded.return_transaction_id) == (None, None, None)
    assert dr.driven_energy(decoded, USABLE_WH).reason == "no state-of-charge estimate when the car left"


def test_only_a_return_without_a_reading_since_departure_asks_for_the_sessions_first_one() -> None:
    out = dr.SocSnapshot(90.0, "telematics", LEFT)
    assert dr.needs_return_reading(_returned(out, None))
    assert dr.needs_return_reading(_returned(out, dr.SocSnapshot(90.0, "telematics", LEFT)))  # the pre-trip one
    assert not dr.needs_return_reading(_returned(out, dr.SocSnapshot(50.0, "telematics", BACK)))
    no_session = replace(_returned(out, None), return_transaction_id=None)
    assert not dr.needs_return_reading(no_session)
