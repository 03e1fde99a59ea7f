"""Detectors: pure functions of the gateway's events that return security signals.

``Detectors.feed(event)`` is the entry point for the events of this gateway node. It keeps small,
bounded per-charge-point memories (recent failures, last meter reading, inventory, orders voltlib
gave) and never does I/O: the service (security/service.py) feeds it events from the bus, tells it
which commands voltlib sent (``ordered``) and what the inventory says (``remember``), and persists
what comes out. With several nodes, two more entry points take the other nodes' events:
``correlate`` (the counts across charge points and sources, which a node cannot see alone: the
failed logins of one source or identity spread over every node) and ``learn`` (what is known of a
charge point held elsewhere, which may reconnect here: inventory, transactions; no signal).

Each detector below says what it sees, why it matters and how to tune it (``Tuning``); the same
text is in docs/security.md.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from voltlib import events as ev
from voltlib.domain.demand import Place, distance_km

SEVERITIES = ("info", "warning", "high", "critical")


def rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


@dataclass(frozen=True, slots=True)
class Signal:
    """One thing worth a security analyst's attention. ``physical`` signals need someone on site:
    they are expected inside an open work order and alerts outside one."""

    detector: str  # physical | identity | protocol | data | human
    kind: str
    severity: str
    charge_point_id: str | None
    source: str | None
    at: datetime
    physical: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Inventory:
    """What voltlib believes a charge point is (BootNotification fields, seen addresses)."""

    vendor: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None
    addresses: frozenset[str] = frozenset()
    certificates: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Tuning:
    """Thresholds. Windows are sliding; counts are "at least this many inside the window"."""

    auth_window: timedelta = timedelta(minutes=10)
    failed_auth_per_identity: int = 5
    failed_auth_per_source: int = 20
    unknown_identities_per_source: int = 5
    reboot_window: timedelta = timedelta(hours=1)
    reboots: int = 4
    disconnect_window: timedelta = timedelta(minutes=10)
    disconnects: int = 6
    violation_burst: int = 5  # protocol violations from one charge point inside violation_window
    violation_window: timedelta = timedelta(minutes=5)
    # StatusNotification vendorErrorCode / info containing one of these (case-insensitive) = cabinet opened.
    physical_codes: tuple[str, ...] = ("door", "cabinet", "tamper", "intrusion", "enclosure", "lid", "cover")
    rated_power_w: float = 22_000.0  # default connector rating; per charge point in ``ratings``
    ratings: dict[str, float] = field(default_factory=dict)
    power_margin: float = 1.10
    soc_jump_percent: float = 20.0  # between two readings less than soc_jump_within apart
    soc_jump_within: timedelta = timedelta(minutes=5)
    data_transfer_vendors: frozenset[str] = frozenset()  # besides those the router handles
    data_transfer_max_bytes: int = 2048
    data_transfer_window: timedelta = timedelta(minutes=10)
    data_transfers: int = 30
    order_window: timedelta = timedelta(hours=2)  # how long a GetDiagnostics/UpdateFirmware/GetLog order holds
    upload_allow: tuple[str, ...] = ()  # allowed URL prefixes for diagnostics/log uploads and firmware downloads
    repeated_start_grace: timedelta = timedelta(minutes=5)
    flag_new_address: bool = True  # turn off where charge points sit behind changing mobile addresses
    # One badge accepted at two stations: faster than this between them (street kilometres, at least a
    # minute apart) is no member driving a car. Closer stations, or uses further apart in time, are left.
    badge_travel_kmh: float = 150.0
    badge_travel_min_km: float = 3.0
    badge_travel_window: timedelta = timedelta(hours=3)
    # A charge point whose clock is wrong stamps every message wrong: one clock_skew alert per charge
    # point per this period (each stamp replaced is still a security event).
    clock_skew_alert_every: timedelta = timedelta(hours=1)


# SecurityEventNotification types (OCA 1.6 security whitepaper, appendix) and how bad they are.
PHYSICAL_EVENTS = frozenset({"TamperDetectionActivated"})
HIGH_EVENTS = frozenset({"InvalidFirmwareSignature", "InvalidFirmwareSigningCertificate", "SecurityLogWasCleared",
                         "AttemptedReplayAttacks", "InvalidCentralSystemCertificate", "InvalidChargePointCertificate",
                         "InvalidMessages", "CentralSystemFailedToAuthenticate", "InvalidTLSVersion",
                         "InvalidTLSCipherSuite"})
WARNING_EVENTS = frozenset({"FailedToAuthenticateAtCentralSystem", "ReconfigurationOfSecurityParameters",
                            "MemoryExhaustion", "SettingSystemTime"})
# FirmwareUpdated, StartupOfTheDevice, ResetOrReboot: routine, seen by the reboot/firmware detectors.

AUTH_FAILURES = frozenset({"auth_failed", "auth_missing", "certificate_mismatch", "tls_certificate_refused"})
# Alerted at once, besides being counted: a certificate that is not the identity's, or not trusted.
CERTIFICATE_REFUSALS = frozenset({"certificate_mismatch", "tls_certificate_refused"})
UNKNOWN_IDENTITIES = frozenset({"unknown_identity", "bad_identity"})
# Signals counted over every node's events (``correlate``): each node raises them when its count
# crosses the threshold, so the store keeps the first and drops the other nodes' copies of that
# crossing, known by its ``crossing`` detail.
NETWORK_KINDS = frozenset({"brute_force_identity", "brute_force_source", "identity_scan"})
CROSSING = "crossing"  # their detail's name for the crossing (``Detectors._crossing``)
UPLOAD_ACTIONS = {"GetDiagnostics": "diagnostics", "GetLog": "log", "UpdateFirmware": "firmware",
                  "SignedUpdateFirmware": "firmware"}
ACTIVE_DIAGNOSTICS = frozenset({"Uploading", "Uploaded"})
# firmware statuses of an update under way, 1.6 and 2.0.1 (DownloadPaused, SignatureVerified are 2.0.1's)
ACTIVE_FIRMWARE = frozenset({"Downloading", "Downloaded", "Installing", "Installed", "DownloadScheduled",
                             "InstallScheduled", "InstallRebooting", "DownloadPaused", "SignatureVerified"})
ACTIVE_LOG = frozenset({"Uploading", "Uploaded"})
ORDER_SLACK = timedelta(minutes=1)
MAX_WINDOWS = 100_000
MAX_BADGES = 200_000  # badges whose last use is remembered; the least recently used are forgotten


class _Window:
    """Times of recent occurrences, older than ``span`` forgotten; at most ``MAX_TIMES``.

    A list, not a deque: every charge point has one (its boots) and a deque starts with a block
    of 64 slots, ~0.7 KiB of each connection's memory budget; a list holding one time is 0.1 KiB."""

    __slots__ = ("span", "times")
    MAX_TIMES = 10_000

    def __init__(self, span: timedelta) -> None:
        self.span = span
        self.times: list[datetime] = []

    def add(self, at: datetime) -> int:
        times = self.times
        times.append(at)
        stale = 0
        while stale < len(times) and at - times[stale] > self.span:
            stale += 1
        stale = max(stale, len(times) - self.MAX_TIMES)
        if stale:
            del times[:stale]
        return len(times)


