"""Transactions over HTTP (issue 20), on SQLite and PostgreSQL, fed by a real charge point over a
WebSocket: filters, cursor pages that new rows do not shift, one transaction, and an operator's
close of an abandoned one (audited, published as a stop, idempotent, nothing deleted); and every
list the issue names (meter values, messages, commands, alerts, rentals, invoices, audit...) paged
the same way, at most 1,000 rows a page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import RunningServer
from tests.integration.test_protocol import BOOT, Client, connect
from tests.sharing.conftest import CAR_ID, seeded_city
from voltlib import events as ev
from voltlib.security import audit
from voltlib.security.credentials import hash_api_token
from voltlib.store import repo

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def start(cp: Client, tag: str, minute: int, *, connector: int = 1, meter: int = 1000) -> int:
    reply = await cp.call("StartTransaction", {"connectorId": connector, "idTag": tag, "meterStart": meter,
                                               "timestamp": iso(T0 + timedelta(minutes=minute))})
    assert reply[0] == 3, reply
    return int(reply[2]["transactionId"])


async def stop(cp: Client, tx: int, minute: int, reason: str | None, meter: int = 2000) -> None:
    payload: dict[str, Any] = {"transactionId": tx, "meterStop": meter,
                               "timestamp": iso(T0 + timedelta(minutes=minute))}
    if reason is not None:
        payload["reason"] = reason
    assert (await cp.call("StopTransaction", payload))[0] == 3


async def all_pages(api: httpx.AsyncClient, url: str) -> tuple[list[dict[str, Any]], int]:
    """Every row, following Link rel=next; and how many pages that took."""
    pages = await pages_of(api, url)
    return [row for page in pages for row in page], len(pages)


async def pages_of(api: httpx.AsyncClient, url: str, rows_of: Any = None) -> list[list[Any]]:
    """Each page's rows (``rows_of`` picks them out of the body), following Link rel=next."""
    pages: list[list[Any]] = []
    next_url: str | None = url
    while next_url is not None:
        response = await api.get(next_url)
        assert response.status_code == 200, response.text
        pages.append(response.json() if rows_of is None else rows_of(response.json()))
        next_url = response.links.get("next", {}).get("url")
    return pages


async def test_transactions_filter_and_page_in_a_stable_order(server: RunningServer) -> None:
    await server.add_charge_point("CP-TX", profile=0)
    await server.add_charge_point("CP-OTHER", profile=0)
    for tag in ("T1", "T2", "T3", "T4", "T5", "T6"):
        await server.add_id_tag(tag)
    async with connect(server, "CP-TX") as cp, connect(server, "CP-OTHER") as other:
        await cp.call("BootNotification", BOOT)
        await other.call("BootNotification", BOOT)
        ids = [await start(cp, f"T{i}", minute=i, connector=i) for i in range(1, 5)]
        elsewhere = await start(other, "T5", minute=5)
        await stop(cp, ids[0], 30, "EVDisconnected")
        await stop(cp, ids[1], 31, None)  # no reason sent: stored as none, not as "Local"
        await stop(other, elsewhere, 32, "Remote")
        newest_first = [elsewhere, *reversed(ids)]
        async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
            first = await api.get("/api/v1/transactions", params={"limit": 2})
            assert first.status_code == 200 and [r["id"] for r in first.json()] == newest_first[:2]
            later = first.links["next"]["url"]
            assert "cursor=" in later and "limit=2" in later
            await start(cp, "T6", minute=90, connector=9)  # newer than every page: shifts nothing
            second = (await api.get(later)).json()
            assert [r["id"] for r in second] == newest_first[2:4]
            rows, pages = await all_pages(api, "/api/v1/transactions?limit=2")
            assert len(rows) == 6 and pages == 3 and len({r["id"] for r in rows}) == 6
            started = [r["started_at"] for r in rows]
            assert started == sorted(started, reverse=True)

            async def ids_of(**params: Any) -> list[int]:
                response = await api.get("/api/v1/transactions", params=params)
                assert response.status_code == 200, response.text
                return [r["id"] for r in response.json()]

            assert await ids_of(open="false") == [elsewhere, ids[1], ids[0]]
            assert set(await ids_of(open="true", charge_point="CP-TX")) >= {ids[2], ids[3]}
            assert await ids_of(stop_reason="EVDisconnected") == [ids[0]]
            assert await ids_of(stop_reason="Local") == []  # as the charge point sent it
            assert await ids_of(id_tag="T5") == [elsewhere]
            assert await ids_of(charge_point="CP-OTHER") == [elsewhere]
            window = {"from": iso(T0 + timedelta(minutes=2)), "to": iso(T0 + timedelta(minutes=4))}
            assert await ids_of(**window) == [ids[2], ids[1]]
            assert await ids_of(**window, charge_point="CP-TX", open="true") == [ids[2]]
            by_cp = await api.get("/api/v1/charge-points/CP-OTHER/transactions", params={"open": "false"})
            assert [r["id"] for r in by_cp.json()] == [elsewhere]

            one = (await api.get(f"/api/v1/transactions/{ids[0]}")).json()
            assert (one["id"], one["stop_reason"], one["meter_stop"], one["closed_by"]) == (
                ids[0], "EVDisconnected", 2000, None)
            for missing in ("999", "abc", "-1", "99999999999999999999"):
                response = await api.get(f"/api/v1/transactions/{missing}")
                assert response.status_code == 404 and response.json()["title"] == "not-found", missing

            for params in ({"open": "maybe"}, {"from": "yesterday"}, {"to": "2026-01-01T00:00:00"},
                           {"cursor": "not-a-cursor"}, {"cursor": "WzFd"}, {"limit": "0"}, {"limit": "x"},
                           {"from": iso(T0), "to": iso(T0)}):
                response = await api.get("/api/v1/transactions", params=params)
                assert response.status_code == 400, (params, response.text)
                problem = response.json()
                assert response.headers["content-type"].startswith("application/problem+json")
                assert problem["title"] == "invalid-query" and problem["parameter"] in params, params
            capped = await api.get("/api/v1/transactions", params={"limit": 100_000})
            assert capped.status_code == 200 and len(capped.json()) == 6 and "next" not in capped.links


