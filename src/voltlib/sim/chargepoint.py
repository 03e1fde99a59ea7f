"""A simulated charge point with N connectors, over its own real WebSocket, speaking OCPP 1.6J or 2.0.1.

It is meant to behave like a small, honest piece of hardware, for tests, demos and the city
simulator. This module is the hardware and the people at it, the same whatever the post speaks:

- cars plugged in and unplugged, meters integrating energy, power shared between connectors
  within the charging profiles in force, batteries filling up;
- members badging (authorize, then start or stop charging), cars returned, faults, tamper alarms;
- reservations, availability, the local authorization list and cache, resets.

What goes on the wire is the dialect's (:mod:`voltlib.sim.dialect_v16`, :mod:`voltlib.sim.dialect_v201`,
chosen by ``ocpp_version``): it turns what happens here into that version's messages and the
central system's commands into what happens here. The connection, the boot, the heartbeat and the
ordered outbox that survives a lost connection are :mod:`voltlib.sim.link`'s.

All time comes from the injected :class:`voltlib.clock.Clock` (timestamps, metering) and the
injected ``sleep`` (intervals; by default the clock's own), so a city simulator can run it faster
than the wall clock. Transport waits (``call_timeout``, ``connect_timeout``) are wall seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from voltlib.clock import Clock
from voltlib.sim.dialect import Dialect, dialect_for
from voltlib.sim.hardware import (
    Car,
    ConfigKey,
    Connector,
    Reservation,
    SimError,
    SimOptions,
    Transaction,
    default_configuration,
    truthy,
)
from voltlib.sim.link import CallFailed, FollowUp, Link, NotConnected, Payload, Sleep
from voltlib.sim.profiles import ProfileStore, format_time, parse_time

log = logging.getLogger(__name__)

__all__ = ["CallFailed", "Car", "ConfigKey", "Connector", "FollowUp", "NotConnected", "Payload", "Reservation",
           "SimError", "SimOptions", "SimulatedChargePoint", "Transaction"]


class SimulatedChargePoint(Link):
    """One charge point. ``url`` is the central system's OCPP endpoint without the identity,
    e.g. ``ws://127.0.0.1:8180/ocpp``; the identity is appended. Several URLs (the nodes behind a
    load balancer, as the charge point would meet them): it keeps to the one that last answered and,
    when connecting fails, tries the next one in turn. ``ocpp_version``: "1.6" or "2.0.1"."""

    def __init__(self, cp_id: str, url: str | Sequence[str], *, password: str | None = None,
                 options: SimOptions | None = None, clock: Clock | None = None, sleep: Sleep | None = None,
                 http: aiohttp.ClientSession | None = None, ocpp_version: str = "1.6") -> None:
        o = options or SimOptions()
        super().__init__(cp_id, url, password=password, options=o, clock=clock, sleep=sleep, http=http)
        self.connectors: dict[int, Connector] = {i: Connector(i) for i in range(1, o.connectors + 1)}
        self.operative = True  # connector 0: the charge point as a whole
        self.firmware_version = o.firmware_version
        self.registration: str | None = None  # the last BootNotification answer
        self.heartbeat_interval = o.heartbeat_interval
        self.configuration: dict[str, ConfigKey] = default_configuration(o, password)
        self.profiles = ProfileStore(o.connectors)
        self.local_list: dict[str, Payload] = {}  # id token -> its 1.6-shaped idTagInfo (status, expiryDate)
        self.local_list_version = 0
        self.auth_cache: dict[str, Payload] = {}
        self.diagnostics_status = "Idle"
        self.firmware_status = "Idle"
        self.log_status = "Idle"
        self._local_ids = 0
        self.dialect: Dialect = dialect_for(ocpp_version)(self)

    @property
    def ocpp_version(self) -> str:
        return self.dialect.version

    def _stamp(self, now: datetime) -> str:
        """A time as this post's clock reads it (``clock_offset`` from the truth)."""
        return format_time(now + self.clock_offset)

    def _started(self, now: datetime) -> None:
        for c in self.connectors.values():
            c.updated_at = now

    def _after_boot(self) -> None:
        for c in self.connectors.values():
            c.reported = None
        self.dialect.reset_reports()
        self._report(0)
        self._refresh()

    # ==== connectors and their state =============================================================

    def connector(self, connector_id: int) -> Connector:
        try:
            return self.connectors[connector_id]
        except KeyError:
            raise SimError(f"{self.cp_id} has no connector {connector_id}") from None

    def _desired_status(self, c: Connector) -> str:
        if c.error_code != "NoError":
            return "Faulted"
        if c.transaction is not None:
            if c.power_w > 0:
                return "Charging"
            return "SuspendedEV" if c.car is not None and c.car.demand_w() == 0 else "SuspendedEVSE"
        if not (c.operative and self.operative):
            return "Unavailable"
        if c.reservation is not None:
            return "Reserved"
        if c.car is not None:
            return "Finishing" if c.finished else "Preparing"
        return "Available"

    def _refresh(self, c: Connector | None = None) -> None:
        """Integrate energy, recompute every connector's power and status, and report the changes.
        (Power is shared between connectors, so one connector's change can change the others'.)"""
        self._rebalance()
        for connector in self.connectors.values():
            connector.status = self._desired_status(connector)
            if connector.status != connector.reported:
                connector.reported = connector.status
                self._report(connector.connector_id)

    def _report(self, connector_id: int) -> None:
        self.dialect.report_status(connector_id)

    def _advance(self, c: Connector) -> None:
        """Integrate the energy delivered since the last update."""
        now = self.clock.now()
        if c.updated_at is not None and c.power_w > 0:
            seconds = max(0.0, (now - c.updated_at).total_seconds())
            energy = c.power_w * seconds / 3600.0
            if c.car is not None:
                energy = c.car.absorb(energy)
            c.energy_wh += energy
        c.updated_at = now

    def _rebalance(self) -> None:
        """Share the charge point's power between charging connectors, within every profile's limit."""
        for c in self.connectors.values():
            self._advance(c)  # at the old power, up to now
        now = self.clock.now()
        charging = [c for c in self.connectors.values() if c.transaction is not None]
        supply = self.options.max_power_w
        cp_limit = self.profiles.charge_point_limit(now)
        if cp_limit is not None:
            supply = min(supply, cp_limit)
        share = supply / len(charging) if charging else 0.0
        for c in self.connectors.values():
            tx = c.transaction
            if tx is None:
                c.power_w = 0.0
                continue
            limit = min(self.options.connector_power_w, share)
            connector_limit = self.profiles.connector_limit(c.connector_id, now, tx.transaction_id, tx.started_at)
            if connector_limit is not None:
                limit = min(limit, connector_limit)
            demand = c.car.demand_w() if c.car is not None else self.options.connector_power_w
            c.power_w = max(0.0, min(limit, demand))

    def composite_schedule(self, connector_id: int, duration: int, unit: str,
                           transaction_key: int | None) -> tuple[datetime, dict[str, Any]] | None:
        """What a connector (0: the whole post) will draw from now for ``duration`` s, under the
        profiles installed (the transaction's own named by ``transaction_key``, as each dialect keys
        it), and now; None for a connector the post has not."""
        if connector_id != 0 and connector_id not in self.connectors:
            return None
        now = self.clock.now()
        tx = self.connectors[connector_id].transaction if connector_id else None
        hardware = self.options.max_power_w if connector_id == 0 else self.options.connector_power_w
        return now, self.profiles.composite(connector_id, now, duration, unit, hardware, transaction_key,
                                            tx.started_at if tx else None)

    def _active_transaction(self, connector_id: int) -> int | None:
        c = self.connectors.get(connector_id)
        if c is None or c.transaction is None:
            return None
        return c.transaction.transaction_id or -c.transaction.local_id

    async def _tick_loop(self) -> None:
        while True:
            now = self.clock.now()
            for c in self.connectors.values():
                if c.reservation is not None and c.reservation.expiry <= now:
                    log.info("%s: reservation %d expired", self.cp_id, c.reservation.reservation_id)
                    self.dialect.reservation_ended(c.reservation, "Expired")
                    c.reservation = None
            self._refresh()
            for c in self.connectors.values():
                interval = int(self.configuration["MeterValueSampleInterval"].value)
                tx = c.transaction
                if tx is not None and interval > 0 and c.next_sample_at is not None and now >= c.next_sample_at:
                    self.dialect.transaction_sampled(c, tx)
                    c.next_sample_at = now + timedelta(seconds=interval)
            await self._sleep(self.options.tick)

    def _sample(self, c: Connector, context: str) -> Payload:
        """One MeterValue, in the dialect's shape, of the measurands in MeterValuesSampledData."""
        return self.dialect.meter_value(c, context)

    def sampled_measurands(self) -> set[str]:
        return {m.strip() for m in self.configuration["MeterValuesSampledData"].value.split(",")}

    # ==== what people do at the charge point =====================================================

    def plug_in(self, connector_id: int, car: Car | None = None) -> None:
        """A car is plugged into the connector."""
        c = self.connector(connector_id)
        if c.car is not None:
            raise SimError(f"connector {connector_id} already has a car")
        c.car = car or Car()
        c.finished = False
        self._refresh(c)

    def unplug(self, connector_id: int) -> None:
        """The car leaves (a running transaction ends with reason EVDisconnected)."""
        c = self.connector(connector_id)
        if c.transaction is not None:
            self.stop_transaction(connector_id, reason="EVDisconnected")
        c.car = None
        c.finished = False
        self._refresh(c)

    async def authorize(self, id_tag: str) -> str:
        """The authorization status for ``id_tag``: asked to the central system when online, else from
        the local authorization list and cache (LocalAuthorizeOffline)."""
        local = self._local_status(id_tag)
        if local == "Accepted" and truthy(self.configuration["LocalPreAuthorize"].value):
            return local
        if self.accepted.is_set():
            action, payload = self.dialect.authorize_request(id_tag)
            try:
                result = await self._call(action, payload)
            except CallFailed:
                pass
            else:
                info = self.dialect.authorize_info(result)
                self._cache(id_tag, info)
                return str(info["status"])
        if not truthy(self.configuration["LocalAuthorizeOffline"].value):
            return "Invalid"
        if local is not None:
            return local
        return "Accepted" if truthy(self.configuration["AllowOfflineTxForUnknownId"].value) else "Invalid"

    def _local_status(self, id_tag: str) -> str | None:
        info = None
        if truthy(self.configuration["LocalAuthListEnabled"].value):
            info = self.local_list.get(id_tag)
        if info is None and truthy(self.configuration["AuthorizationCacheEnabled"].value):
            info = self.auth_cache.get(id_tag)
        if info is None:
            return None
        status = str(info.get("status", "Invalid"))
        expiry = info.get("expiryDate")
        if status == "Accepted" and expiry and parse_time(str(expiry)) <= self.clock.now():
            return "Expired"
        return status

    def _cache(self, id_tag: str, info: Payload) -> None:
        if truthy(self.configuration["AuthorizationCacheEnabled"].value) and "status" in info:
            self.auth_cache[id_tag] = dict(info)

    async def badge(self, connector_id: int, id_tag: str) -> str:
        """A member presents a badge at a connector: stop their own transaction there, or authorize
        and start one. Returns the authorization status (``Accepted`` when it started or stopped)."""
        c = self.connector(connector_id)
        tx = c.transaction
        if tx is not None:
            if tx.id_tag != id_tag:
                return "Occupied"
            self.stop_transaction(connector_id, reason="Local", id_tag=id_tag)
            return "Accepted"
        if c.status in ("Unavailable", "Faulted"):
            return "Unavailable"
        if c.reservation is not None and id_tag not in (c.reservation.id_tag, c.reservation.parent_id_tag):
            return "Reserved"
        status = await self.authorize(id_tag)
        self.stats[f"badge:{status}"] += 1
        if status == "Accepted" and c.transaction is None:
            self.start_transaction(connector_id, id_tag, trigger="Authorized")
        return status

    def start_transaction(self, connector_id: int, id_tag: str, *, trigger: str = "CablePluggedIn",
                          remote_start_id: int | None = None) -> Transaction:
        """Start charging now (authorization already done); the dialect queues what says so.
        ``trigger``: why it starts, in 2.0.1's words (CablePluggedIn: the car identified itself
        when plugged in; Authorized: a badge; RemoteStart: the central system asked)."""
        c = self.connector(connector_id)
        if c.transaction is not None:
            raise SimError(f"connector {connector_id} is already in a transaction")
        if c.status in ("Unavailable", "Faulted"):
            raise SimError(f"connector {connector_id} is {c.status}")
        if c.car is None:
            c.car = Car()
        self._advance(c)
        reservation_id = None
        if c.reservation is not None and id_tag in (c.reservation.id_tag, c.reservation.parent_id_tag):
            reservation_id = c.reservation.reservation_id
            c.reservation = None
        now = self.clock.now()
        self._local_ids += 1
        tx = Transaction(self._local_ids, connector_id, id_tag, int(c.energy_wh), now, reservation_id,
                         remote_start_id=remote_start_id)
        if c.status != "Preparing":  # the cable and the badge: Preparing comes first
            c.status = c.reported = "Preparing"
            self._report(connector_id)
        self.dialect.transaction_started(c, tx, trigger)
        c.transaction = tx
        c.finished = False
        interval = int(self.configuration["MeterValueSampleInterval"].value)
        c.next_sample_at = now + timedelta(seconds=interval) if interval > 0 else None
        self.stats["transactions_started"] += 1
        self._refresh(c)
        return tx

    def stop_transaction(self, connector_id: int, *, reason: str = "Local", id_tag: str | None = None
                         ) -> Transaction | None:
        """Stop the connector's transaction (``reason`` in 1.6's words); the dialect queues what says so."""
        c = self.connector(connector_id)
        tx = c.transaction
        if tx is None:
            return None
        self._advance(c)
        now = self.clock.now()
        tx.stopped_at, tx.meter_stop = now, int(c.energy_wh)
        self.dialect.transaction_stopped(c, tx, reason, id_tag)
        c.transaction = None
        c.power_w = 0.0
        c.next_sample_at = None
        c.finished = c.car is not None
        self.profiles.end_transaction(connector_id)
        if c.scheduled_operative is not None:
            c.operative, c.scheduled_operative = c.scheduled_operative, None
        self.stats["transactions_stopped"] += 1
        self._refresh(c)
        return tx

    def set_fault(self, connector_id: int, error_code: str | None) -> None:
        """Make a connector Faulted with ``error_code`` (e.g. ``GroundFailure``), or clear it with None."""
        c = self.connector(connector_id)
        c.error_code = error_code or "NoError"
        if error_code is not None and c.transaction is not None:
            self.stop_transaction(connector_id, reason="Other")
        self._refresh(c)

    def report_security_event(self, kind: str, tech_info: str | None = None) -> None:
        """SecurityEventNotification (1.6 security whitepaper, 2.0.1 A04), e.g. ``TamperDetectionActivated``."""
        payload: Payload = {"type": kind, "timestamp": self._stamp(self.clock.now())}
        if tech_info:
            payload["techInfo"] = tech_info[:255]
        self._enqueue("SecurityEventNotification", payload)

    # ==== what the central system's commands do, in either version ===============================

    async def answer(self, action: str, payload: Payload) -> Payload:
        """The answer to one central-system command, without its follow-up actions (for tests and
        inspection). Raises :class:`OcppError` for a request that must be answered with a CallError."""
        return self.dialect.dispatch(action, payload)[0]

    def transaction_by(self, predicate: Any) -> Connector | None:
        """The connector whose transaction satisfies ``predicate`` (None: no such transaction)."""
        return next((c for c in self.connectors.values()
                     if c.transaction is not None and predicate(c.transaction)), None)

    def reserve(self, connector_id: int, reservation_id: int, id_tag: str, parent_id_tag: str | None,
                expiry: datetime) -> str:
        """Hold a connector for ``id_tag``: Accepted, Faulted, Unavailable, Occupied or Rejected."""
        c = self.connectors.get(connector_id)
        if c is None:
            return "Rejected"
        for other in self.connectors.values():  # the same reservation id replaces the old reservation
            if other.reservation is not None and other.reservation.reservation_id == reservation_id:
                other.reservation = None
                self._refresh(other)
        if c.status == "Faulted":
            return "Faulted"
        if c.status == "Unavailable":
            return "Unavailable"
        if c.transaction is not None or c.car is not None or c.reservation is not None:
            return "Occupied"
        c.reservation = Reservation(reservation_id, connector_id, id_tag, parent_id_tag, expiry)
        self._refresh(c)
        return "Accepted"

    def cancel_reservation(self, reservation_id: int) -> bool:
        for c in self.connectors.values():
            if c.reservation is not None and c.reservation.reservation_id == reservation_id:
                c.reservation = None
                self._refresh(c)
                return True
        return False

    def change_availability(self, connector_id: int, operative: bool) -> str:
        """Connector 0: the whole charge point. Accepted, Scheduled (after the transaction) or Rejected."""
        if connector_id != 0 and connector_id not in self.connectors:
            return "Rejected"
        targets = list(self.connectors.values()) if connector_id == 0 else [self.connectors[connector_id]]
        status = "Accepted"
        if connector_id == 0 and self.operative != operative:
            self.operative = operative
            self._report(0)
        for c in targets:
            if c.transaction is not None and c.operative != operative:
                c.scheduled_operative = operative
                status = "Scheduled"
            else:
                c.operative, c.scheduled_operative = operative, None
            self._refresh(c)
        return status

    def install_profile(self, connector_id: int, body: Payload) -> str:
        """A charging profile (1.6 csChargingProfiles shape): Accepted or Rejected; the power follows."""
        status = self.profiles.install(connector_id, body, self._active_transaction(connector_id))
        for c in self.connectors.values():
            self._refresh(c)
        return status

    def clear_profiles(self, profile_id: int | None, connector_id: int | None, purpose: str | None,
                       stack_level: int | None) -> bool:
        removed = self.profiles.clear(profile_id, connector_id, purpose, stack_level)
        for c in self.connectors.values():
            self._refresh(c)
        return removed

    async def unlock(self, connector_id: int) -> None:
        c = self.connectors[connector_id]
        if c.transaction is not None:
            self.stop_transaction(connector_id, reason="UnlockCommand")
        if c.car is not None:
            self.unplug(connector_id)

    async def reboot(self, *, hard: bool = False) -> None:
        """Reset: stop transactions, (soft: send what is queued first), drop the connection, boot again."""
        for c in self.connectors.values():
            if c.transaction is not None:
                self.stop_transaction(c.connector_id, reason="HardReset" if hard else "SoftReset")
        if not hard:
            await self.wait_drained(self.options.call_timeout)
        self._needs_boot = True
        self.stats["reboots"] += 1
        await self._hang_up(b"rebooting")

    def install_firmware(self) -> None:
        """The new firmware runs after a reboot: the next BootNotification reports it."""
        parts = self.firmware_version.split(".")
        if len(parts) >= 2 and parts[1].isdigit():
            parts[1] = str(int(parts[1]) + 1)
            self.firmware_version = ".".join(parts)
        else:
            self.firmware_version = f"{self.firmware_version}+1"
        self.firmware_status = "Idle"
        self.spawn(self.reboot(hard=False), "firmware-reboot")

    def on_heartbeat_interval(self, interval: int) -> None:
        self._set_heartbeat(interval)

    def on_sample_interval(self, interval: int) -> None:
        """MeterValueSampleInterval changed: the next sample of each transaction is that far away."""
        now = self.clock.now()
        for c in self.connectors.values():
            if c.transaction is not None:
                c.next_sample_at = now + timedelta(seconds=interval) if interval > 0 else None
