"""Domain rules: connector status transitions, id tag decisions, meter value packing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voltlib.domain import connector, meter
from voltlib.domain.idtags import Decision, IdTagRecord, decide
from voltlib.ocpp.v16.messages import SampledValue

# --- connector transitions (OCPP 1.6 section 4.9, written out independently) ------------------

# Rows are "from", the letters of the spec table; the listed numbers are the allowed "to" states:
# 1 Available 2 Preparing 3 Charging 4 SuspendedEV 5 SuspendedEVSE 6 Finishing 7 Reserved
# 8 Unavailable 9 Faulted
ORDER = ("Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Reserved",
         "Unavailable", "Faulted")
SPEC = {
    "Available": "2345789",
    "Preparing": "134569",
    "Charging": "145689",
    "SuspendedEV": "135689",
    "SuspendedEVSE": "134689",
    "Finishing": "1289",
    "Reserved": "1289",
    "Unavailable": "123459",
    "Faulted": "12345678",
}


def test_statuses_are_the_nine_of_ocpp16() -> None:
    assert set(connector.STATUSES) == set(ORDER)


@pytest.mark.parametrize("previous", ORDER)
@pytest.mark.parametrize("new", ORDER)
def test_transition_table_matches_the_standard(previous: str, new: str) -> None:
    allowed = {ORDER[int(d) - 1] for d in SPEC[previous]}
    expected = new in allowed or new == previous
    assert connector.is_expected(1, previous, new) is expected


@pytest.mark.parametrize(
    ("previous", "new"),
    [("Available", "Finishing"), ("Reserved", "Charging"), ("Finishing", "Charging"), ("Preparing", "Reserved"),
     ("Charging", "Preparing"), ("Unavailable", "Finishing")],
)
def test_anomalous_jumps_are_flagged(previous: str, new: str) -> None:
    assert connector.is_expected(2, previous, new) is False


def test_first_status_and_repeats_are_expected() -> None:
    for status in ORDER:
        assert connector.is_expected(1, None, status)
        assert connector.is_expected(1, status, status)


def test_unknown_previous_status_flags_any_change() -> None:
    assert connector.is_expected(1, "Bogus", "Available") is False


@pytest.mark.parametrize("status", ORDER)
def test_connector_zero_only_has_charge_point_states(status: str) -> None:
    expected = status in ("Available", "Unavailable", "Faulted")
    assert connector.is_expected(0, None, status) is expected
    assert connector.is_expected(0, "Available", status) is expected


# --- id tags ----------------------------------------------------------------------------------

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def record(status: str = "Accepted", expiry: datetime | None = None, parent: str | None = None) -> IdTagRecord:
    return IdTagRecord("TAG", status, expiry, parent)


def test_unknown_tag_is_invalid() -> None:
    assert decide(None, NOW, in_transaction=False) == Decision("Invalid")
    assert decide(None, NOW, in_transaction=True).status == "Invalid"


def test_accepted_tag_keeps_expiry_and_parent() -> None:
    expiry = NOW + timedelta(days=1)
    assert decide(record(expiry=expiry, parent="FLEET"), NOW, in_transaction=False) == Decision(
        "Accepted", expiry, "FLEET")


def test_lapsed_expiry_makes_the_tag_expired() -> None:
    assert decide(record(expiry=NOW - timedelta(seconds=1)), NOW, in_transaction=False).status == "Expired"
    assert decide(record(expiry=NOW), NOW, in_transaction=False).status == "Expired"
    assert decide(record(expiry=NOW - timedelta(days=1)), NOW, in_transaction=True).status == "Expired"


@pytest.mark.parametrize("status", ["Blocked", "Expired", "Invalid"])
def test_stored_refusals_are_passed_on(status: str) -> None:
    assert decide(record(status, parent="P"), NOW, in_transaction=False) == Decision(status, None, "P")
    assert decide(record(status), NOW, in_transaction=True).status == status


def test_tag_in_a_transaction_is_concurrent() -> None:
    assert decide(record(parent="P"), NOW, in_transaction=True) == Decision("ConcurrentTx", None, "P")


# --- meter value packing ------------------------------------------------------------------------

TABLE_VALUES = {
    "context": meter.CONTEXTS, "format": meter.FORMATS, "measurand": meter.MEASURANDS,
    "phase": meter.PHASES, "location": meter.LOCATIONS, "unit": meter.UNITS,
}


def field(name: str) -> st.SearchStrategy[str | None]:
    standard = st.sampled_from(TABLE_VALUES[name])
    other = st.text(max_size=30)
    if name == "phase":
        return st.one_of(standard, other, st.none())
    return st.one_of(standard, other)


samples_strategy = st.lists(
    st.builds(
        SampledValue, value=st.text(max_size=40), context=field("context"), format=field("format"),
        measurand=field("measurand"), phase=field("phase"), location=field("location"), unit=field("unit"),
    ),
    max_size=12,
)


@given(samples_strategy)
def test_pack_unpack_round_trip(samples: list[SampledValue]) -> None:
    unpacked = meter.unpack(meter.pack(samples))
    assert [msgspec.convert(s, SampledValue) for s in unpacked] == samples
    for original, wire in zip(samples, unpacked, strict=True):
        assert ("phase" in wire) is (original.phase is not None)


def test_standard_values_are_stored_as_small_integers() -> None:
    standard = SampledValue(value="12.5", measurand="SoC", unit="Percent", location="EV")
    custom = SampledValue(value="12.5", measurand="Vendor.Thing", unit="furlongs", location="EV")
    assert len(meter.pack([standard])) < len(meter.pack([custom]))
    assert meter.unpack(meter.pack([standard])) == [{"value": "12.5", "context": "Sample.Periodic", "format": "Raw",
                                                     "measurand": "SoC", "location": "EV", "unit": "Percent"}]


@given(samples_strategy, st.sampled_from(["Energy.Active.Import.Register", "SoC", "Vendor.Thing", ""]))
def test_find_packed_reads_a_stored_blob_as_find_reads_the_samples(samples: list[SampledValue],
                                                                   measurand: str) -> None:
    assert repr(meter.find_packed(meter.pack(samples), measurand)) == repr(meter.find(samples, measurand))


def test_find_reads_numbers_and_tolerates_text() -> None:
    samples = [SampledValue(value="230.1", measurand="Voltage", phase="L1"),
               SampledValue(value="229", measurand="Voltage", phase="L2"),
               SampledValue(value="n/a", measurand="SoC")]
    assert meter.find(samples, "Voltage") == 230.1
    assert meter.find(samples, "Voltage", "L2") == 229.0
    assert meter.find(samples, "SoC") is None
    assert meter.find(samples, "Power.Active.Import") is None
