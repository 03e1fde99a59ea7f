"""Renews station certificates before they lapse (docs/security.md, "Renewal of station certificates").

Once an hour (voltlib's clock) the certificates voltlib had installed (``station_certificates``)
are read; each one the policy (:mod:`voltlib.security.renewal`) finds due, on a charge point held by
this node, gets a TriggerMessage SignChargingStationCertificate (1.6: ExtendedTriggerMessage
SignChargePointCertificate) through the command port, the request committed first so a restart or
another node does not ask twice. The station then sends its CSR and the usual path
(:mod:`voltlib.gateway.certificates`) signs and installs the new certificate, which ends the
renewal. A station that does not accept the trigger, a CSR refused, or a certificate not installed
raises ``certificate_renewal_failed`` (high); a certificate that expires unrenewed raises
``certificate_lapsed`` (high) once.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial

from voltlib.clock import period
from voltlib.domain.commands import CommandRefused, Trigger
from voltlib.gateway.certificate_alerts import raise_incident
from voltlib.gateway.gateway import Gateway
from voltlib.security.renewal import RenewalPolicy
from voltlib.store import station_certificates as certs

log = logging.getLogger(__name__)

CHECK_EVERY = 3600.0  # seconds of voltlib's clock
MIN_WALL = 60.0


class CertificateRenewal:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        s = gateway.services.settings
        self.policy = RenewalPolicy(timedelta(days=s.certificate_renew_days),
                                    timedelta(hours=s.certificate_renew_retry_hours))

    async def run(self) -> None:
        clock = self.gateway.services.clock
        while True:
            try:
                await self.check()
            except Exception:  # a database hiccup: the next round tries again
                log.exception("certificate renewal round failed")
            await clock.sleep(period(clock, CHECK_EVERY, MIN_WALL))

    async def check(self) -> list[str]:
        """One round; returns the charge points asked for a new CSR."""
        s = self.gateway.services
        now = s.clock.now()
        for row in await s.store.read(partial(certs.lapsed, now=now)):  # online or not; one node alerts
            if self.policy.lapsed(row["not_after"], now) and await s.store.write(partial(
                    certs.alerted_lapsed, cp_id=row["charge_point_id"], serial_number=row["serial_number"], now=now)):
                await raise_incident(self.gateway.services, row["charge_point_id"], "certificate_lapsed", "high",
                                     {"serial_number": row["serial_number"], "expired": row["not_after"].isoformat()})
        asked = []
        rows = await s.store.read(partial(certs.due, expiring_before=now + self.policy.renew_before,
                                          asked_before=now - self.policy.retry_every))
        for row in rows:
            cp_id = row["charge_point_id"]
            if cp_id not in self.gateway.connections \
                    or not self.policy.due(row["not_after"], row["installed_at"], row["renewal_requested_at"], now):
                continue  # offline, or held by another node: asked when it is back, by the node holding it
            await s.store.write(partial(certs.asked, cp_id=cp_id, serial_number=row["serial_number"], now=now))
            asked.append(cp_id)
            await self._ask(cp_id, row)
        return asked

    async def _ask(self, cp_id: str, row: dict[str, object]) -> None:
        detail: dict[str, object] = {"serial_number": row["serial_number"], "expires": str(row["not_after"])}
        try:
            outcome = await self.gateway.commands.send(cp_id, Trigger("SignCertificate"),
                                                       requested_by="certificate-renewal")
        except CommandRefused as exc:
            await raise_incident(self.gateway.services, cp_id, "certificate_renewal_failed", "high",
                                 {**detail, "step": "trigger", "refused": exc.title})
            return
        if not outcome.accepted:
            await raise_incident(self.gateway.services, cp_id, "certificate_renewal_failed", "high",
                                 {**detail, "step": "trigger", "state": outcome.state, "status": outcome.status,
                                  "command_id": outcome.record.get("id")})
        else:
            log.info("%s asked to renew its certificate (expires %s)", cp_id, row["not_after"])
