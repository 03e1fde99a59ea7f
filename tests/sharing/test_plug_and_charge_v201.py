"""A rental started and returned by ISO 15118 Plug & Charge alone (issue 17, part 3): a member's
contract (eMAID) registered through the API, its certificate checked through the V2G back end's
OCSP (the local stand-in, real signed OCSP responses), the car opened at a 2.0.1 station without any
badge, driven, plugged in elsewhere under the same contract, billed and audited; and every refusal
(C07.FR.13-17). Real WebSockets, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from ocpp.v201 import call
from typer.testing import CliRunner, Result

from tests.conformance.conftest import connect
from tests.conformance.station201 import Station201
from tests.conftest import RunningServer, free_port, start_server
from tests.integration.test_ocpp201_gateway import BOOT_16
from tests.integration.test_ocpp201_gateway import Station as RawStation
from tests.integration.test_ocpp201_gateway import connect as connect_raw
from tests.integration.test_restart_recovery import city_on, quiet, running, stop_subscriber
from tests.sharing.conftest import CAR_ID, City, catch_up, city, seeded_city
from voltlib import events as ev
from voltlib.cli.main import app
from voltlib.config import Settings
from voltlib.security.v2g_local import LocalV2GBackend, pem
from voltlib.sharing import service

pytestmark = pytest.mark.parametrize("ocpp_version", ["2.0.1"], indirect=True)
__all__ = ["city"]
EMAID = "FRVLTC000000425"  # the member's contract, as its certificate names it
DASHED = "FR-VLT-C00000042-5"  # as an operator may type it


def hash_data(certificate: x509.Certificate, issuer: x509.Certificate) -> dict[str, str]:
    """2.0.1 OCSPRequestDataType of a certificate, as a station builds it from the car's chain."""
    request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA256()).build()
    return {"hashAlgorithm": "SHA256", "issuerNameHash": request.issuer_name_hash.hex(),
            "issuerKeyHash": request.issuer_key_hash.hex(), "serialNumber": format(certificate.serial_number, "x"),
            "responderURL": "http://ocsp.v2g.example"}


def local_v2g(server: RunningServer) -> LocalV2GBackend:
    """The local V2G back end, as ``v2g_backend = "voltlib.security.v2g_local:local_backend"`` plugs it."""
    v2g = LocalV2GBackend()
    server.gateway.services.v2g_backend = v2g
    return v2g


async def present(station: Station201, emaid: str, *, data: list[dict[str, str]] | None = None,
                  chain: str | None = None, token_type: str = "eMAID") -> tuple[str, str | None]:
    """The car's contract presented by the station (C07): idTokenInfo.status and certificateStatus."""
    reply = await station.send(call.Authorize(id_token={"idToken": emaid, "type": token_type},
                                              iso15118_certificate_hash_data=data, certificate=chain))
    return reply.id_token_info["status"], reply.certificate_status


async def call_16(station: RawStation, action: str, payload: dict[str, Any]) -> list[Any]:
    """A call from the raw 1.6 post, answering what voltlib asks it meanwhile: a bay that boots is
    sent its charging profile by smart charging, which may come before the answer awaited."""
    message_id = f"p{uuid.uuid4().hex[:8]}"
    await station.ws.send(json.dumps([2, message_id, action, payload]))
    while True:
        frame = await station.recv()
        if frame[0] == 2:
            await station.ws.send(json.dumps([4, frame[1], "NotImplemented", "", {}]))
            continue
        assert frame[1] == message_id, frame
        return frame


async def register(city: City, member_id: str, emaid: str = DASHED) -> Any:
    return await city.client.put(f"/api/v1/members/{member_id}/contracts/{emaid}", headers=city.server.api_headers())


async def audit_of(city: City, action: str) -> list[dict[str, Any]]:
    response = await city.client.get("/api/v1/security/audit", params={"action": action},
                                     headers=city.server.api_headers())
    assert response.status_code == 200, response.text
    return list(response.json())


async def contract_events(city: City) -> list[dict[str, Any]]:
    rows = (await city.client.get("/api/v1/security-events", headers=city.server.api_headers())).json()
    return [e["detail"] for e in rows if e["kind"] == "contract_authorization"]