async def test_an_operator_closes_an_abandoned_transaction(server: RunningServer) -> None:
    await server.add_charge_point("CP-GONE", profile=0)
    await server.add_id_tag("LOST")
    await server.store.write(partial(repo.add_api_token, name="support", role="security",
                                     token_hash=hash_api_token("vlt_support_token"), now=datetime.now(UTC)))
    stops: list[ev.TransactionStopped] = []
    server.gateway.services.bus.watch(lambda e: stops.append(e) if isinstance(e, ev.TransactionStopped) else None,
                                      ev.TransactionStopped, name="test-stops")
    read_at = T0 + timedelta(minutes=40)
    async with connect(server, "CP-GONE") as cp:
        await cp.call("BootNotification", BOOT)
        tx = await start(cp, "LOST", minute=0, meter=10_000)
        for minute, kwh in ((20, "11.5"), (40, "12.25")):
            values = {"connectorId": 1, "transactionId": tx, "meterValue": [{
                "timestamp": iso(T0 + timedelta(minutes=minute)),
                "sampledValue": [{"value": "7000", "measurand": "Power.Active.Import", "unit": "W"},
                                 {"value": kwh, "measurand": "Energy.Active.Import.Register", "unit": "kWh"}]}]}
            assert (await cp.call("MeterValues", values))[0] == 3
        busy = await cp.call("Authorize", {"idTag": "LOST"})
        assert busy[2]["idTagInfo"]["status"] == "ConcurrentTx"
    # the charge point is gone for good: its transaction stays open
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        url = f"/api/v1/transactions/{tx}/close"
        assert (await api.post(url, json={})).status_code == 422  # a reason is required
        refused = await api.post(url, json={"reason": "x"}, headers={"Authorization": "Bearer vlt_support_token"})
        assert refused.status_code == 403
        for bad in ({"reason": "x", "meter_stop": 9_999}, {"reason": "x", "stopped_at": iso(T0 - timedelta(1))},
                    {"reason": "x", "stopped_at": iso(datetime.now(UTC) + timedelta(hours=1))}):
            response = await api.post(url, json=bad)
            assert response.status_code == 422 and response.json()["title"] == "invalid-close", bad
        assert (await api.post("/api/v1/transactions/12345/close", json={"reason": "x"})).status_code == 404
        assert (await api.get(f"/api/v1/transactions/{tx}")).json()["stopped_at"] is None

        closed = await api.post(url, json={"reason": "charge point replaced, ticket 881"})
        assert closed.status_code == 200, closed.text
        row = closed.json()
        assert (row["meter_stop"], row["stopped_at"], row["stop_reason"]) == (12_250, iso(read_at), None)
        assert row["closed_by"].startswith("test-")
        await server.settled()
        assert [(s.transaction_id, s.meter_stop, s.stopped_at, s.known) for s in stops] == [
            (tx, 12_250, read_at, True)]

        again = await api.post(url, json={"reason": "charge point replaced, ticket 881"})  # a retry
        assert again.status_code == 200 and again.json() == row
        other = await api.post(url, json={"reason": "x", "meter_stop": 13_000})
        assert other.status_code == 409 and other.json()["title"] == "already-closed"
        await server.settled()
        assert len(stops) == 1
        assert (await api.get(f"/api/v1/transactions/{tx}")).json() == row
        assert [r["id"] for r in (await api.get("/api/v1/transactions", params={"open": "false"})).json()] == [tx]
        entries = (await api.get("/api/v1/security/audit", params={"action": "transaction.close"})).json()
        verified = (await api.get("/api/v1/security/audit/verify")).json()
    assert len(entries) == 1 and entries[0]["target"] == str(tx) and verified["ok"] is True
    assert entries[0]["detail"]["reason"] == "charge point replaced, ticket 881"
    assert entries[0]["detail"]["meter_stop"] == 12_250 and entries[0]["detail"]["last_register"]["wh"] == 12_250
    rows = await server.store.read(audit.read_chain)
    assert [r["action"] for r in rows if r["action"] == "transaction.close"] == ["transaction.close"]

    async with connect(server, "CP-GONE") as cp:  # it comes back after all
        free = await cp.call("Authorize", {"idTag": "LOST"})
        assert free[2]["idTagInfo"]["status"] == "Accepted"
        late = await cp.call("StopTransaction", {"transactionId": tx, "meterStop": 12_600,
                                                 "timestamp": iso(T0 + timedelta(minutes=50)), "reason": "Local"})
        assert late[0] == 3  # acknowledged (it would retry forever), the operator's close stays
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        assert (await api.get(f"/api/v1/transactions/{tx}")).json() == row
        readings = (await api.get("/api/v1/charge-points/CP-GONE/meter-values",
                                  params={"transaction_id": tx})).json()
    assert len(readings) == 2  # nothing deleted


