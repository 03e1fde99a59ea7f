"""OCA OCPP 2.0.1 conformance, CSMS under test: block P, DataTransfer and customData (part 6, 3.17).

Each test is named after its case in src/voltlib/data/csms-test-cases-ocpp201.txt.
"""

from __future__ import annotations

from ocpp.v201 import call

from tests.conformance.conftest import Api
from tests.conformance_v201.conftest import connect
from tests.conftest import RunningServer

CS = "OCTT-CS-201"


async def test_TC_P_02_Data_Transfer_to_the_CSMS_Rejected_Unknown_VendorId_Unknown_MessageId(
        server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        unknown = await cs.send(call.DataTransfer(vendor_id="com.octt.unknown", message_id="Probe", data={"n": 1}))
        bare = await cs.send(call.DataTransfer(vendor_id="com.octt.unknown"))
    assert unknown.status in ("UnknownVendorId", "UnknownMessageId", "Rejected")
    assert bare.status in ("UnknownVendorId", "UnknownMessageId", "Rejected")
    assert unknown.data is None  # nothing leaks back


async def test_TC_P_03_CustomData_Receive_custom_data(server: RunningServer, api: Api) -> None:
    custom = {"vendorId": "com.octt", "note": "any property a vendor adds"}
    await server.add_charge_point(CS)
    await server.add_id_tag("OCTT-TOKEN-1")
    async with connect(server, CS) as cs:
        await cs.booted()
        await cs.status(1, "Occupied", custom_data=custom)
        tx = cs.transaction()
        reply = await tx.event("Authorized", id_token=tx.token, custom_data=custom,
                               info={"customData": custom})
    assert reply.id_token_info["status"] == "Accepted"
    assert (await api.connector(CS, 1))["status"] == "Occupied"
    [row] = [t for t in await api.transactions(CS) if t["station_tx_id"] == tx.id]
    assert row["id_tag"] == "OCTT-TOKEN-1"