async def test_a_car_is_rented_and_returned_by_plug_and_charge_alone(city: City) -> None:
    server = city.server
    member = await city.sign_up(1)
    registered = await register(city, member.id)
    assert registered.status_code == 201 and registered.json() == {"member_id": member.id, "emaid": EMAID,
                                                                  "status": "Accepted"}
    v2g = local_v2g(server)
    contract = v2g.issue_contract(EMAID)
    heard: list[ev.IdTagAuthorized] = []
    server.gateway.services.bus.watch(heard.append, ev.IdTagAuthorized, name="test")
    async with connect(server, "st-a-1") as a, connect(server, "st-b-1") as b:
        assert isinstance(a, Station201) and isinstance(b, Station201)
        await a.boot()
        await b.boot()
        await a.status(1, "Charging")  # the car at its bay
        assert await present(a, EMAID, data=[hash_data(contract, v2g.root.certificate)]) == ("Accepted", "Accepted")
        await city.wait_for_state(member, "badged")
        await a.status(1, "Available")  # the member drives off: the rental starts
        await city.wait_for_state(member, "started")
        assert (await city.vehicle())["status"] == "rented"
        back = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=20)
        catch_up(server, back + timedelta(minutes=1))
        await b.status(1, "Occupied", timestamp=back.isoformat())
        tx = await b.plug_in(1, timestamp=back.isoformat())
        assert await city.rental(member) is not None  # plugged in, nobody known yet
        assert await b.authorized(tx, EMAID, "eMAID") == {"status": "Accepted"}  # the car, the member's contract
        await city.wait_for_state(member, None)
    history = (await city.client.get("/api/v1/me/rentals", headers=member.headers())).json()
    rental = history[0]
    assert rental["state"] == "closed" and rental["member_id_tag"] == EMAID
    assert rental["return_dock"] == ["st-b-1", 1] and datetime.fromisoformat(rental["returned_at"]) == back
    car = await city.vehicle()
    assert (car["status"], car["charge_point_id"]) == ("docked", "st-b-1")
    invoices = (await city.client.get("/api/v1/me/invoices", headers=member.headers())).json()["invoices"]
    (billed,) = [i for i in invoices if i["rental_id"] == rental["rental_id"]]
    assert billed["total"] == "5.00"  # premium, 20 minutes: the first half hour
    assert [e.id_tag for e in heard] == [EMAID]  # no badge anywhere
    (opened,) = await audit_of(city, "sharing.contract.badge")
    assert opened["actor"] == f"member:{member.id}" and opened["target"] == rental["rental_id"]
    assert (opened["detail"]["emaid"], opened["detail"]["car_id"]) == (EMAID, CAR_ID)
    (added,) = await audit_of(city, "member.contract.add")
    assert (added["target"], added["detail"]) == (member.id, {"emaid": EMAID})
    assert [(e["certificate_status"], e["status"]) for e in await contract_events(city)] == [("Accepted", "Accepted")]