async def test_every_list_pages_the_same_way(server: RunningServer) -> None:
    await server.add_charge_point("CP-PAGE", profile=0)
    await server.add_charge_point("CP-PAGE-2", profile=0)
    for stranger in ("CP-STRANGER-1", "CP-STRANGER-2"):  # refused: two security events
        with pytest.raises(websockets.InvalidStatus):
            async with connect(server, stranger):
                pass
    for i in range(3):
        await server.add_id_tag(f"PAGE-{i}")
    async with connect(server, "CP-PAGE") as cp:
        await cp.call("BootNotification", BOOT)
        tx = await start(cp, "PAGE-0", minute=0)
        for minute in range(1, 4):
            values = {"connectorId": 1, "transactionId": tx, "meterValue": [{
                "timestamp": iso(T0 + timedelta(minutes=minute)),
                "sampledValue": [{"value": str(1000 + minute), "unit": "Wh"}]}]}
            await cp.call("MeterValues", values)
        for status in ("Preparing", "Charging", "SuspendedEV"):
            await cp.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": status})
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        for path in ("/api/v1/charge-points/CP-PAGE/meter-values", "/api/v1/charge-points/CP-PAGE/messages",
                     "/api/v1/charge-points/CP-PAGE/status-history", "/api/v1/id-tags",
                     "/api/v1/security/audit", "/api/v1/security-events", "/api/v1/charge-points"):
            whole = (await api.get(path, params={"limit": 1000})).json()
            assert len(whole) >= 2, path
            rows, pages = await all_pages(api, f"{path}?limit=1")
            assert rows == whole and pages == len(whole), path
        sampled = [r["timestamp"] for r in (await api.get("/api/v1/charge-points/CP-PAGE/meter-values")).json()]
        assert sampled == sorted(sampled, reverse=True) and len(sampled) == 3
        tags = [r["id_tag"] for r in (await api.get("/api/v1/id-tags")).json()]
        assert tags == ["PAGE-0", "PAGE-1", "PAGE-2"]