@dataclass(frozen=True, slots=True)
class _BadgeUse:
    charge_point_id: str
    at: datetime
    place: Place


@dataclass
class _Meter:
    energy_wh: float | None = None
    seeded: bool = False  # the register stored before this node's first reading was looked for
    soc: float | None = None
    soc_at: datetime | None = None
    soc_tx: int | None = None


class Detectors:
    def __init__(self, tuning: Tuning | None = None) -> None:
        self.tuning = tuning or Tuning()
        self._windows: dict[tuple[str, str], _Window] = {}
        self._inventory: dict[str, Inventory] = {}
        self._orders: dict[tuple[str, str], datetime] = {}  # (cp, "diagnostics"|"firmware"|"log") → when
        self._meters: dict[tuple[str, int], _Meter] = {}
        self._stopped: deque[tuple[str, int]] = deque(maxlen=100_000)
        self._stopped_set: set[tuple[str, int]] = set()
        self._starts: dict[tuple[str, int], datetime] = {}
        self._places: dict[str, Place] = {}  # charge point → its station (``locate``)
        self._badges: dict[str, _BadgeUse] = {}  # badge → where and when it was last accepted
        self._skews: dict[str, datetime] = {}  # charge point → its last clock_skew alert

    # -- what the service tells us --

    def remember(self, cp_id: str, inventory: Inventory) -> None:
        self._inventory[cp_id] = inventory

    def locate(self, places: dict[str, Place]) -> None:
        """Where the charge points stand (their stations), for the badge-travel detector."""
        self._places = dict(places)

    def knows_place(self, cp_id: str) -> bool:
        return cp_id in self._places

    def needs_register(self, cp_id: str, connector_id: int) -> bool:
        """Has this node no register of the connector to compare the next reading with (after a
        restart, or a charge point held by another node until now), and has not looked for one? The
        service then reads the register stored before that reading and gives it to ``seed_meter``."""
        state = self._meters.get((cp_id, connector_id))
        return state is None or (state.energy_wh is None and not state.seeded)

    def seed_meter(self, cp_id: str, connector_id: int, energy_wh: float | None) -> None:
        """The register stored before this node's first reading of the connector (None: none stored);
        a register already seen here is newer and stays."""
        state = self._meters.get((cp_id, connector_id))
        if state is None:
            state = self._meters[(cp_id, connector_id)] = _Meter()
        if state.energy_wh is None:
            state.energy_wh = energy_wh
        state.seeded = True

    def firmware_changes(self, e: ev.BootNotified) -> bool:
        """Would this boot change the known firmware? Only then do the orders matter (the caller
        reads them from the database, which it must not do for every boot of a reconnection storm)."""
        known = self._inventory.get(e.charge_point_id)
        return known is not None and known.firmware_version is not None \
            and e.firmware_version != known.firmware_version

    def ordered(self, cp_id: str, action: str, at: datetime) -> None:
        """voltlib sent ``action`` (GetDiagnostics, UpdateFirmware, GetLog…) to ``cp_id`` at ``at``."""
        what = UPLOAD_ACTIONS.get(action)
        if what is not None:
            self._orders[(cp_id, what)] = max(at, self._orders.get((cp_id, what), at))

    # -- the entry point --

    def feed(self, event: ev.Event) -> list[Signal]:
        handler = _HANDLERS.get(type(event))
        return [] if handler is None else handler(self, event)

    def correlate(self, event: ev.SecurityIncident) -> list[Signal]:
        """Another node's incident: only the counts across charge points and sources (NETWORK_KINDS)."""
        return self._incident_counts(event)

    def learn(self, event: ev.Event) -> None:
        """Another node's event about a charge point held there: remember, raise nothing."""
        if isinstance(event, ev.BootNotified):
            self._inventory[event.charge_point_id] = _booted(event, self._inventory.get(event.charge_point_id))
        elif isinstance(event, ev.ChargePointConnected):
            self._inventory[event.charge_point_id] = _connected(event, self._inventory.get(event.charge_point_id,
                                                                                           Inventory()))
        elif isinstance(event, ev.TransactionStarted):
            self._started(event)
        elif isinstance(event, ev.TransactionStopped) and event.known:
            self._stopped_tx(event)
        elif isinstance(event, ev.IdTagAuthorized):
            self._badge_seen(event)

    # -- helpers --

    def _count(self, key: tuple[str, str], span: timedelta, at: datetime) -> int:
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= MAX_WINDOWS:  # sources from the whole internet: forget the stale ones
                self._windows = {k: w for k, w in self._windows.items() if w.times and at - w.times[-1] <= w.span}
            window = self._windows[key] = _Window(span)
        return window.add(at)

    def _was_ordered(self, cp_id: str, what: str, at: datetime) -> bool:
        when = self._orders.get((cp_id, what))  # a minute of slack: the notification may overtake the order
        return when is not None and -ORDER_SLACK <= at - when <= self.tuning.order_window

    # -- physical --

    def _cp_security_event(self, e: ev.ChargePointSecurityEvent) -> list[Signal]:
        """Sees: SecurityEventNotification. Why: the charge point's own tamper switch and crypto
        checks. Tune: the PHYSICAL/HIGH/WARNING_EVENTS sets."""
        return cp_security_signals(e)

    def _car_left(self, e: ev.CarLeftWithoutRental) -> list[Signal]:
        """Sees: a car leaving its bay with no authorised rental (car sharing's unplug event). Why:
        the connector was unlocked or the cable pulled without a badge: forced, or a post that
        releases cars by itself. Physical: expected inside a work order (a technician moving a car)."""
        return car_left_signals(e)

    def _status(self, e: ev.ConnectorStatusChanged) -> list[Signal]:
        """Sees: StatusNotification vendor error codes and info. Why: cabinet and door switches are
        reported there by most vendors. Tune: ``physical_codes``."""
        text = f"{e.vendor_error_code or ''} {e.info or ''}".lower()
        hits = [code for code in self.tuning.physical_codes if code in text]
        if not hits:
            return []
        return [Signal("physical", "cabinet_opened", "critical", e.charge_point_id, None, e.at, True,
                       {"connector_id": e.connector_id, "status": e.status, "error_code": e.error_code,
                        "vendor_error_code": e.vendor_error_code, "info": e.info})]

    def _disconnected(self, e: ev.ChargePointDisconnected) -> list[Signal]:
        """Sees: disconnections. Why: unplugging the modem or power-cycling to attach equipment.
        Tune: ``disconnects`` within ``disconnect_window``."""
        n = self._count((e.charge_point_id, "disconnect"), self.tuning.disconnect_window, e.at)
        if n == self.tuning.disconnects:
            return [Signal("physical", "repeated_disconnections", "warning", e.charge_point_id, None, e.at, True,
                           {"count": n, "code": e.code, "reason": e.reason})]
        return []

    def _boot(self, e: ev.BootNotified) -> list[Signal]:
        """Sees: BootNotification. Why: repeated reboots (someone working inside), a different
        vendor/model/serial (a substitute device), a firmware nobody ordered (tampering).
        Tune: ``reboots`` within ``reboot_window``; ``order_window``."""
        out: list[Signal] = []
        cp = e.charge_point_id
        n = self._count((cp, "boot"), self.tuning.reboot_window, e.at)
        if n == self.tuning.reboots:
            out.append(Signal("physical", "repeated_reboots", "warning", cp, None, e.at, True, {"count": n}))
        known = self._inventory.get(cp)
        if known is not None and known.vendor is not None:
            changed = {name: {"was": old, "now": new} for name, old, new in (
                ("vendor", known.vendor, e.vendor), ("model", known.model, e.model),
                ("serial_number", known.serial_number, e.serial_number)) if old is not None and old != new}
            if changed:
                out.append(Signal("identity", "boot_fields_changed", "high", cp, None, e.at, False, changed))
            if known.firmware_version is not None and e.firmware_version != known.firmware_version \
                    and not self._was_ordered(cp, "firmware", e.at):
                out.append(Signal("identity", "firmware_changed_unordered", "high", cp, None, e.at, False,
                                  {"was": known.firmware_version, "now": e.firmware_version}))
        self._inventory[cp] = _booted(e, known)
        return out

    # -- identity --

    def _connected(self, e: ev.ChargePointConnected) -> list[Signal]:
        """Sees: accepted connections. Why: a known identity from a new address or with a new client
        certificate may be a clone. Tune: ``flag_new_address`` (off for charge points on changing
        mobile addresses); pin fingerprints to refuse, not just flag, other certificates."""
        known = self._inventory.get(e.charge_point_id, Inventory())
        out: list[Signal] = []
        if self.tuning.flag_new_address and known.addresses and e.address not in known.addresses:
            out.append(Signal("identity", "new_address", "warning", e.charge_point_id, e.address, e.at, False,
                              {"known": sorted(known.addresses)[:10], "address": e.address}))
        fingerprint = e.certificate_fingerprint
        if fingerprint and known.certificates and fingerprint not in known.certificates:
            out.append(Signal("identity", "new_certificate", "high", e.charge_point_id, e.address, e.at, False,
                              {"fingerprint": fingerprint, "known": sorted(known.certificates)[:10]}))
        self._inventory[e.charge_point_id] = _connected(e, known)
        return out

    def _incident(self, e: ev.SecurityIncident) -> list[Signal]:
        """Sees: what the gateway refused or noticed (failed auth, unknown ids, duplicates,
        downgrades, floods). Why: brute force, identity scans, hijacks. Tune: ``failed_auth_per_*``,
        ``unknown_identities_per_source`` within ``auth_window``."""
        if e.kind in AUTH_FAILURES or e.kind in UNKNOWN_IDENTITIES:
            return incident_signals(e) + self._incident_counts(e)
        if e.kind == "clock_skew":
            return self._clock_skew(e)
        return incident_signals(e)

    def _clock_skew(self, e: ev.SecurityIncident) -> list[Signal]:
        """Sees: a charge point's stamp voltlib did not believe (ahead of its receipt time by more than
        the tolerance, or older than an offline queue can be; gateway/handlers_v16.py). Why: a clock
        that runs wrong prices rentals wrong, and a forged stamp is a way to bill someone. Tune:
        ``clock_skew_alert_every`` (one alert per charge point per period); the tolerances are the
        ``clock_*`` settings."""
        cp = e.charge_point_id
        last = self._skews.get(cp)
        if last is not None and timedelta(0) <= e.at - last < self.tuning.clock_skew_alert_every:
            return []
        if len(self._skews) >= MAX_WINDOWS:
            self._skews.clear()
        self._skews[cp] = e.at
        return [Signal("data", "clock_skew", "warning", cp or None, e.source, e.at, False, dict(e.detail))]

    def _incident_counts(self, e: ev.SecurityIncident) -> list[Signal]:
        """The counted identity detectors (NETWORK_KINDS): a source or an identity tried too often."""
        t, cp, src = self.tuning, e.charge_point_id or None, e.source
        out: list[Signal] = []
        if e.kind in AUTH_FAILURES:
            if cp and self._count((cp, "authfail"), t.auth_window, e.at) == t.failed_auth_per_identity:
                out.append(Signal("identity", "brute_force_identity", "high", cp, src, e.at, False,
                                  {"failures": t.failed_auth_per_identity, **self._crossing((cp, "authfail"))}))
            if src and self._count(("source:" + src, "authfail"), t.auth_window, e.at) == t.failed_auth_per_source:
                out.append(Signal("identity", "brute_force_source", "high", None, src, e.at, False,
                                  {"failures": t.failed_auth_per_source,
                                   **self._crossing(("source:" + src, "authfail"))}))
        elif e.kind in UNKNOWN_IDENTITIES and src \
                and self._count(("source:" + src, "unknown"), t.auth_window, e.at) == t.unknown_identities_per_source:
            out.append(Signal("identity", "identity_scan", "high", None, src, e.at, False,
                              {"unknown_identities": t.unknown_identities_per_source,
                               **self._crossing(("source:" + src, "unknown"))}))
        return out

    def _crossing(self, key: tuple[str, str]) -> dict[str, str]:
        """What names this crossing of a count (NETWORK_KINDS) on every node: the time of the oldest
        failure it counts. Every node counts the same failures, stamped by the node that refused
        them, so each computes the same ``crossing`` for one crossing; the next crossing of the same
        count needs that failure gone from the window, so its ``crossing`` is another."""
        return {CROSSING: min(self._windows[key].times).isoformat()}

    # -- protocol --

    def _violation(self, e: ev.ProtocolViolationSeen) -> list[Signal]:
        """Sees: every frame the session rejected. Why: a laptop speaking through a charge point
        makes malformed or foreign calls; a reused message id is a replay. Tune: ``violation_burst``
        within ``violation_window``."""
        cp, detail = e.charge_point_id, {"code": e.code, "description": e.description, "action": e.action,
                                         "message_id": e.message_id}
        if "already used" in e.description:
            return [Signal("protocol", "replayed_message_id", "high", cp, None, e.at, False, detail)]
        if "did not make" in e.description:
            return [Signal("protocol", "unsolicited_answer", "warning", cp, None, e.at, False, detail)]
        if "rate limit" in e.description:
            return []  # the flood detector (SecurityIncident "flood") decides
        n = self._count((cp, "violation"), self.tuning.violation_window, e.at)
        if n == 1:
            return [Signal("protocol", "protocol_violation", "warning", cp, None, e.at, False, detail)]
        if n == self.tuning.violation_burst:
            return [Signal("protocol", "violation_burst", "high", cp, None, e.at, False, {**detail, "count": n})]
        return []

    def _started(self, e: ev.TransactionStarted) -> list[Signal]:
        self._starts[(e.charge_point_id, e.transaction_id)] = e.at
        if len(self._starts) > 200_000:
            self._starts.pop(next(iter(self._starts)))
        return []

    def _repeated(self, e: ev.TransactionStartRepeated) -> list[Signal]:
        """Sees: a StartTransaction for a transaction voltlib already has (new message id). Why: a
        replay. A retry shortly after the first is normal; after the stop, or late, it is not.
        Tune: ``repeated_start_grace``."""
        key = (e.charge_point_id, e.transaction_id)
        detail = {"transaction_id": e.transaction_id, "id_tag": e.id_tag, "connector_id": e.connector_id}
        if key in self._stopped_set:
            return [Signal("protocol", "replayed_start_transaction", "high", e.charge_point_id, None, e.at, False,
                           {**detail, "transaction": "stopped"})]
        first = self._starts.get(key)
        if first is None or e.at - first > self.tuning.repeated_start_grace:
            return [Signal("protocol", "replayed_start_transaction", "warning", e.charge_point_id, None, e.at,
                           False, detail)]
        return []

    def _stopped_tx(self, e: ev.TransactionStopped) -> list[Signal]:
        """Sees: StopTransaction. Why: a stop for a transaction never started is out of sequence."""
        key = (e.charge_point_id, e.transaction_id)
        if not e.known:
            return [Signal("protocol", "stop_unknown_transaction", "warning", e.charge_point_id, None, e.at, False,
                           {"transaction_id": e.transaction_id})]
        if len(self._stopped) == self._stopped.maxlen:
            self._stopped_set.discard(self._stopped[0])
        self._stopped.append(key)
        self._stopped_set.add(key)
        return []

    # -- data --

    def _meter(self, e: ev.MeterValuesReceived) -> list[Signal]:
        """Sees: MeterValues. Why: a register going backwards or power beyond the rating means a
        tampered meter or forged data; a state-of-charge jump means forged battery data. The first
        register a node sees of a connector is compared with the one stored before it (``seed_meter``),
        so a restart or a move to another node is no blind spot. Tune:
        ``ratings`` / ``rated_power_w`` × ``power_margin``; ``soc_jump_percent`` / ``soc_jump_within``."""
        t, cp, out = self.tuning, e.charge_point_id, []
        state = self._meters.get((cp, e.connector_id))
        if state is None:
            state = self._meters[(cp, e.connector_id)] = _Meter()

        def base() -> dict[str, Any]:  # only when a signal is raised: this runs for every meter value
            return {"connector_id": e.connector_id, "transaction_id": e.transaction_id,
                    "sampled_at": e.sampled_at.isoformat()}
        if e.energy_wh is not None:
            if state.energy_wh is not None and e.energy_wh < state.energy_wh:
                out.append(Signal("data", "energy_register_backwards", "high", cp, None, e.at, False,
                                  {**base(), "was_wh": state.energy_wh, "now_wh": e.energy_wh}))
            state.energy_wh = e.energy_wh
        rating = t.ratings.get(cp, t.rated_power_w)
        if e.power_w is not None and e.power_w > rating * t.power_margin:
            out.append(Signal("data", "power_above_rating", "high", cp, None, e.at, False,
                              {**base(), "power_w": e.power_w, "rating_w": rating}))
        if e.soc_percent is not None:
            if state.soc_tx != e.transaction_id:  # another car: its state of charge starts afresh
                state.soc, state.soc_at, state.soc_tx = None, None, e.transaction_id
            if state.soc is not None and state.soc_at is not None \
                    and abs(e.sampled_at - state.soc_at) <= t.soc_jump_within \
                    and abs(e.soc_percent - state.soc) >= t.soc_jump_percent:
                out.append(Signal("data", "soc_jump", "warning", cp, None, e.at, False,
                                  {**base(), "was": state.soc, "now": e.soc_percent}))
            state.soc, state.soc_at = e.soc_percent, e.sampled_at
        return out

    # -- badges --

    def _badge(self, e: ev.IdTagAuthorized) -> list[Signal]:
        """Sees: badges accepted at charge points, on every node. Why: one badge accepted at two
        stations farther apart than anyone could drive in between is a copied badge (or a lent one).
        Tune: ``badge_travel_kmh``, ``badge_travel_min_km``, ``badge_travel_window``."""
        last, now = self._badge_seen(e)
        if last is None or now is None or last.place.station_id == now.place.station_id:
            return []
        t = self.tuning
        km = distance_km(last.place, now.place)
        minutes = abs((now.at - last.at).total_seconds()) / 60.0
        if km < t.badge_travel_min_km or minutes > t.badge_travel_window.total_seconds() / 60.0:
            return []
        speed = km / (max(minutes, 1.0) / 60.0)
        if speed <= t.badge_travel_kmh:
            return []
        return [Signal("identity", "badge_impossible_travel", "high", e.charge_point_id, None, e.at, False,
                       {"badge": e.id_tag, "from_charge_point": last.charge_point_id, "street_km": round(km, 1),
                        "minutes": round(minutes, 1), "speed_kmh": round(speed)})]

    def _badge_seen(self, e: ev.IdTagAuthorized) -> tuple[_BadgeUse | None, _BadgeUse | None]:
        """Remember an accepted badge where its charge point stands; (its previous use, this one)."""
        place = self._places.get(e.charge_point_id)
        if e.status != "Accepted" or place is None:
            return None, None
        last = self._badges.pop(e.id_tag, None)  # re-inserted last: the dict's order is recency
        now = self._badges[e.id_tag] = _BadgeUse(e.charge_point_id, e.at, place)
        if len(self._badges) > MAX_BADGES:
            del self._badges[next(iter(self._badges))]
        return last, now

    def _data_transfer(self, e: ev.DataTransferReceived) -> list[Signal]:
        """Sees: DataTransfer. Why: the classic exfiltration channel (a vendor nobody configured,
        large payloads, many messages). Tune: ``data_transfer_vendors``, ``data_transfer_max_bytes``,
        ``data_transfers`` within ``data_transfer_window``."""
        t, cp, out = self.tuning, e.charge_point_id, []
        detail = {"vendor_id": e.vendor_id, "message_id": e.message_id, "size": e.size}
        if not e.handled and e.vendor_id not in t.data_transfer_vendors:
            out.append(Signal("data", "data_transfer_unknown_vendor", "warning", cp, None, e.at, False, detail))
        if e.size > t.data_transfer_max_bytes:
            out.append(Signal("data", "data_transfer_large", "high", cp, None, e.at, False, detail))
        if self._count((cp, "datatransfer"), t.data_transfer_window, e.at) == t.data_transfers:
            out.append(Signal("data", "data_transfer_rate", "high", cp, None, e.at, False,
                              {**detail, "count": t.data_transfers}))
        return out

    def _diagnostics(self, e: ev.DiagnosticsStatusChanged) -> list[Signal]:
        """Sees: DiagnosticsStatusNotification. Why: diagnostics carry configuration and logs; an
        upload nobody ordered is exfiltration. Tune: ``order_window``."""
        return self._unordered(e, "diagnostics", e.status, ACTIVE_DIAGNOSTICS)

    def _log(self, e: ev.LogStatusChanged) -> list[Signal]:
        return self._unordered(e, "log", e.status, ACTIVE_LOG)

    def _firmware(self, e: ev.FirmwareStatusChanged) -> list[Signal]:
        return self._unordered(e, "firmware", e.status, ACTIVE_FIRMWARE)

    def _unordered(self, e: ev.Event, what: str, status: str, active: frozenset[str]) -> list[Signal]:
        if status not in active or self._was_ordered(e.charge_point_id, what, e.at):
            return []
        return [Signal("data", f"{what}_unrequested", "high", e.charge_point_id, None, e.at, False,
                       {"status": status})]