async def test_a_contract_is_refused_unless_its_certificate_checks_out(city: City) -> None:
    server = city.server
    member = await city.sign_up(2)
    assert (await register(city, member.id, EMAID)).status_code == 201
    v2g = local_v2g(server)
    contract = v2g.issue_contract(EMAID)
    good = [hash_data(contract, v2g.root.certificate)]
    stranger = LocalV2GBackend()  # another PKI: unknown to voltlib's back end
    foreign = stranger.issue_contract(EMAID)
    key = ec.generate_private_key(ec.SECP256R1())
    lapsed = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, EMAID)]))
              .issuer_name(v2g.root.certificate.subject).public_key(key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(datetime.now(UTC) - timedelta(days=400))
              .not_valid_after(datetime.now(UTC) - timedelta(days=1)).sign(v2g.root.key, hashes.SHA256()))
    async with connect(server, "st-a-1") as a, connect(server, "st-b-1") as b:
        assert isinstance(a, Station201) and isinstance(b, Station201)
        await a.boot()
        await b.boot()
        await a.status(1, "Charging")
        answers = {
            "no certificate data": await present(a, EMAID),
            "typed on a card": await present(a, EMAID, token_type="ISO14443"),
            "unknown to the PKI": await present(a, EMAID, data=[hash_data(foreign, stranger.root.certificate)]),
            "a chain not the eMAID's": await present(a, EMAID, chain=pem(v2g.issue_contract("FRVLTC000000999"))
                                                     + pem(v2g.root.certificate)),
            "expired": await present(a, EMAID, chain=pem(lapsed) + pem(v2g.root.certificate)),
            "no car at this bay": await present(b, EMAID, data=good),
            "nobody's contract": await present(a, "FRVLTC000000888", data=[hash_data(
                v2g.issue_contract("FRVLTC000000888"), v2g.root.certificate)]),
        }
        v2g.revoked.add(contract.serial_number)
        answers["revoked"] = await present(a, EMAID, data=good)
        v2g.revoked.clear()
        server.gateway.services.v2g_backend = None
        answers["no back end"] = await present(a, EMAID, data=good)
        server.gateway.services.v2g_backend = v2g
        blocked = await city.client.post(f"/api/v1/badges/{EMAID}/block", json={"reason": "stolen"},
                                         headers=server.api_headers())
        assert blocked.status_code == 200, blocked.text
        answers["blocked"] = await present(a, EMAID, data=good)
        await server.settled()
        pushed = [e for push in a.got("SendLocalList") for e in push.get("local_authorization_list", [])]
        assert pushed == [{"id_token": {"id_token": EMAID, "type": "eMAID"}, "id_token_info": {"status": "Blocked"}}]
    async with connect_raw(server, "st-a-1", ["ocpp1.6"]) as old:  # the same post, speaking 1.6
        assert (await call_16(old, "BootNotification", BOOT_16))[0] == 3
        over_16 = await call_16(old, "Authorize", {"idTag": EMAID})  # no type, no certificate
    assert over_16[2] == {"idTagInfo": {"status": "Invalid"}}
    assert await city.rental(member) is None  # none of them opened the car
    assert answers == {
        "no certificate data": ("Invalid", None),  # a contract is never taken on its word
        "typed on a card": ("Invalid", None),
        "unknown to the PKI": ("Invalid", "CertChainError"),
        "a chain not the eMAID's": ("Invalid", "CertChainError"),
        "expired": ("Expired", "CertificateExpired"),
        "no car at this bay": ("Invalid", "ContractCancelled"),  # C07.FR.13: a good certificate, a refusal
        "nobody's contract": ("Invalid", "ContractCancelled"),
        "revoked": ("Invalid", "CertificateRevoked"),
        "no back end": ("Invalid", "CertChainError"),  # cannot be checked: refused
        "blocked": ("Blocked", "ContractCancelled"),
    }
    reasons = [e["detail"]["reason"] for e in reversed(await audit_of(city, "sharing.contract.refused"))]
    assert reasons == ["contract_not_proven", "contract_not_proven", "no_car_here", "badge_blocked",
                       "contract_not_proven"]
    checked = [e["certificate_status"] for e in reversed(await contract_events(city))]
    assert checked == ["CertChainError", "CertChainError", "CertificateExpired", "ContractCancelled",
                       "ContractCancelled", "CertificateRevoked", "CertChainError", "ContractCancelled"]
    assert (await city.vehicle())["status"] == "docked"


async def cli(server: RunningServer, *args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, [*args, "--url", server.url, "--token", server.token])


