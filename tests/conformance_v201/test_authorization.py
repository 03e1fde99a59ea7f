"""OCA OCPP 2.0.1 conformance, CSMS under test: block C, authorization (part 6, 3.4).

Each test is named after its case in src/voltlib/data/csms-test-cases-ocpp201.txt.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conformance.conftest import Api
from tests.conformance_v201.conftest import VALID, Transaction, connect
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


async def _authorize(server: RunningServer, id_token: str, **tag: Any) -> dict[str, Any]:
    """Authorize ``id_token`` as the id tag voltlib has (or not); its idTokenInfo."""
    await server.add_charge_point(CS)
    if tag:
        await server.add_id_tag(id_token, **tag)
    async with connect(server, CS) as cs:
        await cs.booted()
        return await cs.authorize(id_token, "ISO14443")


async def test_TC_C_02_Local_start_transaction_Authorization_Invalid_Unknown(
        server: RunningServer, api: Api) -> None:
    info = await _authorize(server, "OCTT-UNKNOWN-9")
    assert info["status"] in ("Invalid", "Unknown")
    assert "OCTT-UNKNOWN-9" not in [t["id_tag"] for t in await api.get("/api/v1/id-tags")]  # nothing created


async def test_TC_C_06_Local_start_transaction_Authorization_Blocked(server: RunningServer, api: Api) -> None:
    info = await _authorize(server, "OCTT-BLOCKED-1", status="Blocked")
    assert info["status"] in ("Blocked", "Invalid")


async def test_TC_C_07_Local_start_transaction_Authorization_Expired(server: RunningServer, api: Api) -> None:
    info = await _authorize(server, "OCTT-EXPIRED-1", expiry_date=datetime.now(UTC) - timedelta(days=1))
    assert info["status"] in ("Expired", "Invalid")


async def _cached(server: RunningServer, api: Api, token: tuple[str, str]) -> tuple[Transaction, dict[str, Any]]:
    """EVConnectedPreSession, then the idToken the station found in its authorization cache."""
    await server.add_charge_point(CS)
    await server.add_id_tag(VALID[0])
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = cs.transaction(id_token=token)
        await tx.ev_connected_pre_session()
        reply = await tx.event("Authorized", id_token=tx.token)  # no Authorize: the cache said yes
    assert reply.id_token_info is not None
    return tx, reply.id_token_info


async def test_TC_C_08_Authorization_through_authorization_cache_Accepted(server: RunningServer, api: Api) -> None:
    tx, info = await _cached(server, api, VALID)
    assert info["status"] == "Accepted"
    [row] = [t for t in await api.transactions(CS) if t["station_tx_id"] == tx.id]
    assert (row["id_tag"], row["id_tag_status"]) == (VALID[0], "Accepted")


async def test_TC_C_20_Authorization_through_authorization_cache_Invalid(server: RunningServer, api: Api) -> None:
    tx, info = await _cached(server, api, ("OCTT-UNKNOWN-9", "ISO14443"))
    assert info["status"] in ("Invalid", "Unknown")
    [row] = [t for t in await api.transactions(CS) if t["station_tx_id"] == tx.id]
    assert row["id_tag_status"] in ("Invalid", "Unknown")


GROUP = "OCTT-GROUP-1"
MASTER = ("OCTT-MASTER-1", "ISO14443")
MASTER_GROUP = "OCTT-MASTERPASS"


def _group(info: dict[str, Any]) -> str | None:
    group = info.get("group_id_token")
    return None if group is None else str(group["id_token"])


async def test_TC_C_39_Authorization_by_GroupId_Success(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CS)
    await server.add_id_tag(VALID[0], parent_id_tag=GROUP)
    await server.add_id_tag("OCTT-TOKEN-2", parent_id_tag=GROUP)
    async with connect(server, CS) as cs:
        await cs.booted()
        tx = cs.transaction()
        await tx.ev_connected_pre_session()
        second = await cs.authorize("OCTT-TOKEN-2", "ISO14443")
        start = await tx.event("Authorized", id_token=tx.token)
        tx.authorized = True
        await tx.energy_transfer_started()
        again = await cs.authorize("OCTT-TOKEN-2", "ISO14443")
        stop = await tx.event("StopAuthorized", id_token={"idToken": "OCTT-TOKEN-2", "type": "ISO14443"})
        await tx.ev_connected_post_session()
        await tx.ev_disconnected()
    for info in (second, start.id_token_info, again, stop.id_token_info):
        assert (info["status"], _group(info)) == ("Accepted", GROUP)
    [row] = [t for t in await api.transactions(CS) if t["station_tx_id"] == tx.id]
    assert (row["id_tag"], row["stop_reason"]) == (VALID[0], "EVDisconnected")


async def _master_pass(server: RunningServer, api: Api, ended_by: tuple[str, str],
                       evses: tuple[int, ...]) -> tuple[dict[str, Any], list[Transaction]]:
    """Two EVSEs charging; the master pass is presented and the station ends the transactions of ``evses``."""
    await server.add_charge_point(CS)
    await server.add_id_tag(VALID[0])
    await server.add_id_tag("OCTT-TOKEN-2")
    await server.add_id_tag(MASTER[0], parent_id_tag=MASTER_GROUP)
    async with connect(server, CS) as cs:
        await cs.booted(evses=2)
        txs = [cs.transaction(1), cs.transaction(2, ("OCTT-TOKEN-2", "ISO14443"))]
        for tx in txs:
            await tx.energy_transfer_started()
        info = await cs.authorize(*MASTER)
        for tx in txs:
            if tx.evse_id in evses:
                reply = await tx.event("StopAuthorized", "Ended", stopped_reason="MasterPass",
                                       id_token={"idToken": ended_by[0], "type": ended_by[1]})
                assert reply.id_token_info is not None and reply.id_token_info["status"] == "Accepted"
    return info, txs


async def _stop_reasons(api: Api, txs: list[Transaction]) -> list[str | None]:
    rows = {t["station_tx_id"]: t for t in await api.transactions(CS)}
    return [rows[tx.id]["stop_reason"] for tx in txs]


async def test_TC_C_47_Stop_Transaction_with_a_Master_Pass_With_UI_All_transactions(
        server: RunningServer, api: Api) -> None:
    info, txs = await _master_pass(server, api, MASTER, (1, 2))
    assert (info["status"], _group(info)) == ("Accepted", MASTER_GROUP)
    assert await _stop_reasons(api, txs) == ["MasterPass", "MasterPass"]


async def test_TC_C_48_Stop_Transaction_with_a_Master_Pass_With_UI_With_UI_Specific_transactions(
        server: RunningServer, api: Api) -> None:
    info, txs = await _master_pass(server, api, MASTER, (1,))
    assert (info["status"], _group(info)) == ("Accepted", MASTER_GROUP)
    assert await _stop_reasons(api, txs) == ["MasterPass", None]  # the other one goes on


async def test_TC_C_49_Stop_Transaction_with_a_Master_Pass_Without_UI(server: RunningServer, api: Api) -> None:
    info, txs = await _master_pass(server, api, VALID, (1, 2))
    assert (info["status"], _group(info)) == ("Accepted", MASTER_GROUP)
    assert await _stop_reasons(api, txs) == ["MasterPass", "MasterPass"]
