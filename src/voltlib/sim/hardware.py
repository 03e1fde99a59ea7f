"""The simulated charge point's physical world: cars, connectors, transactions, reservations, its
settings, and how it is built. Plain records, the same whatever OCPP version the post speaks."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime


class SimError(Exception):
    """The simulation was asked something its hardware cannot do (no such connector, busy...)."""


@dataclass
class Car:
    """A car plugged into a connector. ``battery_wh`` None: the car does not report a state of charge."""

    battery_wh: float | None = 30_000.0  # an Autolib' Bluecar has a 30 kWh LMP battery
    soc: float = 40.0  # percent
    max_power_w: float = 7_400.0
    # ISO 15118: the car tells a 2.0.1 post what it needs when plugged in (NotifyEVChargingNeeds)
    iso15118: bool = False
    departure: datetime | None = None  # when it expects to leave (None: it does not say)
    target_soc: float | None = None  # percent it wants by then (None: full)

    def energy_needed_wh(self) -> int:
        """What the car asks for: up to its target (or full), as the battery counts it."""
        if self.battery_wh is None:
            return 0
        target = 100.0 if self.target_soc is None else self.target_soc
        return max(0, round((target - self.soc) / 100.0 * self.battery_wh))

    @property
    def full(self) -> bool:
        return self.battery_wh is not None and self.soc >= 100.0

    def demand_w(self) -> float:
        return 0.0 if self.full else self.max_power_w

    def absorb(self, energy_wh: float) -> float:
        """Take up to ``energy_wh``; return what the battery actually took."""
        if self.battery_wh is None:
            return energy_wh
        room = max(0.0, (100.0 - self.soc) / 100.0 * self.battery_wh)
        taken = min(room, energy_wh)
        self.soc = min(100.0, self.soc + taken / self.battery_wh * 100.0)
        return taken


@dataclass
class Transaction:
    local_id: int
    connector_id: int
    id_tag: str
    meter_start: int
    started_at: datetime
    reservation_id: int | None = None
    transaction_id: int | None = None  # 1.6: the central system's id, once StartTransaction is answered
    id_tag_status: str | None = None  # the central system's verdict on id_tag (1.6 idTagInfo.status)
    confirmed: asyncio.Event = field(default_factory=asyncio.Event)
    stopped_at: datetime | None = None
    meter_stop: int | None = None
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))  # 2.0.1: the station names its transactions
    remote_start_id: int | None = None  # 2.0.1: the RequestStartTransaction that asked for it


@dataclass
class Reservation:
    reservation_id: int
    connector_id: int
    id_tag: str
    parent_id_tag: str | None
    expiry: datetime


@dataclass
class Connector:
    connector_id: int
    status: str = "Available"  # in 1.6's words (the richer set); a 2.0.1 post reports it mapped
    error_code: str = "NoError"
    energy_wh: float = 0.0  # the meter's Energy.Active.Import.Register
    power_w: float = 0.0
    car: Car | None = None
    transaction: Transaction | None = None
    reservation: Reservation | None = None
    operative: bool = True
    scheduled_operative: bool | None = None  # a ChangeAvailability waiting for the transaction to end
    finished: bool = False  # a transaction ended and the car is still plugged in
    updated_at: datetime | None = None
    next_sample_at: datetime | None = None
    reported: str | None = None  # the status last queued for the central system
    plugged_at: datetime | None = None  # when the car now plugged in arrived


@dataclass
class ConfigKey:
    """One setting of the post (a 1.6 configuration key; 2.0.1 variables map onto them)."""

    value: str
    readonly: bool = False
    kind: str = "str"  # int | bool | str | csl
    write_only: bool = False


@dataclass(frozen=True)
class SimOptions:
    """How one simulated charge point is built and how patient it is."""

    connectors: int = 2
    vendor: str = "Bollore"
    model: str = "Bluestation"
    firmware_version: str = "1.0.0"
    serial_number: str | None = None
    connector_power_w: float = 7_400.0  # hardware limit of each connector
    max_power_w: float = 22_000.0  # supply of the whole charge point, shared by its connectors
    meter_interval: int = 60  # MeterValueSampleInterval until the central system changes it
    heartbeat_interval: int = 300  # until BootNotification says otherwise
    call_timeout: float = 10.0
    connect_timeout: float = 10.0
    reconnect_min: float = 1.0
    reconnect_max: float = 30.0
    boot_retry_cap: float | None = None  # cap on the Pending/Rejected retry interval (tests)
    step_delay: float = 1.0  # between diagnostics/firmware/log status notifications
    reboot_delay: float = 1.0  # how long a Reset keeps the charge point off the network
    tick: float = 1.0  # how often energy, reservations and sampling are updated


def truthy(text: str) -> bool:
    return text.strip().lower() == "true"


def default_configuration(o: SimOptions, password: str | None) -> dict[str, ConfigKey]:
    """The post's settings as it leaves the factory (OCPP 1.6 configuration keys)."""
    return {
        "AllowOfflineTxForUnknownId": ConfigKey("false", kind="bool"),
        "AuthorizationCacheEnabled": ConfigKey("true", kind="bool"),
        "AuthorizationKey": ConfigKey(password or "", kind="str", write_only=True),
        "AuthorizeRemoteTxRequests": ConfigKey("false", kind="bool"),
        "ChargeProfileMaxStackLevel": ConfigKey("10", readonly=True, kind="int"),
        "ChargingScheduleAllowedChargingRateUnit": ConfigKey("Current,Power", readonly=True, kind="csl"),
        "ChargingScheduleMaxPeriods": ConfigKey("24", readonly=True, kind="int"),
        "ClockAlignedDataInterval": ConfigKey("0", kind="int"),
        "ConnectionTimeOut": ConfigKey("60", kind="int"),
        "GetConfigurationMaxKeys": ConfigKey("50", readonly=True, kind="int"),
        "HeartbeatInterval": ConfigKey(str(o.heartbeat_interval), kind="int"),
        "LocalAuthListEnabled": ConfigKey("true", kind="bool"),
        "LocalAuthListMaxLength": ConfigKey("1000", readonly=True, kind="int"),
        "LocalAuthorizeOffline": ConfigKey("true", kind="bool"),
        "LocalPreAuthorize": ConfigKey("false", kind="bool"),
        "MaxChargingProfilesInstalled": ConfigKey("10", readonly=True, kind="int"),
        "MeterValueSampleInterval": ConfigKey(str(o.meter_interval), kind="int"),
        "MeterValuesSampledData": ConfigKey("Energy.Active.Import.Register,Power.Active.Import,SoC", kind="csl"),
        "NumberOfConnectors": ConfigKey(str(o.connectors), readonly=True, kind="int"),
        "ReserveConnectorZeroSupported": ConfigKey("false", readonly=True, kind="bool"),
        "ResetRetries": ConfigKey("1", kind="int"),
        "SecurityProfile": ConfigKey("1" if password else "0", readonly=True, kind="int"),
        "SendLocalListMaxLength": ConfigKey("1000", readonly=True, kind="int"),
        "StopTransactionOnEVSideDisconnect": ConfigKey("true", readonly=True, kind="bool"),
        "StopTransactionOnInvalidId": ConfigKey("true", kind="bool"),
        "SupportedFeatureProfiles": ConfigKey("Core,FirmwareManagement,LocalAuthListManagement,Reservation,"
                                              "SmartCharging,RemoteTrigger", readonly=True, kind="csl"),
        "TransactionMessageAttempts": ConfigKey("3", kind="int"),
        "TransactionMessageRetryInterval": ConfigKey("5", kind="int"),
        "UnlockConnectorOnEVSideDisconnect": ConfigKey("true", readonly=True, kind="bool"),
    }


def valid_value(key: str, entry: ConfigKey, value: str) -> bool:
    """Whether ``value`` may be written to the setting ``key``."""
    if entry.kind == "int":
        try:
            return int(value.strip()) >= 0
        except ValueError:
            return False
    if entry.kind == "bool":
        return value.strip().lower() in ("true", "false")
    if key == "AuthorizationKey":  # passwordString of the security whitepaper: 16 to 40 characters
        return 16 <= len(value) <= 40
    if key == "MeterValuesSampledData":
        allowed = {"Energy.Active.Import.Register", "Power.Active.Import", "SoC"}
        return all(v.strip() in allowed for v in value.split(",") if v.strip())
    return True
