"""Returns signed certificates to charge points (security whitepaper A02/A03, steps 8-10).

The SignCertificate handler checks the CSR and answers; this subscriber, fed the resulting
:class:`CertificateSigningRequested` event once the answer is sent, has the CA sign it and sends
CertificateSigned.req. When the charge point accepts a certificate and its connection is pinned
to a certificate fingerprint, the pin moves to the new certificate, since the charge point
switches to it as soon as it is valid (A02.FR.08) and would otherwise lock itself out.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from voltlib.domain.commands import InstallCertificate
from voltlib.events import CertificateSigningRequested, Event
from voltlib.gateway.gateway import Gateway
from voltlib.security.ca import CertificateAuthority, CsrRejected, check_csr
from voltlib.store import repo

log = logging.getLogger(__name__)


class CertificateIssuer:
    def __init__(self, gateway: Gateway, ca: CertificateAuthority) -> None:
        self.gateway, self.ca = gateway, ca

    def install(self) -> None:
        # node scope: the request comes from a charge point held here, which alone gets the answer
        self.gateway.services.bus.subscribe(self.on_request, CertificateSigningRequested, name="certificate-issuer",
                                            scope="node")

    async def on_request(self, event: Event) -> None:
        assert isinstance(event, CertificateSigningRequested)
        s = self.gateway.services
        cp_id = event.charge_point_id
        try:
            checked = check_csr(event.csr, cp_id, s.settings.cpo_name)
            issued = await asyncio.to_thread(self.ca.sign, checked, s.clock.now())
        except CsrRejected as exc:  # the chain came out too long: nothing was sent
            await self._finish(event, "failed", "warning", {"reason": str(exc)})
            return
        await s.store.write(partial(repo.set_csr_state, request_id=event.request_id, state="signed"))
        outcome = await self.gateway.commands.send(cp_id, InstallCertificate(issued.chain_pem),
                                                   requested_by="certificate-authority")
        row, status = outcome.record, outcome.status
        detail = {"command_id": row["id"], "serial_number": format(issued.serial_number, "x"),
                  "fingerprint": issued.fingerprint, "not_after": issued.not_after.isoformat(),
                  "key": checked.key_description, "status": status, "state": row["state"]}
        if status != "Accepted":
            await self._finish(event, "not_installed", "warning", detail)
            return
        record = await s.store.read(partial(repo.get_charge_point, cp_id=cp_id))
        if record is not None and record.certificate_fingerprint:
            await s.store.write(partial(repo.update_charge_point, cp_id=cp_id,
                                        certificate_fingerprint=issued.fingerprint))
            detail["pin_moved"] = True
        await self._finish(event, "installed", "info", detail)

    async def _finish(self, event: CertificateSigningRequested, state: str, severity: str,
                      detail: dict[str, object]) -> None:
        s = self.gateway.services
        await s.store.write(partial(repo.set_csr_state, request_id=event.request_id, state=state))
        await s.store.write(partial(repo.record_security_event, kind=f"certificate_{state}", severity=severity,
                                    charge_point_id=event.charge_point_id, source="central-system",
                                    detail={"request_id": event.request_id, **detail}, now=s.clock.now()))
        log.info("certificate request %s from %s: %s", event.request_id, event.charge_point_id, state)
