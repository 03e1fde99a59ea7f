"""What a message handler may use: the charge point it serves and voltlib's services."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from voltlib.bus import Bus
from voltlib.clock import Clock
from voltlib.cluster import Cluster, SingleNode
from voltlib.config import Settings
from voltlib.domain.idtags import Decision
from voltlib.store.db import Store
from voltlib.telemetry.counters import CallStats

if TYPE_CHECKING:
    from voltlib.gateway.datatransfer import DataTransferRouter
    from voltlib.security.ca import StationCertificateSigner
    from voltlib.security.v2g import V2GBackend


class Authorizer(Protocol):
    """Decides Authorize requests before the id-tag table does (car sharing: member badges).
    ``None`` means "not mine": the id-tag table decides. ``proven``: the token is an eMAID whose
    contract certificate voltlib checked (2.0.1 Plug & Charge)."""

    async def authorize(self, cp_id: str, id_tag: str, now: datetime, *, proven: bool = False) -> Decision | None: ...


@dataclass
class Services:
    settings: Settings
    store: Store
    bus: Bus
    clock: Clock
    data_transfer: DataTransferRouter
    certificate_authority: StationCertificateSigner | None = None  # signs charge-point CSRs (security/ca.py)
    v2g_backend: V2GBackend | None = None  # ISO 15118 certificates and OCSP (security/v2g.py)
    authorizer: Authorizer | None = None
    cluster: Cluster = field(default_factory=SingleNode)  # other gateway nodes (voltlib.cluster)
    # Charge points in quarantine, as this node knows them (kept by the security responder): the
    # gateway logs their every frame in full, whatever ``message_log`` says.
    quarantined: set[str] = field(default_factory=set)
    calls: CallStats = field(default_factory=CallStats)  # counted by the connections, read by /metrics
    draining: bool = False  # stopping (SIGTERM): /api/v1/ready and WebSocket upgrades answer 503 (server.drain)


@dataclass(slots=True)
class ChargePointContext:
    """One per connected charge point (slots: 20,000 of them share a 30 KiB-per-connection budget)."""

    cp_id: str
    address: str
    security_profile: int
    registration: str
    services: Services
    trace_until: datetime | None = None  # every frame logged in full until then (Gateway.set_trace)
    ocpp_version: str = "1.6"  # negotiated at the upgrade (gateway/versions.py)
    # A bay of a car-sharing station when it connected: only there can a state-of-charge reading
    # race a car's departure, so only there is it written before the answer (handlers_v16.meter_values).
    is_bay: bool = True
    # Work a handler wants done once its reply is on the wire, e.g. a call to the charge point that
    # must not overtake the answer (CertificateSigned after SignCertificate.conf).
    after_reply: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # 2.0.1: what this connection knows of the station's open transactions, by its transactionId
    # (gateway/transactions_v201.py: the periodic meter values' fast path)
    open_transactions: dict[str, object] = field(default_factory=dict)
    # Set by a handler when the database holds the whole of the call it answers: left out of a
    # "compact" raw log, as MeterValues are (connection.STORED_ELSEWHERE). Reset for each call.
    stored_whole: bool = False
