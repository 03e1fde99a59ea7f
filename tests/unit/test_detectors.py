"""Each detector on hand-made events: it fires on the attack and stays quiet on normal traffic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from voltlib import events as ev
from voltlib.domain.demand import Place
from voltlib.security.detectors import Detectors, Inventory, Tuning, check_upload_location

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
CP = "CP-1"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def kinds(signals: list) -> list[str]:  # type: ignore[type-arg]
    return [s.kind for s in signals]


def incident(kind: str, t: float = 0, cp: str = CP, source: str = "10.0.0.9", **detail: object) -> ev.SecurityIncident:
    return ev.SecurityIncident(charge_point_id=cp, at=at(t), kind=kind, severity="high", source=source,
                               detail=dict(detail))


def boot(t: float = 0, **fields: str | None) -> ev.BootNotified:
    values = {"vendor": "Bollore", "model": "AL1", "serial_number": "S1", "firmware_version": "1.0"} | fields
    return ev.BootNotified(charge_point_id=CP, at=at(t), registration="Accepted", **values)  # type: ignore[arg-type]


def meter(t: float, energy: float | None = None, power: float | None = None, soc: float | None = None,
          cp: str = CP) -> ev.MeterValuesReceived:
    return ev.MeterValuesReceived(charge_point_id=cp, at=at(t), connector_id=1, transaction_id=5, sampled_at=at(t),
                                  energy_wh=energy, power_w=power, soc_percent=soc)


# -- physical --

def test_tamper_event_is_critical_and_physical() -> None:
    (s,) = Detectors().feed(ev.ChargePointSecurityEvent(charge_point_id=CP, at=T0, type="TamperDetectionActivated",
                                                        tech_info="door"))
    assert (s.kind, s.severity, s.physical) == ("tamper_detected", "critical", True)


def test_routine_security_events_are_quiet() -> None:
    d = Detectors()
    for kind in ("StartupOfTheDevice", "ResetOrReboot", "FirmwareUpdated"):
        assert d.feed(ev.ChargePointSecurityEvent(charge_point_id=CP, at=T0, type=kind, tech_info=None)) == []
    assert kinds(d.feed(ev.ChargePointSecurityEvent(charge_point_id=CP, at=T0, type="SecurityLogWasCleared",
                                                    tech_info=None))) == ["charge_point_security_event"]


def test_car_leaving_without_rental_is_physical_and_high() -> None:
    (s,) = Detectors().feed(ev.CarLeftWithoutRental(charge_point_id=CP, at=T0, connector_id=1, car_id="car-1",
                                                    rental_id=None))
    assert (s.kind, s.severity, s.physical) == ("car_left_without_rental", "high", True)
    assert s.detail["car_id"] == "car-1"


def status(vendor_code: str | None, info: str | None = None) -> ev.ConnectorStatusChanged:
    return ev.ConnectorStatusChanged(charge_point_id=CP, at=T0, connector_id=0, previous="Available",
                                     status="Faulted", error_code="OtherError", vendor_error_code=vendor_code,
                                     info=info, expected=True)


def test_cabinet_vendor_codes_are_physical() -> None:
    d = Detectors()
    (s,) = d.feed(status("CABINET_DOOR_OPEN"))
    assert s.kind == "cabinet_opened" and s.physical and s.severity == "critical"
    assert d.feed(status("GroundFailure", "earth leakage")) == []
    assert kinds(Detectors(Tuning(physical_codes=("e42",))).feed(status("E42"))) == ["cabinet_opened"]


def test_repeated_disconnections_and_reboots() -> None:
    d = Detectors(Tuning(disconnects=3, reboots=3))
    out = [d.feed(ev.ChargePointDisconnected(charge_point_id=CP, at=at(i * 60), code=1006, reason="x"))
           for i in range(4)]
    assert [kinds(o) for o in out] == [[], [], ["repeated_disconnections"], []]
    out = [d.feed(boot(i * 600)) for i in range(3)]
    assert kinds(out[2]) == ["repeated_reboots"]
    slow = Detectors(Tuning(disconnects=3))
    assert all(slow.feed(ev.ChargePointDisconnected(charge_point_id=CP, at=at(i * 3600), code=1006, reason="x"))
               == [] for i in range(5))


# -- identity --

def test_brute_force_per_identity_and_per_source() -> None:
    d = Detectors(Tuning(failed_auth_per_identity=3, failed_auth_per_source=4))
    results = [kinds(d.feed(incident("auth_failed", i, cp=f"CP-{i % 2}"))) for i in range(4)]
    assert results[:3] == [[], [], []]
    assert results[3] == ["brute_force_source"]
    d = Detectors(Tuning(failed_auth_per_identity=3))
    results = [kinds(d.feed(incident("auth_failed", i, source=f"10.0.0.{i}"))) for i in range(3)]
    assert results == [[], [], ["brute_force_identity"]]


def test_a_refused_tls_certificate_is_alerted_and_counts_as_a_failed_authentication() -> None:
    d = Detectors(Tuning(failed_auth_per_source=3))
    results = [kinds(d.feed(incident("tls_certificate_refused", i, cp=""))) for i in range(3)]
    assert results == [["tls_certificate_refused"], ["tls_certificate_refused"],
                       ["tls_certificate_refused", "brute_force_source"]]
    assert d.feed(incident("tls_handshake_failed", 4, cp="")) == []  # recorded by the gateway, not an alert


def test_failures_spread_over_time_are_not_brute_force() -> None:
    d = Detectors(Tuning(failed_auth_per_identity=3))
    assert all(d.feed(incident("auth_failed", i * 3600)) == [] for i in range(10))


def test_identity_scan_duplicates_downgrades_lockouts() -> None:
    d = Detectors(Tuning(unknown_identities_per_source=2))
    assert d.feed(incident("unknown_identity", 0, cp="X1")) == []
    assert kinds(d.feed(incident("unknown_identity", 1, cp="X2"))) == ["identity_scan"]
    assert kinds(d.feed(incident("duplicate_connection", existing_alive=True))) == ["duplicate_identity"]
    assert d.feed(incident("duplicate_connection", existing_alive=False)) == []
    assert kinds(d.feed(incident("security_profile_downgrade"))) == ["profile_downgrade"]
    assert kinds(d.feed(incident("auth_rate_limited"))) == ["locked_out"]
    assert kinds(d.feed(incident("certificate_mismatch"))) == ["certificate_mismatch"]
    assert kinds(d.feed(incident("flood"))) == ["flood"]


def test_new_address_for_a_known_identity() -> None:
    d = Detectors()
    connected = [ev.ChargePointConnected(charge_point_id=CP, at=T0, address=a, security_profile=1,
                                         subprotocol="ocpp1.6") for a in ("1.1.1.1", "1.1.1.1", "6.6.6.6")]
    assert [kinds(d.feed(c)) for c in connected] == [[], [], ["new_address"]]
    quiet = Detectors(Tuning(flag_new_address=False))
    assert [quiet.feed(c) for c in connected] == [[], [], []]


def test_boot_fields_differing_from_inventory() -> None:
    d = Detectors()
    d.remember(CP, Inventory("Bollore", "AL1", "S1", "1.0"))
    assert d.feed(boot()) == []
    (s,) = d.feed(boot(10, serial_number="EVIL"))
    assert s.kind == "boot_fields_changed" and s.detail == {"serial_number": {"was": "S1", "now": "EVIL"}}


def test_firmware_change_only_alerts_when_not_ordered() -> None:
    d = Detectors()
    d.remember(CP, Inventory("Bollore", "AL1", "S1", "1.0"))
    assert kinds(d.feed(boot(0, firmware_version="6.6.6"))) == ["firmware_changed_unordered"]
    ordered = Detectors()
    ordered.remember(CP, Inventory("Bollore", "AL1", "S1", "1.0"))
    ordered.ordered(CP, "UpdateFirmware", at(0))
    assert ordered.feed(ev.FirmwareStatusChanged(charge_point_id=CP, at=at(60), status="Installed",
                                                 signed=False)) == []
    assert ordered.feed(boot(120, firmware_version="1.1")) == []
    late = ordered.feed(ev.FirmwareStatusChanged(charge_point_id=CP, at=at(5 * 3600), status="Downloading",
                                                 signed=False))
    assert kinds(late) == ["firmware_unrequested"]


# -- protocol --

def violation(description: str, t: float = 0) -> ev.ProtocolViolationSeen:
    return ev.ProtocolViolationSeen(charge_point_id=CP, at=at(t), code="FormationViolation",
                                    description=description, action="X", message_id="1", count=1)


def test_protocol_violations_replays_and_bursts() -> None:
    d = Detectors(Tuning(violation_burst=3))
    assert kinds(d.feed(violation("message id already used for a different message"))) == ["replayed_message_id"]
    assert kinds(d.feed(violation("answer to a call we did not make (or that timed out)"))) == ["unsolicited_answer"]
    assert d.feed(violation("rate limit exceeded, slow down")) == []
    out = [kinds(d.feed(violation("bad payload", i))) for i in range(4)]
    assert out == [["protocol_violation"], [], ["violation_burst"], []]


def started(tx: int, t: float) -> ev.TransactionStarted:
    return ev.TransactionStarted(charge_point_id=CP, at=at(t), transaction_id=tx, connector_id=1, id_tag="T",
                                 id_tag_status="Accepted", meter_start=0, started_at=at(t), reservation_id=None)


def repeated(tx: int, t: float) -> ev.TransactionStartRepeated:
    return ev.TransactionStartRepeated(charge_point_id=CP, at=at(t), transaction_id=tx, connector_id=1, id_tag="T",
                                       started_at=at(0))


def stopped(tx: int, t: float, known: bool = True) -> ev.TransactionStopped:
    return ev.TransactionStopped(charge_point_id=CP, at=at(t), transaction_id=tx, meter_stop=10, stopped_at=at(t),
                                 reason=None, known=known)


def test_replayed_start_transaction() -> None:
    d = Detectors()
    d.feed(started(7, 0))
    assert d.feed(repeated(7, 10)) == []  # a retry right after: normal
    d.feed(stopped(7, 100))
    (s,) = d.feed(repeated(7, 200))
    assert s.kind == "replayed_start_transaction" and s.severity == "high"
    assert kinds(d.feed(stopped(999, 300, known=False))) == ["stop_unknown_transaction"]


# -- data --

def badge(t: float, cp: str, tag: str = "MEMBER-1", status: str = "Accepted") -> ev.IdTagAuthorized:
    return ev.IdTagAuthorized(charge_point_id=cp, at=at(t), id_tag=tag, status=status)


def located() -> Detectors:
    d = Detectors()  # BASTILLE-1/-2 share a station; NORTH is ~11 km north (~14.4 street km); NEAR ~1.1 km
    d.locate({"BASTILLE-1": Place("bastille", 48.853, 2.369), "BASTILLE-2": Place("bastille", 48.853, 2.369),
              "NORTH": Place("north", 48.953, 2.369), "NEAR": Place("near", 48.863, 2.369)})
    return d


def test_one_badge_at_two_far_stations_within_minutes_is_impossible_travel() -> None:
    d = located()
    assert d.feed(badge(0, "BASTILLE-1")) == []
    (signal,) = d.feed(badge(120, "NORTH"))  # 14.4 street km in 2 minutes
    assert (signal.kind, signal.severity, signal.charge_point_id) == ("badge_impossible_travel", "high", "NORTH")
    assert signal.detail["from_charge_point"] == "BASTILLE-1" and signal.detail["speed_kmh"] > 400


def test_driving_across_town_a_nearby_station_or_another_badge_is_not_impossible_travel() -> None:
    d = located()
    assert d.feed(badge(0, "BASTILLE-1")) == []
    assert d.feed(badge(40 * 60, "NORTH")) == []  # 14.4 km in 40 minutes: a car
    assert d.feed(badge(40 * 60 + 30, "NORTH", tag="MEMBER-2")) == []  # another badge
    assert d.feed(badge(0, "BASTILLE-2", tag="MEMBER-3")) == []
    assert d.feed(badge(30, "BASTILLE-1", tag="MEMBER-3")) == []  # the same station
    assert d.feed(badge(60, "NEAR", tag="MEMBER-3")) == []  # 1.4 street km: below badge_travel_min_km
    assert d.feed(badge(0, "BASTILLE-1", tag="MEMBER-4")) == []
    assert d.feed(badge(4 * 3600, "NORTH", tag="MEMBER-4")) == []  # hours later: outside the window
    assert d.feed(badge(0, "BASTILLE-1", tag="MEMBER-5", status="Invalid")) == []  # refused: not a use
    assert d.feed(badge(60, "NORTH", tag="MEMBER-5")) == []
    assert d.feed(badge(60, "UNKNOWN-CP", tag="MEMBER-5")) == []  # no place known: nothing to compare


def test_a_badge_used_on_another_node_is_remembered_for_this_one() -> None:
    d = located()
    d.learn(badge(0, "BASTILLE-1"))  # accepted where another node holds the charge point
    assert kinds(d.feed(badge(60, "NORTH"))) == ["badge_impossible_travel"]


def test_energy_register_backwards_and_power_above_rating() -> None:
    d = Detectors(Tuning(ratings={CP: 7000.0}))
    assert d.feed(meter(0, energy=1000, power=6900)) == []
    assert d.feed(meter(60, energy=1100)) == []
    assert kinds(d.feed(meter(120, energy=900))) == ["energy_register_backwards"]
    assert kinds(d.feed(meter(180, power=9000))) == ["power_above_rating"]
    assert d.feed(meter(180, power=9000, cp="CP-2")) == []  # default rating 22 kW


def test_soc_jumps() -> None:
    d = Detectors()
    assert d.feed(meter(0, soc=40)) == []
    assert d.feed(meter(60, soc=42)) == []
    assert kinds(d.feed(meter(120, soc=90))) == ["soc_jump"]
    assert d.feed(meter(7200, soc=20)) == []  # long gap: the car may have been driven


def transfer(t: float, vendor: str = "com.bollore", size: int = 10, handled: bool = True) -> ev.DataTransferReceived:
    return ev.DataTransferReceived(charge_point_id=CP, at=at(t), vendor_id=vendor, message_id=None, size=size,
                                   handled=handled)


def test_data_transfer_vendor_size_and_rate() -> None:
    d = Detectors(Tuning(data_transfers=3))
    assert d.feed(transfer(0)) == []
    assert kinds(d.feed(transfer(1, vendor="evil", handled=False))) == ["data_transfer_unknown_vendor"]
    assert kinds(d.feed(transfer(2, size=50_000))) == ["data_transfer_large", "data_transfer_rate"]
    allowed = Detectors(Tuning(data_transfer_vendors=frozenset({"lab"})))
    assert allowed.feed(transfer(0, vendor="lab", handled=False)) == []


def test_diagnostics_and_log_uploads_nobody_ordered() -> None:
    d = Detectors()
    up = ev.DiagnosticsStatusChanged(charge_point_id=CP, at=at(0), status="Uploading")
    assert kinds(d.feed(up)) == ["diagnostics_unrequested"]
    assert d.feed(ev.DiagnosticsStatusChanged(charge_point_id=CP, at=at(0), status="Idle")) == []
    d.ordered(CP, "GetDiagnostics", at(0))
    assert d.feed(up) == []
    assert kinds(d.feed(ev.LogStatusChanged(charge_point_id=CP, at=at(0), status="Uploading",
                                            request_id=1))) == ["log_unrequested"]


def test_upload_location_allow_list() -> None:
    allow = ("https://diag.voltlib.example/",)
    assert check_upload_location(CP, "GetDiagnostics", "https://diag.voltlib.example/x", allow, T0) is None
    s = check_upload_location(CP, "GetDiagnostics", "ftp://203.0.113.9/loot", allow, T0)
    assert s is not None and s.kind == "upload_location_not_allowed"
    assert check_upload_location(CP, "Reset", "ftp://x", allow, T0) is None


def test_stale_windows_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    from voltlib.security import detectors

    monkeypatch.setattr(detectors, "MAX_WINDOWS", 10)
    d = Detectors()
    for i in range(10):
        d.feed(incident("unknown_identity", 0, source=f"10.9.0.{i}"))
    d.feed(incident("unknown_identity", 3600, source="10.9.1.1"))
    assert len(d._windows) == 1


def test_new_certificate_for_a_known_identity() -> None:
    d = Detectors()

    def connected(fingerprint: str | None) -> ev.ChargePointConnected:
        return ev.ChargePointConnected(charge_point_id=CP, at=T0, address="1.1.1.1", security_profile=3,
                                       subprotocol="ocpp1.6", certificate_fingerprint=fingerprint)

    assert d.feed(connected("aa" * 32)) == []
    assert d.feed(connected("aa" * 32)) == []
    (s,) = d.feed(connected("bb" * 32))
    assert s.kind == "new_certificate" and s.severity == "high"
    assert d.feed(connected(None)) == []


# -- several gateway nodes --

def test_other_nodes_failures_count_towards_the_same_thresholds() -> None:
    """correlate: another node's refusals add to this node's counts per identity and per source,
    and only the counted detectors answer them (the single-event ones are the other node's)."""
    d = Detectors(Tuning(failed_auth_per_identity=3, unknown_identities_per_source=2))
    assert d.feed(incident("auth_failed", 0)) == []
    assert d.correlate(incident("auth_failed", 1)) == []
    assert kinds(d.feed(incident("auth_failed", 2))) == ["brute_force_identity"]
    assert d.correlate(incident("unknown_identity", 3, cp="X1")) == []
    assert kinds(d.correlate(incident("unknown_identity", 4, cp="X2"))) == ["identity_scan"]
    assert d.correlate(incident("certificate_mismatch", 5, cp="CP-2")) == []
    assert d.correlate(incident("flood", 6)) == []


def test_what_another_node_learnt_of_a_charge_point_holds_when_it_reconnects_here() -> None:
    """learn: another node's boot, connection and transactions are remembered without any signal, so
    a charge point moving to this node is judged on what it did there."""
    d = Detectors()
    d.remember(CP, Inventory("Bollore", "AL1", "S1", "1.0"))
    d.learn(boot(0, firmware_version="2.0"))  # updated while held elsewhere (and ordered there)
    d.learn(ev.ChargePointConnected(charge_point_id=CP, at=T0, address="6.6.6.6", security_profile=1,
                                    subprotocol="ocpp1.6"))
    d.learn(started(7, 0))
    assert d.feed(boot(10, firmware_version="2.0")) == []  # no "firmware changed, not ordered"
    assert d.feed(ev.ChargePointConnected(charge_point_id=CP, at=at(11), address="6.6.6.6", security_profile=1,
                                          subprotocol="ocpp1.6")) == []  # not a new address
    assert d.feed(repeated(7, 12)) == []  # a retry after moving: not a replay
    d.learn(stopped(7, 100))
    assert kinds(d.feed(repeated(7, 200))) == ["replayed_start_transaction"]


def test_a_window_forgets_old_times_and_keeps_at_most_its_cap() -> None:
    from voltlib.security.detectors import _Window

    window = _Window(timedelta(seconds=10))
    assert [window.add(at(t)) for t in (0, 5, 9, 12, 30)] == [1, 2, 3, 3, 1]  # 12 - 0 > 10: 0 forgotten
    many = _Window(timedelta(hours=1))
    for n in range(_Window.MAX_TIMES + 5):
        count = many.add(at(n / 1000))
    assert count == _Window.MAX_TIMES and many.times[0] == at(5 / 1000)


def test_a_clock_skew_is_alerted_once_per_charge_point_per_period() -> None:
    d = Detectors(Tuning(clock_skew_alert_every=timedelta(hours=1)))
    first = d.feed(incident("clock_skew", 0, message="StartTransaction", skew_seconds=259200.0))
    assert [(s.kind, s.charge_point_id, s.severity, s.detail["skew_seconds"]) for s in first] \
        == [("clock_skew", CP, "warning", 259200.0)]
    assert d.feed(incident("clock_skew", 600)) == [] and d.feed(incident("clock_skew", 3599)) == []
    assert [s.charge_point_id for s in d.feed(incident("clock_skew", 10, cp="CP-OTHER"))] == ["CP-OTHER"]
    assert [s.kind for s in d.feed(incident("clock_skew", 3600))] == ["clock_skew"]  # the next period
