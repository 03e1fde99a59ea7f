"""Returns signed certificates to charge points (security whitepaper A02/A03, steps 8-10; 2.0.1 A02,
A03 and, for ISO 15118, the V2G certificate).

The SignCertificate handlers (1.6, and 2.0.1 in :mod:`voltlib.gateway.certificates_v201`) check the
CSR and answer; this subscriber, fed the resulting :class:`CertificateSigningRequested` event once
the answer is sent, has it signed and sends CertificateSigned.req. A charge-point certificate is
signed by the CPO's CA (:class:`voltlib.security.ca.StationCertificateSigner`: the built-in one or
an external CA's adapter); a 2.0.1 V2GCertificate by the V2G back end
(:class:`voltlib.security.v2g.V2GBackend`). When the charge point accepts a charge-point
certificate, it is recorded for the renewal (``station_certificates``), and if its connection is
pinned to a certificate fingerprint the pin moves to the new certificate, since the charge point
switches to it as soon as it is valid (A02.FR.08) and would otherwise lock itself out. A failure
during a renewal voltlib asked for raises the ``certificate_renewal_failed`` alert.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from cryptography import x509

from voltlib.domain.commands import InstallCertificate
from voltlib.events import CertificateSigningRequested, Event
from voltlib.gateway.certificate_alerts import renewal_failed
from voltlib.gateway.gateway import Gateway
from voltlib.security.ca import CsrRejected, Issued, StationCertificateSigner, check_csr, issued
from voltlib.security.v2g import V2GBackend, V2GRefused
from voltlib.store import repo
from voltlib.store import station_certificates as certs

log = logging.getLogger(__name__)

V2G = "V2GCertificate"


class CertificateIssuer:
    def __init__(self, gateway: Gateway, ca: StationCertificateSigner | None,
                 v2g: V2GBackend | None = None) -> None:
        self.gateway, self.ca, self.v2g = gateway, ca, v2g

    def install(self) -> None:
        # node scope: the request comes from a charge point held here, which alone gets the answer
        self.gateway.services.bus.subscribe(self.on_request, CertificateSigningRequested, name="certificate-issuer",
                                            scope="node")

    async def on_request(self, event: Event) -> None:
        assert isinstance(event, CertificateSigningRequested)
        s = self.gateway.services
        cp_id = event.charge_point_id
        v2g = event.certificate_type == V2G
        try:
            signed = await (self._v2g(event) if v2g else self._station(event))
        except (CsrRejected, V2GRefused) as exc:  # refused by the CA or back end, or too long: nothing sent
            await self._finish(event, "failed", "warning", {"reason": str(exc)})
            return
        key, chain = signed
        await s.store.write(partial(repo.set_csr_state, request_id=event.request_id, state="signed"))
        outcome = await self.gateway.commands.send(cp_id, InstallCertificate(chain.chain_pem, "V2GCertificate" if v2g
                                                                             else "ChargingStationCertificate"),
                                                   requested_by="certificate-authority")
        row, status = outcome.record, outcome.status
        detail = {"command_id": row["id"], "serial_number": format(chain.serial_number, "x"),
                  "fingerprint": chain.fingerprint, "not_after": chain.not_after.isoformat(),
                  "key": key, "status": status, "state": row["state"], "certificate_type": event.certificate_type}
        if status != "Accepted":
            await self._finish(event, "not_installed", "warning", detail)
            return
        await s.store.write(partial(certs.installed, cp_id=cp_id, certificate_type=event.certificate_type,
                                    serial_number=format(chain.serial_number, "x"), fingerprint=chain.fingerprint,
                                    not_after=chain.not_after, now=s.clock.now()))
        record = await s.store.read(partial(repo.get_charge_point, cp_id=cp_id))
        if not v2g and record is not None and record.certificate_fingerprint:
            await s.store.write(partial(repo.update_charge_point, cp_id=cp_id,
                                        certificate_fingerprint=chain.fingerprint))
            detail["pin_moved"] = True
        await self._finish(event, "installed", "info", detail)

    async def _station(self, event: CertificateSigningRequested) -> tuple[str, Issued]:
        s = self.gateway.services
        if self.ca is None:
            raise CsrRejected("no certificate authority is configured")
        checked = check_csr(event.csr, event.charge_point_id, s.settings.cpo_name)
        return checked.key_description, await asyncio.to_thread(self.ca.sign, checked, s.clock.now())

    async def _v2g(self, event: CertificateSigningRequested) -> tuple[str, Issued]:
        if self.v2g is None:
            raise V2GRefused("no V2G back end is configured")
        chain = await self.v2g.sign_v2g_csr(event.charge_point_id, event.csr)
        try:
            leaf = x509.load_pem_x509_certificates(chain.encode())[0]
        except (ValueError, IndexError):
            raise V2GRefused("the V2G back end answered no PEM certificate") from None
        return "V2G", issued(leaf, chain)

    async def _finish(self, event: CertificateSigningRequested, state: str, severity: str,
                      detail: dict[str, object]) -> None:
        s = self.gateway.services
        now = s.clock.now()
        await s.store.write(partial(repo.set_csr_state, request_id=event.request_id, state=state))
        await s.store.write(partial(repo.record_security_event, kind=f"certificate_{state}", severity=severity,
                                    charge_point_id=event.charge_point_id, source="central-system",
                                    detail={"request_id": event.request_id, **detail}, now=now))
        log.info("certificate request %s from %s: %s", event.request_id, event.charge_point_id, state)
        if state != "installed" and event.certificate_type != V2G:
            await renewal_failed(s, event.charge_point_id, {"request_id": event.request_id,
                                                                       "state": state, **detail})