async def test_commands_alerts_rentals_and_invoices_page_too(server: RunningServer) -> None:
    """The lists of issue 20 not walked above: each whole list read one row a page is the list read
    at once, in the same order, and its filters hold on every page."""
    await server.add_charge_point("CP-CMD", profile=0)
    async with connect(server, "CP-CMD") as cp:
        await cp.call("BootNotification", BOOT)
    for n in range(3):  # an alert each (repeats at one charge point are one alert)
        await server.add_charge_point(f"CP-ALERT-{n}", profile=0)
        async with connect(server, f"CP-ALERT-{n}") as cp:
            await cp.call("BootNotification", BOOT)
            await cp.call("SecurityEventNotification", {"type": "SecurityLogWasCleared", "timestamp": iso(T0)})
    await server.settled()
    async with seeded_city(server) as city, \
            httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        for _ in range(3):  # CP-CMD is gone: each command is stored "offline", not sent
            sent = await api.post("/api/v1/charge-points/CP-CMD/commands/Reset", json={"type": "Soft"})
            assert sent.status_code == 200 and sent.json()["state"] == "offline", sent.text
        members = [await city.sign_up(n) for n in range(3)]  # a subscription invoice each
        for member in members:  # a reservation each, cancelled: a rental row each
            held = await api.post("/api/v1/me/reservation", json={"car_id": CAR_ID}, headers=member.headers())
            assert held.status_code == 201, held.text
            assert (await api.delete("/api/v1/me/reservation", headers=member.headers())).status_code == 200

        def statement(body: dict[str, Any]) -> list[Any]:
            return list(body["invoices"])

        for path, rows_of, count in (("/api/v1/charge-points/CP-CMD/commands", None, 3),
                                     ("/api/v1/security/alerts?expected=false", None, 3),
                                     ("/api/v1/security/alerts?charge_point_id=CP-ALERT-1", None, 1),
                                     ("/api/v1/rentals", None, 3), (f"/api/v1/rentals?member={members[1].id}", None, 1),
                                     ("/api/v1/invoices", statement, 3)):
            [whole] = await pages_of(api, path, rows_of)
            assert len(whole) == count, (path, whole)
            one_by_one = await pages_of(api, f"{path}{'&' if '?' in path else '?'}limit=1", rows_of)
            assert [len(p) for p in one_by_one] == [1] * count and [r for p in one_by_one for r in p] == whole, path
        commands = (await api.get("/api/v1/charge-points/CP-CMD/commands")).json()
        assert [c["id"] for c in commands] == sorted((c["id"] for c in commands), reverse=True)
        alerts = (await api.get("/api/v1/security/alerts", params={"limit": 2})).json()
        assert [a["charge_point_id"] for a in alerts] == ["CP-ALERT-2", "CP-ALERT-1"]  # newest first
        rentals = (await api.get("/api/v1/rentals", params={"limit": 2})).json()
        assert [r["member_id"] for r in rentals] == [members[2].id, members[1].id]  # newest first
        paged_totals = (await api.get("/api/v1/invoices", params={"limit": 1})).json()
        assert len(paged_totals["invoices"]) == 1 and paged_totals["totals"] == (
            await api.get("/api/v1/invoices")).json()["totals"]  # over every invoice, not the page


async def test_a_page_holds_at_most_1000_rows(server: RunningServer) -> None:
    """The documented maximum (api/paging.py: MAX_PAGE): a larger ?limit= gives 1,000 rows and a next link."""
    now = datetime.now(UTC)

    def tags(conn: Any) -> None:
        for i in range(1001):
            repo.upsert_id_tag(conn, f"MAX-{i:04}", status="Accepted", expiry_date=None, parent_id_tag=None, now=now)

    await server.store.write(tags)
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        for params in ({"limit": 5000}, {}):  # asked for more, and the default of this list
            first = await api.get("/api/v1/id-tags", params=params)
            assert len(first.json()) == 1000 and first.json()[-1]["id_tag"] == "MAX-0999", params
            rest = (await api.get(first.links["next"]["url"])).json()
            assert [r["id_tag"] for r in rest] == ["MAX-1000"]
