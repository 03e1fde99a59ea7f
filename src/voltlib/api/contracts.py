"""Members' Plug & Charge contracts through the API (issue 17): an operator registers the eMAID of a
member's ISO 15118 contract, or removes it; each change is audited. What a contract then does at a
charge point is in docs/car-sharing.md, "Plug & Charge rentals"."""

from __future__ import annotations

from functools import partial
from typing import Any

from aiohttp import web
from sqlalchemy import Connection

from voltlib.api import models as m
from voltlib.api.framework import OPERATOR_ROLES, PRINCIPAL, Problem, Route, reply
from voltlib.gateway.context import Services
from voltlib.security import audit
from voltlib.sharing import contracts

TAG = "car sharing"


def contract_routes(services: Services) -> list[Route]:
    store, clock = services.store, services.clock

    def target(request: web.Request) -> tuple[str, str]:
        emaid = contracts.canonical_emaid(request.match_info["emaid"])
        if emaid is None:
            raise Problem(422, "invalid-emaid", "an eMAID is 14 or 15 letters and digits (country, provider, "
                          "contract instance, check character), dashes allowed, e.g. FR-VLT-C00000001-7")
        return request.match_info["member_id"], emaid

    async def register(request: web.Request) -> web.Response:
        member_id, emaid = target(request)
        by = request.get(PRINCIPAL) or "?"

        def op(conn: Connection) -> bool | None:
            created = contracts.add_contract(conn, member_id, emaid, clock.now())
            if created:
                audit.append(conn, actor=by, action="member.contract.add", target=member_id,
                             detail={"emaid": emaid}, now=clock.now())
            return created

        try:
            created = await store.write(op)
        except contracts.ContractConflict as exc:
            raise Problem(409, "contract-conflict", str(exc)) from None
        if created is None:
            raise Problem(404, "not-found", f"no member {member_id}")
        answer: dict[str, Any] = {"member_id": member_id, "emaid": emaid, "status": "Accepted"}
        if not created:
            answer["status"] = await store.read(partial(contracts.contract_status, emaid=emaid))
        return reply(answer, 201 if created else 200)

    async def remove(request: web.Request) -> web.Response:
        member_id, emaid = target(request)
        by = request.get(PRINCIPAL) or "?"

        def op(conn: Connection) -> bool:
            gone = contracts.remove_contract(conn, member_id, emaid)
            if gone:
                audit.append(conn, actor=by, action="member.contract.remove", target=member_id,
                             detail={"emaid": emaid}, now=clock.now())
            return gone

        if not await store.write(op):
            raise Problem(404, "not-found", f"{emaid} is no contract of member {member_id}")
        return reply({"member_id": member_id, "emaid": emaid, "deleted": True})

    path = "/api/v1/members/{member_id}/contracts/{emaid}"
    return [
        Route("PUT", path, register, "Register a member's Plug & Charge contract (ISO 15118 eMAID): a car opens to "
              "it at a 2.0.1 station once its contract certificate checks out (201 new, 200 already theirs; audited)",
              OPERATOR_ROLES, tag=TAG, returns=m.ContractSet, status=201),
        Route("DELETE", path, remove, "Remove a member's contract: it opens nothing any more (audited)",
              OPERATOR_ROLES, tag=TAG, returns=m.ContractDeleted),
    ]
