"""The certificates voltlib had installed on stations, and their renewal (``station_certificates``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, or_, select, update

from voltlib.store.tables import station_certificates as t

STATION = "ChargingStationCertificate"


def installed(conn: Connection, cp_id: str, certificate_type: str, serial_number: str, fingerprint: str,
              not_after: datetime, now: datetime) -> None:
    """The station accepted this certificate: it replaces the one of its type, renewal settled."""
    conn.execute(delete(t).where(t.c.charge_point_id == cp_id, t.c.certificate_type == certificate_type))
    conn.execute(insert(t).values(charge_point_id=cp_id, certificate_type=certificate_type,
                                  serial_number=serial_number[:40], fingerprint=fingerprint, not_after=not_after,
                                  installed_at=now))


def get(conn: Connection, cp_id: str, certificate_type: str = STATION) -> dict[str, Any] | None:
    row = conn.execute(select(t).where(t.c.charge_point_id == cp_id, t.c.certificate_type == certificate_type)).first()
    return None if row is None else dict(row._mapping)


def due(conn: Connection, expiring_before: datetime, asked_before: datetime) -> list[dict[str, Any]]:
    """Station certificates expiring before ``expiring_before`` whose renewal was not asked for since
    ``asked_before`` (voltlib.security.renewal decides; this only narrows the rows read)."""
    rows = conn.execute(select(t).where(
        t.c.certificate_type == STATION, t.c.not_after <= expiring_before,
        or_(t.c.renewal_requested_at.is_(None), t.c.renewal_requested_at <= asked_before))
        .order_by(t.c.not_after).limit(1000))
    return [dict(row._mapping) for row in rows]


def lapsed(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    """Station certificates expired and not yet alerted as such."""
    rows = conn.execute(select(t).where(t.c.certificate_type == STATION, t.c.not_after < now,
                                        t.c.lapsed_alerted_at.is_(None)).limit(1000))
    return [dict(row._mapping) for row in rows]


def asked(conn: Connection, cp_id: str, serial_number: str, now: datetime) -> bool:
    """The station was asked to renew that certificate (if it is still the installed one)."""
    result = conn.execute(update(t).where(and_(t.c.charge_point_id == cp_id, t.c.certificate_type == STATION,
                                               t.c.serial_number == serial_number)).values(renewal_requested_at=now))
    return result.rowcount > 0


def alerted_lapsed(conn: Connection, cp_id: str, serial_number: str, now: datetime) -> bool:
    """Claim the lapse alert of that certificate: True for the one caller (of any node) that sets it."""
    result = conn.execute(update(t).where(and_(t.c.charge_point_id == cp_id, t.c.certificate_type == STATION,
                                               t.c.serial_number == serial_number, t.c.lapsed_alerted_at.is_(None)))
                          .values(lapsed_alerted_at=now))
    return result.rowcount > 0
