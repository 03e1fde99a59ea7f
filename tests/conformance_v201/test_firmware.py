"""OCA OCPP 2.0.1 conformance, CSMS under test: block L, firmware management (part 6, 3.12).

Each test is named after its case in src/voltlib/data/csms-test-cases-ocpp201.txt. voltlib trusts
one manufacturer root (``firmware_signer_roots``); the operator orders UpdateFirmware through the
API with a certificate it issued and an ECDSA signature over the firmware; the scripted station
answers and reports its progress. After every FirmwareStatusNotification the test reads the charge
point back through the API: each status is stored before it is answered.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from ocpp.v201 import call

from tests.conformance.conftest import Api, now_iso
from tests.conformance.test_security import _certificate, _pem
from tests.conformance_v201.conftest import VALID, Station, connect
from tests.conftest import RunningServer, free_port, start_server
from voltlib.config import Settings

CS = "OCTT-CS-201"
FIRMWARE = b"\x7fELF voltlib OCTT 2.0.1 firmware 3.0 " * 64
MANUFACTURER_ROOT = _certificate("OCTT Manufacturer Root 201", ca=True)
SUCCESS = ["Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting", "Installed"]


@pytest_asyncio.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[RunningServer]:
    """voltlib speaking 2.0.1 beside 1.6, trusting MANUFACTURER_ROOT for firmware, on both stores."""
    roots = tmp_path / "manufacturer-roots.pem"
    roots.write_text(_pem(MANUFACTURER_ROOT[0]))
    settings = Settings(database_url=database_url, port=free_port(), command_timeout=5.0,
                        duplicate_probe_timeout=1.0, ocpp_versions=["1.6", "2.0.1"], firmware_signer_roots=roots)
    runner, running = await start_server(settings)
    try:
        yield running
    finally:
        await runner.cleanup()
        await asyncio.sleep(0)


def signed_firmware(root: tuple[x509.Certificate, Any] = MANUFACTURER_ROOT, *,
                    tamper: bool = False) -> dict[str, Any]:
    """A 2.0.1 FirmwareType as the manufacturer hands it to the operator."""
    signer, key = _certificate("OCTT Firmware Signer 201", issuer=root)
    signature = key.sign(FIRMWARE + (b"tampered" if tamper else b""), ec.ECDSA(hashes.SHA256()))
    return {"location": "https://firmware.example.com/octt/cs-3.0.bin", "retrieveDateTime": now_iso(),
            "signingCertificate": _pem(signer), "signature": base64.b64encode(signature).decode()}


def update(request_id: int, firmware: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"requestId": request_id, "retries": 1, "retryInterval": 60, "firmware": firmware or signed_firmware()}


class Progress:
    """The station's side of an update: it sends ``statuses`` and records, after each, the
    firmware status voltlib shows for it (committed before the answer, so equal at once)."""

    def __init__(self, cs: Station, api: Api) -> None:
        self.cs, self.api = cs, api
        self.stored: list[str] = []

    async def report(self, request_id: int, statuses: list[str]) -> None:
        for status in statuses:
            await self.cs.send(call.FirmwareStatusNotification(status=status, request_id=request_id))
            self.stored.append((await self.api.charge_point(CS))["firmware_status"])
            if status == "InstallRebooting":  # the new firmware boots (L01.FR.24: reason FirmwareUpdate)
                boot = await self.cs.boot(reason="FirmwareUpdate", firmwareVersion="3.0")
                assert boot.status == "Accepted"

    def after_update(self, statuses: list[str], *, security_event: str | None = None) -> None:
        async def follow(request_id: int, **_: object) -> None:
            await self.report(request_id, statuses)
            if security_event is not None:
                await self.cs.send(call.SecurityEventNotification(type=security_event, timestamp=now_iso(),
                                                                  tech_info=f"requestId {request_id}"))

        self.cs.follow_ups["UpdateFirmware"] = follow


async def alerts(api: Api) -> set[str]:
    await api.server.settled()
    return {a["kind"] for a in await api.get(f"/api/v1/security/alerts?charge_point_id={CS}")}


async def _kinds(api: Api) -> list[tuple[str, str]]:
    return [(e["kind"], e["severity"]) for e in await api.security_events() if e["charge_point_id"] == CS]


async def _secure_update(server: RunningServer, api: Api, statuses: list[str], *, answer: str = "Accepted",
                         security_event: str | None = None, firmware: dict[str, Any] | None = None,
                         ) -> tuple[Station, dict[str, Any], Progress]:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        progress = Progress(cs, api)
        cs.replies["UpdateFirmware"] = {"status": answer}
        if answer == "Accepted":
            progress.after_update(statuses, security_event=security_event)
        elif security_event is not None:
            async def report(**_: object) -> None:
                await cs.send(call.SecurityEventNotification(type=security_event, timestamp=now_iso()))
            cs.follow_ups["UpdateFirmware"] = report
        sent = update(7, firmware)
        row = await api.command(CS, "UpdateFirmware", sent)
        await cs.settle()
    [got] = cs.got("UpdateFirmware")
    assert got["firmware"]["signing_certificate"] == sent["firmware"]["signingCertificate"]
    assert got["firmware"]["signature"] == sent["firmware"]["signature"]
    assert (row["state"], row["response"]) == ("answered", {"status": answer})
    assert progress.stored == (statuses if answer == "Accepted" else [])
    return cs, row, progress


async def test_TC_L_01_Secure_Firmware_Update_Installation_successful(server: RunningServer, api: Api) -> None:
    await _secure_update(server, api, SUCCESS, security_event="FirmwareUpdated")
    detail = await api.charge_point(CS)
    assert (detail["firmware_status"], detail["firmware_version"]) == ("Installed", "3.0")
    assert ("charge_point:FirmwareUpdated", "info") in await _kinds(api)
    # ordered through the API: neither the statuses nor the new version are unexpected
    assert not {"firmware_unrequested", "firmware_changed_unordered"} & await alerts(api)


async def test_TC_L_02_Secure_Firmware_Update_InstallScheduled(server: RunningServer, api: Api) -> None:
    statuses = ["Downloading", "Downloaded", "SignatureVerified", "InstallScheduled", "Installing", "Installed"]
    await _secure_update(server, api, statuses)
    assert (await api.charge_point(CS))["firmware_status"] == "Installed"


async def test_TC_L_03_Secure_Firmware_Update_DownloadScheduled(server: RunningServer, api: Api) -> None:
    statuses = ["DownloadScheduled", "Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed"]
    await _secure_update(server, api, statuses)
    assert (await api.charge_point(CS))["firmware_status"] == "Installed"


async def test_TC_L_04_Secure_Firmware_Update_RevokedCertificate(server: RunningServer, api: Api) -> None:
    """The signer is trusted by voltlib but revoked by the station's own list: it answers
    RevokedCertificate and reports InvalidFirmwareSigningCertificate (L01.FR.02)."""
    await _secure_update(server, api, [], answer="RevokedCertificate",
                         security_event="InvalidFirmwareSigningCertificate")
    assert (await api.charge_point(CS))["firmware_status"] is None  # nothing started
    assert ("charge_point:InvalidFirmwareSigningCertificate", "info") in await _kinds(api)
    assert "charge_point_security_event" in await alerts(api)


async def test_TC_L_05_Secure_Firmware_Update_InvalidCertificate(server: RunningServer, api: Api) -> None:
    await _secure_update(server, api, [], answer="InvalidCertificate",
                         security_event="InvalidFirmwareSigningCertificate")
    assert "charge_point_security_event" in await alerts(api)


async def test_TC_L_05_a_signer_voltlib_does_not_trust_never_reaches_the_station(
        server: RunningServer, api: Api) -> None:
    """voltlib's own gate (docs/security.md): an untrusted signer, an unsigned update or a signature
    the signer's key cannot have made are refused before dispatch (422), never sent nor recorded."""
    await server.add_charge_point(CS)
    impostor = signed_firmware(_certificate("OCTT Manufacturer Root 201", ca=True))  # same name, other key
    good = signed_firmware()
    unsigned = {k: v for k, v in good.items() if k not in ("signingCertificate", "signature")}
    no_signature = {k: v for k, v in good.items() if k != "signature"}
    garbled = {**good, "signature": base64.b64encode(b"not a DER signature").decode()}
    async with connect(server, CS) as cs:
        await cs.booted()
        for firmware, code in ((impostor, "untrusted-firmware-signer"), (unsigned, "invalid-signing-certificate"),
                               (no_signature, "missing-firmware-signature"), (garbled, "invalid-firmware-signature")):
            response: httpx.Response = await api.http.post(f"/api/v1/charge-points/{CS}/commands/UpdateFirmware",
                                                           json=update(8, firmware))
            assert response.status_code == 422 and response.json()["title"] == code, response.text
    assert cs.got("UpdateFirmware") == []
    assert await api.commands(CS) == []