# -- the signals one event raises by itself (no memory): also rebuilt from the stored security
# events at start-up when voltlib stopped before alerting on them (security/recovery.py) --

def cp_security_signals(e: ev.ChargePointSecurityEvent) -> list[Signal]:
    detail = {"type": e.type, "tech_info": e.tech_info}
    if e.type in PHYSICAL_EVENTS:
        return [Signal("physical", "tamper_detected", "critical", e.charge_point_id, None, e.at, True, detail)]
    if e.type in HIGH_EVENTS:
        return [Signal("physical", "charge_point_security_event", "high", e.charge_point_id, None, e.at, False, detail)]
    if e.type in WARNING_EVENTS:
        return [Signal("physical", "charge_point_security_event", "warning", e.charge_point_id, None, e.at, False,
                       detail)]
    return []


def car_left_signals(e: ev.CarLeftWithoutRental) -> list[Signal]:
    return [Signal("physical", "car_left_without_rental", "high", e.charge_point_id, None, e.at, True,
                   {"connector_id": e.connector_id, "car_id": e.car_id, "rental_id": e.rental_id})]


INCIDENT_SIGNALS = {  # gateway incident kind → (detector, alert kind, severity)
    "auth_rate_limited": ("identity", "locked_out", "high"),
    "security_profile_downgrade": ("identity", "profile_downgrade", "high"),
    "flood": ("protocol", "flood", "high"),
    "pending_registrations_full": ("identity", "registration_flood", "high"),
    "binary_frame": ("protocol", "binary_frame", "warning"),
    "password_rotation_failed": ("identity", "password_rotation_failed", "warning"),
    "duplicate_identity_takeover": ("identity", "duplicate_identity_takeover", "high"),
    "ocpp_version_changed": ("identity", "ocpp_version_changed", "warning"),
    # a station certificate voltlib asked to renew was not renewed, or expired (gateway/certificate_renewal.py)
    "certificate_renewal_failed": ("identity", "certificate_renewal_failed", "high"),
    "certificate_lapsed": ("identity", "certificate_lapsed", "high"),
    # 2.0.1: a TransactionEvent under a seen (transactionId, seqNo) saying something else (a forgery)
    "transaction_event_replayed": ("protocol", "replayed_transaction_event", "high"),
}


