"""OCA OCPP 2.0.1 conformance, CSMS under test: block N, diagnostics (part 6, 3.14).

Each test is named after its case in src/voltlib/data/csms-test-cases-ocpp201.txt. The operator
orders GetLog through the raw command API; the scripted station answers and reports its upload
with LogStatusNotification, each status stored before it is answered (read back through the API)
and judged by the unrequested-upload detector. Customer information is asked for a member of the
seeded city through ``POST /api/v1/members/{id}/customer-information``: the request and every read
of what the station reported are in the hash-chained audit log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from ocpp.v201 import call

from tests.conformance.conftest import Api, now_iso
from tests.conformance_v201.conftest import Station, connect
from tests.conftest import RunningServer
from tests.sharing.conftest import City, Member, seeded_city

CS = "OCTT-CS-201"
LOCATION = "https://logs.example.com/octt/upload"


@pytest_asyncio.fixture
async def city(server: RunningServer) -> AsyncIterator[City]:
    async with seeded_city(server) as seeded:
        yield seeded


def get_log(request_id: int, log_type: str = "DiagnosticsLog") -> dict[str, Any]:
    return {"logType": log_type, "requestId": request_id, "retries": 1, "retryInterval": 60,
            "log": {"remoteLocation": LOCATION}}


async def _log_status(cs: Station, api: Api, status: str, request_id: int) -> str:
    await cs.send(call.LogStatusNotification(status=status, request_id=request_id))
    return str((await api.charge_point(CS))["log_status"])


async def alerts(api: Api) -> set[str]:
    await api.server.settled()
    return {a["kind"] for a in await api.get(f"/api/v1/security/alerts?charge_point_id={CS}")}


async def _upload(server: RunningServer, api: Api, log_type: str) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        cs.replies["GetLog"] = {"status": "Accepted", "filename": "octt.log"}
        row = await api.command(CS, "GetLog", get_log(11, log_type))
        assert (row["state"], row["response"]) == ("answered", {"status": "Accepted", "filename": "octt.log"})
        [sent] = cs.got("GetLog")
        assert sent["log_type"] == log_type and sent["log"]["remote_location"] == LOCATION
        stored = [await _log_status(cs, api, status, 11) for status in ("Uploading", "Uploaded")]
    assert stored == ["Uploading", "Uploaded"]  # committed before each answer
    assert "log_unrequested" not in await alerts(api)  # ordered through the API


async def test_TC_N_25_Retrieve_Log_Information_Diagnostics_Log_Success(server: RunningServer, api: Api) -> None:
    await _upload(server, api, "DiagnosticsLog")


async def test_TC_N_35_Retrieve_Log_Information_Security_Log_Success(server: RunningServer, api: Api) -> None:
    await _upload(server, api, "SecurityLog")


async def test_TC_N_34_Retrieve_Log_Information_Rejected(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        cs.replies["GetLog"] = {"status": "Rejected"}
        row = await api.command(CS, "GetLog", get_log(12))
    assert (row["state"], row["response"]) == ("answered", {"status": "Rejected"})
    assert (await api.charge_point(CS))["log_status"] is None


async def test_TC_N_36_Retrieve_Log_Information_Second_Request(server: RunningServer, api: Api) -> None:
    """A second GetLog while the first uploads: the station cancels the first (AcceptedCanceled)
    and uploads the second."""
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        cs.replies["GetLog"] = {"status": "Accepted"}
        await api.command(CS, "GetLog", get_log(21))
        assert await _log_status(cs, api, "Uploading", 21) == "Uploading"
        cs.replies["GetLog"] = {"status": "AcceptedCanceled"}
        second = await api.command(CS, "GetLog", get_log(22))
        assert second["response"] == {"status": "AcceptedCanceled"}
        stored = [await _log_status(cs, api, s, 22) for s in ("Uploading", "Uploaded")]
    assert stored == ["Uploading", "Uploaded"]
    assert [p["request_id"] for p in cs.got("GetLog")] == [21, 22]
    assert "log_unrequested" not in await alerts(api)


# -- customer information (N09, N10) --

async def ask(api: Api, member: Member, *, report: bool, clear: bool, by: str = "badge") -> dict[str, Any]:
    response = await api.http.post(f"/api/v1/members/{member.id}/customer-information",
                                   json={"charge_point_id": CS, "report": report, "clear": clear, "by": by})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def audit_actions(api: Api) -> list[tuple[str, str]]:
    return [(e["action"], e["target"]) for e in await api.get("/api/v1/security/audit")]


async def _customer_information(server: RunningServer, api: Api, city: City, *, report: bool, clear: bool,
                                data: list[str] | None, answer: str = "Accepted", by: str = "badge",
                                ) -> tuple[Member, Station, dict[str, Any], list[dict[str, Any]]]:
    member = await city.sign_up(1)
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        cs.replies["CustomerInformation"] = {"status": answer}
        if data is not None:
            async def notify(request_id: int, **_: object) -> None:
                for seq_no, part in enumerate(data):
                    await cs.send(call.NotifyCustomerInformation(
                        data=part, seq_no=seq_no, generated_at=now_iso(), request_id=request_id,
                        tbc=seq_no < len(data) - 1))
            cs.follow_ups["CustomerInformation"] = notify
        sent = await ask(api, member, report=report, clear=clear, by=by)
        await cs.settle()
    [got] = cs.got("CustomerInformation")
    assert (got["request_id"], got["report"], got["clear"]) == (sent["request_id"], report, clear)
    assert sent["command"]["state"] == "answered" and sent["command"]["response"] == {"status": answer}
    if by == "badge":
        assert got["id_token"] == {"id_token": member.badge, "type": "ISO14443"} and "customer_identifier" not in got
    else:
        assert got["customer_identifier"] == member.id and "id_token" not in got
    parts = await api.get(f"/api/v1/charge-points/{CS}/customer-information/{sent['request_id']}")
    actions = await audit_actions(api)
    assert ("customer_information.requested", f"member={member.id}") in actions
    assert ("customer_information.read", f"cp_id={CS}/request_id={sent['request_id']}") in actions
    received = [a for a in actions if a[0] == "customer_information.received"]
    assert len(received) == len(data or [])  # one entry per part, without the data itself
    return member, cs, sent, parts


async def test_TC_N_27_Get_Customer_Information_Accepted_data(server: RunningServer, api: Api, city: City) -> None:
    *_, parts = await _customer_information(server, api, city, report=True, clear=False,
                                            data=["badge used 3 times", "last at OCTT-CS-201 evse 1"])
    assert [(p["seq_no"], p["data"], p["tbc"]) for p in parts] == [
        (0, "badge used 3 times", True), (1, "last at OCTT-CS-201 evse 1", False)]


async def test_TC_N_28_Get_Customer_Information_Accepted_no_data(server: RunningServer, api: Api, city: City) -> None:
    *_, parts = await _customer_information(server, api, city, report=True, clear=False, data=["No data available"])
    assert [p["data"] for p in parts] == ["No data available"]


async def test_TC_N_29_Get_Customer_Information_Not_Accepted(server: RunningServer, api: Api, city: City) -> None:
    *_, parts = await _customer_information(server, api, city, report=True, clear=False, data=None,
                                            answer="Rejected")
    assert parts == []


async def test_TC_N_30_Clear_Customer_Information_Clear_and_report_data(
        server: RunningServer, api: Api, city: City) -> None:
    *_, parts = await _customer_information(server, api, city, report=True, clear=True,
                                            data=["cleared: badge, 2 transactions"])
    assert [p["data"] for p in parts] == ["cleared: badge, 2 transactions"]


async def test_TC_N_31_Clear_Customer_Information_Clear_and_report_no_data(
        server: RunningServer, api: Api, city: City) -> None:
    *_, parts = await _customer_information(server, api, city, report=True, clear=True, data=["No data available"])
    assert len(parts) == 1


async def test_TC_N_32_Clear_Customer_Information_Clear_and_no_report(
        server: RunningServer, api: Api, city: City) -> None:
    *_, parts = await _customer_information(server, api, city, report=False, clear=True, data=None)
    assert parts == []


async def test_TC_N_62_Clear_Customer_Information_Clear_and_report_customerIdentifier(
        server: RunningServer, api: Api, city: City) -> None:
    *_, parts = await _customer_information(server, api, city, report=True, clear=True,
                                            data=["cleared"], by="member_id")
    assert [p["data"] for p in parts] == ["cleared"]