async def test_TC_L_06_Secure_Firmware_Update_InvalidSignature(server: RunningServer, api: Api) -> None:
    await _secure_update(server, api, ["Downloading", "Downloaded", "InvalidSignature"],
                         security_event="InvalidFirmwareSignature", firmware=signed_firmware(tamper=True))
    assert (await api.charge_point(CS))["firmware_status"] == "InvalidSignature"
    assert ("charge_point:InvalidFirmwareSignature", "critical") in await _kinds(api)
    assert "charge_point_security_event" in await alerts(api)


async def test_TC_L_07_Secure_Firmware_Update_DownloadFailed(server: RunningServer, api: Api) -> None:
    await _secure_update(server, api, ["Downloading", "DownloadFailed"])
    assert (await api.charge_point(CS))["firmware_status"] == "DownloadFailed"


async def test_TC_L_08_Secure_Firmware_Update_InstallVerificationFailed(server: RunningServer, api: Api) -> None:
    await _secure_update(server, api, ["Downloading", "Downloaded", "SignatureVerified", "Installing",
                                       "InstallVerificationFailed"])
    assert (await api.charge_point(CS))["firmware_status"] == "InstallVerificationFailed"


async def test_TC_L_09_Secure_Firmware_Update_InstallationFailed(server: RunningServer, api: Api) -> None:
    await _secure_update(server, api, ["Downloading", "Downloaded", "SignatureVerified", "Installing",
                                       "InstallationFailed"])
    assert (await api.charge_point(CS))["firmware_status"] == "InstallationFailed"