def incident_signals(e: ev.SecurityIncident) -> list[Signal]:
    """What a gateway incident raises at once, besides what is counted (NETWORK_KINDS) and the
    clock_skew alert (one per charge point per period)."""
    cp, src, kind = e.charge_point_id or None, e.source, e.kind
    if kind in CERTIFICATE_REFUSALS:
        return [Signal("identity", kind, "high", cp, src, e.at, False, dict(e.detail))]
    if kind == "duplicate_connection" and e.detail.get("existing_alive") is True:
        return [Signal("identity", "duplicate_identity", "high", cp, src, e.at, False, dict(e.detail))]
    if kind == "security_profile_changed" and e.severity == "high":
        return [Signal("identity", "profile_lowered", "high", cp, src, e.at, False, dict(e.detail))]
    if kind in INCIDENT_SIGNALS:
        detector, name, severity = INCIDENT_SIGNALS[kind]
        return [Signal(detector, name, severity, cp, src, e.at, False, dict(e.detail))]
    return []


def _booted(e: ev.BootNotified, known: Inventory | None) -> Inventory:
    """The inventory after a boot: its fields, with the addresses and certificates seen before."""
    return Inventory(e.vendor, e.model, e.serial_number, e.firmware_version,
                     known.addresses if known is not None else frozenset(),
                     known.certificates if known is not None else frozenset())


