"""Id tags over HTTP (issue 20), on SQLite and PostgreSQL: delete one (unknown to authorisation from
then on, its transactions kept), export and import as CSV (row-numbered errors, all or nothing,
idempotent), member badges and car tokens left to car sharing."""

from __future__ import annotations

import csv
import io
import uuid

import httpx

from tests.conftest import RunningServer
from tests.integration.test_protocol import BOOT, connect
from tests.integration.test_transactions_api import start
from tests.sharing.conftest import CAR_TAG, seeded_city

CSV = {"Content-Type": "text/csv"}


async def test_a_deleted_tag_is_unknown_but_its_history_stays(server: RunningServer) -> None:
    await server.add_charge_point("CP-DEL", profile=0)
    await server.add_id_tag("GONE")
    await server.add_id_tag("KEPT", status="Blocked")
    async with connect(server, "CP-DEL") as cp:
        await cp.call("BootNotification", BOOT)
        tx = await start(cp, "GONE", minute=0)
        async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
            deleted = await api.delete("/api/v1/id-tags/GONE")
            assert deleted.status_code == 200 and deleted.json() == {"id_tag": "GONE", "deleted": True}
            assert (await api.delete("/api/v1/id-tags/GONE")).status_code == 404
            assert (await api.delete("/api/v1/id-tags/NEVER")).status_code == 404
            assert [t["id_tag"] for t in (await api.get("/api/v1/id-tags")).json()] == ["KEPT"]
            history = (await api.get("/api/v1/transactions", params={"id_tag": "GONE"})).json()
            assert [t["id"] for t in history] == [tx]
            entries = (await api.get("/api/v1/security/audit", params={"action": "id_tag.delete"})).json()
            assert [(e["target"], e["detail"]["status"]) for e in entries] == [("GONE", "Accepted")]
        answer = await cp.call("Authorize", {"idTag": "GONE"})
        assert answer[2]["idTagInfo"]["status"] == "Invalid"


async def test_member_badges_and_car_tokens_are_not_deleted_here(server: RunningServer) -> None:
    async with seeded_city(server), httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        member = (await api.post("/api/v1/members", json={
            "city": "paris", "name": "Kept", "email": f"k{uuid.uuid4().hex[:6]}@example.org",
            "licence_number": "L1", "licence_expiry": "2099-01-01T00:00:00Z"})).json()
        badge = member["badge"]
        for tag, title in ((badge, "member-badge"), (CAR_TAG, "car-tag")):
            refused = await api.delete(f"/api/v1/id-tags/{tag}")
            assert refused.status_code == 409 and refused.json()["title"] == title, refused.text
        tags = {t["id_tag"] for t in (await api.get("/api/v1/id-tags")).json()}
        assert {badge, CAR_TAG} <= tags


async def test_id_tags_go_out_and_come_back_as_csv(server: RunningServer) -> None:
    await server.add_charge_point("CP-CSV", profile=0)
    first = ("id_tag,status,expiry_date,parent_id_tag,note\r\n"
             "FLEET,Accepted,,,the fleet's group\r\n"
             "A-1,Accepted,2030-01-31T00:00:00+01:00,FLEET,\r\n"
             "A-2,Blocked,,FLEET,lost 2026-11-02\r\n"
             "A-3,,,,\r\n")
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers()) as api:
        imported = await api.post("/api/v1/id-tags/import", content=first.encode(), headers=CSV)
        assert imported.status_code == 200, imported.text
        assert imported.json() == {"rows": 4, "created": 4, "updated": 0, "unchanged": 0}
        again = await api.post("/api/v1/id-tags/import", content=first.encode(), headers=CSV)
        assert again.json() == {"rows": 4, "created": 0, "updated": 0, "unchanged": 4}  # idempotent
        exported = await api.get("/api/v1/id-tags/export")
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [(r["id_tag"], r["status"], r["expiry_date"], r["parent_id_tag"], r["note"]) for r in rows] == [
            ("A-1", "Accepted", "2030-01-30T23:00:00Z", "FLEET", ""),
            ("A-2", "Blocked", "", "FLEET", "lost 2026-11-02"),
            ("A-3", "Accepted", "", "", ""), ("FLEET", "Accepted", "", "", "the fleet's group")]
        back = await api.post("/api/v1/id-tags/import", content=exported.content, headers=CSV)
        assert back.json() == {"rows": 4, "created": 0, "updated": 0, "unchanged": 4}  # a round trip

        change = "status,id_tag\r\nBlocked,A-1\r\nAccepted,A-2\r\nAccepted,NEW\r\n"  # columns in any order
        changed = await api.post("/api/v1/id-tags/import", content=change.encode(), headers=CSV)
        assert changed.json() == {"rows": 3, "created": 1, "updated": 2, "unchanged": 0}
        tags = {t["id_tag"]: t for t in (await api.get("/api/v1/id-tags")).json()}
        assert (tags["A-1"]["status"], tags["A-1"]["expiry_date"], tags["A-1"]["parent_id_tag"]) == (
            "Blocked", None, None)  # the row says what the tag is: absent columns are none
        audit = (await api.get("/api/v1/security/audit", params={"action": "id_tag.import"})).json()
        assert [e["detail"]["created"] for e in audit] == [1, 4]  # what changed nothing is not audited

        broken = ("id_tag,status,expiry_date\r\n"
                  "OK-1,Accepted,\r\n"
                  ",Accepted,\r\n"
                  "OK-2,Maybe,\r\n"
                  "OK-3,Accepted,tomorrow\r\n"
                  "THIS-TAG-IS-TOO-LONG-EVEN-FOR-OCPP201,Accepted,\r\n"  # 37 characters (2.0.1: 36)
                  "OK-1,Blocked,\r\n"
                  "OK-4,Accepted\r\n")
        refused = await api.post("/api/v1/id-tags/import", content=broken.encode(), headers=CSV)
        assert refused.status_code == 422 and refused.headers["content-type"].startswith("application/problem+json")
        problem = refused.json()
        assert problem["title"] == "invalid-csv" and problem["error_count"] == 6
        assert [(e["row"], e["column"]) for e in problem["errors"]] == [
            (3, "id_tag"), (4, "status"), (5, "expiry_date"), (6, "id_tag"), (7, "id_tag"), (8, None)]
        assert "row 2" in problem["errors"][4]["detail"]
        assert "OK-1" not in {t["id_tag"] for t in (await api.get("/api/v1/id-tags")).json()}  # all or nothing

        for body, title in ((b"", "invalid-csv"), (b"tag,status\r\nX,Accepted\r\n", "invalid-csv"),
                            (b"id_tag\r\n\xff\xfe\r\n", "invalid-encoding"), (b"id_tag\r\nA\x00B\r\n", "invalid-csv"),
                            (b'id_tag\r\n"unclosed\r\n', "invalid-csv")):
            response = await api.post("/api/v1/id-tags/import", content=body, headers=CSV)
            assert 400 <= response.status_code < 500 and response.json()["title"] == title, (body, response.text)
        as_json = await api.post("/api/v1/id-tags/import", json=[{"id_tag": "X"}])
        assert as_json.status_code == 415
    async with connect(server, "CP-CSV") as cp:
        await cp.call("BootNotification", BOOT)
        assert (await cp.call("Authorize", {"idTag": "A-1"}))[2]["idTagInfo"]["status"] == "Blocked"
        assert (await cp.call("Authorize", {"idTag": "NEW"}))[2]["idTagInfo"]["status"] == "Accepted"