async def _second_update(server: RunningServer, api: Api, answer: str) -> tuple[Station, dict[str, Any]]:
    """An update under way (Downloading), then a second UpdateFirmware that the station answers ``answer``."""
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        progress = Progress(cs, api)
        first = await api.command(CS, "UpdateFirmware", update(10))
        await progress.report(10, ["Downloading"])
        cs.replies["UpdateFirmware"] = {"status": answer}
        second = await api.command(CS, "UpdateFirmware", update(11))
        if answer == "AcceptedCanceled":  # the first is cancelled, the second runs
            await progress.report(11, SUCCESS)
        else:
            await progress.report(10, SUCCESS[1:])
    assert first["response"] == {"status": "Accepted"}
    assert [u["request_id"] for u in cs.got("UpdateFirmware")] == [10, 11]
    return cs, second


async def test_TC_L_10_Secure_Firmware_Update_AcceptedCanceled(server: RunningServer, api: Api) -> None:
    _, second = await _second_update(server, api, "AcceptedCanceled")
    assert second["response"] == {"status": "AcceptedCanceled"}
    assert (await api.charge_point(CS))["firmware_status"] == "Installed"


async def test_TC_L_11_Secure_Firmware_Update_Unable_to_cancel(server: RunningServer, api: Api) -> None:
    _, second = await _second_update(server, api, "Rejected")
    assert second["response"] == {"status": "Rejected"}
    assert (await api.charge_point(CS))["firmware_status"] == "Installed"


async def test_TC_L_13_Secure_Firmware_Update_Unable_to_download_install_firmware_with_ongoing_transaction_AllowNewSessionsPendingFirmwareUpdate_is_false(  # noqa: E501
        server: RunningServer, api: Api) -> None:
    """EVSE 1 charges: the station downloads and verifies, schedules the install, takes its idle EVSE
    out of service (no new sessions), and installs once the transaction has ended."""
    await server.add_charge_point(CS)
    await server.add_id_tag(VALID[0])
    async with connect(server, CS) as cs:
        cs.variables[("ChargingStation", "AllowNewSessionsPendingFirmwareUpdate")] = "false"
        await cs.booted(evses=2)
        tx = cs.transaction(1)
        await tx.energy_transfer_started()
        progress = Progress(cs, api)
        row = await api.command(CS, "UpdateFirmware", update(13))
        await progress.report(13, ["Downloading", "Downloaded", "SignatureVerified", "InstallScheduled"])
        await cs.status(2, "Unavailable")
        await tx.charging_to_end()
        await progress.report(13, ["Installing", "Installed"])
    assert row["response"] == {"status": "Accepted"}
    assert progress.stored[-3:] == ["InstallScheduled", "Installing", "Installed"]
    assert (await api.connector(CS, 2))["status"] == "Unavailable"


async def test_an_update_nobody_ordered_over_2_0_1_is_alerted(server: RunningServer, api: Api) -> None:
    """The unexpected-firmware detector on 2.0.1: a station that starts downloading firmware voltlib
    never sent is alerted (firmware_unrequested), as a 1.6 charge point is."""
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        await cs.send(call.FirmwareStatusNotification(status="Downloading", request_id=99))
    assert (await api.charge_point(CS))["firmware_status"] == "Downloading"
    assert "firmware_unrequested" in await alerts(api)