def _connected(e: ev.ChargePointConnected, known: Inventory) -> Inventory:
    """The inventory after a connection: its address and client certificate added (bounded)."""
    return Inventory(known.vendor, known.model, known.serial_number, known.firmware_version,
                     _added(known.addresses, e.address, 50), _added(known.certificates, e.certificate_fingerprint, 10))


def _added(values: frozenset[str], value: str | None, cap: int) -> frozenset[str]:
    """``values`` with ``value``, at most ``cap`` of them. The same set when nothing is new: every
    charge point has an inventory, and a new empty set per reconnection was ~0.2 KiB of each
    connection's memory."""
    if not value or value in values:
        return values
    return frozenset(list(values)[:cap - 1]) | {value}


def check_upload_location(cp_id: str, action: str, location: str | None, allow: Iterable[str],
                          at: datetime) -> Signal | None:
    """Sees: the location voltlib itself sent in GetDiagnostics/GetLog/UpdateFirmware. Why: a stolen
    operator token can send a charge point's data anywhere. Tune: ``Tuning.upload_allow`` (URL prefixes)."""
    if action not in UPLOAD_ACTIONS or location is None:
        return None
    if any(location.startswith(prefix) for prefix in allow):
        return None
    return Signal("data", "upload_location_not_allowed", "high", cp_id, None, at, False,
                  {"action": action, "location": location[:200]})


_HANDLERS: dict[type[ev.Event], Any] = {
    ev.ChargePointSecurityEvent: Detectors._cp_security_event,
    ev.ConnectorStatusChanged: Detectors._status,
    ev.CarLeftWithoutRental: Detectors._car_left,
    ev.ChargePointDisconnected: Detectors._disconnected,
    ev.BootNotified: Detectors._boot,
    ev.ChargePointConnected: Detectors._connected,
    ev.SecurityIncident: Detectors._incident,
    ev.ProtocolViolationSeen: Detectors._violation,
    ev.TransactionStarted: Detectors._started,
    ev.TransactionStartRepeated: Detectors._repeated,
    ev.TransactionStopped: Detectors._stopped_tx,
    ev.MeterValuesReceived: Detectors._meter,
    ev.IdTagAuthorized: Detectors._badge,
    ev.DataTransferReceived: Detectors._data_transfer,
    ev.DiagnosticsStatusChanged: Detectors._diagnostics,
    ev.LogStatusChanged: Detectors._log,
    ev.FirmwareStatusChanged: Detectors._firmware,
}
