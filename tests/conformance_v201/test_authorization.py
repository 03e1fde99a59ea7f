"""OCA OCPP 2.0.1 conformance, CSMS under test: block C, authorization (part 6, 3.4).

Each test is named after its case in src/voltlib/data/csms-test-cases-ocpp201.txt.
"""

from __future__ import annotations

from tests.conformance.conftest import Api
from tests.conformance_v201.conftest import connect
from tests.conftest import RunningServer

CS = "OCTT-CS-201"


async def _clear_cache(server: RunningServer, api: Api, answer: str) -> dict[str, object]:
    await server.add_charge_point(CS)
    async with connect(server, CS) as cs:
        await cs.booted()
        cs.replies["ClearCache"] = {"status": answer}
        row = await api.command(CS, "ClearCache", {})
        await cs.heartbeat()  # the session goes on whatever the answer
    assert cs.got("ClearCache") == [{}]
    return row


async def test_TC_C_37_Clear_Authorization_Data_in_Authorization_Cache_Accepted(
        server: RunningServer, api: Api) -> None:
    row = await _clear_cache(server, api, "Accepted")
    assert (row["state"], row["response"]) == ("answered", {"status": "Accepted"})


async def test_TC_C_38_Clear_Authorization_Data_in_Authorization_Cache_Rejected(
        server: RunningServer, api: Api) -> None:
    row = await _clear_cache(server, api, "Rejected")
    assert (row["state"], row["response"]) == ("answered", {"status": "Rejected"})
