"""The alerts of certificate renewal, shared by the SignCertificate handler, the issuer and the
renewal runner (no import of the gateway: the handlers are part of it)."""

from __future__ import annotations

from functools import partial

from voltlib.events import SecurityIncident
from voltlib.gateway.context import Services
from voltlib.store import repo
from voltlib.store import station_certificates as certs


async def renewal_failed(s: Services, cp_id: str, detail: dict[str, object]) -> None:
    """Alert ``certificate_renewal_failed`` when voltlib asked this station to renew its certificate
    (a renewal is under way) and a step failed; nothing when no renewal was asked for."""
    current = await s.store.read(partial(certs.get, cp_id=cp_id))
    if current is None or current["renewal_requested_at"] is None:
        return
    await raise_incident(s, cp_id, "certificate_renewal_failed", "high",
                         {**detail, "expires": current["not_after"].isoformat()})


async def raise_incident(s: Services, cp_id: str, kind: str, severity: str, detail: dict[str, object]) -> None:
    """A security event, published for the detectors (which turn these kinds into alerts)."""
    now = s.clock.now()
    await s.store.write(partial(repo.record_security_event, kind=kind, severity=severity, charge_point_id=cp_id,
                                source="central-system", detail=detail, now=now))
    await s.bus.publish(SecurityIncident(charge_point_id=cp_id, at=now, kind=kind, severity=severity,
                                         source="central-system", detail=detail))
