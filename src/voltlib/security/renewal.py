"""When a station certificate is renewed (pure: no I/O). The runner is
:mod:`voltlib.gateway.certificate_renewal`; docs/security.md, "Renewal of station certificates".

A certificate is due when ``renew_before`` (``certificate_renew_days``, 30 days by default) or a
third of its lifetime remains, whichever is less: voltlib asks the station for a new CSR. 30 days
leave room for a station offline a few weeks, for a CSR refused once and sent again, and for an
operator to act on the alert a refusal raises, well before the station loses its TLS identity.
Asked once, it is asked again only after ``retry_every`` (``certificate_renew_retry_hours``) until
a new certificate is installed, which replaces the row and so ends the renewal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class RenewalPolicy:
    renew_before: timedelta = timedelta(days=30)
    retry_every: timedelta = timedelta(hours=24)

    def due(self, not_after: datetime, installed_at: datetime, requested_at: datetime | None,
            now: datetime) -> bool:
        """Ask the station for a new CSR now? When ``renew_before`` or a third of the certificate's
        lifetime remains, whichever is less: a certificate shorter-lived than the window (a test
        CA's, days long) is not renewed again the moment it is installed."""
        window = min(self.renew_before, (not_after - installed_at) / 3)
        if not_after - window > now:
            return False
        return requested_at is None or now - requested_at >= self.retry_every

    def lapsed(self, not_after: datetime, now: datetime) -> bool:
        return now >= not_after
