"""Settings, from (highest first) command-line flags, ``VOLTLIB_*`` environment variables,
a TOML file (``--config`` or ``VOLTLIB_CONFIG``), and the defaults below."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from ipaddress import ip_network
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

OcppVersion = Literal["1.6", "2.0.1"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VOLTLIB_", extra="forbid")

    database_url: str = "sqlite:///voltlib.db"
    host: str = "127.0.0.1"
    port: int = 8180
    # TLS listener for security profiles 2 and 3; disabled when tls_port is 0.
    tls_port: int = 0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # CA that signs charge-point certificates (profile 3)
    tls_client_crl: Path | None = None  # that CA's revocation list(s), PEM: a revoked certificate fails TLS
    # CA that signs the CSRs charge points send in SignCertificate (whitepaper A02/A03); without
    # both files SignCertificate is answered Rejected. Usually the CA named by tls_client_ca.
    ca_cert: Path | None = None
    ca_key: Path | None = None
    charge_point_cert_days: int = Field(365, ge=1, le=3650)
    cpo_name: str | None = None  # when set, a CSR's subject O must equal it (A02.FR.13)
    # An external CA in place of ca_cert/ca_key: "package.module:factory", called with these settings,
    # returning a voltlib.security.ca.StationCertificateSigner (docs/security.md, "Certificates over 2.0.1").
    certificate_authority_factory: str | None = None
    # The ISO 15118 / contract back end (V2G CSRs, Get15118EVCertificate, GetCertificateStatus):
    # "package.module:factory" returning a voltlib.security.v2g.V2GBackend; None answers them Rejected/Failed.
    v2g_backend: str | None = None
    # Renewal of station certificates voltlib issued: TriggerMessage SignChargingStationCertificate when
    # the installed one expires within certificate_renew_days, again every certificate_renew_retry_hours
    # until a new one is installed; an alert when the station refuses or the certificate lapses.
    certificate_renew_days: int = Field(30, ge=1, le=365)
    certificate_renew_retry_hours: float = Field(24.0, gt=0, le=24 * 30)

    registration_policy: Literal["reject", "pending"] = "reject"
    max_pending_registrations: int = Field(1000, ge=0)  # beyond it, unknown ids get 404 even under "pending"
    # OCPP versions offered at ws(s)://.../ocpp/<id>; with both, 2.0.1 is preferred (docs/operations.md).
    ocpp_versions: list[OcppVersion] = Field(default_factory=lambda: list[OcppVersion](["1.6", "2.0.1"]),
                                             min_length=1)
    heartbeat_interval: int = Field(300, ge=10, le=86400)
    pending_retry_interval: int = Field(60, ge=10, le=86400)
    command_timeout: float = Field(30.0, gt=0)
    # A password rotation whose answer never came: how long the charge point may log in with the new
    # key (which then becomes its password) besides the old one (docs/security.md).
    password_rotation_grace_hours: float = Field(168.0, ge=0)
    meter_value_retention_days: int = Field(90, ge=1)
    message_log_retention_days: int = Field(30, ge=1)
    # Raw OCPP log (docs/operations.md, "Raw message log"): "full" keeps every exchange with its
    # bodies; "compact" leaves out accepted MeterValues and Heartbeat calls, whose content is
    # stored already (the meter_values table, the charge point's last-seen time).
    message_log: Literal["full", "compact"] = "compact"

    max_frame_bytes: int = Field(64 * 1024, ge=1024)
    rate_per_second: float = Field(20.0, gt=0)
    rate_burst: float = Field(200.0, ge=1)
    flood_seconds: float = Field(60.0, gt=0)
    ping_interval: float = Field(30.0, gt=0)
    duplicate_probe_timeout: float = Field(5.0, gt=0)
    # A live connection gives way to a newcomer from the address the charge point last connected
    # from once that many of its duplicates were refused within the window, in seconds (docs/security.md).
    duplicate_takeover_after: int = Field(3, ge=1)
    duplicate_takeover_window: float = Field(600.0, gt=0)
    auth_failures_per_minute: int = Field(10, ge=1)  # per identity
    auth_failures_per_source_per_minute: int = Field(100, ge=1)  # per address: many stations share a NAT

    # Garbage collection with many connections (voltlib.gcpolicy): survivors are frozen every
    # gc_freeze_interval seconds (0: CPython's default behaviour) and everything is collected once
    # every gc_full_collect_interval seconds.
    gc_freeze_interval: float = Field(1.0, ge=0)
    gc_full_collect_interval: float = Field(3600.0, gt=0)

    # Operator dashboard map: optional online tile URL template ("https://tiles.example/{z}/{x}/{y}.png");
    # empty (the default) keeps the map offline, on the packaged basemap (docs/web.md).
    dashboard_tile_url: str = ""

    # security operations (issue 5, docs/security.md)
    security_webhook_url: str | None = None  # POSTed a JSON body for every new alert outside a work order
    security_auto_response: bool = True  # quarantine automatically on tamper / cabinet opened (Policy)
    security_upload_allow: list[str] = []  # URL prefixes allowed for diagnostics/log uploads and firmware
    security_rated_power_w: float = Field(22_000.0, gt=0)  # default connector rating for the power check
    # Detector thresholds by name (voltlib.security.detectors.Tuning; durations in seconds), e.g.
    # {failed_auth_per_identity = 3, auth_window = 300}; unknown names or bad values stop the server.
    security_thresholds: dict[str, Any] = {}
    # PEM bundle of the manufacturer roots a SignedUpdateFirmware signing certificate must be issued by;
    # None relays any (the charge point still checks the signature against its own root).
    firmware_signer_roots: Path | None = None

    # Clock policy (docs/car-sharing.md, "Clock policy"): a charge point's stamp ahead of voltlib's
    # receipt time is never used (the receipt time is); ahead by more than clock_ahead_seconds it is a
    # clock_skew security event. A stamp behind is believed (offline queues) up to clock_behind_hours.
    clock_ahead_seconds: float = Field(120.0, ge=0)
    clock_behind_hours: float = Field(168.0, gt=0)

    # smart charging (issue 4, docs/energy.md)
    smart_charging: bool = True  # plan every station's charging and send charging profiles
    charging_connector_rated_w: float = Field(3_000.0, gt=0)  # a bay's rating when not set (Autolib' posts: ~3 kW)
    station_limit_fraction: float = Field(1.0, gt=0, le=1)  # a station's grid limit when not set: this x its ratings
    charging_reserved_range_km: float = Field(100.0, ge=0)  # a reserved car charges first until it has this range
    # plan with what ISO 15118 cars report of their needs (2.0.1 NotifyEVChargingNeeds: energy, departure, max
    # power); false: stored and answered, but planned as a 1.6 post's session (the comparison's baseline)
    charging_use_car_needs: bool = True
    # state of charge (docs/energy.md): cars pushing telematics over MQTT, e.g. "mqtt://127.0.0.1:1883"
    telematics_mqtt_url: str | None = None

    # Several gateway nodes: the NATS server they share (events, commands, duplicate probes;
    # voltlib.cluster). None: this node is alone.
    bus_url: str | None = None
    cluster_name: str = Field("main", pattern=r"^[A-Za-z0-9_-]{1,32}$")  # deployments sharing a NATS server
    reuse_port: bool = False  # SO_REUSEPORT: several nodes on one host share the port, the kernel spreads connections

    # Simulated time (docs/simulator.md): voltlib's clock runs time_scale times faster than the wall
    # clock, from time_origin (default: the wall time at start). 1 and no origin: the wall clock.
    time_scale: float = Field(1.0, ge=1.0, le=1000.0)
    time_origin: datetime | None = None
    # Unix seconds of the wall clock at which time_origin holds (default: this process's start). A
    # simulation that restarts voltlib (a crash drill) passes the first process's, so both read one clock.
    time_wall_start: float | None = Field(None, gt=0)

    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"  # json: one object per line (docs/operations.md, "Logs")

    # Operations (docs/operations.md): this node's name in metrics and logs (default: host:port), and
    # who may read /metrics: anyone reaching metrics_port (0: no such listener), or on the main port
    # whoever sends "Authorization: Bearer <metrics_token>" (unset: /metrics is not on the main port).
    node_name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(0, ge=0, le=65535)
    metrics_token: SecretStr | None = None
    # Load balancers whose X-Forwarded-For is believed (addresses or CIDR blocks, e.g. ["10.0.0.5/32"]):
    # the charge point's address for the security detectors and lock-outs (docs/operations.md).
    trusted_proxies: list[str] = []
    # SIGTERM: how long the node waits for its charge points' calls under way before closing their
    # sockets all the same (docs/operations.md, "Stopping a node").
    drain_timeout: float = Field(10.0, ge=0)

    def node(self) -> str:
        """This node's name (``node_name``, else host:port): in metrics, logs, and on the commands it sends."""
        return self.node_name or f"{socket.gethostname()}:{self.port}"

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        """Refused at start when one is not an address or a CIDR block."""
        for entry in value:
            ip_network(entry, strict=False)
        return value

    @field_validator("time_origin")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        """An origin without a zone is read as UTC."""
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings with ``overrides`` (flags that were given) on top; the TOML file is ``config_file``
    or else the one ``VOLTLIB_CONFIG`` names."""
    path = config_file or (Path(os.environ["VOLTLIB_CONFIG"]) if os.environ.get("VOLTLIB_CONFIG") else None)

    class FromFile(Settings):
        model_config = SettingsConfigDict(env_prefix="VOLTLIB_", extra="forbid", toml_file=path)

    return FromFile(**{k: v for k, v in overrides.items() if v is not None})