async def test_contracts_are_registered_and_removed_by_operators_only(city: City) -> None:
    server = city.server
    first, second = await city.sign_up(3), await city.sign_up(4)
    await server.add_id_tag("FRVLTC000000777")  # already an id tag of its own
    assert (await register(city, first.id, "frvltc000000425")).status_code == 201  # stored canonical
    again = await register(city, first.id)
    assert (again.status_code, again.json()["status"]) == (200, "Accepted")  # already theirs: nothing changes
    for member_id, emaid, status, title in ((second.id, EMAID, 409, "contract-conflict"),
                                            (second.id, first.badge, 422, "invalid-emaid"),
                                            (second.id, "frvltc0000000ß", 422, "invalid-emaid"),  # not 'SS'
                                            (second.id, "FRVLTC000000777", 409, "contract-conflict"),
                                            ("nobody", "FRVLTC000000666", 404, "not-found")):
        refused = await register(city, member_id, emaid)
        assert (refused.status_code, refused.json()["title"]) == (status, title), emaid
    by_member = await city.client.put(f"/api/v1/members/{first.id}/contracts/FRVLTC000000555",
                                      headers=first.headers())
    assert by_member.status_code == 403
    me = (await city.client.get("/api/v1/me", headers=first.headers())).json()
    assert me["contracts"] == [{"id_tag": EMAID, "status": "Accepted"}]
    assert [b["id_tag"] for b in me["badges"]] == [first.badge]  # a contract is no RFID card
    added = await cli(server, "member", "contract", "add", second.id, "FRVLTC000000555")
    assert added.exit_code == 0, added.output
    assert json.loads(added.output) == {"member_id": second.id, "emaid": "FRVLTC000000555", "status": "Accepted"}
    removed = await cli(server, "member", "contract", "remove", first.id, DASHED)
    assert removed.exit_code == 0 and json.loads(removed.output)["deleted"] is True
    gone = await cli(server, "member", "contract", "remove", first.id, DASHED)
    assert gone.exit_code == 1 and "404" in gone.output
    me = (await city.client.get("/api/v1/me", headers=first.headers())).json()
    assert me["contracts"] == []
    tags = {t["id_tag"] for t in (await city.client.get("/api/v1/id-tags", headers=server.api_headers())).json()}
    assert EMAID not in tags and "FRVLTC000000555" in tags
    trail = [(e["action"], e["target"], e["detail"]["emaid"]) for e in await audit_of(city, "member.contract.add")]
    assert trail == [("member.contract.add", second.id, "FRVLTC000000555"), ("member.contract.add", first.id, EMAID)]
    (dropped,) = await audit_of(city, "member.contract.remove")
    assert (dropped["target"], dropped["detail"]) == (first.id, {"emaid": EMAID})


async def test_a_return_under_a_contract_lost_after_the_answer_is_applied_at_start_up(
        database_url: str, ocpp_version: str) -> None:
    """The car plugged in under the member's contract, answered and stored, but voltlib stopped before
    car sharing applied it: the next start-up returns and bills the rental, once."""
    settings = Settings(database_url=database_url, port=free_port(), command_timeout=5.0, duplicate_probe_timeout=1.0,
                        ocpp_versions=["1.6", "2.0.1"], v2g_backend="voltlib.security.v2g_local:local_backend")
    runner, first = await start_server(settings)
    first.station_version = "2.0.1"
    try:
        async with seeded_city(first) as city:
            member = await city.sign_up(5)
            assert (await register(city, member.id)).status_code == 201
            v2g = first.gateway.services.v2g_backend
            assert isinstance(v2g, LocalV2GBackend)
            contract = v2g.issue_contract(EMAID)
            async with connect(first, "st-a-1") as a, connect(first, "st-b-1") as b:
                assert isinstance(a, Station201) and isinstance(b, Station201)
                await a.boot()
                await b.boot()
                await a.status(1, "Charging")
                assert await present(a, EMAID, data=[hash_data(contract, v2g.root.certificate)]) == ("Accepted",
                                                                                                    "Accepted")
                await city.wait_for_state(member, "badged")
                await a.status(1, "Available")
                await city.wait_for_state(member, "started")
                stop_subscriber(first, "sharing")
                tx = await b.plug_in(1)
                assert await b.authorized(tx, EMAID, "eMAID") == {"status": "Accepted"}  # answered, stored
            assert (await city.rental(member))["state"] == "started"  # never applied
    finally:
        await runner.cleanup()
    async with running(database_url) as second, city_on(second) as city:
        await city.wait_for_state(member, None)
        await quiet(second)
        again = await second.store.write(partial(service.reconcile_op, now=datetime.now(UTC)))
        assert (again.events, again.effects) == ([], [])
        history = (await city.client.get("/api/v1/me/rentals", headers=member.headers())).json()
        assert [(r["state"], r["return_dock"]) for r in history] == [("closed", ["st-b-1", 1])]
        invoices = (await city.client.get("/api/v1/me/invoices", headers=member.headers())).json()["invoices"]
        assert [i["rental_id"] for i in invoices if i["rental_id"]] == [history[0]["rental_id"]]
        assert (await city.vehicle())["charge_point_id"] == "st-b-1"
