"""Station certificates voltlib issued are renewed before they lapse (docs/security.md, "Renewal of
station certificates"), over real 2.0.1 sockets, on SQLite and PostgreSQL.

A station gets its certificate the usual way (SignCertificate → CertificateSigned); the test then
ages the stored certificate (its ``installed_at``/``not_after`` moved back, as if installed a year
ago) and runs one renewal round (what the server does hourly).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ocpp.v201 import call
from sqlalchemy import Connection, update

from tests.conformance.conftest import Api
from tests.conformance_v201.conftest import Station, connect
from tests.conftest import RunningServer
from voltlib.gateway.certificate_renewal import CertificateRenewal
from voltlib.store import station_certificates as certs
from voltlib.store.tables import station_certificates

CS = "OCTT-CS-RENEW"


def _csr() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CS)])
    return x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256()) \
        .public_bytes(serialization.Encoding.PEM).decode()


async def _certified(server: RunningServer, cs: Station) -> dict[str, Any]:
    """The station's first certificate, installed; its stored row."""
    assert (await cs.send(call.SignCertificate(csr=_csr(), certificate_type="ChargingStationCertificate"))).status \
        == "Accepted"
    await server.settled()
    await cs.settle()
    row = await server.store.read(partial(certs.get, cp_id=CS))
    assert row is not None and row["renewal_requested_at"] is None
    return row


async def _age(server: RunningServer, left: timedelta) -> None:
    """As if the certificate had been installed a year ago and had ``left`` to live."""
    now = datetime.now(UTC)

    def age(conn: Connection) -> None:
        conn.execute(update(station_certificates).where(station_certificates.c.charge_point_id == CS)
                     .values(installed_at=now + left - timedelta(days=365), not_after=now + left))

    await server.store.write(age)


def _sign_when_triggered(cs: Station) -> None:
    async def sign(requested_message: str, **_: Any) -> None:
        if requested_message == "SignChargingStationCertificate":
            await cs.send(call.SignCertificate(csr=_csr(), certificate_type="ChargingStationCertificate"))

    cs.follow_ups["TriggerMessage"] = sign


async def _alerts(api: Api) -> list[str]:
    await api.server.settled()
    return [a["kind"] for a in await api.get(f"/api/v1/security/alerts?charge_point_id={CS}")]


async def test_a_certificate_near_expiry_is_renewed_before_it_lapses(ca_server: RunningServer, ca_api: Api) -> None:
    renewal = CertificateRenewal(ca_server.gateway)
    await ca_server.add_charge_point(CS)
    async with connect(ca_server, CS) as cs:
        await cs.booted()
        first = await _certified(ca_server, cs)
        assert await renewal.check() == []  # a year to live: not due
        await _age(ca_server, timedelta(days=29))
        _sign_when_triggered(cs)
        assert await renewal.check() == [CS]
        await cs.settle()
        await ca_server.settled()
        await cs.settle()
        assert await renewal.check() == []  # the new certificate ended the renewal
    [trigger] = cs.got("TriggerMessage")
    assert trigger["requested_message"] == "SignChargingStationCertificate"
    assert len(cs.got("CertificateSigned")) == 2
    renewed = await ca_server.store.read(partial(certs.get, cp_id=CS))
    assert renewed is not None and renewed["serial_number"] != first["serial_number"]
    assert renewed["renewal_requested_at"] is None and renewed["not_after"] > first["not_after"]
    assert not {"certificate_renewal_failed", "certificate_lapsed"} & set(await _alerts(ca_api))


async def test_a_renewal_the_station_refuses_is_alerted_and_asked_again_a_day_later(
        ca_server: RunningServer, ca_api: Api) -> None:
    renewal = CertificateRenewal(ca_server.gateway)
    await ca_server.add_charge_point(CS)
    async with connect(ca_server, CS) as cs:
        await cs.booted()
        await _certified(ca_server, cs)
        await _age(ca_server, timedelta(days=10))
        cs.replies["TriggerMessage"] = {"status": "Rejected"}
        assert await renewal.check() == [CS]
        assert await renewal.check() == []  # not again within certificate_renew_retry_hours
    assert await _alerts(ca_api) == ["certificate_renewal_failed"]
    row = await ca_server.store.read(partial(certs.get, cp_id=CS))
    assert row is not None and row["renewal_requested_at"] is not None


async def test_a_renewed_certificate_the_station_rejects_is_alerted(ca_server: RunningServer, ca_api: Api) -> None:
    renewal = CertificateRenewal(ca_server.gateway)
    await ca_server.add_charge_point(CS)
    async with connect(ca_server, CS) as cs:
        await cs.booted()
        first = await _certified(ca_server, cs)
        await _age(ca_server, timedelta(days=5))
        _sign_when_triggered(cs)
        cs.replies["CertificateSigned"] = {"status": "Rejected"}
        assert await renewal.check() == [CS]
        await cs.settle()
        await ca_server.settled()
    assert "certificate_renewal_failed" in await _alerts(ca_api)
    kept = await ca_server.store.read(partial(certs.get, cp_id=CS))
    assert kept is not None and kept["serial_number"] == first["serial_number"]  # the old one is still installed


async def test_a_certificate_that_lapses_unrenewed_is_alerted_once(ca_server: RunningServer, ca_api: Api) -> None:
    renewal = CertificateRenewal(ca_server.gateway)
    await ca_server.add_charge_point(CS)
    async with connect(ca_server, CS) as cs:
        await cs.booted()
        await _certified(ca_server, cs)
        await _age(ca_server, timedelta(hours=-1))
        cs.replies["TriggerMessage"] = {"status": "Rejected"}
        await renewal.check()
        await renewal.check()
    assert sorted(await _alerts(ca_api)) == ["certificate_lapsed", "certificate_renewal_failed"]


async def test_an_offline_station_is_not_asked(ca_server: RunningServer, ca_api: Api) -> None:
    renewal = CertificateRenewal(ca_server.gateway)
    await ca_server.add_charge_point(CS)
    async with connect(ca_server, CS) as cs:
        await cs.booted()
        await _certified(ca_server, cs)
    await _age(ca_server, timedelta(days=10))
    assert await renewal.check() == []
    row = await ca_server.store.read(partial(certs.get, cp_id=CS))
    assert row is not None and row["renewal_requested_at"] is None  # asked once it is back
